"""HardwareArray sequencing and bench routing physics, with instruments wired straight to
the bench (tests/bench/direct.py) over a noiseless test model: exact agreement is expected."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl.array import Cells
from labctl.drivers.hardware_array import HardwareArray
from labctl.drivers.station import parse_station
from labctl.errors import LimitError
from labctl.sim_backend.emulator.bench import EmulatedBench
from labctl.sim_backend.simulated_array import SimulatedArray

from .direct import direct_instruments

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "emulated-bench.toml"


def station(clock: str = "frozen", **chip: Any) -> Any:
    doc = tomllib.loads(EXAMPLE.read_text())
    doc["chip"].update(chip)
    doc["emulation"]["clock"] = clock
    return parse_station(doc, EXAMPLE)


def rig(test_model: Any, clock: str = "frozen",
        **chip: Any) -> tuple[HardwareArray, EmulatedBench, SimulatedArray]:
    """The station file says ``clock``; the die behind it stays frozen (exact agreement)."""
    st = station(clock, set_polarity=1, **chip)
    bench = EmulatedBench(st, SimulatedArray(test_model, 8, 4, seed=3), clock="frozen")
    twin = SimulatedArray(test_model, 8, 4, seed=3)
    return HardwareArray(st, direct_instruments(bench)), bench, twin  # type: ignore[arg-type]


def test_forming_sweep_read_and_pulse_match_the_simulator(test_model: Any) -> None:
    hw, bench, twin = rig(test_model)
    with hw:
        ramp = np.linspace(0, 4, 41)
        cells = Cells.rect(2, 3, 0, 4)
        a = hw.sweep(cells, ramp, gate_V=1.2, compliance_A=1e-3)
        b = twin.sweep(cells, ramp, gate_V=1.2, compliance_A=1e-3)
        np.testing.assert_allclose(a.current_A, b.current_A)
        amp = np.array([0.5, -0.5, 1.0, 0.0])
        hw.pulse(cells, amp, 2.5e-6, count=[3, 2, 1, 5])
        twin.pulse(cells, amp, 2.5e-6, count=[3, 2, 1, 5])
        np.testing.assert_allclose(hw.read(Cells.all()), twin.read(Cells.all()))
        x = np.random.default_rng(0).uniform(-0.2, 0.2, (3, 8))
        np.testing.assert_allclose(hw.mvm(x), twin.mvm(x), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(hw.mvm(x[:, :4], transpose=True),
                                   twin.mvm(x[:, :4], transpose=True), rtol=1e-12, atol=1e-15)
        assert bench.closed == set()  # routes open after every operation
    snap = bench.snapshot()
    assert snap["closed"] == [] and not any(s["on"] for s in snap["sources"].values())
    assert hw.round_trips > 0


def test_limits_are_checked_before_anything_leaves(test_model: Any) -> None:
    hw, bench, _ = rig(test_model)
    with hw:
        before = hw.round_trips
        with pytest.raises(LimitError):
            hw.sweep(Cells.all(), [0, 4.5], gate_V=1.2, compliance_A=1e-3)
        with pytest.raises(LimitError):
            hw.pulse(Cells.all(), 1.0, 1e-9)
        with pytest.raises(LimitError):
            hw.read(Cells.all(), gate_V=2.5)
        with pytest.raises(LimitError):
            hw.sweep(Cells.all(), [0, 1], gate_V=1.2, compliance_A=5e-3)
        assert hw.round_trips == before
    assert bench.exposure.max_line_V == 0.0


def test_wrong_set_polarity_in_the_station_shows_as_wrong_physics(test_model: Any) -> None:
    st = station(set_polarity=-1)  # the die sets with positive voltage: the station is wrong
    bench = EmulatedBench(st, SimulatedArray(test_model, 8, 4, seed=3), clock="frozen")
    g0 = bench.array.state["g"].copy()
    with HardwareArray(st, direct_instruments(bench)) as hw:  # type: ignore[arg-type]
        hw.pulse(Cells.at([0], [0]), 1.0, 2.5e-6, count=4)  # a "set"...
    assert bench.array.state["g"][0, 0] < g0[0, 0] or g0[0, 0] <= test_model.g_min_S
    assert np.array_equal(np.delete(bench.array.state["g"].ravel(), 0),
                          np.delete(g0.ravel(), 0))  # ...that reached only cell (0, 0)


def test_unrouted_smu_reads_nothing_and_a_floating_gate_blocks(test_model: Any) -> None:
    hw, bench, _ = rig(test_model)
    with hw:
        hw.sweep(Cells.all(), np.linspace(0, 4, 41), gate_V=1.2, compliance_A=1e-3)
        bench.set_source("smu", on=True, level_V=0.2, compliance_A=1e-3)
        assert abs(bench.measure_current("smu")) < 1e-10  # routed to nothing
        w = bench.station.wiring
        bench.matrix_set([(w.inputs["smu"], w.bit(1)), (w.inputs["ground"], w.source(5))])
        assert abs(bench.measure_current("smu")) < 1e-10  # gate floating
        bench.set_source("gate", on=True, level_V=1.2, compliance_A=1e-3)
        bench.matrix_close([(w.inputs["gate"], w.word(5))])
        assert bench.measure_current("smu") == pytest.approx(0.2 * bench.array.state["g"][5, 1])
        bench.matrix_close([(w.inputs["ground"], w.bit(1))])  # short: compliance
        assert bench.measure_current("smu") == pytest.approx(1e-3)


def test_mask_resets_and_sets_through_the_generator(test_model: Any) -> None:
    hw, bench, twin = rig(test_model)
    with hw:
        hw.sweep(Cells.all(), np.linspace(0, 4, 41), gate_V=1.2, compliance_A=1e-3)
        twin.sweep(Cells.all(), np.linspace(0, 4, 41), gate_V=1.2, compliance_A=1e-3)
        cells = Cells.at([0, 1], [0, 1])
        hw.mask(cells, [False, True])
        twin.pulse(cells, [-1.5, 1.5], 2.5e-6, count=20)
        np.testing.assert_allclose(hw.read(Cells.all()), twin.read(Cells.all()))
        assert bench.exposure.pulses == 40


def test_the_station_pace_counts_cell_operations_as_the_simulator_does(test_model: Any) -> None:
    """A station records how long each kind of operation took per cell; a simulator given
    a pace counts the same operations, so a replay's clock moves as the station's did."""
    hw, _, _ = rig(test_model, clock="wall")
    pace = {"pulse": 1.0, "read": 10.0, "sweep": 100.0, "mvm": 1000.0}
    twin = SimulatedArray(test_model, 8, 4, seed=3, pace_s=pace)
    x = np.random.default_rng(0).uniform(-0.2, 0.2, (3, 8))
    x[1, 2] = 0.0   # an input of 0 V is not measured on a station
    with hw:
        for a in (hw, twin):
            cells = Cells.rect(2, 3, 0, 4)
            a.sweep(cells, np.linspace(0, 4, 41), gate_V=1.2, compliance_A=1e-3)
            a.pulse(cells, np.array([0.5, -0.5, 1.0, 0.0]), 2.5e-6, count=[3, 2, 1, 5])
            a.read(Cells.all())
            a.mvm(x)
            a.mvm(x[:, :4], transpose=True)
        with pytest.raises(LimitError):   # refused before anything is sent: not counted
            hw.pulse(Cells.all(), 9.0, 2.5e-6)
    counts = {k: n for k, (n, _) in hw.operation_times.totals.items()}
    assert counts == {"sweep": 4 * 41, "pulse": 3, "read": 32, "mvm": 23 * 4 + 11 * 8}
    assert all(s > 0 for _, s in hw.operation_times.totals.values())
    assert twin.now() == sum(pace[k] * n for k, n in counts.items())
    assert twin.describe()["pace_s"] == pace


def test_a_bench_whose_die_ages_only_with_waits_records_no_pace(test_model: Any) -> None:
    """An emulated die on a frozen clock does not age while the bench works: replaying its
    runs at the bench's pace would age the simulated one where the emulated one did not."""
    hw, _, _ = rig(test_model)   # clock = "frozen"
    with hw:
        hw.read(Cells.all())
    assert hw.operation_times.totals == {}
