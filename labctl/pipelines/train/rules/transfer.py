"""The Tiki-Taka family's shared machinery: a fast array A, a slow array C, column transfers.

Gokmen & Haensch, Front. Neurosci. 14, 103 (2020) (Tiki-Taka), Gokmen, Front. Artif. Intell.
4, 699148 (2021) (TTv2), Rasch, Carta, Fagbohungbe, Gokmen, Nat. Commun. 15, 7133 (2024)
(c-TTv2, AGAD); reference/training.md section 3.  The network computes with C (aihwkit's
``gamma = 0``).  Each batch:

1. the gradient is pulsed into A with the stochastic pulse trains; with ``auto_scale`` the
   pulse-count learning rate is ``fast_lr * bl_max * dw_min(A) / (m_x m_d)``, m_x and m_d
   running means of the largest input and error (aihwkit ``ChoppedTransferCompound``);
2. every ``transfer_every`` samples one column of A (one input line: a row of our array) is
   read with a one-hot MVM, in sequence, wrapping around; the rule turns the read into
   pulses on the same line of C.

The transfer gain is aihwkit's: a read value v (weight units of A) contributes
``lr * v / bg`` C-pulses, with the buffer granularity ``bg = buffer_granularity * dw_min(A)``
(times ``auto_granularity / (in_size * transfer_every)`` when that is set).

With ``auto_scale`` A moves in units of its own step, so C's rate in weight units is
proportional to ``lr * dw_min``: seed 004's lr of 1e-2 is set for its ~20-state device, and
on a device with five times finer steps it trains C five times slower.  So the rule uses
``lr * lr_dw_min_ref / dw_min(C)`` when C's step is finer than ``lr_dw_min_ref`` (0.1:
seed 004's device calibrates to 0.11-0.13 here, so its runs keep lr as given); 0 turns
this off.  ``labctl pipeline train`` turns it off when ``--lr`` is given.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.pipelines.train.pulses import row_counts
from labctl.pipelines.train.rules.base import UpdateRule
from labctl.pipelines.train.tile import AnalogTile


@dataclass(frozen=True)
class TransferConfig:
    """Defaults: seed 004 AGAD settings (lr 1e-2, fast_lr 0.1, transfer every 3) [A] and
    aihwkit ``build_config`` for the rest (A update desired_bl 5, auto_scale, one transfer
    pulse) [A]."""

    lr: float = 1e-2
    lr_dw_min_ref: float = 0.1       # lr is for steps this coarse; finer C: lr * ref / dw_min
    fast_lr: float = 0.1
    transfer_every: float = 3.0      # samples (mat-vecs) per column read
    bl_max: int = 5
    auto_scale: bool = True
    auto_momentum: float = 0.99
    transfer_pulses_max: int = 1
    buffer_granularity: float = 1.0
    auto_granularity: float = 0.0
    forget_buffer: bool = True
    momentum: float = 0.0
    a_reference: str = "mid"
    c_reference: str = "mid"


class ColumnSchedule:
    """Which input lines to read this batch: one every ``every`` samples, in sequence."""

    def __init__(self, n_in: int, every: float) -> None:
        self.n_in = n_in
        self.every = float(every)
        self.seen = 0
        self.next_col = 0
        self.sweeps = 0  # completed passes over all lines

    def chunks(self, batch: int) -> Iterator[np.ndarray]:
        """Contiguous runs of lines due after ``batch`` more samples; consume them all.

        The counters advance after each run is consumed, so ``sweeps`` is the number of
        finished passes while a run is being processed.
        """
        if self.every <= 0:
            return
        n = int(np.floor((self.seen + batch) / self.every) - np.floor(self.seen / self.every))
        self.seen += batch
        while n > 0:
            k = min(n, self.n_in - self.next_col)
            yield np.arange(self.next_col, self.next_col + k)
            self.next_col += k
            n -= k
            if self.next_col == self.n_in:
                self.next_col = 0
                self.sweeps += 1

    def iterations_per_sweep(self, batch: int) -> float:
        """Batches between two reads of the same line (>= 1)."""
        return max(1.0, self.n_in * self.every / batch) if self.every > 0 else 1.0

    def state(self) -> dict[str, Any]:
        return {"seen": int(self.seen), "next_col": int(self.next_col),
                "sweeps": int(self.sweeps)}

    def load_state(self, s: dict[str, Any]) -> None:
        self.seen, self.next_col = int(s["seen"]), int(s["next_col"])
        self.sweeps = int(s["sweeps"])


class TransferRule(UpdateRule):
    """Base of TTv1, TTv2, c-TTv2 and AGAD: subclasses say what a column read does."""

    roles: ClassVar[tuple[str, ...]] = ("A", "C")
    visible: ClassVar[str] = "C"

    def __init__(self, cfg: Any, tiles: dict[str, AnalogTile], rng: np.random.Generator) -> None:
        super().__init__(cfg, tiles, rng)
        a = tiles["A"]
        self.n_in, self.n_out = a.rows, a.cols
        self.m_x = 0.0
        self.m_d = 0.0
        self.schedule = ColumnSchedule(self.n_in, cfg.transfer_every)
        self.H = np.zeros((self.n_in, self.n_out))

    # --- per batch ----------------------------------------------------------------------------
    def update(self, x: np.ndarray, d: np.ndarray) -> None:
        lr = self._fast_lr(x, d)
        chop = self.chopper()
        xs = x if chop is None else x * chop[None, :]
        self.tiles["A"].update(xs, d, lr, self.cfg.bl_max)
        self._transfers(x.shape[0])

    def chopper(self) -> np.ndarray | None:
        """Sign per input line written into A (None: no chopper)."""
        return None

    def _fast_lr(self, x: np.ndarray, d: np.ndarray) -> float:
        c = self.cfg
        if not c.auto_scale:
            return float(c.fast_lr)
        mx = float(np.abs(x).max(axis=1).mean())
        md = float(np.abs(d).max(axis=1).mean())
        tau = 1.0 - c.auto_momentum
        self.m_x = mx if self.m_x <= 0 else (1 - tau) * self.m_x + tau * mx
        self.m_d = md if self.m_d <= 0 else (1 - tau) * self.m_d + tau * md
        if self.m_x <= 0 or self.m_d <= 0:
            return 0.0
        return float(c.fast_lr * c.bl_max * self.tiles["A"].dw_min / (self.m_x * self.m_d))

    @property
    def sweeps(self) -> int:
        return self.schedule.sweeps

    def _transfers(self, batch: int) -> None:
        for rows in self.schedule.chunks(batch):
            v = self.tiles["A"].read_rows(rows)
            steps = self.transfer(rows, v)
            if steps is not None and steps.any():
                self.tiles["C"].apply(row_counts((self.n_in, self.n_out), rows, steps))

    @abstractmethod
    def transfer(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        """Column reads ``v`` (k, out) of A's lines ``rows`` -> signed C pulses (k, out)."""

    # --- helpers ------------------------------------------------------------------------------
    def lr_scale(self) -> float:
        """C-pulses per unit of A read (aihwkit ``getTransferLRScale``)."""
        c = self.cfg
        bg = c.buffer_granularity * self.tiles["A"].dw_min
        if c.auto_granularity > 0:
            bg *= c.auto_granularity / (self.n_in * c.transfer_every)
        return float(self.transfer_lr() / bg)

    def transfer_lr(self) -> float:
        """``lr``, raised on a device finer than ``lr_dw_min_ref`` (see the module doc)."""
        c = self.cfg
        dw = self.tiles["C"].dw_min
        if c.lr_dw_min_ref > 0 and 0 < dw < c.lr_dw_min_ref:
            return float(c.lr * c.lr_dw_min_ref / dw)
        return float(c.lr)

    def buffer_step(self, rows: np.ndarray, inc: np.ndarray) -> np.ndarray:
        """Accumulate into H; where |H| >= 1 fire trunc(H) pulses (capped) and forget."""
        c = self.cfg
        h = self.H[rows] + inc
        fire = np.abs(h) >= 1.0
        n = np.where(fire, np.clip(np.trunc(h), -c.transfer_pulses_max, c.transfer_pulses_max), 0)
        if c.forget_buffer:
            h = np.where(fire, h * c.momentum, h)
        else:
            h = h - (1.0 - c.momentum) * n
        self.H[rows] = h
        return n.astype(np.int64)

    # --- state --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"m_x": self.m_x, "m_d": self.m_d, "schedule": self.schedule.state(),
                "H": self.H.copy()}

    def load_state(self, s: dict[str, Any]) -> None:
        self.m_x, self.m_d = float(s["m_x"]), float(s["m_d"])
        self.schedule.load_state(s["schedule"])
        self.H = np.array(s["H"], dtype=float)
