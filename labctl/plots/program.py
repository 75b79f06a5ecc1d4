"""Program-verify figures: level CDFs, pulses to converge, sigma against G, example traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.plots.style import figure, save, title_note
from labctl.protocols.program import analyse_program

#: devices.md section 1: programming-noise fits of seed 004, sigma = a*G + b (uS units)
REFERENCE_FITS = {0.02: (11.29e-3, 11.22e-3), 0.002: (1.0688e-3, 0.811e-3)}


def level_cdfs(ax: Any, targets: np.ndarray, g: np.ndarray, ok: np.ndarray) -> None:
    """One empirical CDF per level, conductance in uS, each rising from 0 (a level of one
    cell is a single step, not an invisible point)."""
    for lv in np.unique(targets):
        x = np.sort(g[(targets == lv) & ok]) * 1e6
        if x.size:
            ax.step(np.r_[x[0], x], np.arange(x.size + 1) / x.size, where="post", lw=0.9)
    ax.set(xlabel="G (uS)", ylabel="CDF")


def render_group(reader: Any, out_dir: Path, group: str, prefix: str) -> list[Path]:
    """The four program-verify figures of the results stored under ``group``."""
    paths: list[Path] = []
    tol = float(reader.config.get("verify", {}).get("tolerance", np.nan))
    if f"{group}/target_S" not in reader and f"{group}/rounds/trace_S" in reader:
        # stopped inside the first batch: no cell finished, but its verify rounds are on disk
        return [_traces(reader, out_dir, group, prefix, reader.data(f"{group}/jobs_S"), tol)]
    targets = reader.data(f"{group}/target_S")
    g = reader.data(f"{group}/g_S")
    ok = reader.data(f"{group}/converged").astype(bool)
    pulses = reader.data(f"{group}/pulses")
    # from the records, not the summary: an unfinished run (watch, a killed run) has none
    s = analyse_program(reader, group=group)
    note = title_note(reader)

    fig, ax = figure(width_in=7.0)
    level_cdfs(ax[0, 0], targets, g, ok)
    ax[0, 0].set_title(f"Programmed levels, {np.unique(targets).size} levels, tolerance "
                       f"{100 * tol:.3g} % ({ok.sum()}/{ok.size} converged)\n{note}")
    paths.append(save(fig, out_dir, f"{prefix}_cdf"))

    fig, ax = figure()
    # cells stopped at a far pulse cap (1,000) would squeeze the converged ones into one bar:
    # then they are counted in the legend instead of drawn
    hi_ok = int(pulses[ok].max(initial=0))
    capped = pulses[~ok]
    far = capped.size > 0 and ok.any() and capped.min() > 2 * max(hi_ok, 1)
    hi = hi_ok if far else int(pulses.max(initial=0))
    edges = np.arange(0, max(hi, 1) + 2) - 0.5
    bins: np.ndarray | int = 60 if edges.size > 80 else edges
    ax[0, 0].hist(pulses[ok], bins=bins, color="C0", label="converged")
    if far:
        ax[0, 0].plot([], [], " ", label=f"{capped.size} not converged, stopped at "
                      f"{int(capped.min())}-{int(capped.max())} pulses (not drawn)")
    elif capped.size:
        ax[0, 0].hist(capped, bins=bins, color="C3", label="not converged (cap)")
    mean = np.mean(pulses[ok]) if ok.any() else np.nan
    ax[0, 0].set(xlabel="pulses to converge", ylabel="cells",
                 title=f"Pulses to converge: mean {mean:.1f}\n{note}")
    ax[0, 0].legend()
    paths.append(save(fig, out_dir, f"{prefix}_pulses"))

    levels = np.asarray(s.get("levels", []), dtype=float)
    sigma = np.array([np.nan if v is None else v for v in s.get("sigma_S", [])], dtype=float)
    fit = s.get("sigma_fit_S", {})
    fig, ax = figure()
    ax[0, 0].plot(levels * 1e6, sigma * 1e6, "o", ms=4, label="measured")
    xs = np.linspace(0, max(levels.max(initial=0), 1e-6) * 1e6 * 1.05, 50)
    if fit.get("slope") is not None and np.isfinite(fit["slope"]):
        ax[0, 0].plot(xs, fit["slope"] * xs + fit["intercept_S"] * 1e6, "-",
                      label=f"fit {fit['slope']:.4g} G + {fit['intercept_S'] * 1e6:.3g} uS")
    for p, (a, b) in REFERENCE_FITS.items():
        if np.isclose(p, tol):
            ax[0, 0].plot(xs, a * xs + b, "--", color="gray", label="seed 004 fit")
    ax[0, 0].plot(xs, tol / np.sqrt(3) * xs, ":", color="k", label="p G / sqrt(3)")
    ax[0, 0].set(xlabel="G_target (uS)", ylabel="sigma (uS)", title=f"Programming noise\n{note}")
    ax[0, 0].legend(fontsize=8)
    paths.append(save(fig, out_dir, f"{prefix}_sigma"))

    if f"{group}/rounds/trace_S" in reader:
        paths.append(_traces(reader, out_dir, group, prefix, targets, tol))
    return paths


def _traces(reader: Any, out_dir: Path, group: str, prefix: str, targets: np.ndarray,
            tol: float) -> Path:
    """G after every round for the traced cells of the first batch, with acceptance bands."""
    idx = reader.data(f"{group}/rounds/index")
    tr = reader.data(f"{group}/rounds/trace_S")
    starts = np.flatnonzero(idx == 0)
    stop = starts[1] if starts.size > 1 else idx.size
    tr, idx = tr[:stop], idx[:stop]
    # a loop run inside the instrument (or the backend) records its start and end only:
    # each cell's end is drawn at the pulses it took, not at the next round
    ends_only = idx.size == 2 and idx[1] > 1 and f"{group}/pulses" in reader
    pulses = reader.data(f"{group}/pulses") if ends_only else None
    fig, ax = figure(width_in=7.0)
    for k in range(min(tr.shape[1], targets.size)):
        if np.all(np.isnan(tr[:, k])):        # a batch smaller than the traced width
            continue
        x = np.array([0, pulses[k]]) if pulses is not None and k < pulses.size else idx
        line = ax[0, 0].plot(x, tr[:, k] * 1e6, "o--" if ends_only else "-", lw=0.9,
                             ms=3)[0]
        t = targets[k]
        ax[0, 0].axhspan((1 - tol) * t * 1e6, (1 + tol) * t * 1e6, color=line.get_color(),
                         alpha=0.15)
    ax[0, 0].set(xlabel="pulse", ylabel="G (uS)",
                 title="Closed-loop traces (first batch; the loop stops inside the band)"
                 + ("\nstart and end only: the loop ran on the instrument" if ends_only
                    else ""))
    return save(fig, out_dir, f"{prefix}_traces")


def render(reader: Any, out_dir: Path) -> list[Path]:
    return render_group(reader, out_dir, "program", "program")
