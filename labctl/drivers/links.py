"""The links of a station: one transport per instrument resource, recorded or replayed.

Two roles on one box (a 2636B's ``smua`` and ``smub``, a 33500B's two channels) share
one transport, as they share one socket on a real bench.  Recording keeps every
command/response per resource (the run file's ``transcript/*`` datasets); replaying
answers from such a recording through :class:`~labctl.drivers.transcript.TranscriptTransport`.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from labctl.drivers.bench_open import instrument_names, link_fault
from labctl.drivers.roles import Instrument
from labctl.drivers.station import Station, load_station, parse_station
from labctl.errors import ConfigError, InstrumentError

log = logging.getLogger(__name__)


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def station_from_description(backend: dict[str, Any]) -> Station:
    """The station of a run file's backend description (its stored text, else its path)."""
    text = backend.get("station_toml")
    path = Path(str(backend.get("station", "station.toml")))
    if text:
        return parse_station(tomllib.loads(text), path, text=text)
    if backend.get("station"):
        return load_station(path)
    raise ConfigError("the run file was not recorded on a station", key="backend")


class Links:
    """One transport per instrument resource (two roles on one box share it), optionally
    recording a transcript per resource or replaying one."""

    def __init__(self, transports: dict[str, Any], recorded: dict[str, list[Any]]) -> None:
        self.transports = transports
        self.recorded = recorded

    @classmethod
    def open(cls, station: Station, *, record: bool = False,
             replay: dict[str, list[tuple[float, str, str]]] | None = None) -> Links:
        from labctl.drivers.registry import open_transport
        from labctl.drivers.transcript import TranscriptTransport

        transports: dict[str, Any] = {}
        recorded: dict[str, list[Any]] = {}
        try:
            for spec in station.instruments.values():
                if spec.resource in transports:
                    continue
                log_ = recorded.setdefault(spec.resource, []) if record else None
                if replay is not None:
                    transports[spec.resource] = TranscriptTransport(
                        replay.get(spec.resource, []), name=spec.resource)
                else:
                    opts = {"timeout_s": station.timing.timeout_s, **spec.options}
                    try:
                        transports[spec.resource] = open_transport(
                            spec.driver, spec.resource, opts, transcript=log_)
                    except InstrumentError as exc:  # name the role, not only the address
                        raise link_fault(spec, exc, "the connection") from exc
        except BaseException:
            cls(transports, recorded).close()
            raise
        for res, label in instrument_names(station).items():   # errors name the role too
            transports[res].label = label
        return cls(transports, recorded)

    @staticmethod
    def entries(transcript: dict[str, Any]) -> dict[str, list[tuple[float, str, str]]]:
        """Run-file transcript columns -> entries per resource, in recorded order."""
        out: dict[str, list[tuple[float, str, str]]] = {}
        for res, t, d, x in zip(transcript["resource"], transcript["time_s"],
                                transcript["direction"], transcript["text"], strict=True):
            out.setdefault(_s(res), []).append((float(t), _s(d), _s(x)))
        return out

    def drivers(self, station: Station) -> dict[str, Instrument]:
        from labctl.drivers.registry import build_driver

        return {role: build_driver(spec.driver, self.transports[spec.resource], spec.options)
                for role, spec in station.instruments.items()}

    def close(self) -> None:
        for t in self.transports.values():
            try:
                t.close()
            except Exception as e:  # noqa: BLE001 - closing a dead link must not raise
                log.warning("closing %s failed: %s", getattr(t, "name", t), e)
