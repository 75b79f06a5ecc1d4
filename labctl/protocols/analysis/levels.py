"""Statistics of programmed conductance levels: spread per level, its linear fit, overlaps.

The programming noise of seed 004 (Falcone et al., arXiv 2502.04524, Fig. 3e) is the
standard deviation of each level, fitted as a straight line in G_target; the overlap of
neighbouring levels (Fig. 4a, "9.6 % overlap between adjacent states gaussians") is the
overlapping coefficient of the two fitted Gaussians, the area under the smaller density.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True)
class LevelStats:
    """Per-level statistics; ``levels_S`` sorted ascending, NaN where a level has < 2 cells."""

    levels_S: np.ndarray
    count: np.ndarray
    mean_S: np.ndarray
    sigma_S: np.ndarray
    min_S: np.ndarray
    max_S: np.ndarray


def level_stats(targets_S: np.ndarray, g_S: np.ndarray, valid: np.ndarray | None = None
                ) -> LevelStats:
    """Group ``g_S`` by equal target; ``valid`` drops cells (e.g. not converged)."""
    t = np.asarray(targets_S, dtype=float)
    g = np.asarray(g_S, dtype=float)
    levels = np.unique(t)
    keep = np.isfinite(g) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(g))
    k = np.searchsorted(levels, t)
    n = len(levels)
    count = np.bincount(k[keep], minlength=n)
    s1 = np.bincount(k[keep], weights=g[keep], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, s1 / np.maximum(count, 1), np.nan)
        dev = g[keep] - mean[k[keep]]
        ss = np.bincount(k[keep], weights=dev * dev, minlength=n)
        sigma = np.where(count > 1, np.sqrt(ss / np.maximum(count - 1, 1)), np.nan)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    if keep.any():
        np.fmin.at(lo, k[keep], g[keep])
        np.fmax.at(hi, k[keep], g[keep])
    return LevelStats(levels, count, mean, sigma, lo, hi)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = slope * x + intercept`` over finite points; NaN with < 2 points."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if np.count_nonzero(ok) < 2 or np.ptp(x[ok]) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    return float(slope), float(intercept)


def gaussian_overlap(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """Overlapping coefficient of N(mu1, s1) and N(mu2, s2): the area under min(pdf1, pdf2)."""
    if not all(np.isfinite([mu1, s1, mu2, s2])) or s1 <= 0 or s2 <= 0:
        return float("nan")
    # the overlap is invariant under an affine map: standardise on the first Gaussian
    mu1, s1, mu2, s2 = 0.0, 1.0, (mu2 - mu1) / s1, s2 / s1
    # pdf1 = pdf2  <=>  a x^2 + b x + c = 0
    a = 0.5 / s2**2 - 0.5 / s1**2
    b = mu1 / s1**2 - mu2 / s2**2
    c = 0.5 * mu2**2 / s2**2 - 0.5 * mu1**2 / s1**2 + np.log(s2 / s1)
    scale = max(s1, s2)
    if abs(a) * scale**2 < 1e-12:
        roots = [] if abs(b) * scale < 1e-12 else [-c / b]
        if not roots:
            return 1.0
    else:
        disc = b * b - 4 * a * c
        roots = [] if disc < 0 else sorted(((-b - np.sqrt(disc)) / (2 * a),
                                            (-b + np.sqrt(disc)) / (2 * a)))
    edges = [-np.inf, *roots, np.inf]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if np.isinf(lo) and np.isinf(hi):
            probe = mu1
        elif np.isinf(lo):
            probe = hi - scale
        elif np.isinf(hi):
            probe = lo + scale
        else:
            probe = 0.5 * (lo + hi)
        p1, p2 = norm.logpdf(probe, mu1, s1), norm.logpdf(probe, mu2, s2)
        mu, s = (mu1, s1) if p1 <= p2 else (mu2, s2)
        total += norm.cdf(hi, mu, s) - norm.cdf(lo, mu, s)
    return float(total)


def adjacent_overlap(mean_S: np.ndarray, sigma_S: np.ndarray) -> np.ndarray:
    """Overlap of every neighbouring pair of levels (NaN where a sigma is unknown)."""
    m = np.asarray(mean_S, dtype=float)
    s = np.asarray(sigma_S, dtype=float)
    return np.array([gaussian_overlap(m[i], s[i], m[i + 1], s[i + 1])
                     for i in range(m.size - 1)], dtype=float)


def equal_sigma_overlap(spacing_S: float | np.ndarray, sigma_S: float | np.ndarray
                        ) -> np.ndarray:
    """Overlap of two Gaussians of equal sigma whose means differ by ``spacing_S``."""
    return 2.0 * norm.cdf(-np.abs(spacing_S) / (2.0 * np.asarray(sigma_S, dtype=float)))


def levels_separated(stats: LevelStats) -> bool:
    """True when every level's largest value lies below the next level's smallest."""
    ok = stats.count > 0
    hi, lo = stats.max_S[ok], stats.min_S[ok]
    return bool(np.all(hi[:-1] < lo[1:]))
