"""Pruning-pipeline figures: training curves, weight/conductance histograms before and after
pruning, per-layer mask heat maps, and the four approaches side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from labctl.plots.style import figure, save, title_note

APPROACHES = ("software", "programmed", "random", "pruned")


def _layers(reader, leaf: str) -> list[str]:  # type: ignore[no-untyped-def]
    names = [n for n in reader.datasets() if n.startswith("prune/layers/") and n.endswith(leaf)]
    return sorted(names)


def curves(reader, out_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    fig, ax = figure(2, 1, width_in=4.6)
    a, b = ax[0, 0], ax[0, 1]
    if "prune/train/epoch" in reader:
        ep = reader.data("prune/train/epoch")
        a.plot(ep, 100 * reader.data("prune/train/test_accuracy"), "o-", ms=3,
               label="pruned random (software est.)")
        a.plot(ep, 100 * reader.data("prune/train/train_accuracy"), "--", label="pruned, train")
        flips = reader.data("prune/train/resets") + reader.data("prune/train/sets")
        b.plot(ep, flips, "o-", ms=3, label="mask flips")
        # a log axis only where the flips span decades (within one it shows a single tick)
        wide = flips.size and flips.max() > 20 * max(float(flips.min()), 1.0)
        b.set(xlabel="epoch", ylabel="edges flipped per epoch (2 cells each)",
              yscale="symlog" if wide else "linear", title="Mask flips (set + reset)")
        if not wide:
            b.set_ylim(bottom=0)
    if "software/train/epoch" in reader:
        a.plot(reader.data("software/train/epoch"),
               100 * reader.data("software/train/test_accuracy"), "s-", ms=3, label="software")
    for name, style in (("programmed", "--"), ("pruned", "-."), ("random", ":")):
        key = f"prune/result/accuracy_{name}"
        if key in reader:   # in the legend: a label on the line would sit on the curves
            a.axhline(100 * reader.data(key)[0], ls=style, c="gray", lw=1,
                      label=f"{name} on chip, final ({100 * reader.data(key)[0]:.1f} %)")
    for axis in (a, b):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole
    a.set(xlabel="epoch", ylabel="accuracy (%)",   # test, and the dashed train curve
          title=f"Training curves\n{title_note(reader)}")
    a.legend(fontsize=7)
    return save(fig, out_dir, "prune_curves")


def histograms(reader, out_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    fig, ax = figure(2, 1, width_in=4.6)
    g0 = reader.data("prune/chip/g_formed_S")
    g1 = reader.data("prune/chip/g_pruned_S") if "prune/chip/g_pruned_S" in reader else g0
    lo, hi = min(g0.min(), g1.min()), max(g0.max(), g1.max())
    bins = np.logspace(np.log10(max(lo, 1e-10)), np.log10(hi), 80)
    ax[0, 0].hist(g0, bins=bins, alpha=0.6, label="after forming")
    if "prune/chip/g_pruned_S" in reader:
        ax[0, 0].hist(reader.data("prune/chip/g_pruned_S"), bins=bins, alpha=0.6,
                      label="after pruning")
    ax[0, 0].set(xscale="log", xlabel="cell conductance (S)", ylabel="cells",
                 title=f"Chip conductances\n{title_note(reader)}")
    ax[0, 0].legend(fontsize=7)
    w0 = np.concatenate([reader.data(n).ravel() for n in _layers(reader, "/w_random")])
    wb = np.linspace(np.percentile(w0, 0.5), np.percentile(w0, 99.5), 100)
    ax[0, 1].hist(w0, bins=wb, alpha=0.6, label="random (formed)")
    pruned = _layers(reader, "/w_pruned")
    if pruned:
        w1 = np.concatenate([reader.data(n).ravel() for n in pruned])
        ax[0, 1].hist(w1, bins=wb, alpha=0.6, label="after pruning (read)")
    ax[0, 1].set(xlabel="weight (G+ - G-) / scale", ylabel="weights", yscale="log",
                 title="Weights before / after pruning")
    ax[0, 1].legend(fontsize=7)
    return save(fig, out_dir, "prune_weights")


def masks(reader, out_dir: Path) -> Path | None:  # type: ignore[no-untyped-def]
    names = _layers(reader, "/mask")
    if not names:
        return None
    fig, ax = figure(len(names), 1, width_in=3.2, height_in=3.4)
    for k, name in enumerate(names):
        m = reader.data(name)
        ax[0, k].imshow(m, cmap="Greys", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        layer = name.split("/")[2]
        ax[0, k].set(title=f"{layer}: kept {100 * m.mean():.1f} %", xlabel="output (column pair)",
                     ylabel="input (row)")
    fig.suptitle(f"Masks (black = kept)  {title_note(reader)}", fontsize=8)
    return save(fig, out_dir, "prune_masks")


def comparison(reader, out_dir: Path) -> Path | None:  # type: ignore[no-untyped-def]
    s = reader.summary
    if not s or "energy_J" not in s:
        return None
    fig, ax = figure(2, 1, width_in=4.2)
    acc = [100 * (s.get(f"accuracy_{a}") or 0) for a in APPROACHES]
    ax[0, 0].bar(APPROACHES, acc, color=["C0", "C1", "C7", "C2"])
    for i, v in enumerate(acc):
        ax[0, 0].text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    note, label = title_note(reader), str(s.get("dataset_label"))
    ax[0, 0].set(ylabel="test accuracy (%; software: on the host)", ylim=(0, 105),
                 title=note if label in note else f"{label}\n{note}")
    energy = [s["energy_J"].get(a) or 0 for a in APPROACHES]
    bars = ax[0, 1].bar(APPROACHES, energy, color=["C0", "C1", "C7", "C2"])
    ax[0, 1].bar_label(bars, labels=[_joules(e) for e in energy], fontsize=8)
    ax[0, 1].margins(y=0.15)
    ax[0, 1].set(yscale="log", ylabel="energy: programming + test-set inference (J)",
                 title="Energy (parameterised model)")
    return save(fig, out_dir, "prune_comparison")


def _joules(e: float) -> str:
    """An energy with an SI prefix (``0.99 mJ``)."""
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ"), (1e-12, "pJ")):
        if e >= scale:
            return f"{e / scale:.3g} {unit}"
    return f"{e:.3g} J"


def render(reader, out_dir: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    paths = [curves(reader, out_dir), histograms(reader, out_dir)]
    paths += [p for p in (masks(reader, out_dir), comparison(reader, out_dir)) if p is not None]
    return paths
