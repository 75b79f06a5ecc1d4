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


def test_forming_a_formed_die_again_puts_no_forming_voltage_on_it(tmp_path, test_model):
    arr = SimulatedArray(test_model, 6, 3, seed=7)
    proto = Forming(FormingConfig(conditioning_cycles=1))

    def form(path):
        w = RunWriter(path, command="run forming", config=proto.config_dict(),
                      backend=arr.describe())
        s = run(proto, arr, w)
        w.finish("complete")
        return s

    first = form(tmp_path / "a.h5")
    assert first["already_formed"] == 0 and first["ramped"] == 18 and first["yield"] == 1.0
    sweeps = []
    orig = arr.sweep
    arr.sweep = lambda *a, **k: sweeps.append(a) or orig(*a, **k)  # type: ignore[method-assign]
    again = form(tmp_path / "b.h5")
    assert sweeps == []   # reads only
    assert again["already_formed"] == 18 and again["ramped"] == 0 and again["yield"] is None
    with RunReader(tmp_path / "b.h5") as r:
        assert not r.data("forming/ramped").any()
        assert np.isnan(r.data("forming/iv_current_A")).all()
        assert (r.data("forming/g_before_S") > 0.1 * arr.info.g_min_S).all()
    from labctl.commands.report import render_report

    assert len(render_report(tmp_path / "b.h5", tmp_path / "rep")) == 3   # with "no cell" notes


def test_forming_ramps_only_the_unformed_cells_of_a_row(tmp_path, test_model):
    from labctl.array import Cells
    from labctl.protocols.forming import forming_point

    arr = SimulatedArray(test_model, 2, 3, seed=7)
    cfg = FormingConfig(conditioning_cycles=0)
    ramp = np.linspace(0, cfg.v_stop_V, 401)
    res = arr.sweep(Cells.at([0], [1]), ramp, gate_V=cfg.gate_V, compliance_A=cfg.compliance_A)
    assert forming_point(res.voltage_V, res.current_A)[1][0] < cfg.v_stop_V
    proto = Forming(cfg)
    w = RunWriter(tmp_path / "f.h5", command="run forming", config=proto.config_dict(),
                  backend=arr.describe())
    s = run(proto, arr, w)
    w.finish("complete")
    assert s["already_formed"] == 1 and s["ramped"] == 5 and s["formed"] == 5
    with RunReader(tmp_path / "f.h5") as r:
        assert r.data("forming/ramped").tolist() == [True, False, True, True, True, True]
        assert np.isnan(r.data("forming/v_form_V")[1])


class _Station:
    """The simulated chip without snapshot/restore: a resume finds it as the interrupted
    session left it, as on a real bench."""

    def __init__(self, arr):
        self._arr = arr

    def __getattr__(self, name):
        if name in ("snapshot", "restore"):
            raise AttributeError(name)
        return getattr(self._arr, name)


def test_resume_counts_cells_an_interrupted_session_formed_apart(tmp_path, test_model):
    """Killed after the ramp of row 1 but before its record: on resume the row reads formed,
    yet the stored pre-read says it read unformed when the killed session began it."""
    from labctl.array import Snapshottable

    chip = _Station(SimulatedArray(test_model, 6, 3, seed=7))
    assert not isinstance(chip, Snapshottable)
    proto = Forming(FormingConfig(conditioning_cycles=1))
    path = tmp_path / "f.h5"
    sweeps = [0]
    orig = chip._arr.sweep

    def sweep(*a, **k):
        res = orig(*a, **k)
        sweeps[0] += 1
        if sweeps[0] == 4:       # row 0: ramp, post, one cycle; then row 1's ramp
            raise Boom()
        return res

    chip._arr.sweep = sweep
    w = RunWriter(path, command="run forming", config=proto.config_dict(),
                  backend=chip.describe())
    with pytest.raises(Boom):
        run(proto, chip, w)
    w.finish("aborted", error="Boom")
    chip._arr.sweep = orig
    with RunReader(path) as r:
        ckpt = r.checkpoint()
        assert r.data("forming/row").tolist() == [0, 0, 0]
    assert ckpt is not None and ckpt["protocol"]["pre_read_row"] == 1
    w = RunWriter(path, command="run forming", config=proto.config_dict(),
                  backend=chip.describe(), resume=True)
    s = run(proto, chip, w, resume=ckpt)
    w.finish("complete")
    assert s["cells"] == 18 and s["formed_by_interrupted_session"] == 3
    # formed and yield count them: every cell was ramped (3 by the killed session) and formed
    assert s["already_formed"] == 0 and s["ramped"] == 18 and s["formed"] == 18
    assert s["yield"] == 1.0
    with RunReader(path) as r:
        earlier = r.data("forming/formed_by_interrupted_session")
        assert earlier.tolist() == [False] * 3 + [True] * 3 + [False] * 12
        assert not r.data("forming/ramped")[3:6].any()
        assert r.data("forming/formed").all()
        assert np.isnan(r.data("forming/v_form_V")[3:6]).all()
        assert np.isnan(r.data("forming/iv_current_A")[3:6]).all()
        # the row's g_before is the interrupted session's pre-read, taken before its ramp
        assert (r.data("forming/g_before_S")[3:6] < 0.1 * chip.info.g_min_S).all()
        # ... and the resume gave them the post-forming sweep and conditioning
        assert np.isfinite(r.data("forming/post_current_A")).all()
        assert np.isfinite(r.data("forming/conditioning_current_A")).all()
        g = r.data("forming/g_after_S")
        assert s["g_after_mean_S"] == pytest.approx(g.mean())   # over all 18 cells
    from labctl.commands.run_forming import human

    text = human({**s, "run_file": str(path)})
    assert text.startswith("forming: 18/18 cells formed (yield 100.0 %)\n")
    assert "3 cells formed by an interrupted session (forming voltage not recorded)" in text
    assert "already read as formed" not in text
    text = human({**s, "formed_by_interrupted_session": 1, "already_formed": 1,
                  "run_file": str(path)})
    assert "  1 cell formed by an interrupted session" in text
    assert "1 of 18 cells already read as formed and was left alone" in text


def _form_interrupted_after_ramp(path, chip, inner, proto):
    """Run forming on ``chip`` with an interrupt in row 1's post-forming sweep (after its
    ramp); return the ramp sweeps the resume made and its summary."""
    ramp_V = FormingConfig().v_stop_V
    sweeps, ramps = [0], []
    orig = inner.sweep

    def sweep(cells, voltages_V, **k):
        sweeps[0] += 1
        if sweeps[0] == 5:       # row 0: ramp, post, one cycle; row 1: ramp, then its post
            raise KeyboardInterrupt("SIGTERM")
        if np.max(voltages_V) >= ramp_V:
            ramps.append(cells.indices(chip.info.shape))
        return orig(cells, voltages_V, **k)

    inner.sweep = sweep
    w = RunWriter(path, command="run forming", config=proto.config_dict(),
                  backend=chip.describe())
    with pytest.raises(KeyboardInterrupt):
        run(proto, chip, w)
    w.finish("aborted", error="KeyboardInterrupt")
    with RunReader(path) as r:
        ckpt = r.checkpoint()
        assert r.data("forming/row").tolist() == [0, 0, 0]
    assert ckpt is not None and ckpt["protocol"]["ramp_row"] == 1
    ramps.clear()
    sweeps[0] = -1000
    w = RunWriter(path, command="run forming", config=proto.config_dict(),
                  backend=chip.describe(), resume=True)
    s = run(proto, chip, w, resume=ckpt)
    w.finish("complete")
    inner.sweep = orig
    return ramps, s


def test_an_interrupt_after_a_rows_ramp_keeps_its_forming_voltages(tmp_path, test_model):
    """On a station: the ramp's traces were checkpointed, so the resume records the row's
    forming voltages, conditions those cells and does not ramp them again."""
    chip = _Station(SimulatedArray(test_model, 6, 3, seed=7))
    proto = Forming(FormingConfig(conditioning_cycles=1))
    ramps, s = _form_interrupted_after_ramp(tmp_path / "f.h5", chip, chip._arr, proto)
    assert [r.tolist() for r, _ in ramps] == [[2, 2, 2], [3, 3, 3], [4, 4, 4], [5, 5, 5]]
    assert s["ramped"] == 18 and s["formed"] == 18 and s["formed_by_interrupted_session"] == 0
    with RunReader(tmp_path / "f.h5") as r:
        assert r.data("forming/row").tolist() == [r_ for r_ in range(6) for _ in range(3)]
        assert r.data("forming/ramped").all() and r.data("forming/formed").all()
        assert np.isfinite(r.data("forming/v_form_V")).all()
        assert np.isfinite(r.data("forming/conditioning_current_A")).all()


def test_an_interrupt_after_a_rows_ramp_resumes_exactly_on_the_simulator(tmp_path,
                                                                         test_model):
    full = tmp_path / "full.h5"
    s_full = _forming_run(full, test_model)
    arr = SimulatedArray(test_model, 6, 3, seed=7)
    proto = Forming(FormingConfig(conditioning_cycles=1))
    _, s = _form_interrupted_after_ramp(tmp_path / "f.h5", arr, arr, proto)
    assert s == s_full
    with RunReader(full) as a, RunReader(tmp_path / "f.h5") as b:
        for name in a.datasets():
            assert np.array_equal(a.data(name), b.data(name), equal_nan=True), name


def test_sigterm_during_a_steps_appends_leaves_the_step_whole(tmp_path, test_model):
    """SIGTERM (KeyboardInterrupt in the CLI) landing between two datasets of one step is
    held until the step's record and checkpoint are written: every dataset ends equal."""
    import os
    import signal

    def sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    class KilledMidStep(RunWriter):
        appends = 0

        def append(self, name, values, units):
            super().append(name, values, units)
            KilledMidStep.appends += 1
            if KilledMidStep.appends == 10:   # inside the second row's record
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10_000):       # where the handler would have run
                    pass

    arr = SimulatedArray(test_model, 6, 3, seed=7)
    proto = Forming(FormingConfig(conditioning_cycles=1))
    path = tmp_path / "r.h5"
    old = signal.signal(signal.SIGTERM, sigterm)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), \
                KilledMidStep(path, command="run forming", config=proto.config_dict(),
                              backend=arr.describe()) as w:
            run(proto, arr, w)
    finally:
        signal.signal(signal.SIGTERM, old)
    with RunReader(path) as r:
        assert r.status == "aborted"
        lengths = dict(r.checkpoint()["lengths"])
        growable = [n for n in r.datasets() if r.h5[n].maxshape[0] is None]
        assert growable and {n: r.h5[n].shape[0] for n in growable} == lengths
