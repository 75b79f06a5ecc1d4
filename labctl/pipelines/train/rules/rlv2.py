"""Residual learning v2 (RLv2): RL with a digital low-pass buffer and threshold transfer.

Wu et al. (seed 003, arXiv 2502.06309); reference/training.md section 3.  For limited
response granularity and read noise: H <- (1 - beta) H + beta (P + eps) (eps: the read noise
of the column read), and W gets one pulse where |H| >= dw_min(W), H keeping the remainder
(H -= dw_min sign(H)).  Reading one line every ``transfer_every`` samples, the filter of a
line advances by the number of batches since its last read: beta_read = 1 - (1 - beta)^s and
up to ceil(s) pulses per read, s = batches per sweep.  Defaults as RL (seed 003 MNIST FCN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.pipelines.train.pulses import row_counts
from labctl.pipelines.train.rules.rl import ResidualLearning, RLConfig
from labctl.pipelines.train.tile import AnalogTile


@dataclass(frozen=True)
class RLv2Config(RLConfig):
    pass


class ResidualLearningV2(ResidualLearning):
    name: ClassVar[str] = "rlv2"
    Config: ClassVar[type] = RLv2Config

    def __init__(self, cfg: Any, tiles: dict[str, AnalogTile], rng: np.random.Generator) -> None:
        super().__init__(cfg, tiles, rng)
        self.H = np.zeros((self.n_in, self.n_out))

    def transfer(self, rows: np.ndarray, p: np.ndarray, sweep: float) -> None:
        b = 1.0 - (1.0 - self.cfg.beta) ** sweep
        h = (1.0 - b) * self.H[rows] + b * p
        dw = self.tiles["W"].dw_min
        n_max = int(np.ceil(sweep))
        n = np.clip(np.trunc(h / dw), -n_max, n_max).astype(np.int64)
        self.H[rows] = h - n * dw
        if n.any():
            self.tiles["W"].apply(row_counts((self.n_in, self.n_out), rows, n))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "H": self.H.copy()}

    def load_state(self, s: dict[str, Any]) -> None:
        super().load_state(s)
        self.H = np.array(s["H"], dtype=float)
