"""CMO/HfOx 1T1R ReRAM (preset ``cmo-hfox-1t1r``, seed 004).

Falcone et al., *All-in-One Analog AI Accelerator ... CMO/HfOx ReRAM*, arXiv 2502.04524;
the numbers are collected in reference/devices.md section 1 and cited per parameter in
presets/cmo-hfox-1t1r.toml.  What is modelled, all vectorised over cells:

* a square-law NMOS selector in series with every cell: triode resistance
  ``1 / (k (V_G - V_th))`` and saturation current ``k (V_G - V_th)**2 / 2`` (the
  gate-limited compliance), ``V_th`` drawn per cell;
* forming: a fresh cell leaks (sinh I-V, nA) until the bit-line voltage of a
  quasi-static sweep reaches its per-cell forming voltage; it then conducts through a
  filament and the transistor limits the current;
* quasi-static switching after forming (eight-wise: a negative bit-line sweep sets, a
  positive one resets, gradually between on/full thresholds; the set level is capped by
  the transistor's compliance), HRS/LRS ~ 15;
* trap-to-trap tunnelling I-V of the ReRAM, ``I = G0 v0 sinh(V/v0)`` (near linear at the
  0.2 V read);
* identical pulses: generalized soft bounds / power step (models/pulse_response.py)
  with an exponential amplitude dependence; the first pulses after a full quasi-static
  reset act coarser (placeholder mechanism, see below);
* relaxation over log time after programming (models/relaxation.py) and read noise
  (models/read_noise.py).

Why the coarse phase after a full reset: the seed's closed-loop figures (program-verify
from a swept HRS needs ~11 pulses at 2 % and ~89 at 0.2 %, independent of the target [A])
imply that the first pulses bring a freshly reset cell near its target in about two
pulses (devices.md, "Reading these numbers"), while the open-loop symmetry-point figures
(~22 states) say that a pulse in steady pulsing moves it by ~1/22 of the window.  A
full quasi-static reset leaves the CMO layer's defect profile far from its pulsed steady
state; the first pulses after it act ``1 + reset_boost * exp(-n / reset_boost_pulses)``
times coarser (n = pulses since that reset).  The form and both values are placeholders
[C] calibrated against the two [A] figures.

State convention: ``g_S`` is the 1T1R conductance a read at the nominal read and gate
voltage returns (the quantity the seed reports), at the moment of programming
``t_prog_s``; reads at other voltages or gates solve the series circuit.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from labctl.array import FloatArray, IntArray, Limits
from labctl.errors import ConfigError
from labctl.sim_backend.models.preset_tables import Shape, preset_table
from labctl.sim_backend.models.pulse_response import (
    PARAM_KEYS,
    ParamTable,
    PulseResponseSpec,
    apply_pulses,
)
from labctl.sim_backend.models.read_noise import ReadNoiseSpec
from labctl.sim_backend.models.relaxation import RelaxationSpec

State = dict[str, np.ndarray]



@dataclass(frozen=True)
class Operating:
    read_voltage_V: float
    gate_voltage_V: float
    set_polarity: int
    g_min_S: float
    g_max_S: float


@dataclass(frozen=True)
class Transistor:
    """Square-law NMOS selector (long-channel model, no channel-length modulation)."""

    k_A_per_V2: float
    vth_V: float
    vth_sigma_V: float

    def overdrive(self, gate_V: float, vth: np.ndarray | float) -> np.ndarray:
        return np.maximum(gate_V - np.asarray(vth), 0.0)

    def saturation_A(self, gate_V: float, vth: np.ndarray | float) -> np.ndarray:
        return 0.5 * self.k_A_per_V2 * self.overdrive(gate_V, vth) ** 2

    def triode_ohm(self, gate_V: float, vth: np.ndarray | float) -> np.ndarray:
        ov = self.overdrive(gate_V, vth)
        return 1.0 / np.maximum(self.k_A_per_V2 * ov, 1e-12)


@dataclass(frozen=True)
class Forming:
    v_form_mean_V: float
    v_form_sigma_V: float
    polarity: int
    g_leak_S: float
    g_leak_sigma_ln: float
    leak_v0_V: float
    g_formed_S: float
    g_formed_sigma_ln: float


@dataclass(frozen=True)
class Sweep:
    v0_V: float                 # sinh I-V scale of the formed ReRAM
    g_hrs_S: float
    g_hrs_sigma_rel: float
    g_lrs_S: float
    g_lrs_sigma_rel: float
    v_set_on_V: float
    v_set_full_V: float
    v_reset_on_V: float
    v_reset_full_V: float
    mask_sigma_rel: float


@dataclass(frozen=True)
class Drive:
    """How a pulse's amplitude, width and gate scale the soft-bounds step."""

    set_ref_V: float
    reset_ref_V: float
    v_scale_V: float
    v_threshold_V: float
    width_ref_s: float
    width_exponent: float
    reset_boost: float          # the first pulses after a full quasi-static reset act coarser
    reset_boost_pulses: float   # ... by 1 + reset_boost * exp(-n / reset_boost_pulses)



_NO_RESET = 1e9
_DRIVE_KEYS = tuple(f.name for f in fields(Drive))
_RESPONSE_KEYS = tuple(f.name for f in fields(PulseResponseSpec))


def _selector(shape: tuple[int, int], r: IntArray, c: IntArray) -> slice | IntArray:
    """A slice when the cells are the whole array in row-major order, else flat indices."""
    return _flat_selector(shape, r * shape[1] + c)


def _flat_selector(shape: tuple[int, int], flat: IntArray) -> slice | IntArray:
    """:func:`_selector` of cells given by their flat (row-major) indices."""
    n = shape[0] * shape[1]
    if flat.size == n and flat[0] == 0 and flat[-1] == n - 1 and np.all(np.diff(flat) == 1):
        return slice(None)
    return flat


def _unit(x: float) -> np.float64:
    """``x`` clipped to [0, 1], as a float64 scalar (so float32 state arrays scaled by it
    are computed in float64); ``np.clip`` on a Python float costs ~5 us a call."""
    return np.float64(min(max(x, 0.0), 1.0))


#: cells per vectorised block: temporaries stay in cache on large arrays
CHUNK = 1 << 16


def _chunks(sel: slice | IntArray, n: int) -> Iterator[tuple[slice | IntArray, slice]]:
    """(selection of a block of cells, its positions among the ``n`` addressed cells)."""
    if n <= CHUNK:
        yield sel, slice(0, n)
        return
    for lo in range(0, n, CHUNK):
        part = slice(lo, min(lo + CHUNK, n))
        yield (part if isinstance(sel, slice) else sel[part]), part


class CmoHfoxModel:
    """Physics of the CMO/HfOx 1T1R chip of seed 004 (see the module docstring)."""

    technology = "1t1r-reram"

    def __init__(self, name: str, *, limits: Limits, operating: Operating,
                 transistor: Transistor, forming: Forming, sweep: Sweep, drive: Drive,
                 response: PulseResponseSpec, relaxation: RelaxationSpec,
                 read_noise: ReadNoiseSpec, default_shape: tuple[int, int] = (8, 4)) -> None:
        if operating.set_polarity not in (1, -1) or forming.polarity not in (1, -1):
            raise ConfigError(f"preset {name}: polarities must be +1 or -1", key="set_polarity")
        pulse = response.as_dict()
        for ok, key, what in (
                (0 < operating.g_min_S < operating.g_max_S, "g_min_S",
                 "[operating] needs 0 < g_min_S < g_max_S"),
                (0 < pulse["g_min_S"] < pulse["g_max_S"], "g_min_S",
                 "[pulse] needs 0 < g_min_S < g_max_S"),
                (operating.read_voltage_V > 0, "read_voltage_V",
                 "[operating] read_voltage_V must be > 0"),
                (transistor.k_A_per_V2 > 0, "k_A_per_V2", "[transistor] k_A_per_V2 must be > 0"),
                (forming.v_form_mean_V > 0, "v_form_mean_V",
                 "[forming] v_form_mean_V must be > 0 (polarity gives the sign)")):
            if not ok:
                raise ConfigError(f"preset {name}: {what}", key=key)
        self.name = name
        self.limits = limits
        self.op, self.tr, self.forming, self.sw = operating, transistor, forming, sweep
        self.drive, self.response = drive, response
        self.relax, self.noise = relaxation, read_noise
        self.default_shape = default_shape
        self.g_min_S, self.g_max_S = float(operating.g_min_S), float(operating.g_max_S)
        self.read_voltage_V = float(operating.read_voltage_V)
        self.gate_voltage_V = float(operating.gate_voltage_V)
        self.set_polarity = int(operating.set_polarity)
        self.selector_resistance_ohm = float(transistor.triode_ohm(self.gate_voltage_V,
                                                                    transistor.vth_V))
        # packed pulse-response parameters per die state (see _param_table)
        self._tables: dict[int, tuple[tuple[weakref.ref[np.ndarray], ...], ParamTable]] = {}
        self._drives: dict[tuple[float, float, float], float] = {}  # see _drive_of
        self._unarmed: dict[int, weakref.ref[np.ndarray]] = {}  # see _armed
        self.params: dict[str, Any] = {
            "operating": asdict(operating), "transistor": asdict(transistor),
            "forming": asdict(forming), "sweep": asdict(sweep),
            "pulse": {**asdict(drive), **response.as_dict()},
            "relaxation": asdict(relaxation), "read_noise": asdict(read_noise)}

    @classmethod
    def from_preset(cls, preset: dict[str, Any], name: str) -> CmoHfoxModel:
        """Build from a parsed preset TOML (see presets/cmo-hfox-1t1r.toml)."""
        pulse = preset.get("pulse")
        if not isinstance(pulse, dict):
            raise ConfigError(f"preset {name}: missing table [pulse]", key="pulse")
        shape = preset_table(Shape, preset, "array", name)
        return cls(
            name, limits=preset_table(Limits, preset, "limits", name),
            operating=preset_table(Operating, preset, "operating", name),
            transistor=preset_table(Transistor, preset, "transistor", name),
            forming=preset_table(Forming, preset, "forming", name),
            sweep=preset_table(Sweep, preset, "sweep", name),
            drive=preset_table(Drive, preset, "pulse", name, allow_extra=_RESPONSE_KEYS),
            response=PulseResponseSpec.from_dict(
                {k: v for k, v in pulse.items() if k not in _DRIVE_KEYS}),
            relaxation=RelaxationSpec.from_dict(preset.get("relaxation", {})),
            read_noise=ReadNoiseSpec.from_dict(preset.get("read_noise", {})),
            default_shape=(int(shape.rows), int(shape.cols)))

    # --- state ---------------------------------------------------------------------------------
    def initial_state(self, shape: tuple[int, int], rng: np.random.Generator) -> State:
        """A fresh, unformed die: per-cell forming voltages, selectors and device parameters."""
        f, sw, tr = self.forming, self.sw, self.tr

        def draw(mean: float, sd: float) -> np.ndarray:
            return (mean + sd * rng.standard_normal(shape)).astype(np.float32)

        state: State = {
            "formed": np.zeros(shape, bool),
            "v_form_V": draw(f.v_form_mean_V, f.v_form_sigma_V),
            "vth_V": draw(tr.vth_V, tr.vth_sigma_V),
            "g_leak_S": (f.g_leak_S * np.exp(f.g_leak_sigma_ln * rng.standard_normal(shape))
                         ).astype(np.float32),
            "g_hrs_S": draw(sw.g_hrs_S, sw.g_hrs_S * sw.g_hrs_sigma_rel),
            "g_lrs_S": draw(sw.g_lrs_S, sw.g_lrs_S * sw.g_lrs_sigma_rel),
            "g_S": np.zeros(shape),
            "t_prog_s": np.zeros(shape),
            "relax_z": rng.standard_normal(shape, dtype=np.float32),
            # pulses since the last full reset (sweep to HRS or mask off); large = none
            "pulses_since_reset": np.full(shape, _NO_RESET, np.float32),
        }
        state["g_hrs_S"] = np.maximum(state["g_hrs_S"], 0.2 * sw.g_hrs_S)
        state.update(self.response.draw(shape, rng))
        return state

    # --- helpers on flat selections ----------------------------------------------------------
    @staticmethod
    def _get(state: State, key: str, sel: slice | IntArray) -> np.ndarray:
        return state[key].reshape(-1)[sel]

    @staticmethod
    def _put(state: State, key: str, sel: slice | IntArray, values: np.ndarray | float) -> None:
        state[key].reshape(-1)[sel] = values

    def _relaxed(self, state: State, sel: slice | IntArray, t_s: float,
                 t_prog: np.ndarray | None = None) -> np.ndarray:
        """Programmed conductance relaxed to ``t_s`` (no read noise), a new array."""
        g = self._get(state, "g_S", sel)
        # a gather (index selection) is a copy already; a slice is a view of the state
        own = np.asarray if not isinstance(sel, slice) else np.array
        if t_s <= 0:  # the clock never ran: nothing has relaxed (t_prog_s >= 0)
            return own(g, dtype=np.float64)
        if t_prog is None:
            t_prog = self._get(state, "t_prog_s", sel)
        dt = t_s - t_prog
        if not np.any(dt > 0):
            return own(g, dtype=np.float64)
        return self.relax.relaxed(g, self._get(state, "relax_z", sel), dt)

    def _program(self, state: State, sel: slice | IntArray, g: np.ndarray, t_s: float,
                 rng: np.random.Generator, t_prog: np.ndarray | None = None) -> None:
        """Store new programmed conductances: the relaxation clock restarts.

        A cell whose clock has run since its last programming gets a fresh relaxation draw;
        one reprogrammed at the same instant keeps its (still unused, independent) draw, so
        a burst of pulses without waiting costs no random numbers here.  ``t_prog``: the
        cells' programming times if the caller has already gathered them.
        """
        self._put(state, "g_S", sel, g)
        if t_s <= 0:  # the clock never ran: every cell was programmed at t = 0 already
            return
        if t_prog is None:
            t_prog = self._get(state, "t_prog_s", sel)
        moved = t_prog < t_s
        if not np.any(moved):
            return
        if isinstance(sel, slice) and moved.all():
            self._put(state, "t_prog_s", sel, t_s)
            self._put(state, "relax_z", sel, rng.standard_normal(g.shape[0], dtype=np.float32))
            return
        flat = np.arange(state["g_S"].size)[sel][moved] if isinstance(sel, slice) else sel[moved]
        self._put(state, "t_prog_s", flat, t_s)
        self._put(state, "relax_z", flat, rng.standard_normal(flat.size, dtype=np.float32))

    def _reram_g0(self, g_meas: np.ndarray, vth: np.ndarray) -> np.ndarray:
        """Small-signal ReRAM conductance behind a nominal 1T1R reading ``g_meas``."""
        v, v0 = self.read_voltage_V, self.sw.v0_V
        r_on = self.tr.triode_ohm(self.gate_voltage_V, vth)
        v_r = v * np.clip(1.0 - g_meas * r_on, 1e-3, 1.0)
        return g_meas * v / (v0 * np.sinh(v_r / v0))

    def _series_current(self, g0: np.ndarray, v0: float | np.ndarray, v_abs: np.ndarray,
                        r_on: np.ndarray, i_lim: np.ndarray) -> np.ndarray:
        """|I| through ReRAM (I = g0 v0 sinh(V_r/v0)) in series with r_on, clamped at i_lim."""
        i = v_abs / (r_on + 1.0 / np.maximum(g0, 1e-15))  # linear start, below the root
        i = np.minimum(i, i_lim)
        for _ in range(8):  # Newton on a concave increasing function: monotone from below
            v_r = np.maximum(v_abs - i * r_on, 0.0)
            arg = np.minimum(v_r / v0, 50.0)
            f = i - g0 * v0 * np.sinh(arg)
            fp = 1.0 + g0 * r_on * np.cosh(arg)
            step = f / fp
            i = np.minimum(i - step, i_lim)
            if np.max(np.abs(step), initial=0.0) < 1e-12:  # 1 pA: converged everywhere
                break
        return np.maximum(i, 0.0)

    # --- DeviceModel ---------------------------------------------------------------------------
    def sweep(self, state: State, r: IntArray, c: IntArray, voltages_V: FloatArray,
              gate_V: float, compliance_A: float, rng: np.random.Generator,
              t_s: float) -> FloatArray:
        """Quasi-static staircase: forming, gradual set/reset, current per cell and step."""
        sel = _selector(state["g_S"].shape, r, c)
        n = r.size
        formed = np.array(self._get(state, "formed", sel))
        was_formed = formed.copy()
        g = np.where(formed, self._relaxed(state, sel, t_s), 0.0)
        g_start = g.copy()
        vth = self._get(state, "vth_V", sel)
        v_form = self._get(state, "v_form_V", sel)
        g_leak = self._get(state, "g_leak_S", sel)
        g_hrs, g_lrs = self._get(state, "g_hrs_S", sel), self._get(state, "g_lrs_S", sel)
        r_on = self.tr.triode_ohm(gate_V, vth)
        i_lim = np.minimum(self.tr.saturation_A(gate_V, vth), compliance_A)
        set_cap = np.minimum(g_lrs, i_lim / max(self.sw.v_set_full_V, 1e-3))
        steps = voltages_V.size
        out = np.empty((n, steps))
        # the state step by step, the currents of a block of steps at once (the solve is the
        # costly part, and on a row of cells its per-step overhead dominated)
        width = max(1, min(steps, CHUNK // max(n, 1)))
        g_k, formed_k = np.empty((n, width)), np.empty((n, width), bool)
        # last full-switch event per cell in this sweep: 0 none, 1 full reset, 2 set
        mark = np.zeros(n, np.int8)
        f = self.forming
        for k, v in enumerate(voltages_V):
            v_abs = abs(float(v))
            if f.polarity * v > 0:
                new = ~formed & (v_abs >= v_form)
                if np.any(new):
                    formed |= new
                    g_new = f.g_formed_S * np.exp(f.g_formed_sigma_ln * rng.standard_normal(n))
                    g = np.where(new, g_new, g)
            g, event = self._switch(g, float(v), was_formed, g_hrs, g_lrs, set_cap)
            if event == "set":
                mark[was_formed] = 2
            elif event == "full reset":
                mark[was_formed] = 1
            j = k % width
            g_k[:, j], formed_k[:, j] = g, formed
            if j == width - 1 or k == steps - 1:
                k0 = k - j
                v_blk = voltages_V[k0:k + 1]
                out[:, k0:k + 1] = np.sign(v_blk) * self._step_currents(
                    formed_k[:, :j + 1], g_k[:, :j + 1], g_leak, vth, np.abs(v_blk), r_on,
                    i_lim)
        self._finish_sweep(state, sel, formed, was_formed, g, g_start, t_s, rng)
        if np.any(mark):  # a full reset arms the coarse phase, a set disarms it
            flat = np.arange(state["g_S"].size)[sel][mark > 0]
            self._unarmed.pop(id(state["pulses_since_reset"]), None)
            self._put(state, "pulses_since_reset", flat,
                      np.where(mark[mark > 0] == 1, 0.0, _NO_RESET))
        return out

    def _switch(self, g: np.ndarray, v: float, was_formed: np.ndarray, g_hrs: np.ndarray,
                g_lrs: np.ndarray, set_cap: np.ndarray) -> tuple[np.ndarray, str | None]:
        """One quasi-static step of gradual set (towards the capped LRS) or reset (to HRS)."""
        sw, v_abs = self.sw, abs(v)
        if self.set_polarity * v > 0:
            frac = _unit((v_abs - sw.v_set_on_V) / (sw.v_set_full_V - sw.v_set_on_V))
            if frac <= 0:
                return g, None
            target = g_hrs + (set_cap - g_hrs) * frac
            return np.where(was_formed, np.maximum(g, target), g), "set"
        frac = _unit((v_abs - sw.v_reset_on_V) / (sw.v_reset_full_V - sw.v_reset_on_V))
        if v == 0 or frac <= 0:
            return g, None
        target = g_lrs - (g_lrs - g_hrs) * frac
        return (np.where(was_formed, np.minimum(g, target), g),
                "full reset" if frac >= 1 else "reset")

    def _step_currents(self, formed: np.ndarray, g: np.ndarray, g_leak: np.ndarray,
                       vth: np.ndarray, v_abs: np.ndarray, r_on: np.ndarray,
                       i_lim: np.ndarray) -> np.ndarray:
        """|I| of n cells at w steps of a sweep (leakage until formed, then the ReRAM in series
        with the transistor): ``formed`` and ``g`` (n, w), ``v_abs`` (w,), the other arrays
        per cell (n,)."""
        lv0 = self.forming.leak_v0_V
        out = np.minimum(g_leak[:, None] * lv0 * np.sinh(v_abs / lv0)[None, :], i_lim[:, None])
        if not formed.any():
            return out

        def at(a: np.ndarray) -> np.ndarray:  # a per-cell array, at the formed (cell, step)s
            return np.broadcast_to(a[:, None], formed.shape)[formed]

        g0 = self._reram_g0(np.maximum(g[formed], 1e-12), at(vth))
        v = np.broadcast_to(v_abs[None, :], formed.shape)[formed]
        out[formed] = self._series_current(g0, self.sw.v0_V, v, at(r_on), at(i_lim))
        return out

    def _finish_sweep(self, state: State, sel: slice | IntArray, formed: np.ndarray,
                      was_formed: np.ndarray, g: np.ndarray, g_start: np.ndarray, t_s: float,
                      rng: np.random.Generator) -> None:
        changed = formed & ((g != g_start) | ~was_formed)
        self._put(state, "formed", sel, formed)
        if not np.any(changed):
            return
        idx = np.flatnonzero(changed)
        flat = np.arange(state["g_S"].size)[sel][idx]
        self._program(state, flat, g[idx], t_s, rng)

    def pulse(self, state: State, r: IntArray, c: IntArray, amplitude_V: FloatArray,
              width_s: float, gate_V: float, count: IntArray, rng: np.random.Generator,
              t_s: float) -> None:
        """``count`` identical pulses per cell (positive = set); unformed cells do not switch."""
        sel = _selector(state["g_S"].shape, r, c)
        lo, hi = float(amplitude_V.min()), float(amplitude_V.max())
        uniform = lo == hi
        if uniform:  # one amplitude for all: scalar direction and drive
            up_all: bool | np.ndarray = lo > 0
            drive_all: float | np.ndarray = self._drive_of(lo, width_s, gate_V)
        else:
            up_all = amplitude_V > 0
            if lo < 0 < hi and not np.any((amplitude_V != lo) & (amplitude_V != hi)):
                # one set and one reset amplitude (a parallel update): two drives to compute
                drive_all = np.where(up_all, np.float32(self._drive_of(hi, width_s, gate_V)),
                                     np.float32(self._drive_of(lo, width_s, gate_V)))
            else:
                drive_all = self._drive(np.abs(amplitude_V), up_all, width_s, gate_V)
        self._pulse_chunks(state, sel, r.size, up_all, drive_all, count, rng, t_s)

    def pulse_counts(self, state: State, flat: IntArray, signed: IntArray, set_V: float,
                     reset_V: float, width_s: float, gate_V: float, rng: np.random.Generator,
                     t_s: float) -> None:
        """A parallel update: ``signed[k]`` pulses on cell ``flat[k]`` (row-major index), set
        pulses of ``|set_V|`` where positive, reset pulses of ``-|reset_V|`` where negative
        (nonzero counts only).

        :meth:`pulse` with those amplitudes, without building and re-analysing a per-cell
        amplitude array or splitting the cells into rows and columns: the direction comes
        from the sign, the two drives are computed once.
        """
        sel = _flat_selector(state["g_S"].shape, flat)
        up_all: bool | np.ndarray = signed > 0
        n_up = int(np.count_nonzero(up_all))
        hi, lo = abs(float(set_V)), -abs(float(reset_V))
        drive_all: float | np.ndarray
        if n_up in (0, signed.size):  # one direction for all: scalar direction and drive
            up_all = n_up > 0
            drive_all = self._drive_of(hi if up_all else lo, width_s, gate_V)
        else:
            drive_all = np.where(up_all, np.float32(self._drive_of(hi, width_s, gate_V)),
                                 np.float32(self._drive_of(lo, width_s, gate_V)))
        self._pulse_chunks(state, sel, flat.size, up_all, drive_all, np.abs(signed), rng, t_s)

    def _pulse_chunks(self, state: State, sel: slice | IntArray, n: int,
                      up_all: bool | np.ndarray, drive_all: float | np.ndarray, count: IntArray,
                      rng: np.random.Generator, t_s: float) -> None:
        """The ``n`` selected cells in blocks of :data:`CHUNK`; direction and drive are one
        value for all (scalars) or one per cell."""
        uniform = not isinstance(up_all, np.ndarray)
        for sub, part in _chunks(sel, n):
            up = up_all if uniform else up_all[part]  # type: ignore[index]
            drive = drive_all if uniform else drive_all[part]  # type: ignore[index]
            self._pulse_block(state, sub, up, drive, count[part], rng, t_s)

    def _pulse_block(self, state: State, sel: slice | IntArray, up: bool | np.ndarray,
                     drive: float | np.ndarray, count: IntArray, rng: np.random.Generator,
                     t_s: float) -> None:
        all_formed = bool(state["formed"].all())  # (a scan of 1 byte per cell beats a gather)
        if not all_formed:
            formed = self._get(state, "formed", sel)
            all_formed = bool(formed.all())
            if not all_formed:
                drive = np.where(formed, drive, 0.0)
        t_prog = self._get(state, "t_prog_s", sel) if t_s > 0 else None
        g = self._relaxed(state, sel, t_s, t_prog)
        flat = np.arange(state["g_S"].size)[sel] if isinstance(sel, slice) else sel
        p = self._param_table(state).take(flat, up, width=not self.response.unit_gamma)
        boost0 = None
        d = self.drive
        if self._armed(state):
            n_prev = self._get(state, "pulses_since_reset", sel)
            if np.any(n_prev < 30 * d.reset_boost_pulses):
                boost0 = d.reset_boost * np.exp(-n_prev / d.reset_boost_pulses)
        # (g is a fresh gather; unformed cells keep it, so it is pulsed in place only if none)
        g_new = apply_pulses(g, p, drive, count, self.response, rng, boost0=boost0,
                             boost_pulses=d.reset_boost_pulses, in_place=all_formed)
        self._program(state, sel, g_new if all_formed else np.where(formed, g_new, g), t_s, rng,
                      t_prog)
        if boost0 is not None:
            self._put(state, "pulses_since_reset", sel, np.minimum(n_prev + count, _NO_RESET))

    def _armed(self, state: State) -> bool:
        """Whether any cell of the die may still be in the coarse phase after a full reset.

        Only sweeps and masks arm cells (they forget the answer); pulses only take cells out
        of the phase, so once a full check finds none armed, pulse calls skip the per-cell
        check until the next sweep or mask.
        """
        psr = state["pulses_since_reset"]
        hit = self._unarmed.get(id(psr))
        if hit is not None and hit() is psr:
            return False
        d = self.drive
        if d.reset_boost > 0 and np.any(psr < 30 * d.reset_boost_pulses):
            return True
        key = id(psr)

        def forget(_: object, k: int = key) -> None:
            self._unarmed.pop(k, None)

        self._unarmed[key] = weakref.ref(psr, forget)
        return False

    def _param_table(self, state: State) -> ParamTable:
        """The die's pulse-response parameters packed for pulsing, built once.

        Cached per state; the device-to-device draws never change after
        :meth:`initial_state`, and a state whose parameter arrays were replaced (restore)
        gets a new table.  The entry goes when the state's arrays are freed.
        """
        src = [state[k] for k in PARAM_KEYS]
        key = id(src[0])
        hit = self._tables.get(key)
        if hit is not None and all(ref() is a for ref, a in zip(hit[0], src, strict=True)):
            return hit[1]
        table = ParamTable.pack(dict(zip(PARAM_KEYS, src, strict=True)))
        self._tables[key] = (tuple(weakref.ref(a) for a in src), table)
        weakref.finalize(src[0], self._tables.pop, key, None)
        return table

    def _drive_of(self, amplitude_V: float, width_s: float, gate_V: float) -> float:
        """:meth:`_drive` of one pulse shape, remembered (a training run uses very few)."""
        key = (amplitude_V, width_s, gate_V)
        d = self._drives.get(key)
        if d is None:
            if len(self._drives) >= 256:
                self._drives.clear()
            d = float(self._drive(np.array([abs(amplitude_V)]), np.array([amplitude_V > 0]),
                                  width_s, gate_V)[0])
            self._drives[key] = d
        return d

    def _drive(self, v_abs: np.ndarray, up: np.ndarray, width_s: float,
               gate_V: float) -> np.ndarray:
        """Step multiplier: exponential in |V| above threshold, power of width, gate-limited set."""
        d = self.drive
        v_ref = np.float32(d.reset_ref_V) + up * np.float32(d.set_ref_V - d.reset_ref_V)
        amp = np.exp((v_abs.astype(np.float32) - v_ref) * np.float32(1.0 / d.v_scale_V))
        amp *= v_abs >= d.v_threshold_V
        i_ratio = float(self.tr.saturation_A(gate_V, self.tr.vth_V)
                        / self.tr.saturation_A(self.gate_voltage_V, self.tr.vth_V))
        on = 1.0 if gate_V > self.tr.vth_V else 0.0
        width = (width_s / d.width_ref_s) ** d.width_exponent
        f_up, f_down = np.float32(min(i_ratio, 1.0) * width), np.float32(on * width)
        return amp * (f_down + up * (f_up - f_down))

    def conductance(self, state: State, r: IntArray, c: IntArray, rng: np.random.Generator,
                    t_s: float, read_voltage_V: float, gate_V: float) -> FloatArray:
        """Read: relaxed conductance through the series circuit, plus read noise."""
        sel = _selector(state["g_S"].shape, r, c)
        out = np.empty(r.size)
        for sub, part in _chunks(sel, r.size):
            out[part] = self._read_block(state, sub, rng, t_s, read_voltage_V, gate_V)
        return out

    def _read_block(self, state: State, sel: slice | IntArray, rng: np.random.Generator,
                    t_s: float, read_voltage_V: float, gate_V: float) -> FloatArray:
        g = self._relaxed(state, sel, t_s)
        formed = self._get(state, "formed", sel)
        nominal = (read_voltage_V == self.read_voltage_V and gate_V == self.gate_voltage_V)
        if not nominal or not formed.all():
            g = self._chord(state, sel, g, formed, read_voltage_V, gate_V)
        return self.noise.add(g, rng)

    def read_moments(self, state: State, r: IntArray, c: IntArray,
                     t_s: float) -> tuple[FloatArray, FloatArray]:
        """Mean (relaxed, noise-free) and read-noise variance of one nominal read of each cell.

        ``conductance`` at the nominal read voltage and gate is ``mean + sqrt(var) * z``
        with an independent standard normal ``z`` per cell and read; SimulatedArray sums
        these in output space for MVMs.
        """
        sel = _selector(state["g_S"].shape, r, c)
        g = self._relaxed(state, sel, t_s)
        formed = self._get(state, "formed", sel)
        if not formed.all():
            g = self._chord(state, sel, g, formed, self.read_voltage_V, self.gate_voltage_V)
        sd = self.noise.sigma_S(g)
        return g, sd * sd

    def _chord(self, state: State, sel: slice | IntArray, g: np.ndarray, formed: np.ndarray,
               v: float, gate_V: float) -> np.ndarray:
        """Chord conductance I(V)/V of every cell at an arbitrary read voltage and gate."""
        v_abs = max(abs(v), 1e-6)
        vth = self._get(state, "vth_V", sel)
        r_on = self.tr.triode_ohm(gate_V, vth)
        i_lim = self.tr.saturation_A(gate_V, vth)
        i = self._step_currents(formed[:, None], g[:, None], self._get(state, "g_leak_S", sel),
                                vth, np.array([v_abs]), r_on, i_lim)
        return i[:, 0] / v_abs

    def mask(self, state: State, r: IntArray, c: IntArray, enabled: np.ndarray,
             rng: np.random.Generator, t_s: float) -> None:
        """Disabled: reset the cell to its HRS; enabled: set it back to its LRS."""
        sel = _selector(state["g_S"].shape, r, c)
        formed = np.array(self._get(state, "formed", sel))
        level = np.where(enabled, self._get(state, "g_lrs_S", sel),
                         self._get(state, "g_hrs_S", sel)).astype(np.float64)
        g = level * (1.0 + self.sw.mask_sigma_rel * rng.standard_normal(level.size))
        g = np.where(formed, np.maximum(g, 0.0), self._get(state, "g_S", sel))
        self._program(state, sel, g, t_s, rng)
        self._unarmed.pop(id(state["pulses_since_reset"]), None)
        self._put(state, "pulses_since_reset", sel, np.where(enabled, _NO_RESET, 0.0))

    def conductance_matrix(self, state: State, rng: np.random.Generator, t_s: float) -> FloatArray:
        """Whole array at the nominal read: relaxed conductance plus read noise."""
        shape = state["g_S"].shape
        out = np.empty(state["g_S"].size)
        for sub, part in _chunks(slice(None), out.size):
            out[part] = self._read_block(state, sub, rng, t_s, self.read_voltage_V,
                                         self.gate_voltage_V)
        return out.reshape(shape)
