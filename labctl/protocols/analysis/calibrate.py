"""Simulation-based calibration of the soft-bounds parameters of every measured device.

A least-squares fit of the step response (:mod:`.soft_bounds`) does not reproduce the
figures of merit exactly: the swing extremes are noisy maxima, the symmetry point moves
with the noise, and the bounds and exponents trade off against each other.  So, as a
final stage (indirect inference), each device's parameters are adjusted until the model,
run through the same open-loop schedule with its noise, gives the figures of merit that
were measured on that device: G_max and G_min of the swings, G_sp, the step at the
symmetry point and the NSR.  The model is the soft-bounds equations of devices.md
section 1 in their simulator form (signed power beyond a bound, noise
``sqrt((sigma m)**2 + (sigma_g G)**2)``, reads with the measured read noise), written
here so the protocols need no simulator.  ``replicas`` noisy runs per device, common
random numbers across iterations (an explicit, fixed ``numpy`` Generator seed), a
fixed-point update per figure of merit.

The replicas also measure how noisy each figure of merit is for one device; that
variance, mapped onto the parameters, is what the device-to-device spreads subtract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.protocols.analysis.open_loop import FiguresOfMerit, Schedule, figures_of_merit
from labctl.protocols.analysis.soft_bounds import Anchor, ModelForm, anchored


@dataclass(frozen=True)
class DeviceParams:
    """Soft-bounds parameters of n devices (arrays of n)."""

    g_min_S: np.ndarray
    g_max_S: np.ndarray
    ln_dw: np.ndarray
    asymmetry: np.ndarray
    gamma_up: np.ndarray
    gamma_down: np.ndarray
    sigma: np.ndarray

    def tile(self, k: int) -> DeviceParams:
        return DeviceParams(*(np.tile(v, k) for v in self.__dict__.values()))


def simulate(params: DeviceParams, schedule: Schedule, g0_S: np.ndarray, read_sigma_S: np.ndarray,
             form: ModelForm, rng: np.random.Generator) -> np.ndarray:
    """Read trace (n_pulses + 1, n) of the schedule on n model devices, reads included."""
    p = params
    w = p.g_max_S - p.g_min_S
    dw = np.exp(p.ln_dw) * w
    g = np.array(g0_S, dtype=float)
    out = np.empty((schedule.n_pulses + 1, g.size))
    out[0] = g + read_sigma_S * rng.standard_normal(g.size)
    for k, s in enumerate(schedule.sign):
        x = (g - p.g_min_S) / w
        if s > 0:
            base, gamma, amp = 1.0 - x, p.gamma_up, 1.0 + p.asymmetry
        else:
            base, gamma, amp = x, p.gamma_down, 1.0 - p.asymmetry
        m = dw * amp * np.copysign(np.abs(base) ** gamma, base)
        if form.g_exponent:
            m = m * np.power(np.maximum(g, 1e-9) / form.g_ref_S, form.g_exponent)
        sd = np.sqrt((p.sigma * m) ** 2 + (form.sigma_g_rel * g) ** 2)
        g = np.clip(g + s * m + sd * rng.standard_normal(g.size), form.floor_S, form.ceiling_S)
        out[k + 1] = g + read_sigma_S * rng.standard_normal(g.size)
    return out


def _reshape(x: np.ndarray, k: int) -> np.ndarray:
    return x.reshape(k, -1)


@dataclass(frozen=True)
class Calibration:
    params: DeviceParams
    fom_mean: FiguresOfMerit          # of the calibrated model (replica means)
    noise_var: dict[str, np.ndarray]  # per-device variance of each parameter's estimate


def calibrate(start: DeviceParams, measured: FiguresOfMerit, schedule: Schedule,
              g0_S: np.ndarray, read_sigma_S: np.ndarray, form: ModelForm, *,
              settle: float = 0.5, replicas: int = 6, iterations: int = 6,
              seed: int = 0, block: int = 1024) -> Calibration:
    """Adjust ``start`` until the simulated figures of merit match ``measured``.

    Devices are calibrated ``block`` at a time, so the simulated traces (``replicas`` x
    devices x pulses) stay ~100 MB whatever the array size; the first block draws from
    ``seed``, block k from ``(seed, k)``.
    """
    n = start.g_min_S.size
    if n <= block:
        return _calibrate(start, measured, schedule, g0_S, read_sigma_S, form, settle,
                          replicas, iterations, np.random.SeedSequence(seed))
    parts = []
    for k, lo in enumerate(range(0, n, block)):
        sel = slice(lo, lo + block)
        parts.append(_calibrate(
            DeviceParams(*(v[sel] for v in start.__dict__.values())),
            FiguresOfMerit(*(v[sel] for v in measured.__dict__.values())), schedule,
            g0_S[sel], read_sigma_S[sel], form, settle, replicas, iterations,
            np.random.SeedSequence(seed if k == 0 else (seed, k))))
    return Calibration(
        DeviceParams(*(np.concatenate([getattr(c.params, f) for c in parts])
                       for f in start.__dict__)),
        FiguresOfMerit(*(np.concatenate([getattr(c.fom_mean, f) for c in parts])
                         for f in measured.__dict__)),
        {key: np.concatenate([c.noise_var[key] for c in parts]) for key in parts[0].noise_var})


def _calibrate(start: DeviceParams, measured: FiguresOfMerit, schedule: Schedule,
               g0_S: np.ndarray, read_sigma_S: np.ndarray, form: ModelForm, settle: float,
               replicas: int, iterations: int, seed: np.random.SeedSequence) -> Calibration:
    gmin, gmax = start.g_min_S.copy(), start.g_max_S.copy()
    gu, gd, sigma = start.gamma_up.copy(), start.gamma_down.copy(), start.sigma.copy()
    a_sp = measured.g_sp_S.copy()
    a_dg = measured.dg_sp_S.copy()
    params = start
    fom = None
    for _ in range(iterations + 1):
        params = _params(gmin, gmax, gu, gd, sigma, a_sp, a_dg, form)
        rng = np.random.default_rng(seed)      # common random numbers across iterations
        tr = simulate(params.tile(replicas), schedule, np.tile(g0_S, replicas),
                      np.tile(read_sigma_S, replicas), form, rng)
        fom = figures_of_merit(tr, schedule, settle=settle)
        mean = {k: np.nanmean(_reshape(getattr(fom, k), replicas), axis=0)
                for k in ("g_max_S", "g_min_S", "g_sp_S", "dg_sp_S", "nsr")}
        w = np.maximum(gmax - gmin, 1e-9)
        gmax = gmax + (measured.g_max_S - mean["g_max_S"])
        gmin = np.clip(gmin + (measured.g_min_S - mean["g_min_S"]), 0.0, None)
        a_sp = np.clip(a_sp + (measured.g_sp_S - mean["g_sp_S"]), gmin + 0.02 * w,
                       gmax - 0.02 * w)
        a_dg = a_dg * np.clip(measured.dg_sp_S / np.maximum(mean["dg_sp_S"], 1e-12), 0.5, 2.0)
        sigma = sigma * np.clip(measured.nsr / np.maximum(mean["nsr"], 1e-6), 0.5, 2.0)
    assert fom is not None
    noise = _noise(fom, replicas, params, form, a_sp)
    return Calibration(params, _mean_fom(fom, replicas), noise)


def _params(gmin: np.ndarray, gmax: np.ndarray, gu: np.ndarray, gd: np.ndarray,
            sigma: np.ndarray, a_sp: np.ndarray, a_dg: np.ndarray, form: ModelForm
            ) -> DeviceParams:
    th = anchored(gmin, gmax, gu, gd, Anchor(a_sp, a_dg), form)
    return DeviceParams(th[0], th[1], th[2], th[3], th[4], th[5], np.clip(sigma, 0.0, 5.0))


def _mean_fom(fom: FiguresOfMerit, k: int) -> FiguresOfMerit:
    return FiguresOfMerit(*(np.nanmean(_reshape(v, k), axis=0) for v in fom.__dict__.values()))


def _noise(fom: FiguresOfMerit, k: int, p: DeviceParams, form: ModelForm,
           a_sp: np.ndarray) -> dict[str, np.ndarray]:
    """Variance of each parameter's estimate for one device, from the replica scatter of
    the figure of merit that sets it (first-order mapping)."""
    def var(x: np.ndarray) -> np.ndarray:
        return np.nanvar(_reshape(x, k), axis=0, ddof=1)

    w = p.g_max_S - p.g_min_S
    # a as a function of the SP position: numerical derivative of the anchoring
    eps = 1e-3 * w
    ones = np.ones_like(w)
    da = (anchored(p.g_min_S, p.g_max_S, p.gamma_up, p.gamma_down, Anchor(a_sp + eps, ones),
                   form)[3]
          - anchored(p.g_min_S, p.g_max_S, p.gamma_up, p.gamma_down, Anchor(a_sp - eps, ones),
                     form)[3]) / (2 * eps)
    return {
        "g_max_S": var(fom.g_max_S),
        "g_min_S": var(fom.g_min_S),
        "ln_dw": var(np.log(np.maximum(fom.dg_sp_S, 1e-12))),
        "asymmetry": da**2 * var(fom.g_sp_S),
        "sigma": p.sigma**2 * var(np.log(np.maximum(fom.nsr, 1e-6))),
    }
