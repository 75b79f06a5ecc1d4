"""Pruning random resistive memory (seed 000): train only the topology of the chip's own weights.

Li, Wang et al., *Pruning random resistive memory for optimizing analog AI*, Nat. Commun. 2026
(reference/training.md section 4, devices.md section 2).  Stages, each checkpointed:

1. ``form``: electro-form the array with the forming protocol; the random post-forming
   conductances are the weights.
2. ``read``: read every tile; a weight is (G+ - G-) / scale, i.e. a random sign times
   |G+ - G-| (two independent random cells), scale = mean|dG| / sigma_Kaiming.  A spare strip is
   reset and read: the residual conductance a pruned edge keeps.
3. ``random``: the random network, unpruned, on the chip (BN and quantiser ranges calibrated).
4. ``train`` (one step per epoch): edge-popup scores in numpy (top-k per layer, straight-through
   gradient, SGD momentum 0.9, wd 5e-4, cosine schedule) with the seed's flip hysteresis.
5. ``apply`` + ``pruned``: RESET both cells of every pruned edge (``Array.mask``), infer with
   ``Array.mvm`` (a fresh read per test batch).
6. ``software`` (one step per epoch): the same network trained in software.
7. ``program`` + ``programmed``: the software weights program-verified onto the same chip
   (the conventional analog baseline with this chip's programming precision), then inferred.

Set/reset counts follow the seed: every mask flip during training (including the first
pruning of the all-formed chip) is one RESET or SET of each cell of the pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array
from labctl.datasets import Dataset
from labctl.errors import ConfigError
from labctl.pipelines import edge_popup as ep
from labctl.pipelines import predictions as pred
from labctl.pipelines.chip_layers import ChipLayout, ChipMatMul, plan_layout
from labctl.pipelines.nn.models import build_network
from labctl.pipelines.nn.network import Network, software_matmul
from labctl.pipelines.prune_chip import (
    apply_mask,
    counting_matmul,
    init_scores_state,
    program_targets,
    programmed_readback,
    read_random_weights,
)
from labctl.pipelines.prune_report import analyse_prune
from labctl.pipelines.train_loop import (
    Schedule,
    calibrate,
    predict,
    train_scores_epoch,
    train_weights_epoch,
)
from labctl.protocols.base import BaseProtocol, RunData, Step
from labctl.protocols.forming import Forming, FormingConfig
from labctl.protocols.program_verify import VerifyConfig, reset_to_hrs, verify_steps

#: per-cell forming results kept in the run file (the I-V traces would be ~1 GB for the CNN)
FORMING_KEEP = ("row", "col", "v_form_V", "i_form_A", "formed", "g_after_S")
MERGE_ROWS = 16     # forming rows per recorded step (one checkpoint each)
MERGE_ROUNDS = 25   # program-verify rounds per recorded step
STAGES = ("form", "read", "random", "train", "apply", "pruned", "software", "program",
          "programmed", "done")


#: units of the per-epoch records: mask flips count edges (one edge is a differential pair
#: of cells, so the cells flipped on the chip are twice as many; ``prune/ops`` counts cells)
_TRAIN_UNITS = {"resets": "edges", "sets": "edges"}


@dataclass(frozen=True)
class PruneConfig:
    """Pipeline settings; defaults follow training.md section 4 (C = placeholder)."""

    dataset: str
    network: str
    dataset_label: str = ""       # recorded from the data set (stand-ins are labelled)
    stand_in: bool = False
    data_dir: str | None = None
    limit: int | None = None      # samples per split (None = all)
    keep: float = 0.5             # top-k fraction kept per layer [A]
    epochs: int = 60              # score-training epochs (~60 in the seed) [A]
    software_epochs: int | None = None  # baseline epochs (None = same as epochs)
    batch_size: int = 128         # [C]
    lr: float = 0.1               # score lr [A]
    software_lr: float = 0.05     # baseline weight lr [C]
    momentum: float = 0.9         # [A]
    weight_decay: float = 5e-4    # [A]
    threshold_start: float = 0.01  # relative flip threshold, lowered as accuracy improves [A]
    threshold_end: float = 0.007   # [A]
    bits: int = 4                 # input/activation bits: 4 Fashion-MNIST, 3 spoken digits [A]
    seed: int = 0
    chip_batch: int = 100         # test samples per chip batch (each a fresh array read)
    chip_test_limit: int | None = None  # test samples inferred on the chip (None = all)
    forming: dict[str, Any] = field(default_factory=lambda: {"conditioning_cycles": 0})
    verify_tolerance: float = 0.02   # program-verify acceptance (seed 004's p) [C]
    verify_max_pulses: int = 300     # [C]
    verify_set_V: float = 1.35       # [C] SET amplitude of the baseline's program-verify
    verify_reset_V: float = -1.4     # [C] gradual RESET: ~3.6 % of the excess per 2.5 us pulse
    energy: dict[str, float] = field(default_factory=dict)  # EnergyModel values

    def validate(self) -> None:
        if not 0 < self.keep <= 1:
            raise ConfigError(f"--keep must be in (0, 1], got {self.keep}", key="keep")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}", key="epochs")
        if self.software_epochs is not None and self.software_epochs < 1:
            raise ConfigError(f"--software-epochs must be >= 1, got {self.software_epochs}",
                              key="software_epochs")
        if not 1 <= self.bits <= 16:
            raise ConfigError(f"bits must be 1..16, got {self.bits}", key="bits")
        if self.verify_max_pulses < 1:
            raise ConfigError("--verify-max-pulses must be >= 1", key="verify_max_pulses")
        if self.batch_size < 1 or self.chip_batch < 1:
            raise ConfigError("batch sizes must be >= 1", key="batch_size")


class PrunePipeline(BaseProtocol):
    name: ClassVar[str] = "prune"

    def __init__(self, config: PruneConfig, data: Dataset) -> None:
        config.validate()
        super().__init__(config)
        self.data = data
        self.net: Network = build_network(config.network, tuple(data.x_train.shape[1:]),
                                          data.n_classes, config.bits)
        self.layout: ChipLayout = required_layout(self.net)

    # --- protocol contract ---------------------------------------------------------------------
    def preflight(self, array: Array) -> None:
        tech = array.info.technology
        if tech != "1t1r-reram":   # the random weights are what electroforming leaves
            raise ConfigError(f"pipeline prune prunes the random conductances electroforming "
                              f"leaves in 1T1R ReRAM arrays; this chip is {tech} (two-FeFET "
                              f"arrays train sparsely with `labctl pipeline sparse-train`)",
                              key="preset")
        self.layout.check(array.info.shape)

    def initial_state(self, array: Array) -> dict[str, Any]:
        self.layout.check(array.info.shape)
        return {"stage": "form", "forming": {"row": 0}, "epoch": 0, "sw_epoch": 0}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        self.layout.check(array.info.shape)
        stages = {"form": self._form, "read": self._read, "random": self._random,
                  "train": self._train, "apply": self._apply, "pruned": self._pruned,
                  "software": self._software, "program": self._program,
                  "programmed": self._programmed}
        while state["stage"] != "done":
            yield from stages[state["stage"]](array, state)

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_prune(data)

    # --- helpers -------------------------------------------------------------------------------
    @property
    def cfg(self) -> PruneConfig:
        return self.config  # type: ignore[no-any-return]

    @staticmethod
    def _unit(array: Array) -> int:
        """Progress units of one epoch (or one chip stage): forming takes about as long as
        two epochs on the simulator, one unit per row, so an epoch is half the rows (it was
        one unit, and the bar sat at 90 % through all of training)."""
        return max(1, -(-array.info.rows // 2))

    def _total(self, array: Array) -> int:
        sw = self.cfg.software_epochs or self.cfg.epochs
        return array.info.rows + self._unit(array) * (self.cfg.epochs + sw + 7)

    def _done(self, array: Array, state: dict[str, Any]) -> int:
        rows, u = array.info.rows, self._unit(array)
        base = {"form": int(state["forming"]["row"]), "read": rows, "random": rows + u}
        if state["stage"] in base:
            return base[state["stage"]]
        return rows + u * (2 + int(state["epoch"]) + int(state["sw_epoch"])
                           + STAGES.index(state["stage"]) - 3)

    def _step(self, array: Array, state: dict[str, Any], label: str, *,
              append: dict[str, Any] | None = None, write: dict[str, Any] | None = None) -> Step:
        total = self._total(array)
        return Step(done=min(self._done(array, state), total), total=total, label=label,
                    append=append or {}, write=write or {})

    def _test_set(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.cfg.chip_test_limit or len(self.data.y_test)
        return self.data.x_test[:n], self.data.y_test[:n]

    # --- stages --------------------------------------------------------------------------------
    def _form(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        forming = Forming(FormingConfig(**self.cfg.forming))
        for label, append in merged(forming.steps(array, state["forming"]), MERGE_ROWS):
            keep = {k: v for k, v in append.items() if k.split("/")[-1] in FORMING_KEEP}
            yield self._step(array, state, f"forming {label}", append=keep)
        state["stage"] = "read"

    def _read(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        write = read_random_weights(array, self.layout, self.net, state,
                                    np.random.default_rng([self.cfg.seed, 11]))
        write.update(pred.labels_record(self.data.y_test))
        state["stage"] = "random"
        yield self._step(array, state, "read random weights", write=write)

    def _random(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        net, d, cfg = self.net, self.data, self.cfg
        net_state = net.init_state()
        calibrate(net, d.x_train, software_matmul(state["w"]), net_state,
                  np.random.default_rng([cfg.seed, 12]), cfg.batch_size)
        write = self._chip_test(array, "random", net_state, state["row_g_formed"],
                                state["scale"])
        x, y = self._test_set()
        predicted = predict(net, x, software_matmul(state["w"]), net_state, 500)
        write["prune/result/accuracy_random_software"] = (
            np.array([pred.accuracy(predicted, y)]), "")
        write["prune/result/test_predictions_random_software"] = (pred.stored(predicted), "")
        state["stage"] = "train"
        yield self._step(array, state, "random network on the chip", write=write)

    def _chip_test(self, array: Array, approach: str,
                   net_state: dict[str, Any], row_g: dict[str, np.ndarray],
                   scales: dict[str, float]) -> dict[str, Any]:
        counts: dict[str, float] = {}
        mm = ChipMatMul(array, self.layout, scales, row_g, counts)
        digital = [0]
        x, y = self._test_set()
        predicted = predict(self.net, x, mm, net_state, self.cfg.chip_batch, digital_ops=digital)
        counts["digital_ops"] = float(digital[0])
        counts["samples"] = float(len(y))
        write = {f"prune/energy/{approach}/{k}": (np.array([v]), "") for k, v in counts.items()}
        write[f"prune/result/accuracy_{approach}"] = (np.array([pred.accuracy(predicted, y)]), "")
        write[f"prune/result/test_predictions_{approach}"] = (pred.stored(predicted), "")
        return write

    def _train(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg, d, net = self.cfg, self.data, self.net
        if "scores" not in state:
            init_scores_state(net, state, np.random.default_rng([cfg.seed, 20]), cfg.keep)
        sched = Schedule(cfg.lr, cfg.epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay)
        chance = 1.0 / d.n_classes
        while int(state["epoch"]) < cfg.epochs:
            epoch = int(state["epoch"])
            progress = (float(state["train_acc"]) - chance) / (1.0 - chance)
            thr = ep.threshold_for(progress, cfg.threshold_start, cfg.threshold_end)
            stats = train_scores_epoch(net, d.x_train, d.y_train, state, state["net"], sched,
                                       epoch, cfg.keep, thr,
                                       np.random.default_rng([cfg.seed, 21, epoch]))
            w_eff = {n: ep.effective_weights(state["w"][n], state["residual"][n],
                                             state["mask"][n]) for n in net.weights}
            predicted = predict(net, d.x_test, software_matmul(w_eff), state["net"], 500)
            acc = pred.accuracy(predicted, d.y_test)
            kept = sum(int(m.sum()) for m in state["mask"].values()) / net.n_weights()
            state["epoch"] = epoch + 1
            state["train_acc"] = stats["accuracy"]
            state["flips"]["resets"] = int(state["flips"]["resets"]) + int(stats["resets"])
            state["flips"]["sets"] = int(state["flips"]["sets"]) + int(stats["sets"])
            if state["epoch"] >= cfg.epochs:
                state["stage"] = "apply"
            rec = {"epoch": epoch + 1, "loss": stats["loss"], "train_accuracy": stats["accuracy"],
                   "test_accuracy": acc, "resets": stats["resets"], "sets": stats["sets"],
                   "threshold": thr, "kept_fraction": kept}
            append = {f"prune/train/{k}": (np.array([v]), _TRAIN_UNITS.get(k, ""))
                      for k, v in rec.items()}
            append["prune/train/test_predictions"] = (pred.stored(predicted)[None, :], "")
            yield self._step(array, state, f"prune epoch {epoch + 1}/{cfg.epochs}: test {acc:.3f}",
                             append=append)
        state["stage"] = "apply"

    def _apply(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        write = apply_mask(array, self.layout, state)
        state["stage"] = "pruned"
        yield self._step(array, state, "mask applied on the chip", write=write)

    def _pruned(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        write = self._chip_test(array, "pruned", state["net"], state["row_g_pruned"],
                                state["scale"])
        f = state["flips"]
        write["prune/ops/pruned/resets"] = (np.array([2 * int(f["resets"])]), "")
        write["prune/ops/pruned/sets"] = (np.array([2 * int(f["sets"])]), "")
        state["stage"] = "software"
        yield self._step(array, state, "pruned network on the chip", write=write)

    def _software(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg, d, net = self.cfg, self.data, self.net
        epochs = cfg.software_epochs or cfg.epochs
        if "sw_w" not in state:
            state["sw_w"] = net.init_weights(np.random.default_rng([cfg.seed, 30]))
            state["sw_buf"] = {n: np.zeros_like(w) for n, w in state["sw_w"].items()}
            state["sw_net"] = net.init_state()
        sched = Schedule(cfg.software_lr, epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay)
        while int(state["sw_epoch"]) < epochs:
            epoch = int(state["sw_epoch"])
            stats = train_weights_epoch(net, d.x_train, d.y_train, state["sw_w"],
                                        state["sw_buf"], state["sw_net"], sched, epoch,
                                        np.random.default_rng([cfg.seed, 31, epoch]))
            predicted = predict(net, d.x_test, software_matmul(state["sw_w"]), state["sw_net"],
                                500)
            acc = pred.accuracy(predicted, d.y_test)
            state["sw_epoch"] = epoch + 1
            rec = {"epoch": epoch + 1, "loss": stats["loss"], "train_accuracy": stats["accuracy"],
                   "test_accuracy": acc}
            write = {}
            if epoch + 1 >= epochs:
                state["stage"] = "program"
                write = self._software_result(state)
            yield self._step(array, state, f"software epoch {epoch + 1}/{epochs}: test {acc:.3f}",
                             append={**{f"software/train/{k}": (np.array([v]), "")
                                        for k, v in rec.items()},
                                     "software/train/test_predictions": (
                                         pred.stored(predicted)[None, :], "")}, write=write)
        state["stage"] = "program"

    def _software_result(self, state: dict[str, Any]) -> dict[str, Any]:
        """Digital inference of the software network: accuracy and MAC/op counts."""
        counts: dict[str, float] = {}
        digital = [0]
        x, y = self._test_set()
        predicted = predict(self.net, x, counting_matmul(state["sw_w"], counts), state["sw_net"],
                            500, digital_ops=digital)
        counts["digital_ops"] = float(digital[0])
        counts["samples"] = float(len(y))
        write = {f"prune/energy/software/{k}": (np.array([v]), "") for k, v in counts.items()}
        write["prune/result/accuracy_software"] = (np.array([pred.accuracy(predicted, y)]), "")
        write["prune/result/test_predictions_software"] = (pred.stored(predicted), "")
        return write

    def _program(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg = self.cfg
        cells, targets, zero_side = program_targets(array, self.layout, state)
        vcfg = VerifyConfig(tolerance=cfg.verify_tolerance, max_pulses=cfg.verify_max_pulses,
                            amplitudes=((float("inf"), cfg.verify_set_V, cfg.verify_reset_V),),
                            trace_cells=0)
        if "verify" not in state:
            reset_to_hrs(array, zero_side, vcfg)
            state["verify"] = {}
        rounds = verify_steps(array, cells, targets, vcfg, state["verify"], group="prune/program")
        for label, append in merged(rounds, MERGE_ROUNDS):
            if state["verify"].get("phase") == "done":
                state["stage"] = "programmed"
            yield self._step(array, state, label, append=append)
        state["stage"] = "programmed"

    def _programmed(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        write = programmed_readback(array, self.layout, state)
        write.update(self._chip_test(array, "programmed", state["sw_net"],
                                     state["row_g_programmed"], state["prog_scale"]))
        state["stage"] = "done"
        yield self._step(array, state, "programmed network on the chip", write=write)


def merged(steps: Iterator[Step], every: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Join the appends of ``every`` consecutive sub-protocol steps into one record.

    The sub-protocol updates its state before each of its yields, so the state at a joined
    record's yield covers every step joined into it: resuming stays exact, with fewer
    checkpoints.
    """
    parts: list[dict[str, Any]] = []
    label = ""
    for step in steps:
        parts.append(step.append)
        label = step.label
        if len(parts) >= every:
            yield label, _join(parts)
            parts = []
    if parts:
        yield label, _join(parts)


def _join(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(k for p in parts for k in p):
        chunks = [np.asarray(p[name][0]) for p in parts if name in p]
        units = next(p[name][1] for p in parts if name in p)
        out[name] = (np.concatenate(chunks, axis=0) if chunks[0].ndim else np.stack(chunks), units)
    return out


def required_layout(net: Network) -> ChipLayout:
    """The array the network needs: one differential tile per weight layer plus 2 spare columns."""
    return plan_layout({n: (s.fan_in, s.fan_out) for n, s in net.weights.items()})


__all__ = ["PruneConfig", "PrunePipeline", "required_layout"]
