"""labctl replay's summary comparison: clock bookkeeping is shown, never compared."""

from __future__ import annotations

from labctl.data.compare import compare_summaries


def test_when_the_reads_were_taken_is_not_a_measurement_to_compare():
    rec = {"rmse": {"1s": 0.02}, "t_actual_s": {"1s": 3.83}}
    rep = {"rmse": {"1s": 0.02}, "t_actual_s": {"1s": 1.0}}   # a transcript replay's clock
    names = [m.name for m in compare_summaries(rec, rep, 0.1, 0.01)]
    assert names == ["rmse.1s"]
