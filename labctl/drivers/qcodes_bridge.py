"""Lets qcodes' own drivers run over a labctl transport (counted, logged, transcribed).

qcodes' ``VisaInstrument(name, resource=...)`` accepts an already open pyvisa resource;
:class:`QcodesResource` is the small part of ``MessageBasedResource`` it uses, delegating
to a :class:`~labctl.drivers.transport.Transport`.
"""

from __future__ import annotations

from typing import Any

from labctl.drivers.transport import Transport


class _VisaLib:
    """Enough of a pyvisa VisaLibrary for qcodes' snapshot and backend probing."""

    library_path = "labctl-transport"
    resource_manager = None


class QcodesResource:
    """Duck-typed ``pyvisa.resources.MessageBasedResource`` over a labctl Transport."""

    visalib = _VisaLib()
    #: qcodes' finalizer closes handles whose ``session`` is set; the link is ours to close
    session = None

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.read_termination = "\n"
        self.write_termination = "\n"

    @property
    def resource_name(self) -> str:
        return self._transport.name

    @property
    def timeout(self) -> float:
        return self._transport.timeout_s * 1000.0

    @timeout.setter
    def timeout(self, value_ms: float | None) -> None:
        if value_ms is not None and value_ms != float("inf"):
            self._transport.timeout_s = float(value_ms) / 1000.0

    def write(self, command: str) -> int:
        self._transport.write(command)
        return len(command)

    def read(self) -> str:
        return self._transport.read()

    def query(self, command: str, delay: float | None = None) -> str:
        return self._transport.query(command)

    def clear(self) -> None:
        """Device clear: nothing to do on a line-framed socket."""

    def flush(self, *args: Any) -> None:
        """Nothing buffered on our side."""

    def close(self) -> None:
        """The labctl driver owns the link; qcodes closing its handle leaves it open."""


def qcodes_instrument(module: str, class_name: str, name: str, transport: Transport) -> Any:
    """Build ``qcodes.instrument_drivers.<module>.<class_name>`` on ``transport``."""
    import importlib

    cls = getattr(importlib.import_module(f"qcodes.instrument_drivers.{module}"), class_name)
    return cls(name, None, resource=QcodesResource(transport))
