"""Connection-level behaviour of every driver against pyvisa-sim (``@sim``) YAML instruments.

No physics here: each YAML answers identity, one batched message of the driver and the
error queue.  What is checked is the link: the resource opens with ``\\n`` terminations
both ways, the identity comes back, an unknown command lands in the instrument's error
queue in its own format, a query without an answer becomes InstrumentTimeout -- which
the driver then explains from the error queue -- and a wrong termination never matches.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.drivers.registry import open_instrument
from labctl.drivers.transport import VisaTransport
from labctl.errors import InstrumentError, InstrumentTimeout

SIM = Path(__file__).parent / "sim_yaml"
FAST = {"timeout_s": 0.05}

# driver name, yaml, resource, identity prefix, expected queued error for an unknown command
CASES = [
    ("keithley-2450", "keithley_2450.yaml", "TCPIP0::sim-2450::5025::SOCKET",
     "KEITHLEY INSTRUMENTS,MODEL 2450", (-113, "Undefined header")),
    ("keithley-2636b", "keithley_2636b.yaml", "TCPIP0::sim-2636b::5025::SOCKET",
     "Keithley Instruments Inc., Model 2636B",
     (-286, "TSP Runtime error: attempt to call a nil value")),
    ("keysight-b2902a", "keysight_b2902a.yaml", "TCPIP0::sim-b2902a::5025::SOCKET",
     "Keysight Technologies,B2902A", (-113, "Undefined header")),
    ("keysight-33500b", "keysight_33500b.yaml", "TCPIP0::sim-33500b::5025::SOCKET",
     "Keysight Technologies,33522B", (-113, "Undefined header")),
    ("keysight-81150a", "keysight_81150a.yaml", "TCPIP0::sim-81150a::5025::SOCKET",
     "Agilent Technologies,81150A", (-113, "Undefined header")),
    ("keithley-707b", "keithley_707b.yaml", "TCPIP0::sim-707b::5025::SOCKET",
     "Keithley Instruments Inc., Model 707B", (1115, "Parameter error: invalid channel list")),
    ("keysight-b2200", "keysight_b2200.yaml", "TCPIP0::sim-b2200::5025::SOCKET",
     "Agilent Technologies,B2200A", (-113, "Undefined header")),
    ("serial-relay", "serial_relay.yaml", "ASRL1::INSTR",
     "LABCTL,RELAY-MATRIX,8x8", (1, "Unknown command")),
]


@pytest.fixture
def sim(tmp_path: Path):
    """``yaml`` -> a pyvisa-sim library spec on a fresh copy (pyvisa caches one per path)."""
    def library(yaml: str) -> str:
        copy = tmp_path / yaml
        copy.write_text((SIM / yaml).read_text())
        return f"{copy}@sim"
    return library


@pytest.fixture
def open_sim(sim):
    def _open(name: str, yaml: str, resource: str, **options):
        return open_instrument(name, resource, {**FAST, "visa_library": sim(yaml), **options})
    return _open


@pytest.mark.parametrize("name, yaml, resource, idn, error", CASES, ids=[c[0] for c in CASES])
def test_identity_clean_queue_and_unknown_command(open_sim, name, yaml, resource, idn,
                                                  error) -> None:
    driver = open_sim(name, yaml, resource)
    assert driver.identify().startswith(idn)
    assert driver.errors() == []
    if name == "serial-relay":  # the relay box answers every line, errors included
        assert driver.transport.query("FROBNICATE 1") == "ERR 1"
    else:
        driver.transport.write("FROBNICATE 1")
    assert driver.errors() == [error]
    assert driver.round_trips == 5


@pytest.mark.parametrize("name, yaml, resource", [
    ("keithley-2450", "keithley_2450.yaml", "TCPIP0::sim-2450::5025::SOCKET"),
    ("keysight-b2902a", "keysight_b2902a.yaml", "TCPIP0::sim-b2902a::5025::SOCKET"),
    ("keithley-2636b", "keithley_2636b.yaml", "TCPIP0::sim-2636b::5025::SOCKET"),
])
def test_a_batched_configure_is_one_round_trip(open_sim, name, yaml, resource) -> None:
    smu = open_sim(name, yaml, resource)
    smu.configure(compliance_A=1e-4)
    assert smu.round_trips == 1


def test_matrix_and_generator_messages_over_sim(open_sim) -> None:
    assert open_sim("keithley-707b", "keithley_707b.yaml",
                 "TCPIP0::sim-707b::5025::SOCKET").closed() == [(1, 1), (2, 3)]
    assert open_sim("keysight-b2200", "keysight_b2200.yaml",
                 "TCPIP0::sim-b2200::5025::SOCKET").closed() == [(1, 1), (14, 12)]
    relay = open_sim("serial-relay", "serial_relay.yaml", "ASRL1::INSTR")
    assert relay.closed() == [(1, 3), (2, 5)]
    gen = open_sim("keysight-33500b", "keysight_33500b.yaml", "TCPIP0::sim-33500b::5025::SOCKET")
    gen.safe()
    assert gen.round_trips == 1


def test_unanswered_query_times_out_and_is_explained_from_the_error_queue(open_sim) -> None:
    smu = open_sim("keithley-2450", "keithley_2450.yaml", "TCPIP0::sim-2450::5025::SOCKET")
    with pytest.raises(InstrumentError) as err:
        smu._ask(":SOUR:BOGUS?")
    assert (err.value.code, err.value.text) == (-113, "Undefined header")
    assert isinstance(err.value.__cause__, InstrumentTimeout)


def test_bare_timeout_maps_to_instrument_timeout(sim) -> None:
    link = VisaTransport("TCPIP0::sim-2450::5025::SOCKET", timeout_s=0.05,
                         visa_library=sim("keithley_2450.yaml"))
    with pytest.raises(InstrumentTimeout):
        link.query("NOT:A:DIALOGUE?")


def test_wrong_write_termination_never_matches(sim) -> None:
    link = VisaTransport("TCPIP0::sim-2450::5025::SOCKET", timeout_s=0.05,
                         visa_library=sim("keithley_2450.yaml"),
                         write_termination="\r")
    with pytest.raises(InstrumentTimeout):
        link.query("*IDN?")
