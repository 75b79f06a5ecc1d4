"""The protocol runner: streaming, checkpoints and exact resume, on a test-double model."""

import numpy as np
import pytest

from labctl.data.runfile import RunReader, RunWriter
from labctl.protocols.base import run
from labctl.protocols.forming import Forming, FormingConfig
from labctl.sim_backend.simulated_array import SimulatedArray


class Boom(Exception):
    pass


def _forming_run(path, model, *, stop_after=None, resume=False):
    arr = SimulatedArray(model, 6, 3, seed=7)
    proto = Forming(FormingConfig(conditioning_cycles=1))
    ckpt = None
    if resume:
        with RunReader(path) as r:
            ckpt = r.checkpoint()
    w = RunWriter(path, command="run forming", config=proto.config_dict(),
                  backend=arr.describe(), resume=resume)

    def progress(done, total, label):
        if stop_after is not None and done >= stop_after * 3:
            raise Boom()

    try:
        summary = run(proto, arr, w, progress=progress, resume=ckpt)
        w.finish("complete")
        return summary
    except Boom:
        w.finish("aborted", error="Boom")
        return None


def test_interrupted_run_keeps_finished_rows_and_resumes_exactly(tmp_path, test_model):
    full = tmp_path / "full.h5"
    s_full = _forming_run(full, test_model)
    part = tmp_path / "part.h5"
    assert _forming_run(part, test_model, stop_after=2) is None
    with RunReader(part) as r:
        assert r.status == "aborted"
        assert r.data("forming/v_form_V").shape == (6,)  # two rows of three cells on disk
    s_res = _forming_run(part, test_model, resume=True)
    assert s_res == s_full
    with RunReader(full) as a, RunReader(part) as b:
        assert b.status == "complete" and b.attrs()["resumed"] == 1
        for name in a.datasets():
            assert np.array_equal(a.data(name), b.data(name), equal_nan=True), name


def test_forming_analysis_on_test_model(tmp_path, test_model):
    s = _forming_run(tmp_path / "f.h5", test_model)
    assert s["cells"] == 18 and s["yield"] == 1.0
    # the test double forms at N(3.0, 0.1) V with a 0.01 V staircase
    assert s["v_form_mean_V"] == pytest.approx(3.0, abs=0.1)
    assert s["i_form_mean_A"] == pytest.approx(1.5e-4, rel=0.1)
