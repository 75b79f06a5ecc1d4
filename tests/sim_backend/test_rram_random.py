"""Physics of the electroforming-random 1T1R preset ``rram-40nm-random`` (seed 000)."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.array import Cells
from labctl.protocols.forming import Forming, FormingConfig
from labctl.sim_backend.models.rram_random import RramRandomModel
from labctl.sim_backend.presets import default_shape, load_model, load_preset
from labctl.sim_backend.simulated_array import SimulatedArray

PRESET = "rram-40nm-random"


@pytest.fixture(scope="module")
def model() -> RramRandomModel:
    m = load_model(PRESET)
    assert isinstance(m, RramRandomModel)
    return m


def fresh(model: RramRandomModel, n: int = 64, seed: int = 0) -> SimulatedArray:
    return SimulatedArray(model, n, n, seed=seed)


def weibull(model: RramRandomModel, v: float, t: float) -> float:
    f = model.forming
    return float(1.0 - np.exp(-((t / f.tau_s(v)) ** f.beta)))


def formed_fraction(model: RramRandomModel, v: float, width_s: float, seed: int = 0) -> float:
    a = fresh(model, seed=seed)
    a.pulse(Cells.all(), v, width_s)
    return float(a.state["formed"].mean())


def test_preset_loads_with_cited_defaults(model: RramRandomModel) -> None:
    assert default_shape(PRESET) == (64, 64)
    assert model.technology == "1t1r-reram" and model.set_polarity == 1
    assert load_preset(PRESET)["model"] == "rram-random"
    assert model.limits.max_voltage_V >= 4.0  # the forming ramp goes to 4 V


def test_fresh_die_is_unformed_and_leaks_only(model: RramRandomModel) -> None:
    a = fresh(model)
    g = a.read(Cells.all())
    assert not a.state["formed"].any()
    assert np.median(g) < 1e-8  # ~1 nS leakage vs ~20 uS once formed


@pytest.mark.parametrize("width_s", [1e-5, 1e-4])
def test_forming_probability_rises_with_amplitude_and_follows_weibull(
        model: RramRandomModel, width_s: float) -> None:
    volts = [3.6, 3.8, 4.0]
    p = [formed_fraction(model, v, width_s) for v in volts]
    assert p[0] < p[1] < p[2]
    for v, got in zip(volts, p, strict=True):
        want = weibull(model, v, width_s)
        sd = np.sqrt(max(want * (1 - want), 1e-3) / 4096)
        assert abs(got - want) < 5 * sd + 2e-3, (v, got, want)


def test_forming_probability_rises_with_width_and_pulse_count(model: RramRandomModel) -> None:
    p = [formed_fraction(model, 3.8, w) for w in (2e-5, 5e-5, 1e-4, 2e-4)]
    assert all(b > a for a, b in zip(p, p[1:], strict=False))
    # ten 10 us pulses stress a cell as much as one 100 us pulse (cumulative stress)
    a = fresh(model)
    a.pulse(Cells.all(), 3.8, 1e-5, count=10)
    assert abs(a.state["formed"].mean() - p[2]) < 1e-9


def test_transistor_off_nothing_forms(model: RramRandomModel) -> None:
    a = fresh(model)
    a.pulse(Cells.all(), 4.0, 1e-3, gate_V=model.transistor.vth_V - 0.1)
    assert not a.state["formed"].any()


def test_sweep_forming_voltage_follows_cumulative_stress(model: RramRandomModel) -> None:
    """On a staircase, P(formed by step k) = 1 - exp(-S_k^beta), S_k = sum dt / tau(V_j)."""
    a = fresh(model)
    ramp = np.linspace(0.0, 4.0, 401)
    res = a.sweep(Cells.all(), ramp, gate_V=1.2, compliance_A=1e-3)
    jump = np.argmax(np.diff(res.current_A, axis=1), axis=1) + 1
    assert a.state["formed"].all()
    s = np.cumsum(model.forming.sweep_dwell_s / model.forming.tau_s(ramp))
    cdf_model = 1.0 - np.exp(-(s ** model.forming.beta))
    cdf_sim = np.searchsorted(np.sort(jump), np.arange(ramp.size), side="right") / jump.size
    assert np.max(np.abs(cdf_sim - cdf_model)) < 0.04  # KS distance, n = 4096
    # after breakdown the transistor, not the leakage, carries the current
    i_form = res.current_A[np.arange(jump.size), jump]
    assert np.median(i_form) > 1e-5 and i_form.max() <= model.transistor.saturation_A(1.2) * 1.1


def lognormal_formed(model: RramRandomModel, seed: int = 0) -> tuple[SimulatedArray, np.ndarray]:
    """Form every cell at the preset's reference voltage; cell G with the transistor removed."""
    a = fresh(model, seed=seed)
    a.pulse(Cells.all(), model.lrs.v_ref_V, 0.1)  # 100 ms at 3.0 V forms all cells
    assert a.state["formed"].all()
    g_read = a.read(Cells.all())
    return a, 1.0 / (1.0 / g_read - a.info.selector_resistance_ohm)


def test_post_forming_conductance_is_lognormal(model: RramRandomModel) -> None:
    _, g = lognormal_formed(model)
    ln_g = np.log(g)
    assert abs(ln_g.mean() - np.log(model.lrs.median_S)) < 0.05
    assert abs(ln_g.std() - model.lrs.sigma_ln) < 0.05
    z = (ln_g - ln_g.mean()) / ln_g.std()
    assert abs(np.mean(z ** 3)) < 0.15          # ln G is symmetric ...
    zg = (g - g.mean()) / g.std()
    assert np.mean(zg ** 3) > 1.0               # ... G itself is strongly skewed
    assert g.min() >= model.lrs.min_S * 0.9 and g.max() <= model.lrs.max_S * 1.1


def test_compliance_and_amplitude_shift_the_distribution(model: RramRandomModel) -> None:
    med = []
    for v, gate in ((4.0, 1.2), (4.0, 1.0)):
        a = fresh(model)
        a.pulse(Cells.all(), v, 1e-3, gate_V=gate)
        med.append(np.median(a.state["g_lrs_S"]))
    tr = model.transistor
    assert med[1] / med[0] == pytest.approx(tr.saturation_A(1.0) / tr.saturation_A(1.2), rel=0.1)
    assert med[0] > model.lrs.median_S  # formed above v_ref: larger filaments


def test_reset_leaves_the_residual_and_is_gradual(model: RramRandomModel) -> None:
    a, g0 = lognormal_formed(model)
    # one moderate reset pulse: partial reset (gradual RESET)
    a.pulse(Cells.all(), -1.5, 2.5e-6)
    g1 = a.read(Cells.all())
    ratio = np.median(g1 / g0)
    assert 0.5 < ratio < 0.98
    a.mask(Cells.all(), False)
    g_res = a.read(Cells.all())
    assert np.median(g_res) == pytest.approx(model.switching.residual_median_S, rel=0.1)
    assert g_res.min() > 0 and np.all(g_res < 0.5 * g0)


def test_set_restores_the_random_weight(model: RramRandomModel) -> None:
    a, g0 = lognormal_formed(model)
    rng = np.random.default_rng(3)
    pruned = rng.random(a.info.shape) < 0.5
    a.mask(Cells.from_mask(pruned), False)
    a.mask(Cells.from_mask(pruned), True)
    g1 = 1.0 / (1.0 / a.read(Cells.all()) - a.info.selector_resistance_ohm)
    rel = g1 / g0 - 1.0
    assert np.corrcoef(np.log(g0), np.log(g1))[0, 1] > 0.99
    assert abs(np.median(rel)) < 0.01 and np.std(rel) < 0.06
    # a set pulse at the program-verify amplitude restores it as well
    a.mask(Cells.all(), False)
    a.pulse(Cells.all(), 1.35, 2.5e-6)
    g2 = 1.0 / (1.0 / a.read(Cells.all()) - a.info.selector_resistance_ohm)
    assert np.median(np.abs(g2 / g0 - 1.0)) < 0.05


def test_set_level_follows_the_word_line_compliance(model: RramRandomModel) -> None:
    a, g0 = lognormal_formed(model)
    a.mask(Cells.all(), False)
    a.pulse(Cells.all(), 1.5, 2.5e-6, gate_V=1.0)       # lower gate: lower compliance
    g_low = 1.0 / (1.0 / a.read(Cells.all()) - a.info.selector_resistance_ohm)
    tr = model.transistor
    want = (tr.saturation_A(1.0) / tr.saturation_A(model.gate_voltage_V)) ** model.lrs.cc_exponent
    inside = (g0 * want > 1.2 * model.lrs.min_S)
    assert np.median(g_low[inside] / g0[inside]) == pytest.approx(want, rel=0.03)
    a.mask(Cells.all(), False)
    a.mask(Cells.all(), True)                            # mask SET: the formed level again
    g1 = 1.0 / (1.0 / a.read(Cells.all()) - a.info.selector_resistance_ohm)
    assert abs(np.median(g1 / g0) - 1.0) < 0.01


def test_mask_and_set_do_not_touch_unformed_cells(model: RramRandomModel) -> None:
    a = fresh(model, n=8)
    a.mask(Cells.all(), True)
    a.pulse(Cells.all(), 1.5, 1e-5)
    assert not a.state["formed"].any()


def test_read_noise_is_small_and_relative(model: RramRandomModel) -> None:
    a, _ = lognormal_formed(model)
    reads = np.stack([a.read(Cells.rect(0, 4, 0, 64)) for _ in range(300)])
    rel = reads.std(axis=0) / reads.mean(axis=0)
    assert np.mean(rel) == pytest.approx(model.read_sigma_rel, rel=0.2)


def form_row_by_row(a: SimulatedArray) -> dict[str, np.ndarray]:
    proto = Forming(FormingConfig())
    state = proto.initial_state(a)
    out: dict[str, list[np.ndarray]] = {}
    for step in proto.steps(a, state):
        for key, (values, _units) in step.append.items():
            out.setdefault(key, []).append(np.asarray(values))
    return {k: np.concatenate(v) for k, v in out.items()}


def test_forming_protocol_gives_high_yield_and_random_map(model: RramRandomModel) -> None:
    a = SimulatedArray(model, 16, 16, seed=5)
    rec = form_row_by_row(a)
    assert rec["forming/formed"].mean() >= 0.95
    v = rec["forming/v_form_V"][rec["forming/formed"]]
    assert 2.5 < v.mean() < 3.5 and 0.03 < v.std() < 0.2
    ln_g = np.log(rec["forming/g_after_S"])
    assert 0.4 < ln_g.std() < 0.8  # a random conductance map, not a programmed one


def test_same_seed_same_result(model: RramRandomModel) -> None:
    def run(seed: int) -> np.ndarray:
        a = SimulatedArray(model, 8, 8, seed=seed)
        a.sweep(Cells.rect(0, 4, 0, 8), np.linspace(0, 4, 201), gate_V=1.2, compliance_A=1e-3)
        a.pulse(Cells.rect(4, 8, 0, 8), 3.9, 1e-4)
        a.mask(Cells.rect(0, 2, 0, 8), False)
        return np.concatenate([a.read(Cells.all()), a.mvm(np.full(8, 0.1))])

    assert np.array_equal(run(11), run(11))
    assert not np.array_equal(run(11), run(12))


def test_reset_spread_of_a_pulse_train_shrinks_as_one_over_root_count(
        model: RramRandomModel) -> None:
    """n reset pulses act as one of n widths whose exponent spreads by sigma / sqrt(n)."""
    spreads = []
    for count, width_s in ((1, 8e-6), (4, 2e-6), (16, 0.5e-6)):
        a, _ = lognormal_formed(model)
        g0, g_res = a.state["g_S"].copy(), a.state["g_res_S"].copy()
        a.pulse(Cells.all(), -1.5, width_s, count=count)
        x = -np.log((a.state["g_S"] - g_res) / (g0 - g_res))
        assert np.all(x > 0)
        spreads.append(x.std() / x.mean())
    sigma = model.switching.reset_sigma
    assert spreads == pytest.approx([sigma, sigma / 2, sigma / 4], rel=0.1)
