"""Exact command/response transcripts per driver (pymeasure ``expected_protocol`` style).

Each test scripts the instrument's answers and asserts the driver sends exactly these
messages in this order, nothing more: a changed command, an extra round trip or a missing
error check fails here.  Strict validation is checked the same way: with an empty
transcript any message would raise, so a LimitError proves nothing was sent.
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.drivers.keithley_707b import Keithley707B
from labctl.drivers.keithley_2450 import Keithley2450
from labctl.drivers.keithley_2636b import VERIFY_SCRIPT, Keithley2636B
from labctl.drivers.keysight_33500b import Keysight33500B
from labctl.drivers.keysight_81150a import Keysight81150A
from labctl.drivers.keysight_b2200 import KeysightB2200
from labctl.drivers.keysight_b2902a import KeysightB2902A
from labctl.drivers.serial_relay import SerialRelayMatrix
from labctl.drivers.transcript import TranscriptMismatch, TranscriptTransport, exchanges
from labctl.errors import ConfigError, InstrumentError, LimitError

OK = '0,"No error"'
OK_PLUS = '+0,"No error"'
NONE = TranscriptTransport([])


def replay(*pairs: tuple[str, str | None]) -> TranscriptTransport:
    return TranscriptTransport(exchanges(*pairs), name="scripted")


def test_keithley_2450_configure_read_sweep_safe() -> None:
    t = replay(
        (':SOUR:FUNC VOLT;:SOUR:VOLT 0;:SOUR:VOLT:ILIM 0.0001;:SENS:FUNC "CURR";'
         ':SENS:CURR:RANG:AUTO ON;:SENS:CURR:NPLC 0.1;:SYST:ERR?', OK),
        (":OUTP ON;:SYST:ERR?", OK),
        (":SOUR:VOLT 0.2;:READ?;:SYST:ERR?", f"2.000000E-06;{OK}"),
        (':TRAC:CLE "defbuffer1";:SOUR:LIST:VOLT 0,0.5,1;'
         ':SOUR:SWE:VOLT:LIST 1,0,1,OFF,"defbuffer1";:INIT;*WAI;'
         ':TRAC:DATA? 1,3,"defbuffer1",READ;:SOUR:VOLT 0;:SYST:ERR?',
         f"0.000000E+00,5.000000E-06,1.000000E-05;{OK}"),
        (":SOUR:VOLT 0;:OUTP OFF;*OPC?", "1"))
    with Keithley2450(t) as smu:
        smu.configure(compliance_A=1e-4, nplc=0.1)
        smu.output(True)
        assert smu.measure_current(0.2) == pytest.approx(2e-6)
        np.testing.assert_allclose(smu.sweep([0, 0.5, 1.0]), [0, 5e-6, 1e-5])
    t.assert_complete()
    assert t.round_trips == 5


def test_keithley_2450_instrument_error_carries_code_and_text() -> None:
    t = replay((":OUTP ON;:SYST:ERR?", '-221,"Settings conflict"'), (":SYST:ERR?", OK))
    smu = Keithley2450(t)
    smu.compliance_A = 1e-4
    with pytest.raises(InstrumentError) as err:
        smu.output(True)
    assert (err.value.code, err.value.text) == (-221, "Settings conflict")
    t.assert_complete()


def test_keithley_2636b_commands() -> None:
    entries = exchanges(
        ("smub.source.func = smub.OUTPUT_DCVOLTS smub.source.autorangev = smub.AUTORANGE_ON "
         "smub.source.levelv = 0 smub.source.limiti = 0.0001 "
         "smub.measure.autorangei = smub.AUTORANGE_ON smub.measure.nplc = 0.1 "
         "print(errorqueue.count)", "0.00000e+00"),
        ("smub.source.output = smub.OUTPUT_ON print(errorqueue.count)", "0.00000e+00"),
        ("smub.source.levelv = 0.2 print(smub.measure.i(), errorqueue.count)",
         "2.00000e-06\t0.00000e+00"),
        ("smub.nvbuffer1.clear() smub.nvbuffer1.appendmode = 0 "
         "smub.trigger.source.listv({0, 0.5, 1}) smub.trigger.source.action = smub.ENABLE "
         "smub.trigger.measure.i(smub.nvbuffer1) smub.trigger.measure.action = smub.ENABLE "
         "smub.trigger.endsweep.action = smub.SOURCE_IDLE smub.trigger.count = 3 "
         "smub.trigger.arm.count = 1 smub.trigger.initiate() waitcomplete() "
         "printbuffer(1, smub.nvbuffer1.n, smub.nvbuffer1.readings) print(errorqueue.count)",
         "0.00000e+00, 5.00000e-06, 1.00000e-05"))
    entries.append((0.0, "r", "0.00000e+00"))  # the second line of the sweep's answer
    entries += exchanges(
        ("smub.source.levelv = 0 smub.source.output = smub.OUTPUT_OFF waitcomplete() print(1)",
         "1.00000e+00"))
    t = TranscriptTransport(entries)
    with Keithley2636B(t, channel="b") as smu:
        smu.configure(compliance_A=1e-4, nplc=0.1)
        smu.output(True)
        assert smu.measure_current(0.2) == pytest.approx(2e-6)
        np.testing.assert_allclose(smu.sweep([0, 0.5, 1.0]), [0, 5e-6, 1e-5])
    t.assert_complete()
    assert t.round_trips == 5


def test_keithley_2636b_verify_script_is_one_round_trip_per_cell() -> None:
    t = replay(
        (f"loadscript labctl_pv_loader\n{VERIFY_SCRIPT}\nendscript\nlabctl_pv_loader() "
         "digio.trigger[3].mode = digio.TRIG_RISINGA digio.trigger[3].pulsewidth = 1e-05 "
         "digio.trigger[4].mode = digio.TRIG_RISINGA digio.trigger[4].pulsewidth = 1e-05 "
         "print(errorqueue.count)", "0.00000e+00"),
        ("labctl_pv(smua, 0.2, 9e-06, 1.1e-05, 40, 3, 4, 2e-05)",
         "7.00000e+00\t1.04000e-05\t0.00000e+00\t5.00000e+00"))
    smu = Keithley2636B(t)
    smu.compliance_A, smu.output_on = 1e-4, True
    smu.load_verify_script(set_line=3, reset_line=4)
    out = smu.program_verify(read_voltage_V=0.2, g_low_S=9e-6, g_high_S=11e-6, max_pulses=40,
                             settle_s=2e-5)
    assert (out.pulses, out.conductance_S, out.converged) == (7, pytest.approx(1.04e-5), True)
    assert out.set_pulses == 5            # of the 7, the script counted 5 on the set line
    t.assert_complete()


def test_keysight_b2902a_commands() -> None:
    t = replay(
        (':SOUR2:FUNC:MODE VOLT;:SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT 0;'
         ':SENS2:FUNC "CURR";:SENS2:CURR:PROT 0.0001;:SENS2:CURR:RANG:AUTO ON;'
         ':SENS2:CURR:NPLC 0.1;:SYST:ERR?', OK_PLUS),
        (":OUTP2 ON;:SYST:ERR?", OK_PLUS),
        (":SOUR2:VOLT 0.2;:MEAS:CURR? (@2);:SYST:ERR?", f"+2.000000E-06;{OK_PLUS}"),
        (":SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 0,1;:TRIG2:SOUR AINT;:TRIG2:COUN 2;"
         ":INIT (@2);*WAI;:FETC:ARR:CURR? (@2);:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT 0;:SYST:ERR?",
         f"+0.000000E+00,+1.000000E-05;{OK_PLUS}"),
        (":SOUR2:FUNC:SHAP PULS;:SOUR2:VOLT 0;:SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 1.5,0.1;"
         ":SOUR2:PULS:DEL 0;:SOUR2:PULS:WIDT 0.0001;:TRIG2:ACQ:DEL 8e-05;:TRIG2:SOUR TIM;"
         ":TRIG2:TIM 0.0002;:TRIG2:COUN 2;:INIT (@2);*WAI;:FETC:ARR:CURR? (@2);"
         ":SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT 0;:SYST:ERR?",
         f"+1.500000E-05,+1.000000E-06;{OK_PLUS}"),
        (":SOUR2:VOLT 0;:OUTP2 OFF;*OPC?", "1"))
    with KeysightB2902A(t, channel=2) as smu:
        smu.configure(compliance_A=1e-4, nplc=0.1)
        smu.output(True)
        assert smu.measure_current(0.2) == pytest.approx(2e-6)
        np.testing.assert_allclose(smu.sweep([0, 1.0]), [0, 1e-5])
        np.testing.assert_allclose(smu.pulse_list([1.5, 0.1], 1e-4), [1.5e-5, 1e-6])
    t.assert_complete()


def test_keysight_33500b_positive_then_negative_pulse() -> None:
    head = (":SOUR1:FUNC PULS;:OUTP1:LOAD INF;:SOUR1:FUNC:PULS:WIDT 1.6e-08;"
            ":SOUR1:FUNC:PULS:PER 5e-06;:SOUR1:FUNC:PULS:TRAN 1e-08;:SOUR1:FUNC:PULS:WIDT 2.5e-06;")
    t = replay(
        (head + ":SOUR1:VOLT:HIGH 1.35;:SOUR1:VOLT:LOW 0;:OUTP1:POL NORM;:SOUR1:BURS:MODE TRIG;"
         ":SOUR1:BURS:NCYC 1;:TRIG1:SOUR BUS;:SOUR1:BURS:STAT ON;:SYST:ERR?", OK_PLUS),
        (":OUTP1 ON;:SYST:ERR?", OK_PLUS),
        ("*TRG;*OPC?;:SYST:ERR?", f"1;{OK_PLUS}"),
        # with the output on, the new levels and polarity are set with it off: between
        # :VOLT:LOW -1.5 and :POL INV the output would idle at a DC level on the cell
        (":OUTP1 OFF;" + head + ":SOUR1:VOLT:LOW -1.5;:SOUR1:VOLT:HIGH 0;:OUTP1:POL INV;"
         ":SOUR1:BURS:MODE TRIG;:SOUR1:BURS:NCYC 2;:TRIG1:SOUR EXT;:SOUR1:BURS:STAT ON;"
         ":OUTP1 ON;:SYST:ERR?", OK_PLUS),
        (":OUTP1 OFF;*OPC?", "1"))
    with Keysight33500B(t) as gen:
        gen.configure_pulse(amplitude_V=1.35, width_s=2.5e-6)
        gen.output(True)
        gen.fire()
        gen.configure_pulse(amplitude_V=-1.5, width_s=2.5e-6, count=2, trigger="ext")
    t.assert_complete()


def test_keysight_81150a_suffix_commands_and_hardware_limit() -> None:
    t = replay(
        (":FUNC2 PULS;:OUTP2:IMP:EXT 1E6;:VOLT2:LIM:HIGH 3;:VOLT2:LIM:LOW -3;:VOLT2:LIM:STAT ON;"
         ":PULS:WIDT2 1.5e-09;:PULS:PER2 5e-06;:PULS:TRAN2 1e-08;:PULS:WIDT2 2.5e-06;"
         ":VOLT2:LOW -1.5;:VOLT2:HIGH 0;:OUTP2:POL INV;:ARM:SOUR2 MAN;:TRIG2:COUN 4;:SYST:ERR?",
         OK_PLUS),
        (":OUTP2 ON;:SYST:ERR?", OK_PLUS), ("*TRG;*OPC?;:SYST:ERR?", f"1;{OK_PLUS}"))
    gen = Keysight81150A(t, channel=2, model="81160A", limit_V=3.0)
    gen.configure_pulse(amplitude_V=-1.5, width_s=2.5e-6, count=4)
    gen.output(True)
    gen.fire()
    t.assert_complete()
    with pytest.raises(LimitError, match="amplitude_V"):
        gen.configure_pulse(amplitude_V=3.5, width_s=2.5e-6)


def test_a_50_ohm_load_setting_programs_half_the_level_a_high_z_chip_gets() -> None:
    """Set to a 50 ohm load, a generator displays the level across 50 ohm and delivers
    twice that into the (high-impedance) chip: levels and limits asked for at the chip are
    programmed halved, so the chip gets what was asked, not twice it."""
    t = replay(
        (":SOUR1:FUNC PULS;:OUTP1:LOAD 50;:SOUR1:FUNC:PULS:WIDT 1.6e-08;:SOUR1:FUNC:PULS:PER 5e-06;"
         ":SOUR1:FUNC:PULS:TRAN 1e-08;:SOUR1:FUNC:PULS:WIDT 2.5e-06;:SOUR1:VOLT:HIGH 0.675;"
         ":SOUR1:VOLT:LOW 0;:OUTP1:POL NORM;:SOUR1:BURS:MODE TRIG;:SOUR1:BURS:NCYC 1;"
         ":TRIG1:SOUR BUS;:SOUR1:BURS:STAT ON;:SYST:ERR?", OK_PLUS),
        (":FUNC1 PULS;:OUTP1:IMP:EXT 50;:VOLT1:LIM:HIGH 1.5;:VOLT1:LIM:LOW -1.5;"
         ":VOLT1:LIM:STAT ON;:PULS:WIDT1 4.1e-09;:PULS:PER1 5e-06;:PULS:TRAN1 1e-08;"
         ":PULS:WIDT1 2.5e-06;:VOLT1:LOW -1.3;:VOLT1:HIGH 0;:OUTP1:POL INV;:ARM:SOUR1 MAN;"
         ":TRIG1:COUN 1;:SYST:ERR?", OK_PLUS))
    Keysight33500B(t, load="50").configure_pulse(amplitude_V=1.35, width_s=2.5e-6)
    gen = Keysight81150A(t, high_z=False, limit_V=3.0)
    gen.configure_pulse(amplitude_V=-2.6, width_s=2.5e-6)
    t.assert_complete()
    assert gen.configured is not None and gen.configured["amplitude_V"] == -2.6
    with pytest.raises(LimitError, match="amplitude_V"):
        gen.configure_pulse(amplitude_V=3.5, width_s=2.5e-6)


def test_keithley_707b_channel_lists() -> None:
    t = replay(
        ('channel.exclusiveclose("1A03,2B01") waitcomplete() print(errorqueue.count)',
         "0.00000e+00"),
        ('channel.close("1H12") waitcomplete() print(errorqueue.count)', "0.00000e+00"),
        ('print(channel.getclose("allslots"))', "1A03;1H12;2B01"),
        ('channel.open("allslots") waitcomplete() print(errorqueue.count)', "0.00000e+00"),
        ('print(channel.getclose("allslots"))', "nil"))
    mx = Keithley707B(t, slots=2)
    mx.connect([(1, 3), (2, 13)])
    mx.connect([(8, 12)], exclusive=False)
    assert mx.closed() == [(1, 3), (2, 13), (8, 12)]
    mx.open_all()
    assert mx.closed() == []
    t.assert_complete()


def test_keysight_b2200_setup_once_then_switch() -> None:
    t = replay(
        (":ROUT:CONN:RULE 1,SROU;:ROUT:CONN:SEQ 1,BBM;:ROUT:BIAS:PORT 1,10;"
         ":ROUT:BIAS:CHAN:ENAB:CARD 1;:ROUT:BIAS 1,1;:ROUT:OPEN:CARD 1;"
         ":ROUT:CLOS (@10103,10212);*OPC?;:SYST:ERR?", f"1;{OK}"),
        (":ROUT:OPEN:CARD 1;:ROUT:CLOS (@11401);*OPC?;:SYST:ERR?", f"1;{OK}"),
        (":ROUT:CLOS:CARD? 1", "(@11401)"),
        (":ROUT:OPEN:CARD 1;*OPC?", "1"))
    with KeysightB2200(t, card=1, bias_port=10) as mx:
        mx.connect([(1, 3), (2, 12)])
        mx.connect([(14, 1)])
        assert mx.closed() == [(14, 1)]
    t.assert_complete()


def test_serial_relay_protocol() -> None:
    t = replay(("EXCL 1,3 2,5", "OK"), ("CLOSE 4,4", "OK"), ("CLOSED?", "1,3 2,5 4,4"),
               ("OPEN 4,4", "OK"), ("CLOSE 1,1", "ERR 3"),
               ("ERR?", "3,Route outside the matrix"), ("ERR?", "0,No error"),
               ("OPEN ALL", "OK"), ("CLOSED?", "NONE"))
    mx = SerialRelayMatrix(t, rows=4, columns=6)
    mx.connect([(1, 3), (2, 5)])
    mx.connect([(4, 4)], exclusive=False)
    assert mx.closed() == [(1, 3), (2, 5), (4, 4)]
    mx.disconnect([(4, 4)])
    with pytest.raises(InstrumentError) as err:
        mx.connect([(1, 1)], exclusive=False)
    assert (err.value.code, err.value.text) == (3, "Route outside the matrix")
    mx.open_all()
    assert mx.closed() == []
    t.assert_complete()


@pytest.mark.parametrize("make, call, quantity", [
    (lambda: Keithley2450(NONE), lambda d: d.configure(compliance_A=2.0), "compliance_A"),
    (lambda: Keithley2450(NONE), lambda d: d.configure(compliance_A=1e-12), "compliance_A"),
    (lambda: Keithley2636B(NONE), lambda d: d.configure(compliance_A=1.6), "compliance_A"),
    (lambda: Keithley2636B(NONE), lambda d: d.source_voltage(200.5), "voltage_V"),
    (lambda: KeysightB2902A(NONE), lambda d: d.configure(compliance_A=-1e-3), "compliance_A"),
    (lambda: KeysightB2902A(NONE), lambda d: d.pulse_list([1.0], 2.5e-6), "width_s"),
    (lambda: Keysight33500B(NONE), lambda d: d.configure_pulse(amplitude_V=10.5, width_s=1e-6),
     "amplitude_V"),
    (lambda: Keysight33500B(NONE, load="50"),
     lambda d: d.configure_pulse(amplitude_V=10.5, width_s=1e-6), "amplitude_V"),
    (lambda: Keysight33500B(NONE), lambda d: d.configure_pulse(amplitude_V=1.0, width_s=1e-9),
     "width_s"),
    (lambda: Keysight33500B(NONE),
     lambda d: d.configure_pulse(amplitude_V=1.0, width_s=1e-6, period_s=1e-6), "width_s"),
    (lambda: Keysight33500B(NONE), lambda d: d.configure_pulse(amplitude_V=1.0, width_s=1e-6,
                                                               count=0), "count"),
    (lambda: Keysight81150A(NONE, model="81150A"),
     lambda d: d.configure_pulse(amplitude_V=1.0, width_s=2e-9), "width_s"),
    (lambda: Keithley707B(NONE), lambda d: d.connect([(9, 1)]), "matrix input (row)"),
    (lambda: Keithley707B(NONE), lambda d: d.connect([(1, 13)]), "matrix output (column)"),
    (lambda: KeysightB2200(NONE), lambda d: d.connect([(15, 1)]), "matrix input"),
    (lambda: SerialRelayMatrix(NONE, rows=4, columns=4), lambda d: d.connect([(1, 5)]),
     "matrix output (column)"),
    (lambda: KeysightB2902A(NONE, channel=3), None, "channel"),
    (lambda: Keithley2636B(NONE, channel="c"), None, "channel"),
])
def test_out_of_range_raises_limit_error_before_anything_is_sent(make, call, quantity) -> None:
    with pytest.raises(LimitError) as err:
        driver = make()
        call(driver)
    assert err.value.quantity == quantity
    assert NONE.round_trips == 0


def test_output_on_needs_compliance_and_reads_need_output() -> None:
    smu = Keithley2636B(TranscriptTransport([]))
    with pytest.raises(LimitError, match="compliance"):
        smu.output(True)
    with pytest.raises(ConfigError, match="output is off"):
        smu.measure_current(0.1)
    gen = Keysight33500B(TranscriptTransport([]))
    with pytest.raises(ConfigError):
        gen.output(True)


def test_replay_names_the_first_differing_command() -> None:
    t = replay((":OUTP ON;:SYST:ERR?", OK))
    smu = Keithley2450(t)
    smu.compliance_A = 1e-4
    with pytest.raises(TranscriptMismatch, match=r"':OUTP OFF;:SYST:ERR\?' .* differs"):
        smu.output(False)


def test_transcripts_of_several_instruments_share_one_clock() -> None:
    """The run file merges every instrument's transcript by time; the times must come from
    one origin, or an instrument opened later appears to act earlier (a read stored before
    the matrix close that preceded it)."""
    import time

    from labctl.drivers.transcript import TranscriptTransport, exchanges

    first_log: list = []
    second_log: list = []
    first = TranscriptTransport(exchanges(("A?", "1")), name="first", transcript=first_log)
    time.sleep(0.05)
    second = TranscriptTransport(exchanges(("B?", "2")), name="second", transcript=second_log)
    first.query("A?")
    second.query("B?")
    assert first_log[-1][0] <= second_log[0][0]


def test_keysight_33500b_refuses_a_pulse_whose_edges_do_not_fit_its_period() -> None:
    """width + 1.6 x edge must fit the period: 1 us + 1.6 us > 2.5 us is refused unsent."""
    gen = Keysight33500B(TranscriptTransport([]))
    with pytest.raises(LimitError):
        gen.configure_pulse(amplitude_V=1.0, width_s=1e-6, edge_s=1e-6, period_s=2.5e-6)


def test_keithley_2450_sweep_with_an_extra_point_is_an_instrument_error() -> None:
    """A sweep of 3 voltages answered with 4 currents is not silently accepted."""
    t = replay(
        (':TRAC:CLE "defbuffer1";:SOUR:LIST:VOLT 0,0.5,1;'
         ':SOUR:SWE:VOLT:LIST 1,0,1,OFF,"defbuffer1";:INIT;*WAI;'
         ':TRAC:DATA? 1,3,"defbuffer1",READ;:SOUR:VOLT 0;:SYST:ERR?',
         f"0.000000E+00,5.000000E-06,1.000000E-05,2.000000E-05;{OK}"))
    smu = Keithley2450(t)
    smu.compliance_A, smu.output_on = 1e-4, True
    with pytest.raises(InstrumentError, match="4 of 3"):
        smu.sweep([0, 0.5, 1.0])


def test_keithley_707b_reads_channels_relative_to_its_first_slot() -> None:
    """With the cards from slot 2, ``2A01`` is output 1 and ``3B02`` output 14 (spec's
    inverse), not counted from slot 1."""
    mx = Keithley707B(TranscriptTransport([]), slots=2, first_slot=2)
    assert mx.route("2A01") == (1, 1)
    assert mx.route("3B02") == (2, 14)
    assert mx.route(mx.spec((3, 20))) == (3, 20)
