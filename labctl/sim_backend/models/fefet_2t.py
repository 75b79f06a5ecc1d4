"""MoS2 two-FeFET cell (preset ``mos2-fefet-2t``, seed 001).

Seed 001 (Ning et al., *An index-free sparse neural network using two-dimensional
semiconductor FeFETs*, Nat. Electron. 8, 222, 2025): a unit cell is a digital sparsity
FeFET (on/off) in series with an analogue weight FeFET, so the network weight is S (.) W;
pruning and regrowth switch the sparsity FeFET, updates pulse the weight FeFET's gate, and
the weight device programs with the sparsity FeFET on or off [A, Ext. Data Figs. 3, 6].
The seed's simulations use 10 % write and 4.25 % read noise, a non-linear potentiation
curve with device-to-device variation of the non-linearity and cycle-to-cycle variation of
the update [A, Ext. Data Figs. 5, 10]; window, on/off ratio, amplitudes and widths are not
given and are placeholders [C] (see the preset file).

Physics, per cell:

* weight FeFET: the polarisation state ``x`` in [0, 1] shifts the threshold,
  ``Vth = vth0 - x * window``; the channel conducts ``k * s * softplus((V_G - Vth) / s)``
  (above threshold linear in ``x`` at the read gate, subthreshold tail below);
* a gate pulse moves ``x`` with the NeuroSim exponential law (the simulator the seed used):
  potentiation ``x += (b_p - x) (1 - exp(-g / (A_p N)))``, depression
  ``x -= (x - 1 + b_d) (1 - exp(-g / (A_d N)))`` with ``b = 1 / (1 - exp(-1 / A))``, so ``N``
  nominal pulses span the window; ``A`` (the non-linearity) varies from device to device;
  each step is multiplied by ``1 + sigma_w xi`` (write noise = cycle-to-cycle spread);
  the pulse gain ``g`` grows with amplitude above the coercive voltage and weakly with width;
* retention: ``x`` relaxes toward ``x_rest`` by ``nu * log10(1 + t / t0)`` since it was last
  programmed (window closure; ``nu`` varies from device to device);
* sparsity FeFET: a conductance ``g_on`` or ``g_on / on_off_ratio``; the cell conducts the
  series combination, ``I = G_series * v_sat * tanh(V_D / v_sat)`` (drain saturation);
* every read gets relative Gaussian read noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labctl.array import FloatArray, IntArray, Limits
from labctl.errors import ConfigError
from labctl.sim_backend.models.preset_tables import Shape, preset_table

State = dict[str, np.ndarray]



@dataclass(frozen=True)
class Operating:
    """Default read point (drain and read-gate voltage) and pulse polarity."""

    read_voltage_V: float
    gate_voltage_V: float
    set_polarity: float



@dataclass(frozen=True)
class WeightFet:
    """Weight FeFET transfer curve and its device-to-device spread [C]."""

    vth0_V: float            # threshold of the fully depressed state (x = 0)
    window_V: float          # memory window: Vth shift from x = 0 to x = 1
    g_max_S: float           # channel conductance at x = 1 and the read gate (nominal device)
    subthreshold_V: float    # softplus smoothing s (swing = s ln 10 per decade)
    v_sat_V: float           # drain saturation voltage of the output characteristic
    window_sigma_rel: float  # d2d relative spread of the window
    k_sigma_ln: float        # d2d log-normal spread of the transconductance
    vth_sigma_V: float       # d2d spread of vth0


@dataclass(frozen=True)
class SparsityFet:
    """Digital sparsity FeFET [C]."""

    g_on_S: float
    on_off_ratio: float
    g_on_sigma_ln: float


@dataclass(frozen=True)
class Update:
    """Gate-pulse response of the weight FeFET (NeuroSim exponential law)."""

    pulses_full_range: float   # N: nominal pulses from x = 0 to x = 1
    v_pgm_V: float             # nominal |gate pulse| (gain 1)
    width_ref_s: float         # nominal pulse width (gain 1)
    v_coercive_V: float        # no switching below this |amplitude|
    amp_exponent: float        # gain = ((|V| - v_c) / (v_pgm - v_c)) ** amp_exponent
    width_exponent: float      #        * (width / width_ref) ** width_exponent
    nl_pot: float              # A_p / N: potentiation non-linearity (smaller = more non-linear)
    nl_dep: float              # A_d / N: depression non-linearity
    nl_sigma_ln: float         # d2d log-normal spread of A
    write_noise_rel: float     # relative spread of every step (c2c)

    def gain(self, v_abs: np.ndarray, width_s: float) -> FloatArray:
        over = np.maximum(v_abs - self.v_coercive_V, 0.0) / (self.v_pgm_V - self.v_coercive_V)
        return over ** self.amp_exponent * (width_s / self.width_ref_s) ** self.width_exponent


@dataclass(frozen=True)
class Retention:
    """Log-time relaxation toward x_rest (window closure) [C]."""

    nu_per_decade: float
    nu_sigma_ln: float
    t0_s: float
    x_rest: float


@dataclass(frozen=True)
class Initial:
    """As-delivered state of the weight FeFETs (sparsity FeFETs all on)."""

    x_mean: float
    x_sigma: float


class Fefet2tModel:
    """Stateless physics of a two-FeFET array; the per-cell state lives in the array.

    State: ``s_on`` (sparsity FeFET on), ``x`` (weight polarisation at ``t_prog_s``),
    ``t_prog_s`` (time of its last update), and per-device draws ``a_pot``, ``a_dep`` (non-
    linearity), ``k_S_per_V``, ``vth0_V``, ``window_V``, ``g_s_on_S``, ``nu``.
    """

    technology = "fefet-2t"
    selector_resistance_ohm = 0.0

    def __init__(self, name: str, *, limits: Limits, operating: Operating, weight: WeightFet,
                 sparsity: SparsityFet, update: Update, retention: Retention, initial: Initial,
                 read_sigma_rel: float, default_shape: tuple[int, int] = (64, 64)) -> None:
        self.name = name
        self.limits = limits
        self.read_voltage_V = operating.read_voltage_V
        self.gate_voltage_V = operating.gate_voltage_V
        self.set_polarity = int(operating.set_polarity)
        self.weight, self.sparsity, self.update = weight, sparsity, update
        self.retention, self.initial = retention, initial
        self.read_sigma_rel = float(read_sigma_rel)
        self.default_shape = default_shape
        w = weight
        self._k_nominal = w.g_max_S / float(self._channel(1.0, self.gate_voltage_V, w.vth0_V,
                                                          w.window_V))
        self.g_min_S = self._nominal_cell_S(0.0)
        self.g_max_S = self._nominal_cell_S(1.0)
        self.params: dict[str, Any] = {
            "weight_fet": asdict(weight), "sparsity_fet": asdict(sparsity),
            "update": asdict(update), "retention": asdict(retention),
            "initial": asdict(initial), "read_sigma_rel": read_sigma_rel}

    @classmethod
    def from_preset(cls, preset: dict[str, Any], name: str) -> Fefet2tModel:
        """Build from a parsed preset TOML (see presets/mos2-fefet-2t.toml)."""
        shape = preset_table(Shape, preset, "array", name)
        noise = preset.get("read_noise")
        if not isinstance(noise, dict) or "sigma_rel" not in noise:
            raise ConfigError(f"preset {name}: missing key read_noise.sigma_rel",
                              key="read_noise.sigma_rel")
        return cls(name, limits=preset_table(Limits, preset, "limits", name),
                   operating=preset_table(Operating, preset, "operating", name),
                   weight=preset_table(WeightFet, preset, "weight_fet", name),
                   sparsity=preset_table(SparsityFet, preset, "sparsity_fet", name),
                   update=preset_table(Update, preset, "update", name),
                   retention=preset_table(Retention, preset, "retention", name),
                   initial=preset_table(Initial, preset, "initial", name),
                   read_sigma_rel=float(noise["sigma_rel"]),
                   default_shape=(int(shape.rows), int(shape.cols)))

    # --- device physics -----------------------------------------------------------------------
    def _channel(self, x: np.ndarray | float, gate_V: float, vth0_V: np.ndarray | float,
                 window_V: np.ndarray | float) -> np.ndarray:
        """Unit-transconductance channel: s * softplus((V_G - Vth(x)) / s)."""
        s = self.weight.subthreshold_V
        return s * np.logaddexp(0.0, (gate_V - (vth0_V - np.asarray(x) * window_V)) / s)

    def _nominal_cell_S(self, x: float) -> float:
        w = self.weight
        g_w = self._k_nominal * float(self._channel(x, self.gate_voltage_V, w.vth0_V, w.window_V))
        return 1.0 / (1.0 / g_w + 1.0 / self.sparsity.g_on_S)

    def x_now(self, state: State, idx: Any, t_s: float) -> FloatArray:
        """Weight polarisation at time ``t_s`` (retention relaxation applied)."""
        rt = self.retention
        age = np.maximum(t_s - state["t_prog_s"][idx], 0.0)
        frac = np.minimum(state["nu"][idx] * np.log10(1.0 + age / rt.t0_s), 1.0)
        x = state["x"][idx]
        return x + (rt.x_rest - x) * frac

    def _series_S(self, state: State, idx: Any, t_s: float, gate_V: float) -> FloatArray:
        g_w = state["k_S_per_V"][idx] * self._channel(self.x_now(state, idx, t_s), gate_V,
                                                      state["vth0_V"][idx],
                                                      state["window_V"][idx])
        g_s = state["g_s_on_S"][idx] * np.where(state["s_on"][idx], 1.0,
                                                1.0 / self.sparsity.on_off_ratio)
        return 1.0 / (1.0 / np.maximum(g_w, 1e-30) + 1.0 / g_s)

    def _drain(self, v: np.ndarray | float) -> np.ndarray:
        """Output characteristic per unit conductance: v_sat * tanh(V / v_sat)."""
        vs = self.weight.v_sat_V
        return vs * np.tanh(np.asarray(v, dtype=float) / vs)

    def _noisy(self, g: np.ndarray, rng: np.random.Generator) -> FloatArray:
        return g * (1.0 + self.read_sigma_rel * rng.standard_normal(g.shape))

    # --- DeviceModel interface -----------------------------------------------------------------
    def initial_state(self, shape: tuple[int, int], rng: np.random.Generator) -> State:
        """Sparsity FeFETs all on; weight FeFETs near x_mean (placeholder as-delivered state)."""
        w, u, ini = self.weight, self.update, self.initial

        def lognormal(sigma: float) -> FloatArray:
            return np.exp(sigma * rng.standard_normal(shape))

        return {
            "s_on": np.ones(shape, bool),
            "x": np.clip(ini.x_mean + ini.x_sigma * rng.standard_normal(shape), 0.0, 1.0),
            "t_prog_s": np.zeros(shape),
            "a_pot": u.nl_pot * lognormal(u.nl_sigma_ln),
            "a_dep": u.nl_dep * lognormal(u.nl_sigma_ln),
            "k_S_per_V": self._k_nominal * lognormal(w.k_sigma_ln),
            "vth0_V": w.vth0_V + w.vth_sigma_V * rng.standard_normal(shape),
            "window_V": w.window_V * np.maximum(
                1.0 + w.window_sigma_rel * rng.standard_normal(shape), 0.1),
            "g_s_on_S": self.sparsity.g_on_S * lognormal(self.sparsity.g_on_sigma_ln),
            "nu": self.retention.nu_per_decade * lognormal(self.retention.nu_sigma_ln),
        }

    def pulse(self, state: State, r: IntArray, c: IntArray, amplitude_V: FloatArray,
              width_s: float, gate_V: float, count: IntArray, rng: np.random.Generator,
              t_s: float) -> None:
        """Gate pulses on the weight FeFET (+ potentiate, - depress); the sparsity FeFET and
        ``gate_V`` (the read word line) play no part.  Loops over the pulse index with a
        shrinking active set; every addressed cell is updated in one numpy call per pulse.
        A cell whose pulses stay below the coercive voltage (an inhibited cell on an emulated
        bench) is not written: its state and its relaxation clock are left alone."""
        gain = self.update.gain(np.abs(amplitude_V), width_s)
        written = (gain > 0) & (count > 0)
        if not np.all(written):
            r, c, count = r[written], c[written], count[written]
            amplitude_V, gain = amplitude_V[written], gain[written]
        x = self.x_now(state, (r, c), t_s)   # commit the relaxation before writing
        up = amplitude_V > 0
        n_full = self.update.pulses_full_range
        a = np.where(up, state["a_pot"][r, c], state["a_dep"][r, c])
        b = 1.0 / -np.expm1(-1.0 / a)
        bound = np.where(up, b, 1.0 - b)                # virtual bound each step approaches
        frac = -np.expm1(-gain / (a * n_full))          # fraction of the distance per pulse
        idx = np.arange(r.size)
        for k in range(int(count.max(initial=0))):
            idx = idx[count[idx] > k]
            step = (bound[idx] - x[idx]) * frac[idx]
            step *= 1.0 + self.update.write_noise_rel * rng.standard_normal(idx.size)
            x[idx] = np.clip(x[idx] + step, 0.0, 1.0)
        state["x"][r, c] = x
        state["t_prog_s"][r, c] = t_s

    def mask(self, state: State, r: IntArray, c: IntArray, enabled: np.ndarray,
             rng: np.random.Generator, t_s: float) -> None:
        """Program the sparsity FeFETs on (enabled) or off; the weight FeFETs are untouched."""
        state["s_on"][r, c] = enabled

    def mask_pulse(self, state: State, r: IntArray, c: IntArray, amplitude_V: FloatArray,
                   width_s: float, rng: np.random.Generator, t_s: float) -> None:
        """Gate pulses on the sparsity FeFETs (an emulated bench's sparsity lines): beyond the
        coercive voltage a positive pulse programs a sparsity FeFET on, a negative one off;
        below it (an inhibited cell) nothing changes.  The sparsity FeFET is digital, so the
        one coercive voltage of the weight FeFET's stack is taken for it too [C]."""
        amp = np.asarray(amplitude_V, dtype=float)
        over = np.abs(amp) > self.update.v_coercive_V
        if np.any(over):
            self.mask(state, r[over], c[over], amp[over] > 0, rng, t_s)

    def sweep(self, state: State, r: IntArray, c: IntArray, voltages_V: FloatArray,
              gate_V: float, compliance_A: float, rng: np.random.Generator,
              t_s: float) -> FloatArray:
        """Bit-line (drain) staircase at read gate ``gate_V`` through both FeFETs; read-only
        (drain voltages within the limits do not switch the ferroelectric)."""
        g = self._series_S(state, (r, c), t_s, gate_V)
        i = g[:, None] * self._drain(voltages_V)[None, :]
        return np.clip(self._noisy(i, rng), -compliance_A, compliance_A)

    def conductance(self, state: State, r: IntArray, c: IntArray, rng: np.random.Generator,
                    t_s: float, read_voltage_V: float, gate_V: float) -> FloatArray:
        """Cell conductance I/V at the read point: series of both FeFETs, read noise included."""
        v = read_voltage_V if abs(read_voltage_V) > 1e-9 else 1e-9  # small-signal limit at 0 V
        g = self._series_S(state, (r, c), t_s, gate_V) * self._drain(v) / v
        return self._noisy(g, rng)

    def conductance_matrix(self, state: State, rng: np.random.Generator, t_s: float) -> FloatArray:
        """S (.) W as the array sees it: masked-off cells conduct ~1/on_off_ratio."""
        v = self.read_voltage_V
        g = self._series_S(state, slice(None), t_s, self.gate_voltage_V) * self._drain(v) / v
        return self._noisy(g, rng)
