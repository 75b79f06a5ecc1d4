"""Tiki-Taka v2: A's column reads accumulate in a digital buffer H; whole pulses go to C.

Gokmen, "Enabling training of neural networks on noisy hardware", Front. Artif. Intell. 4,
699148 (2021); reference/training.md section 3.  H += lr * v / bg for each read column v of
A; where |H| >= 1, trunc(H) pulses (at most ``transfer_pulses_max``) go to that cell of C and
H is forgotten (``forget_buffer``) or reduced by what was sent.  A is read against its
symmetry point: TTv2 converges only if A's zero is where its device updates balance (Rasch
et al., Nat. Commun. 15, 7133, 2024).  aihwkit: ``build_config("ttv2", device)``
(``ChoppedTransferCompound`` with ``in_chop_prob = 0``; aihwkit's preset uses a fixed
``fast_lr``, here auto-scaled like c-TTv2 and AGAD so the family is compared at one setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from labctl.pipelines.train.rules.transfer import TransferConfig, TransferRule


@dataclass(frozen=True)
class TTv2Config(TransferConfig):
    a_reference: str = "symmetry-point"


class TikiTakaV2(TransferRule):
    name: ClassVar[str] = "ttv2"
    Config: ClassVar[type] = TTv2Config

    def transfer(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.buffer_step(rows, v * self.lr_scale())
