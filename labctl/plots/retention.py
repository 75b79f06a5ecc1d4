"""Retention figures: level distributions over time, shift and spread against ln t."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.plots.program import level_cdfs
from labctl.plots.style import figure, save, title_note
from labctl.protocols.analysis.relaxation import TEN_YEARS_S, came_late, read_late
from labctl.protocols.retention import analyse_retention


def _at(reader: Any, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets, G, real ages) of every converged job read at planned grid time ``t``."""
    targets = reader.data("retention/program/target_S")
    ok = reader.data("retention/program/converged").astype(bool)
    ts = reader.data("retention/t_s")
    job = reader.data("retention/job").astype(int)
    sel = (ts == t) & ok[job]
    ages = reader.data("retention/t_actual_s")[sel] if "retention/t_actual_s" in reader \
        else ts[sel]
    return targets[job[sel]], reader.data("retention/g_S")[sel], ages


def _num(t: float) -> str:
    return f"{t:.3g}" if t < 1000 else f"{t:.0f}"


def _late(t: float, ages: np.ndarray) -> str:
    """'', or ' (read at 25.9 s)' / ' (read at 4.02-25.9 s)' when reads planned at ``t`` came
    late (a resumed station run; several batches may have read one planned time at other
    ages)."""
    if ages.size == 0 or not came_late(t, float(ages.max())):
        return ""
    return f" (read at {_span(ages)})"


def _span(ages: np.ndarray) -> str:
    """'25.9 s', or '4.02-25.9 s' when the ages differ noticeably."""
    lo, hi = float(np.min(ages)), float(np.max(ages))
    return f"{_num(hi) if not read_late(lo, hi) else f'{_num(lo)}-{_num(hi)}'} s"


def _cdf_panel(a: Any, reader: Any, t: float) -> None:
    """The level CDFs of the reads at planned time ``t``, or why there are none."""
    tg, g, ages = _at(reader, t)
    level_cdfs(a, tg, g, np.ones(g.size, bool))
    title = f"{t:g} s after programming{_late(t, ages)}"
    if g.size == 0:
        a.text(0.5, 0.5, "no converged cell read at this time", ha="center", va="center",
               transform=a.transAxes)
        a.set_yticks([])
    elif np.unique(tg).size == g.size:   # a partial run, or --repeats 1: a step per cell
        title += "\n(one cell per level)"
    a.set_title(title)


def render(reader: Any, out_dir: Path) -> list[Path]:
    paths: list[Path] = []
    targets = reader.data("retention/program/target_S")
    g0 = reader.data("retention/program/g_S")
    ok = reader.data("retention/program/converged").astype(bool)
    if "retention/t_s" not in reader:   # stopped while programming the first batch
        fig, ax = figure()
        level_cdfs(ax[0, 0], targets, g0, ok)
        ax[0, 0].set_title(f"right after programming (no reads recorded)\n{title_note(reader)}")
        return [save(fig, out_dir, "retention_cdfs")]
    s = reader.summary
    if "mean_shift_S" not in s or ("t_actual_s" not in s and "retention/t_actual_s" in reader):
        # a run that stopped early has no summary, and an older one's fit used the planned
        # times even for late reads: analyse its data
        s = analyse_retention(reader)
    times = np.unique(reader.data("retention/t_s"))
    pick = [t for t in (600.0, 3600.0) if t in times] or [times[len(times) // 2]]
    if times[-1] not in pick:
        pick.append(float(times[-1]))

    fig, ax = figure(ncols=len(pick) + 1, width_in=4.2)
    level_cdfs(ax[0, 0], targets, g0, ok)
    ax[0, 0].set_title("right after programming")
    for a, t in zip(ax[0, 1:], pick, strict=True):
        _cdf_panel(a, reader, t)
    fig.suptitle(f"Relaxation of the programmed levels — {title_note(reader)}")
    paths.append(save(fig, out_dir, "retention_cdfs"))

    fig, ax = figure()
    for t, col in zip(pick, ("C0", "C1", "C2", "C3"), strict=False):
        if t == 0.0:
            continue
        job = reader.data("retention/job").astype(int)
        sel = (reader.data("retention/t_s") == t) & ok[job]
        d = (reader.data("retention/g_S")[sel] - g0[job[sel]]) * 1e6
        if d.size:
            ax[0, 0].hist(d, bins=40, histtype="step", color=col, density=True,
                          label=f"{t:g} s{_late(t, _at(reader, t)[2])}")
    ax[0, 0].set(xlabel="G(t) - G programmed (uS)", ylabel="density",
                 title="Relaxation error distribution over time")
    ax[0, 0].legend()
    paths.append(save(fig, out_dir, "retention_error_hist"))

    fig, ax = figure(ncols=2)
    fit = s.get("fit", {})
    proj = s.get("projection_10y", {})
    keys = list(s.get("mean_shift_S", {}))
    # late reads (a resumed station run) at their real ages, as fitted; others as planned
    planned = np.array([float(k) for k in keys])
    ages = np.array([float(s.get("t_actual_s", {}).get(k, float(k))) for k in keys])
    late = np.array([came_late(n, t) for n, t in zip(planned, ages, strict=True)], dtype=bool)
    tt = np.where(late, ages, planned)   # where the fit put them
    sh = np.array([np.nan if v is None else v for v in s["mean_shift_S"].values()]) * 1e6
    sg = np.array([np.nan if v is None else v for v in s["sigma_S"].values()]) * 1e6
    # a run that stopped early is drawn as measured: its fit over the reads it has, no
    # ten-year projection
    complete = reader.status == "complete"
    xs = np.geomspace(1.0, TEN_YEARS_S if complete else max(float(tt.max(initial=1.0)), 2.0), 60)
    for a, y, name, lab, why in (
            (ax[0, 0], sh, "mean_shift_S", "mean shift (uS)",
             "mean shift n/a: no converged cell read"),
            (ax[0, 1], sg, "sigma_S", "sigma (uS)", "sigma n/a: one cell per level")):
        a.set_xscale("log")
        if np.isfinite(y).any():
            a.plot(tt[~late], y[~late], "o", ms=4, color="C0", label="measured")
            if late.any():   # drawn at their real age; the legend names the planned times
                a.plot(tt[late], y[late], "o", ms=4, mfc="none", color="C0",
                       label=f"read late: planned {', '.join(f'{n:g}' for n in planned[late])}"
                       f" s,\nread at {_span(tt[late])}")
        else:   # nothing to draw: say why, with no empty legend entry and no made-up axis
            a.text(0.5, 0.5, why, ha="center", va="center", transform=a.transAxes)
            a.set_yticks([])
        f = fit.get(name, {})
        if f.get("slope_S") is not None and np.isfinite(f["slope_S"]):
            slope, icpt = f["slope_S"] * 1e6, f["intercept_S"] * 1e6
            a.plot(xs, slope * np.log(xs) + icpt, "-", color="C1",
                   label=f"{slope:.4f} ln t {'-' if icpt < 0 else '+'} {abs(icpt):.4f}")
        if complete and proj.get(name) is not None and np.isfinite(proj[name]):
            a.plot([proj["t_s"]], [proj[name] * 1e6], "s", color="C3", label="10 years")
        a.set(xlabel="t after programming (s)", ylabel=lab)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    ax[0, 1].set_xlim(ax[0, 0].get_xlim())   # both panels over the same times
    fig.suptitle("Shift and spread against ln t, projected to ten years" if complete else
                 f"Shift and spread against ln t — {title_note(reader)}")
    paths.append(save(fig, out_dir, "retention_fit"))
    return paths
