"""interrupts_deferred holds Ctrl-C and SIGTERM until its block ends, then raises them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from labctl.interrupts import interrupts_deferred


def _raise_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")   # what the CLI installs for SIGTERM (labctl.cli._interrupt)


@pytest.fixture
def cli_sigterm() -> Iterator[None]:
    """The CLI's handlers: SIGTERM raises, SIGINT is Python's (set here too: a test run
    started as a background job inherits SIGINT ignored)."""
    old = signal.signal(signal.SIGTERM, _raise_sigterm)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


def _pause() -> None:
    """Long enough, and with enough bytecode, for a pending handler to run."""
    for _ in range(10_000):
        pass
    time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_held_until_the_block_ends_then_raised(cli_sigterm: None, sig: int) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), sig)
        _pause()
        done.append("first half")
        _pause()
        done.append("second half")
    assert done == ["first half", "second half"]
    assert signal.getsignal(signal.SIGTERM) is _raise_sigterm
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_sigterm_handler_runs_once_after_the_block(cli_sigterm: None) -> None:
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        _pause()
    _pause()   # nothing more pending


def test_nested_blocks_hold_until_the_outer_one_ends(cli_sigterm: None) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            _pause()
        done.append("after the inner block")
        _pause()
    assert done == ["after the inner block"]


def test_a_block_without_signal_changes_nothing(cli_sigterm: None) -> None:
    with interrupts_deferred():
        _pause()
    assert signal.getsignal(signal.SIGTERM) is _raise_sigterm


def test_safe_off_tells_every_instrument_before_an_interrupt_is_raised(cli_sigterm: None) -> None:
    """A SIGTERM while the outputs are being turned off (a second one, while the first is
    handled) must not leave the instruments after the one being told with outputs on."""
    from labctl.drivers.hardware_array import HardwareArray

    told: list[str] = []

    class Instrument:
        def __init__(self, role: str) -> None:
            self.role = role

        def safe(self) -> None:
            told.append(self.role)
            if self.role == "pulse":
                os.kill(os.getpid(), signal.SIGTERM)
                _pause()

    bench = HardwareArray.__new__(HardwareArray)   # the instruments only: no station needed
    bench.instruments = {r: Instrument(r) for r in ("pulse", "pulse_reset", "smu", "gate",
                                                    "matrix")}
    bench._unreachable, bench._unconfirmed = set(), set()
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        bench.safe()
    assert told == ["pulse", "pulse_reset", "smu", "gate", "matrix"]


def test_a_ctrl_c_after_the_command_finished_leaves_its_exit_status(tmp_path) -> None:
    """The labctl process's entry point: a Ctrl-C that lands after the run is complete and
    the bench safe is ignored, not turned into death by SIGINT with nothing printed."""
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from labctl.cli import main\n"
            f"sys.argv = ['labctl', 'run', 'forming', '--rows', '2', '--cols', '2', '--quiet',"
            f" '--out', {str(tmp_path / 'f.h5')!r}]\n"
            "rc = main()\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "for _ in range(100000): pass\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
