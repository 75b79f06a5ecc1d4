"""Residual learning (RL): a residual array P trained at W + gamma P, transferred into W.

Wu, Xiao, Gokmen, Fagbohungbe, Chen, "Analog in-memory training on general non-ideal
resistive elements: the impact of response functions" (seed 003, arXiv 2502.06309, NeurIPS
2025); reference/training.md section 3.  Bilevel problem: min_W ||P*(W)||^2 s.t.
P* in argmin_P f(W + gamma P).  Each batch:

1. the network computes with W_bar = W + gamma P (two MVMs, summed digitally);
2. P gets the analog SGD update with the gradient taken at W_bar (learning rate alpha);
3. transfer W <- W + beta P (F(W), G(W) applied by the device), as a stochastic pulse-train
   update of W from column reads of P, one line every ``transfer_every`` samples.  Reading
   only some lines per batch, each read line gets ``beta`` times the number of batches since
   its last read, so W moves by ``beta P`` per iteration on average, as in the paper.

P is read against its symmetry point (the zero-shifted reference under which RL converges
exactly); W against mid-window.  Defaults: seed 003's MNIST FCN settings (batch 10, alpha
0.05, beta 0.01, sigmoid) [A]; gamma is not given in our sources [C: 0.5].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.pipelines.train.rules.base import UpdateRule
from labctl.pipelines.train.rules.transfer import ColumnSchedule
from labctl.pipelines.train.tile import AnalogTile


@dataclass(frozen=True)
class RLConfig:
    lr: float = 0.05                  # alpha: P's pulsed SGD learning rate (seed 003) [A]
    beta: float = 0.01                # transfer rate per iteration (seed 003) [A]
    gamma: float = 0.5                # W_bar = W + gamma P [C]
    transfer_every: float = 1.0       # samples per column read of P [C]
    bl_max: int = 31                  # pulse-train cap (training.md section 1) [A]
    transfer_bl_max: int = 31
    w_reference: str = "mid"
    p_reference: str = "symmetry-point"


class ResidualLearning(UpdateRule):
    name: ClassVar[str] = "rl"
    roles: ClassVar[tuple[str, ...]] = ("W", "P")
    visible: ClassVar[str] = "W"
    Config: ClassVar[type] = RLConfig

    def __init__(self, cfg: Any, tiles: dict[str, AnalogTile], rng: np.random.Generator) -> None:
        super().__init__(cfg, tiles, rng)
        self.n_in, self.n_out = tiles["W"].rows, tiles["W"].cols
        self.schedule = ColumnSchedule(self.n_in, cfg.transfer_every)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.tiles["W"].forward(x) + self.cfg.gamma * self.tiles["P"].forward(x)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.tiles["W"].backward(d) + self.cfg.gamma * self.tiles["P"].backward(d)

    def update(self, x: np.ndarray, d: np.ndarray) -> None:
        self.tiles["P"].update(x, d, self.cfg.lr, self.cfg.bl_max)
        sweep = self.schedule.iterations_per_sweep(x.shape[0])
        for rows in self.schedule.chunks(x.shape[0]):
            self.transfer(rows, self.tiles["P"].read_rows(rows), sweep)

    def transfer(self, rows: np.ndarray, p: np.ndarray, sweep: float) -> None:
        """W's lines ``rows`` move by beta * sweep * P (stochastic pulse trains)."""
        onehot = np.zeros((rows.size, self.n_in))
        onehot[np.arange(rows.size), rows] = 1.0
        self.tiles["W"].update(onehot, -p, self.cfg.beta * sweep, self.cfg.transfer_bl_max)

    def effective_weights(self, maps: dict[str, np.ndarray]) -> np.ndarray:
        return maps["W"] + self.cfg.gamma * maps["P"]

    def state(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state()}

    def load_state(self, s: dict[str, Any]) -> None:
        self.schedule.load_state(s["schedule"])
