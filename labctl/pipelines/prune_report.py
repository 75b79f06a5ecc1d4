"""Summary of a pruning run computed from its stored data alone (re-runnable on a file)."""

from __future__ import annotations

from typing import Any

from labctl.pipelines import predictions
from labctl.pipelines.energy import EnergyModel, inference_J, load_energy_model, programming_J
from labctl.protocols.base import RunData

APPROACHES = ("software", "programmed", "random", "pruned")
COUNTERS = ("dac", "adc", "read_V2S", "macs", "digital_ops", "digital_macs", "samples")
OPS = ("sets", "resets", "verify_pulses", "verify_reads", "reset_sweeps")


def _scalar(data: RunData, name: str) -> float | None:
    return float(data.data(name)[0]) if name in data else None


def _group(data: RunData, prefix: str, keys: tuple[str, ...]) -> dict[str, float]:
    return {k: float(data.data(f"{prefix}/{k}")[0]) for k in keys if f"{prefix}/{k}" in data}


def energy_model(config: dict[str, Any]) -> EnergyModel:
    values = config.get("energy") or {}
    return EnergyModel.from_dict(values) if values else load_energy_model(None)


def analyse_prune(data: RunData) -> dict[str, Any]:
    """Accuracies, kept fraction, set/reset operations and energy per approach."""
    cfg = data.config
    model = energy_model(cfg)
    acc = {a: predictions.last_accuracy(data, f"prune/result/test_predictions_{a}",
                        f"prune/result/accuracy_{a}") for a in APPROACHES}
    ops = {a: _group(data, f"prune/ops/{a}", OPS) for a in APPROACHES}
    counts = {a: _group(data, f"prune/energy/{a}", COUNTERS) for a in APPROACHES}
    e_prog = {a: programming_J(ops[a], model) for a in APPROACHES}
    e_inf = {a: inference_J(counts[a], model) if counts[a] else None for a in APPROACHES}
    n_w, n_k = _scalar(data, "prune/result/n_weights"), _scalar(data, "prune/result/n_kept")
    sr = {a: int(sum(ops[a].get(k, 0) for k in ("sets", "resets", "verify_pulses",
                                                 "reset_sweeps"))) for a in APPROACHES}
    applied = _group(data, "prune/ops/pruned_applied", ("resets",))
    return {
        "dataset": cfg.get("dataset"),
        "dataset_label": cfg.get("dataset_label"),
        "stand_in": bool(cfg.get("stand_in")),
        "network": cfg.get("network"),
        **{f"accuracy_{a}": acc[a] for a in APPROACHES},
        "accuracy_pruned_software": predictions.last_accuracy(data, "prune/train/test_predictions",
                                              "prune/train/test_accuracy"),
        "kept_fraction": (n_k / n_w) if n_w and n_k is not None else None,
        "set_reset_ops": sr,
        "set_reset_ops_applied": int(applied.get("resets", 0)),
        "program_converged": _scalar(data, "prune/result/program_converged"),
        "program_rmse": _scalar(data, "prune/result/program_rmse"),
        "energy_J": {a: (e_prog[a] + e) if (e := e_inf[a]) is not None else None
                     for a in APPROACHES},
        "energy_programming_J": e_prog,
        "energy_inference_J": e_inf,
        "test_samples": int(counts["pruned"].get("samples", 0)),
    }
