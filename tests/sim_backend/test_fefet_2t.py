"""Physics of the MoS2 two-FeFET preset ``mos2-fefet-2t`` (seed 001)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from labctl.array import Cells
from labctl.sim_backend.models.fefet_2t import Fefet2tModel
from labctl.sim_backend.presets import default_shape, load_model, load_preset
from labctl.sim_backend.simulated_array import SimulatedArray

PRESET = "mos2-fefet-2t"
V_PGM = 3.0
WIDTH = 100e-6


@pytest.fixture(scope="module")
def model() -> Fefet2tModel:
    m = load_model(PRESET)
    assert isinstance(m, Fefet2tModel)
    return m


@pytest.fixture(scope="module")
def quiet() -> Fefet2tModel:
    """The same preset without read noise (exact current bookkeeping)."""
    preset = copy.deepcopy(load_preset(PRESET))
    preset["read_noise"]["sigma_rel"] = 0.0
    return Fefet2tModel.from_preset(preset, "quiet")


def test_preset_loads(model: Fefet2tModel) -> None:
    assert default_shape(PRESET) == (64, 64)
    assert model.technology == "fefet-2t"
    assert model.update.write_noise_rel == 0.10 and model.read_sigma_rel == 0.0425
    assert 0 < model.g_min_S < model.g_max_S


def test_initial_state_all_on_mid_window(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 32, 32, seed=0)
    assert a.state["s_on"].all()
    assert abs(a.state["x"].mean() - model.initial.x_mean) < 0.01


def test_masking_a_cell_removes_its_current(quiet: Fefet2tModel) -> None:
    a = SimulatedArray(quiet, 8, 4, seed=1)
    x = np.full(8, 0.1)
    before = a.mvm(x)
    g_cell = a.read(Cells.at([3], [2]), voltage_V=quiet.read_voltage_V)[0]
    a.mask(Cells.at([3], [2]), False)
    after = a.mvm(x)
    assert before[2] - after[2] == pytest.approx(0.1 * g_cell, rel=1e-3)
    assert np.array_equal(np.delete(before, 2), np.delete(after, 2))
    g_off = a.read(Cells.at([3], [2]))[0]
    assert g_off < 1e-3 * g_cell  # the off sparsity FeFET blocks the weight


def test_masking_with_read_noise_statistically(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 8, 4, seed=2)
    x = np.full((1, 8), 0.1)
    g_cell = np.mean([a.read(Cells.at([5], [1]))[0] for _ in range(400)])
    before = np.mean([a.mvm(x)[0, 1] for _ in range(400)])
    a.mask(Cells.at([5], [1]), False)
    after = np.mean([a.mvm(x)[0, 1] for _ in range(400)])
    # each mean has ~0.0425 * |I| / sqrt(400) noise
    assert before - after == pytest.approx(0.1 * g_cell, abs=0.0425 * before * 0.15)


def test_pulses_act_on_the_weight_fefet_only(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 16, 16, seed=3)
    mask = np.random.default_rng(0).random((16, 16)) < 0.5
    a.mask(Cells.from_mask(mask), False)
    s_before, x_before = a.state["s_on"].copy(), a.state["x"].copy()
    a.pulse(Cells.all(), V_PGM, WIDTH, count=5)
    assert np.array_equal(a.state["s_on"], s_before)
    assert np.all(a.state["x"] > x_before)            # masked-off cells program too [A]
    x_mid = a.state["x"].copy()
    a.mask(Cells.all(), True)
    a.mask(Cells.rect(0, 8, 0, 16), False)
    assert np.array_equal(a.state["x"], x_mid)
    assert a.state["s_on"][8:].all() and not a.state["s_on"][:8].any()


def identical_cells(model: Fefet2tModel, n: int, x0: float, seed: int = 0) -> SimulatedArray:
    """n x n cells with the nominal device parameters (no device-to-device spread)."""
    a = SimulatedArray(model, n, n, seed=seed)
    a.state["x"][:] = x0
    a.state["a_pot"][:] = model.update.nl_pot
    a.state["a_dep"][:] = model.update.nl_dep
    return a


@pytest.mark.parametrize("amp", [V_PGM, -V_PGM])
def test_write_noise_is_ten_percent_of_the_step(model: Fefet2tModel, amp: float) -> None:
    a = identical_cells(model, 64, 0.5)
    a.pulse(Cells.all(), amp, WIDTH)
    dx = a.state["x"] - 0.5
    rel = dx.std() / abs(dx.mean())
    assert rel == pytest.approx(model.update.write_noise_rel, rel=0.2)
    assert rel == pytest.approx(0.10, rel=0.2)


def test_read_noise_is_4p25_percent(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 8, 8, seed=4)
    reads = np.stack([a.read(Cells.all()) for _ in range(400)])
    rel = reads.std(axis=0) / reads.mean(axis=0)
    assert np.mean(rel) == pytest.approx(0.0425, rel=0.2)
    g = np.stack([a.conductance_matrix() for _ in range(400)])
    assert np.mean(g.std(axis=0) / g.mean(axis=0)) == pytest.approx(0.0425, rel=0.2)


def test_potentiation_saturates_non_linearly(model: Fefet2tModel) -> None:
    a = identical_cells(model, 32, 0.0)
    g = [a.read(Cells.all()).mean()]
    for _ in range(64):
        a.pulse(Cells.all(), V_PGM, WIDTH)
        g.append(a.read(Cells.all()).mean())
    steps = np.diff(g)
    n = int(model.update.pulses_full_range)
    assert steps[:4].mean() > 1.7 * steps[n - 8:n - 4].mean() > 0  # steps shrink as x rises
    assert g[48] == pytest.approx(g[64], rel=0.02)                  # saturated at the top
    assert g[64] == pytest.approx(model.g_max_S, rel=0.05)
    assert g[0] == pytest.approx(model.g_min_S, rel=0.05)
    # about 16-32 pulses across the window: the nominal device is ~90 % up after N pulses
    assert (g[n] - g[0]) / (g[64] - g[0]) > 0.85


def test_depression_mirrors_potentiation(model: Fefet2tModel) -> None:
    a = identical_cells(model, 32, 1.0)
    a.pulse(Cells.all(), -V_PGM, WIDTH, count=64)
    assert a.state["x"].mean() < 0.02


def test_pulse_strength_follows_amplitude_and_width(model: Fefet2tModel) -> None:
    def step(amp: float, width: float) -> float:
        a = identical_cells(model, 16, 0.3)
        a.pulse(Cells.all(), amp, width)
        return float(a.state["x"].mean() - 0.3)

    below = identical_cells(model, 4, 0.3)
    below.pulse(Cells.all(), 0.9 * model.update.v_coercive_V, 1e-2)
    assert np.all(below.state["x"] == 0.3)  # no switching below the coercive voltage
    assert 0 < step(2.5, WIDTH) < step(V_PGM, WIDTH) < step(3.5, WIDTH)
    assert step(V_PGM, 10e-6) < step(V_PGM, WIDTH) < step(V_PGM, 1e-3)


def test_per_cell_counts_and_device_to_device_nonlinearity(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 16, 16, seed=5)
    a.state["x"][:] = 0.0
    counts = np.tile(np.arange(16), (16, 1))
    a.pulse(Cells.all(), V_PGM, WIDTH, count=counts.ravel())
    x = a.state["x"]
    assert np.all(x[:, 0] == 0.0)
    assert np.all(np.diff(x.mean(axis=0)) > 0)
    # spread across devices after 8 pulses exceeds what the write noise alone gives
    b = identical_cells(model, 16, 0.0, seed=5)
    b.pulse(Cells.all(), V_PGM, WIDTH, count=8)
    assert x[:, 8].std() > 1.5 * b.state["x"].std()


def test_retention_drifts_slowly_over_log_time(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 32, 32, seed=6)
    a.pulse(Cells.all(), V_PGM, WIDTH, count=64)
    x_rest = model.retention.x_rest
    x0 = model.x_now(a.state, slice(None), a.now())
    d0 = np.abs(x0 - x_rest).mean()
    a.wait(1000.0)
    d_1000 = np.abs(model.x_now(a.state, slice(None), a.now()) - x_rest).mean()
    a.wait(10 * 365.25 * 86400 - 1000.0)
    d_10y = np.abs(model.x_now(a.state, slice(None), a.now()) - x_rest).mean()
    assert 0.02 < 1 - d_1000 / d0 < 0.08       # small drift by 1000 s
    assert 0.05 < 1 - d_10y / d0 < 0.2         # still well programmed after 10 years
    # a new pulse starts from the relaxed state and resets the retention clock
    a.pulse(Cells.all(), V_PGM, WIDTH)
    assert np.all(a.state["t_prog_s"] == a.now())


def test_sweep_is_a_read_through_both_fets(model: Fefet2tModel) -> None:
    a = SimulatedArray(model, 4, 4, seed=7)
    a.mask(Cells.rect(0, 1, 0, 4), False)
    v = np.linspace(0.0, 2.0, 21)
    x_before = a.state["x"].copy()
    res = a.sweep(Cells.all(), v, gate_V=model.gate_voltage_V, compliance_A=1e-3)
    i = res.current_A
    assert np.array_equal(a.state["x"], x_before)
    on = i[4:]
    # linear at small drain voltage, saturating at large: I/V at 2 V ~ tanh(2)/2 of I/V at 0.1 V
    g_lo = on[:, 1] / v[1]
    g_hi = on[:, -1] / v[-1]
    assert np.all(g_hi < 0.6 * g_lo) and np.all(g_hi > 0.35 * g_lo)
    assert np.all(np.abs(i[:4, -1]) < 1e-3 * np.abs(on[:, -1]).min())
    # the gate turns the weight FeFET on: more current at a higher read gate
    hi = a.sweep(Cells.rect(1, 4, 0, 4), [0.1], gate_V=2.0, compliance_A=1e-3).current_A
    lo = a.sweep(Cells.rect(1, 4, 0, 4), [0.1], gate_V=0.0, compliance_A=1e-3).current_A
    assert np.all(hi > 1.5 * on[:, [1]] * 0.1 / v[1]) and np.all(lo < 0.2 * hi)


def test_same_seed_same_result(model: Fefet2tModel) -> None:
    def run(seed: int) -> np.ndarray:
        a = SimulatedArray(model, 8, 8, seed=seed)
        a.pulse(Cells.all(), np.linspace(-3, 3, 64), WIDTH, count=np.arange(64) % 7)
        a.mask(Cells.rect(0, 3, 0, 8), False)
        a.wait(100.0)
        return np.concatenate([a.read(Cells.all()), a.mvm(np.full(8, 0.1))])

    assert np.array_equal(run(21), run(21))
    assert not np.array_equal(run(21), run(22))
