"""Driver names of station files -> driver classes, and the one factory that opens them.

``open_instrument("keithley-2636b", "TCPIP0::127.0.0.1::5025::SOCKET", {"channel": "a"})``
opens the transport (VISA or serial, by driver) and builds the driver on it.  Options
split in two: transport options (:data:`TRANSPORT_OPTIONS`) and driver options (the
driver constructor's keyword arguments).  Drivers are imported lazily: qcodes is heavy.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labctl.drivers.roles import Instrument
from labctl.drivers.transport import SerialTransport, TranscriptEntry, Transport, VisaTransport
from labctl.errors import ConfigError

#: driver name -> (module, class, link kind "visa" | "serial", role)
DRIVERS: dict[str, tuple[str, str, str, str]] = {
    "keithley-2450": ("labctl.drivers.keithley_2450", "Keithley2450", "visa", "smu"),
    "keithley-2636b": ("labctl.drivers.keithley_2636b", "Keithley2636B", "visa", "smu"),
    "keysight-b2902a": ("labctl.drivers.keysight_b2902a", "KeysightB2902A", "visa", "smu"),
    "keysight-33500b": ("labctl.drivers.keysight_33500b", "Keysight33500B", "visa", "pulse"),
    "keysight-81150a": ("labctl.drivers.keysight_81150a", "Keysight81150A", "visa", "pulse"),
    "keithley-707b": ("labctl.drivers.keithley_707b", "Keithley707B", "visa", "matrix"),
    "keysight-b2200": ("labctl.drivers.keysight_b2200", "KeysightB2200", "visa", "matrix"),
    "serial-relay": ("labctl.drivers.serial_relay", "SerialRelayMatrix", "serial", "matrix"),
}

#: options consumed by the transport, not the driver
TRANSPORT_OPTIONS = frozenset({"timeout_s", "visa_library", "baudrate"})


def driver_class(driver_name: str) -> type[Instrument]:
    """The driver class for a station-file driver name (ConfigError if unknown)."""
    try:
        module_name, class_name, _, _ = DRIVERS[driver_name]
    except KeyError:
        raise ConfigError(f"unknown instrument driver {driver_name!r}; known: "
                          f"{', '.join(sorted(DRIVERS))}", key="driver") from None
    cls: type[Instrument] = getattr(importlib.import_module(module_name), class_name)
    return cls


def driver_role(driver_name: str) -> str:
    """The role of a driver: "smu", "pulse" or "matrix"."""
    driver_class(driver_name)
    return DRIVERS[driver_name][3]


def open_transport(driver_name: str, resource: str, options: Mapping[str, Any], *,
                   transcript: list[TranscriptEntry] | None = None) -> Transport:
    """Open the link a driver needs: VISA for SCPI/TSP boxes, pyserial for the relay box.

    The relay box may also be named as a VISA serial resource (``ASRL...::INSTR``).
    """
    driver_class(driver_name)
    kind = DRIVERS[driver_name][2]
    opts = {k: v for k, v in options.items() if k in TRANSPORT_OPTIONS}
    if kind == "serial" and not resource.upper().startswith("ASRL"):
        opts.pop("visa_library", None)
        return SerialTransport(resource, transcript=transcript, **opts)
    opts.pop("baudrate", None)
    return VisaTransport(resource, transcript=transcript, **opts)


def build_driver(driver_name: str, transport: Transport, options: Mapping[str, Any]) -> Instrument:
    """Build a driver on an already open transport (driver options only are used)."""
    cls = driver_class(driver_name)
    opts = {k: v for k, v in options.items() if k not in TRANSPORT_OPTIONS}
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "transport"}
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ConfigError(f"{driver_name}: unknown option(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(sorted(allowed | TRANSPORT_OPTIONS))}", key=unknown[0])
    return cls(transport, **opts)  # type: ignore[call-arg]


def open_instrument(driver_name: str, resource: str, options: Mapping[str, Any] | None = None,
                    *, transcript: list[TranscriptEntry] | None = None,
                    replay: Iterable[Sequence[object]] | None = None) -> Instrument:
    """Open ``resource`` and return the driver named ``driver_name`` on it.

    ``transcript``: a list the transport appends every exchange to (record).
    ``replay``: a recorded transcript to answer from instead of opening ``resource``.
    The transport is closed again if the driver cannot be built.
    """
    options = dict(options or {})
    transport: Transport
    if replay is not None:
        from labctl.drivers.transcript import TranscriptTransport

        transport = TranscriptTransport(replay, name=resource, transcript=transcript)
    else:
        transport = open_transport(driver_name, resource, options, transcript=transcript)
    try:
        return build_driver(driver_name, transport, options)
    except BaseException:
        transport.close()
        raise
