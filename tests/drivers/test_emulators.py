"""Each driver against its emulator over real TCP (pyvisa-py ``TCPIP0::127.0.0.1::PORT::SOCKET``).

The command set and the physics round trip: what the driver sends is parsed by the
emulator's SCPI/TSP machinery, acts on a fake one-cell bench, and the driver reads the
physics back.  The full bench (SimulatedArray behind the emulated matrix) is tested with
the HardwareArray.
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.errors import InstrumentError, LimitError

SMUS = [("keithley-2450", {}, "1"), ("keithley-2636b", {"channel": "b"}, "b"),
        ("keysight-b2902a", {"channel": 2}, "2")]


@pytest.mark.parametrize("name, options, channel", SMUS, ids=[s[0] for s in SMUS])
def test_smu_reads_and_sweeps_the_cell(served, bench, name, options, channel) -> None:
    smu, server = served.start(name, options)
    bench.g_S = 20e-6
    smu.configure(compliance_A=50e-6, nplc=0.1)
    smu.output(True)
    assert bench.levels[-1] == (name, channel, 0.0)
    assert smu.measure_current(0.2) == pytest.approx(4e-6, rel=1e-5)
    volts = np.linspace(0.0, 4.0, 9)
    currents = smu.sweep(volts)
    np.testing.assert_allclose(currents, np.minimum(volts * 20e-6, 50e-6), rtol=1e-5)
    assert smu.round_trips == 4  # configure, output, read, sweep
    assert smu.errors() == []
    smu.close()
    assert server.emulator.is_safe()
    assert bench.levels[-1] == (name, channel, None)


@pytest.mark.parametrize("name, options, channel", SMUS, ids=[s[0] for s in SMUS])
def test_smu_output_off_measures_nothing(served, bench, name, options, channel) -> None:
    smu, server = served.start(name, options)
    smu.configure(compliance_A=1e-4)
    smu.output(True)
    smu.safe()
    smu.output_on = True  # pretend the driver lost track: the instrument still reads 0
    assert smu.measure_current(1.0) == 0.0


def test_long_sweeps_are_chunked_and_complete(served, bench) -> None:
    smu, _ = served.start("keithley-2636b")
    smu.configure(compliance_A=1.0)
    smu.output(True)
    volts = np.linspace(-1, 1, 2 * smu.MAX_SWEEP_POINTS + 5)
    np.testing.assert_allclose(smu.sweep(volts), volts * bench.g_S, rtol=1e-5, atol=1e-12)
    assert smu.round_trips == 2 + 3


def test_b2902a_pulsed_list(served, bench) -> None:
    smu, server = served.start("keysight-b2902a")
    smu.configure(compliance_A=1e-3)
    smu.output(True)
    np.testing.assert_allclose(smu.pulse_list([1.5, 0.2], 1e-4), [1.5 * 10e-6, 0.2 * 10e-6])
    assert "pulsed list 2 points" in server.emulator.events[-1][1]
    with pytest.raises(LimitError):
        smu.pulse_list([1.5], 2.5e-6)


def test_2636b_on_instrument_verify_loop_fires_the_generators(served, bench) -> None:
    """The 2636B script asserts digio lines the bench wires to two generators' Trig In:
    line 1 -> a 33500B set up for +1.35 V set pulses, line 2 -> an 81150A for -1.5 V resets."""
    setter, set_server = served.start("keysight-33500b", instrument_id="set")
    resetter, reset_server = served.start("keysight-81150a", instrument_id="reset")
    smu, _ = served.start("keithley-2636b", instrument_id="smu")
    bench.lines = {1: set_server.emulator, 2: reset_server.emulator}
    setter.configure_pulse(amplitude_V=1.35, width_s=2.5e-6, trigger="EXT")
    resetter.configure_pulse(amplitude_V=-1.5, width_s=2.5e-6, trigger="EXT")
    setter.output(True)
    resetter.output(True)
    smu.configure(compliance_A=1e-3)
    smu.output(True)
    smu.load_verify_script(set_line=1, reset_line=2)
    before = smu.round_trips
    # the fake cell moves x1.25 per pulse from 10 uS: 7 set pulses reach 47.7 uS
    out = smu.program_verify(read_voltage_V=0.2, g_low_S=40e-6, g_high_S=60e-6, max_pulses=60)
    assert smu.round_trips == before + 1
    assert (out.pulses, out.converged, out.set_pulses) == (7, True, 7)
    assert out.conductance_S == pytest.approx(10e-6 * 1.25**7, rel=1e-5)
    assert [p.amplitude_V for p in set_server.emulator.pulses] == [1.35] * 7
    # a band narrower than the step: set and reset alternate until max_pulses
    out = smu.program_verify(read_voltage_V=0.2, g_low_S=49e-6, g_high_S=51e-6, max_pulses=20)
    assert (out.pulses, out.converged, out.set_pulses) == (20, False, 10)
    assert [p.amplitude_V for p in reset_server.emulator.pulses] == [-1.5] * 10
    assert len(set_server.emulator.pulses) == 7 + 10
    assert smu.errors() == []


def test_generator_emits_what_was_configured(served, bench) -> None:
    gen, server = served.start("keysight-33500b", {"channel": 2})
    gen.configure_pulse(amplitude_V=1.35, width_s=2.5e-6, count=3)
    gen.output(True)
    gen.fire()
    gen.configure_pulse(amplitude_V=-1.5, width_s=1e-5)
    gen.fire()
    assert bench.pulses == [("keysight-33500b", 2, 1.35, 2.5e-6, 3),
                            ("keysight-33500b", 2, -1.5, 1e-5, 1)]
    assert [p.idle_V for p in server.emulator.pulses] == [0.0, 0.0]
    gen.close()
    assert server.emulator.is_safe()


def test_generator_at_50_ohm_still_puts_the_asked_level_on_the_chip(served, bench) -> None:
    """The chip is high-Z, so a generator set to a 50 ohm load delivers twice the level it
    is programmed to (the emulator models that): the driver programs half."""
    gen, server = served.start("keysight-33500b", {"load": "50"})
    gen.configure_pulse(amplitude_V=1.0, width_s=1e-6)
    gen.output(True)
    gen.fire()
    assert bench.pulses[-1][2] == pytest.approx(1.0)
    gen.transport.write(":OUTP1 OFF;:SOUR1:VOLT:HIGH 1;:OUTP1 ON")   # programmed by hand: 2x
    gen.fire()
    assert bench.pulses[-1][2] == pytest.approx(2.0)


@pytest.mark.parametrize("model", ["81150A", "81160A"])
def test_81150a_family(served, bench, model) -> None:
    gen, server = served.start("keysight-81150a", {"channel": 2, "model": model, "limit_V": 2.0})
    assert model in gen.identify()
    gen.configure_pulse(amplitude_V=-1.5, width_s=2.5e-6, count=2)
    gen.output(True)
    gen.fire()
    assert bench.pulses == [("keysight-81150a", 2, -1.5, 2.5e-6, 2)]
    # the instrument's own limit refuses a level the driver was not told about
    with pytest.raises(InstrumentError) as err:
        gen._run(":VOLT2:HIGH 2.5")
    assert err.value.code == -222


MATRICES = [("keithley-707b", {"slots": 2}), ("keysight-b2200", {}),
            ("serial-relay", {"rows": 8, "columns": 12})]


@pytest.mark.parametrize("name, options", MATRICES, ids=[m[0] for m in MATRICES])
def test_matrix_routes_reach_the_bench(served, bench, name, options) -> None:
    mx, server = served.start(name, options)
    mx.connect([(1, 3), (2, 12)])
    assert mx.closed() == [(1, 3), (2, 12)]
    assert bench.routes[name] == {(1, 3), (2, 12)}
    mx.connect([(4, 7)], exclusive=False)
    assert bench.routes[name] == {(1, 3), (2, 12), (4, 7)}
    mx.connect([(5, 1)])
    assert mx.closed() == [(5, 1)] and bench.routes[name] == {(5, 1)}
    mx.close()
    assert server.emulator.is_safe() and bench.routes[name] == frozenset()
    assert mx.errors() == []


def test_routing_decides_what_the_smu_sees(served, bench) -> None:
    bench.cell_route = (1, 3)
    mx, _ = served.start("keithley-707b")
    smu, _ = served.start("keithley-2450")
    smu.configure(compliance_A=1e-4)
    smu.output(True)
    assert smu.measure_current(0.2) == 0.0
    mx.connect([(1, 3)])
    assert smu.measure_current(0.2) == pytest.approx(2e-6)
    mx.connect([(2, 3)])
    assert smu.measure_current(0.2) == 0.0


def test_b2200_bias_mode_ties_free_outputs_to_the_bias_port(served, bench) -> None:
    mx, _ = served.start("keysight-b2200", {"bias_port": 10, "outputs": 4})
    mx.connect([(1, 2)])
    assert bench.routes["keysight-b2200"] == {(1, 2), (10, 1), (10, 3), (10, 4)}
    mx.connect([(3, 2)], exclusive=False)  # single-route rule: output 2 gets one input
    assert mx.closed() == [(3, 2)]


def _qcodes_2450(qc, emulator) -> None:
    qc.source.function("voltage")
    qc.source.limit(1e-4)
    qc.source.voltage(0.5)
    qc.output_enabled(True)
    assert qc.sense.current() == pytest.approx(15e-6, rel=1e-5)
    assert emulator.output


def _qcodes_2636b(qc, emulator) -> None:
    qc.smua.volt(0.5)
    qc.smua.output("on")
    assert qc.smua.curr() == pytest.approx(15e-6, rel=1e-5)


def _qcodes_33500b(qc, emulator) -> None:
    qc.ch1.function_type("PULS")
    qc.ch1.pulse_width(2.5e-6)
    assert qc.ch1.pulse_width() == pytest.approx(2.5e-6)
    assert emulator.ch[1].func == "PULS"


def _qcodes_b2200(qc, emulator) -> None:
    qc.connect(2, 7)
    assert qc.connections() == {(2, 7)}
    assert emulator.closed == {(2, 7)}


@pytest.mark.parametrize("name, exercise", [
    ("keithley-2450", _qcodes_2450), ("keithley-2636b", _qcodes_2636b),
    ("keysight-33500b", _qcodes_33500b), ("keysight-b2200", _qcodes_b2200)])
def test_qcodes_own_drivers_run_on_our_link_and_emulators(served, bench, name, exercise) -> None:
    """qcodes' drivers construct (their identity/model probing included) and work through
    our transport against our emulators, with nothing left in the error queue: the
    emulators answer an independent implementation of each command set."""
    driver, server = served.start(name)
    bench.g_S = 30e-6
    qc = driver.qcodes_instrument(f"qc_{name.replace('-', '_')}")
    try:
        exercise(qc, server.emulator)
    finally:
        qc.close()
    assert list(server.emulator.error_queue) == []
    assert driver.round_trips > 2  # qcodes' traffic went through the counted transport
    driver.close()
    assert server.emulator.is_safe()


def test_unreachable_instrument_is_an_instrument_error() -> None:
    import socket

    from labctl.drivers.registry import open_instrument

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smu = open_instrument("keithley-2450", f"TCPIP0::127.0.0.1::{port}::SOCKET",
                          {"timeout_s": 0.2})  # pyvisa-py connects on first use
    with pytest.raises(InstrumentError, match="refused"):
        smu.identify()
