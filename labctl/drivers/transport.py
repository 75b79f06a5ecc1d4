"""The injected connection every driver talks through: VISA (pyvisa) or serial (pyserial).

A transport counts round trips, logs every command at DEBUG and, when given a list,
records a transcript of ``(timestamp_s, direction, text)`` entries -- direction ``"w"``
for what was written, ``"r"`` for what was read -- that a run file can store and
:class:`labctl.drivers.transcript.TranscriptTransport` can replay.  Link faults become
:class:`InstrumentTimeout` (no answer in time) or :class:`InstrumentError` (anything else).
"""

from __future__ import annotations

import logging
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from labctl.errors import InstrumentError, InstrumentTimeout

log = logging.getLogger(__name__)

#: One transcript entry: POSIX time (s), "w" (written) or "r" (read), text.
TranscriptEntry = tuple[float, str, str]


#: one clock for every transport of the process, so that the transcripts of several
#: instruments merge into the order in which their messages really went out: the wall
#: clock (POSIX seconds, as a station's ``now()``) read once, advanced by the monotonic
#: performance counter, so it never steps back within a process
CLOCK_ORIGIN_S = time.perf_counter()
CLOCK_ORIGIN_WALL_S = time.time()


def transcript_time() -> float:
    """The time stamp of a transcript entry made now (POSIX seconds, see above)."""
    return CLOCK_ORIGIN_WALL_S + (time.perf_counter() - CLOCK_ORIGIN_S)


class Transport(ABC):
    """A line-oriented, synchronous connection to one instrument.

    ``write`` and ``query`` each count one round trip; ``read`` (a further line of an
    answer already asked for, e.g. a TSP script printing several lines) counts none.
    """

    def __init__(self, name: str, *, transcript: list[TranscriptEntry] | None = None) -> None:
        self.name = name     # the resource (address): opens the link, keys its transcript
        #: how errors name the instrument; a station's links say its role and driver too
        #: (``smu (keithley-2636b at TCPIP0::...)``, set by ``Links.open``)
        self.label = name
        self._timeout_s = 2.0
        self.round_trips = 0
        self.transcript = transcript

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _send(self, text: str) -> None:
        """Send one message (the termination is added by the link)."""

    @abstractmethod
    def _receive(self) -> str:
        """Receive one message without its termination."""

    @abstractmethod
    def close(self) -> None: ...

    def reconnect(self) -> None:
        """Drop and reopen the link (used by safety code after a stall or a dropped link)."""
        return None

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self._timeout_s = float(value)

    @contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Raise the timeout to at least ``seconds`` for a long instrument-side operation."""
        old = self.timeout_s
        if seconds > old:
            self.timeout_s = seconds
        try:
            yield
        finally:
            if seconds > old:
                self.timeout_s = old

    # -- the public, counted, logged API ----------------------------------------------
    def write(self, command: str) -> None:
        self.round_trips += 1
        self._record("w", command)
        self._send(command)

    def query(self, command: str) -> str:
        self.round_trips += 1
        self._record("w", command)
        self._send(command)
        return self.read()

    def read(self) -> str:
        reply = self._receive()
        self._record("r", reply)
        return reply

    def _record(self, direction: str, text: str) -> None:
        log.debug("%s %s %r", self.name, ">>" if direction == "w" else "<<", text)
        if self.transcript is not None:
            self.transcript.append((transcript_time(), direction, text))

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VisaTransport(Transport):
    """A pyvisa message-based resource, opened with ``\\n`` terminations both ways.

    ``visa_library`` is pyvisa's backend spec: ``"@py"`` (pyvisa-py, the default),
    ``"path/to/file.yaml@sim"`` (pyvisa-sim) or ``""`` for the system VISA.
    """

    def __init__(self, resource_name: str, *, timeout_s: float = 2.0, visa_library: str = "@py",
                 read_termination: str = "\n", write_termination: str = "\n",
                 transcript: list[TranscriptEntry] | None = None) -> None:
        super().__init__(resource_name, transcript=transcript)
        self._timeout_s = float(timeout_s)
        self._library = visa_library
        self._terms = (read_termination, write_termination)
        self._resource: Any = None
        self._open()

    def _open(self) -> None:
        import pyvisa

        try:
            rm = pyvisa.ResourceManager(self._library)
            self._resource = rm.open_resource(
                self.name, read_termination=self._terms[0], write_termination=self._terms[1],
                timeout=self._timeout_s * 1000.0)
        except Exception as exc:  # noqa: BLE001 - pyvisa-py raises bare Exception ("could
            # not connect: ... Name or service not known"): any failure to open is the link's
            raise InstrumentError(f"cannot open {self.label}: {exc}", instrument=self.name,
                                  text=str(exc)) from exc

    @property
    def resource(self) -> Any:
        """The underlying pyvisa resource (for tools that need it, e.g. qcodes)."""
        return self._resource

    @Transport.timeout_s.setter  # type: ignore[attr-defined,misc]
    def timeout_s(self, value: float) -> None:
        self._timeout_s = float(value)
        if self._resource is not None:
            self._resource.timeout = self._timeout_s * 1000.0

    def _send(self, text: str) -> None:
        self._guard(lambda: self._resource.write(text), "write")

    def _receive(self) -> str:
        return str(self._guard(self._resource.read, "read"))

    def _guard(self, call: Any, what: str) -> Any:
        import pyvisa

        if self._resource is None:
            raise InstrumentError(f"{self.label}: connection is closed", instrument=self.name)
        try:
            return call()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                if self._peer_closed():
                    raise InstrumentError(
                        f"{self.label}: the instrument closed the connection ({what})",
                        instrument=self.name, text="closed") from exc
                raise InstrumentTimeout(
                    f"{self.label}: no answer within {self._timeout_s:g} s ({what})",
                    instrument=self.name, text="timeout") from exc
            raise InstrumentError(f"{self.label}: {what} failed: {exc.description}",
                                  instrument=self.name, text=str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise InstrumentError(f"{self.label}: undecodable reply ({exc.reason})",
                                  instrument=self.name, text="garbage") from exc
        except (OSError, pyvisa.Error) as exc:
            raise InstrumentError(f"{self.label}: {what} failed: {exc}", instrument=self.name,
                                  text=str(exc)) from exc

    def _peer_closed(self) -> bool:
        """Whether the far end of a raw TCP socket session has closed the connection.

        pyvisa-py reports a read on such a socket as a timeout (its select sees no data);
        a peek that returns end-of-file tells a dropped link from a slow instrument.  Other
        sessions (VXI-11, GPIB, pyvisa-sim) are never called closed here.
        """
        try:
            session = self._resource.visalib.sessions[self._resource.session]
            sock = getattr(session, "interface", None)
            if not isinstance(sock, socket.socket):
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False        # open, nothing to read yet: a real timeout
        except (ConnectionResetError, BrokenPipeError):
            return True
        except Exception:  # noqa: BLE001 -- a diagnostic only: keep the timeout
            return False

    def close(self) -> None:
        if self._resource is not None:
            try:
                self._resource.close()
            except Exception:  # noqa: BLE001 -- closing a dead link must not raise
                log.debug("%s: close failed", self.label, exc_info=True)
            self._resource = None

    def reconnect(self) -> None:
        self.close()
        self._open()


class SerialTransport(Transport):
    """A pyserial port (or pyserial URL such as ``socket://127.0.0.1:5025``), ``\\n`` framed."""

    def __init__(self, port: str, *, baudrate: int = 115200, timeout_s: float = 2.0,
                 transcript: list[TranscriptEntry] | None = None) -> None:
        super().__init__(port, transcript=transcript)
        self._timeout_s = float(timeout_s)
        self._baudrate = int(baudrate)
        self._port: Any = None
        self._open()

    def _open(self) -> None:
        import serial

        try:
            self._port = serial.serial_for_url(self.name, baudrate=self._baudrate,
                                               timeout=self._timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentError(f"cannot open {self.label}: {exc}", instrument=self.name,
                                  text=str(exc)) from exc

    @Transport.timeout_s.setter  # type: ignore[attr-defined,misc]
    def timeout_s(self, value: float) -> None:
        self._timeout_s = float(value)
        if self._port is not None:
            self._port.timeout = self._timeout_s

    def _send(self, text: str) -> None:
        import serial

        if self._port is None:
            raise InstrumentError(f"{self.label}: connection is closed", instrument=self.name)
        try:
            self._port.write((text + "\n").encode("ascii"))
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(f"{self.label}: write failed: {exc}", instrument=self.name,
                                  text=str(exc)) from exc

    def _receive(self) -> str:
        import serial

        if self._port is None:
            raise InstrumentError(f"{self.label}: connection is closed", instrument=self.name)
        try:
            raw = self._port.read_until(b"\n")
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(f"{self.label}: read failed: {exc}", instrument=self.name,
                                  text=str(exc)) from exc
        if not raw.endswith(b"\n"):
            raise InstrumentTimeout(f"{self.label}: no answer within {self._timeout_s:g} s",
                                    instrument=self.name, text="timeout")
        try:
            return raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InstrumentError(f"{self.label}: undecodable reply ({exc.reason})",
                                  instrument=self.name, text="garbage") from exc

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # noqa: BLE001 -- closing a dead link must not raise
                log.debug("%s: close failed", self.label, exc_info=True)
            self._port = None

    def reconnect(self) -> None:
        self.close()
        self._open()
