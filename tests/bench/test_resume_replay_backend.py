"""Resume and replay never change the chip under a run: a replay the user did not point at
hardware drives none, a resume on another backend than the recorded one is refused, every
session's transcript is kept, and a faithful transcript replay is consistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader

from .test_faults import small_doc


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The next CLI run is interrupted (as by SIGTERM) at its ``n``-th progress report,
    i.e. after ``n`` checkpointed steps."""
    from labctl.commands.progress import ProgressBar

    calls = [0]

    def call(self: Any, done: int, total: int, label: str = "") -> None:
        calls[0] += 1
        if calls[0] >= n:
            monkeypatch.undo()
            raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(ProgressBar, "__call__", call)


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


SP = ["run", "symmetry-point", "--batch-pulses", "20", "--cycles", "1",
      "--alternating-pulses", "20", "--read-repeats", "4", "--quiet"]


def _interrupted_station_run(serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> tuple[Any, Path, Path]:
    running, station = serve_station(small_doc())
    out = tmp_path / "sp.h5"
    _interrupt_after(monkeypatch, 2)
    assert main([*SP, "--backend", str(station), "--out", str(out)]) == 130
    capsys.readouterr()
    with RunReader(out) as rr:
        assert rr.status == "aborted" and rr.checkpoint() is not None
    return running, station, out


def test_inference_replay_on_the_default_backend_never_drives_the_station(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station(small_doc())
    w = tmp_path / "w.npy"
    np.save(w, np.array([[0.5], [-0.25]]))
    pw, inf = tmp_path / "pw.h5", tmp_path / "inf.h5"
    assert main(["program", str(w), "--backend", str(station), "--quiet", "--out",
                 str(pw)]) == 0
    # (one column: the rows calibration's references would fit it without the chip)
    assert main(["pipeline", "inference", str(pw), "--times", "1s", "--inputs", "8",
                 "--calibration", "columns", "--quiet", "--out", str(inf)]) == 0
    capsys.readouterr()
    running.stop()   # from here on, any attempt to reach the bench would fail differently
    rep = tmp_path / "rep.h5"
    assert main(["replay", str(inf), "--out", str(rep)]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "ran on a station" in err[0] and "--backend" in err[0], err
    assert not rep.exists()
    # an explicit --backend sim on the inference itself is refused too: the file would say sim
    assert main(["pipeline", "inference", str(pw), "--times", "1s", "--backend", "sim",
                 "--quiet", "--out", str(tmp_path / "inf2.h5")]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "station" in err[0], err
    # offline, from the recorded transcript, it replays faithfully
    code = main(["replay", str(inf), "--backend", "transcript", "--json", "--out",
                 str(tmp_path / "rep-t.h5")])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, res
    with RunReader(tmp_path / "rep-t.h5") as rr:
        assert rr.backend["backend"] == "station"
        assert "--backend" in json.loads(rr.attrs()["argv"])


def test_resume_of_a_station_run_on_another_backend_is_refused(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    running, station, out = _interrupted_station_run(serve_station, tmp_path, monkeypatch,
                                                     capsys)
    # no --backend: the simulator is not the die the run measured
    assert main([*SP, "--resume", str(out)]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "station" in err[0] and str(station) in err[0], err
    # another bench's station file
    _, other = serve_station(small_doc(), name="other.toml")
    assert main([*SP, "--backend", str(other), "--resume", str(out)]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "other.toml" in err[0], err
    with RunReader(out) as rr:
        assert rr.status == "aborted" and rr.backend["station"] == str(station)
    # the recorded station carries on
    assert main([*SP, "--backend", str(station), "--resume", str(out)]) == 0
    assert running.all_safe()


def test_resume_of_a_station_run_on_a_bench_with_other_instruments_is_refused(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    running, station, out = _interrupted_station_run(serve_station, tmp_path, monkeypatch,
                                                     capsys)
    running.stop()
    # the same station file now names another bench: another generator answers
    other_bench, other = serve_station(small_doc(), name="moved.toml")
    other_bench.server("pulse").emulator.serial = "EMU0002"
    station.write_text(other.read_text())
    assert main([*SP, "--backend", str(station), "--resume", str(out)]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "instrument" in err[0], err


def test_resume_of_a_simulated_run_checks_preset_size_and_seed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = [*SP, "--rows", "4", "--cols", "2", "--seed", "3"]
    out = tmp_path / "sp.h5"
    _interrupt_after(monkeypatch, 2)
    assert main([*args, "--out", str(out)]) == 130
    capsys.readouterr()
    from labctl.sim_backend.presets import preset_path

    copied = tmp_path / "same-model.toml"
    copied.write_text(preset_path("cmo-hfox-1t1r").read_text())
    for other in (["--seed", "4"], ["--rows", "5"], ["--preset", str(copied)]):
        changed = list(args)
        k = changed.index(other[0]) if other[0] in changed else len(changed)
        changed[k:k + 2] = other
        assert main([*changed, "--resume", str(out)]) == 2, other
        err = _err(capsys)
        assert len(err) == 1 and "backend" in err[0], (other, err)
    # a copied run file resumes although its default preset path (from the name) differs
    copy = tmp_path / "copy.h5"
    copy.write_bytes(out.read_bytes())
    assert main([*args, "--resume", str(copy)]) == 0, _err(capsys)
    with RunReader(copy) as rr:
        assert rr.config["preset_out"] == str((tmp_path / "sp-preset.toml").resolve())


def test_an_interrupted_run_resumes_from_its_file_alone_to_the_uninterrupted_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = [*SP, "--rows", "4", "--cols", "2", "--seed", "3"]
    full, cut = tmp_path / "full.h5", tmp_path / "cut.h5"
    assert main([*args, "--out", str(full)]) == 0
    _interrupt_after(monkeypatch, 2)
    assert main([*args, "--out", str(cut)]) == 130
    capsys.readouterr()
    assert main(["run", "symmetry-point", "--resume", str(cut)]) == 0, capsys.readouterr().err
    with RunReader(full) as a, RunReader(cut) as b:
        assert b.status == "complete"
        for name in a.datasets():
            assert (a.data(name) == b.data(name)).all(), name
        # the session records the completed command line (--quiet was the first session's)
        session = json.loads(b.attrs()["sessions"])[-1]["argv"]
        assert session == [*(t for t in args if t != "--quiet"), "--resume", str(cut)]
    # a changed option is still refused, with what differs
    cut2 = tmp_path / "cut2.h5"
    _interrupt_after(monkeypatch, 2)
    assert main([*args, "--out", str(cut2)]) == 130
    capsys.readouterr()
    assert main(["run", "symmetry-point", "--resume", str(cut2), "--seed", "4"]) == 2
    assert "seed" in capsys.readouterr().err


def test_resumed_station_run_keeps_every_session(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    running, station, out = _interrupted_station_run(serve_station, tmp_path, monkeypatch,
                                                     capsys)
    with RunReader(out) as rr:
        first = len(rr.data("transcript/text"))
        paced_first = json.loads(rr.attrs()["operation_time"])
    argv = [*SP, "--backend", str(station), "--resume", str(out)]
    assert main(argv) == 0
    with RunReader(out) as rr:
        attrs = rr.attrs()
        # the station's pace counts every session's cell operations, not the last one's
        paced = json.loads(attrs["operation_time"])
        assert paced["read"][0] > paced_first["read"][0] > 0 and paced["read"][1] > 0
        assert paced["sweep"][0] >= paced_first["sweep"][0] > 0   # the first one formed
        assert paced["pulse"][0] == 60 * 6   # 3x2 cells x 60 pulses (none before the kill)
        assert rr.status == "complete" and "error" not in attrs
        sessions = json.loads(attrs["sessions"])
        assert [s["status"] for s in sessions] == ["aborted", "complete"]
        assert "SIGTERM" in sessions[0]["error"] and sessions[1]["argv"] == argv
        assert all(s["start_time"] and s["end_time"] for s in sessions)
        text, session = rr.data("transcript/text"), rr.data("transcript/session")
        assert len(text) == len(session) > first
        assert list(session[:first]) == [0] * first and set(session[first:]) == {1}
    capsys.readouterr()
    assert main(["replay", str(out), "--backend", "transcript", "--out",
                 str(tmp_path / "rep.h5")]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "resumed" in err[0], err


def test_transcript_replay_of_a_retention_run_is_consistent(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, station = serve_station(small_doc())
    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--levels", "2", "--repeats", "3", "--times", "1s,2s",
                 "--backend", str(station), "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    code = main(["replay", str(out), "--backend", "transcript", "--json", "--out",
                 str(tmp_path / "rep.h5")])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, [k for k, v in res["metrics"].items() if not v["pass"]]
    assert not any("t_actual_s" in k for k in res["metrics"])


def _interrupt_in_ramp(monkeypatch: pytest.MonkeyPatch, n: int, cells_done: int) -> None:
    """The ``n``-th forming ramp on the bench ramps its first ``cells_done`` cells, then the
    session is interrupted (as by SIGTERM) before the ramp's traces are back: those cells
    are formed on the bench, but nothing of their ramp is recorded."""
    from labctl.array import Cells
    from labctl.drivers.hardware_array import HardwareArray

    orig, ramps = HardwareArray.sweep, [0]

    def sweep(self: Any, cells: Any, voltages_V: Any, **kw: Any) -> Any:
        if np.max(voltages_V) < 4.0:
            return orig(self, cells, voltages_V, **kw)
        ramps[0] += 1
        if ramps[0] < n:
            return orig(self, cells, voltages_V, **kw)
        r, c = cells.indices(self.info.shape)
        orig(self, Cells.at(r[:cells_done], c[:cells_done]), voltages_V, **kw)
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(HardwareArray, "sweep", sweep)


def test_resumed_station_forming_counts_the_row_in_flight_apart(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A session interrupted in row 1's forming ramp: the resume finds those cells formed,
    says an interrupted session formed them (not 'already formed ... no forming
    voltage'), counts them formed, gives them the post-forming sweep and conditioning like
    the others, and a sim replay of the run is consistent."""
    _, station = serve_station(small_doc())
    out = tmp_path / "f.h5"
    _interrupt_in_ramp(monkeypatch, 2, cells_done=2)
    args = ["run", "forming", "--conditioning-cycles", "1", "--backend", str(station)]
    assert main([*args, "--quiet", "--out", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*args, "--resume", str(out), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    s = json.loads(lines[-1])
    assert s["cells"] == 6 and s["formed_by_interrupted_session"] == 2
    assert s["already_formed"] == 0 and s["ramped"] == 6 and s["formed"] == 6
    assert s["yield"] == 1.0
    text = "\n".join(lines[:-1])
    assert text.startswith("forming: 6/6 cells formed (yield 100.0 %)\n")
    assert "2 cells formed by an interrupted session (forming voltage not recorded)" in text
    assert "already read as formed" not in text
    with RunReader(out) as rr:
        assert rr.data("forming/formed_by_interrupted_session").tolist() == \
            [False, False, True, True, False, False]
        assert not rr.data("forming/ramped")[2:4].any()
        assert rr.data("forming/formed").all()
        assert np.isnan(rr.data("forming/v_form_V")[2:4]).all()
        assert np.isfinite(rr.data("forming/conditioning_current_A")).all()
        g = rr.data("forming/g_after_S")
    # conditioned like the others (unconditioned, they stayed near 33 uS; the others ~87)
    others = np.delete(g, [2, 3])
    assert (g[2:4] > 0.8 * others.min()).all(), g
    assert s["g_after_mean_S"] == pytest.approx(g.mean())
    from labctl.plots.forming import render

    with RunReader(out) as rr:
        titles = [p.name for p in render(rr, tmp_path / "fig")]
    assert "forming_map.png" in titles


def test_a_resumed_station_forming_run_replays_consistently_on_the_simulator(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The example die (32 cells, as the simulator's default), one cell formed by an
    interrupted session: a sim replay (as the refused transcript replay advises) compares
    every count but the session bookkeeping, and is consistent."""
    _, station = serve_station()
    out = tmp_path / "f.h5"
    _interrupt_in_ramp(monkeypatch, 2, cells_done=1)
    args = ["run", "forming", "--backend", str(station)]
    assert main([*args, "--quiet", "--out", str(out)]) == 130
    monkeypatch.undo()
    assert main([*args, "--quiet", "--resume", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["cells"] == 32 and s["formed_by_interrupted_session"] == 1
    assert s["formed"] == s["ramped"] == 32
    assert main(["replay", str(out), "--json", "--out", str(tmp_path / "rep.h5")]) == 0, \
        capsys.readouterr().out
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["consistent"] and "formed_by_interrupted_session" not in res["metrics"]
    assert res["metrics"]["data:forming/v_form_V"]["recorded"]["n"] == 31


def test_an_interrupted_station_rows_ramp_keeps_its_forming_voltages(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM after row 1's ramp (in its conditioning): the ramp was checkpointed, so the
    resume records those cells' forming voltages and does not ramp them again."""
    from labctl.drivers.hardware_array import HardwareArray

    _, station = serve_station(small_doc())
    out = tmp_path / "f.h5"
    orig, sweeps = HardwareArray.sweep, [0]

    def sweep(self: Any, cells: Any, voltages_V: Any, **kw: Any) -> Any:
        sweeps[0] += 1
        if sweeps[0] == 5:      # row 0: ramp, post, one cycle; row 1: ramp, post
            raise KeyboardInterrupt("SIGTERM")
        return orig(self, cells, voltages_V, **kw)

    monkeypatch.setattr(HardwareArray, "sweep", sweep)
    args = ["run", "forming", "--conditioning-cycles", "1", "--backend", str(station)]
    assert main([*args, "--quiet", "--out", str(out)]) == 130
    monkeypatch.undo()
    ramped: list[int] = []

    def count(self: Any, cells: Any, voltages_V: Any, **kw: Any) -> Any:
        if np.max(voltages_V) >= 4.0:
            ramped.extend(cells.indices(self.info.shape)[0].tolist())
        return orig(self, cells, voltages_V, **kw)

    monkeypatch.setattr(HardwareArray, "sweep", count)
    capsys.readouterr()
    assert main([*args, "--resume", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ramped == [2, 2]                     # only row 2 is ramped by the resume
    assert s["formed_by_interrupted_session"] == 0
    assert s["ramped"] == 6 and s["formed"] == 6
    with RunReader(out) as rr:
        assert rr.data("forming/ramped").all()
        assert np.isfinite(rr.data("forming/v_form_V")).all()
        assert np.isfinite(rr.data("forming/conditioning_current_A")).all()


def test_a_killed_station_session_keeps_its_transcript_in_wall_clock_time(
        serve_station: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The transcript is appended with every step: the file as a SIGKILL would leave it
    (copied while the run writes) holds the session's entries, in POSIX seconds, and its
    resume appends the next session's after them."""
    import shutil
    import time

    from labctl.commands.progress import ProgressBar

    _, station = serve_station(small_doc())
    out, killed = tmp_path / "sp.h5", tmp_path / "killed.h5"
    calls = [0]

    def call(self: Any, done: int, total: int, label: str = "") -> None:
        calls[0] += 1
        if calls[0] == 2:
            shutil.copy(out, killed)            # what a SIGKILL here would leave
            monkeypatch.undo()
            raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(ProgressBar, "__call__", call)
    t_start = time.time()
    assert main([*SP, "--backend", str(station), "--out", str(out)]) == 130
    with RunReader(killed) as rr:
        assert rr.status == "running"
        t, session = rr.data("transcript/time_s"), rr.data("transcript/session")
        assert len(t) > 10 and len(rr.data("transcript/text")) == len(t)
        assert set(session) == {0}
        assert abs(t[0] - t_start) < 60 and t[-1] <= time.time() + 1
    capsys.readouterr()
    assert main([*SP, "--backend", str(station), "--resume", str(killed)]) == 0
    with RunReader(killed) as rr:
        sessions = json.loads(rr.attrs()["sessions"])
        assert [s["status"] for s in sessions] == ["killed", "complete"]
        t2, session2 = rr.data("transcript/time_s"), rr.data("transcript/session")
        assert np.array_equal(t2[:len(t)], t) and set(session2[len(t):]) == {1}
        assert len(session2) > len(t) and np.all(np.diff(t2) >= 0)
        assert len(rr.data("transcript/resource")) == len(t2)


def test_a_station_run_replays_on_the_simulator_at_the_stations_pace(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A station run records how long its operations took per cell; its replay on the
    simulator advances the die's clock by that much after each one (so the die relaxes
    during the measurement as it did on the bench), and --no-pace replays it without."""
    _, station = serve_station(small_doc())
    out = tmp_path / "sp.h5"
    assert main([*SP, "--backend", str(station), "--out", str(out)]) == 0
    with RunReader(out) as rr:
        totals = json.loads(rr.attrs()["operation_time"])
    per_op = {k: s / n for k, (n, s) in totals.items()}
    # the 3x2 die's cells each take 20 + 20 + 20 pulses, each pulse followed by a read
    assert totals["pulse"][0] == 60 * 6 and totals["read"][0] >= (1 + 60 + 4) * 6
    assert all(v > 0 for v in per_op.values())
    for flag, expected in (([], per_op), (["--no-pace"], None)):
        rep = tmp_path / f"rep{len(flag)}.h5"
        code = main(["replay", str(out), "--resamples", "0", "--out", str(rep), *flag])
        capsys.readouterr()
        assert code in (0, 1)
        with RunReader(rep) as rr:
            assert rr.backend["backend"] == "sim"
            assert rr.backend.get("pace_s") == (pytest.approx(expected) if expected else None)
            assert ("--pace" in json.loads(rr.attrs()["argv"])) == bool(expected)
