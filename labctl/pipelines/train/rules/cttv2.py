"""Chopped Tiki-Taka v2 (c-TTv2): TTv2 with a random sign chopper per input line.

Rasch, Carta, Fagbohungbe, Gokmen, "Fast and robust analog in-memory deep neural network
training", Nat. Commun. 15, 7133 (2024); reference/training.md section 3.  A chopper c_j = +-1
per input line multiplies the inputs written into A and is undone on read (H += c_j lr v / bg),
so a constant offset of A (its symmetry point away from the reference) alternates in sign in
H and cancels.  After each read of line j the chopper flips with probability
``in_chop_prob``.  A is read against the mid-window reference: the chopper is what removes
the offset.  aihwkit: ``build_config("c-ttv2", device)`` (``ChoppedTransferCompound``,
random switching, fast_lr 0.1, auto_scale), with the switching probability of aihwkit's
ReRAM c-TTv2 presets (``ChoppedTTv2ReRamESPreset``, ``ChoppedTTv2ReRamSBPreset``: 0.01)
rather than the compound's generic 0.1: A must hold the chopped gradient for longer than
its own memory, which grows as the device's steps get finer (docs/training.md: 0.1 costs
3.7 points on a ~1,000-state device, 0.01 ties on the coarse ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.pipelines.train.rules.transfer import TransferConfig, TransferRule
from labctl.pipelines.train.tile import AnalogTile


@dataclass(frozen=True)
class CTTv2Config(TransferConfig):
    in_chop_prob: float = 0.01       # aihwkit ChoppedTTv2ReRam{ES,SB}Preset [A]
    in_chop_random: bool = True      # random switching (aihwkit c-TTv2 default) [A]


class ChoppedTTv2(TransferRule):
    name: ClassVar[str] = "cttv2"
    Config: ClassVar[type] = CTTv2Config

    def __init__(self, cfg: Any, tiles: dict[str, AnalogTile], rng: np.random.Generator) -> None:
        super().__init__(cfg, tiles, rng)
        self.chop = np.ones(self.n_in)

    def chopper(self) -> np.ndarray:
        return self.chop

    def chop_period(self) -> int:
        """Reads of a line per chopper period for regular switching (aihwkit)."""
        p = self.cfg.in_chop_prob
        return max(int(np.ceil(1.0 / p)), 2) if p > 0 else 2

    def switch_choppers(self, rows: np.ndarray) -> np.ndarray:
        """Flip the choppers of lines just read; returns the boolean mask of flipped lines."""
        c = self.cfg
        if c.in_chop_prob <= 0:
            return np.zeros(rows.size, dtype=bool)
        if c.in_chop_random:
            flip = self.rng.random(rows.size) < c.in_chop_prob
        else:
            current = self.sweeps % self.chop_period() + 1
            flip = np.full(rows.size, current == self.chop_period())
        self.chop[rows[flip]] *= -1.0
        return flip

    def transfer(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        n = self.buffer_step(rows, v * (self.chop[rows, None] * self.lr_scale()))
        self.switch_choppers(rows)
        return n

    def state(self) -> dict[str, Any]:
        return {**super().state(), "chop": self.chop.copy()}

    def load_state(self, s: dict[str, Any]) -> None:
        super().load_state(s)
        self.chop = np.array(s["chop"], dtype=float)
