"""Analog SGD: the gradient pulsed straight into the weight array.

Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016) (the stochastic pulse update); its dynamics
on non-ideal devices: Wu, Xiao, Gokmen, Fagbohungbe, Chen, "Analog in-memory training on
general non-ideal resistive elements: the impact of response functions" (seed 003,
arXiv 2502.06309).  With response functions F, G the update is
W <- W - lr grad * F(W) - lr |grad| * G(W): an asymmetric device adds an implicit penalty
that pulls W to the device's symmetry point (reference/training.md section 3).
aihwkit: ``build_config("sgd", device)`` with ``UpdateParameters(desired_bl=31)``.
Defaults: seed 003's MNIST FCN settings (alpha 0.05; sigmoid and batch 10 are set by
``labctl pipeline train``), the setting under which seed 003 compares it with residual
learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from labctl.pipelines.train.rules.base import UpdateRule


@dataclass(frozen=True)
class SGDConfig:
    lr: float = 0.05              # alpha, the learning rate of the pulsed update (seed 003) [A]
    bl_max: int = 31              # pulse-train length cap (training.md section 1) [A]
    w_reference: str = "mid"      # what w = 0 means on the array


class AnalogSGD(UpdateRule):
    name: ClassVar[str] = "sgd"
    roles: ClassVar[tuple[str, ...]] = ("W",)
    visible: ClassVar[str] = "W"
    Config: ClassVar[type] = SGDConfig

    def update(self, x: np.ndarray, d: np.ndarray) -> None:
        self.tiles["W"].update(x, d, self.cfg.lr, self.cfg.bl_max)
