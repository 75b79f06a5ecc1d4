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

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, cast

import numpy as np

from labctl.errors import ConfigError
from labctl.normals import standard_normal_f32

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
            if not math.isfinite(v) and not (k == "ceiling_S" and v == float("inf")):
                raise ConfigError(f"[{where}] {k} must be a finite number, got {v}",
                                  key=f"{where}.{k}")
        required = [f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING]
        absent = [k for k in required if k not in values]
        if absent:
            raise ConfigError(f"[{where}] is missing {', '.join(absent)}",
                              key=f"{where}.{absent[0]}")
        spec = cls(**{k: float(v) for k, v in values.items()})
        spec.validate(where)
        return spec

    def validate(self, where: str = "pulse") -> None:
        if not 0 <= self.g_min_S < self.g_max_S:
            raise ConfigError(f"[{where}] needs 0 <= g_min_S < g_max_S", key=f"{where}.g_min_S")
        # dw_min is the step from the open bound as a fraction of the window: above 1 a
        # single pulse would cross the whole window (a fit of a few noisy pulses can give it)
        if not 0 < self.dw_min <= 1 or not -1 < self.asymmetry < 1:
            raise ConfigError(f"[{where}] needs 0 < dw_min <= 1 and -1 < asymmetry < 1",
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


Direction = bool | np.ndarray   # True = up for every cell, or per cell (bool)
Drive = float | np.ndarray

#: columns of a :class:`ParamTable` and rows of the blocks it gives
BOUND, DWA, SIGMA, GAMMA, WIDTH = range(5)


@dataclass(frozen=True)
class ParamTable:
    """The per-cell parameters of :meth:`PulseResponseSpec.draw` packed for pulsing.

    ``rows`` is (2 * cells, 4) float32: row ``2 i`` holds what an up pulse on cell i uses,
    row ``2 i + 1`` what a down pulse uses (bound, dw_min (1 +- a), sigma, gamma), so a
    pulse call gathers each addressed cell once, 16 bytes, instead of once per key;
    ``width`` (G_max - G_min per cell) is only gathered when the exponents are not 1.
    """

    rows: np.ndarray
    width: np.ndarray

    @classmethod
    def pack(cls, p: dict[str, np.ndarray]) -> ParamTable:
        def flat(key: str) -> np.ndarray:
            return np.asarray(p[key], np.float32).reshape(-1)

        one = np.float32(1.0)
        gmin, gmax, dw, asym = flat("pr_gmin"), flat("pr_gmax"), flat("pr_dw"), flat("pr_asym")
        rows = np.empty((gmin.size, 2, 4), np.float32)
        rows[:, :, BOUND] = np.stack([gmax, gmin], axis=1)
        rows[:, :, DWA] = np.stack([dw * (one + asym), dw * (one - asym)], axis=1)
        rows[:, :, SIGMA] = flat("pr_sigma")[:, None]
        rows[:, :, GAMMA] = np.stack([flat("pr_gamma_up"), flat("pr_gamma_down")], axis=1)
        return cls(rows.reshape(-1, 4), gmax - gmin)

    def take(self, flat: np.ndarray, up: Direction, width: bool = False) -> np.ndarray:
        """The block of the cells ``flat`` pulsed in direction(s) ``up``: (4, k) float32 with
        rows BOUND, DWA, SIGMA, GAMMA, plus a WIDTH row with ``width``."""
        flat = np.asarray(flat, np.int64)
        idx = 2 * flat
        if isinstance(up, bool | np.bool_):
            if not up:
                idx += 1
        else:
            idx += ~np.asarray(up, bool)
        block = np.take(self.rows, idx, axis=0).T   # (a strided view: each row is used once)
        if width:
            return np.concatenate([block, self.width[flat][None, :]])
        return block


@dataclass(frozen=True)
class PulseTerms:
    """Per-cell constants of one pulse call, in the form the pulse loop uses.

    The signed mean step of the module docstring is, for either direction,

        dG = coef * W * spow((bound - G) / W, gamma) * G**beta

    with ``bound = G_max`` (up) or ``G_min`` (down), ``coef = dw_min (1 +- a) s G_ref**-beta``
    and ``spow(r, gamma) = sign(r) |r|**gamma``, because ``(1 - x) W = G_max - G`` and
    ``-x W = G_min - G``; for ``gamma = 1`` it is ``coef * (bound - G) * G**beta``.
    Its noise has variance ``sigma**2 dG**2 + gate2 G**2`` (``gate2 = (sigma_g min(s, 1))**2``).
    All float32 (steps need ~1e-7 relative precision, not the state's float64).
    """

    bound: np.ndarray
    coef: np.ndarray
    sigma: np.ndarray
    gate2: np.ndarray | np.float32
    width: np.ndarray | None = None    # only for gamma != 1
    gamma: np.ndarray | None = None

    @classmethod
    def of(cls, block: np.ndarray, drive: Drive, spec: PulseResponseSpec) -> PulseTerms:
        """From a :meth:`ParamTable.take` block and the drive factor(s) of the pulses."""
        # np.isscalar's TypeGuard forgets that a scalar Drive is a float
        s = (np.float32(cast(float, drive)) if np.isscalar(drive)
             else np.asarray(drive, np.float32))
        gate2: np.ndarray | np.float32 = np.float32(0.0)
        if spec.sigma_g_rel:   # (else unused: skip the per-cell arrays and their gathers)
            gate = np.minimum(s, np.float32(1.0)) * np.float32(spec.sigma_g_rel)
            gate2 = gate * gate
        if spec.g_exponent:
            s = s * np.float32(spec.g_ref_S ** -spec.g_exponent)
        width = gamma = None
        if not spec.unit_gamma:
            width, gamma = block[WIDTH], block[GAMMA]
        return cls(block[BOUND], block[DWA] * s, block[SIGMA], gate2, width, gamma)

    def take(self, idx: np.ndarray) -> PulseTerms:
        """The terms of the cells ``idx``."""
        def t(v: Any) -> Any:
            return v[idx] if isinstance(v, np.ndarray) and v.ndim else v

        return PulseTerms(t(self.bound), t(self.coef), t(self.sigma), t(self.gate2),
                          t(self.width), t(self.gamma))


def _power(x: np.ndarray, beta: float) -> np.ndarray:
    """``x**beta`` in place for x > 0; beta = 1/2, 3/4 and 1 by square roots (~1.5x faster
    than numpy's float32 power, which calls libm once per value)."""
    if beta == 1.0:
        return x
    if beta == 0.5:
        return np.sqrt(x, out=x)
    if beta == 0.75:
        r = np.sqrt(x)
        np.sqrt(r, out=x)
        x *= r
        return x
    return np.power(x, np.float32(beta), out=x)


def _pulse_in_place(g: np.ndarray, t: PulseTerms, spec: PulseResponseSpec, z: np.ndarray,
                    boost: np.ndarray | None) -> None:
    """One pulse on every cell of ``g`` (float64, updated in place); ``z`` standard normals.

    Without the G-proportional term the noisy step is ``m (1 + sigma z)``: it has the
    distribution of ``m + sigma |m| z`` (z is symmetric and independent of m) in fewer passes.
    """
    g32 = g.astype(np.float32)
    m = np.subtract(t.bound, g32)          # signed mean step, see PulseTerms
    if t.gamma is not None:
        m /= t.width
        m = np.copysign(np.power(np.abs(m), t.gamma), m)
        m *= t.width
    m *= t.coef
    if boost is not None:
        m *= boost
    var_g = None
    if spec.sigma_g_rel:
        var_g = np.square(g32)
        var_g *= t.gate2 if boost is None else t.gate2 * boost * boost
    if spec.g_exponent:
        np.maximum(g32, np.float32(spec.g_min_S * 0.1 + 1e-12), out=g32)
        m *= _power(g32, spec.g_exponent)
    if var_g is None:
        w = np.multiply(t.sigma, z)
        w += np.float32(1.0)
        m *= w
    else:
        sd = np.square(m)
        sd *= np.square(t.sigma)
        sd += var_g
        np.sqrt(sd, out=sd)
        sd *= z
        m += sd
    g += m
    np.maximum(g, spec.floor_S, out=g)
    if spec.ceiling_S != float("inf"):
        np.minimum(g, spec.ceiling_S, out=g)


def apply_pulses(g: np.ndarray, block: np.ndarray, drive: Drive, count: np.ndarray,
                 spec: PulseResponseSpec, rng: np.random.Generator, *,
                 boost0: np.ndarray | None = None, boost_pulses: float = 1.0,
                 in_place: bool = False) -> np.ndarray:
    """``count[k]`` identical pulses on cell k; returns the new conductances.

    ``block`` is a block of :meth:`ParamTable.take` (it fixes each cell's
    direction); ``drive`` is per cell or one value for all.  Loops over the pulse index
    with a shrinking active set (gathered only when it shrinks), so a mix of counts costs
    ``sum(count)`` cell-updates, never a Python loop over cells; the noise of all of them
    is drawn at once.  With ``boost0`` the j-th pulse of this call acts
    ``1 + boost0 * exp(-j / boost_pulses)`` times coarser.  ``in_place``: ``g`` (float64)
    is the caller's scratch copy and becomes the result.
    """
    if not (in_place and g.dtype == np.float64):
        g = np.array(g, dtype=np.float64)
    count = np.asarray(count)
    terms = PulseTerms.of(block, drive, spec)
    z = standard_normal_f32(rng, int(count.sum()))
    used = 0
    idx: np.ndarray | None = None   # cells still pulsing; None = all of them
    sub, sub_count, sub_b = g, count, boost0
    for k in range(int(count.max(initial=0))):
        alive = sub_count > k
        if not alive.all():
            keep = np.flatnonzero(alive)
            if idx is not None:
                g[idx] = sub
            idx = keep if idx is None else idx[keep]
            sub, sub_count, terms = g[idx], sub_count[keep], terms.take(keep)
            sub_b = None if sub_b is None else sub_b[keep]
        b = None if sub_b is None else (1.0 + sub_b * np.exp(-k / boost_pulses)).astype(np.float32)
        _pulse_in_place(sub, terms, spec, z[used:used + sub.size], b)
        used += sub.size
    if idx is not None:
        g[idx] = sub
    return g
