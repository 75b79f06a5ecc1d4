"""What a bench checks when it opens, before any output, source or route command: every
instrument is the one its driver speaks to (``*IDN?``), errors an earlier session left in a
queue are cleared (not blamed on this run), and an instrument that does not answer or
refuses the connection fails fast with one line naming its role, driver and resource."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.cli import main

from .test_faults import small_doc


def _point(station: Path, roles: tuple[str, ...], resource: str, out: Path) -> Path:
    """A copy of ``station`` with the resource of ``roles`` replaced by ``resource``."""
    text = station.read_text()
    for role in roles:
        text = re.sub(rf'(\[instruments\.{role}\][^\[]*?resource = ")[^"]+"',
                      lambda m: m.group(1) + resource + '"', text)
    out.write_text(text)
    return out


def _run(station: Path, out: Path) -> list[str]:
    return ["run", "forming", "--backend", str(station), "--quiet", "--out", str(out)]


def test_a_role_pointed_at_another_instrument_is_refused_before_any_output(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pulse generator's roles pointed at the 707B matrix: one line naming the role,
    resource, identity and what was expected, exit 3, without waiting out a link timeout;
    the 707B never got a SCPI command, nothing reached the chip, every instrument is safe."""
    # a long link timeout, so that waiting on one cannot pass for a slow (loaded) machine
    running, station = serve_station(small_doc(timeout_s=20.0))
    matrix = running.resources["matrix"]
    wrong = _point(station, ("pulse", "pulse_reset"), matrix, tmp_path / "wrong.toml")
    t0 = time.monotonic()
    code = main(_run(wrong, tmp_path / "run.h5"))
    took = time.monotonic() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    line = err[0]
    assert line.startswith(f"labctl: instrument fault: pulse (keysight-33500b at {matrix})"), line
    assert "Model 707B" in line and "33500B" in line
    assert took < 20.0
    assert running.emulator("matrix").snapshot()["errors"] == []   # no SCPI reached the 707B
    exposure = running.bench.exposure
    assert exposure.max_line_V == 0.0 and exposure.max_gate_V == 0.0 and exposure.pulses == 0
    assert running.all_safe()

    code = main(["instruments", "check", str(wrong)])
    captured = capsys.readouterr()
    assert code == 3
    assert "WRONG INSTRUMENT" in captured.out
    assert captured.err.startswith("labctl: instrument fault: pulse (keysight-33500b")
    assert len(captured.err.strip().splitlines()) == 1
    assert running.emulator("matrix").snapshot()["errors"] == []


def test_errors_left_by_an_earlier_session_are_cleared_at_open(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Stale errors (8 on the generator, 1 on the matrix) do not fail a correct run: they are
    read and cleared at open, one log line per instrument says what was there."""
    running, station = serve_station(small_doc())
    for _ in range(8):
        running.emulator("pulse").push_error(-285, "Program syntax error")
    running.emulator("matrix").push_error(1115, "Parameter error: invalid channel list")
    with caplog.at_level("WARNING"):
        code = main(_run(station, tmp_path / "run.h5"))
    assert code == 0, capsys.readouterr().err
    err = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(err) == 2, err
    pulse = next(x for x in err if "pulse (keysight-33500b" in x)
    assert "cleared 8 errors left from an earlier session: 8 x -285 'Program syntax error'" \
        in pulse
    assert any("matrix (keithley-707b" in x and "cleared 1 error " in x for x in err)
    assert all(e.snapshot()["errors"] == [] for e in running.emulators.values())
    assert running.all_safe()


@dataclass
class SilentPort:
    """A TCP port that accepts connections, never answers, and keeps what each one sent."""
    port: int
    received: list[bytearray]


@pytest.fixture
def silent_port() -> Iterator[SilentPort]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    silent = SilentPort(srv.getsockname()[1], [])
    held: list[socket.socket] = []
    stop = threading.Event()

    def drain(conn: socket.socket, into: bytearray) -> None:
        conn.settimeout(0.1)
        while not stop.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            into.extend(chunk)

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn = srv.accept()[0]
            except OSError:
                continue
            held.append(conn)
            silent.received.append(bytearray())
            threading.Thread(target=drain, args=(conn, silent.received[-1]),
                             daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield silent
    stop.set()
    thread.join(timeout=2)
    for c in held:
        c.close()
    srv.close()


def test_an_instrument_that_does_not_answer_fails_fast_in_one_line(
        serve_station: Any, silent_port: SilentPort, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """One *IDN? and one timeout: no shutdown attempt, retry or reconnect waits on a link
    that never answered (each would be another timeout before the error line)."""
    running, station = serve_station(small_doc(timeout_s=0.5))
    resource = f"TCPIP0::127.0.0.1::{silent_port.port}::SOCKET"
    dead = _point(station, ("pulse", "pulse_reset"), resource, tmp_path / "dead.toml")
    code = main(_run(dead, tmp_path / "run.h5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    assert err[0] == (f"labctl: instrument fault: pulse (keysight-33500b at {resource}): "
                      "no answer within 0.5 s to *IDN?")
    deadline = time.monotonic() + 10        # the drain thread may still be reading
    while not any(silent_port.received) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [bytes(b).strip() for b in silent_port.received] == [b"*IDN?"]
    assert running.all_safe()


def test_a_refused_connection_names_the_role(serve_station: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station(small_doc(timeout_s=0.5))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                  # nothing listens there now
    resource = f"TCPIP0::127.0.0.1::{port}::SOCKET"
    dead = _point(station, ("matrix",), resource, tmp_path / "refused.toml")
    code = main(_run(dead, tmp_path / "run.h5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    assert err[0] == (f"labctl: instrument fault: matrix (keithley-707b at {resource}): "
                      "connection refused -- is the instrument on and the address right?")
    assert running.all_safe()
    assert main(["instruments", "check", str(dead)]) == 3
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("matrix "))
    assert "NO ANSWER: connection refused -- is the instrument on" in row
    assert "Errno" not in row


def test_a_refused_serial_socket_is_told_as_refused() -> None:
    """pyserial's ``socket://`` fails on open, the refusal being the context of its own
    exception: the reworded line is the same as for a VISA socket."""
    from labctl.drivers.bench_open import link_fault
    from labctl.drivers.registry import open_transport
    from labctl.drivers.station import InstrumentSpec
    from labctl.errors import InstrumentError

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    resource = f"socket://127.0.0.1:{s.getsockname()[1]}"
    s.close()                                  # nothing listens there now
    with pytest.raises(InstrumentError) as info:
        open_transport("serial-relay", resource, {"timeout_s": 0.5})
    spec = InstrumentSpec(role="matrix", driver="serial-relay", resource=resource)
    assert str(link_fault(spec, info.value, "the connection")) == (
        f"matrix (serial-relay at {resource}): connection refused -- is the instrument on "
        f"and the address right?")


def test_the_bench_lock_error_names_the_role(serve_station: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.drivers.hardware_array import HardwareArray

    running, station = serve_station(small_doc())
    with HardwareArray.from_station(station, record=False):
        code = main(_run(station, tmp_path / "run.h5"))
        err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    m = re.search(r"instrument (\S+) \((\S+) at (\S+)\) is in use by another labctl process",
                  err[0])
    assert m, err[0]
    role = m.group(1).split("/")[0]
    spec = running.bench.station.instruments[role]
    assert m.group(2) == spec.driver and m.group(3) == running.resources[role]


def test_instruments_check_leaves_a_bench_in_use_alone(serve_station: Any, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """While a run holds the bench, `instruments check` would drain the run's error queues
    and switch its outputs off mid-run: it stops with one line (exit 3) and connects to no
    instrument."""
    from labctl.drivers.hardware_array import HardwareArray

    running, station = serve_station(small_doc())
    with HardwareArray.from_station(station, record=False):
        before = {res: s.connections for res, s in running.servers.items()}
        code = main(["instruments", "check", str(station), "--json"])
        captured = capsys.readouterr()
        after = {res: s.connections for res, s in running.servers.items()}
    assert code == 3
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "is in use by another labctl process" in err[0], err
    end = json.loads(captured.out.strip().splitlines()[-1])
    assert end["status"] == "failed" and end["exit_code"] == 3
    assert after == before
    assert main(["instruments", "check", str(station)]) == 0   # free again once it closed
