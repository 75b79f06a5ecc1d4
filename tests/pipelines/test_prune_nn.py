"""The numpy pieces of the pruning pipeline: gradients, edge-popup, chip layout and matmul."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from labctl.array import ArrayInfo, Cells, Limits
from labctl.errors import ConfigError
from labctl.pipelines import edge_popup as ep
from labctl.pipelines.chip_layers import ChipMatMul, plan_layout
from labctl.pipelines.energy import EnergyModel, load_energy_model
from labctl.pipelines.nn.activations import softmax_cross_entropy
from labctl.pipelines.nn.models import build_network
from labctl.pipelines.nn.network import backward, forward, software_matmul
from labctl.pipelines.nn.quant import quantize


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
