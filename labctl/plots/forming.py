"""Forming figures: I-V curves, forming-voltage CDF, post-forming conductance heat map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.plots.style import figure, save, title_note

#: I-V traces drawn: more are a blur, and a 1024x1024 die's would need 6.5 GB to load
SHOWN_TRACES = 64


def _first_traces(reader, name: str, k: int,  # type: ignore[no-untyped-def]
                  chunk: int = 8192) -> tuple[np.ndarray, int]:
    """The first ``k`` complete traces (cells not ramped by this run have none) and how many
    there are, read ``chunk`` rows at a time."""
    shown: list[np.ndarray] = []
    count, n = 0, reader.length(name)
    for start in range(0, n, chunk):
        rows = reader.rows(name, start, start + chunk)
        rows = rows[np.isfinite(rows).all(axis=1)]
        count += len(rows)
        if sum(len(s) for s in shown) < k:
            shown.append(rows[:k - sum(len(s) for s in shown)])
    ramp_len = reader.length("forming/ramp_V")
    return (np.concatenate(shown) if shown else np.zeros((0, ramp_len))), count


def render(reader, out_dir: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    paths = []
    ramp = reader.data("forming/ramp_V")
    iv, n_traces = _first_traces(reader, "forming/iv_current_A", SHOWN_TRACES)
    earlier = _count(reader, "forming/formed_by_interrupted_session")
    fig, ax = figure()
    for trace in iv:
        ax[0, 0].semilogy(ramp, np.maximum(np.abs(trace), 1e-12), lw=0.7, alpha=0.7)
    if not len(iv):
        why = ("the ramps were an interrupted session's (not recorded)" if earlier
               else "every cell already read as formed")
        ax[0, 0].text(0.5, 0.5, f"no ramp recorded:\n{why}",
                      ha="center", va="center", transform=ax[0, 0].transAxes)
    ax[0, 0].set(xlabel="V_1T1R (V)", ylabel="|I| (A)",
                 title=f"Forming I-V ({len(iv)} of {n_traces:,} cells)\n{title_note(reader)}")
    paths.append(save(fig, out_dir, "forming_iv"))

    v = reader.data("forming/v_form_V")
    vr = reader.data("forming/v_form_reram_V")
    fig, ax = figure()
    for x, lab in ((v, "1T1R"), (vr, "ReRAM only")):
        x = np.sort(x[np.isfinite(x)])
        if x.size:
            ax[0, 0].step(x, np.arange(1, x.size + 1) / x.size, where="post", label=lab)
    if np.isfinite(v).any():
        ax[0, 0].legend()
    else:
        ax[0, 0].text(0.5, 0.5, "no forming voltage recorded in this run" if earlier
                      else "no cell formed in this run", ha="center", va="center",
                      transform=ax[0, 0].transAxes)
    ax[0, 0].set(xlabel="forming voltage (V)", ylabel="CDF", title="Forming voltage")
    paths.append(save(fig, out_dir, "forming_cdf"))

    rows = reader.data("forming/row").astype(int)
    cols = reader.data("forming/col").astype(int)
    g = reader.data("forming/g_after_S")
    grid = np.full((rows.max() + 1, cols.max() + 1), np.nan)
    grid[rows, cols] = g * 1e6
    fig, ax = figure()
    im = ax[0, 0].imshow(grid, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax[0, 0], label="G after forming (uS)")
    ax[0, 0].set(xlabel="column", ylabel="row", title=_map_title(reader, g.size, earlier))
    paths.append(save(fig, out_dir, "forming_map"))
    return paths


def _count(reader: Any, name: str) -> int:
    return int(reader.data(name).astype(bool).sum()) if name in reader else 0


def _map_title(reader: Any, cells: int, earlier: int) -> str:
    """Says which cells were not formed by a recorded ramp of this run, if any."""
    ramped = _count(reader, "forming/ramped") if "forming/ramped" in reader else cells
    already = cells - ramped - earlier
    notes = []
    if already:
        notes.append(f"{already} already formed, left alone")
    if earlier:
        notes.append(f"{earlier} formed by an interrupted session, V_form not recorded")
    if not notes:
        return "Post-forming conductance"
    return f"Conductance after the run ({'; '.join(notes)})"
