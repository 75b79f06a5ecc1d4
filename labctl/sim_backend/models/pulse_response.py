"""Generalized soft-bounds / power-step pulse response, vectorised over cells.

The training model of seed 004 (Falcone et al., arXiv 2502.04524; reconstruction in
reference/devices.md section 1, consistent with IBM aihwkit's SoftBounds / PowStep
family).  With ``x = (G - G_min) / (G_max - G_min)`` and ``W = G_max - G_min``:

    up:   dG = + dw_min * (1 + a) * (1 - x)**gamma_up   * W * s * (G / G_ref)**beta
    down: dG = - dw_min * (1 - a) * x**gamma_down       * W * s * (G / G_ref)**beta

plus cycle-to-cycle noise of standard deviation ``sqrt((sigma * |dG|)**2 + (sigma_g * G)**2)``
per pulse: ``sigma`` is the aihwkit term (multiplicative on the step), ``sigma_g`` a
term proportional to the conductance itself (scaled by ``min(s, 1)`` so that a pulse
below the switching threshold disturbs nothing).  ``s`` is a per-pulse drive factor (pulse
amplitude, width, gate) supplied by the device model.  ``beta = 0`` and ``sigma_g = 0``
give exactly the devices.md form; ``beta > 0`` makes steps scale with the current
through the cell (a "current-driven" generalisation), which keeps closed-loop
programming equally hard across the window.  Every parameter is drawn per device from a
Gaussian (``*_d2d``), ``dw_min`` log-normally.  Beyond a bound the step turns back
towards it, so noise cannot carry a saturated device away.  An optional per-cell
``boost`` (>= 1) makes a pulse coarser in mean and noise (a transient the device model
decides on, e.g. right after a full reset).

Reusable by any model whose state is a bounded conductance-like weight (FeFET, ReRAM):
state and parameters are plain arrays, the RNG is explicit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from labctl.errors import ConfigError

#: per-cell parameter arrays a response needs (keys of :meth:`PulseResponseSpec.draw`)
PARAM_KEYS = ("pr_gmin", "pr_gmax", "pr_dw", "pr_asym", "pr_gamma_up", "pr_gamma_down",
              "pr_sigma")


@dataclass(frozen=True)
class PulseResponseSpec:
    """Population means and device-to-device spreads of the soft-bounds parameters."""

    g_min_S: float
    g_max_S: float
    dw_min: float                 # step at x = 0 (up) / 1 (down), as a fraction of the window
    asymmetry: float              # a: up/down asymmetry, places the symmetry point
    gamma_up: float = 1.0
    gamma_down: float = 1.0
    sigma_c2c: float = 0.0        # multiplicative cycle-to-cycle noise on the step
    sigma_g_rel: float = 0.0      # cycle-to-cycle noise proportional to G
    g_exponent: float = 0.0       # beta: step ~ (G / g_ref)**beta
    g_ref_S: float = 1.0
    g_min_d2d_S: float = 0.0
    g_max_d2d_S: float = 0.0
    dw_min_d2d_ln: float = 0.0    # log-normal spread of dw_min
    asymmetry_d2d: float = 0.0
    gamma_d2d: float = 0.0
    sigma_c2c_d2d: float = 0.0
    floor_S: float = 0.0          # hard limits of the physical state (the step never leaves them)
    ceiling_S: float = float("inf")

    @classmethod
    def from_dict(cls, table: dict[str, Any], where: str = "pulse") -> PulseResponseSpec:
        """Build from a preset table; unknown keys are left to the caller's model."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in table.items() if k in known}
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"[{where}] {k} must be a number", key=f"{where}.{k}")
        try:
            spec = cls(**{k: float(v) for k, v in values.items()})
        except TypeError as exc:
            raise ConfigError(f"[{where}] is missing a parameter ({exc})", key=where) from exc
        spec.validate(where)
        return spec

    def validate(self, where: str = "pulse") -> None:
        if not 0 <= self.g_min_S < self.g_max_S:
            raise ConfigError(f"[{where}] needs 0 <= g_min_S < g_max_S", key=f"{where}.g_min_S")
        if self.dw_min <= 0 or not -1 < self.asymmetry < 1:
            raise ConfigError(f"[{where}] needs dw_min > 0 and -1 < asymmetry < 1",
                              key=f"{where}.dw_min")
        if min(self.gamma_up, self.gamma_down, self.g_ref_S) <= 0:
            raise ConfigError(f"[{where}] gammas and g_ref_S must be > 0", key=f"{where}.gamma_up")
        if min(self.sigma_c2c, self.sigma_g_rel, self.g_exponent) < 0:
            raise ConfigError(f"[{where}] noise terms and g_exponent must be >= 0",
                              key=f"{where}.sigma_c2c")

    @property
    def unit_gamma(self) -> bool:
        """Plain soft bounds (both exponents exactly 1 on every device): skip the powers."""
        return self.gamma_up == 1.0 and self.gamma_down == 1.0 and self.gamma_d2d == 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per-device parameters (float32 arrays of ``shape``), keys :data:`PARAM_KEYS`."""
        def gauss(mean: float, sd: float) -> np.ndarray:
            z = rng.standard_normal(shape, dtype=np.float32)
            return (mean + sd * z).astype(np.float32)

        gmin = np.maximum(gauss(self.g_min_S, self.g_min_d2d_S), 0.0)
        gmax = np.maximum(gauss(self.g_max_S, self.g_max_d2d_S), gmin * 1.5 + 1e-12)
        dw = (self.dw_min * np.exp(self.dw_min_d2d_ln * rng.standard_normal(shape))
              ).astype(np.float32)
        asym = np.clip(gauss(self.asymmetry, self.asymmetry_d2d), -0.95, 0.95)
        gup = np.maximum(gauss(self.gamma_up, self.gamma_d2d), 0.05)
        gdn = np.maximum(gauss(self.gamma_down, self.gamma_d2d), 0.05)
        sig = np.maximum(gauss(self.sigma_c2c, self.sigma_c2c_d2d), 0.0)
        return dict(zip(PARAM_KEYS, (gmin, gmax, dw, asym, gup, gdn, sig), strict=True))


Direction = bool | np.ndarray   # True = up for every cell, or per cell (bool or 0/1 floats)
Drive = float | np.ndarray


def _pick(up: Direction, if_up: np.ndarray | float, if_down: np.ndarray | float) -> Any:
    """``where(up, if_up, if_down)``; arithmetic blend for arrays (np.where on a random
    mask costs ~10x more)."""
    if isinstance(up, bool | np.bool_):
        return if_up if up else if_down
    u = up if up.dtype == np.float32 else up.astype(np.float32)
    return if_down + u * (np.subtract(if_up, if_down, dtype=np.float32))


def mean_step(g: np.ndarray, p: dict[str, np.ndarray], up: Direction, drive: Drive,
              spec: PulseResponseSpec) -> np.ndarray:
    """Expected step of one pulse in its own direction (siemens, negative beyond a bound).

    Computed in float32 (steps need ~1e-7 relative precision, not the state's float64).
    """
    g32 = g.astype(np.float32)
    gmin = p["pr_gmin"]
    w = p["pr_gmax"] - gmin
    x = (g32 - gmin) / w
    base = _pick(up, np.float32(1.0) - x, x)
    asym = _pick(up, np.float32(1.0) + p["pr_asym"], np.float32(1.0) - p["pr_asym"])
    if not spec.unit_gamma:
        # beyond a bound the "step" turns back towards it (sign(base) |base|**gamma), so
        # noise cannot carry a saturated device away from its bound
        gamma = _pick(up, p["pr_gamma_up"], p["pr_gamma_down"])
        base = np.copysign(np.power(np.abs(base), gamma), base)
    m = p["pr_dw"] * asym * base * w
    m *= np.float32(drive) if np.isscalar(drive) else np.asarray(drive, np.float32)
    if spec.g_exponent:
        floor = np.float32(spec.g_min_S * 0.1 + 1e-12)
        m *= np.power(np.maximum(g32, floor) * np.float32(1.0 / spec.g_ref_S),
                      np.float32(spec.g_exponent))
    return m


def one_pulse(g: np.ndarray, p: dict[str, np.ndarray], up: Direction, drive: Drive,
              spec: PulseResponseSpec, rng: np.random.Generator,
              boost: np.ndarray | None = None) -> np.ndarray:
    """Conductance after one pulse on every cell (up where ``up``, down elsewhere).

    ``boost`` (>= 1 per cell) multiplies the step and both noise terms: a transient
    coarse response (see :func:`apply_pulses`).
    """
    d = drive if boost is None else drive * boost
    m = mean_step(g, p, up, d, spec)
    sd = p["pr_sigma"] * np.abs(m)
    if spec.sigma_g_rel:
        gate = np.minimum(drive, 1.0) * np.float32(spec.sigma_g_rel)
        if boost is not None:
            gate = gate * boost
        gn = (gate * g).astype(np.float32)
        sd = np.sqrt(sd * sd + gn * gn)
    z = rng.standard_normal(g.shape, dtype=np.float32)
    signed = _pick(up, m, -m)
    out = g + (signed + sd * z)
    return np.clip(out, spec.floor_S, spec.ceiling_S, out=out)


def _subset(v: Any, idx: np.ndarray) -> Any:
    return v[idx] if isinstance(v, np.ndarray) and v.ndim else v


def apply_pulses(g: np.ndarray, p: dict[str, np.ndarray], up: Direction, drive: Drive,
                 count: np.ndarray, spec: PulseResponseSpec, rng: np.random.Generator, *,
                 boost0: np.ndarray | None = None, boost_pulses: float = 1.0) -> np.ndarray:
    """``count[k]`` identical pulses on cell k; returns the new conductances.

    ``up`` and ``drive`` may be per cell or one value for all.  Loops over the pulse index
    with a shrinking active set, so a mix of counts costs ``sum(count)`` cell-updates,
    never a Python loop over cells.  With ``boost0`` the j-th pulse of this call acts
    ``1 + boost0 * exp(-j / boost_pulses)`` times coarser.
    """
    g = np.array(g, dtype=np.float64)
    count = np.asarray(count)
    if isinstance(up, np.ndarray):
        up = up.astype(np.float32)  # 1 = up, 0 = down (see _pick)
    n_max = int(count.max(initial=0))
    idx: np.ndarray | None = None  # None = every cell is still active
    sub_p, sub_up, sub_drive, sub_b = p, up, drive, boost0
    for k in range(n_max):
        if k > 0:
            alive = count > k if idx is None else count[idx] > k
            if not alive.all():
                keep = np.flatnonzero(alive)
                idx = keep if idx is None else idx[keep]
                sub_p = {key: v[keep] for key, v in sub_p.items()}
                sub_up, sub_drive = _subset(sub_up, keep), _subset(sub_drive, keep)
                sub_b = None if sub_b is None else sub_b[keep]
        b = None if sub_b is None else (1.0 + sub_b * np.exp(-k / boost_pulses)).astype(np.float32)
        if idx is None:
            g = one_pulse(g, sub_p, sub_up, sub_drive, spec, rng, b)
        else:
            g[idx] = one_pulse(g[idx], sub_p, sub_up, sub_drive, spec, rng, b)
    return g
