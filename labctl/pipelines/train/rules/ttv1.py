"""Tiki-Taka v1: A's column reads are pulsed into C with stochastic pulse trains, unbuffered.

Gokmen & Haensch, "Algorithm for training neural networks on resistive device arrays",
Front. Neurosci. 14, 103 (2020); reference/training.md section 3.  Each read column v of A is
written to the same line of C as a stochastic pulse-train update with x = the one-hot line
and d = -v (drawn by :func:`~labctl.pipelines.train.pulses.line_counts`), expected
``lr * |v| / bg`` pulses per cell (the gain of :meth:`TransferRule.lr_scale`, so TTv1 and
TTv2 move C at the same mean rate).  A is read
against its symmetry point (the algorithm assumes A's zero is where its device updates
balance).  aihwkit: ``build_config("ttv1", device)`` (``TransferCompound``, gamma 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from labctl.pipelines.train.rules.transfer import TransferConfig, TransferRule


@dataclass(frozen=True)
class TTv1Config(TransferConfig):
    transfer_bl_max: int = 31            # pulse-train cap of the transfer update [A]
    a_reference: str = "symmetry-point"


class TikiTakaV1(TransferRule):
    name: ClassVar[str] = "ttv1"
    Config: ClassVar[type] = TTv1Config

    def transfer(self, rows: np.ndarray, v: np.ndarray) -> None:
        c_tile = self.tiles["C"]
        c_tile.update_lines(rows, -v, self.lr_scale() * c_tile.dw_min, self.cfg.transfer_bl_max)
        return None
