"""Forming figures: I-V curves, forming-voltage CDF, post-forming conductance heat map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl.plots.style import figure, save, title_note


def render(reader, out_dir: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    paths = []
    ramp = reader.data("forming/ramp_V")
    iv = reader.data("forming/iv_current_A")
    iv = iv[np.isfinite(iv).all(axis=1)]   # cells already formed were not ramped
    fig, ax = figure()
    for trace in iv[: min(len(iv), 64)]:
        ax[0, 0].semilogy(ramp, np.maximum(np.abs(trace), 1e-12), lw=0.7, alpha=0.7)
    if not len(iv):
        ax[0, 0].text(0.5, 0.5, "no cell was ramped:\nevery cell already read as formed",
                      ha="center", va="center", transform=ax[0, 0].transAxes)
    ax[0, 0].set(xlabel="V_1T1R (V)", ylabel="|I| (A)",
                 title=f"Forming I-V ({len(iv)} cells)\n{title_note(reader)}")
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
        ax[0, 0].text(0.5, 0.5, "no cell formed in this run", ha="center", va="center",
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
    before = ("forming/ramped" in reader
              and not reader.data("forming/ramped").astype(bool).all())
    ax[0, 0].set(xlabel="column", ylabel="row",
                 title="Conductance after the run (cells already formed were left alone)"
                 if before else "Post-forming conductance")
    paths.append(save(fig, out_dir, "forming_map"))
    return paths
