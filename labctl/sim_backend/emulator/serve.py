"""Serve an emulated bench: one loopback server per instrument resource of a station file.

Used by ``labctl emulate`` and the bench tests; see :func:`start_bench`.
"""

from __future__ import annotations

import errno
import functools
import re
from dataclasses import dataclass
from typing import Any

from labctl.drivers.station import Station
from labctl.errors import ConfigError
from labctl.sim_backend.emulator.bench import EmulatedBench


@dataclass
class RunningBench:
    """An emulated bench serving every instrument of a station on loopback TCP."""

    bench: EmulatedBench
    servers: dict[str, Any]     # station resource -> EmulatorServer
    emulators: dict[str, Any]   # station resource -> InstrumentEmulator

    @property
    def resources(self) -> dict[str, str]:
        """Station role -> the resource string the instrument now answers on."""
        return {role: self.resource_of(spec.resource)
                for role, spec in self.bench.station.instruments.items()}

    def resource_of(self, station_resource: str) -> str:
        server = self.servers[station_resource]
        return server.serial_url if station_resource.lower().startswith("socket://") \
            else server.resource

    def server(self, role: str) -> Any:
        """The server of a station role (to inject faults)."""
        return self.servers[self.bench.station.instruments[role].resource]

    def emulator(self, role: str) -> Any:
        return self.emulators[self.bench.station.instruments[role].resource]

    def station_text(self) -> str:
        """The station file with every resource replaced by the port it is served on."""
        text = self.bench.station.text
        for res in self.servers:
            text = text.replace(f'"{res}"', f'"{self.resource_of(res)}"')
        return text

    def all_safe(self) -> bool:
        """Every instrument unable to drive the chip: outputs off, relays open."""
        return all(e.is_safe() for e in self.emulators.values())

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> RunningBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_bench(station: Station, *, ephemeral: bool = False,
                bench: EmulatedBench | None = None) -> RunningBench:
    """Start one emulator server per instrument resource of ``station``.

    Servers bind the ports the station's resources name (``TCPIP0::host::port::SOCKET``
    or ``socket://host:port``), or free ephemeral ports with ``ephemeral`` (then use
    :meth:`RunningBench.station_text`).  The SMU's digio trigger lines are wired to the
    generator channels of ``pulse`` (set line) and ``pulse_reset`` (reset line).
    """
    from labctl.sim_backend.emulator.server import EmulatorServer

    bench = bench or EmulatedBench.from_station(station)
    servers: dict[str, Any] = {}
    emulators: dict[str, Any] = {}
    running = RunningBench(bench, servers, emulators)
    try:
        for spec in station.instruments.values():
            if spec.resource in servers:
                continue
            host, port = _address(spec.resource)
            if port is None and not ephemeral:
                raise ConfigError(f"cannot emulate {spec.role} at {spec.resource}: give a "
                                  "TCPIP0::127.0.0.1::<port>::SOCKET or socket://127.0.0.1:<port> "
                                  "resource", key=f"instruments.{spec.role}.resource")
            emu = emulator_for(spec, bench)
            server = EmulatorServer(emu, host=host, port=0 if ephemeral else int(port or 0))
            try:
                server.start()
            except OSError as e:
                hint = ("" if ephemeral or e.errno != errno.EADDRINUSE else
                        " (another emulator or program has it: --ephemeral --station-out "
                        "FILE.toml binds free ports and writes them to FILE.toml)")
                raise ConfigError(f"cannot listen on {host}:{port} for {spec.role}: {e}{hint}",
                                  key=f"instruments.{spec.role}.resource") from None
            servers[spec.resource], emulators[spec.resource] = server, emu
        _wire_triggers(station, running)
    except BaseException:
        running.stop()
        raise
    return running


def _address(resource: str) -> tuple[str, int | None]:
    m = re.match(r"^TCPIP\d*::([^:]+)::(\d+)::SOCKET$", resource, re.IGNORECASE) or \
        re.match(r"^socket://([^:/]+):(\d+)$", resource, re.IGNORECASE)
    return (m.group(1), int(m.group(2))) if m else ("127.0.0.1", None)


def _wire_triggers(station: Station, running: RunningBench) -> None:
    w = station.wiring
    for line, role in ((w.set_line, "pulse"), (w.reset_line, "pulse_reset")):
        if line is None or role not in station.instruments:
            continue
        emu = running.emulator(role)
        channel = int(station.instruments[role].options.get("channel", 1))
        running.bench.on_trigger(line, functools.partial(emu.external_trigger, channel))


def emulator_for(spec: Any, bench: EmulatedBench) -> Any:
    """The instrument emulator for a station instrument (by driver name, with the geometry
    options it shares with the driver); its instrument id is the station resource."""
    from labctl.sim_backend.emulator import make_emulator

    try:
        return make_emulator(spec.driver, spec.resource, bench, spec.options)
    except KeyError:
        raise ConfigError(f"no emulator for driver {spec.driver!r}",
                          key=f"instruments.{spec.role}.driver") from None
