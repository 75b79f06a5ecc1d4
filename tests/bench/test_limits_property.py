"""Property: whatever the station limits and protocol settings, no voltage beyond the station
limit ever reaches the emulated chip (the bench records the largest |V| on every line).
Requests beyond a limit are refused with LimitError before anything is sent."""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.array import Cells
from labctl.drivers.hardware_array import HardwareArray
from labctl.drivers.station import parse_station
from labctl.errors import LimitError
from labctl.protocols.forming import Forming, FormingConfig
from labctl.protocols.program_verify import VerifyConfig, verify_steps
from labctl.sim_backend.emulator.serve import start_bench

from .conftest import dump_toml
from .test_faults import small_doc


def attempt_all(attempts: list[Callable[[], object]]) -> None:
    """Each request in turn; one refused by a limit is skipped (the point is what got out)."""
    for attempt in attempts:
        try:
            attempt()
        except LimitError:
            pass


def drain(protocol: Forming, array: HardwareArray) -> None:
    for _ in protocol.steps(array, protocol.initial_state(array)):
        pass


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(v_max=st.floats(0.5, 4.0), g_max=st.floats(0.6, 2.0), i_max=st.floats(1e-4, 1e-3),
       v_stop=st.floats(0.2, 5.0), gate=st.floats(0.3, 2.5), amp=st.floats(-5.0, 5.0),
       width=st.floats(1e-8, 1e-4), tol=st.floats(0.01, 0.2),
       load=st.sampled_from(["INF", "50"]))
def test_no_voltage_beyond_the_station_limit_reaches_the_chip(
        v_max: float, g_max: float, i_max: float, v_stop: float, gate: float, amp: float,
        width: float, tol: float, load: str) -> None:
    """... whichever load setting the generators are kept at (50 ohm doubles what they
    deliver into the chip)."""
    doc = small_doc(rows=2, cols=2)
    for role in ("pulse", "pulse_reset"):
        doc["instruments"][role]["options"]["load"] = load
    doc["limits"].update(max_voltage_V=v_max, max_gate_voltage_V=g_max, max_current_A=i_max)
    doc["chip"].update(gate_voltage_V=min(1.2, g_max), read_voltage_V=min(0.2, v_max),
                       mask_set_V=min(1.5, v_max), mask_reset_V=min(1.5, v_max))
    text = dump_toml(doc)
    station = parse_station(tomllib.loads(text), Path("prop.toml"), text=text)
    with tempfile.TemporaryDirectory() as tmp, start_bench(station, ephemeral=True) as bench:
        path = Path(tmp) / "station.toml"
        path.write_text(bench.station_text())
        with HardwareArray.from_station(path, record=False) as hw:
            attempts = [
                lambda: drain(Forming(FormingConfig(v_stop_V=v_stop, v_step_V=v_stop / 20,
                                                    gate_V=gate, compliance_A=i_max,
                                                    post_sweep_V=min(1.5, v_stop),
                                                    conditioning_cycles=1)), hw),
                lambda: hw.pulse(Cells.all(), amp, width, gate_V=gate, count=2),
                lambda: list(verify_steps(hw, Cells.all(), [20e-6, 60e-6, 40e-6, 80e-6],
                                          VerifyConfig(tolerance=tol, max_pulses=5,
                                                       gate_V=gate), {})),
            ]
            attempt_all(attempts)
        exposure = bench.bench.exposure
        assert exposure.max_line_V <= v_max + 1e-9, (exposure, v_max)
        assert exposure.max_gate_V <= g_max + 1e-9, (exposure, g_max)
        assert bench.all_safe()


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(v_max=st.floats(1.0, 4.0), g_max=st.floats(1.0, 4.0), amp=st.floats(-5.0, 5.0),
       mask_V=st.floats(0.5, 5.0), fraction=st.floats(0.05, 0.95),
       width=st.floats(1e-8, 1e-3), load=st.sampled_from(["INF", "50"]))
def test_no_voltage_beyond_the_station_limit_reaches_a_fefet_die(
        v_max: float, g_max: float, amp: float, mask_V: float, fraction: float, width: float,
        load: str) -> None:
    """The same on a two-FeFET die: gate pulses on word and sparsity lines, inhibit levels
    on the bit and source lines, read gates and MVMs all stay within the station limits."""
    doc = tomllib.loads((Path(__file__).resolve().parents[2] / "examples" /
                         "emulated-fefet-bench.toml").read_text())
    doc["instruments"]["pulse"]["options"]["load"] = load
    doc["limits"].update(max_voltage_V=v_max, max_gate_voltage_V=g_max)
    doc["chip"].update(gate_voltage_V=min(1.0, g_max), read_voltage_V=0.1,
                       mask_set_V=mask_V, mask_reset_V=mask_V, inhibit_fraction=fraction)
    doc["chip"]["mask_width_s"] = 1e-4
    text = dump_toml(doc)
    try:
        station = parse_station(tomllib.loads(text), Path("prop.toml"), text=text)
    except Exception as e:   # a mask level beyond the limits, or disturbing, refused at load
        disturbs = mask_V * max(fraction, 1 - fraction) > doc["chip"]["max_disturb_V"]
        assert "mask" in str(e) and (mask_V > v_max or disturbs), str(e)
        return
    with tempfile.TemporaryDirectory() as tmp, start_bench(station, ephemeral=True) as bench:
        path = Path(tmp) / "station.toml"
        path.write_text(bench.station_text())
        with HardwareArray.from_station(path, record=False) as hw:
            attempts = [
                lambda: hw.pulse(Cells.at([1, 2], [3, 3]), [amp, -amp], width, count=2),
                lambda: hw.mask(Cells.at([0, 5], [2, 7]), [False, True]),
                lambda: hw.mvm([0.1] * 8),
                lambda: hw.read(Cells.all(), gate_V=min(1.5 * g_max, 4.0)),
            ]
            attempt_all(attempts)
        exposure = bench.bench.exposure
        # gate lines carry the pulses (write gate: max_voltage_V) and the read gates
        assert exposure.max_gate_V <= v_max + 1e-9, (exposure, v_max)
        assert exposure.max_line_V <= v_max + 1e-9, (exposure, v_max)
        assert exposure.overstress == [] or v_max > 4.0
        assert bench.all_safe()
