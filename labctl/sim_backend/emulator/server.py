"""A loopback TCP server per emulated instrument, with injectable link faults.

``EmulatorServer(emulator).start()`` listens on 127.0.0.1 on an ephemeral port (or the
one given) and serves any number of connections, one thread each, TCP_NODELAY, input
framed by ``\\n`` (``\\r\\n`` accepted), every reply line ``\\n``-terminated.  Faults are
armed from Python (``inject_fault``) and fire on the n-th next message:

* ``"drop"``    -- close the connection instead of executing the message
  (``persistent=True``: the instrument is gone, new connections are refused too);
* ``"stall"``   -- answer ``seconds`` late (past the client's timeout);
* ``"garbage"`` -- replace the next answer by bytes that are not a valid reply;
* ``"error"``   -- push ``(code, text)`` into the instrument's error queue, then execute.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from labctl.sim_backend.emulator.base import InstrumentEmulator

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "stall", "garbage", "error")
GARBAGE = b"\x8f\xfe#!garbage\x00\xff"


@dataclass
class Fault:
    """An armed fault: fires when ``after`` more messages have been received."""

    kind: str
    after: int = 0
    seconds: float = 5.0
    code: int = -350
    text: str = "Injected fault"
    persistent: bool = False


class EmulatorServer:
    """Serves one :class:`InstrumentEmulator` on a loopback TCP port."""

    def __init__(self, emulator: InstrumentEmulator, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.emulator = emulator
        self.host = host
        self._requested_port = int(port)
        self.port = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.dead = False
        self.connections = 0

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> int:
        """Listen and serve in background threads; returns the port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(8)
        except OSError:
            sock.close()        # a port in use must not leave the socket open
            raise
        sock.settimeout(0.1)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._spawn(self._accept_loop, "accept")
        return self.port

    def stop(self) -> None:
        """Close every connection and the listening socket; join the threads."""
        self._stop.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _close(conn)
        if self._sock is not None:
            _close(self._sock)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def resource(self) -> str:
        """The VISA resource string of this server (pyvisa-py raw socket)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    @property
    def serial_url(self) -> str:
        """The pyserial URL of this server (for the serial relay box)."""
        return f"socket://{self.host}:{self.port}"

    # -- faults --------------------------------------------------------------------------
    def inject_fault(self, kind: str, *, after: int = 0, seconds: float = 5.0, code: int = -350,
                     text: str = "Injected fault", persistent: bool = False) -> Fault:
        """Arm a fault (see the module docstring); returns it."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        fault = Fault(kind, int(after), float(seconds), int(code), str(text), bool(persistent))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.dead = False

    def _due_faults(self) -> list[Fault]:
        with self._lock:
            due = [f for f in self._faults if f.after <= 0]
            for f in self._faults:
                f.after -= 1
            self._faults = [f for f in self._faults if f not in due]
        return due

    # -- serving -------------------------------------------------------------------------
    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,  # type: ignore[arg-type]
                                  name=f"emulator-{self.emulator.instrument_id}-{name}")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.dead:
                _close(conn)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.1)
            with self._lock:
                self._conns.append(conn)
            self.connections += 1
            self._spawn(self._serve, f"conn{self.connections}", conn)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not self._serve_line(conn, line.decode("latin-1").rstrip("\r")):
                    _close(conn)
                    return
        _close(conn)

    def _serve_line(self, conn: socket.socket, line: str) -> bool:
        """Execute one message; False when the connection must close (drop fault)."""
        garbage = False
        for fault in self._due_faults():
            if fault.kind == "drop":
                log.info("%s: injected drop", self.emulator.instrument_id)
                self.dead = fault.persistent
                return False
            if fault.kind == "stall":
                self._stop.wait(fault.seconds)
            elif fault.kind == "error":
                self.emulator.push_error(fault.code, fault.text)
            elif fault.kind == "garbage":
                garbage = True
        replies = self.emulator.process(line)
        if garbage and replies:
            replies = [GARBAGE.decode("latin-1")]
        elif garbage:
            self.inject_fault("garbage")  # no answer to spoil yet: keep it armed
        try:
            for reply in replies:
                conn.sendall(reply.encode("latin-1") + b"\n")
        except OSError:
            return False
        return True


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
