"""Compare two run files of the same command: scalars by relative difference, distributions
by a two-sample Kolmogorov-Smirnov test (``labctl replay``).

Another realisation of the same physics (a replay with another seed, a station run replayed
on the simulator) differs by sampling noise, and the comparison must not call that a change:

* values measured on the same device more than once (a cell programmed 35 times, a cell
  read at 18 times) are not independent, so a distribution's KS test counts devices, not
  values;
* a summary value that moved by more than the tolerance is judged against its sampling
  spread where one is known: the sample it is the mean or median of, or the spread of the
  analysis re-run on devices drawn with replacement (a bootstrap the caller supplies);
* every p-value of a replay is one of many (50-75 tests), so the verdict holds their
  family-wise error at ``alpha`` (Holm's step-down method): a replay of the same physics is
  called inconsistent with probability at most ``alpha``, not once in three replays.

A result with no per-device structure (a pipeline's accuracy or pulse count) has no
sampling spread within one run; :func:`compare_realisations` takes it from several replays
with other seeds instead (``labctl replay --realisations N``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: summary keys that name things rather than measure them
_SKIP_KEYS = ("run_file", "status", "preset_file", "figures")


@dataclass(frozen=True)
class MetricComparison:
    name: str
    kind: str            # "scalar", "distribution", "label", "sample mean" | "sample median"
    #                      (a scalar judged by the sample it summarises), or NOT_JUDGED
    recorded: Any
    replayed: Any
    statistic: float     # relative difference, the KS statistic, or a bootstrap z
    p_value: float | None
    passed: bool
    p_holm: float | None = None   # p_value adjusted for the replay's other tests (Holm)

    def as_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "replayed": self.replayed,
                "statistic": self.statistic, "p_value": self.p_value, "p_holm": self.p_holm,
                "pass": self.passed, "kind": self.kind}


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary -> {"a.b": value}; short numeric lists become "a[i]" entries."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if prefix == "" and (key in _SKIP_KEYS + _SESSION_BOOKKEEPING_KEYS
                             or key.endswith(_CLOCK_BOOKKEEPING_SUFFIXES)):
            continue
        if key.endswith("_note"):   # words for the reader, not a measurement
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float)) or v is None for v in value):
            flat[name] = [np.nan if v is None else float(v) for v in value]
        elif isinstance(value, (list, tuple)):
            continue
        else:
            flat[name] = value
    return flat


#: wall-clock speeds: shown, never a reason for inconsistency (another machine, another load)
_TIMING_SUFFIXES = ("samples_per_s", "wall_s")

#: clock bookkeeping: when a scheduled read actually happened (the schedule itself is in the
#: config and ``t_s``).  A station's clock is the wall clock, which a transcript replay (its
#: waits do not sleep) or another machine's load moves; never compared
_CLOCK_BOOKKEEPING_SUFFIXES = ("t_actual_s",)

#: session bookkeeping: how a run's work was split among its sessions (forming: cells that
#: a killed session formed and its resume found formed).  A replay runs uninterrupted, so
#: it has none; the cells themselves are in ``formed`` and ``yield``.  Never compared
_SESSION_BOOKKEEPING_KEYS = ("formed_by_interrupted_session",)

#: name suffixes of metrics that carry a physical unit (compared purely relatively)
_UNIT_SUFFIXES = ("_S", "_A", "_V", "_s", "_J", "_ohm", "_Hz")


#: kinds of comparison shown beside the others but never a reason for inconsistency
NOT_JUDGED = ("timing", "realisation", "new")


def realisation_sensitive(name: str) -> bool:
    """Statistics another realisation of the same physics moves by more than a mean's
    tolerance: sample extremes (``pulses_max``, ``n_states_min``: heavy-tailed), spreads
    (``*_std_*``, ``*_d2d*``, and RMS errors ``*_rms*``: a standard deviation of n values
    has a relative standard error of 1/sqrt(2(n - 1)), 13 % at n = 32, 18 % for the 16
    cells of a small transfer) and line-fit intercepts (near zero by
    construction, so any relative difference is large).  A replay on hardware, or with
    another seed, is such a realisation; the values these come from are compared whole,
    as distributions."""
    base = name.split("[", 1)[0].rsplit(".", 1)[-1].replace("dw_min", "dwmin")  # a step
    parts = set(base.split("_"))
    return (base.endswith(("_max", "_min")) or base.startswith(("max_", "min_"))
            or bool(parts & {"std", "d2d", "intercept", "rms"}))


def relative_difference(a: float, b: float, floor: float = 1e-15) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale < floor else abs(a - b) / scale


def scalar_difference(name: str, a: float, b: float, atol: float) -> float:
    """Relative difference; for dimensionless metrics (fractions, overlaps, accuracies) an
    absolute difference below ``atol`` counts as none, so that two near-zero probabilities
    (1e-13 vs 1e-6) do not read as a 100 % change."""
    base = name.split("[", 1)[0].rsplit(".", 1)[-1]
    if not base.endswith(_UNIT_SUFFIXES) and abs(a - b) <= atol:
        return 0.0
    return relative_difference(a, b)


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ks_2samp as _ks

    res = _ks(a, b)
    return float(res.statistic), float(res.pvalue)


def compare_summaries(rec: dict[str, Any], rep: dict[str, Any], tolerance: float,
                      alpha: float, atol: float = 0.01) -> list[MetricComparison]:
    out: list[MetricComparison] = []
    fr, fp = flatten(rec), flatten(rep)
    for name in sorted(set(fr) | set(fp)):
        a, b = fr.get(name), fp.get(name)
        if a is None or b is None:
            if a is None and b is None:
                continue
            if name not in fr:   # a metric the recording's labctl version did not compute
                out.append(MetricComparison(name, "new", a, b, float("nan"), None, True))
                continue
            out.append(MetricComparison(name, "scalar", a, b, float("inf"), None, False))
        elif isinstance(a, list) and isinstance(b, list):
            out.extend(_compare_list(name, np.array(a), np.array(b), tolerance, alpha, atol))
        elif name.endswith(_TIMING_SUFFIXES):
            d = relative_difference(float(a), float(b))
            out.append(MetricComparison(name, "timing", a, b, d, None, True))
        elif isinstance(a, (bool, str)) or isinstance(b, (bool, str)):
            out.append(MetricComparison(name, "label", a, b, 0.0 if a == b else 1.0, None,
                                        a == b))
        else:
            fa, fb = float(a), float(b)
            if np.isnan(fa) and np.isnan(fb):   # undefined in both (one cell per level): skip
                continue
            d = (scalar_difference(name, fa, fb, atol) if np.isfinite(fa) and np.isfinite(fb)
                 else 0.0 if fa == fb else float("inf"))
            sensitive = realisation_sensitive(name)
            out.append(MetricComparison(name, "realisation" if sensitive else "scalar", a, b,
                                        d, None, sensitive or d <= tolerance))
    return out


def _compare_list(name: str, a: np.ndarray, b: np.ndarray, tolerance: float,
                  alpha: float, atol: float) -> list[MetricComparison]:
    if a.shape != b.shape:
        return [MetricComparison(name, "scalar", a.tolist(), b.tolist(), float("inf"), None,
                                 False)]
    if a.size >= 8:
        return [_ks_comparison(name, a, b, alpha, tolerance)]
    res = []
    sensitive = realisation_sensitive(name)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if np.isnan(x) and np.isnan(y):
            continue
        d = scalar_difference(name, float(x), float(y), atol) \
            if np.isfinite(x) and np.isfinite(y) else float("inf")
        res.append(MetricComparison(f"{name}[{i}]", "realisation" if sensitive else "scalar",
                                    float(x), float(y), d, None, sensitive or d <= tolerance))
    return res


def _ks_comparison(name: str, a: np.ndarray, b: np.ndarray, alpha: float, tolerance: float,
                   devices: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
                   ) -> MetricComparison:
    """KS test of two samples; ``devices`` (one id per value, or None) makes it count the
    devices the values came from instead of the values (see :func:`ks_by_devices`)."""
    da, db = devices
    fa, fb = np.isfinite(a), np.isfinite(b)
    a, b = a[fa], b[fb]
    da = None if da is None else da[fa]
    db = None if db is None else db[fb]
    if a.size == 0 or b.size == 0:
        ok = a.size == b.size
        return MetricComparison(name, "distribution", int(a.size), int(b.size),
                                0.0 if ok else 1.0, None, ok)
    if np.array_equal(np.sort(a), np.sort(b)):
        return MetricComparison(name, "distribution", _describe(a), _describe(b), 0.0, 1.0, True)
    if np.ptp(a) == 0 and np.ptp(b) == 0:   # one value repeated (a population fit given to
        d = relative_difference(float(a[0]), float(b[0]))   # every device): not a sample
        return MetricComparison(name, "scalar", float(a[0]), float(b[0]), d, None,
                                d <= tolerance)
    stat, p = ks_2samp(a, b)
    n_a = a.size if da is None else np.unique(da).size
    n_b = b.size if db is None else np.unique(db).size
    if (n_a, n_b) != (a.size, b.size):
        p = ks_by_devices(stat, n_a, n_b)
        return MetricComparison(name, "distribution by device", _describe(a), _describe(b),
                                stat, p, p >= alpha)
    return MetricComparison(name, "distribution", _describe(a), _describe(b), stat, p, p >= alpha)


def ks_by_devices(statistic: float, devices_a: int, devices_b: int) -> float:
    """p-value of a two-sample KS statistic whose samples hold repeated measurements of
    ``devices_a`` and ``devices_b`` devices: the KS distribution for that many independent
    values (scipy's asymptotic two-sample form, n = n_a n_b / (n_a + n_b)).  Conservative:
    values of one device are at most fully correlated, and then count as one value."""
    from scipy.stats import kstwo

    en = devices_a * devices_b / (devices_a + devices_b)
    return float(np.clip(kstwo.sf(statistic, max(int(round(en)), 1)), 0.0, 1.0))


def device_ids(reader: Any, name: str, size: int) -> np.ndarray | None:
    """The device each value of dataset ``name`` was measured on, where the run file says so
    (sibling ``row``/``col`` datasets of the same length; or a sibling ``job`` index into the
    ``program/row``/``program/col`` of its group), else None: values are then independent."""
    group = name.rsplit("/", 1)[0] if "/" in name else ""

    def sibling(n: str) -> np.ndarray | None:
        full = f"{group}/{n}" if group else n
        return reader.data(full) if full in reader else None

    row, col = sibling("row"), sibling("col")
    if row is not None and col is not None and row.size == col.size == size:
        return row.astype(np.int64) * (1 << 32) + col.astype(np.int64)
    job = sibling("job")
    prow, pcol = sibling("program/row"), sibling("program/col")
    if job is not None and job.size == size and prow is not None and pcol is not None \
            and job.size and 0 <= job.min() and job.max() < min(prow.size, pcol.size):
        j = job.astype(np.int64)
        return prow[j].astype(np.int64) * (1 << 32) + pcol[j].astype(np.int64)
    return None


def _describe(x: np.ndarray) -> dict[str, float]:
    return {"n": int(x.size), "mean": float(np.mean(x)), "std": float(np.std(x))}


def distribution_datasets(reader: Any) -> dict[str, np.ndarray]:
    """The 1-D measured distributions of a run: float datasets with units, >= 8 values."""
    out = {}
    for name in reader.datasets():
        if reader.units(name) == "" or name.startswith("transcript/") \
                or name.endswith(_TIMING_SUFFIXES + _CLOCK_BOOKKEEPING_SUFFIXES):
            continue
        arr = reader.data(name)
        if arr.ndim == 1 and arr.size >= 8 and arr.dtype.kind == "f":
            out[name] = arr
    return out


def sample_datasets(reader: Any) -> dict[str, np.ndarray]:
    """Every 1-D numeric dataset of per-cell (per-item) values, counts included: what a
    summary mean or median may have been computed from."""
    out = {}
    for name in reader.datasets():
        if name.startswith(("transcript/", "checkpoint_")) or reader.h5[name].ndim != 1:
            continue                                   # (2-D traces are never read)
        arr = reader.data(name)
        if arr.size >= 2 and arr.dtype.kind in "fiu":
            out[name] = arr
    return out


def _statistic_of(value: float, samples: dict[str, np.ndarray]) -> tuple[str, str]:
    """(dataset, 'mean' | 'median') whose mean or median ``value`` is ('', '' for none)."""
    for name, arr in samples.items():
        for how, f in (("mean", np.mean), ("median", np.median)):
            if np.isclose(float(f(arr)), value, rtol=1e-9, atol=0.0):
                return name, how
    return "", ""


def judge_sample_statistics(res: list[MetricComparison], rec: dict[str, np.ndarray],
                            rep: dict[str, np.ndarray], alpha: float) -> list[MetricComparison]:
    """A scalar that is the mean (median) of a recorded sample in both runs, and that moved
    by more than the tolerance, is judged as the statistic of a sample: consistent when
    Welch's t-test (the two-sample KS test) does not tell the samples apart.  Another
    realisation (a replay with another seed, or of a station run on the simulator) moves
    the mean of 32 cells' pulse counts by 10-25 % with nothing changed; a replay on another
    preset moves it far beyond what the samples' spread allows."""
    from scipy.stats import ttest_ind

    out = []
    for m in res:
        if m.kind != "scalar" or m.passed or not all(
                isinstance(v, (int, float)) and np.isfinite(v) for v in (m.recorded,
                                                                         m.replayed)):
            out.append(m)
            continue
        name, how = _statistic_of(float(m.recorded), rec)
        if not name or name not in rep or _statistic_of(float(m.replayed),
                                                        {name: rep[name]})[1] != how:
            out.append(m)
            continue
        a, b = rec[name].astype(float), rep[name].astype(float)
        if how == "mean":
            p = float(ttest_ind(a, b, equal_var=False).pvalue)
        else:
            p = ks_2samp(a, b)[1]
        p = 1.0 if not np.isfinite(p) else p     # two constant samples: nothing to tell
        out.append(MetricComparison(m.name, f"sample {how}", m.recorded, m.replayed,
                                    m.statistic, p, p >= alpha))
    return out


#: a run's analysis re-run on devices drawn with replacement: its summaries, one per
#: replicate ([] when the command has no such analysis)
Resampler = Callable[[Any], list[dict[str, Any]]]


def judge_by_resampling(res: list[MetricComparison], rec: list[dict[str, Any]],
                        rep: list[dict[str, Any]], alpha: float) -> list[MetricComparison]:
    """A summary value that failed its first test (the tolerance, or for a list of per-device
    values the KS test) is judged against its sampling spread: z = |a - b| / sqrt(se_a**2 +
    se_b**2), each se the standard deviation of the value over that run's bootstrap
    replicates (of a list, of its mean: per-device fits share the array's exponents, so
    their values are not independent samples).  ``rec``/``rep``: flattened replicates."""
    from scipy.stats import norm

    out = []
    for m in res:
        if m.passed or m.kind not in ("scalar", "distribution"):
            out.append(m)
            continue
        a, b = _replicates(rec, m.name), _replicates(rep, m.name)
        va, vb = _value(m.recorded), _value(m.replayed)
        if a is None or b is None or va is None or vb is None:
            out.append(m)
            continue
        se = float(np.hypot(np.std(a, ddof=1), np.std(b, ddof=1)))
        z = abs(va - vb) / se if se > 0 else (0.0 if va == vb else float("inf"))
        p = float(2 * norm.sf(z))
        out.append(MetricComparison(m.name, "resampled devices", m.recorded, m.replayed, z, p,
                                    p >= alpha))
    return out


def _value(v: Any) -> float | None:
    """A scalar's value or a summary list's mean (``_describe`` dict or the list itself)."""
    if isinstance(v, dict):
        v = v.get("mean")
    if isinstance(v, (list, tuple)):
        x = np.asarray(v, dtype=float)
        v = float(np.nanmean(x)) if np.isfinite(x).any() else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        return None
    return float(v)


def _replicates(reps: list[dict[str, Any]], name: str) -> np.ndarray | None:
    """The values of metric ``name`` (``a.b``, or ``a.b[i]``: an entry of a short list)
    over the replicates; None for fewer than 3."""
    base, _, index = name.partition("[")

    def pick(r: dict[str, Any]) -> Any:
        v = r.get(base)
        if index and isinstance(v, (list, tuple)):
            i = int(index.rstrip("]"))
            return v[i] if i < len(v) else None
        return v

    vals = [_value(pick(r)) for r in reps]
    x = np.array([v for v in vals if v is not None], dtype=float)
    return x if x.size >= 3 else None


def holm(res: list[MetricComparison], alpha: float) -> list[MetricComparison]:
    """Holm's step-down adjustment over every judged test with a p-value: each gets
    ``p_holm`` and passes when it is >= ``alpha`` (family-wise error <= alpha)."""
    tests = [i for i, m in enumerate(res) if m.p_value is not None and m.kind not in NOT_JUDGED]
    order = sorted(tests, key=lambda i: float(res[i].p_value))  # type: ignore[arg-type]
    out = list(res)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * float(res[i].p_value or 0.0)))
        out[i] = replace(res[i], p_holm=running, passed=running >= alpha)
    return out


def compare_runs(recorded: Any, replayed: Any, *, tolerance: float = 0.1,
                 alpha: float = 0.01, resample: Resampler | None = None
                 ) -> list[MetricComparison]:
    """Every summary metric and every 1-D measured distribution of two runs.

    ``resample`` (a run -> bootstrap replicates of its summary) is called, on both runs,
    only when a summary value failed its first test."""
    res = compare_summaries(recorded.summary, replayed.summary, tolerance, alpha)
    if any(m.kind == "scalar" and not m.passed for m in res):   # read samples only then
        res = judge_sample_statistics(res, sample_datasets(recorded),
                                      sample_datasets(replayed), alpha)
    if resample is not None and any(not m.passed and m.kind in ("scalar", "distribution")
                                    for m in res):
        res = judge_by_resampling(res, [flatten(r) for r in resample(recorded)],
                                  [flatten(r) for r in resample(replayed)], alpha)
    da, db = distribution_datasets(recorded), distribution_datasets(replayed)
    for name in sorted(set(da) & set(db)):
        res.append(_ks_comparison(f"data:{name}", da[name], db[name], alpha, tolerance,
                                  (device_ids(recorded, name, da[name].size),
                                   device_ids(replayed, name, db[name].size))))
    return holm(res, alpha)


def compare_realisations(recorded: Any, replays: list[Any], *, tolerance: float = 0.1,
                         alpha: float = 0.01) -> list[MetricComparison]:
    """The recorded run as one more realisation among ``replays`` (runs of the same command
    with other seeds): each numeric summary value (a list: its mean), and the mean and the
    standard deviation of each measured distribution, by a t prediction test against the N
    replayed values, t = (x - mean) / (sd sqrt(1 + 1/N)) with N - 1 degrees of freedom;
    extremes and spreads included (their spread is now measured).  Distributions are judged
    run by run, not value by value: the values of one run may share what the run drew (a
    pipeline's programmed weights all come from its one trained network), and the replays
    measure how much that moves.  A value every replay gives alike keeps the relative
    tolerance.  Holm's method over all of it."""
    fr = flatten(recorded.summary)
    fps = [flatten(r.summary) for r in replays]
    out: list[MetricComparison] = []
    for name in sorted(fr):
        a = fr[name]
        vals = [f.get(name) for f in fps]
        if name.endswith(_TIMING_SUFFIXES):
            out.append(MetricComparison(name, "timing", a, _value(vals[0]), 0.0, None, True))
        elif isinstance(a, (bool, str)) or a is None:
            out.append(MetricComparison(name, "label", a, vals[0], 0.0 if a in vals else 1.0,
                                        None, a in vals))
        else:
            out.append(_prediction(name, _value(a), [_value(v) for v in vals], tolerance,
                                   alpha))
    da = distribution_datasets(recorded)
    dbs = [distribution_datasets(r) for r in replays]
    for name in sorted(da):
        if not all(name in db for db in dbs):
            continue
        for stat, f in (("mean", np.mean), ("std", np.std)):
            x = da[name][np.isfinite(da[name])]
            ys = [db[name][np.isfinite(db[name])] for db in dbs]
            out.append(_prediction(f"data:{name} {stat}", float(f(x)) if x.size else None,
                                   [float(f(y)) if y.size else None for y in ys],
                                   tolerance, alpha))
    return holm(out, alpha)


def _prediction(name: str, x: float | None, values: list[float | None], tolerance: float,
                alpha: float) -> MetricComparison:
    """``x`` as one more draw among ``values`` (t prediction test; see
    :func:`compare_realisations`)."""
    from scipy.stats import t as t_dist

    ys = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x is None or ys.size == 0:
        ok = x is None and ys.size == 0
        return MetricComparison(name, "scalar", x, None, 0.0 if ok else float("inf"), None, ok)
    shown = {"n": int(ys.size), "mean": float(ys.mean()),
             "std": float(ys.std(ddof=1)) if ys.size > 1 else 0.0}
    if ys.size < 2 or np.ptp(ys) == 0:          # alike in every replay: a deterministic value
        d = scalar_difference(name, x, float(ys.mean()), 0.01)
        return MetricComparison(name, "scalar", x, shown, d, None, d <= tolerance)
    n = ys.size
    t = (x - ys.mean()) / (ys.std(ddof=1) * np.sqrt(1 + 1 / n))
    p = float(2 * t_dist.sf(abs(t), n - 1))
    return MetricComparison(name, "realisations", x, shown, float(t), p, p >= alpha)
