"""Conductance relaxation after programming: shift and spread against ln t, overlap of levels.

Seed 004 (Falcone et al., arXiv 2502.04524, Fig. 4 and Methods 4.6.2): after programming
the mean of every level drops and its spread grows, independent of G_target; both are
fitted as first-order polynomials in ln t (t in s after programming, t >= 1 s) and
projected to ten years.  devices.md section 1 gives the fits at 50 uS:
mean shift = -0.0890 ln t uS, sigma = 0.0420 ln t + 0.4118 uS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.protocols.analysis.levels import (
    adjacent_overlap,
    equal_sigma_overlap,
    fit_line,
    level_stats,
)

TEN_YEARS_S = 10 * 365.25 * 86400.0


def time_key(t_s: float) -> str:
    """The summary key of a time: '600', '3600', '0.5'."""
    t = float(t_s)
    return str(int(t)) if t.is_integer() else f"{t:g}"


def read_late(nominal_s: float, actual_s: float) -> bool:
    """Whether a read taken at ``actual_s`` after programming is noticeably off the
    ``nominal_s`` asked for (a station's chip may be read later than asked, e.g. after a
    resume): by more than 2 % and 50 ms, which moves ``ln t`` by more than ~0.02 (a
    station's usual few ms of switching do not; a 10 s read at 11.3 s does)."""
    return abs(actual_s - nominal_s) > 0.02 * nominal_s + 0.05


def came_late(nominal_s: float, actual_s: float) -> bool:
    """:func:`read_late`, and later (not earlier) than planned: a bench waits for every read,
    so only a clock that does not (a transcript replay's) reads early, and its ages mean
    nothing."""
    return actual_s > nominal_s and read_late(nominal_s, actual_s)


def effective_age(ages_s: np.ndarray) -> float:
    """One age for reads grouped under one planned time: their common age, else the
    geometric mean (a mean over the group of ``a ln t + b`` is ``a`` times the mean of
    ``ln t`` plus ``b``, so this is the age at which a ln t fit places the group's mean)."""
    a = np.asarray(ages_s, dtype=float)
    if np.all(a == a[0]):   # every read on time (the simulator's clock): exactly that age
        return float(a[0])
    return float(np.exp(np.mean(np.log(a)))) if np.all(a > 0) else float(np.mean(a))


def fit_times(times_s: np.ndarray, ages_s: np.ndarray) -> np.ndarray:
    """The times a ln t fit places each planned time at: its reads' real age when they came
    noticeably late (:func:`came_late`), else the planned time (a station's reads come a few
    ms late, which moves with the machine's load and is no measurement; the simulator's
    come on time)."""
    t, a = np.asarray(times_s, dtype=float), np.asarray(ages_s, dtype=float)
    return np.where([came_late(n, x) for n, x in zip(t, a, strict=True)], a, t)


def ages_too_close(times_s: np.ndarray, ages_s: np.ndarray) -> bool:
    """Whether late reads left too little spread of real ages for a ln t fit: a run resumed
    long after programming reads every remaining planned time at about the same age, and a
    line through those points (and a ten-year projection from it) would be noise."""
    t, a = np.asarray(times_s, dtype=float), np.asarray(ages_s, dtype=float)
    if not any(came_late(n, x) for n, x in zip(t, a, strict=True)):
        return False
    a = fit_times(t, a)
    a = a[a >= 1.0]   # what fit_vs_ln_t uses
    # a spread of ages within 10 % (and 0.5 s) is no decade to fit a line over
    return a.size < 2 or float(a.max() - a.min()) <= 0.1 * float(a.min()) + 0.5


def log_grid(duration_s: float, *, always: tuple[float, ...] = (600.0, 3600.0)) -> np.ndarray:
    """1-2-5 steps per decade from 1 s to ``duration_s``, plus ``always`` and the end point."""
    grid = [m * 10.0**e for e in range(0, 12) for m in (1.0, 2.0, 5.0)]
    pts = {t for t in grid if t <= duration_s} | {t for t in always if t <= duration_s}
    pts.add(float(duration_s))
    return np.array(sorted(pts), dtype=float)


@dataclass(frozen=True)
class RelaxationAtTimes:
    """Per grid time: mean shift from the programmed value, level spread and neighbour overlap.

    ``times_s`` are the planned read times the reads are grouped by, ``ages_s`` the real ages
    of those reads (:func:`effective_age`; equal to ``times_s`` unless reads came late),
    ``latest_s`` the age of each group's latest read (one late batch among many on time
    hardly moves ``ages_s``, and is still worth saying)."""

    times_s: np.ndarray
    ages_s: np.ndarray
    mean_shift_S: np.ndarray
    sigma_S: np.ndarray
    overlap: np.ndarray
    latest_s: np.ndarray


def relaxation_at_times(targets_S: np.ndarray, g_prog_S: np.ndarray, valid: np.ndarray,
                        read_job: np.ndarray, read_t_s: np.ndarray, read_g_S: np.ndarray,
                        read_t_actual_s: np.ndarray | None = None) -> RelaxationAtTimes:
    """Statistics of the reads ``read_g_S`` of job ``read_job`` at nominal time ``read_t_s``.

    Reads are grouped by their nominal (planned) time; ``read_t_actual_s``, when given, is
    how long after programming each read really came (a station reads late after a resume),
    and sets the group's age (old run files have no real ages: the nominal times are used).

    sigma is the pooled standard deviation of the levels (root-mean variance) when levels
    hold >= 2 cells, else NaN; the overlap is the mean over neighbouring levels of the
    overlapping coefficient of their Gaussians (NaN without a sigma).
    """
    times = np.unique(read_t_s)
    levels = np.unique(targets_S)
    multi = len(levels) < np.count_nonzero(valid)
    actual = read_t_s if read_t_actual_s is None else np.asarray(read_t_actual_s, dtype=float)
    shift, sigma, overlap = (np.full(times.size, np.nan) for _ in range(3))
    ages = times.astype(float)
    latest = times.astype(float)
    for i, t in enumerate(times):
        sel = read_t_s == t
        job = read_job[sel].astype(np.int64)
        ok = valid[job]
        group = actual[sel][ok] if ok.any() else actual[sel]
        ages[i] = effective_age(group)
        latest[i] = float(np.max(group))
        g = read_g_S[sel][ok]
        tg = targets_S[job][ok]
        d = g - g_prog_S[job][ok]
        if d.size == 0:
            continue
        shift[i] = d.mean()
        st = level_stats(tg, g)
        if multi and np.any(np.isfinite(st.sigma_S)):
            sigma[i] = float(np.sqrt(np.nanmean(st.sigma_S**2)))
            overlap[i] = float(np.nanmean(adjacent_overlap(st.mean_S, st.sigma_S))) \
                if st.levels_S.size > 1 else np.nan
        # one cell per level: no level has a spread, and the spread of the shifts across
        # levels is another quantity (it leaves out the programming error), so none is given
    return RelaxationAtTimes(times, ages, shift, sigma, overlap, latest)


def fit_vs_ln_t(times_s: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """``value = slope * ln t + intercept`` over t >= 1 s."""
    t = np.asarray(times_s, dtype=float)
    ok = t >= 1.0
    return fit_line(np.log(t[ok]), np.asarray(values, dtype=float)[ok])


def projection(levels_S: np.ndarray, shift_fit: tuple[float, float],
               sigma_fit: tuple[float, float], t_s: float = TEN_YEARS_S) -> dict[str, Any]:
    """Mean shift, spread and neighbour overlap extrapolated to ``t_s`` from the ln t fits
    (and ``sigma_note`` where the spread's fit gives no spread)."""
    lt = np.log(t_s)
    sh = shift_fit[0] * lt + shift_fit[1]
    sg = sigma_fit[0] * lt + sigma_fit[1]
    lv = np.unique(np.asarray(levels_S, dtype=float))
    ov = float(np.mean(equal_sigma_overlap(np.diff(lv), sg))) if lv.size > 1 and sg > 0 \
        else float("nan")
    # a spread that narrowed over the measured times (noise over a few reads) extrapolates
    # below zero: no standard deviation, so no projection of it
    return {"t_s": float(t_s), "mean_shift_S": float(sh),
            "sigma_S": float(sg) if sg >= 0 else float("nan"), "overlap": ov,
            **({"sigma_note": "the spread's ln t fit falls below zero before then"}
               if sg < 0 else {})}
