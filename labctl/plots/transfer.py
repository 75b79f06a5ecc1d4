"""Weight-transfer figures: programmed vs target conductance, pulses, error map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl.plots.style import figure, save, title_note
from labctl.protocols.transfer import load_results


def render(reader, out_dir: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    cfg = reader.config
    res = load_results(reader, int(cfg["placement"]["loads"]))
    t, g = res["target_S"] * 1e6, res["g_S"] * 1e6
    if not t.size:   # stopped before its first batch ended: report says so, as for any run
        raise KeyError("programmed cells")
    conv = res["converged"].astype(bool)
    paths = []
    fig, ax = figure(2)
    a = ax[0, 0]
    a.plot(t[conv], g[conv], ".", ms=2, label="converged")
    if (~conv).any():
        a.plot(t[~conv], g[~conv], "x", ms=4, color="C3", label="not converged")
    lim = [min(t.min(), g.min()), max(t.max(), g.max())]
    a.plot(lim, lim, "k-", lw=0.6)
    a.set(xlabel="target G (uS)", ylabel="programmed G (uS)",
          title=f"Transfer: {t.size} cells, {cfg['mapping']['kind']}, "
          f"p = {100 * cfg['verify']['tolerance']:g} %\n{title_note(reader)}")
    a.legend()
    b = ax[0, 1]
    err = (g - t)[conv] * 1e3
    b.hist(err, bins=60)
    b.set(xlabel="programmed - target (nS), converged cells", ylabel="cells",
          title=f"rms {np.sqrt(np.mean(err ** 2)) if err.size else float('nan'):.1f} nS")
    paths.append(save(fig, out_dir, "transfer_conductance"))

    fig, ax = figure()
    p = res["pulses"]
    ax[0, 0].hist(p, bins=np.unique(np.geomspace(1, max(int(p.max()), 2) + 1, 40).astype(int)))
    ax[0, 0].set_xscale("log")
    ax[0, 0].set(xlabel="pulses per cell (all attempts)", ylabel="cells",
                 title=f"Pulses: mean {p.mean():.1f}, max {int(p.max())}")
    paths.append(save(fig, out_dir, "transfer_pulses"))

    shape = tuple(cfg["placement"]["array_shape"])
    grid = np.full(shape, np.nan)
    last = res["load"] == res["load"].max()
    grid[res["row"][last].astype(int), res["col"][last].astype(int)] = (g - t)[last] * 1e3
    fig, ax = figure()
    # a few cells off by far more than the rest (stopped at the pulse cap) would wash every
    # other cell out to the middle colour: then the scale ends at the 99th percentile
    err = np.abs(grid[np.isfinite(grid)])
    top = float(err.max()) if err.size and err.max() > 0 else 1.0
    p99 = float(np.percentile(err, 99)) if err.size else top
    v = p99 if 0 < p99 and top > 3 * p99 else top
    clipped = int(np.sum(err > v))
    im = ax[0, 0].imshow(grid, cmap="coolwarm", vmin=-v, vmax=v, aspect="auto")
    fig.colorbar(im, ax=ax[0, 0], label="programmed - target (nS)",
                 extend="both" if clipped else "neither")
    beyond = f"\n{clipped} cells beyond \u00b1{v:.4g} nS: the colour-bar ends" if clipped else ""
    ax[0, 0].set(xlabel="column", ylabel="row",
                 title=f"Programming error (last load){beyond}")
    paths.append(save(fig, out_dir, "transfer_error_map"))
    return paths
