"""Physics of the cmo-hfox-1t1r preset against the seed-004 figures (devices.md section 1)."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.array import Cells
from labctl.protocols.analysis.open_loop import figures_of_merit, open_loop_schedule
from labctl.protocols.forming import formed, forming_point
from labctl.sim_backend.models.pulse_response import PARAM_KEYS
from labctl.sim_backend.presets import load_model
from labctl.sim_backend.simulated_array import SimulatedArray

RAMP_V = np.linspace(0.0, 4.0, 401)          # the forming protocol's default staircase
HALF_V = np.r_[np.linspace(0.0, 1.5, 76), np.linspace(1.5, 0.0, 76)]
WIDTH_S = 2.5e-6
ALL = Cells.all()


def fresh(rows: int = 8, cols: int = 4, seed: int = 0) -> SimulatedArray:
    return SimulatedArray(load_model("cmo-hfox-1t1r"), rows, cols, seed=seed)


def formed_array(rows: int = 8, cols: int = 4, seed: int = 0) -> SimulatedArray:
    """Formed, then set by a sweep in the set direction (negative for eight-wise)."""
    a = fresh(rows, cols, seed)
    a.sweep(ALL, RAMP_V, gate_V=1.2, compliance_A=1e-3)
    a.sweep(ALL, a.info.set_polarity * HALF_V, gate_V=1.2, compliance_A=1e-3)
    return a


def reset_sweep(a: SimulatedArray) -> None:
    a.sweep(ALL, -a.info.set_polarity * HALF_V, gate_V=1.2, compliance_A=1e-3)


def params(a: SimulatedArray) -> dict[str, np.ndarray]:
    return {k: a.state[k].ravel().astype(float) for k in PARAM_KEYS}


# --- forming ----------------------------------------------------------------------------------
def forming_figures(seed: int) -> dict[str, float]:
    a = fresh(seed=seed)
    res = a.sweep(ALL, RAMP_V, gate_V=1.2, compliance_A=1e-3)
    k, v, i = forming_point(res.voltage_V, res.current_A)
    ok = formed(res.current_A, k, 5.0)
    return {"yield": ok.mean(), "v": v.mean(), "v_sd": v.std(), "i": i.mean(),
            "v_reram": (v - i * a.info.selector_resistance_ohm).mean()}


def test_forming_reproduces_the_seed_chip() -> None:
    f = forming_figures(0)
    assert f["yield"] == 1.0
    assert abs(f["v"] - 3.38) <= 0.05
    assert 0.05 <= f["v_sd"] <= 0.15                 # CDF from ~3.1 to ~3.5 V
    assert abs(f["i"] - 258e-6) <= 0.15 * 258e-6
    assert abs(f["v_reram"] - 3.17) <= 0.06


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_forming_other_seeds_land_in_band(seed: int) -> None:
    f = forming_figures(seed)
    assert f["yield"] == 1.0 and abs(f["v"] - 3.38) <= 0.05
    assert abs(f["i"] - 258e-6) <= 0.15 * 258e-6


def test_selector_triode_resistance_is_exposed() -> None:
    assert 700 <= fresh().info.selector_resistance_ohm <= 900   # ~0.8 kOhm at V_G = 1.2 V [B]


def test_fresh_cells_leak_and_ignore_pulses() -> None:
    a = fresh()
    g0 = a.read(ALL)
    assert np.all(g0 < 1e-7)
    a.pulse(ALL, 1.5, WIDTH_S, count=10)
    assert np.all(a.read(ALL) < 1e-7)


def test_eight_wise_switching_and_hrs_lrs_ratio() -> None:
    a = formed_array(seed=1)
    assert a.info.set_polarity == -1
    lrs = a.read(ALL)
    reset_sweep(a)
    hrs = a.read(ALL)
    assert 4e-6 < hrs.mean() < 8e-6 and np.all(hrs < lrs)             # HRS below the window
    assert 10 <= lrs.mean() / hrs.mean() <= 20                    # HRS/LRS ~ 15 [A]
    assert 80e-6 <= lrs.mean() <= 95e-6                           # top of the 8-90 uS window


def test_switching_below_1p5_V_and_gate_controls_set() -> None:
    a = formed_array(seed=2)
    reset_sweep(a)
    a.sweep(ALL, -np.linspace(0.0, 0.6, 31), gate_V=1.2, compliance_A=1e-3)
    assert a.read(ALL).mean() < 10e-6                             # below the set onset
    a.sweep(ALL, -np.linspace(0.0, 1.5, 76), gate_V=1.0, compliance_A=1e-3)
    low_gate = a.read(ALL).mean()
    a.sweep(ALL, -np.linspace(0.0, 1.5, 76), gate_V=1.2, compliance_A=1e-3)
    assert low_gate < 0.8 * a.read(ALL).mean()                    # compliance caps the set


def test_sinh_iv_near_linear_at_read() -> None:
    a = formed_array(seed=3)
    g_01 = a.read(ALL, voltage_V=0.1).mean()
    g_02 = a.read(ALL, voltage_V=0.2).mean()
    g_10 = a.read(ALL, voltage_V=1.0).mean()
    assert abs(g_02 / g_01 - 1) < 0.03
    assert g_10 > 1.2 * g_02            # trap-to-trap tunnelling bends the I-V upwards


# --- pulses ---------------------------------------------------------------------------------
def test_soft_bounds_saturate_under_repeated_up_pulses() -> None:
    a = formed_array(16, 16, seed=4)
    reset_sweep(a)
    a.pulse(ALL, -1.3, WIDTH_S, count=20)        # leave the coarse phase after the reset
    trace = []
    for _ in range(30):
        a.pulse(ALL, 1.35, WIDTH_S, count=10)
        trace.append(a.read(ALL))
    g = np.array(trace)
    early_rise = (g[2] - g[0]).mean()
    late_rise = (g[-1] - g[-3]).mean()
    assert early_rise > 10e-6
    assert abs(late_rise) < 0.1 * early_rise                      # saturated
    g_max = params(a)["pr_gmax"]
    assert abs(g[-10:].mean(axis=0).mean() / g_max.mean() - 1) < 0.1


def alternate(a: SimulatedArray, pairs: int) -> np.ndarray:
    out = []
    for _ in range(pairs):
        a.pulse(ALL, 1.35, WIDTH_S)
        a.pulse(ALL, -1.3, WIDTH_S)
        out.append(a.read(ALL))
    return np.array(out)


def test_alternating_pulses_converge_to_the_symmetry_point() -> None:
    hi, lo = formed_array(16, 16, seed=5), formed_array(16, 16, seed=5)
    hi.pulse(ALL, 1.35, WIDTH_S, count=200)
    lo.pulse(ALL, -1.3, WIDTH_S, count=200)
    assert hi.read(ALL).mean() > lo.read(ALL).mean() + 40e-6
    g_hi, g_lo = alternate(hi, 300)[-200:], alternate(lo, 300)[-200:]
    p = params(hi)
    window = p["pr_gmax"] - p["pr_gmin"]
    g_sp = p["pr_gmin"] + window * (1 + p["pr_asym"]) / 2        # soft bounds, gamma = 1
    assert abs(g_hi.mean() - g_lo.mean()) < 0.05 * window.mean()  # same point from both sides
    assert abs(g_hi.mean() - g_sp.mean()) < 0.1 * window.mean()


def open_loop_figures(seed: int) -> dict[str, float]:
    """The seed's open-loop scheme (devices.md), analysed with the symmetry-point protocol's
    definitions (labctl/protocols/analysis/open_loop.py), per device then averaged."""
    sched = open_loop_schedule(400, 2, 500)
    a = formed_array(seed=seed)
    trace = [a.read(ALL)]
    for sign in sched.sign:
        a.pulse(ALL, 1.35 if sign > 0 else -1.3, WIDTH_S)
        trace.append(a.read(ALL))
    fom = figures_of_merit(np.array(trace), sched)
    return {"n": fom.n_states.mean(), "n_min": fom.n_states.min(),
            "n_max": fom.n_states.max(), "skew": fom.sp_skew.mean(), "nsr": fom.nsr.mean()}


def test_open_loop_symmetry_point_figures() -> None:
    f = open_loop_figures(0)
    assert abs(f["n"] - 22) <= 4                   # N_states mean 22 [A]
    assert f["n_min"] < 18 and f["n_max"] > 28    # range 16-33 [B]
    assert abs(f["skew"] - 0.61) <= 0.06           # SP skew 61 % [A]
    assert abs(f["nsr"] - 0.90) <= 0.15            # NSR 90 % [A]


def test_step_grows_with_pulse_amplitude() -> None:
    a, b = formed_array(16, 16, seed=6), formed_array(16, 16, seed=6)
    for arr in (a, b):
        arr.pulse(ALL, -1.3, WIDTH_S, count=200)
    g0 = a.read(ALL)
    a.pulse(ALL, 1.35, WIDTH_S, count=3)
    b.pulse(ALL, 1.5, WIDTH_S, count=3)
    assert (b.read(ALL) - g0).mean() > 1.5 * (a.read(ALL) - g0).mean()


def test_first_pulses_after_a_full_reset_are_coarse() -> None:
    fresh_reset, settled = formed_array(16, 16, seed=15), formed_array(16, 16, seed=15)
    for a in (fresh_reset, settled):
        reset_sweep(a)
    settled.pulse(ALL, -1.3, WIDTH_S, count=30)       # steady pulsing disarms the coarse phase
    steps = []
    for a in (fresh_reset, settled):
        g0 = a.state["g_S"].copy()
        a.pulse(ALL, 1.35, WIDTH_S)
        steps.append((a.state["g_S"] - g0).mean())
    assert steps[0] > 3 * steps[1] > 0


def test_sub_threshold_pulses_do_not_switch() -> None:
    a = formed_array(seed=7)
    a.pulse(ALL, -1.3, WIDTH_S, count=50)
    g0 = a.state["g_S"].copy()
    a.pulse(ALL, 0.3, WIDTH_S, count=20)
    np.testing.assert_array_equal(a.state["g_S"], g0)


def program_verify(a: SimulatedArray, targets_S: np.ndarray, p: float,
                   cap: int) -> np.ndarray:
    """An idealised program-verify loop (devices.md): sweep reset, then read/set/reset."""
    reset_sweep(a)
    t = targets_S.ravel()
    set_V = np.where(t >= 60e-6 - 1e-12, 1.5, 1.35)
    reset_V = np.where(t < 30e-6 - 1e-12, -1.5, -1.3)
    pulses = np.zeros(t.size, int)
    done = np.zeros(t.size, bool)
    for _ in range(cap):
        g = a.read(ALL)
        done |= np.abs(g - t) <= p * t
        if done.all():
            break
        a.pulse(ALL, np.where(done, 0.0, np.where(g < t, set_V, reset_V)), WIDTH_S)
        pulses += ~done
    assert done.all()
    return pulses


def test_closed_loop_effort_matches_the_seed() -> None:
    a = formed_array(16, 32, seed=8)
    targets = np.repeat(np.linspace(10e-6, 90e-6, 8), 64)
    pulses = program_verify(a, targets, 0.02, 400)
    assert 8 <= pulses.mean() <= 16                  # ~11 pulses at 2 % [A]
    per_level = pulses.reshape(8, -1).mean(1)
    assert per_level.max() < 3 * per_level.min()     # "almost independent of G_target"


# --- read noise, relaxation -------------------------------------------------------------------
def test_read_noise_follows_lombardo_within_20_percent() -> None:
    a = formed_array(16, 16, seed=9)
    a.pulse(Cells.rect(0, 8, 0, 16), -1.3, WIDTH_S, count=8)  # two conductance groups
    reads = np.array([a.read(ALL) for _ in range(200)])
    g_uS = reads.mean(0) * 1e6
    t = a.model.noise.integration_s
    model_uS = 0.0277 * np.log10(g_uS) * np.sqrt(np.log((t + 1e-6) / 2e-6))
    ratio = reads.std(0) * 1e6 / model_uS
    assert abs(ratio.mean() - 1) < 0.2
    frac = model_uS / g_uS
    assert np.all((frac > 0.001) & (frac < 0.02))


def test_read_noise_has_the_documented_values_at_a_300_us_read() -> None:
    """Lombardo's formula at the seed's 300 us read pulse: 0.056 / 0.099 / 0.12 uS at 8 /
    40 / 90 uS (read_noise.py); the statistical test above allows 20 %, this one 3 %."""
    spec = load_model("cmo-hfox-1t1r").noise
    assert spec.integration_s == 300e-6
    sigma_uS = spec.sigma_S(np.array([8e-6, 40e-6, 90e-6])) * 1e6
    assert sigma_uS == pytest.approx([0.056, 0.099, 0.12], rel=0.03)


def test_relaxation_starts_small_within_the_first_second() -> None:
    """Below 1 s the fits do not apply: the spread grows from zero (placeholder onset), so a
    cell read a millisecond after its pulse has barely relaxed (program-verify sees no drift)."""
    spec = load_model("cmo-hfox-1t1r").relax
    sigma_1s = float(spec.sigma_S(np.array([1.0]))[0])
    assert sigma_1s == pytest.approx(0.4118e-6)
    assert np.all(spec.sigma_S(np.array([0.0, 1e-4])) <= 0.1 * sigma_1s)
    assert spec.sigma_S(np.array([0.0]))[0] == 0.0
    a = formed_array(16, 16, seed=15)
    a.pulse(ALL, -1.3, WIDTH_S, count=4)
    g_prog = a.state["g_S"].ravel().copy()
    a.wait(1e-3)
    moved = a.read(ALL) - g_prog
    read_sd = a.model.noise.sigma_S(g_prog)
    assert np.std(moved) < 2 * read_sd.mean() < 0.5 * sigma_1s


def test_relaxation_at_one_hour_matches_the_fits() -> None:
    a = formed_array(64, 64, seed=10)
    a.pulse(ALL, -1.3, WIDTH_S, count=12)          # program every cell now
    g0 = a.state["g_S"].ravel().copy()
    a.wait(3600.0)
    g1 = a.read(ALL)
    d_uS = (g1 - g0) * 1e6
    read_sd_uS = a.model.noise.sigma_S(g1).mean() * 1e6
    lt = np.log(3600.0)
    mean_fit, sigma_fit = -0.0890 * lt, 0.0420 * lt + 0.4118
    assert abs(d_uS.mean() / mean_fit - 1) < 0.1
    sigma_relax = np.sqrt(d_uS.var() - read_sd_uS**2)
    assert abs(sigma_relax / sigma_fit - 1) < 0.1
    # the same cell read again at the same time: same relaxed value, fresh read noise only
    again = a.read(ALL)
    assert np.std((again - g1) * 1e6) < 2 * read_sd_uS < 0.5 * sigma_fit


def test_relaxation_is_independent_of_level_and_absent_right_after_programming() -> None:
    a = formed_array(32, 32, seed=11)
    a.pulse(Cells.rect(0, 16, 0, 32), -1.3, WIDTH_S, count=30)
    g0 = a.state["g_S"].copy()
    a.wait(600.0)
    shift = a.read(ALL).reshape(32, 32) - g0
    lo, hi = shift[:16].mean(), shift[16:].mean()
    assert abs(lo - hi) < 0.15e-6 and abs(lo / (-0.0890e-6 * np.log(600)) - 1) < 0.2
    b = formed_array(8, 8, seed=12)
    g_prog = b.state["g_S"].ravel().copy()
    assert np.abs(b.read(ALL) - g_prog).max() < 6 * b.model.noise.sigma_S(g_prog).max()


# --- mask, mvm, reproducibility ---------------------------------------------------------------
def test_mask_resets_to_hrs_and_sets_back_to_lrs() -> None:
    a = formed_array(seed=13)
    before = a.operations
    a.mask(Cells.rect(0, 4, 0, 4), False)
    assert a.operations - before == 16                           # a mask counts as operations
    g = a.read(ALL).reshape(8, 4)
    assert np.all(g[:4] < 9e-6) and np.all(g[4:] > 70e-6)
    a.mask(Cells.rect(0, 4, 0, 4), True)
    assert np.all(a.read(ALL) > 70e-6)


def test_mvm_uses_relaxed_conductance_with_read_noise() -> None:
    a = formed_array(16, 8, seed=14)
    g = a.state["g_S"].copy()
    x = np.full((1, 16), 0.2)
    i = a.mvm(x)
    np.testing.assert_allclose(i, x @ g, rtol=0.01)
    assert not np.allclose(a.mvm(x), i, rtol=1e-9, atol=0)           # noise is fresh
    a.wait(3600.0)
    drift = (a.mvm(x) - i).mean() / 0.2 / 16                          # per cell
    assert abs(drift / (-0.0890e-6 * np.log(3600)) - 1) < 0.5


def run_sequence(seed: int) -> np.ndarray:
    a = formed_array(8, 8, seed=seed)
    a.pulse(ALL, np.where(np.arange(64) % 2 == 0, 1.35, -1.3), WIDTH_S,
            count=np.arange(64) % 7)
    a.wait(100.0)
    return np.r_[a.read(ALL), a.mvm(np.full(8, 0.1))]


def test_same_seed_same_result() -> None:
    np.testing.assert_array_equal(run_sequence(21), run_sequence(21))
    assert not np.array_equal(run_sequence(21), run_sequence(22))


def test_a_reset_with_the_transistor_off_does_not_switch() -> None:
    """Below the gate threshold no current flows: reset pulses leave G unchanged."""
    a = formed_array(seed=7)
    g0 = a.state["g_S"].copy()
    a.pulse(ALL, -1.3, WIDTH_S, count=5, gate_V=0.5)
    np.testing.assert_array_equal(a.state["g_S"], g0)
    a.pulse(ALL, -1.3, WIDTH_S, count=5, gate_V=1.2)
    assert np.all(a.state["g_S"] < g0)


def test_step_grows_as_a_power_of_pulse_width() -> None:
    """One set pulse 10x wider steps 10^width_exponent (0.25) times further."""
    a, b = formed_array(16, 16, seed=6), formed_array(16, 16, seed=6)
    for arr in (a, b):
        arr.pulse(ALL, -1.3, WIDTH_S, count=200)
    g0 = a.state["g_S"].copy()
    a.pulse(ALL, 1.35, WIDTH_S)
    b.pulse(ALL, 1.35, 10 * WIDTH_S)
    ratio = (b.state["g_S"] - g0).mean() / (a.state["g_S"] - g0).mean()
    assert ratio == pytest.approx(10 ** 0.25, rel=0.01)
