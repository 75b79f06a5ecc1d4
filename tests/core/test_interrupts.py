"""interrupts_deferred holds Ctrl-C and SIGTERM until its block ends, then raises them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from labctl.interrupts import interrupts_deferred


def _raise_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")   # what the CLI installs (labctl.cli._sigterm)


@pytest.fixture
def cli_sigterm() -> Iterator[None]:
    old = signal.signal(signal.SIGTERM, _raise_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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
