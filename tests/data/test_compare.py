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
