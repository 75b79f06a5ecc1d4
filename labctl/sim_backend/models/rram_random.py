"""Electroforming-random 1T1R RRAM (preset ``rram-40nm-random``, seed 000).

Seed 000 (Li, Wang et al., *Pruning random resistive memory for optimizing analog AI*,
Nat. Commun. 2026) uses the stochasticity of electroforming itself to write random
weights onto a 40 nm 1T1R macro: the pulse amplitude and width set the fraction of cells
that form and the conductance distribution after breakdown, the word line (gate) sets the
compliance; pruning an edge is a RESET that leaves a small residual, restoring it a SET
[A, reference/devices.md section 2].  The seed publishes no device statistics, so every
law below has placeholder parameters [C] (see the preset file):

* forming is dielectric breakdown with Weibull statistics and an exponential voltage
  acceleration (cumulative-stress form): a cell forms once its accumulated stress
  ``S = sum(dt / tau(V))`` passes a per-cell Weibull(beta) threshold drawn on the fresh
  die, so ``P(formed) = 1 - exp(-(t / tau(V))**beta)`` for a pulse train of total width
  ``t``, with ``tau(V) = tau_ref * exp(-(V - V_ref) / V_acc)``; a sweep step stresses the
  cell for ``sweep_dwell_s``;
* once formed, the filament's conductance is log-normal; its median scales with the
  compliance current of the access transistor and with the forming voltage;
* SET is abrupt and stochastic (rate ``1 / tau_set(V)``) and restores the cell's formed
  filament conductance (the random weight comes back, with a small cycle-to-cycle spread),
  scaled by the ratio of the present compliance to the one it formed under; a mask SET
  restores exactly the formed level;
* RESET is gradual: each pulse shrinks the conductance above the cell's residual by
  ``exp(-width / tau_reset(|V|))`` (with cycle-to-cycle spread); a mask reset or a reset
  sweep reaches the residual;
* the access transistor is a square-law NMOS: triode resistance in series with the cell,
  saturation current as the compliance; below threshold nothing switches;
* reads are relative Gaussian noise on the 1T1R conductance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labctl.array import FloatArray, IntArray, Limits
from labctl.sim_backend.models.preset_tables import Shape, preset_table

State = dict[str, np.ndarray]

# Below this fraction of conductance change a reset counts as "no reset" (cell stays in LRS).
_RESET_MARK = 0.01



@dataclass(frozen=True)
class Operating:
    """Default read point and polarity."""

    read_voltage_V: float
    gate_voltage_V: float
    set_polarity: float



@dataclass(frozen=True)
class ReadNoise:
    """Relative Gaussian read noise on the measured conductance [C]."""

    sigma_rel: float


@dataclass(frozen=True)
class Transistor:
    """Square-law NMOS access transistor of the 1T1R cell [C]."""

    k_A_per_V2: float
    vth_V: float
    off_current_A: float

    def overdrive(self, gate_V: float) -> float:
        return max(gate_V - self.vth_V, 0.0)

    def saturation_A(self, gate_V: float) -> float:
        return max(0.5 * self.k_A_per_V2 * self.overdrive(gate_V) ** 2, self.off_current_A)

    def triode_ohm(self, gate_V: float) -> float:
        return 1.0 / (self.k_A_per_V2 * max(self.overdrive(gate_V), 1e-12))

    def is_on(self, gate_V: float) -> bool:
        return self.overdrive(gate_V) > 0.0


@dataclass(frozen=True)
class Fresh:
    """Unformed cell: tunnelling leakage ``I = g * v0 * sinh(V / v0)`` [C]."""

    g_leak_S: float
    sigma_ln: float
    v0_V: float


@dataclass(frozen=True)
class Forming:
    """Weibull breakdown with exponential voltage acceleration [C]."""

    tau_ref_s: float
    v_ref_V: float
    v_acc_V: float
    beta: float
    sweep_dwell_s: float

    def tau_s(self, v_abs: np.ndarray | float) -> np.ndarray:
        return self.tau_ref_s * np.exp(-(np.asarray(v_abs) - self.v_ref_V) / self.v_acc_V)


@dataclass(frozen=True)
class Lrs:
    """Post-forming (filament) conductance: log-normal, clipped to the window [C]."""

    median_S: float
    sigma_ln: float
    min_S: float
    max_S: float
    v_ref_V: float  # forming voltage at which median_S applies
    amp_coeff_per_V: float  # d ln(median) / d V_form
    cc_exponent: float  # median ~ I_compliance ** cc_exponent


@dataclass(frozen=True)
class Switching:
    """SET (abrupt, stochastic) and RESET (gradual) kinetics [C]."""

    set_tau_ref_s: float
    set_v_ref_V: float
    set_v_acc_V: float
    set_sigma_ln: float
    reset_tau_ref_s: float
    reset_v_ref_V: float
    reset_v_acc_V: float
    reset_sigma: float
    residual_median_S: float
    residual_sigma_ln: float
    residual_max_fraction: float  # a reset never leaves more than this fraction of the LRS
    mask_set_V: float
    mask_reset_V: float
    mask_width_s: float

    def set_tau_s(self, v_abs: np.ndarray | float) -> np.ndarray:
        return self.set_tau_ref_s * np.exp(-(np.asarray(v_abs) - self.set_v_ref_V)
                                           / self.set_v_acc_V)

    def reset_tau_s(self, v_abs: np.ndarray | float) -> np.ndarray:
        return self.reset_tau_ref_s * np.exp(-(np.asarray(v_abs) - self.reset_v_ref_V)
                                             / self.reset_v_acc_V)


class RramRandomModel:
    """Stateless physics of an electroforming-random 1T1R array; state lives in the array.

    State arrays (all of the array's shape): ``formed`` (bool), ``lrs`` (bool: in the set
    state), ``g_S`` (present cell conductance, without the transistor), ``g_lrs_S`` (the
    formed filament's conductance, restored by SET), ``i_cc_form_A`` (the compliance it formed
    under), ``g_res_S`` (residual after a full RESET), ``stress`` and ``threshold`` (forming:
    accumulated and breakdown stress).
    """

    technology = "1t1r-reram"

    def __init__(self, name: str, *, limits: Limits, read_voltage_V: float, gate_voltage_V: float,
                 set_polarity: int, transistor: Transistor, fresh: Fresh, forming: Forming,
                 lrs: Lrs, switching: Switching, read_sigma_rel: float,
                 default_shape: tuple[int, int] = (64, 64)) -> None:
        self.name = name
        self.limits = limits
        self.read_voltage_V = float(read_voltage_V)
        self.gate_voltage_V = float(gate_voltage_V)
        self.set_polarity = int(set_polarity)
        self.transistor = transistor
        self.fresh = fresh
        self.forming = forming
        self.lrs = lrs
        self.switching = switching
        self.read_sigma_rel = float(read_sigma_rel)
        self.default_shape = default_shape
        self.g_min_S = float(switching.residual_median_S)
        self.g_max_S = float(lrs.max_S)
        self.selector_resistance_ohm = transistor.triode_ohm(self.gate_voltage_V)
        self.params: dict[str, Any] = {
            "transistor": asdict(transistor), "fresh": asdict(fresh), "forming": asdict(forming),
            "lrs": asdict(lrs), "switching": asdict(switching), "read_sigma_rel": read_sigma_rel}

    @classmethod
    def from_preset(cls, preset: dict[str, Any], name: str) -> RramRandomModel:
        """Build from a parsed preset TOML (see presets/rram-40nm-random.toml)."""
        op = preset_table(Operating, preset, "operating", name)
        arr = preset_table(Shape, preset, "array", name)
        noise = preset_table(ReadNoise, preset, "read_noise", name)
        return cls(name, limits=preset_table(Limits, preset, "limits", name),
                   read_voltage_V=op.read_voltage_V, gate_voltage_V=op.gate_voltage_V,
                   set_polarity=int(op.set_polarity),
                   transistor=preset_table(Transistor, preset, "transistor", name),
                   fresh=preset_table(Fresh, preset, "fresh", name),
                   forming=preset_table(Forming, preset, "forming", name),
                   lrs=preset_table(Lrs, preset, "lrs", name),
                   switching=preset_table(Switching, preset, "switching", name),
                   read_sigma_rel=noise.sigma_rel,
                   default_shape=(int(arr.rows), int(arr.cols)))

    # --- state ---------------------------------------------------------------------------------
    def initial_state(self, shape: tuple[int, int], rng: np.random.Generator) -> State:
        """A fresh, unformed die: leakage only, breakdown thresholds drawn per cell."""
        f, sw = self.fresh, self.switching
        return {
            "formed": np.zeros(shape, bool),
            "lrs": np.zeros(shape, bool),
            "g_S": f.g_leak_S * np.exp(f.sigma_ln * rng.standard_normal(shape)),
            "g_lrs_S": np.zeros(shape),
            "i_cc_form_A": np.zeros(shape),
            "g_res_S": sw.residual_median_S * np.exp(sw.residual_sigma_ln
                                                     * rng.standard_normal(shape)),
            "stress": np.zeros(shape),
            # Weibull(beta) variate: P(threshold <= S) = 1 - exp(-S**beta)
            "threshold": rng.exponential(1.0, shape) ** (1.0 / self.forming.beta),
        }

    def _draw_lrs(self, n: int, v_form: np.ndarray, gate_V: float,
                  rng: np.random.Generator) -> FloatArray:
        lr, tr = self.lrs, self.transistor
        cc = tr.saturation_A(gate_V) / tr.saturation_A(self.gate_voltage_V)
        ln_med = (np.log(lr.median_S) + lr.cc_exponent * np.log(cc)
                  + lr.amp_coeff_per_V * (v_form - lr.v_ref_V))
        return np.clip(np.exp(ln_med + lr.sigma_ln * rng.standard_normal(n)), lr.min_S, lr.max_S)

    # --- state transitions on gathered cells ---------------------------------------------------
    # ``s`` holds 1-D copies of the addressed cells' state (see _gather/_scatter); ``k`` indexes it.
    def _form(self, s: State, k: IntArray, v_abs: np.ndarray, gate_V: float,
              rng: np.random.Generator) -> None:
        g = self._draw_lrs(k.size, v_abs, gate_V, rng)
        s["formed"][k] = True
        s["lrs"][k] = True
        s["g_lrs_S"][k] = g
        s["i_cc_form_A"][k] = self.transistor.saturation_A(gate_V)
        s["g_S"][k] = g
        s["g_res_S"][k] = np.minimum(s["g_res_S"][k], self.switching.residual_max_fraction * g)

    def _stress(self, s: State, v_abs: np.ndarray, dose: np.ndarray, gate_V: float,
                rng: np.random.Generator) -> None:
        """Add forming stress ``dose / tau(|V|)``; cells that pass their threshold form."""
        k = np.flatnonzero(~s["formed"])
        if k.size == 0:
            return
        s["stress"][k] += dose[k] / self.forming.tau_s(v_abs[k])
        new = k[s["stress"][k] >= s["threshold"][k]]
        if new.size:
            self._form(s, new, v_abs[new], gate_V, rng)

    def _set(self, s: State, k: IntArray, v_abs: np.ndarray, dose: np.ndarray,
             gate_V: float | None, rng: np.random.Generator) -> None:
        """Formed cells out of LRS return to their filament with P = 1 - exp(-dose/tau_set)."""
        k = k[s["formed"][k] & ~s["lrs"][k]]
        if k.size == 0:
            return
        p = -np.expm1(-dose[k] / self.switching.set_tau_s(v_abs[k]))
        k = k[rng.random(k.size) < p]
        s["g_S"][k] = self._restored(s, k, gate_V, rng)
        s["lrs"][k] = True

    def _restored(self, s: State, k: IntArray, gate_V: float | None,
                  rng: np.random.Generator) -> FloatArray:
        """The formed filament again, scaled by (compliance now / at forming) ** cc_exponent;
        ``gate_V=None`` (a mask set) uses each cell's forming compliance."""
        g = s["g_lrs_S"][k]
        if gate_V is not None:
            g = g * (self.transistor.saturation_A(gate_V) / s["i_cc_form_A"][k]) \
                ** self.lrs.cc_exponent
        noise = np.exp(self.switching.set_sigma_ln * rng.standard_normal(k.size))
        return np.clip(g * noise, self.lrs.min_S, self.lrs.max_S)

    def _reset(self, s: State, k: IntArray, v_abs: np.ndarray, dose: np.ndarray, n: np.ndarray,
               rng: np.random.Generator) -> None:
        """Shrink the excess over the residual by exp(-x), x = dose/tau (1 + sigma xi / sqrt n)."""
        k = k[s["formed"][k]]
        if k.size == 0:
            return
        x = dose[k] / self.switching.reset_tau_s(v_abs[k])
        x = np.maximum(x * (1.0 + self.switching.reset_sigma * rng.standard_normal(k.size)
                            / np.sqrt(n[k])), 0.0)
        g_res = s["g_res_S"][k]
        s["g_S"][k] = g_res + (s["g_S"][k] - g_res) * np.exp(-x)
        s["lrs"][k[x > _RESET_MARK]] = False

    # --- DeviceModel interface -----------------------------------------------------------------
    def pulse(self, state: State, r: IntArray, c: IntArray, amplitude_V: FloatArray,
              width_s: float, gate_V: float, count: IntArray, rng: np.random.Generator,
              t_s: float) -> None:
        """Unformed cells accumulate forming stress; formed cells set (+) or reset (-).

        ``count`` pulses act as one of ``count * width_s`` (closed form, no loop over pulses).
        """
        if not self.transistor.is_on(gate_V):
            return  # no current flows: nothing switches
        s = _gather(state, r, c)
        v_abs = np.abs(amplitude_V)
        n = np.maximum(count.astype(float), 1.0)
        dose = count * float(width_s)
        was_formed = s["formed"].copy()  # the pulse that forms a cell leaves it in LRS
        self._stress(s, v_abs, dose, gate_V, rng)
        self._set(s, np.flatnonzero(was_formed & (amplitude_V > 0)), v_abs, dose, gate_V, rng)
        self._reset(s, np.flatnonzero(was_formed & (amplitude_V < 0)), v_abs, dose, n, rng)
        _scatter(state, r, c, s)

    def mask(self, state: State, r: IntArray, c: IntArray, enabled: np.ndarray,
             rng: np.random.Generator, t_s: float) -> None:
        """enabled -> SET pulse, disabled -> strong RESET; unformed cells are not affected."""
        sw = self.switching
        s = _gather(state, r, c)
        dose = np.full(r.size, sw.mask_width_s)
        ones = np.ones(r.size)
        self._set(s, np.flatnonzero(enabled), np.full(r.size, sw.mask_set_V), dose, None, rng)
        self._reset(s, np.flatnonzero(~enabled), np.full(r.size, sw.mask_reset_V), dose, ones, rng)
        _scatter(state, r, c, s)

    def _current(self, g: np.ndarray, formed: np.ndarray, v: np.ndarray | float, gate_V: float,
                 compliance_A: float) -> np.ndarray:
        """1T1R current: cell (linear when formed, sinh leakage when fresh) + transistor."""
        tr, v0 = self.transistor, self.fresh.v0_V
        i_formed = v / (1.0 / np.maximum(g, 1e-30) + tr.triode_ohm(gate_V))
        i_fresh = g * v0 * np.sinh(np.asarray(v) / v0)
        i_max = min(tr.saturation_A(gate_V), compliance_A)
        return np.clip(np.where(formed, i_formed, i_fresh), -i_max, i_max)

    def sweep(self, state: State, r: IntArray, c: IntArray, voltages_V: FloatArray,
              gate_V: float, compliance_A: float, rng: np.random.Generator,
              t_s: float) -> FloatArray:
        """Quasi-static staircase; each step stresses the cell for ``sweep_dwell_s``, then reads.

        The staircase is split into runs of one polarity; each run is solved in closed form
        for all cells and steps at once (cumulative forming stress, first SET event, reset
        decay), so the cost is a few numpy operations per polarity change.
        """
        v = np.asarray(voltages_V, dtype=float)
        s = _gather(state, r, c)
        out = np.empty((r.size, v.size))
        pol = np.sign(v * self.set_polarity)
        if not self.transistor.is_on(gate_V):
            pol[:] = 0.0
        edges = np.flatnonzero(np.diff(pol)) + 1
        for k0, k1 in zip(np.r_[0, edges], np.r_[edges, v.size], strict=True):
            g, f = self._sweep_run(s, np.abs(v[k0:k1]), int(pol[k0]), gate_V, rng)
            out[:, k0:k1] = self._current(g, f, v[None, k0:k1], gate_V, compliance_A)
        _scatter(state, r, c, s)
        return out * (1.0 + self.read_sigma_rel * rng.standard_normal(out.shape))

    def _sweep_run(self, s: State, v_abs: np.ndarray, pol: int, gate_V: float,
                   rng: np.random.Generator) -> tuple[FloatArray, np.ndarray]:
        """One run of a single polarity: per-step conductance and formed flag, state updated."""
        n, m = s["g_S"].size, v_abs.size
        dt = self.forming.sweep_dwell_s
        steps = np.arange(m)
        if pol == 0:
            return np.repeat(s["g_S"][:, None], m, 1), np.repeat(s["formed"][:, None], m, 1)
        g0 = s["g_S"].copy()
        was_formed = s["formed"].copy()
        # forming: first step where the cumulative stress passes the cell's threshold
        cum = np.cumsum(dt / self.forming.tau_s(v_abs))
        kf = np.full(n, m)
        u = np.flatnonzero(~was_formed)
        if u.size:
            kf[u] = np.searchsorted(cum, s["threshold"][u] - s["stress"][u], side="left")
            s["stress"][u] += cum[np.minimum(kf[u], m - 1)]
            new = u[kf[u] < m]
            if new.size:
                self._form(s, new, v_abs[kf[new]], gate_V, rng)
        formed_at = steps[None, :] >= kf[:, None]          # (n, m): formed by the end of step
        g = np.where(formed_at, s["g_lrs_S"][:, None], g0[:, None])
        if pol > 0:
            self._sweep_set(s, was_formed, v_abs, g, gate_V, rng)
        else:
            self._sweep_reset(s, kf, v_abs, g, rng)
        s["g_S"] = g[:, -1].copy()
        return g, formed_at | was_formed[:, None]

    def _sweep_set(self, s: State, was_formed: np.ndarray, v_abs: np.ndarray, g: np.ndarray,
                   gate_V: float, rng: np.random.Generator) -> None:
        """Cells out of LRS set at the first step where the cumulative hazard passes Exp(1)."""
        k = np.flatnonzero(was_formed & ~s["lrs"])
        if k.size == 0:
            return
        hazard = np.cumsum(self.forming.sweep_dwell_s / self.switching.set_tau_s(v_abs))
        ks = np.searchsorted(hazard, rng.exponential(1.0, k.size), side="left")
        hit = ks < v_abs.size
        k, ks = k[hit], ks[hit]
        g_new = self._restored(s, k, gate_V, rng)
        after = np.arange(v_abs.size)[None, :] >= ks[:, None]
        g[k] = np.where(after, g_new[:, None], g[k])
        s["lrs"][k] = True

    def _sweep_reset(self, s: State, kf: np.ndarray, v_abs: np.ndarray, g: np.ndarray,
                     rng: np.random.Generator) -> None:
        """Gradual reset of every formed cell from the step after it formed (or from the start)."""
        k = np.flatnonzero(s["formed"])
        if k.size == 0:
            return
        m = v_abs.size
        base = self.forming.sweep_dwell_s / self.switching.reset_tau_s(v_abs)
        x = base[None, :] * (1.0 + self.switching.reset_sigma * rng.standard_normal((k.size, m)))
        start = np.where(kf[k] < m, kf[k] + 1, 0)
        x = np.where(np.arange(m)[None, :] >= start[:, None], np.maximum(x, 0.0), 0.0)
        decay = np.cumsum(x, axis=1)
        g_res = s["g_res_S"][k][:, None]
        g[k] = g_res + (g[k] - g_res) * np.exp(-decay)
        s["lrs"][k[decay[:, -1] > _RESET_MARK]] = False

    def _read_g(self, g: np.ndarray, formed: np.ndarray, read_voltage_V: float, gate_V: float,
                rng: np.random.Generator) -> FloatArray:
        v = read_voltage_V if abs(read_voltage_V) > 1e-9 else 1e-9  # small-signal limit at 0 V
        i = self._current(g, formed, v, gate_V, np.inf)
        return i / v * (1.0 + self.read_sigma_rel * rng.standard_normal(g.shape))

    def conductance(self, state: State, r: IntArray, c: IntArray, rng: np.random.Generator,
                    t_s: float, read_voltage_V: float, gate_V: float) -> FloatArray:
        """Measured 1T1R conductance I/V at the read voltage (transistor drop and noise in)."""
        return self._read_g(state["g_S"][r, c], state["formed"][r, c], read_voltage_V, gate_V,
                            rng)

    def conductance_matrix(self, state: State, rng: np.random.Generator, t_s: float) -> FloatArray:
        return self._read_g(state["g_S"], state["formed"], self.read_voltage_V,
                            self.gate_voltage_V, rng)


def _flat(state: State, r: IntArray, c: IntArray) -> IntArray:
    return r * state["g_S"].shape[1] + c


def _gather(state: State, r: IntArray, c: IntArray) -> State:
    """1-D copies of the addressed cells' state (flat ``take`` is faster than 2-D indexing)."""
    i = _flat(state, r, c)
    return {k: np.ravel(v).take(i) for k, v in state.items()}


def _scatter(state: State, r: IntArray, c: IntArray, s: State) -> None:
    i = _flat(state, r, c)
    for k, v in s.items():
        if state[k].flags.c_contiguous:
            state[k].reshape(-1)[i] = v   # a view: writes land in the state
        else:
            state[k][r, c] = v
