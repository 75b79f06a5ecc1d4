"""The stderr progress bar: quiet for short work, shown for long work, even when the long
part (an analysis) comes after the last progress call."""

from __future__ import annotations

import math
import time

import pytest

from labctl.commands.progress import ProgressBar


def test_short_work_draws_nothing(capsys):
    # a delay no loaded machine reaches (0.2 s was reached on a starved one); close()
    # cancels the pending first draw: its timer thread ends at once, without drawing
    bar = ProgressBar("run x", delay_s=30.0)
    bar(1, 2, "a")
    bar(2, 2, "analysing")
    bar.close()
    assert bar._timer is not None
    bar._timer.join(10)
    assert not bar._timer.is_alive()
    assert capsys.readouterr().err == ""


def test_work_that_goes_on_after_the_last_call_is_drawn_with_its_label(capsys):
    bar = ProgressBar("run x", delay_s=0.05)
    bar(2, 2, "analysing")
    assert bar._timer is not None
    bar._timer.join(10)                     # the analysis, after the last call, outlasts it
    bar.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run x: 100% (2/2" in err and "analysing" in err


def test_long_work_draws_each_tenth_once_when_not_a_terminal(capsys):
    bar = ProgressBar("run x", delay_s=0.0, rate_hz=1e6)
    for k in range(1, 101):
        bar(k, 100)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(":")[1].split("%")[0].strip() for ln in lines] == \
        [str(p) for p in range(0, 101, 10)]
    disabled = ProgressBar("run y", delay_s=0.0, enabled=False)
    disabled(1, 1)
    disabled.close()
    assert capsys.readouterr().err == ""


def test_the_eta_is_the_rate_since_the_work_first_moved(monkeypatch):
    """Time before ``done`` first moves (forming a fresh die, a resumed run's earlier
    sessions) is not progress: a resumed run at 50 % that then does 10 % in 10 s has 40 s
    left, not the 0 s that counting the earlier half as this session's would give."""
    from labctl.commands import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    bar = ProgressBar("run x", enabled=True)
    bar(50, 100, "resumed")
    assert math.isnan(bar._eta(50, 100, clock[0]))       # nothing measured yet: "?"
    clock[0] += 60.0                                     # a slow start: still at 50
    bar(50, 100, "forming")
    clock[0] += 10.0
    bar(60, 100, "measuring")
    assert bar._eta(60, 100, clock[0]) == pytest.approx(40.0)
    bar.close()


def test_a_long_silence_is_still_reported_in_a_log(capsys):
    """No call for a while (a long analysis): a log still gets a line now and then."""
    bar = ProgressBar("run x", delay_s=0.0, log_every_s=0.1)
    bar(2, 2, "analysing")
    lines: list[str] = []
    deadline = time.monotonic() + 10       # polled: a starved machine draws late, not never
    while len(lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        lines += capsys.readouterr().err.splitlines()
    bar.close()
    lines += capsys.readouterr().err.splitlines()
    assert len(lines) >= 3 and all("analysing" in ln for ln in lines)
