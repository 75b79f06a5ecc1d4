"""The numpy pieces of the pruning pipeline: gradients, edge-popup, chip layout and matmul."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from labctl.array import ArrayInfo, Cells, Limits
from labctl.errors import ConfigError
from labctl.pipelines import edge_popup as ep
from labctl.pipelines import prune_chip as pc
from labctl.pipelines.chip_layers import ChipMatMul, plan_layout
from labctl.pipelines.energy import EnergyModel, inference_J, load_energy_model, programming_J
from labctl.pipelines.nn.activations import softmax_cross_entropy
from labctl.pipelines.nn.models import build_network
from labctl.pipelines.nn.network import backward, forward, software_matmul
from labctl.pipelines.nn.quant import RangeTracker, quantize, quantize_backward


@pytest.mark.parametrize("name,shape", [("cnn-fmnist", (28, 28)), ("mlp", (8, 8)),
                                        ("crnn-fsdd", (32, 13))])
def test_backward_matches_finite_differences(name: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    net = build_network(name, shape, 10, bits=40)  # fine grid: quantisers ~ identity
    w = {k: v.astype(np.float64) for k, v in net.init_weights(rng).items()}
    x, y = rng.random((4, *shape)), rng.integers(0, 10, 4)
    state = net.init_state()
    state["clip"] = {k: 100.0 for k in state["clip"]}

    def loss(weights):  # type: ignore[no-untyped-def]
        tape: list = []
        out = forward(net, x, software_matmul(weights), copy.deepcopy(state), train=True,
                      rng=np.random.default_rng(1), tape=tape)
        value, grad, _ = softmax_cross_entropy(out, y)
        return value, tape, grad

    _, tape, grad = loss(w)
    grads = backward(net, tape, grad, w)
    for k in w:
        idx = tuple(int(rng.integers(0, n)) for n in w[k].shape)
        plus, minus = copy.deepcopy(w), copy.deepcopy(w)
        plus[k][idx] += 1e-5
        minus[k][idx] -= 1e-5
        numeric = (loss(plus)[0] - loss(minus)[0]) / 2e-5
        assert grads[k][idx] == pytest.approx(numeric, rel=1e-3, abs=1e-7)


def test_cnn_has_the_seed_weight_count() -> None:
    assert build_network("cnn-fmnist", (28, 28), 10, 4).n_weights() == 62272
    with pytest.raises(ConfigError):
        build_network("cnn-fmnist", (8, 8), 10, 4)


def test_topk_and_hysteresis() -> None:
    rng = np.random.default_rng(0)
    s = rng.standard_normal((40, 10)).astype(np.float32)
    mask = ep.topk_mask(s, 0.5)
    assert mask.sum() == 200 and np.abs(s[mask]).min() >= np.abs(s[~mask]).max()
    ref = s.copy()
    moved = s.copy()
    moved[~mask] *= 10.0  # pruned scores jump far: they may flip in
    moved[mask] *= 1.005  # kept ones move less than the 1 % threshold
    m = mask.copy()
    resets, sets = ep.hysteresis_update(m, moved, ref, 0.5, 0.01)
    assert sets > 0 and resets == 0 and m.sum() > 200  # kept bits could not flip out
    assert np.array_equal(ref[m & ~mask], moved[m & ~mask])


def test_score_gradient_follows_abs_score_ranking() -> None:
    g, w, r = np.array([1.0]), np.array([2.0]), np.array([0.5])
    assert ep.score_gradient(g, w, r, np.array([0.3])) == 1.5
    assert ep.score_gradient(g, w, r, np.array([-0.3])) == -1.5


def test_quantize_grid() -> None:
    q = quantize(np.array([-0.2, 0.0, 0.26, 0.74, 1.5], np.float32), 2, 1.0)
    assert np.allclose(q, [0, 0, 1 / 3, 2 / 3, 1])


def test_layout_packs_differential_tiles() -> None:
    layout = plan_layout({"a": (9, 64), "b": (576, 16), "c": (400, 128), "d": (128, 10)})
    assert (layout.rows, layout.cols) == (576, 438)
    cells = [set(zip(*t.cells().indices((layout.rows, layout.cols)), strict=True))
             for t in layout.tiles.values()]
    assert sum(len(c) for c in cells) == len(set().union(*cells)) == 2 * 62272


class _IdealArray:
    """Noise-free array for checking the analog matmul arithmetic."""

    def __init__(self, g: np.ndarray) -> None:
        self.g = g
        self.info = ArrayInfo(rows=g.shape[0], cols=g.shape[1], technology="1t1r-reram",
                              limits=Limits(1.0, 3.0, 1e-3), g_min_S=1e-7, g_max_S=1e-4)

    def mvm(self, v: np.ndarray, *, transpose: bool = False) -> np.ndarray:
        return v @ self.g


def test_chip_matmul_equals_weights_times_inputs() -> None:
    rng = np.random.default_rng(1)
    layout = plan_layout({"fc": (6, 3)}, spare_cols=0)
    g = rng.uniform(1e-6, 50e-6, (layout.rows, layout.cols))
    tile = layout.tiles["fc"]
    w = (g[:, 0::2] - g[:, 1::2]) / 1e-5
    counts: dict[str, float] = {}
    mm = ChipMatMul(_IdealArray(g), layout, {"fc": 1e-5}, {"fc": g.sum(axis=1)}, counts)
    x = rng.random((5, 6)).astype(np.float32)
    assert np.allclose(mm("fc", x), x @ w, rtol=1e-5)
    assert counts["dac"] == 30 and counts["adc"] == 30 and counts["read_V2S"] > 0
    assert tile.pair_cells(np.eye(6, 3, dtype=bool)).count(g.shape) == 6
    sel = Cells.at([0], [0])
    assert sel.count(g.shape) == 1


def test_energy_model_file(tmp_path: Path) -> None:
    m = load_energy_model(None)
    assert m.adc_conversion_J > 0 and m.mac_J == pytest.approx(4.6e-12)
    bad = tmp_path / "e.toml"
    bad.write_text("[analog]\nintegration_time_s = 1e-8\n")
    with pytest.raises(ConfigError, match="missing key"):
        load_energy_model(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_energy_model(str(tmp_path / "none.toml"))
    values = m.as_dict() | {"set_J": -1.0}
    with pytest.raises(ConfigError, match="set_J"):
        EnergyModel.from_dict(values)


def _distinct_energy_model() -> EnergyModel:
    names = list(EnergyModel.__dataclass_fields__)
    return EnergyModel(**{n: float(3 ** i) for i, n in enumerate(names)})


@pytest.mark.parametrize("key,field", [("read_V2S", "integration_time_s"),
                                       ("dac", "dac_conversion_J"), ("adc", "adc_conversion_J"),
                                       ("digital_ops", "op_J"), ("digital_macs", "mac_J")])
def test_each_inference_count_is_charged_at_its_own_energy(key: str, field: str) -> None:
    """One event of each inference kind costs exactly its own model energy, not another's."""
    m = _distinct_energy_model()
    assert inference_J({key: 1.0}, m) == getattr(m, field)
    assert inference_J({key: 2.0}, m) == 2 * getattr(m, field)


@pytest.mark.parametrize("key,field", [("sets", "set_J"), ("resets", "reset_J"),
                                       ("verify_pulses", "verify_pulse_J"),
                                       ("verify_reads", "verify_read_J"),
                                       ("reset_sweeps", "reset_sweep_J")])
def test_each_programming_count_is_charged_at_its_own_energy(key: str, field: str) -> None:
    """One event of each programming kind (reset sweeps included) costs its own energy."""
    m = _distinct_energy_model()
    assert programming_J({key: 1.0}, m) == getattr(m, field)
    assert programming_J({key: 2.0}, m) == 2 * getattr(m, field)


def test_signed_quantiser_has_two_to_the_bits_minus_one_levels() -> None:
    """A signed b-bit DAC has 2^(b-1)-1 steps per side: 2^b-1 levels over [-clip, clip]."""
    x = np.linspace(-2.0, 2.0, 4001)
    q = quantize(x, 3, 1.0, signed=True)
    assert np.unique(q).size == 7
    assert np.allclose(np.unique(q), np.arange(-3, 4) / 3)


def test_straight_through_gradient_is_zero_outside_the_clip_range() -> None:
    """The STE passes gradient only inside [0, clip] (unsigned) or [-clip, clip] (signed)."""
    x = np.array([-0.5, -0.01, 0.0, 0.5, 1.0, 1.5])
    g = np.ones_like(x)
    assert np.array_equal(quantize_backward(x, g, 1.0), [0, 0, 1, 1, 1, 0])
    assert np.array_equal(quantize_backward(x, g, 1.0, signed=True), [1, 1, 1, 1, 1, 0])


def test_range_tracker_moves_slowly_toward_the_batch_percentile() -> None:
    """The clip is an EMA: momentum weights the old clip, 1-momentum the new percentile."""
    tr = RangeTracker(momentum=0.9, percentile=99.9)
    x = np.full(100, 5.0)
    rng = np.random.default_rng(0)
    assert tr.update(None, x, rng) == pytest.approx(5.0)
    assert tr.update(1.0, x, rng) == pytest.approx(0.9 * 1.0 + 0.1 * 5.0)


class _ResettingArray(_IdealArray):
    """Ideal array whose mask(cells, False) resets cells to a residual and counts them."""

    def __init__(self, g: np.ndarray, g_reset_S: float = 1e-6) -> None:
        super().__init__(g.copy())
        self.g_reset_S = g_reset_S
        self.resets = 0

    def read(self, cells: Cells) -> np.ndarray:
        return self.g[cells.indices(self.g.shape)]

    def mask(self, cells: Cells, keep: bool) -> None:
        r, c = cells.indices(self.g.shape)
        self.resets += r.size
        self.g[r, c] = self.g_reset_S


def test_applying_a_mask_resets_both_cells_of_each_pruned_edge_and_counts_them():
    """A pruned edge costs two resets (G+ and G-), and the record says so."""
    layout = plan_layout({"fc": (4, 3)}, spare_cols=0)
    rng = np.random.default_rng(0)
    array = _ResettingArray(rng.uniform(20e-6, 90e-6, (layout.rows, layout.cols)))
    mask = np.ones((4, 3), dtype=bool)
    mask[[0, 1, 3], [2, 0, 1]] = False
    state = {"mask": {"fc": mask}, "scale": {"fc": 1e-5}}
    write = pc.apply_mask(array, layout, state)
    assert array.resets == 6
    assert write["prune/ops/pruned_applied/resets"][0].tolist() == [6]
    assert write["prune/result/n_kept"][0].tolist() == [9]


def test_verify_reads_are_one_per_pulse_plus_one_per_cell():
    """Program-verify reads every cell once before its pulses and once after each pulse."""
    layout = plan_layout({"fc": (2, 2)}, spare_cols=0)
    array = _ResettingArray(np.full((layout.rows, layout.cols), 30e-6))
    state = {"prog_scale": {"fc": 1e-5}, "sw_w": {"fc": np.array([[1.0, -0.5], [0.2, 0.0]])},
             "verify": {"pulses": np.array([3, 0, 5, 1]), "converged": np.ones(4, bool)}}
    write = pc.programmed_readback(array, layout, state)
    assert write["prune/ops/programmed/verify_pulses"][0].tolist() == [9]
    assert write["prune/ops/programmed/verify_reads"][0].tolist() == [13]
    assert write["prune/ops/programmed/reset_sweeps"][0].tolist() == [8]


def test_program_targets_stay_below_the_tenth_percentile_of_formed_cells():
    """G_hi is the 10th percentile of the formed conductances: most cells can reach it."""
    layout = plan_layout({"fc": (6, 5)}, spare_cols=2)
    rng = np.random.default_rng(1)
    g = rng.uniform(20e-6, 100e-6, (layout.rows, layout.cols))
    g[:, layout.spare_col0:] = rng.uniform(0.5e-6, 1.5e-6, (layout.rows, 2))
    array = _ResettingArray(g)
    net = SimpleNamespace(weights={"fc": SimpleNamespace(init_std=0.1)})
    state: dict = {}
    pc.read_random_weights(array, layout, net, state, rng)
    tile = layout.tiles["fc"]
    formed = g[:tile.fan_in, tile.col0:tile.col0 + 2 * tile.fan_out]
    assert state["g_hi_S"] == pytest.approx(np.percentile(formed, 10))
    state["sw_w"] = {"fc": rng.normal(size=(6, 5))}
    _, targets, _ = pc.program_targets(array, layout, state)
    assert targets.max() == pytest.approx(state["g_hi_S"])
    assert np.mean(formed >= targets.max()) >= 0.9
