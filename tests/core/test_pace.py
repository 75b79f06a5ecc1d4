"""--pace: the simulated die is given a station's time per cell operation, and relaxes
during a measurement as a die on that station does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader

SP = ["run", "symmetry-point", "--rows", "4", "--cols", "4", "--quiet", "--json"]


def _summary(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_paced_die_relaxes_during_a_symmetry_point_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1 ms per cell operation (a matrix-routed bench) puts ~30 ms between a cell's pulse
    and its read, and ~60 s into the run: the relaxation's spread widens every swing, whose
    bottom reads lower (3.8 against 1.6 uS at seed 0)."""
    assert main([*SP, "--out", str(tmp_path / "a.h5")]) == 0
    unpaced = _summary(capsys)
    assert main([*SP, "--pace", "1e-3", "--out", str(tmp_path / "b.h5")]) == 0
    paced = _summary(capsys)
    assert paced["g_min_mean_S"] < unpaced["g_min_mean_S"] - 1e-6
    assert paced["g_max_mean_S"] == pytest.approx(unpaced["g_max_mean_S"], rel=0.05)
    with RunReader(tmp_path / "b.h5") as rr:
        assert rr.backend["pace_s"] == {"pulse": 1e-3, "read": 1e-3, "sweep": 1e-3,
                                        "mvm": 1e-3}
    with RunReader(tmp_path / "a.h5") as rr:
        assert "pace_s" not in rr.backend and "operation_time" not in rr.attrs()


@pytest.mark.parametrize("pace, says", [
    ("abc", "neither a time in seconds nor an existing run file"),
    ("-1", "must be a time of 0 to 60 s"),
    ("nan", "must be a time of 0 to 60 s"),
    ("1e300", "must be a time of 0 to 60 s"),
    ("{sim}", "records no station pace"),
    ("1e-3 --backend {station}", "is for the simulated chip"),
])
def test_a_bad_pace_is_one_line_and_no_file(pace: str, says: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    sim = tmp_path / "sim.h5"
    assert main(["run", "forming", "--rows", "1", "--cols", "2", "--quiet",
                 "--out", str(sim)]) == 0
    station = tmp_path / "station.toml"
    station.write_text("")   # never opened: the pace is refused first
    out = tmp_path / "x.h5"
    argv = pace.format(sim=sim, station=station).split()
    capsys.readouterr()
    assert main(["run", "forming", "--quiet", "--out", str(out), "--pace", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()


def test_a_paced_run_resumes_at_its_pace_and_refuses_another(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.h5"
    from labctl.commands.progress import ProgressBar

    calls = [0]
    original = ProgressBar.__call__

    def interrupt(self, done, total, label=""):   # the third checkpointed row
        calls[0] += 1
        if calls[0] >= 3:
            raise KeyboardInterrupt("SIGTERM")
        return original(self, done, total, label)

    ProgressBar.__call__ = interrupt
    try:
        assert main(["run", "forming", "--pace", "2e-3", "--out", str(out)]) == 130
    finally:
        ProgressBar.__call__ = original
    capsys.readouterr()
    assert main(["run", "forming", "--resume", str(out), "--pace", "1e-3"]) == 2
    err = capsys.readouterr().err          # the values that differ, not "None, now None"
    assert "pace_s.mvm: recorded 0.002, now 0.001" in err and "(and 1 more)" in err, err
    assert main(["run", "forming", "--resume", str(out), "--gate-V", "1.1"]) == 2
    err = capsys.readouterr().err          # the option's own value, not its config group
    assert "gate_V: recorded 1.2, now 1.1" in err and len(err.splitlines()) == 1, err
    assert main(["run", "forming", "--resume", str(out), "--quiet"]) == 0
    assert main(["run", "forming", "--pace", "2e-3", "--quiet",
                 "--out", str(tmp_path / "whole.h5")]) == 0
    with RunReader(out) as a, RunReader(tmp_path / "whole.h5") as b:
        assert a.backend["pace_s"]["read"] == 2e-3
        for name in ("forming/v_form_V", "forming/g_after_S"):
            assert (a.data(name) == b.data(name)).all(), name


def test_negative_operation_seconds_add_no_time():
    """A clock step backwards (a negative duration) adds operations but no seconds."""
    from labctl.operation_time import OperationTimes

    t = OperationTimes()
    t.add("read", 1, -5)
    assert t.totals["read"] == [1, 0.0]
    t.add("read", 1, 2.0)
    assert t.per_operation_s() == {"read": 1.0}


def test_a_negative_pace_is_refused():
    """A pace is a time per operation: below 0 s it is a ValueError, 0 s is allowed."""
    from labctl.operation_time import check_pace

    with pytest.raises(ValueError, match="read"):
        check_pace({"read": -1})
    assert check_pace({"read": 0}) == {"read": 0.0}
