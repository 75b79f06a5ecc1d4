"""The emulators' command-set rules, message by message (no TCP): what real boxes accept.

SCPI: short/long forms, any case, optional nodes, numeric suffixes, ``;`` chaining with
the path rule, ``-113`` that discards the rest of the message, ``-222`` that does not,
answers joined with ``;``.  TSP: real Lua -- print formatting, scripts, sandbox, the
2600 error-queue format.  Matrices: channel lists and ranges.
"""

from __future__ import annotations

import pytest
from fake_bench import FakeBench

from labctl.sim_backend.emulator.keithley_707b import Keithley707BEmulator
from labctl.sim_backend.emulator.keithley_2450 import Keithley2450Emulator
from labctl.sim_backend.emulator.keithley_2636b import Keithley2636BEmulator
from labctl.sim_backend.emulator.keysight_33500b import Keysight33500BEmulator
from labctl.sim_backend.emulator.keysight_b2200 import KeysightB2200Emulator
from labctl.sim_backend.emulator.keysight_b2902a import KeysightB2902AEmulator
from labctl.sim_backend.emulator.serial_relay import SerialRelayEmulator


def ask(emulator, message: str) -> list[str]:
    return emulator.process(message)


@pytest.fixture
def k2450() -> Keithley2450Emulator:
    return Keithley2450Emulator("smu", FakeBench())


@pytest.mark.parametrize("message", [
    ":SOUR:VOLT:ILIM 0.002", ":SOURce:VOLTage:ILIMit 0.002", ":source1:voltage:ilimit:level 2e-3",
    "SOUR:VOLT:ILIM 2E-3", ":sOuRcE:vOlT:iLiM 0.002"])
def test_short_long_case_suffix_forms_are_one_command(k2450, message) -> None:
    assert ask(k2450, message) == []
    assert ask(k2450, ":SOUR:VOLT:ILIM?") == ["2.000000E-03"]
    assert ask(k2450, ":SYST:ERR?") == ['0,"No error"']


@pytest.mark.parametrize("message", [":SOURC:VOLT 1", ":SOUR:VOLTA 1", ":SOUR3X:VOLT 1",
                                     ":SENS:FUNC:FROB 1"])
def test_invalid_mnemonics_are_undefined_headers(k2450, message) -> None:
    assert ask(k2450, message) == []
    assert ask(k2450, ":SYST:ERR?") == ['-113,"Undefined header"']


def test_chaining_path_rule_and_answers(k2450) -> None:
    # after ':SOUR:VOLT:ILIM', a header without ':' continues in SOUR:VOLT
    assert ask(k2450, ":SOUR:VOLT:ILIM 1e-3;ILIM?;:SOUR:FUNC?;*OPC?") == ["1.000000E-03;VOLT;1"]
    # 'ILIM' relative to the root path after ':SOUR:FUNC' is undefined
    assert ask(k2450, ":SOUR:FUNC VOLT;ILIM 1e-3") == []
    assert ask(k2450, ":SYST:ERR?;:SYST:ERR?") == ['-113,"Undefined header";0,"No error"']


def test_command_error_discards_the_rest_execution_error_does_not(k2450) -> None:
    assert ask(k2450, ":BOGUS;:SOUR:VOLT 1;*IDN?") == []
    assert ask(k2450, ":SOUR:VOLT?") == ["0.000000E+00"]
    assert ask(k2450, ":SOUR:VOLT 999;:SOUR:VOLT 2;:SOUR:VOLT?") == ["2.000000E+00"]
    assert ask(k2450, ":SYST:ERR:ALL?") == ['-113,"Undefined header",-222,"Data out of range"']


def test_numeric_keywords_and_queue_overflow(k2450) -> None:
    ask(k2450, ":SOUR:VOLT:ILIM MAX")
    assert ask(k2450, ":SOUR:VOLT:ILIM?") == ["1.050000E+00"]
    for _ in range(40):
        ask(k2450, ":NOPE")
    assert len(k2450.error_queue) == 32 and k2450.error_queue[-1] == (-350, "Queue overflow")


def test_qcodes_sweep_string_and_buffer_readout(k2450) -> None:
    """The exact linear-sweep string qcodes' Keithley2450 sends (instruments.md 1.6)."""
    k2450.bench.g_S = 1e-6
    ask(k2450, ":OUTP ON")
    ask(k2450, ":SOURce:SWEep:voltage:LINear 0,1,11,0,1,AUTO,ON,OFF,'defbuffer1'")
    ask(k2450, ":INITiate;*WAI")
    assert ask(k2450, ':TRACe:ACTual? "defbuffer1"') == ["11"]
    data = ask(k2450, ':TRAC:DATA? 1,11,"defbuffer1",SOUR,READ')[0].split(",")
    assert len(data) == 22 and float(data[-2]) == 1.0 and float(data[-1]) == pytest.approx(1e-6)
    assert ask(k2450, '*LANG?;:SENS:FUNC?') == ['SCPI;"CURR:DC"']


def test_2450_fail_abort_stops_at_compliance(k2450) -> None:
    k2450.bench.g_S = 1e-3
    ask(k2450, ":SOUR:VOLT:ILIM 1e-4;:OUTP ON;:SOUR:LIST:VOLT 0,0.05,0.1,0.2,0.3")
    ask(k2450, ':SOUR:SWE:VOLT:LIST 1,0,1,ON,"defbuffer1";:INIT')
    assert ask(k2450, ":TRAC:ACT?") == ["3"]
    assert ask(k2450, ":SOUR:VOLT:ILIM:TRIP?") == ["0"]
    ask(k2450, ":READ?")
    assert ask(k2450, ":SOUR:VOLT:ILIM:TRIP?") == ["0"]


def test_33500b_checks_timing_and_levels() -> None:
    gen = Keysight33500BEmulator("pg", FakeBench())
    assert ask(gen, ":SOUR1:FUNC:PULS:WIDT 2e-3;:SYST:ERR?") == ['-222,"Data out of range"']
    # relative headers continue in FUNC:PULS; a repeated full path would be undefined there
    assert ask(gen, "FUNC:PULS:WIDT 2.5e-6;PER 1e-5;WIDT?") == ["+2.500000000000000E-06"]
    assert ask(gen, "FUNC:PULS:PER 1e-5;FUNC:PULS:WIDT?") == []
    assert ask(gen, ":SYST:ERR?") == ['-113,"Undefined header"']
    assert ask(gen, ":VOLT:HIGH 7;:SYST:ERR?") == ['-222,"Data out of range"']
    assert ask(gen, ":OUTP:LOAD INF;:VOLT:HIGH 7;:VOLT:HIGH?") == ["+7.000000000000000E+00"]
    assert ask(gen, ":SOUR2:VOLT:LOW 1;:SOUR2:VOLT:HIGH 1;:SYST:ERR?") == [
        '-221,"Settings conflict"']
    assert ask(gen, ":SOUR3:FUNC PULS;*IDN?") == []  # a -1xx error ends the message
    assert ask(gen, ":SYST:ERR?") == ['-114,"Header suffix out of range"']


def test_b2902a_element_order_is_fixed() -> None:
    smu = KeysightB2902AEmulator("smu", FakeBench(g_S=1e-5))
    ask(smu, ":OUTP1 ON;:SOUR1:VOLT 0.5;:FORM:ELEM:SENS CURR,VOLT")
    assert ask(smu, ":MEAS? (@1)") == ["+5.000000E-01,+5.000000E-06"]
    assert ask(smu, ":SOUR1:PULS:WIDT 2.5E-6;:SYST:ERR?") == ['-222,"Data out of range"']
    assert ask(smu, ":MEAS:CURR? (@3)") == []


@pytest.fixture
def k2636() -> Keithley2636BEmulator:
    return Keithley2636BEmulator("smu", FakeBench(g_S=1e-5))


def test_tsp_print_formats_like_the_2600(k2636) -> None:
    assert ask(k2636, "print(1, 2.5, true, nil, 'x')") == [
        "1.00000e+00\t2.50000e+00\ttrue\tnil\tx"]
    assert ask(k2636, "print(localnode.model) print(localnode.linefreq)") == [
        "2636B", "5.00000e+01"]
    assert ask(k2636, "print(status.measurement.instrument.smua.condition)") == ["0.00000e+00"]
    assert ask(k2636, "print(errorqueue.next())") == [
        "0.00000e+00\tQueue Is Empty\t0.00000e+00\t1.00000e+00"]


def test_tsp_assignments_constants_and_measure(k2636) -> None:
    ask(k2636, "smua.source.func = smua.OUTPUT_DCVOLTS smua.source.limiti = 1e-4 "
               "smua.source.levelv = 2 smua.source.output = smua.OUTPUT_ON")
    assert ask(k2636, "print(smua.measure.i(), smua.measure.v())") == ["2.00000e-05\t2.00000e+00"]
    assert ask(k2636, "local i, v = smua.measure.iv() print(i, v, smua.source.compliance)") == [
        "2.00000e-05\t2.00000e+00\tfalse"]
    ask(k2636, "smua.source.limiti = 1e-5")
    assert ask(k2636, "print(smua.measure.i(), smua.source.compliance)") == ["1.00000e-05\ttrue"]


def test_tsp_errors_go_to_the_queue_and_abort_the_message(k2636) -> None:
    assert ask(k2636, "print(1) smua.source.limiti = 5 print(2)") == ["1.00000e+00"]
    assert ask(k2636, "smua.source.nonsense = 1") == []
    assert ask(k2636, "x = = 1") == []
    assert ask(k2636, "undefined_function()") == []
    codes = [k2636.pop_error()[0] for _ in range(4)]
    assert codes == [-222, -286, -285, -286]


def test_tsp_scripts_loadscript_loadandrunscript_and_sandbox(k2636) -> None:
    for line in ["loadscript twice", "function twice(x) return 2 * x end", "endscript"]:
        assert ask(k2636, line) == []
    assert ask(k2636, "print(twice)")[0].startswith("function") is False  # script object
    ask(k2636, "twice.run()")
    assert ask(k2636, "print(twice(21))") == ["4.20000e+01"]
    for line in ["loadandrunscript", "for k = 1, 3 do print(k) end", "endscript"]:
        out = ask(k2636, line)
    assert out == ["1.00000e+00", "2.00000e+00", "3.00000e+00"]
    assert ask(k2636, "print(io, os, load, python, require)") == ["nil\tnil\tnil\tnil\tnil"]
    assert ask(k2636, "print(smua._smu)") == []
    assert k2636.pop_error()[0] == -286


def test_tsp_runaway_loop_is_stopped(k2636) -> None:
    assert ask(k2636, "while true do end") == []
    code, text = k2636.pop_error()
    assert code == -286 and "instruction budget" in text
    assert ask(k2636, "print(3)") == ["3.00000e+00"]


def test_tsp_trigger_model_sweep_and_printbuffer(k2636) -> None:
    ask(k2636, "smua.source.limiti = 1 smua.source.output = 1 smua.nvbuffer1.clear() "
               "smua.trigger.source.linearv(0, 1, 5) smua.trigger.source.action = smua.ENABLE "
               "smua.trigger.measure.i(smua.nvbuffer1) smua.trigger.measure.action = 1 "
               "smua.trigger.count = 5 smua.trigger.initiate() waitcomplete()")
    assert ask(k2636, "printbuffer(1, smua.nvbuffer1.n, smua.nvbuffer1.readings)") == [
        "0.00000e+00, 2.50000e-06, 5.00000e-06, 7.50000e-06, 1.00000e-05"]
    assert ask(k2636, "print(smua.nvbuffer1.sourcevalues[5])") == ["1.00000e+00"]
    assert ask(k2636, "printbuffer(1, 9, smua.nvbuffer1.readings)") == []
    assert k2636.pop_error()[0] == -222


def test_707b_channel_lists_ranges_and_errors() -> None:
    bench = FakeBench()
    mx = Keithley707BEmulator("mx", bench, slots=2)
    ask(mx, 'channel.close("1A01:1B02,2H12")')
    assert ask(mx, 'print(channel.getclose("allslots"))') == ["1A01;1A02;1B01;1B02;2H12"]
    assert bench.routes["mx"] == {(1, 1), (1, 2), (2, 1), (2, 2), (8, 24)}
    assert ask(mx, 'print(channel.getclose("slot2"))') == ["2H12"]
    ask(mx, 'channel.exclusiveclose("1C03")')
    assert ask(mx, 'print(channel.getclose("allslots"))') == ["1C03"]
    for bad in ('"1I01"', '"1A13"', '"3A01"', '"A01"', '""'):
        ask(mx, f"channel.close({bad})")
        assert mx.pop_error()[0] == 1115
    assert ask(mx, 'print(channel.getclose("allslots"))') == ["1C03"]
    ask(mx, 'channel.exclusiveclose("")')
    assert ask(mx, 'print(channel.getclose("allslots"))') == ["nil"] and mx.is_safe()
    assert ask(mx, "print(slot[3].idn)") == ["Empty Slot"]


def test_b2200_optional_root_query_lists_and_rules() -> None:
    mx = KeysightB2200Emulator("mx", FakeBench())
    ask(mx, ":CONN:RULE 0,SROU;:CLOS (@00103,00204)")
    assert ask(mx, ":ROUT:CLOS? (@00103,00104,00204)") == ["1,0,1"]
    ask(mx, "ROUTE:CLOSE (@00503)")  # SROU: input 5 takes output 3 from input 1
    assert ask(mx, ":CLOS:CARD? 0") == ["(@00204,00503)"]
    ask(mx, ":CLOS (@00115)")
    assert ask(mx, ":SYST:ERR?;*ESR?") == ['-222,"Data out of range";0']
    ask(mx, ":OPEN:CARD ALL")
    assert ask(mx, ":CLOS:CARD? 0") == ["(@)"]


def test_serial_relay_protocol_lines() -> None:
    relay = SerialRelayEmulator("relay", FakeBench(), rows=4, columns=4)
    assert ask(relay, "*idn?") == ["LABCTL,RELAY-MATRIX,4x4,EMU0001"]
    assert ask(relay, "excl 1,1 2,2") == ["OK"]
    assert ask(relay, "CLOSE 3,3 5,1") == ["ERR 3"]  # checked whole: nothing switched
    assert ask(relay, "CLOSED?") == ["1,1 2,2"]
    assert ask(relay, "CLOSE 1-1") == ["ERR 2"]
    assert ask(relay, "FLIP 1,1") == ["ERR 1"]
    assert [ask(relay, "ERR?")[0] for _ in range(4)] == [
        "3,Route outside the matrix", "2,Malformed argument", "1,Unknown command", "0,No error"]
    assert ask(relay, "OPEN ALL") == ["OK"] and ask(relay, "CLOSED?") == ["NONE"]


def test_tsp_fields_keep_resolving_under_many_method_calls(k2636) -> None:
    """lupa 2.8 (Lua 5.4) resolved a field to another, freed object after ~600,000
    bound-method calls (seen as 'attribute name must be string' or "'function' object has
    no attribute 'clear'" mid-run, for good); nodes keep one bound method per name."""
    ask(k2636, "digio.trigger[1].mode = 0")
    for _ in range(3000):
        out = ask(k2636, "for i = 1, 200 do digio.trigger[1].assert() smua.nvbuffer1.clear() "
                         "end print(smua.nvbuffer1.n)")
        assert out == ["0.00000e+00"] and not k2636.error_queue, (out, k2636.error_queue)
