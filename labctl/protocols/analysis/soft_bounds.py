"""Fit of the generalized soft-bounds / power-step model to open-loop traces, per device.

The training model of seed 004 (Falcone et al., arXiv 2502.04524, Methods 4.7; devices.md
section 1, a reconstruction consistent with IBM aihwkit's SoftBounds / PowStep family).
With ``W = G_max - G_min`` and ``x = (G - G_min) / W`` the expected single-pulse step is

    up:   + dw_min (1 + a) (1 - x)**gamma_up   W (G / g_ref)**beta
    down: - dw_min (1 - a) x**gamma_down       W (G / g_ref)**beta

and the cycle-to-cycle spread of a step is ``sqrt((sigma m)**2 + (sigma_g G)**2)``.

As in the seed, the parameters with a measured counterpart are anchored to it: the
asymmetry ``a`` places the model's symmetry point at the measured G_sp, ``dw_min``
reproduces the measured step there and ``sigma`` the measured NSR (after removing the
read noise, 2 sigma_read**2 per step, measured by repeated reads, and the ``sigma_g``
term).  The bounds and the exponents are fitted by least squares on every measured step
(the read after a pulse minus the read before).  The exponents are array parameters: one
2100-pulse trace at NSR ~ 0.9 does not pin a device's own gamma (fits of identical
simulated devices scatter by +/- 0.4), so every device gets the array median and
``gamma_d2d`` is 0.  These least-squares values start the simulation-based calibration
of :mod:`.calibrate`, which makes each device reproduce its measured figures of merit.
``beta``, ``g_ref`` and ``sigma_g`` describe the model's form and are given, not
fitted (``ModelForm``).  Device-to-device spreads are standard deviations across devices
minus the estimates' own variance, so estimation noise is not taken for device variation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from labctl.protocols.analysis.open_loop import FiguresOfMerit, Schedule


@dataclass(frozen=True)
class ModelForm:
    """The fixed form of the fitted model (taken from the simulator preset it will feed)."""

    g_exponent: float = 0.0      # beta
    g_ref_S: float = 1.0
    sigma_g_rel: float = 0.0
    floor_S: float = 0.0         # the state never leaves [floor_S, ceiling_S]
    ceiling_S: float = float("inf")


def mean_step(g: np.ndarray, up: np.ndarray, theta: np.ndarray, form: ModelForm) -> np.ndarray:
    """Signed expected step of one pulse from ``g``; theta = (gmin, gmax, ln dw, a, gu, gd)."""
    return StepModel(g, up, form)(theta)


class StepModel:
    """:func:`mean_step` at fixed ``g`` and directions for many theta (a least-squares fit
    evaluates it ~100 times a device): what does not depend on theta is computed once, and
    each direction's power only on its own pulses."""

    def __init__(self, g: np.ndarray, up: np.ndarray, form: ModelForm) -> None:
        self.g = np.asarray(g, dtype=float)
        flat_up = np.broadcast_to(np.asarray(up, dtype=bool), self.g.shape).ravel()
        self.i_up, self.i_down = np.flatnonzero(flat_up), np.flatnonzero(~flat_up)
        self.beta = _beta_factor(self.g, form)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        gmin, gmax, ln_dw, a, gu, gd = theta
        w = gmax - gmin
        x = np.clip((self.g - gmin) / w, 0.0, 1.0).ravel()
        shape = np.empty_like(x)
        shape[self.i_up] = (1 + a) * (1 - x[self.i_up]) ** gu
        shape[self.i_down] = (1 - a) * x[self.i_down] ** gd
        m = np.exp(ln_dw) * w * shape.reshape(self.g.shape)
        m = m * self.beta
        m.ravel()[self.i_down] *= -1.0
        return m


def _beta_factor(g: np.ndarray | float, form: ModelForm) -> np.ndarray | float:
    if not form.g_exponent:
        return 1.0
    return np.power(np.maximum(g, 1e-9) / form.g_ref_S, form.g_exponent)


@dataclass(frozen=True)
class Anchor:
    """What the figures of merit measured at one device's symmetry point."""

    g_sp_S: float
    dg_sp_S: float


def anchored(gmin: float, gmax: float, gu: float, gd: float, anchor: Anchor,
             form: ModelForm) -> np.ndarray:
    """Full theta with ``a`` and ``dw_min`` set so the model's SP and step match ``anchor``."""
    w = max(gmax - gmin, 1e-12)
    x = float(np.clip((anchor.g_sp_S - gmin) / w, 1e-3, 1 - 1e-3))
    u, d = (1 - x) ** gu, x ** gd
    a = (d - u) / (d + u)
    dw = anchor.dg_sp_S / max((1 + a) * u * w * float(_beta_factor(anchor.g_sp_S, form)), 1e-30)
    return np.array([gmin, gmax, np.log(dw), a, gu, gd])


def fit_shape(g_before: np.ndarray, step: np.ndarray, up: np.ndarray, anchor: Anchor,
              g_lo_S: float, g_hi_S: float, form: ModelForm,
              gammas: tuple[float, float] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares over the bounds (and the exponents unless ``gammas`` fixes them).

    Returns (theta, standard errors of (gmin, gmax), residuals).
    """
    w0 = max(g_hi_S - g_lo_S, 1e-9)
    sp = anchor.g_sp_S
    lo = [0.0, max(g_hi_S - 0.5 * w0, sp + 0.05 * w0)]
    hi = [max(min(g_lo_S + 0.5 * w0, sp - 0.05 * w0), 1e-12), g_hi_S + 2.0 * w0]
    z0 = [np.clip(g_lo_S - 0.02 * w0, lo[0], hi[0]), np.clip(g_hi_S + 0.02 * w0, lo[1], hi[1])]
    if gammas is None:
        lo += [0.1, 0.1]
        hi += [5.0, 5.0]
        z0 += [1.0, 1.0]
    scale = np.array([w0, w0, 1.0, 1.0][:len(z0)])

    def theta_of(z: np.ndarray) -> np.ndarray:
        gmin, gmax = z[0] * w0, z[1] * w0
        gu, gd = (z[2], z[3]) if gammas is None else gammas
        return anchored(gmin, gmax, gu, gd, anchor, form)

    model = StepModel(g_before, up, form)

    def resid(z: np.ndarray) -> np.ndarray:
        return (step - model(theta_of(z))) / w0

    lo_a, hi_a = np.array(lo) / scale, np.array(hi) / scale
    z_start = np.clip(np.array(z0) / scale, lo_a + 1e-9, hi_a - 1e-9)
    res = least_squares(resid, z_start, bounds=(lo_a, hi_a), x_scale="jac", tr_solver="lsmr")
    theta = theta_of(res.x)
    s2 = float(np.sum(res.fun**2) / max(step.size - res.x.size, 1))
    try:
        cov = np.linalg.pinv(res.jac.T @ res.jac) * s2
        se = np.sqrt(np.clip(np.diag(cov)[:2], 0.0, None)) * w0
    except np.linalg.LinAlgError:
        se = np.full(2, np.nan)
    return theta, se, res.fun * w0


FIT_KEYS = ("g_min_S", "g_max_S", "dw_min", "asymmetry", "gamma_up", "gamma_down",
            "sigma_c2c", "gamma_up_free", "gamma_down_free", "rms_residual_S",
            "var_g_min_S", "var_g_max_S", "var_ln_dw", "var_asymmetry", "var_sigma_c2c")


def fit_devices(trace_S: np.ndarray, schedule: Schedule, fom: FiguresOfMerit, *,
                form: ModelForm = ModelForm(), read_sigma_S: np.ndarray | None = None,
                settle: float = 0.5, replicas: int = 6, iterations: int = 6
                ) -> dict[str, np.ndarray]:
    """Per-device parameters (:data:`FIT_KEYS` arrays, NaN where a device has no usable
    symmetry point): least squares in two passes, then the simulation-based calibration
    of :mod:`.calibrate` against the measured figures of merit."""
    from labctl.protocols.analysis.calibrate import DeviceParams, calibrate

    trace = np.asarray(trace_S, dtype=float)
    n_dev = trace.shape[1]
    up = schedule.sign > 0
    out: dict[str, np.ndarray] = {k: np.full(n_dev, np.nan) for k in FIT_KEYS}
    rs = np.zeros(n_dev) if read_sigma_S is None else np.nan_to_num(
        np.asarray(read_sigma_S, dtype=float))
    ok = (np.isfinite(fom.g_max_S) & np.isfinite(fom.g_sp_S) & (fom.dg_sp_S > 0)
          & (fom.g_min_S < fom.g_sp_S) & (fom.g_sp_S < fom.g_max_S)
          & np.all(np.isfinite(trace), axis=0))
    dev = np.flatnonzero(ok)
    if dev.size == 0:
        return out
    anchors = {i: Anchor(float(fom.g_sp_S[i]), float(fom.dg_sp_S[i])) for i in dev}
    data = {i: (trace[:-1, i], np.diff(trace[:, i])) for i in dev}
    start = np.empty((dev.size, 7))
    for j, i in enumerate(dev):  # least squares with free exponents, per device
        theta, _, r = fit_shape(*data[i], up, anchors[i], fom.g_min_S[i], fom.g_max_S[i], form)
        out["gamma_up_free"][i], out["gamma_down_free"][i] = theta[4], theta[5]
        out["rms_residual_S"][i] = float(np.sqrt(np.mean(r**2)))
        var_s = float(fom.sigma_dg_sp_S[i]) ** 2
        sig2 = (var_s - (form.sigma_g_rel * fom.g_sp_S[i]) ** 2 - 2 * rs[i] ** 2) \
            / fom.dg_sp_S[i] ** 2
        start[j] = (*theta, np.sqrt(max(sig2, 0.01)))
    # the exponents are array parameters (see the module docstring): the median of the devices
    start[:, 4] = np.median(start[:, 4])
    start[:, 5] = np.median(start[:, 5])
    sub = FiguresOfMerit(*(v[dev] for v in fom.__dict__.values()))
    cal = calibrate(DeviceParams(*start.T), sub, schedule, trace[0, dev], rs[dev], form,
                    settle=settle, replicas=replicas, iterations=iterations)
    p = cal.params
    for key, v in (("g_min_S", p.g_min_S), ("g_max_S", p.g_max_S), ("dw_min", np.exp(p.ln_dw)),
                   ("asymmetry", p.asymmetry), ("gamma_up", p.gamma_up),
                   ("gamma_down", p.gamma_down), ("sigma_c2c", p.sigma)):
        out[key][dev] = v
    for key, v in cal.noise_var.items():
        out[f"var_{key if key != 'sigma' else 'sigma_c2c'}"][dev] = v
    return out


def _spread(x: np.ndarray, noise_var: np.ndarray | None = None) -> float:
    """Across-device standard deviation minus the estimates' own variance (never below 0)."""
    ok = np.isfinite(x)
    if np.count_nonzero(ok) < 2:
        return 0.0
    var = float(np.var(x[ok], ddof=1))
    if noise_var is not None and np.any(np.isfinite(noise_var[ok])):
        var -= float(np.nanmean(noise_var[ok]))
    return float(np.sqrt(max(var, 0.0)))


def population(fits: dict[str, np.ndarray]) -> dict[str, Any]:
    """Means and device-to-device spreads in the simulator preset's terms ([pulse] keys)."""
    ok = np.isfinite(fits["dw_min"])
    if not ok.any():
        return {}
    f = {k: v[ok] for k, v in fits.items()}
    ln_dw = np.log(f["dw_min"])
    return {
        "devices_fitted": int(ok.sum()),
        "g_min_S": float(np.mean(f["g_min_S"])),
        "g_max_S": float(np.mean(f["g_max_S"])),
        "dw_min": float(np.exp(np.mean(ln_dw))),
        "asymmetry": float(np.mean(f["asymmetry"])),
        "gamma_up": float(np.mean(f["gamma_up"])),
        "gamma_down": float(np.mean(f["gamma_down"])),
        "sigma_c2c": float(np.mean(f["sigma_c2c"])),
        "g_min_d2d_S": _spread(f["g_min_S"], f["var_g_min_S"]),
        "g_max_d2d_S": _spread(f["g_max_S"], f["var_g_max_S"]),
        "dw_min_d2d_ln": _spread(ln_dw, f["var_ln_dw"]),
        "asymmetry_d2d": _spread(f["asymmetry"], f["var_asymmetry"]),
        "gamma_d2d": 0.0,
        "sigma_c2c_d2d": _spread(f["sigma_c2c"], f["var_sigma_c2c"]),
    }
