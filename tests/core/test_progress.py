"""The stderr progress bar: quiet for short work, shown for long work, even when the long
part (an analysis) comes after the last progress call."""

from __future__ import annotations

import time

from labctl.commands.progress import ProgressBar


def test_short_work_draws_nothing(capsys):
    bar = ProgressBar("run x", delay_s=0.2)
    bar(1, 2, "a")
    bar(2, 2, "analysing")
    bar.close()
    time.sleep(0.3)
    assert capsys.readouterr().err == ""


def test_work_that_goes_on_after_the_last_call_is_drawn_with_its_label(capsys):
    bar = ProgressBar("run x", delay_s=0.05)
    bar(2, 2, "analysing")
    time.sleep(0.3)                         # the analysis, after the last call
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
