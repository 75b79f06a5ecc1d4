"""Fixtures for the driver tests: emulators served on loopback TCP with a fake bench."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_bench import FakeBench  # noqa: E402

from labctl.drivers.registry import open_instrument  # noqa: E402
from labctl.sim_backend.emulator import make_emulator  # noqa: E402
from labctl.sim_backend.emulator.server import EmulatorServer  # noqa: E402


class Served:
    """Emulators served for one test; closed (drivers first, then servers) afterwards."""

    def __init__(self, bench: FakeBench) -> None:
        self.bench = bench
        self.servers: list[EmulatorServer] = []
        self.drivers: list[Any] = []

    def start(self, driver_name: str, options: dict[str, Any] | None = None, *,
              instrument_id: str | None = None, timeout_s: float = 1.0) -> tuple[Any, Any]:
        """(driver, server) for ``driver_name`` on a fresh emulator."""
        options = dict(options or {})
        emulator = make_emulator(driver_name, instrument_id or driver_name, self.bench, options)
        server = EmulatorServer(emulator)
        server.start()
        self.servers.append(server)
        resource = server.serial_url if driver_name == "serial-relay" else server.resource
        driver = open_instrument(driver_name, resource, {"timeout_s": timeout_s, **options})
        self.drivers.append(driver)
        return driver, server

    def close(self) -> None:
        for driver in self.drivers:
            driver.transport.close()
        for server in self.servers:
            server.stop()


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def served(bench: FakeBench) -> Iterator[Served]:
    s = Served(bench)
    yield s
    s.close()
