"""labctl replay's summary comparison: clock bookkeeping is shown, never compared."""

from __future__ import annotations

from labctl.data.compare import compare_summaries


def test_when_the_reads_were_taken_is_not_a_measurement_to_compare():
    rec = {"rmse": {"1s": 0.02}, "t_actual_s": {"1s": 3.83}}
    rep = {"rmse": {"1s": 0.02}, "t_actual_s": {"1s": 1.0}}   # a transcript replay's clock
    names = [m.name for m in compare_summaries(rec, rep, 0.1, 0.01)]
    assert names == ["rmse.1s"]


def test_a_sample_mean_is_judged_by_its_sample_not_by_a_fixed_tolerance():
    """Two dies of one process: 32 cells' pulse counts whose means differ by 20 % by chance
    are consistent; a shift far beyond the spread is not; a scalar that is no sample's
    mean keeps the relative tolerance."""
    import numpy as np

    from labctl.data.compare import judge_sample_statistics

    rng = np.random.default_rng(0)
    a = rng.geometric(1 / 12, 32)                        # pulse counts: spread ~ mean
    b = rng.geometric(1 / 12, 32)                        # another die: mean 21 % lower
    assert 0.2 < 1 - b.mean() / a.mean() < 0.22 and np.median(a) != np.median(b)
    c = a + 40                                           # another device altogether
    rec = {"pulses_mean": float(a.mean()), "pulses_median": float(np.median(a)), "x": 1.0}

    def judged(other):
        rep = {"pulses_mean": float(other.mean()), "pulses_median": float(np.median(other)),
               "x": 1.3}
        res = judge_sample_statistics(compare_summaries(rec, rep, 0.1, 0.01),
                                      {"p/pulses": a}, {"p/pulses": other}, 0.01)
        return {m.name: (m.kind, m.passed) for m in res}

    near = judged(b)
    assert near["pulses_mean"] == ("sample mean", True)
    assert near["pulses_median"] == ("sample median", True)
    assert near["x"] == ("scalar", False)                # no sample behind it: tolerance
    far = judged(c)
    assert far["pulses_mean"] == ("sample mean", False)
    assert far["pulses_median"] == ("sample median", False)
