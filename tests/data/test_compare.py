"""labctl replay's comparison: what is compared, and what another realisation of the same
physics may move without being called inconsistent."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.data.compare import compare_summaries, flatten


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


def _die(rng, shift=0.0, devices=32, repeats=35):
    """A die's repeated measurements: a device-to-device spread of 1, read noise of 0.1."""
    level = rng.normal(size=devices) + shift
    return (np.repeat(level, repeats) + 0.1 * rng.normal(size=devices * repeats),
            np.repeat(np.arange(devices), repeats))


def test_values_of_one_device_count_once_in_a_distribution_test():
    """1,120 resets of 32 cells are 32 samples of the die, not 1,120: two dies of one process
    differ by far more than independent values would (plain KS p ~ 1e-10), and are
    consistent when the test counts devices; a shifted die is still told apart."""
    from labctl.data.compare import _ks_comparison

    rng = np.random.default_rng(1)
    (a, ia), (b, ib), (c, ic) = _die(rng), _die(rng), _die(rng, shift=2.0)
    plain = _ks_comparison("data:g", a, b, 0.01, 0.1)
    assert plain.kind == "distribution" and plain.p_value < 1e-6
    same = _ks_comparison("data:g", a, b, 0.01, 0.1, (ia, ib))
    assert same.kind == "distribution by device" and same.statistic == plain.statistic
    assert same.passed and same.p_value > 0.01
    moved = _ks_comparison("data:g", a, c, 0.01, 0.1, (ia, ic))
    assert not moved.passed and moved.p_value < 1e-4
    once = _ks_comparison("data:g", a[::35], b[::35], 0.01, 0.1, (ia[::35], ib[::35]))
    assert once.kind == "distribution"              # one value per device: the plain test


class _Reader(dict):
    def data(self, name):
        return self[name]


def test_device_ids_come_from_the_run_files_cell_indices():
    from labctl.data.compare import device_ids

    r = _Reader({"program/row": np.array([0, 0, 1, 0]), "program/col": np.array([0, 1, 0, 0]),
                 "program/g_reset_S": np.zeros(4), "retention/job": np.array([0, 1, 3, 3, 2]),
                 "retention/g_S": np.zeros(5), "retention/program/row": np.array([0, 0, 1, 0]),
                 "retention/program/col": np.array([0, 1, 0, 0]), "other/x": np.zeros(4)})
    ids = device_ids(r, "program/g_reset_S", 4)
    assert ids is not None and ids[0] == ids[3] and len(set(ids.tolist())) == 3
    reads = device_ids(r, "retention/g_S", 5)      # job -> the cell it programmed
    assert reads is not None and reads[0] == reads[2] == reads[3] != reads[1]
    assert device_ids(r, "other/x", 4) is None
    assert device_ids(r, "program/levels_S", 35) is None   # not one value per job


def test_many_tests_are_judged_together_at_the_family_wise_alpha():
    """Holm's method: of 200 KS tests of samples from one distribution, some fall below
    0.01 alone; none is a reason for inconsistency together.  A real change still is."""
    from labctl.data.compare import MetricComparison, _ks_comparison, holm

    rng = np.random.default_rng(3)
    res = [_ks_comparison(f"d{i}", rng.normal(size=64), rng.normal(size=64), 0.01, 0.1)
           for i in range(200)]
    assert sum(not m.passed for m in res) >= 1
    res.append(_ks_comparison("moved", rng.normal(size=64), rng.normal(1.5, size=64), 0.01,
                              0.1))
    res.append(MetricComparison("cells", "scalar", 32, 31, 0.03, None, True))  # tolerance
    res.append(MetricComparison("t", "timing", 1.0, 9.0, 8.0, None, True))
    out = {m.name: m for m in holm(res, 0.01)}
    assert [n for n, m in out.items() if not m.passed] == ["moved"]
    assert out["cells"].p_holm is None and out["cells"].passed
    assert out["t"].p_holm is None
    p = sorted(m.p_value for m in res if m.p_value is not None)
    assert out["moved"].p_holm == pytest.approx(min(1.0, 201 * p[0]))


def test_a_moved_fit_is_judged_by_the_spread_of_resampled_devices():
    """The symmetry point's population asymmetry moves by 0.035 (sd) between realisations of
    32 devices, 50 % and more of its value: the bootstrap's spread says so; a value
    far outside it is a change.  A list of per-device fits is judged by its mean."""
    from labctl.data.compare import judge_by_resampling

    rng = np.random.default_rng(4)
    rec = {"fit": {"asymmetry": -0.065, "per_device": [-0.07, -0.06] * 16}, "n": 32}

    def judged(asym):
        rep = {"fit": {"asymmetry": asym, "per_device": [asym] * 32}, "n": 32}
        first = compare_summaries(rec, rep, 0.1, 0.01)
        reps = [flatten({"fit": {"asymmetry": x, "per_device": [x] * 32}, "n": 32})
                for x in -0.065 + 0.035 * rng.normal(size=30)]
        return {m.name: m for m in judge_by_resampling(first, reps, reps, 0.01)}

    near = judged(0.0)
    assert near["fit.asymmetry"].kind == "resampled devices" and near["fit.asymmetry"].passed
    assert near["fit.per_device"].kind == "resampled devices" and near["fit.per_device"].passed
    assert near["n"].kind == "scalar"                     # passed its tolerance: untouched
    far = judged(0.4)
    assert not far["fit.asymmetry"].passed and not far["fit.per_device"].passed


class _Run:
    """A run file as compare_realisations reads it: a summary, no datasets."""

    def __init__(self, summary):
        self.summary = summary

    def datasets(self):
        return []


def test_a_recording_is_judged_as_one_more_realisation():
    """Accuracies of a training pipeline spread by ~1 point over seeds: a recording within
    that spread agrees, one 20 points off does not; a value every replay gives alike keeps
    the tolerance; a label must be one the replays give."""
    from labctl.data.compare import compare_realisations

    rng = np.random.default_rng(6)
    reps = [_Run({"accuracy": float(a), "ops": 100, "rule": "agad"})
            for a in 0.91 + 0.01 * rng.standard_normal(6)]

    def judged(acc, ops=100, rule="agad"):
        res = compare_realisations(_Run({"accuracy": acc, "ops": ops, "rule": rule}), reps)
        return {m.name: m for m in res}

    near = judged(0.895)
    assert near["accuracy"].kind == "realisations" and near["accuracy"].passed
    assert near["accuracy"].replayed["n"] == 6
    assert near["ops"].kind == "scalar" and near["ops"].passed and near["rule"].passed
    far = judged(0.70, ops=130, rule="sgd")
    assert not far["accuracy"].passed and not far["ops"].passed and not far["rule"].passed


def _judged(name, p):
    from labctl.data.compare import MetricComparison

    return MetricComparison(name, "distribution", None, None, 0.0, p, p >= 0.01)


def test_holm_adjusts_each_p_by_its_rank_and_keeps_them_in_order():
    """Holm, not Bonferroni: the k-th smallest p is scaled by N - k, never below the
    adjusted p before it, so a larger p never gets a smaller adjusted p."""
    from labctl.data.compare import holm

    ps = [0.3, 0.010, 0.001, 0.04, 0.011]
    out = {m.name: m.p_holm for m in holm([_judged(f"m{i}", p) for i, p in enumerate(ps)],
                                          0.01)}
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    running, expected = 0.0, {}
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - k) * ps[i]))
        expected[f"m{i}"] = running
    assert out == pytest.approx(expected, rel=1e-12)
    assert out["m1"] == pytest.approx(0.04) and out["m4"] == pytest.approx(0.04)  # the max
    adjusted = [out[f"m{i}"] for i in order]
    assert adjusted == sorted(adjusted)


def test_a_recording_is_a_prediction_of_one_more_draw_with_n_minus_1_dof():
    """The prediction interval's p: t = (x - mean) / (sd sqrt(1 + 1/n)) on n - 1 degrees of
    freedom, not the standard error of the replays' mean."""
    from scipy.stats import t as t_dist

    from labctl.data.compare import compare_realisations

    ys = [0.91, 0.905, 0.922, 0.899, 0.915]
    x = 0.89
    res = {m.name: m for m in compare_realisations(_Run({"accuracy": x}),
                                                   [_Run({"accuracy": y}) for y in ys])}
    m = res["accuracy"]
    n, mean, sd = len(ys), np.mean(ys), np.std(ys, ddof=1)
    t = (x - mean) / (sd * np.sqrt(1 + 1 / n))
    assert m.kind == "realisations" and m.statistic == pytest.approx(t, rel=1e-12)
    assert m.p_value == pytest.approx(2 * t_dist.sf(abs(t), n - 1), rel=1e-12)


def test_a_resampled_value_is_judged_by_both_runs_spreads():
    """z = |a - b| / hypot(sd of the recording's replicates, sd of the replay's): the
    replay's bootstrap spread counts as much as the recording's."""
    from scipy.stats import norm

    from labctl.data.compare import judge_by_resampling

    first = compare_summaries({"fit": {"asymmetry": -0.06}}, {"fit": {"asymmetry": -0.03}},
                              0.1, 0.01)
    assert not first[0].passed
    ra = [flatten({"fit": {"asymmetry": x}}) for x in (-0.07, -0.06, -0.05, -0.06)]
    rb = [flatten({"fit": {"asymmetry": x}}) for x in (-0.08, 0.0, -0.03, 0.02, -0.06)]
    (m,) = judge_by_resampling(first, ra, rb, 0.01)
    sd_a = np.std([-0.07, -0.06, -0.05, -0.06], ddof=1)
    sd_b = np.std([-0.08, 0.0, -0.03, 0.02, -0.06], ddof=1)
    z = 0.03 / np.hypot(sd_a, sd_b)
    assert m.kind == "resampled devices" and m.statistic == pytest.approx(z, rel=1e-9)
    assert m.p_value == pytest.approx(2 * norm.sf(z), rel=1e-9)


def test_a_metric_the_replay_lost_is_a_failure():
    """A value the recording has and the replay does not is an inconsistency, not a pass
    (only a metric new in the replay is shown without judging)."""
    res = {m.name: m for m in compare_summaries({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 3.0},
                                                0.1, 0.01)}
    assert res["b"].kind == "scalar" and not res["b"].passed
    assert res["c"].kind == "new" and res["c"].passed


def test_a_sample_median_is_judged_by_the_two_sample_ks_test():
    """A median is no mean: its sample is compared by KS (scipy's ks_2samp p), not t."""
    from scipy.stats import ks_2samp

    from labctl.data.compare import judge_sample_statistics

    a = np.array([1, 2, 2, 3, 3, 3, 4, 9, 15, 30], dtype=float)
    b = np.array([1, 1, 2, 2, 2, 2, 3, 5, 40, 60], dtype=float)
    rec, rep = {"pulses_median": float(np.median(a))}, {"pulses_median": float(np.median(b))}
    (m,) = judge_sample_statistics(compare_summaries(rec, rep, 0.1, 0.01), {"p/pulses": a},
                                   {"p/pulses": b}, 0.01)
    assert m.kind == "sample median"
    assert m.p_value == pytest.approx(ks_2samp(a, b).pvalue, rel=1e-12)
