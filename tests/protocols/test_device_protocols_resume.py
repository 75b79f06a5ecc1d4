"""Interrupt each device protocol mid-run, resume from the file's checkpoint: the result
equals an uninterrupted run (same seed) and no step is recorded twice."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.data.runfile import RunReader, RunWriter
from labctl.protocols.base import run
from labctl.protocols.program import Program, ProgramConfig
from labctl.protocols.program_verify import VerifyConfig
from labctl.protocols.retention import Retention, RetentionConfig
from labctl.protocols.symmetry_point import SymmetryPoint, SymmetryPointConfig


class Stop(Exception):
    pass


def _run(path, proto, array, *, stop_at=None, resume=False, command="run x"):
    ckpt = None
    if resume:
        with RunReader(path) as r:
            ckpt = r.checkpoint()
    w = RunWriter(path, command=command, config=proto.config_dict(), backend=array.describe(),
                  resume=resume)
    steps = [0]

    def progress(done, total, label):
        steps[0] += 1
        if stop_at is not None and steps[0] >= stop_at:
            raise Stop()

    try:
        s = run(proto, array, w, progress=progress, resume=ckpt)
        w.finish("complete")
        return s
    except Stop:
        w.finish("aborted", error="Stop")
        return None


CASES = {
    "program": (lambda: Program(ProgramConfig(levels=5, repeats=9, verify=VerifyConfig(
        tolerance=0.005, rounds_per_step=5))), 7),
    "retention": (lambda: Retention(RetentionConfig(levels=4, repeats=10,
                                                    times_s=(1.0, 60.0, 3600.0))), 9),
    "symmetry": (lambda: SymmetryPoint(SymmetryPointConfig(batch_pulses=60, cycles=1,
                                                           alternating_pulses=60, chunk=20)), 4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_resume_equals_uninterrupted(name, tmp_path, cmo_chip):
    make, stop_at = CASES[name]
    full = _run(tmp_path / "full.h5", make(), cmo_chip(8, 4, seed=4))
    part = tmp_path / "part.h5"
    assert _run(part, make(), cmo_chip(8, 4, seed=4), stop_at=stop_at) is None
    resumed = _run(part, make(), cmo_chip(8, 4, seed=99), resume=True)
    assert resumed == full
    with RunReader(tmp_path / "full.h5") as a, RunReader(part) as b:
        names = sorted(a.datasets())
        assert names == sorted(b.datasets())
        for n in names:
            assert np.array_equal(a.data(n), b.data(n), equal_nan=True), n


def test_report_draws_an_aborted_symmetry_point_run_and_says_it_is_aborted(
        tmp_path, cmo_chip, capsys):
    """A run stopped during its first up/down batches holds fewer trace rows than its pulse
    schedule; the report draws what is there and its summary says ``aborted``."""
    import json

    from labctl.cli import main

    proto = SymmetryPoint(SymmetryPointConfig(batch_pulses=60, cycles=1,
                                              alternating_pulses=60, chunk=20))
    array = cmo_chip(8, 4, seed=4)
    path = tmp_path / "sp.h5"
    w = RunWriter(path, command="run symmetry-point", config=proto.config_dict(),
                  backend=array.describe())
    steps = [0]

    def progress(done, total, label):
        steps[0] += 1
        if steps[0] >= 3:
            raise Stop()

    with pytest.raises(Stop):
        run(proto, array, w, progress=progress)
    w.finish("aborted", error="Stop")
    with RunReader(path) as r:
        assert r.data("symmetry/trace_S").shape[0] - 1 < r.data("symmetry/sign").size
    assert main(["report", str(path), "--out", str(tmp_path / "rep"), "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "aborted" and len(summary["figures"]) == 3
    assert "aborted" in err


@pytest.mark.parametrize("stop_at", [20, 21, 22])
def test_report_draws_an_aborted_retention_run(stop_at, tmp_path, cmo_chip, capsys):
    """A retention run stopped early has no summary: the report analyses what it recorded
    (the fit over the reads so far), or draws the programmed levels if no read was made."""
    import json

    from labctl.cli import main

    proto = Retention(RetentionConfig(levels=4, repeats=10, times_s=(1.0, 60.0, 3600.0)))
    path = tmp_path / "ret.h5"
    assert _run(path, proto, cmo_chip(8, 4, seed=4), stop_at=stop_at,
                command="run retention") is None
    with RunReader(path) as r:
        reads = "retention/t_s" in r
        assert r.summary == {} and "retention/program/g_S" in r
    assert main(["report", str(path), "--out", str(tmp_path / "rep"), "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "aborted" and "aborted" in err
    assert len(summary["figures"]) == (3 if reads else 1)
    # steps: forming, the first batch's verify rounds, then one read per grid time
    assert reads == (stop_at > 20)


def test_report_of_a_program_run_stopped_in_its_first_batch(tmp_path, cmo_chip, capsys):
    """No cell has finished, so only the verify traces exist: the report draws those; a run
    stopped before any round says so in one line (exit 2)."""
    from labctl.cli import main

    for stop_at, figures in ((1, None), (4, ["program_traces.png"])):
        path = tmp_path / f"p{stop_at}.h5"
        assert _run(path, CASES["program"][0](), cmo_chip(8, 4, seed=4), stop_at=stop_at,
                    command="run program") is None
        code = main(["report", str(path), "--out", str(tmp_path / f"rep{stop_at}")])
        out, err = capsys.readouterr()
        if figures is None:
            assert code == 2 and len(err.strip().splitlines()) == 1
            assert "aborted and stopped before it recorded anything" in err
        else:
            assert code == 0 and [p.rsplit("/", 1)[-1] for p in out.split()] == figures
