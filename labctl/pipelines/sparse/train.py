"""Index-free sparse training as a resumable protocol (issue 8, seed 001).

Networks trained one after the other on their own arrays (the CLI gives every network the
same simulated dies - equal seeds - so they differ only in how they are trained):

1. ``sparse`` - sparse training at ``sparsity`` with the chosen update (``vau``, ``cell`` or
   ``cell-batch``, see :mod:`.vau`);
2. ``sparse_cell`` - the same with the exact cell-by-cell update ``cell`` (unless that is the
   main update);
3. ``dense`` - the same network without a mask, same update, same noise.

Per network: measure ``dw_min`` and draw the initial random mask at the per-layer sparsity
(ERK by default, RigL's distribution: the small classifier layer stays denser, the overall
sparsity is ``sparsity``), written into the sparsity FeFETs; then ``epochs`` epochs of
mini-batch SGD through the arrays, with a RigL topology update (prune by magnitude read from
the arrays, regrow by dense gradient; a regrown connection keeps the weight its weight FeFET
holds unless ``regrow_init='zero'``) every ``topology.period`` steps.  Each epoch records the
test accuracy (mean of ``eval_passes`` passes, each with fresh read noise), the sparsity read
back from the arrays' conductances, pulses and mask writes; weight and mask maps of the main
network at ``map_epochs``.  Then the VAU error against the exact update over ``vau_runs``
random (mask, batch-window) draws per sparsity, using layer inputs and errors of the trained
network, and the cost-model comparison.
Each yielded step updates the state first, so a killed run resumes from its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labctl.array import Cells
from labctl.errors import ConfigError
from labctl.pipelines import predictions as pred
from labctl.pipelines.nn import cosine_lr
from labctl.pipelines.sparse import cost_model as cm
from labctl.pipelines.sparse.analysis import analyse_sparse, cost_table
from labctl.pipelines.sparse.layer import PulseConfig, SparseLayer
from labctl.pipelines.sparse.network import SparseNetwork
from labctl.pipelines.sparse.topology import (
    DISTRIBUTIONS,
    TopologyConfig,
    initial_mask,
    layer_sparsities,
    prune_regrow,
    update_fraction,
)
from labctl.pipelines.sparse.vau import UPDATE_MODES, update_error_curve
from labctl.protocols.base import BaseProtocol, RunData, Step

COUNTERS = ("pulses", "slots", "mask_writes")


@dataclass(frozen=True)
class SparseData:
    """Flattened features in [0, 1] and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @classmethod
    def from_dataset(cls, ds: Any) -> SparseData:
        def flat(x: np.ndarray) -> np.ndarray:
            return np.asarray(x, np.float64).reshape(len(x), -1)

        return cls(flat(ds.x_train), np.asarray(ds.y_train, np.int64), flat(ds.x_test),
                   np.asarray(ds.y_test, np.int64), int(ds.n_classes))


@dataclass(frozen=True)
class SparseTrainConfig:
    dataset: str = "digits"
    sparsity: float = 0.75
    distribution: str = "erk"           # per-layer sparsity: "erk" (RigL) or "uniform"
    regrow_init: str = "keep"           # regrown weights: "keep" (as found) or "zero" (RigL)
    update: str = "vau"
    hidden: tuple[int, ...] = (64,)
    epochs: int = 8
    batch: int = 16
    lr: float = 0.2                     # [C] cosine-annealed; in weight units per unit gradient
    logit_gain: float = 3.0             # [C] digital gain of the output layer (logit scale)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    pulse: PulseConfig = field(default_factory=lambda: PulseConfig(amplitude_V=2.0))
    baselines: bool = True              # also train the cell-by-cell and the dense networks
    map_epochs: tuple[int, ...] | None = None   # None: first, middle and last epoch
    eval_passes: int = 3
    batches_per_yield: int = 100        # mini-batches between yields (checkpoints)
    vau_runs: int = 50                  # seed 001 reports its MSE curve over 50 runs [A]
    vau_sparsities: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9)
    vau_pool: int = 256
    vau_window: int | None = None       # steps accumulated per run; None: topology period
    cost: dict[str, float] = field(default_factory=dict)   # CostParams (from the TOML)
    cost_model_file: str = ""
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"--sparsity must be in [0, 1), got {self.sparsity}",
                              key="sparsity")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"--distribution must be one of {', '.join(DISTRIBUTIONS)}",
                              key="distribution")
        if self.regrow_init not in ("zero", "keep"):
            raise ConfigError("--regrow-init must be 'zero' or 'keep'", key="regrow_init")
        if self.update not in UPDATE_MODES:
            raise ConfigError(f"--update must be one of {', '.join(UPDATE_MODES)}",
                              key="update")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"--hidden needs positive layer sizes, got {self.hidden}",
                              key="hidden")
        for key in ("epochs", "batch", "eval_passes", "batches_per_yield", "vau_runs",
                    "vau_pool"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key} must be >= 1", key=key)
        if self.lr <= 0 or self.logit_gain <= 0:
            raise ConfigError("--lr and --logit-gain must be positive", key="lr")
        if self.vau_window is not None and self.vau_window < 1:
            raise ConfigError("vau_window must be >= 1", key="vau_window")
        if any(not 0.0 <= s < 1.0 for s in self.vau_sparsities):
            raise ConfigError("VAU sparsities must be in [0, 1)", key="vau_sparsities")
        if any(not 0 <= e <= self.epochs for e in self.map_epochs or ()):
            raise ConfigError(f"--map-epochs must be within 0..{self.epochs}", key="map_epochs")
        self.topology.validate()
        self.pulse.validate()
        cm.CostParams.from_dict(self.cost)

    def variants(self) -> list[tuple[str, str, float]]:
        """(name, update mode, sparsity) of every network the run trains, main first."""
        out = [("sparse", self.update, self.sparsity)]
        if self.baselines:
            if self.update != "cell":
                out.append(("sparse_cell", "cell", self.sparsity))
            out.append(("dense", self.update, 0.0))
        return out

    def maps_at(self) -> tuple[int, ...]:
        if self.map_epochs is not None:
            return tuple(sorted(set(int(e) for e in self.map_epochs)))
        return tuple(sorted({0, self.epochs // 2, self.epochs}))


def layer_sizes(cfg: SparseTrainConfig, n_inputs: int, n_classes: int) -> list[int]:
    return [int(n_inputs), *(int(h) for h in cfg.hidden), int(n_classes)]


def array_plan(cfg: SparseTrainConfig, n_inputs: int,
               n_classes: int) -> list[tuple[str, int, int]]:
    """(name, rows, cols) of every array: ``<network>.L<k>.<pos|neg>``."""
    sizes = layer_sizes(cfg, n_inputs, n_classes)
    return [(f"{v}.L{k}.{pol}", a, b) for v, _, _ in cfg.variants()
            for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
            for pol in ("pos", "neg")]


def require_two_fefet(tech: str) -> None:
    """Refuse a chip whose cells have no sparsity FeFET to hold the mask."""
    if tech != "fefet-2t":
        raise ConfigError(f"pipeline sparse-train trains two-FeFET arrays (the mask lives "
                          f"in each cell's sparsity FeFET); this chip is {tech} (1T1R ReRAM "
                          f"arrays train with `labctl pipeline train`)", key="preset")


class SparseTraining(BaseProtocol):
    """The sparse-training pipeline over an :class:`~labctl.pipelines.array_bank.ArrayBank`."""

    name: ClassVar[str] = "sparse-train"

    def __init__(self, config: SparseTrainConfig, data: SparseData) -> None:
        config.validate()
        super().__init__(config)
        self.data = data
        self.sizes = layer_sizes(config, data.x_train.shape[1], data.n_classes)
        # the costs of the pulse this run sends (the file's are for its reference pulse)
        self.cost = cm.CostParams.from_dict(config.cost).for_pulse(
            config.pulse.amplitude_V, config.pulse.width_s)

    def preflight(self, array: Any) -> None:
        require_two_fefet(array.info.technology)
        # updates pulse the weight FeFETs' write gates (checked against max_voltage_V)
        array.info.limits.check_voltage(self.config.pulse.amplitude_V, terminal="write gate")
        array.info.limits.check_width(self.config.pulse.width_s)

    # --- state ---------------------------------------------------------------------------------
    def initial_state(self, array: Any) -> dict[str, Any]:
        return {"phase": "train", "variant": 0, "started": False, "epoch": 0, "batch": 0,
                "step": 0, "topology_updates": 0, "net": {}, "nets": {}, "start": {},
                "epoch_stats": _zero_stats(), "results": {}, "workload": {}}

    def _network(self, bank: Any, variant: str) -> SparseNetwork:
        cfg: SparseTrainConfig = self.config
        layers = [SparseLayer(bank[f"{variant}.L{k}.pos"], bank[f"{variant}.L{k}.neg"],
                              cfg.pulse, f"{variant}.L{k}") for k in range(len(self.sizes) - 1)]
        for k, layer in enumerate(layers):
            if layer.shape != (self.sizes[k], self.sizes[k + 1]):
                raise ConfigError(f"array {variant}.L{k} is {layer.shape}, the layer needs "
                                  f"{self.sizes[k]}x{self.sizes[k + 1]}", key="arrays")
        return SparseNetwork(layers, logit_gain=cfg.logit_gain)

    def _steps_total(self) -> int:
        cfg: SparseTrainConfig = self.config
        return cfg.epochs * int(np.ceil(len(self.data.x_train) / cfg.batch))

    def _progress_total(self) -> int:
        return len(self.config.variants()) * self._steps_total() + 2

    def _done(self, state: dict[str, Any]) -> int:
        return state["variant"] * self._steps_total() + state["step"]

    # --- steps ---------------------------------------------------------------------------------
    def steps(self, array: Any, state: dict[str, Any]) -> Iterator[Step]:
        variants = self.config.variants()
        while state["phase"] == "train" and state["variant"] < len(variants):
            name, mode, sparsity = variants[state["variant"]]
            net = self._network(array, name)
            if state["net"]:
                net.load_state(state["net"])
            if not state["started"]:
                yield self._start(state, net, name, sparsity)
            yield from self._train(state, net, name, mode, sparsity)
        if state["phase"] == "train":
            state["phase"] = "vau"
        if state["phase"] == "vau":
            yield self._vau(state, array)
        if state["phase"] == "cost":
            yield self._cost(state)

    def _start(self, state: dict[str, Any], net: SparseNetwork, name: str,
               sparsity: float) -> Step:
        """Measure dw_min, write the initial random mask, record epoch 0."""
        cfg: SparseTrainConfig = self.config
        rng = np.random.default_rng([cfg.seed, state["variant"], 1_000_000])
        per_layer = layer_sparsities([layer.shape for layer in net.layers], sparsity,
                                     cfg.distribution)
        for layer, sp in zip(net.layers, per_layer, strict=True):
            layer.calibrate()
            if sp > 0:
                layer.set_mask(initial_mask(layer.shape, sp, rng))
        state["start"] = {str(k): {c: getattr(layer, c) for c in COUNTERS}
                          for k, layer in enumerate(net.layers)}
        state["started"] = True
        append = self._epoch_record(state, net, name, 0)
        append[f"{name}/dw_min"] = (np.array([[layer.dw_min for layer in net.layers]]), "")
        state["net"] = net.state()
        write = self._maps(state, net, name, 0)
        if state["variant"] == 0:
            write.update(pred.labels_record(self.data.y_test))
        return Step(done=self._done(state), total=self._progress_total(),
                    label=f"{name}: calibrated", append=append, write=write)

    def _train(self, state: dict[str, Any], net: SparseNetwork, name: str, mode: str,
               sparsity: float) -> Iterator[Step]:
        cfg: SparseTrainConfig = self.config
        x, y = self.data.x_train, self.data.y_train
        n_batches = int(np.ceil(len(x) / cfg.batch))
        per_yield = int(cfg.batches_per_yield)
        total = self._steps_total()
        while state["epoch"] < cfg.epochs:
            order = np.random.default_rng([cfg.seed, 7, state["epoch"]]).permutation(len(x))
            stop = min(state["batch"] + per_yield, n_batches)
            st = state["epoch_stats"]
            topo: list[list[float]] = []
            t0 = time.perf_counter()
            for b in range(state["batch"], stop):
                rng = np.random.default_rng([cfg.seed, state["variant"], state["step"]])
                idx = order[b * cfg.batch:(b + 1) * cfg.batch]
                lr = cosine_lr(cfg.lr, state["step"], total)
                res = net.train_batch(x[idx], y[idx], mode=mode, lr=lr, rng=rng)
                st["loss_sum"] += res.loss * idx.size
                st["correct"] += res.correct
                st["samples"] += int(idx.size)
                state["step"] += 1
                frac = update_fraction(state["step"], total, cfg.topology) if sparsity else 0.0
                if frac > 0:
                    topo.append([state["step"], frac, *self._rewire(net, res, frac, rng)])
                    state["topology_updates"] += 1
            st["wall_s"] += time.perf_counter() - t0
            state["batch"] = stop
            append: dict[str, tuple[Any, str]] = {}
            if topo:
                append[f"{name}/topology"] = (np.array(topo), "")
            write: dict[str, tuple[Any, str]] = {}
            if stop == n_batches:
                state["epoch"] += 1
                state["batch"] = 0
                append.update(self._epoch_record(state, net, name, state["epoch"]))
                write = self._maps(state, net, name, state["epoch"])
                state["epoch_stats"] = _zero_stats()
            finished = state["epoch"] == cfg.epochs
            label = f"{name}: epoch {min(state['epoch'] + 1, cfg.epochs)}"
            if finished:
                self._finish_variant(state, net, name, mode)
            else:
                state["net"] = net.state()
            yield Step(done=self._done(state), total=self._progress_total(), label=label,
                       append=append, write=write)
            if finished:
                return

    def _rewire(self, net: SparseNetwork, res: Any, frac: float,
                rng: np.random.Generator) -> list[float]:
        """One RigL topology update of every layer; returns the connections moved per layer."""
        moved = []
        for k, layer in enumerate(net.layers):
            grad = res.inputs[k].T @ res.errors[k]   # dense gradient, from the vectors
            old = layer.mask
            new, n = prune_regrow(old, layer.read_weights(), grad, frac, rng)
            layer.set_mask(new)
            if self.config.regrow_init == "zero":
                layer.zero_weights(new & ~old)
            moved.append(float(n))
        return moved

    def _finish_variant(self, state: dict[str, Any], net: SparseNetwork, name: str,
                        mode: str) -> None:
        steps = max(state["step"], 1)
        per_step = {c: sum(getattr(layer, c) - state["start"][str(k)][c]
                           for k, layer in enumerate(net.layers)) / steps for c in COUNTERS}
        state["results"][name] = {"mode": mode, **per_step,
                                  "topology_updates": state["topology_updates"] / steps,
                                  "nnz": [int(layer.mask.sum()) for layer in net.layers],
                                  "max_col_nnz": [int(layer.mask.sum(axis=0).max())
                                                  for layer in net.layers]}
        state["nets"][name] = net.state()
        state["variant"] += 1
        state.update(started=False, epoch=0, batch=0, step=0, topology_updates=0, net={},
                     start={})

    # --- records -------------------------------------------------------------------------------
    def _epoch_record(self, state: dict[str, Any], net: SparseNetwork, name: str,
                      epoch: int) -> dict[str, tuple[Any, str]]:
        cfg: SparseTrainConfig = self.config
        passes = [net.evaluate(self.data.x_test, self.data.y_test)
                  for _ in range(cfg.eval_passes)]
        acc = np.array([a for a, _, _ in passes])
        layer_sp = np.array([1.0 - layer.read_mask().mean() for layer in net.layers])
        cells = np.array([layer.mask.size for layer in net.layers])
        st = state["epoch_stats"]
        start = state["start"]
        counters = [sum(getattr(layer, c) - start[str(k)][c] for k, layer in
                        enumerate(net.layers)) for c in COUNTERS]
        return {f"{name}/epoch": (np.array([epoch]), ""),
                f"{name}/test_accuracy": (np.array([acc.mean()]), ""),
                f"{name}/test_accuracy_std": (np.array([acc.std()]), ""),
                f"{name}/test_loss": (np.array([np.mean([lo for _, lo, _ in passes])]), ""),
                # one row per pass: the accuracy above is their mean (predictions.py)
                f"{name}/test_predictions": (
                    pred.stored(np.stack([p for _, _, p in passes]))[None], ""),
                # no training sample yet (the epoch-0 evaluation): none, not 0
                f"{name}/train_loss": (np.array([st["loss_sum"] / st["samples"]
                                                 if st["samples"] else np.nan]), ""),
                f"{name}/train_accuracy": (np.array([st["correct"] / st["samples"]
                                                     if st["samples"] else np.nan]), ""),
                f"{name}/sparsity": (np.array([float((layer_sp * cells).sum() / cells.sum())]),
                                     ""),
                f"{name}/sparsity_layers": (layer_sp[None, :], ""),
                f"{name}/update_pulses": (np.array([counters[0]]), ""),
                f"{name}/update_slots": (np.array([counters[1]]), ""),
                f"{name}/mask_writes": (np.array([counters[2]]), ""),
                f"{name}/samples": (np.array([st["samples"]]), ""),
                f"{name}/wall_s": (np.array([st["wall_s"]]), "s")}

    def _maps(self, state: dict[str, Any], net: SparseNetwork, name: str,
              epoch: int) -> dict[str, tuple[Any, str]]:
        if name != "sparse" or epoch not in self.config.maps_at():
            return {}
        out: dict[str, tuple[Any, str]] = {}
        for k, layer in enumerate(net.layers):
            out[f"maps/epoch_{epoch:03d}/L{k}/weight"] = (layer.read_weights(), "")
            out[f"maps/epoch_{epoch:03d}/L{k}/mask"] = (layer.read_mask().astype(np.uint8), "")
        return out

    # --- after training ------------------------------------------------------------------------
    def _vau(self, state: dict[str, Any], bank: Any) -> Step:
        """The VAU error curve on real layer inputs/errors, and the workload for the costs."""
        cfg: SparseTrainConfig = self.config
        net = self._network(bank, "sparse")
        net.load_state(state["nets"]["sparse"])
        n = min(cfg.vau_pool, len(self.data.x_train))
        res = net.backprop(self.data.x_train[:n], self.data.y_train[:n], None)
        sp = np.array(sorted(set(cfg.vau_sparsities) | {cfg.sparsity}))
        layer = net.layers[0]
        curve = update_error_curve(res.inputs[0], res.errors[0], sp, runs=cfg.vau_runs,
                                   batch=cfg.batch, lr_over_dw=cfg.lr / layer.dw_min,
                                   rng=np.random.default_rng([cfg.seed, 99]),
                                   slots=cfg.pulse.slots,
                                   window=cfg.vau_window or cfg.topology.period)
        state["workload"] = self._workload(net, res)
        state["phase"] = "cost"
        u = "dw_min^2"
        write = {"vau_error/sparsity": (curve.sparsity, ""),
                 "vau_error/mse": (curve.vau_mse, u), "vau_error/mse_std": (curve.vau_mse_std, u),
                 "vau_error/cell_mse": (curve.cell_mse, u),
                 "vau_error/mse_masked": (curve.vau_mse_masked, u),
                 "vau_error/mse_active": (curve.vau_mse_active, u),
                 "vau_error/mse_relative": (curve.vau_mse_norm, ""),
                 "vau_error/bias_mse": (curve.vau_bias_mse, u),
                 "vau_error/runs": (np.array(curve.runs), ""),
                 "vau_error/window_steps": (np.array(curve.window), "")}
        return Step(done=self._progress_total() - 1, total=self._progress_total(),
                    label="VAU error curve", write=write)

    def _workload(self, net: SparseNetwork, res: Any) -> dict[str, Any]:
        layers = []
        for k, layer in enumerate(net.layers):
            g = 0.5 * (layer.pos.read(Cells.all())
                       + layer.neg.read(Cells.all())).reshape(layer.shape)
            on = layer.mask
            layers.append({"rows": layer.shape[0], "cols": layer.shape[1],
                           "input_ms": float(np.mean(res.inputs[k] ** 2)),
                           "g_on_S": float(g[on].mean()) if on.any() else 0.0,
                           "g_off_S": float(g[~on].mean()) if (~on).any() else 0.0})
        return {"layers": layers, "read_voltage_V": net.layers[0].input_V}

    def _cost(self, state: dict[str, Any]) -> Step:
        cfg: SparseTrainConfig = self.config
        table = cost_table(state["workload"], state["results"], steps=self._steps_total(),
                           batch=cfg.batch, topology_period=cfg.topology.period,
                           params=self.cost)
        state["phase"] = "done"
        write: dict[str, tuple[Any, str]] = {"cost/designs": (np.array(table["designs"]), "")}
        for key, unit in (("inference_latency_s", "s"), ("inference_energy_J", "J"),
                          ("train_latency_s", "s"), ("train_energy_J", "J")):
            write[f"cost/{key}"] = (np.array(table[key], float), unit)
        return Step(done=self._progress_total(), total=self._progress_total(),
                    label="cost model", write=write)

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_sparse(data)


def _zero_stats() -> dict[str, Any]:
    return {"loss_sum": 0.0, "correct": 0, "samples": 0, "wall_s": 0.0}
