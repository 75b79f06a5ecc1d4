"""Loopback emulators of the bench instruments, each speaking its real command set.

``make_emulator("keithley-2636b", "smu", bench)`` builds the emulator for a station
driver name; ``EmulatorServer(emulator).start()`` serves it on 127.0.0.1.  The bench
(:mod:`.bench_api`) is the chip behind the emulated matrix.
"""

from __future__ import annotations

import importlib
from typing import Any

from labctl.sim_backend.emulator.base import InstrumentEmulator
from labctl.sim_backend.emulator.bench_api import Bench

#: station driver name -> (module, class); the same names as labctl.drivers.registry
EMULATORS: dict[str, tuple[str, str]] = {
    "keithley-2450": ("keithley_2450", "Keithley2450Emulator"),
    "keithley-2636b": ("keithley_2636b", "Keithley2636BEmulator"),
    "keysight-b2902a": ("keysight_b2902a", "KeysightB2902AEmulator"),
    "keysight-33500b": ("keysight_33500b", "Keysight33500BEmulator"),
    "keysight-81150a": ("keysight_81150a", "Keysight81150AEmulator"),
    "keithley-707b": ("keithley_707b", "Keithley707BEmulator"),
    "keysight-b2200": ("keysight_b2200", "KeysightB2200Emulator"),
    "serial-relay": ("serial_relay", "SerialRelayEmulator"),
}

#: emulator constructor options taken from a station's driver options (same meaning)
EMULATOR_OPTIONS: dict[str, tuple[str, ...]] = {
    "keysight-81150a": ("model",),
    "keithley-707b": ("rows", "columns", "slots", "first_slot"),
    "keysight-b2200": ("card", "inputs", "outputs"),
    "serial-relay": ("rows", "columns"),
}


def emulator_class(driver_name: str) -> type[InstrumentEmulator]:
    try:
        module, name = EMULATORS[driver_name]
    except KeyError:
        raise KeyError(f"no emulator for driver {driver_name!r}") from None
    cls: type[InstrumentEmulator] = getattr(
        importlib.import_module(f"labctl.sim_backend.emulator.{module}"), name)
    return cls


def make_emulator(driver_name: str, instrument_id: str, bench: Bench,
                  options: dict[str, Any] | None = None) -> InstrumentEmulator:
    """The emulator for ``driver_name``; geometry options shared with the driver are honoured."""
    wanted = EMULATOR_OPTIONS.get(driver_name, ())
    opts = {k: v for k, v in (options or {}).items() if k in wanted}
    return emulator_class(driver_name)(instrument_id, bench, **opts)  # type: ignore[call-arg]
