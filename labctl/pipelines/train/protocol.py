"""On-chip training as a protocol: calibrate, train epoch by epoch, FP baseline, weight maps.

Every analog operation goes through the Array interface of the bank's members (forward and
transposed MVMs, pulsed updates, one-hot column reads, conductance reads), so the same run
trains a simulated chip or a real one.  Phases, each yielding steps that update the state
first (resumable from any checkpoint):

1. ``calibrate`` - per array: form the cells of a fresh die, settle to the symmetry point,
   measure dG_sp (dw_min), set the reference, program the initial weights into the visible
   array (:mod:`.calibrate`);
2. ``train`` - ``steps_per_epoch`` steps per epoch, then the test accuracy through the arrays;
3. ``fp`` - the floating-point baseline (digital SGD, same network and initial weights);
4. ``maps`` - final weight maps read from every array.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labctl.errors import ConfigError
from labctl.pipelines import predictions as pred
from labctl.pipelines.train import calibrate as cal
from labctl.pipelines.train.network import (
    ACTIVATIONS,
    AnalogNetwork,
    DigitalNetwork,
    evaluate,
    init_weights,
)
from labctl.pipelines.train.rules import UpdateRule, make_config, rule_class
from labctl.pipelines.train.tile import AnalogTile, TileConfig
from labctl.protocols.base import BaseProtocol, RunData, Step


@dataclass(frozen=True)
class TrainData:
    """Flattened features in [0, 1] and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


@dataclass(frozen=True)
class TrainConfig:
    algorithm: str = "agad"
    dataset: str = "digits"
    sizes: tuple[int, ...] = (64, 256, 128, 10)
    activation: str = "relu"
    epochs: int = 12                    # MNIST: FP SGD settles at 98.2-98.4 % (10: 97.9-98.2 %)
    batch: int = 32
    rule: dict[str, Any] = field(default_factory=dict)   # overrides of the rule's defaults
    tile: TileConfig = field(default_factory=TileConfig)
    calibration: cal.CalibrationConfig = field(default_factory=cal.CalibrationConfig)
    weight_scaling_omega: float = 0.15  # initial max |w| on the array: room to grow 6.7x [C]
    bias_lr: float | None = None        # None: the rule's lr
    fp_lr: float = 0.1                  # FP-baseline SGD learning rate [C]
    fp_epochs: int | None = None        # None: as many as the analog run; 0: no baseline
    steps_per_epoch: int = 4
    seed: int = 0

    def validate(self) -> None:
        rule_cls = rule_class(self.algorithm)
        make_config(rule_cls.Config, dict(self.rule))
        if len(self.sizes) < 2 or any(int(s) < 1 for s in self.sizes):
            raise ConfigError(f"network {self.sizes} needs >= 2 positive layer sizes",
                              key="network")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; choose one of "
                              f"{', '.join(ACTIVATIONS)}", key="activation")
        for key in ("epochs", "batch", "steps_per_epoch"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"--{key.replace('_', '-')} must be >= 1, got "
                                  f"{getattr(self, key)}", key=key)
        if self.weight_scaling_omega < 0:
            raise ConfigError(f"--omega must be >= 0, got {self.weight_scaling_omega:g}",
                              key="weight_scaling_omega")
        if not self.fp_lr > 0:
            raise ConfigError(f"--fp-lr must be > 0, got {self.fp_lr:g}", key="fp_lr")
        if self.fp_epochs is not None and self.fp_epochs < 0:
            raise ConfigError("--fp-epochs must be >= 0 (0: no FP baseline)", key="fp_epochs")
        if self.bias_lr is not None and self.bias_lr < 0:
            raise ConfigError("--bias-lr must be >= 0", key="bias_lr")
        self.tile.validate()
        self.calibration.validate()


def array_plan(cfg: TrainConfig) -> list[tuple[str, int, int]]:
    """(name, rows, cols) of every array the run needs: ``L<k>.<role>``."""
    roles = rule_class(cfg.algorithm).roles
    return [(f"L{k}.{r}", n_in, n_out)
            for k, (n_in, n_out) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:], strict=True))
            for r in roles]


class Training(BaseProtocol):
    """The training pipeline over an :class:`~labctl.pipelines.array_bank.ArrayBank`."""

    name: ClassVar[str] = "train"

    def __init__(self, config: TrainConfig, data: TrainData) -> None:
        config.validate()
        if data.x_train.shape[1] != config.sizes[0] or data.n_classes != config.sizes[-1]:
            raise ConfigError(f"network {'-'.join(map(str, config.sizes))} does not fit the data "
                              f"({data.x_train.shape[1]} inputs, {data.n_classes} classes)",
                              key="network")
        super().__init__(config)
        self.data = data
        self.rule_cls = rule_class(config.algorithm)
        self.rule_cfg = make_config(self.rule_cls.Config, dict(config.rule))

    def preflight(self, array: Any) -> None:
        tech = array.info.technology
        if tech != "1t1r-reram":   # the tiles pulse single ReRAM cells open-loop
            raise ConfigError(f"pipeline train trains 1T1R ReRAM arrays; this chip is {tech} "
                              f"(two-FeFET cells train with `labctl pipeline sparse-train`)",
                              key="preset")
        lim, t = array.info.limits, self.config.tile
        lim.check_width(t.width_s)
        for v in (t.set_V, -abs(t.reset_V)):
            lim.check_voltage(v)

    # --- state --------------------------------------------------------------------------------
    def initial_state(self, array: Any) -> dict[str, Any]:
        cfg: TrainConfig = self.config
        rng = np.random.default_rng(cfg.seed)
        ws, bs = init_weights(cfg.sizes, rng)
        omega = cfg.weight_scaling_omega
        scales = [float(np.abs(w).max() / omega) if omega > 0 else 1.0 for w in ws]
        return {"phase": "calibrate", "cal_index": 0, "epoch": 0, "batch": 0,
                "rng": rng.bit_generator.state, "scales": scales,
                "init": {f"w{k}": w for k, w in enumerate(ws)} | {f"b{k}": b for k, b in
                                                                   enumerate(bs)},
                "epoch_stats": _zero_stats(), "fp_epoch": 0}

    def _build(self, bank: Any, state: dict[str, Any]) -> tuple[np.random.Generator,
                                                                  dict[str, AnalogTile],
                                                                  AnalogNetwork]:
        cfg: TrainConfig = self.config
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        tiles = {name: AnalogTile(bank[name], cfg.tile, rng, name)
                 for name, _, _ in array_plan(cfg)}
        for name, s in state.get("tiles", {}).items():
            tiles[name].load_state(s)
        rules: list[UpdateRule] = []
        for k in range(len(cfg.sizes) - 1):
            layer = {r: tiles[f"L{k}.{r}"] for r in self.rule_cls.roles}
            rule = self.rule_cls(self.rule_cfg, layer, rng)
            if str(k) in state.get("rules", {}):
                rule.load_state(state["rules"][str(k)])
            rules.append(rule)
        init = state["init"]
        bias_lr = cfg.bias_lr if cfg.bias_lr is not None else rules[0].lr
        net = AnalogNetwork(rules, [init[f"b{k}"] for k in range(len(rules))], state["scales"],
                            cfg.activation, bias_lr)
        if "net" in state:
            net.load_state(state["net"])
        return rng, tiles, net

    def _save(self, state: dict[str, Any], rng: np.random.Generator,
              tiles: dict[str, AnalogTile], net: AnalogNetwork) -> None:
        state["rng"] = rng.bit_generator.state
        state["tiles"] = {n: t.state() for n, t in tiles.items()}
        state["rules"] = {str(k): r.state() for k, r in enumerate(net.rules)}
        state["net"] = net.state()

    # --- steps --------------------------------------------------------------------------------
    def steps(self, array: Any, state: dict[str, Any]) -> Iterator[Step]:
        rng, tiles, net = self._build(array, state)
        if state["phase"] == "calibrate":
            yield from self._calibrate(state, rng, tiles, net)
        if state["phase"] == "train":
            yield from self._train(state, rng, tiles, net)
        if state["phase"] == "fp":
            yield from self._fp(state)
        if state["phase"] == "maps":
            yield self._maps(state, rng, tiles, net)

    def _batches(self) -> int:
        """Mini-batches per epoch: whole batches only.  A remainder batch (8x8 digits: 1,347 =
        42 x 32 + 3 samples) would take a full-rate step on the mean gradient of a few samples
        right before the epoch's evaluation (FP baseline on digits: 93 % -> 45 % in one step);
        each epoch draws a new permutation, so the samples left out differ from epoch to epoch."""
        cfg: TrainConfig = self.config
        return max(len(self.data.x_train) // cfg.batch, 1)

    def _per_epoch(self) -> int:
        """Training samples an epoch uses."""
        cfg: TrainConfig = self.config
        return min(self._batches() * cfg.batch, len(self.data.x_train))

    def _total(self) -> int:
        cfg: TrainConfig = self.config
        return cfg.epochs * self._per_epoch()

    def _calibrate(self, state: dict[str, Any], rng: np.random.Generator,
                   tiles: dict[str, AnalogTile], net: AnalogNetwork) -> Iterator[Step]:
        cfg: TrainConfig = self.config
        plan = array_plan(cfg)
        refs = self.rule_cls.references(self.rule_cfg)
        while state["cal_index"] < len(plan):
            name = plan[state["cal_index"]][0]
            k, role = int(name[1:name.index(".")]), name.split(".", 1)[1]
            tile = tiles[name]
            formed = cal.form_unformed(tile, cfg.calibration)
            sp = cal.settle_symmetry_point(tile, cfg.calibration)
            tile.dw_min = cal.granularity(sp, tile.g_unit_S)
            if refs[role] == "symmetry-point":
                tile.set_reference(sp.g_sp_S)
            if role == self.rule_cls.visible:
                target = state["init"][f"w{k}"] / state["scales"][k]
                cal.program_weights(tile, target, cfg.calibration)
            state["cal_index"] += 1
            if state["cal_index"] == len(plan):
                state["phase"] = "train"
            self._save(state, rng, tiles, net)
            write = {f"calibration/{name}/g_sp_S": (sp.g_sp_S, "S"),
                     f"calibration/{name}/step_S": (sp.step_S, "S")}
            if state["cal_index"] == 1:
                write["arrays/names"] = (np.array([p[0] for p in plan]), "")
                write.update(pred.labels_record(self.data.y_test))
            yield Step(done=0, total=self._total(), label=f"calibrate {name}", write=write,
                       append={"calibration/dw_min": (np.array([tile.dw_min]), ""),
                               "calibration/formed_cells": (np.array([formed]), ""),
                               "calibration/reference": (np.array([refs[role]]), "")})

    def _train(self, state: dict[str, Any], rng: np.random.Generator,
               tiles: dict[str, AnalogTile], net: AnalogNetwork) -> Iterator[Step]:
        cfg: TrainConfig = self.config
        x, y = self.data.x_train, self.data.y_train
        n_batches = self._batches()
        per_step = int(np.ceil(n_batches / cfg.steps_per_epoch))
        while state["epoch"] < cfg.epochs:
            order = np.random.default_rng([cfg.seed, state["epoch"]]).permutation(len(x))
            stop = min(state["batch"] + per_step, n_batches)
            st = state["epoch_stats"]
            t0 = time.perf_counter()
            for b in range(state["batch"], stop):
                idx = order[b * cfg.batch:(b + 1) * cfg.batch]
                loss, correct = net.train_batch(x[idx], y[idx])
                st["loss_sum"] += loss * idx.size
                st["correct"] += correct
                st["samples"] += int(idx.size)
            st["wall_s"] += time.perf_counter() - t0
            state["batch"] = stop
            label = f"epoch {state['epoch'] + 1}"
            append: dict[str, tuple[Any, str]] = {}
            if stop == n_batches:
                append = self._end_epoch(state, tiles, net)
            self._save(state, rng, tiles, net)
            done = state["epoch"] * self._per_epoch() + min(state["batch"] * cfg.batch,
                                                            self._per_epoch())
            yield Step(done=done, total=self._total(), label=label, append=append)
        state["phase"] = "fp" if self._fp_epochs() > 0 else "maps"

    def _end_epoch(self, state: dict[str, Any], tiles: dict[str, AnalogTile],
                   net: AnalogNetwork) -> dict[str, tuple[Any, str]]:
        st = state["epoch_stats"]
        acc, loss, predicted = evaluate(net.logits, self.data.x_test, self.data.y_test)
        rec = {"train/epoch": (np.array([state["epoch"] + 1]), ""),
               "train/test_accuracy": (np.array([acc]), ""),
               "train/test_predictions": (pred.stored(predicted)[None, :], ""),
               "train/test_loss": (np.array([loss]), ""),
               "train/train_loss": (np.array([st["loss_sum"] / max(st["samples"], 1)]), ""),
               "train/train_accuracy": (np.array([st["correct"] / max(st["samples"], 1)]), ""),
               "train/samples": (np.array([st["samples"]]), ""),
               "train/wall_s": (np.array([st["wall_s"]]), "s"),
               "train/pulses": (np.array([[t.pulses for t in tiles.values()]]), "")}
        state["epoch"] += 1
        state["batch"] = 0
        state["epoch_stats"] = _zero_stats()
        return rec

    def _fp_epochs(self) -> int:
        cfg: TrainConfig = self.config
        return cfg.epochs if cfg.fp_epochs is None else int(cfg.fp_epochs)

    def _fp(self, state: dict[str, Any]) -> Iterator[Step]:
        cfg: TrainConfig = self.config
        init = state["init"]
        n = len(cfg.sizes) - 1
        net = DigitalNetwork([init[f"w{k}"] for k in range(n)], [init[f"b{k}"] for k in range(n)],
                             cfg.activation, cfg.fp_lr)
        if "fp_net" in state:
            net.load_state(state["fp_net"])
        x, y = self.data.x_train, self.data.y_train
        while state["fp_epoch"] < self._fp_epochs():
            rng = np.random.default_rng([cfg.seed, 10_000 + state["fp_epoch"]])
            order = rng.permutation(len(x))
            t0 = time.perf_counter()
            loss_sum = 0.0
            n_used = self._per_epoch()
            for b in range(0, n_used, cfg.batch):
                idx = order[b:b + cfg.batch]
                loss_sum += net.train_batch(x[idx], y[idx])[0] * idx.size
            wall = time.perf_counter() - t0
            acc, loss, predicted = evaluate(net.logits, self.data.x_test, self.data.y_test)
            state["fp_epoch"] += 1
            state["fp_net"] = net.state()
            if state["fp_epoch"] == self._fp_epochs():
                state["phase"] = "maps"
            yield Step(done=self._total(), total=self._total(),
                       label=f"fp epoch {state['fp_epoch']}",
                       append={"fp/epoch": (np.array([state["fp_epoch"]]), ""),
                               "fp/test_accuracy": (np.array([acc]), ""),
                               "fp/test_predictions": (pred.stored(predicted)[None, :], ""),
                               "fp/test_loss": (np.array([loss]), ""),
                               "fp/train_loss": (np.array([loss_sum / n_used]), ""),
                               "fp/wall_s": (np.array([wall]), "s")})

    def _maps(self, state: dict[str, Any], rng: np.random.Generator,
              tiles: dict[str, AnalogTile], net: AnalogNetwork) -> Step:
        write: dict[str, tuple[Any, str]] = {}
        for k, rule in enumerate(net.rules):
            maps = rule.weight_maps()
            for role, w in maps.items():
                write[f"weights/L{k}/{role}"] = (w, "")
            write[f"weights/L{k}/effective"] = (rule.effective_weights(maps) *
                                                state["scales"][k], "")
            write[f"weights/L{k}/bias"] = (net.biases[k], "")
        write["arrays/pulses"] = (np.array([t.pulses for t in tiles.values()]), "")
        write["arrays/calibration_pulses"] = (
            np.array([t.calibration_pulses for t in tiles.values()]), "")
        state["phase"] = "done"
        self._save(state, rng, tiles, net)
        return Step(done=self._total(), total=self._total(), label="weight maps", write=write)

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_training(data)


def _zero_stats() -> dict[str, Any]:
    return {"loss_sum": 0.0, "correct": 0, "samples": 0, "wall_s": 0.0}


def analyse_training(data: RunData) -> dict[str, Any]:
    """Summary from the stored data: final and best accuracy, FP baseline, speed, pulses."""
    cfg = data.config

    def get(name: str) -> np.ndarray:
        return data.data(name) if name in data else np.array([])

    acc = get("train/test_accuracy")
    samples, wall = get("train/samples"), get("train/wall_s")
    pulses = get("train/pulses")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in get("arrays/names")]
    last = pulses[-1] if pulses.size else np.zeros(len(names))
    return {
        "algorithm": cfg.get("algorithm"),
        "dataset": cfg.get("dataset"),
        "network": "-".join(str(s) for s in cfg.get("sizes", [])),
        "rule_options": dict(cfg.get("rule", {})),
        # from the stored predictions where the file has them (predictions.py)
        "accuracy": pred.last_accuracy(data, "train/test_predictions", "train/test_accuracy"),
        "best_accuracy": float(acc.max()) if acc.size else None,
        "fp_accuracy": pred.last_accuracy(data, "fp/test_predictions", "fp/test_accuracy"),
        "epochs": int(acc.size),
        "train_loss": float(get("train/train_loss")[-1]) if acc.size else None,
        "samples_per_s": float(samples.sum() / wall.sum()) if wall.size and wall.sum() > 0
        else None,
        "pulses_total": int(np.sum(last)),
        "pulses_per_array": {n: int(p) for n, p in zip(names, last, strict=False)},
        # the same arrays' pulses before training (symmetry-point settling, programming the
        # initial weights): they count for a device's endurance as much as training's
        "calibration_pulses_total": (int(np.sum(get("arrays/calibration_pulses")))
                                     if "arrays/calibration_pulses" in data else None),
    }
