"""Open-loop identical-pulse response: symmetry-point figures of merit per device.

Definitions of seed 004 (Falcone et al., arXiv 2502.04524, section 2.3.1, eqs. 1-3;
devices.md section 1): G_max and G_min are the extremes of the full conductance swings
(the batches of up and down pulses); at the symmetry point, reached by alternating single
up and down pulses, G_sp is the mean conductance, dG_sp the mean single-pulse update and
sigma(dG_sp) its standard deviation (cycle-to-cycle).  Then

    N_states = (G_max - G_min) / dG_sp
    SP_skew  = (G_max - G_sp) / (G_max - G_min)
    NSR      = sigma(dG_sp) / dG_sp

A single-pulse update is the read after the pulse minus the read before, signed so that
an up pulse's increase and a down pulse's decrease both count positive; "extremes" are
taken on a running median of the trace so a single noisy read does not set them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """Pulse signs (+1 up, -1 down) and whether each pulse belongs to the alternating phase."""

    sign: np.ndarray
    alternating: np.ndarray

    @property
    def n_pulses(self) -> int:
        return int(self.sign.size)


def open_loop_schedule(batch_pulses: int, cycles: int, alternating_pulses: int) -> Schedule:
    """``cycles`` x (``batch_pulses`` up, ``batch_pulses`` down), then 1-up-1-down pulses."""
    batches = np.concatenate([np.ones(batch_pulses), -np.ones(batch_pulses)] * cycles) \
        if cycles and batch_pulses else np.zeros(0)
    alt = np.where(np.arange(alternating_pulses) % 2 == 0, 1.0, -1.0)
    sign = np.concatenate([batches, alt]).astype(np.int8)
    alternating = np.concatenate([np.zeros(batches.size, bool), np.ones(alt.size, bool)])
    return Schedule(sign, alternating)


@dataclass(frozen=True)
class FiguresOfMerit:
    """Per-device arrays (one value per device)."""

    g_max_S: np.ndarray
    g_min_S: np.ndarray
    g_sp_S: np.ndarray
    dg_sp_S: np.ndarray
    sigma_dg_sp_S: np.ndarray
    n_states: np.ndarray
    sp_skew: np.ndarray
    nsr: np.ndarray


def signed_steps(trace_S: np.ndarray, sign: np.ndarray, pulses: np.ndarray) -> np.ndarray:
    """(pulses, n_devices) update of each of the pulses ``pulses`` (indices), signed by
    the pulse direction.

    ``trace_S`` is (n_pulses + 1, n_devices): the read before the first pulse, then one
    read after every pulse.
    """
    return (trace_S[pulses + 1] - trace_S[pulses]) * sign[pulses, None]


# Devillard's 19-comparator median-of-9 network ("Fast median search", 1998)
_MEDIAN_OF_9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
                (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def running_median(x: np.ndarray, size: int, *, chunk: int = 32) -> np.ndarray:
    """Running median of ``size`` samples down each column, edges repeated.

    The same values as ``scipy.ndimage.median_filter(x, size=(size, 1), mode="nearest")``
    (the upper median for an even size), from a comparator network run on ``chunk``
    columns at a time so the working set stays in cache: ~8x faster on a calibration's
    6,000 columns.
    """
    n = x.shape[0]
    half = size // 2
    net = _MEDIAN_OF_9 if size == 9 else tuple(      # odd-even transposition sort
        (i, i + 1) for r in range(size) for i in range(r % 2, size - 1, 2))
    out = np.empty_like(x)
    for c0 in range(0, x.shape[1], chunk):
        xc = x[:, c0:c0 + chunk]
        pad = np.concatenate([np.repeat(xc[:1], half, axis=0), xc,
                              np.repeat(xc[-1:], size - 1 - half, axis=0)])
        v = [pad[i:i + n] for i in range(size)]
        for i, j in net:
            v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
        out[:, c0:c0 + chunk] = v[half]
    return out


def figures_of_merit(trace_S: np.ndarray, schedule: Schedule, *, settle: float = 0.5,
                     smooth: int = 9) -> FiguresOfMerit:
    """The figures of merit of every device (columns of ``trace_S``).

    ``settle``: fraction of the alternating phase skipped before the symmetry point is
    taken as reached; ``smooth``: running-median window (pulses) for the swing extremes.
    """
    trace = np.asarray(trace_S, dtype=float)
    after = trace[1:]
    swing = after[~schedule.alternating]
    if swing.shape[0] == 0:
        swing = after
    sm = running_median(swing, min(smooth, swing.shape[0]))
    g_max = sm.max(axis=0)
    g_min = sm.min(axis=0)
    alt_idx = np.flatnonzero(schedule.alternating)
    k0 = int(np.floor(settle * alt_idx.size))
    sp_idx = alt_idx[k0:]
    if sp_idx.size < 2:
        nan = np.full(trace.shape[1], np.nan)
        return FiguresOfMerit(g_max, g_min, nan, nan, nan, nan, nan, nan)
    steps = signed_steps(trace, schedule.sign, sp_idx)
    g_sp = after[sp_idx].mean(axis=0)
    dg = steps.mean(axis=0)
    sdg = steps.std(axis=0, ddof=1)
    window = g_max - g_min
    with np.errstate(divide="ignore", invalid="ignore"):
        n_states = np.where(dg > 0, window / dg, np.nan)
        skew = np.where(window > 0, (g_max - g_sp) / window, np.nan)
        nsr = np.where(dg > 0, sdg / dg, np.nan)
    return FiguresOfMerit(g_max, g_min, g_sp, dg, sdg, n_states, skew, nsr)
