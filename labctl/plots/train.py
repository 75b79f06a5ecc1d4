"""Training figures: accuracy and loss per epoch, pulses per array, final weight maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from labctl.plots.style import figure, run_is, save, seed_note, status_note, title_note


def _note(reader: Any) -> str:
    """Backend line for titles: the bank's preset (or stations) and array count."""
    b = reader.backend
    arrays = b.get("arrays") if b.get("backend") == "bank" else None
    if not arrays:
        return title_note(reader)
    first = next(iter(arrays.values()))
    where = (f"{first.get('preset')}, {seed_note(reader, arrays.values())}"
             if first.get("backend") == "sim"
             else f"station {first.get('station', '')}")
    note = f"{where} ({len(arrays)} array{'' if len(arrays) == 1 else 's'})"
    if reader.provenance.get("stand_in"):
        note += f" — stand-in data: {reader.provenance.get('dataset_label', '')}"
    return note + status_note(reader)


def _names(reader: Any) -> list[str]:
    if "arrays/names" not in reader:
        return []
    return [n.decode() if isinstance(n, bytes) else str(n) for n in reader.data("arrays/names")]


def _curves(reader: Any, out_dir: Path) -> Path:
    cfg = reader.config
    fig, ax = figure(2, width_in=5.0)
    if "train/test_accuracy" in reader:
        ep = reader.data("train/epoch")
        ax[0, 0].plot(ep, 100 * reader.data("train/test_accuracy"), "o-",
                      label=f"analog {cfg.get('algorithm')} (test)")
        ax[0, 0].plot(ep, 100 * reader.data("train/train_accuracy"), ".--", alpha=0.6,
                      label="analog (train, running)")
        ax[0, 1].plot(ep, reader.data("train/train_loss"), ".--", label="analog train")
        ax[0, 1].plot(ep, reader.data("train/test_loss"), "o-", label="analog test")
    if "fp/test_accuracy" in reader:
        ep = reader.data("fp/epoch")
        ax[0, 0].plot(ep, 100 * reader.data("fp/test_accuracy"), "s-", label="FP SGD (test)")
        ax[0, 1].plot(ep, reader.data("fp/test_loss"), "s-", label="FP test")
    ax[0, 0].set(xlabel="epoch", ylabel="accuracy (%)",
                 title=f"{cfg.get('dataset')} {'-'.join(map(str, cfg.get('sizes', [])))}\n"
                       f"{_note(reader)}")
    ax[0, 1].set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    for a in ax[0]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole
        if a.get_lines():
            a.legend(fontsize=8)
        else:   # stopped before its first epoch ended
            a.text(0.5, 0.5, f"no epoch finished\n({run_is(reader)})", ha="center",
                   va="center", transform=a.transAxes)
    return save(fig, out_dir, "train_curves")


def _pulses(reader: Any, out_dir: Path) -> Path | None:
    names = _names(reader)
    if "train/pulses" not in reader or not names:
        return None
    p = np.atleast_2d(reader.data("train/pulses"))
    ep = reader.data("train/epoch")
    fig, ax = figure(2, width_in=5.0)
    for k, n in enumerate(names):
        ax[0, 0].plot(ep, p[:, k], "o-", label=n)
    ax[0, 0].set(xlabel="epoch", ylabel="pulses sent (cumulative)", yscale="symlog",
                 title="Training pulses per array")
    ax[0, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    ax[0, 0].legend(fontsize=7)
    bars = ax[0, 1].bar(range(len(names)), p[-1])
    # every total written on its bar: an array that got no pulse has no bar to see
    ax[0, 1].bar_label(bars, labels=[f"{int(v):,}" for v in p[-1]], fontsize=7)
    ax[0, 1].set_xticks(range(len(names)), names, rotation=45, fontsize=7)
    ax[0, 1].set(ylabel="pulses", yscale="symlog",
                 title="Training total per array (calibration not included)")
    ax[0, 1].set_ylim(0, max(float(p[-1].max()), 1.0) * 10)
    return save(fig, out_dir, "train_pulses")


def _maps(reader: Any, out_dir: Path) -> list[Path]:
    paths = []
    k = 0
    while f"weights/L{k}/effective" in reader:
        roles = [r for r in ("W", "P", "A", "C") if f"weights/L{k}/{r}" in reader]
        panels = [(f"L{k} {r} (array weights)", reader.data(f"weights/L{k}/{r}")) for r in roles]
        panels.append((f"L{k} effective", reader.data(f"weights/L{k}/effective")))
        fig, ax = figure(len(panels), width_in=4.0)
        for a, (title, w) in zip(ax[0], panels, strict=True):
            lim = float(np.percentile(np.abs(w), 99)) or 1.0
            im = a.imshow(w.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                          interpolation="nearest")
            fig.colorbar(im, ax=a, label="weight (array units)")
            a.set(xlabel="input (array row)", ylabel="output (array column)", title=title)
        paths.append(save(fig, out_dir, f"train_weights_L{k}"))
        k += 1
    return paths


def render(reader: Any, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [_curves(reader, out_dir)]
    p = _pulses(reader, out_dir)
    if p is not None:
        paths.append(p)
    return paths + _maps(reader, out_dir)
