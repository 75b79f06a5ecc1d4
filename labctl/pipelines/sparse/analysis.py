"""What a sparse-training run file says: the summary, the throughput, the cost table.

Everything here reads stored data (or the protocol's measured workload), so a summary can be
recomputed from a finished file and a cost table from a different cost-model file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.pipelines import predictions
from labctl.pipelines.sparse import cost_model as cm
from labctl.protocols.base import RunData


def cost_table(workload: dict[str, Any], results: dict[str, Any], *, steps: int, batch: int,
               topology_period: int, params: cm.CostParams) -> dict[str, Any]:
    """The three designs from the measured workload (index-based updates use the exact run)."""
    main = results["sparse"]
    layers = tuple(cm.LayerLoad(rows=w["rows"], cols=w["cols"], nnz=main["nnz"][k],
                                max_col_nnz=main["max_col_nnz"][k], input_ms=w["input_ms"],
                                g_on_S=w["g_on_S"], g_off_S=w["g_off_S"])
                   for k, w in enumerate(workload["layers"]))
    wl = cm.Workload(layers=layers, read_voltage_V=workload["read_voltage_V"], batch=batch,
                     steps=steps, topology_period=topology_period)

    def load(r: dict[str, Any] | None) -> cm.UpdateLoad | None:
        if r is None:
            return None
        return cm.UpdateLoad(mode=r["mode"], pulses=r["pulses"], slots=r["slots"],
                             mask_writes=r["mask_writes"], moved=r["mask_writes"] / 4,
                             topology_updates=r["topology_updates"])

    exact = results.get("sparse_cell", main if main["mode"] != "vau" else None)
    updates = {"index_free": load(main), "index_free_cell": load(exact),
               "index_based": load(exact), "dense": load(results.get("dense"))}
    return cm.compare(wl, {k: v for k, v in updates.items() if v is not None}, params)


def _last(data: RunData, name: str) -> float | None:
    return float(data.data(name)[-1]) if name in data else None


def _accuracy(data: RunData, network: str) -> float | None:
    """The last epoch's test accuracy of one network (the mean over its evaluation passes)."""
    return predictions.last_accuracy(data, f"{network}/test_predictions",
                                     f"{network}/test_accuracy")


def analyse_sparse(data: RunData) -> dict[str, Any]:
    """Summary from the stored data alone."""
    cfg = data.config
    acc = _accuracy(data, "sparse")
    cell = _accuracy(data, "sparse_cell")
    if cell is None and cfg.get("update") == "cell":
        cell = acc
    out: dict[str, Any] = {
        "dataset": cfg.get("dataset"), "sparsity": cfg.get("sparsity"),
        "update": cfg.get("update"), "accuracy": acc,
        "accuracy_dense": _accuracy(data, "dense"),
        "accuracy_cell_by_cell": cell,
        "measured_sparsity": _last(data, "sparse/sparsity"),
        "network": "-".join(str(s) for s in ["in", *cfg.get("hidden", []), "out"]),
    }
    out.update(_vau_summary(data, float(cfg.get("sparsity", 0.0))))
    out.update(_cost_summary(data))
    return out


def samples_per_s(data: RunData, network: str = "sparse") -> float | None:
    """Training throughput of one network (wall time of its training steps; not in the
    summary, which must not depend on the machine)."""
    if f"{network}/samples" not in data or f"{network}/wall_s" not in data:
        return None
    wall = float(data.data(f"{network}/wall_s").sum())
    return float(data.data(f"{network}/samples").sum()) / wall if wall > 0 else None


def _vau_summary(data: RunData, sparsity: float) -> dict[str, Any]:
    if "vau_error/sparsity" not in data:
        return {"vau_mse": None, "vau_mse_relative": None}
    sp = data.data("vau_error/sparsity")
    i = int(np.argmin(np.abs(sp - sparsity)))
    return {"vau_mse": float(data.data("vau_error/mse")[i]),
            "vau_mse_relative": float(data.data("vau_error/mse_relative")[i]),
            "cell_mse": float(data.data("vau_error/cell_mse")[i]),
            "vau_bias_mse": float(data.data("vau_error/bias_mse")[i]),
            "vau_mse_curve": {f"{s:.2f}": float(m) for s, m in
                              zip(sp, data.data("vau_error/mse"), strict=True)}}


def _cost_summary(data: RunData) -> dict[str, Any]:
    if "cost/designs" not in data:
        return {"latency_ratio": None, "energy_ratio": None}
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in data.data("cost/designs")]
    table: dict[str, Any] = {"designs": names}
    for key in ("inference_latency_s", "inference_energy_J", "train_latency_s",
                "train_energy_J"):
        table[key] = [float(v) for v in data.data(f"cost/{key}")]

    def r(key: str, design: str) -> float | None:
        v = cm.ratios(table, key, design)
        return v if np.isfinite(v) else None

    return {"latency_ratio": r("inference_latency_s", "dense"),
            "energy_ratio": r("inference_energy_J", "dense"),
            "latency_ratio_index_based": r("inference_latency_s", "index_based"),
            "energy_ratio_index_based": r("inference_energy_J", "index_based"),
            "train_latency_ratio": r("train_latency_s", "dense"),
            "train_energy_ratio": r("train_energy_J", "dense"),
            "train_latency_ratio_index_based": r("train_latency_s", "index_based"),
            "train_energy_ratio_index_based": r("train_energy_J", "index_based"),
            "train_latency_ratio_cell_by_cell": r("train_latency_s", "index_free_cell"),
            "train_energy_ratio_cell_by_cell": r("train_energy_J", "index_free_cell")}
