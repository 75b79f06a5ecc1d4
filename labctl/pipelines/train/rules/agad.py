"""AGAD: analog gradient accumulation with a dynamic reference (Tiki-Taka v4).

Rasch, Carta, Fagbohungbe, Gokmen, "Fast and robust analog in-memory deep neural network
training", Nat. Commun. 15, 7133 (2024); reference/training.md section 3; aihwkit
``DynamicTransferCompound``.  Like c-TTv2, but A's zero is estimated on the fly: for each
input line a running mean of its reads during the current chopper period (momentum
``min(tail_weightening / period, 1)``) becomes the reference ``mu`` when the chopper switches,
and H accumulates ``c_j (v - mu) lr / bg``.  Choppers switch regularly every
``ceil(1 / in_chop_prob)`` sweeps; nothing is written to C during the first period.  Robust
to any offset of A, so A is read against the mid-window reference.

Defaults are the seed-004 training settings (Falcone et al., arXiv 2502.04524, Methods:
lr 1e-2, fast_lr 0.1, transfer every 3 steps, batch 32) with aihwkit's DynamicTransferCompound
defaults for the rest (in_chop_prob 0.1, tail_weightening 5).  aihwkit's AGAD presets use
fast_lr 0.5, in_chop_prob 0.02, tail_weightening 5, auto_granularity 1000, BL 31
(reference/training.md): pass them with --fast-lr/--rule-option to compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.pipelines.train.rules.cttv2 import ChoppedTTv2, CTTv2Config
from labctl.pipelines.train.tile import AnalogTile


@dataclass(frozen=True)
class AGADConfig(CTTv2Config):
    in_chop_prob: float = 0.1        # aihwkit DynamicTransferCompound default (seed 004) [A]
    in_chop_random: bool = False     # regular switching (aihwkit DynamicTransferCompound) [A]
    tail_weightening: float = 5.0    # aihwkit default [A]


class AGAD(ChoppedTTv2):
    name: ClassVar[str] = "agad"
    Config: ClassVar[type] = AGADConfig

    def __init__(self, cfg: Any, tiles: dict[str, AnalogTile], rng: np.random.Generator) -> None:
        super().__init__(cfg, tiles, rng)
        self.running_mean = np.zeros((self.n_in, self.n_out))
        self.past_mean = np.zeros((self.n_in, self.n_out))
        self.switched = np.zeros(self.n_in, dtype=bool)

    def transfer(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        period = self.chop_period()
        was = self.switched[rows]
        self.switched[rows] = False
        if was.any():
            self.past_mean[rows[was]] = self.running_mean[rows[was]]
        dw = (v - self.past_mean[rows]) * self.chop[rows, None]
        n = self.buffer_step(rows, dw * self.lr_scale())
        m = min(self.cfg.tail_weightening / period, 1.0)
        self.running_mean[rows] = self.running_mean[rows] * (1.0 - m) + v * m
        if self.sweeps <= period:
            n = np.zeros_like(n)  # first chopper period: no reference yet
        flip = self.switch_choppers(rows)
        self.switched[rows[flip]] = True
        return n

    def state(self) -> dict[str, Any]:
        return {**super().state(), "running_mean": self.running_mean.copy(),
                "past_mean": self.past_mean.copy(), "switched": self.switched.copy()}

    def load_state(self, s: dict[str, Any]) -> None:
        super().load_state(s)
        self.running_mean = np.array(s["running_mean"], dtype=float)
        self.past_mean = np.array(s["past_mean"], dtype=float)
        self.switched = np.array(s["switched"], dtype=bool)
