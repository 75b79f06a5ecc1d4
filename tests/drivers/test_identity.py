"""Each driver knows which instruments it speaks to (``*IDN?``), and clears an error queue
an earlier session left behind in the instrument's own command set."""

from __future__ import annotations

from typing import Any

import pytest
from fake_bench import FakeBench

from labctl.drivers.registry import DRIVERS, build_driver
from labctl.drivers.transcript import TranscriptTransport, exchanges
from labctl.sim_backend.emulator import make_emulator


def driver(name: str, pairs: tuple[tuple[str, str | None], ...] = (),
           **options: Any) -> Any:
    return build_driver(name, TranscriptTransport(exchanges(*pairs), name="scripted"), options)


# driver -> identities it accepts (emulator, pyvisa-sim YAML, real variants), and some it refuses
ACCEPTS = {
    "keithley-2450": ["KEITHLEY INSTRUMENTS,MODEL 2450,04451117,1.6.7c",
                      "Keithley Instruments Inc.,MODEL 2450,04096218,1.7.12b"],
    "keithley-2636b": ["Keithley Instruments Inc., Model 2636B, 4321987, 3.3.5",
                       "Keithley Instruments Inc., Model 2602B, 4100001, 3.2.2",
                       "KEITHLEY INSTRUMENTS INC., MODEL 2636A, 1234567, 2.2.5"],
    "keysight-b2902a": ["Keysight Technologies,B2902A,MY51140001,3.4.2011.5100",
                        "Agilent Technologies,B2901A,MY5000001,2.0.1"],
    "keysight-33500b": ["Keysight Technologies,33522B,MY52600001,4.00-1.19-2.00-52-00",
                        "Agilent Technologies,33521A,MY50001234,2.03-1.19-2.00-52-00",
                        "Keysight Technologies,33622A,MY53800001,A.02.01-3.0-2.00"],
    "keysight-81150a": ["Agilent Technologies,81150A,DE48C00001,2.1.0"],
    "keithley-707b": ["Keithley Instruments Inc., Model 707B, 1234567, 1.5.0",
                      "Keithley Instruments Inc., Model 708B, 1234568, 1.5.0"],
    "keysight-b2200": ["Agilent Technologies,B2200A,0,1.0", "Agilent Technologies,E5250A,0,A.01"],
    "serial-relay": ["LABCTL,RELAY-MATRIX,8x8,SN0001"],
}
#: identities of other instruments (each refused by every driver but its own)
WRONG = {"keithley-707b": "Keithley Instruments Inc., Model 707B, EMU0001, 3.3.5",
         "keysight-33500b": "Keysight Technologies,33522B,MY52600001,4.00",
         "keithley-2450": "KEITHLEY INSTRUMENTS,MODEL 2450,1,1",
         "keysight-b2200": "Agilent Technologies,B2200A,0,1.0",
         "keithley-2636b": "Keithley Instruments Inc., Model 2636B, 1, 3.3.5",
         "other": "Rigol Technologies,DG1022Z,DG1ZA0001,00.01", "empty": "", "number": "1"}


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_each_driver_accepts_its_instruments_and_refuses_others(name: str) -> None:
    d = driver(name)
    for idn in ACCEPTS[name]:
        assert d.identity_problem(idn) is None, idn
    for idn in (idn for owner, idn in WRONG.items() if owner != name):
        assert d.identity_problem(idn), idn


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_each_emulator_answers_as_its_driver_expects(name: str) -> None:
    emulator = make_emulator(name, name, FakeBench())
    (idn,) = emulator.process("*IDN?")
    assert driver(name).identity_problem(idn) is None, idn


def test_81150a_model_option_must_match_the_instrument() -> None:
    assert driver("keysight-81150a", model="81160A").identity_problem(
        "Agilent Technologies,81160A,DE1,1.0") is None
    problem = driver("keysight-81150a").identity_problem("Agilent Technologies,81160A,DE1,1.0")
    assert problem and "81150A" in problem


def test_scpi_clear_errors_drains_then_clears() -> None:
    d = driver("keysight-33500b", ((":SYST:ERR?", '-285,"Program syntax error"'),
                                   (":SYST:ERR?", '-113,"Undefined header"'),
                                   (":SYST:ERR?", '+0,"No error"'), ("*CLS;*OPC?", "1")))
    assert d.clear_errors() == [(-285, "Program syntax error"), (-113, "Undefined header")]
    d.transport.assert_complete()
    clean = driver("keysight-33500b", ((":SYST:ERR?", '+0,"No error"'),))
    assert clean.clear_errors() == []       # a clean queue costs one round trip
    clean.transport.assert_complete()


def test_tsp_clear_errors_reads_then_clears() -> None:
    d = driver("keithley-707b", (("print(errorqueue.count)", "2.00000e+00"),
                                 ("print(errorqueue.next())", "-285\tProgram syntax error"),
                                 ("print(errorqueue.next())", "1115\tParameter error"),
                                 ("errorqueue.clear() print(errorqueue.count)", "0.00000e+00")))
    assert d.clear_errors() == [(-285, "Program syntax error"), (1115, "Parameter error")]
    d.transport.assert_complete()
    clean = driver("keithley-2636b", (("print(errorqueue.count)", "0.00000e+00"),))
    assert clean.clear_errors() == []
    clean.transport.assert_complete()
