"""A sparse layer on two-FeFET arrays: ``W_eff = S (.) (G+ - G-) / g_unit``, all in the array.

Seed 001 (Ning et al., Nat. Electron. 8, 222, 2025; reference/devices.md section 3): a cell is
a sparsity FeFET (on/off) in series with a weight FeFET, so masking, weight updates and
regrowth happen in the array and no index memory is needed.

Documented choice - **differential pair of arrays**: a weight is the difference of two cells,
one on the ``pos`` array and one on the ``neg`` array, at the same (row, col); rows are the
layer inputs, columns its outputs.  Pruning switches off the sparsity FeFETs of *both* cells,
so a pruned weight contributes ``~ g_on / on_off_ratio`` to both column currents and cancels
in the difference (~0).  One array against a shared reference column was rejected: a masked
cell would then contribute ``-G_ref``, not zero, and undoing that needs the mask digitally -
an index memory.

Weight updates are gate pulses in push-pull: a set count ``n`` is ``n`` potentiating pulses on
the ``pos`` cell and ``n`` depressing pulses on the ``neg`` cell (a reset count the other way
round), so ``dw_min`` is twice one device's step.  The VAU drives all cells through
``pulse_outer`` (row/column vectors; falls back to per-cell ``pulse`` on a backend without
parallel update); the exact update addresses only active cells with ``pulse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.array import Array, Cells, OuterProductCapable
from labctl.errors import ConfigError
from labctl.pipelines.sparse.vau import PulseCounts


@dataclass(frozen=True)
class PulseConfig:
    """Gate pulses of the weight FeFETs and the limits of one update step.

    ``amplitude_V``/``width_s``: gate pulse (the ``mos2-fefet-2t`` preset's nominal pulse is
    +-3 V, 100 us, a placeholder [C]; the pipeline defaults to 2.0 V for finer steps);
    ``slots``: VAU time slots per sample (aihwkit's ``desired_bl``, 31);
    ``max_count``: largest exact per-cell count per sample; ``calibration_pulses``: pulses per
    direction when measuring ``dw_min``.
    """

    amplitude_V: float = 3.0
    width_s: float = 100e-6
    slots: int = 31
    max_count: int = 8
    calibration_pulses: int = 4

    def validate(self) -> None:
        if self.amplitude_V <= 0 or self.width_s <= 0:
            raise ConfigError("pulse amplitude and width must be positive", key="pulse")
        if min(self.slots, self.max_count, self.calibration_pulses) < 1:
            raise ConfigError("slots, max_count and calibration_pulses must be >= 1",
                              key="pulse")


class SparseLayer:
    """One weight matrix (fan_in x fan_out) on a pair of equally shaped arrays."""

    def __init__(self, pos: Array, neg: Array, pulse: PulseConfig, name: str = "layer") -> None:
        if pos.info.shape != neg.info.shape:
            raise ConfigError(f"{name}: the arrays of a differential pair differ in shape "
                              f"({pos.info.shape} vs {neg.info.shape})", key="arrays")
        self.pos, self.neg, self.cfg, self.name = pos, neg, pulse, name
        info = pos.info
        self.shape: tuple[int, int] = info.shape
        self.g_unit_S = float(info.g_max_S - info.g_min_S)
        self.input_V = float(info.read_voltage_V)
        self.dw_min = float("nan")
        self.mask = np.ones(self.shape, bool)  # the controller's copy of what it wrote
        self.pulses = 0                         # gate pulses applied (both arrays)
        self.mask_writes = 0                    # sparsity-FeFET switchings (both arrays)
        self.slots = 0                          # pulse time slots of the training updates

    # --- analog compute ------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x @ W_eff`` for inputs in [0, 1] (row voltages ``x * V_read``)."""
        v = np.clip(np.asarray(x, np.float64), 0.0, 1.0) * self.input_V
        i = self.pos.mvm(v) - self.neg.mvm(v)
        return i / (self.input_V * self.g_unit_S)

    def backward(self, d: np.ndarray) -> np.ndarray:
        """``d @ W_eff^T`` through the transposed MVM (column voltages scaled to +-V_read)."""
        d = np.asarray(d, np.float64)
        scale = float(np.abs(d).max())
        if scale == 0.0:
            return np.zeros((d.shape[0], self.shape[0]))
        v = d / scale * self.input_V
        i = self.pos.mvm(v, transpose=True) - self.neg.mvm(v, transpose=True)
        return i / (self.input_V * self.g_unit_S) * scale

    def read_weights(self) -> np.ndarray:
        """Effective weights from conductance reads of both arrays (masked cells read ~0)."""
        gp = self.pos.read(Cells.all()).reshape(self.shape)
        gn = self.neg.read(Cells.all()).reshape(self.shape)
        return (gp - gn) / self.g_unit_S

    # --- programming ---------------------------------------------------------------------------
    def apply(self, counts: PulseCounts, mode: str) -> None:
        """Gate pulses of one update: ``vau`` on every cell, ``cell``/``cell-batch`` on the
        addressed cells (``cell``: the samples' set and reset pulses, ``cell-batch``: the net)."""
        if mode == "vau":
            self._apply_lines(counts.up, counts.down)
        elif mode == "cell":
            self._apply_cells(counts.up)
            self._apply_cells(-counts.down)
        else:
            self._apply_cells(counts.net)
        self.slots += counts.slots

    def _apply_lines(self, up: np.ndarray, down: np.ndarray) -> None:
        a, w = self.cfg.amplitude_V, self.cfg.width_s
        for counts in (up, -down):
            if not counts.any():
                continue
            for arr, sign in ((self.pos, 1), (self.neg, -1)):
                if isinstance(arr, OuterProductCapable):
                    arr.pulse_outer(sign * counts, w, set_V=a, reset_V=a)
                else:
                    sel = counts != 0
                    arr.pulse(Cells.from_mask(sel), sign * a * np.sign(counts[sel]), w,
                              count=np.abs(counts[sel]))
            self.pulses += 2 * int(np.abs(counts).sum())

    def _apply_cells(self, net: np.ndarray) -> None:
        sel = net != 0
        if not sel.any():
            return
        n, a = net[sel], self.cfg.amplitude_V
        cells = Cells.from_mask(sel)
        self.pos.pulse(cells, a * np.sign(n), self.cfg.width_s, count=np.abs(n))
        self.neg.pulse(cells, -a * np.sign(n), self.cfg.width_s, count=np.abs(n))
        self.pulses += 2 * int(np.abs(n).sum())

    def zero_weights(self, sel: np.ndarray, reads: int = 4) -> None:
        """Program the selected pairs to ~zero weight: RigL starts regrown connections at 0.

        Open loop from the mean of ``reads`` reads (read noise averages down): the VAU has been
        writing the dense gradient into these masked cells, so they hold a random-walk weight.
        """
        sel = np.asarray(sel, bool)
        if not sel.any():
            return
        cells = Cells.from_mask(sel)
        w = sum(self.pos.read(cells) - self.neg.read(cells) for _ in range(reads)) \
            / (reads * self.g_unit_S)
        n = np.zeros(self.shape, np.int64)
        limit = 8 * self.cfg.max_count
        n[sel] = np.clip(np.rint(-w / self.dw_min), -limit, limit).astype(np.int64)
        self._apply_cells(n)
        self.slots += int(np.abs(n).sum())

    def calibrate(self) -> float:
        """Measure ``dw_min``: mean weight step of one push-pull pulse, from reads of all cells.

        ``n`` set pulses then ``n`` reset pulses on every cell (the weights end near where they
        started); signed means over all cells keep read noise from biasing the step.
        """
        n, a, w = self.cfg.calibration_pulses, self.cfg.amplitude_V, self.cfg.width_s
        steps, var = [], 0.0
        for sign in (1, -1):
            before = self.read_weights()
            self.pos.pulse(Cells.all(), sign * a, w, count=n)
            self.neg.pulse(Cells.all(), -sign * a, w, count=n)
            self.pulses += 2 * n * self.mask.size
            moved = (self.read_weights() - before)[self.mask] / n
            steps.append(sign * float(np.mean(moved)))
            var += float(np.var(moved)) / max(moved.size, 1)
        self.dw_min = float(np.mean(steps))
        # a step within three standard errors of zero is read noise, not a weight update
        # (pulses below the coercive voltage then "train" at chance with a dw_min of ~0)
        stderr = 0.5 * np.sqrt(var)
        if not np.isfinite(self.dw_min) or self.dw_min <= 3.0 * stderr:
            raise ConfigError(f"{self.name}: gate pulses of {a} V, {w:.3g} s do not move the "
                              f"weights measurably (step {self.dw_min:.3g} +- {stderr:.2g}); "
                              f"raise --pulse-V or --pulse-width-s", key="pulse")
        return self.dw_min

    def set_mask(self, new: np.ndarray) -> int:
        """Write the sparsity FeFETs of both arrays where ``new`` differs; returns cells changed."""
        new = np.asarray(new, bool)
        changed = new != self.mask
        for enable in (True, False):
            sel = changed & (new == enable)
            if sel.any():
                for arr in (self.pos, self.neg):
                    arr.mask(Cells.from_mask(sel), enable)
        self.mask = new.copy()
        n = int(changed.sum())
        self.mask_writes += 2 * n
        return n

    def read_mask(self, threshold_S: float | None = None) -> np.ndarray:
        """The mask as the array shows it: cells whose pair conducts above ``threshold_S``.

        A masked pair conducts ~g_on / on_off_ratio; an active one at least ~g_min.  Default
        threshold: g_min / 10 (from the array's conductance window)."""
        thr = self.pos.info.g_min_S / 10 if threshold_S is None else threshold_S
        gp = self.pos.read(Cells.all()).reshape(self.shape)
        gn = self.neg.read(Cells.all()).reshape(self.shape)
        return (gp > thr) & (gn > thr)

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"dw_min": self.dw_min, "mask": self.mask.astype(np.uint8), "pulses": self.pulses,
                "mask_writes": self.mask_writes, "slots": self.slots}

    def load_state(self, s: dict[str, Any]) -> None:
        self.dw_min = float(s["dw_min"])
        self.mask = np.asarray(s["mask"]).astype(bool)
        self.pulses = int(s["pulses"])
        self.mask_writes = int(s["mask_writes"])
        self.slots = int(s["slots"])
