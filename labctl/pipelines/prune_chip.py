"""Chip-side stages of the pruning pipeline: read the random weights, apply the mask,
program the software baseline, and read back what the chip holds.

Each function updates the pipeline state in place and returns the datasets to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from labctl.array import Array, Cells
from labctl.pipelines import edge_popup as ep
from labctl.pipelines.chip_layers import ChipLayout, read_pairs
from labctl.pipelines.nn.network import MatMul, Network

Records = dict[str, tuple[Any, str]]


def _one(x: float) -> np.ndarray:
    return np.array([x])


def _read_tiles(array: Array, layout: ChipLayout) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: read_pairs(array, tile) for name, tile in layout.tiles.items()}


def _flat(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.concatenate([np.stack(p, axis=-1).ravel() for p in pairs.values()])


def read_random_weights(array: Array, layout: ChipLayout, net: Network, state: dict[str, Any],
                        rng: np.random.Generator) -> Records:
    """Weights = (G+ - G-) / scale with scale = mean|dG| / sigma_init (training.md section 4);
    the residual of a pruned edge is drawn from reset-and-read spare cells."""
    spare = layout.spare_cells()
    g_res = None
    if spare is not None:
        array.mask(spare, False)
        g_res = np.asarray(array.read(spare), dtype=float)
    pairs = _read_tiles(array, layout)
    state["w"], state["residual"], state["scale"], state["row_g_formed"] = {}, {}, {}, {}
    write: Records = {}
    for name, (gp, gm) in pairs.items():
        dg = gp - gm
        scale = float(np.mean(np.abs(dg)) / net.weights[name].init_std)
        res = np.zeros_like(dg)
        if g_res is not None:
            ra, rb = rng.choice(g_res, size=(2, *dg.shape))
            res = ra - rb
        state["w"][name] = (dg / scale).astype(np.float32)
        state["residual"][name] = (res / scale).astype(np.float32)
        state["scale"][name] = scale
        state["row_g_formed"][name] = gp.sum(axis=1) + gm.sum(axis=1)
        write[f"prune/layers/{name}/w_random"] = (state["w"][name], "")
    g_all = _flat(pairs)
    g_lo = 2.0 * (float(np.median(g_res)) if g_res is not None else array.info.g_min_S)
    formed = g_all[g_all > 5 * g_lo]
    state["g_lo_S"] = g_lo
    state["g_hi_S"] = float(np.percentile(formed, 10)) if formed.size else array.info.g_max_S
    write["prune/chip/g_formed_S"] = (g_all, "S")
    if g_res is not None:
        write["prune/chip/g_residual_S"] = (g_res, "S")
        write["prune/ops/calibration/resets"] = (_one(g_res.size), "")
    return write


def init_scores_state(net: Network, state: dict[str, Any], rng: np.random.Generator,
                      keep: float) -> None:
    """Scores, momentum, masks and the hysteresis reference before the first epoch; the first
    top-k pruning of the all-formed chip counts as resets."""
    state["scores"] = {n: ep.init_scores(state["w"][n].shape, rng) for n in net.weights}
    state["buf"] = {n: np.zeros_like(s) for n, s in state["scores"].items()}
    state["mask"] = {n: ep.topk_mask(s, keep) for n, s in state["scores"].items()}
    state["ref"] = {n: s.copy() for n, s in state["scores"].items()}
    state["net"] = net.init_state()
    state["train_acc"] = 0.0
    pruned = sum(int((~m).sum()) for m in state["mask"].values())
    state["flips"] = {"resets": pruned, "sets": 0}


def apply_mask(array: Array, layout: ChipLayout, state: dict[str, Any]) -> Records:
    """RESET both cells of every pruned edge, then read what the chip holds."""
    n_pruned = 0
    for name, tile in layout.tiles.items():
        pruned = ~np.asarray(state["mask"][name], dtype=bool)
        n_pruned += int(pruned.sum())
        if pruned.any():
            array.mask(tile.pair_cells(pruned), False)
    pairs = _read_tiles(array, layout)
    state["row_g_pruned"] = {n: gp.sum(axis=1) + gm.sum(axis=1) for n, (gp, gm) in pairs.items()}
    write: Records = {"prune/chip/g_pruned_S": (_flat(pairs), "S"),
                      "prune/ops/pruned_applied/resets": (_one(2 * n_pruned), ""),
                      "prune/result/n_weights": (_one(sum(m.size for m in state["mask"].values())),
                                                 ""),
                      "prune/result/n_kept": (_one(sum(int(m.sum())
                                                       for m in state["mask"].values())), "")}
    for name, (gp, gm) in pairs.items():
        write[f"prune/layers/{name}/mask"] = (np.asarray(state["mask"][name], np.uint8), "")
        write[f"prune/layers/{name}/w_pruned"] = ((gp - gm) / state["scale"][name], "")
    return write


def counting_matmul(weights: Mapping[str, np.ndarray], counts: dict[str, float]) -> MatMul:
    """Digital ``x @ W`` that counts its multiply-accumulates."""
    def matmul(name: str, x: np.ndarray) -> np.ndarray:
        w = weights[name]
        counts["digital_macs"] = counts.get("digital_macs", 0.0) + float(x.shape[0] * w.size)
        return x @ w
    return matmul


def program_targets(array: Array, layout: ChipLayout,
                    state: dict[str, Any]) -> tuple[Cells, np.ndarray, Cells]:
    """Differential targets: the cell on the weight's side gets G_lo + |w| / w_max * (G_hi - G_lo),
    the other cell of the pair stays at its reset residual (it is only reset, never verified).

    G_hi is the 10th percentile of this chip's formed conductances (SET restores a cell's own
    filament, so a target above it cannot be reached), G_lo twice the median reset residual.
    Returns (cells to program-verify, their targets, cells to reset only).
    """
    g_lo, g_hi = float(state["g_lo_S"]), float(state["g_hi_S"])
    prog_r, prog_c, targets, zero_r, zero_c = [], [], [], [], []
    state["prog_scale"] = {}
    for name, tile in layout.tiles.items():
        w = np.asarray(state["sw_w"][name], dtype=float)
        w_max = float(np.max(np.abs(w))) or 1.0
        span = (g_hi - g_lo) / w_max
        i, j = np.indices(w.shape)
        side = (w < 0).astype(np.int64)  # 0: G+ column, 1: G- column
        rows, col = i.ravel() + tile.row0, tile.col0 + 2 * j.ravel()
        prog_r.append(rows)
        prog_c.append(col + side.ravel())
        targets.append(g_lo + np.abs(w).ravel() * span)
        zero_r.append(rows)
        zero_c.append(col + 1 - side.ravel())
        state["prog_scale"][name] = span
    return (Cells.at(np.concatenate(prog_r), np.concatenate(prog_c)), np.concatenate(targets),
            Cells.at(np.concatenate(zero_r), np.concatenate(zero_c)))


def programmed_readback(array: Array, layout: ChipLayout, state: dict[str, Any]) -> Records:
    """Read the programmed chip; programming error and program-verify operation counts."""
    pairs = _read_tiles(array, layout)
    state["row_g_programmed"] = {n: gp.sum(axis=1) + gm.sum(axis=1)
                                 for n, (gp, gm) in pairs.items()}
    err, ref = [], []
    write: Records = {"prune/chip/g_programmed_S": (_flat(pairs), "S")}
    for name, (gp, gm) in pairs.items():
        w_chip = (gp - gm) / state["prog_scale"][name]
        w_sw = np.asarray(state["sw_w"][name], dtype=float)
        err.append((w_chip - w_sw).ravel() / np.max(np.abs(w_sw)))
        ref.append(w_sw.ravel())
        write[f"prune/layers/{name}/w_programmed"] = (w_chip, "")
        # the weights it was asked for: program_rmse is their difference, relative to max |w|
        write[f"prune/layers/{name}/w_software"] = (w_sw, "")
    v = state["verify"]
    pulses = np.asarray(v["pulses"])
    n = int(pulses.size)
    write.update({
        "prune/ops/programmed/verify_pulses": (_one(int(pulses.sum())), ""),
        "prune/ops/programmed/verify_reads": (_one(int(pulses.sum()) + n), ""),
        "prune/ops/programmed/reset_sweeps": (_one(2 * n), ""),  # both cells of each pair
        "prune/result/program_converged": (_one(float(np.mean(v["converged"]))), ""),
        "prune/result/program_rmse": (_one(float(np.sqrt(np.mean(np.concatenate(err) ** 2)))),
                                      ""),
    })
    return write
