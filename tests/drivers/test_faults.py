"""Injected link faults at the driver level: each surfaces as InstrumentError/Timeout, and the
driver's safe() still leaves the instrument off (it reopens the link once if needed)."""

from __future__ import annotations

import time

import pytest

from labctl.errors import InstrumentError, InstrumentTimeout


def _eventually(predicate, timeout_s: float = 3.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


#: the link timeout the faults are injected under; set up with a generous one, so a loaded
#: machine (two cores, other tests) cannot time out the setup itself
SHORT_S = 0.3


@pytest.fixture(params=[("keithley-2450", {}), ("keithley-2636b", {})], ids=["scpi", "tsp"])
def smu(request, served):
    name, options = request.param
    driver, server = served.start(name, options, timeout_s=2.0)
    driver.configure(compliance_A=1e-4)
    driver.output(True)
    assert not server.emulator.is_safe()
    driver.transport.timeout_s = SHORT_S
    return driver, server


def test_dropped_connection(smu) -> None:
    driver, server = smu
    server.inject_fault("drop")
    with pytest.raises(InstrumentError) as err:
        driver.measure_current(0.2)
    assert not isinstance(err.value, InstrumentTimeout) or "no answer" in str(err.value)
    driver.safe()  # reconnects once and switches the output off
    assert _eventually(server.emulator.is_safe)
    assert server.connections == 2


def test_stall_past_the_timeout(smu) -> None:
    driver, server = smu
    server.inject_fault("stall", seconds=4.0)
    t0 = time.monotonic()
    with pytest.raises(InstrumentTimeout):
        driver.measure_current(0.2)
    # the driver gave up, it did not wait it out (0.6 s here, ~1.1 s on a starved machine)
    assert time.monotonic() - t0 < 2.5
    driver.safe()
    assert _eventually(server.emulator.is_safe, timeout_s=10.0)


def test_garbage_answer(smu) -> None:
    driver, server = smu
    server.inject_fault("garbage")
    with pytest.raises(InstrumentError, match="undecodable|unparseable"):
        driver.measure_current(0.2)
    driver.safe()
    assert _eventually(server.emulator.is_safe)


def test_error_pushed_mid_run_surfaces_with_code_and_text(smu) -> None:
    driver, server = smu
    driver.measure_current(0.2)
    server.inject_fault("error", after=1, code=-314, text="Save/recall memory lost")
    driver.measure_current(0.2)
    with pytest.raises(InstrumentError) as err:
        driver.measure_current(0.2)
    assert (err.value.code, err.value.text) == (-314, "Save/recall memory lost")


def test_dead_instrument_safe_returns_without_raising(smu) -> None:
    driver, server = smu
    server.inject_fault("drop", persistent=True)
    with pytest.raises(InstrumentError):
        driver.measure_current(0.2)
    t0 = time.monotonic()
    assert driver.shutdown_error is None
    driver.safe()
    assert time.monotonic() - t0 < 3.0   # a reconnect and ~2 short timeouts, not a hang
    assert not server.emulator.is_safe()  # nobody could reach it: the bench must report this
    assert driver.shutdown_error and "not confirmed" in driver.shutdown_error


def test_an_unconfirmed_shutdown_is_one_warning_per_run(caplog) -> None:
    """A bench whose links all died: the shutdown (run on the error and again on close)
    says once, in one line, which roles could not be confirmed safe."""
    import logging

    from labctl.drivers.hardware_array import HardwareArray

    class Dead:
        shutdown_error: str | None = None

        def safe(self) -> None:
            self.shutdown_error = "':OUTP1 OFF' not confirmed: Connection refused"

    array = HardwareArray.__new__(HardwareArray)
    array.instruments = {r: Dead() for r in ("smu", "gate", "pulse", "pulse_reset", "matrix")}
    array._unreachable, array._unconfirmed = set(), set()
    with caplog.at_level(logging.DEBUG):
        array._safe_all()
        array._safe_all()
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, warned
    assert "pulse, pulse_reset, smu, gate, matrix did not confirm" in warned[0]
    assert "check them by hand" in warned[0]


def test_serial_relay_faults(served) -> None:
    relay, server = served.start("serial-relay", timeout_s=2.0)
    relay.connect([(1, 1)])
    relay.transport.timeout_s = SHORT_S
    server.inject_fault("garbage")
    with pytest.raises(InstrumentError, match="undecodable"):
        relay.closed()
    server.inject_fault("stall", seconds=1.0)
    with pytest.raises(InstrumentTimeout):
        relay.connect([(2, 2)])
    relay.safe()
    assert _eventually(server.emulator.is_safe)


def test_instrument_run_sweeps_get_the_time_they_need(smu) -> None:
    """A sweep that takes longer than the link timeout (here: a 0.8 s stall standing in for
    200 points at 1 NPLC) is waited for; the timeout is restored afterwards."""
    driver, server = smu
    driver.configure(compliance_A=1e-4, nplc=1.0)
    server.inject_fault("stall", seconds=0.8)
    assert driver.sweep([0.1] * 200).shape == (200,)
    assert driver.transport.timeout_s == SHORT_S


def test_a_visa_library_failing_to_open_is_an_instrument_fault(monkeypatch) -> None:
    """pyvisa-py raises a bare Exception for a host name that does not resolve, and a
    multi-line text for a GPIB resource without linux-gpib: both are the link's fault, and
    the CLI folds the text into its one line."""
    import pyvisa

    from labctl.cli import _fail
    from labctl.drivers.transport import VisaTransport

    class NoLink:
        def __init__(self, *a, **k) -> None:
            pass

        def open_resource(self, *a, **k):
            raise Exception("could not connect: [Errno -2] Name or service not known\n"
                            "No module named 'gpib'")

    monkeypatch.setattr(pyvisa, "ResourceManager", NoLink)
    with pytest.raises(InstrumentError, match="cannot open .*could not connect") as exc:
        VisaTransport("TCPIP0::nowhere.invalid::5025::SOCKET")

    class Args:
        json = False

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert _fail(Args(), 3, f"instrument fault: {exc.value}") == 3
    assert err.getvalue().count("\n") == 1 and "gpib" in err.getvalue()
