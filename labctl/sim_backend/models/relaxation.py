"""Conductance relaxation over log time after programming (seed 004, devices.md section 1).

Falcone et al. (arXiv 2502.04524) fit the drift of programmed levels at 50 uS, independent
of the target, for t >= 1 s after programming (t in s, natural log) [A/B]:

    mean shift = mean_slope * ln t          (-0.0890 uS per e-fold)
    sigma      = sigma_slope * ln t + sigma_intercept   (0.0420 uS, 0.4118 uS)

Each programming event draws one standard-normal coefficient ``z`` per cell; the relaxed
conductance at time ``t`` after it is ``G_prog + mean(t) + sigma(t) * z``.  The same cell
read twice at the same time therefore relaxes to the same value (reads add fresh read
noise on top), and across cells mean and spread follow the fits exactly.  Below 1 s the
fits do not apply: the shift is zero and the spread grows as
``sigma(1 s) * ln(1 + t/onset) / ln(1 + 1/onset)`` (placeholder onset), so a cell read
right after its pulse (program-verify) sees no relaxation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.errors import ConfigError


@dataclass(frozen=True)
class RelaxationSpec:
    mean_slope_S: float = -0.0890e-6      # [A/B] per ln(s)
    sigma_slope_S: float = 0.0420e-6      # [A/B] per ln(s)
    sigma_intercept_S: float = 0.4118e-6  # [A/B] at t = 1 s
    t_min_s: float = 1.0                  # [A] the fit starts at 1 s
    onset_s: float = 1e-3                 # placeholder: time constant of the sub-second onset
    floor_S: float = 0.1e-6               # placeholder: relaxation never drives G below this

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> RelaxationSpec:
        for k, v in table.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"[relaxation] {k} must be a finite number, got {v!r}",
                                  key=f"relaxation.{k}")
        try:
            spec = cls(**{k: float(v) for k, v in table.items()})
        except TypeError as exc:
            raise ConfigError(f"[relaxation] has an unknown key ({exc})", key="relaxation") from exc
        if spec.t_min_s <= 0 or spec.onset_s <= 0 or spec.sigma_intercept_S < 0:
            raise ConfigError("[relaxation] needs t_min_s > 0, onset_s > 0, sigma_intercept_S >= 0",
                              key="relaxation")
        return spec

    def mean_shift_S(self, dt_s: np.ndarray) -> np.ndarray:
        """Mean conductance change ``dt_s`` seconds after programming."""
        lt = np.log(np.maximum(dt_s, self.t_min_s) / self.t_min_s)
        return self.mean_slope_S * lt

    def sigma_S(self, dt_s: np.ndarray) -> np.ndarray:
        """Spread of the relaxed conductance ``dt_s`` seconds after programming."""
        dt = np.asarray(dt_s, dtype=float)
        lt = np.log(np.maximum(dt, self.t_min_s) / self.t_min_s)
        onset = np.log1p(np.maximum(dt, 0.0) / self.onset_s) / np.log1p(self.t_min_s / self.onset_s)
        return np.where(dt >= self.t_min_s, self.sigma_slope_S * lt + self.sigma_intercept_S,
                        self.sigma_intercept_S * onset)

    def relaxed(self, g_prog_S: np.ndarray, z: np.ndarray, dt_s: np.ndarray | float) -> np.ndarray:
        """Conductance ``dt_s`` after programming to ``g_prog_S`` with per-cell draw ``z``."""
        dt = np.asarray(dt_s, dtype=float)
        g = g_prog_S + self.mean_shift_S(dt) + self.sigma_S(dt) * z
        return np.maximum(g, np.minimum(self.floor_S, g_prog_S))
