"""Weights -> target conductances, and measured currents -> weights again.

Two mappings (seed 004, Falcone et al. arXiv 2502.04524, Methods "HW-aware simulation of
analog MVM"; devices.md section 1 "Analog MVM benchmark"):

* ``reference`` -- one device per weight against a fixed reference conductance in the
  middle of the window: ``G = G_ref + w / w_max * (G_hi - G_lo) / 2``, so ``-w_max`` maps
  to ``G_lo`` and ``+w_max`` to ``G_hi``.  The readout subtracts ``G_ref * sum(V)``.  This is
  the seed's benchmark mapping (w in [-1, 1] onto [9.0, 88.19] uS).
* ``differential`` -- a pair per weight, ``G+`` in the even and ``G-`` in the odd device
  column next to it (so both see nearly the same wires):
  ``G+ = G_lo + max(w, 0) / w_max * (G_hi - G_lo)``, ``G- = G_lo + max(-w, 0) / w_max * ...``.
  The readout takes ``I+ - I-``; a common drift of both devices cancels.

Weights are normalised by ``w_max`` (the largest ``|w|`` unless given), so analog outputs
come back in units of ``w / w_max`` -- the units every RMSE in labctl is quoted in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.errors import ConfigError

MAPPINGS = ("differential", "reference")
#: default inset of the programming window from the chip's conductance window, as a fraction
#: of its span: keeps targets off the bounds where the closed loop cannot overshoot [C]
WINDOW_INSET = 0.0125


@dataclass(frozen=True)
class Mapping:
    """How weights become conductances; recorded in the run file of every transfer."""

    kind: str
    g_lo_S: float
    g_hi_S: float
    w_max: float

    def __post_init__(self) -> None:
        if self.kind not in MAPPINGS:
            raise ConfigError(f"mapping must be one of {', '.join(MAPPINGS)}, got {self.kind!r}",
                              key="mapping")
        if not (0 < self.g_lo_S < self.g_hi_S and np.isfinite(self.g_hi_S)):
            raise ConfigError(f"conductance window needs 0 < lo < hi, got {self.g_lo_S:g}.."
                              f"{self.g_hi_S:g} S", key="window")
        if not (self.w_max > 0 and np.isfinite(self.w_max)):
            raise ConfigError(f"--w-max must be finite and > 0, got {self.w_max}", key="w_max")

    @property
    def devices_per_weight(self) -> int:
        return 2 if self.kind == "differential" else 1

    @property
    def g_ref_S(self) -> float:
        """Reference conductance (reference mapping); 0 for differential pairs."""
        return 0.5 * (self.g_lo_S + self.g_hi_S) if self.kind == "reference" else 0.0

    @property
    def scale_S(self) -> float:
        """Conductance (or conductance difference) per unit of normalised weight."""
        span = self.g_hi_S - self.g_lo_S
        return span / 2 if self.kind == "reference" else span

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "g_ref_S": self.g_ref_S, "scale_S": self.scale_S,
                "devices_per_weight": self.devices_per_weight}

    def conductances(self, weights: npt.ArrayLike) -> np.ndarray:
        """Device targets (rows, cols * devices_per_weight) in siemens."""
        w = np.clip(np.asarray(weights, dtype=float) / self.w_max, -1.0, 1.0)
        if self.kind == "reference":
            return self.g_ref_S + w * self.scale_S
        g = np.empty((w.shape[0], 2 * w.shape[1]))
        g[:, 0::2] = self.g_lo_S + np.maximum(w, 0.0) * self.scale_S
        g[:, 1::2] = self.g_lo_S + np.maximum(-w, 0.0) * self.scale_S
        return g

    def weights(self, device_g_S: npt.ArrayLike) -> np.ndarray:
        """Normalised weights (w / w_max) that device conductances represent."""
        g = np.asarray(device_g_S, dtype=float)
        if self.kind == "reference":
            return (g - self.g_ref_S) / self.scale_S
        return (g[..., 0::2] - g[..., 1::2]) / self.scale_S

    def weight_terms(self, device_cols: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(weight column, sign) of device columns: a weight is the signed sum of its
        devices' conductances over ``scale_S`` (as in :meth:`weights`)."""
        dc = np.asarray(device_cols, dtype=np.int64)
        if self.kind == "reference":
            return dc, np.ones(dc.shape, dtype=np.int64)
        return dc // 2, np.where(dc % 2 == 0, 1, -1)

    def outputs(self, currents_A: npt.ArrayLike, inputs_V: npt.ArrayLike,
                volts_per_unit: float) -> np.ndarray:
        """Column currents (batch, device cols) -> outputs in units of normalised w times x.

        ``inputs_V`` (batch, rows) are the voltages that produced them; the reference mapping
        subtracts the reference current ``G_ref * sum(V)`` of every input vector.
        """
        i = np.asarray(currents_A, dtype=float)
        if self.kind == "reference":
            v_sum = np.asarray(inputs_V, dtype=float).sum(axis=-1, keepdims=True)
            diff = i - self.g_ref_S * v_sum
        else:
            diff = i[..., 0::2] - i[..., 1::2]
        return diff / (self.scale_S * volts_per_unit)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mapping:
        return cls(kind=str(d["kind"]), g_lo_S=float(d["g_lo_S"]), g_hi_S=float(d["g_hi_S"]),
                   w_max=float(d["w_max"]))


def default_window(g_min_S: float, g_max_S: float, inset: float = WINDOW_INSET) -> tuple[float,
                                                                                       float]:
    """The programming window inside the chip's window (``inset`` of the span at each end)."""
    span = g_max_S - g_min_S
    return g_min_S + inset * span, g_max_S - inset * span


def make_mapping(weights: np.ndarray, kind: str, window_S: tuple[float, float],
                 w_max: float | None = None) -> Mapping:
    """The mapping for ``weights``; ``w_max`` defaults to the largest ``|w|``."""
    if w_max is None:
        w_max = float(np.max(np.abs(weights))) if weights.size else 0.0
        if w_max == 0.0:
            raise ConfigError("all weights are zero: nothing to map", key="weights")
    return Mapping(kind=kind, g_lo_S=float(window_S[0]), g_hi_S=float(window_S[1]),
                   w_max=float(w_max))
