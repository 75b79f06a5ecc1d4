"""Sparse-training figures: accuracy and sparsity over training, sparsity and weight maps at the
chosen epochs, the VAU error against sparsity, and the cost-model comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.plots.style import figure, save, seed_note, status_note

NETWORKS = (("sparse", "sparse (main update)"), ("sparse_cell", "sparse, cell-by-cell"),
            ("dense", "dense"))


def title_note(reader: Any) -> str:
    """Backend (preset and seeds of the bank's arrays, or the station), data provenance and,
    for a run that did not complete, its status."""
    b = reader.backend
    members = list(b.get("arrays", {}).values()) if b.get("backend") == "bank" else [b]
    first = members[0] if members else {}
    if first.get("backend") == "sim":
        note = f"{first.get('preset')}, {len(members)} arrays, {seed_note(reader, members)}"
    else:
        note = f"station {first.get('station', '')}"
    prov = reader.provenance
    label = prov.get("dataset_label", prov.get("dataset", ""))
    note += f" — {label}"
    if prov.get("stand_in"):
        note += " (stand-in data)"
    return note + status_note(reader)


def render(reader: Any, out_dir: Path) -> list[Path]:
    paths = [_training(reader, out_dir)]
    if "maps" in reader:
        paths.append(_maps(reader, out_dir))
    if "vau_error/sparsity" in reader:
        paths.append(_vau(reader, out_dir))
    if "cost/designs" in reader:
        paths.append(_cost(reader, out_dir))
    return paths


def _training(reader: Any, out_dir: Path) -> Path:
    fig, ax = figure(ncols=2)
    update = reader.config.get("update", "")
    # each network its own line style and marker: the two sparse runs hold the same
    # sparsity, and one solid line hid the other
    styles = iter([("-", "o"), ("--", "s"), (":", "^"), ("-.", "v")])
    for name, label in NETWORKS:
        if f"{name}/test_accuracy" not in reader:
            continue
        ls, mk = next(styles, ("-", "o"))
        ep = reader.data(f"{name}/epoch")
        acc = 100 * reader.data(f"{name}/test_accuracy")
        std = 100 * reader.data(f"{name}/test_accuracy_std")
        lab = label.replace("main update", update)
        ax[0, 0].errorbar(ep, acc, yerr=std, ls=ls, marker=mk, ms=3, capsize=2, label=lab)
        ax[0, 1].plot(ep, 100 * reader.data(f"{name}/sparsity"), ls=ls, marker=mk, ms=4,
                      mfc="none", label=lab)
    ax[0, 0].set(xlabel="epoch", ylabel="test accuracy (%)",
                 title=f"Accuracy over training\n{title_note(reader)}")
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].set(xlabel="epoch", ylabel="sparsity read back from the array (%)",
                 ylim=(-2, 100), title="Sparsity and prune/regrow fraction over training")
    ax[0, 1].legend(fontsize=8, loc="center left")
    if "sparse/topology" in reader:
        topo = reader.data("sparse/topology")
        n_train = reader.provenance.get("n_train")
        batch = int(reader.config.get("batch", 1))
        per_epoch = np.ceil(n_train / batch) if n_train else 1.0
        twin = ax[0, 1].twinx()
        twin.plot(topo[:, 0] / per_epoch, 100 * topo[:, 1], "k.", ms=3,
                  label="prune/regrow fraction (main)")
        twin.set(ylabel="prune/regrow fraction per update (%)")
        twin.legend(fontsize=8, loc="center right")
    return save(fig, out_dir, "sparse_train_accuracy")


def _maps(reader: Any, out_dir: Path) -> Path:
    epochs = sorted(reader.h5["maps"].keys())
    layers = sorted(reader.h5[f"maps/{epochs[0]}"].keys())
    fig, ax = figure(ncols=2 * len(layers), nrows=len(epochs), width_in=3.2, height_in=2.8)
    vmax = max(float(np.abs(reader.data(f"maps/{e}/{k}/weight")).max()) for e in epochs
               for k in layers) or 1.0
    for i, e in enumerate(epochs):
        for j, k in enumerate(layers):
            mask = reader.data(f"maps/{e}/{k}/mask")
            w = reader.data(f"maps/{e}/{k}/weight")
            a_m, a_w = ax[i, 2 * j], ax[i, 2 * j + 1]
            a_m.imshow(mask.T, cmap="Greys", aspect="auto", interpolation="nearest",
                       vmin=0, vmax=1)
            a_m.set(title=f"{k} mask, epoch {int(e.split('_')[1])} "
                    f"({100 * (1 - mask.mean()):.0f} % pruned, black = kept)",
                    xlabel="input (row)",
                    ylabel="output (column)")
            im = a_w.imshow(w.T, cmap="RdBu_r", aspect="auto", interpolation="nearest",
                            vmin=-vmax, vmax=vmax)
            a_w.set(title=f"{k} S*W, epoch {int(e.split('_')[1])}", xlabel="input (row)")
    fig.colorbar(im, ax=ax[:, -1], label="weight (G+ - G-) / g_unit")
    fig.suptitle(f"Sparsity and weight maps read from the arrays — {title_note(reader)}",
                 fontsize=9)
    return save(fig, out_dir, "sparse_train_maps")


def _vau(reader: Any, out_dir: Path) -> Path:
    sp = 100 * reader.data("vau_error/sparsity")
    runs = int(reader.data("vau_error/runs"))
    window = int(reader.data("vau_error/window_steps")) if "vau_error/window_steps" in reader \
        else 1
    fig, ax = figure(ncols=2)
    ax[0, 0].errorbar(sp, reader.data("vau_error/mse"), yerr=reader.data("vau_error/mse_std"),
                      marker="o", capsize=3, label="VAU vs exact")
    ax[0, 0].plot(sp, reader.data("vau_error/cell_mse"), marker="s",
                  label="cell-by-cell vs exact (rounding)")
    ax[0, 0].plot(sp, reader.data("vau_error/bias_mse"), marker="^",
                  label="VAU expected update vs exact (bias)")
    ax[0, 0].set(xlabel="sparsity (%)", ylabel="MSE (dw_min^2)",
                 title=f"VAU error against sparsity ({runs} runs, {window} steps each)\n"
                 f"{title_note(reader)}")
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].plot(sp, reader.data("vau_error/mse_active"), marker="o", label="active cells")
    ax[0, 1].plot(sp, reader.data("vau_error/mse_masked"), marker="x", label="masked cells")
    ax[0, 1].set(xlabel="sparsity (%)", ylabel="VAU MSE (dw_min^2)",
                 title="VAU error on active and masked cells")
    ax[0, 1].legend(fontsize=8)
    return save(fig, out_dir, "sparse_train_vau_error")


def _cost(reader: Any, out_dir: Path) -> Path:
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in reader.data("cost/designs")]
    fig, ax = figure(ncols=4, width_in=3.4)
    panels = (("inference_latency_s", "s", "inference latency / sample"),
              ("inference_energy_J", "J", "inference energy / sample"),
              ("train_latency_s", "s", "training latency (whole run)"),
              ("train_energy_J", "J", "training energy (whole run)"))
    for a, (key, unit, title) in zip(ax[0], panels, strict=True):
        vals = reader.data(f"cost/{key}")
        ok = np.isfinite(vals)
        colours = np.array([f"C{i}" for i in range(len(names))])
        bars = a.bar(np.array(names)[ok], vals[ok], color=colours[ok])
        if vals[ok].max() > 30 * vals[ok].min():
            a.set_yscale("log")
        ref = vals[names.index("index_free")]
        for bar, v in zip(bars, vals[ok], strict=True):
            a.annotate(f"x{v / ref:.2g}", (bar.get_x() + bar.get_width() / 2, v),
                       ha="center", va="bottom", fontsize=8)
        a.set(ylabel=unit, title=f"{title}\n(x = relative to index_free)")
        a.tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"Cost model ({reader.config.get('cost_model_file', '')}) — "
                 f"{title_note(reader)}", fontsize=9)
    return save(fig, out_dir, "sparse_train_cost")
