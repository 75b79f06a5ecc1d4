"""SimulatedArray over the cmo-hfox model: limits, counts, clock, snapshots, mvm."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.array import Array, CellCounts, Cells, OuterProductCapable, Snapshottable
from labctl.errors import ConfigError, LimitError
from labctl.sim_backend.presets import load_model
from labctl.sim_backend.simulated_array import SimulatedArray

ALL = Cells.all()
W = 2.5e-6


def formed(rows: int = 8, cols: int = 4, seed: int = 0) -> SimulatedArray:
    a = SimulatedArray(load_model("cmo-hfox-1t1r"), rows, cols, seed=seed)
    a.sweep(ALL, np.linspace(0, 4, 401), gate_V=1.2, compliance_A=1e-3)
    a.sweep(ALL, -np.linspace(0, 1.5, 76), gate_V=1.2, compliance_A=1e-3)
    return a


def test_is_an_array_with_optional_capabilities() -> None:
    a = formed()
    assert isinstance(a, Array) and isinstance(a, Snapshottable)
    assert isinstance(a, OuterProductCapable)
    assert a.info.shape == (8, 4) and a.info.selector_resistance_ohm > 0


def test_limits_are_enforced_before_anything_changes() -> None:
    a = formed()
    g0 = a.state["g_S"].copy()
    with pytest.raises(LimitError):
        a.pulse(ALL, 4.5, W)
    with pytest.raises(LimitError):
        a.pulse(ALL, np.r_[np.full(31, 1.35), -4.1], W)
    with pytest.raises(LimitError):
        a.sweep(ALL, np.linspace(0, 4.2, 43), gate_V=1.2, compliance_A=1e-3)
    with pytest.raises(LimitError):
        a.sweep(ALL, [0.0, 1.0], gate_V=1.2, compliance_A=5e-3)
    with pytest.raises(LimitError):
        a.read(ALL, gate_V=5.0)
    with pytest.raises(LimitError):
        a.pulse(ALL, 1.35, 10.0)
    np.testing.assert_array_equal(a.state["g_S"], g0)


def test_size_limits() -> None:
    with pytest.raises(ConfigError):
        SimulatedArray(load_model("cmo-hfox-1t1r"), 0, 4)
    with pytest.raises(ConfigError):
        SimulatedArray(load_model("cmo-hfox-1t1r"), 1025, 4)


def test_per_cell_counts_and_amplitudes() -> None:
    a = formed(seed=1)
    a.pulse(ALL, -1.3, W, count=100)
    g0 = a.read(ALL)
    before = a.operations
    counts = np.tile([0, 1, 5, 20], 8)
    a.pulse(ALL, 1.35, W, count=counts)
    assert a.operations - before == counts.sum()
    rise = (a.read(ALL) - g0).reshape(8, 4).mean(0)
    assert rise[0] == pytest.approx(0, abs=1e-6)          # count 0: read noise only
    assert rise[1] < rise[2] < rise[3]
    amps = np.tile([0.0, 1.35, -1.3, 1.5], 8)
    a.pulse(ALL, -1.3, W, count=100)
    g1 = a.state["g_S"].copy().reshape(8, 4)
    a.pulse(ALL, amps, W, count=3)
    d = (a.state["g_S"].reshape(8, 4) - g1).mean(0)
    assert d[0] == 0 and d[1] > 0 and d[3] > d[1]


def test_virtual_clock() -> None:
    a = formed()
    assert a.now() == 0.0
    a.wait(3600.0)
    a.wait(1.5)
    assert a.now() == 3601.5
    with pytest.raises(ValueError):
        a.wait(-1)


def test_snapshot_restore_reproduces_the_future() -> None:
    a = formed(seed=2)
    snap = a.snapshot()
    a.pulse(ALL, 1.35, W, count=4)
    a.wait(100)
    first = a.read(ALL)
    a.restore(snap)
    a.pulse(ALL, 1.35, W, count=4)
    a.wait(100)
    np.testing.assert_array_equal(a.read(ALL), first)


def test_mvm_and_transpose_match_the_conductance_matrix() -> None:
    a = formed(16, 8, seed=3)
    g = a.state["g_S"]
    x = np.random.default_rng(0).uniform(-0.2, 0.2, (5, 16))
    np.testing.assert_allclose(a.mvm(x), x @ g, rtol=0.02, atol=5e-7)  # read noise ~0.1 uA
    y = np.random.default_rng(1).uniform(-0.2, 0.2, (5, 8))
    # read noise ~0.1 uA
    np.testing.assert_allclose(a.mvm(y, transpose=True), y @ g.T, rtol=0.02, atol=5e-7)
    assert a.conductance_matrix().shape == (16, 8)


def test_mvm_through_resistive_wires_reads_each_sample_with_its_own_noise() -> None:
    from labctl.sim_backend.ir_drop import mvm_with_ir_drop

    a = formed(16, 8, seed=3)
    a.wire_resistance_ohm = 2.0
    g, var = a._moments()
    x = np.tile(np.random.default_rng(0).uniform(0.05, 0.2, 16), (4000, 1))   # one vector
    y = a.mvm(x)
    ideal = mvm_with_ir_drop(g, x[:1], 2.0)[0]
    assert np.all(ideal < x[0] @ g)                 # the wires take some of the current
    np.testing.assert_allclose(y.mean(axis=0), ideal, rtol=2e-3)
    # each row of the batch is a read of its own: the spread is that of independent reads
    sd = np.sqrt(np.square(x[0]) @ var)
    np.testing.assert_allclose(y.std(axis=0), sd, rtol=0.1)


def test_pulse_outer_signs() -> None:
    a = formed(4, 4, seed=4)
    a.pulse(ALL, -1.3, W, count=50)
    g0 = a.state["g_S"].copy()
    counts = np.array([[3, -3, 0, 0]] * 4)
    a.pulse_outer(counts, W, set_V=1.35, reset_V=-1.3)
    d = a.state["g_S"] - g0
    assert np.all(d[:, 0] > 0) and np.all(d[:, 2:] == 0)


def test_pulse_outer_takes_a_sparse_matrix_as_its_dense_twin() -> None:
    from scipy import sparse

    counts = np.zeros((16, 8), int)
    counts[[1, 5, 9], [0, 3, 7]] = [4, -2, 1]
    dense, sp = formed(16, 8, seed=6), formed(16, 8, seed=6)
    dense.pulse_outer(counts, W, set_V=1.35, reset_V=1.3)
    # unsorted, with a duplicate entry (summed) and an explicit zero (ignored)
    sp.pulse_outer(sparse.coo_array(([-2, 1, 3, 1, 0], ([5, 9, 1, 1, 2], [3, 7, 0, 0, 2])),
                                    shape=(16, 8)), W, set_V=1.35, reset_V=1.3)
    np.testing.assert_array_equal(sp.state["g_S"], dense.state["g_S"])
    assert np.count_nonzero(sp.state["g_S"] != formed(16, 8, seed=6).state["g_S"]) == 3
    with pytest.raises(ValueError, match="shape"):
        sp.pulse_outer(sparse.coo_array((8, 8), dtype=int), W, set_V=1.35, reset_V=1.3)
    # the listed cells of a CellCounts (an explicit zero sends nothing), and its dense twin
    listed = formed(16, 8, seed=6)
    cells = CellCounts((16, 8), np.array([8, 20, 43, 79]), np.array([4, 0, -2, 1]))
    np.testing.assert_array_equal(cells.toarray(), counts)
    listed.pulse_outer(cells, W, set_V=1.35, reset_V=1.3)
    np.testing.assert_array_equal(listed.state["g_S"], dense.state["g_S"])
    with pytest.raises(ValueError, match="shape"):
        listed.pulse_outer(CellCounts((8, 8), np.array([0]), np.array([1])), W, set_V=1.35,
                           reset_V=1.3)


def test_pulse_outer_is_the_per_cell_pulse_with_those_amplitudes() -> None:
    """The model's signed-count path (pulse_counts) and pulse() with per-cell amplitudes are
    the same physics and the same random stream: bit-identical conductances."""
    counts = np.zeros((16, 8), int)
    counts[[1, 5, 9, 12], [0, 3, 7, 7]] = [4, -2, 1, -7]
    outer, cellwise = formed(16, 8, seed=7), formed(16, 8, seed=7)
    outer.pulse_outer(counts, W, set_V=1.35, reset_V=1.3)
    r, c = np.nonzero(counts)
    n = counts[r, c]
    cellwise.pulse(Cells.at(r, c), np.where(n > 0, 1.35, -1.3), W, count=np.abs(n))
    np.testing.assert_array_equal(outer.state["g_S"], cellwise.state["g_S"])
    assert np.count_nonzero(outer.state["g_S"] != formed(16, 8, seed=7).state["g_S"]) == 4


def test_selections_address_the_right_cells() -> None:
    a = formed(seed=5)
    g0 = a.state["g_S"].copy()
    a.pulse(Cells.at([1, 6], [2, 0]), -1.3, W, count=30)
    changed = a.state["g_S"] != g0
    assert changed.sum() == 2 and changed[1, 2] and changed[6, 0]
