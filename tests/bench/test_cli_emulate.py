"""``labctl emulate`` serves a station until SIGTERM; ``labctl instruments check`` reads it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.cli import main

from .conftest import EXAMPLE


def test_emulate_serves_until_sigterm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    station = tmp_path / "bound.toml"
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "emulate", str(EXAMPLE),
                             "--ephemeral", "--station-out", str(station), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("{"):
                break
        info = json.loads(lines[-1])
        assert info["status"] == "serving"
        assert set(info["resources"]) == {"smu", "gate", "pulse", "pulse_reset", "matrix"}
        assert any("TCPIP0::127.0.0.1::" in ln and "keithley-707b" in ln for ln in lines)
        assert main(["instruments", "check", str(station), "--json"]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["ok"] and "707B" in report["instruments"]["matrix"]["identity"]
        assert report["status"] == "complete"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert json.loads(rest.strip().splitlines()[-1])["status"] == "stopped"   # how it ended


def test_emulate_refuses_a_station_without_emulation(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text()
    bare = tmp_path / "bare.toml"
    bare.write_text(text[:text.index("\n[emulation]")])
    assert main(["emulate", str(bare)]) == 2
    assert "emulation" in capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--duration-s", "-1"], "--duration-s must be > 0 s"),
    (["--station-out", "SELF"], "is the station file being emulated"),
    (["--station-out", "RUN"], "already exists and is not a station file"),
    (["--station-out", "PRESET"], "already exists and is not a station file"),
    (["--station-out", "out.h5"], "a station file ends in .toml"),
    (["--station-out", "nodir/out.toml"], "directory"),
])
def test_emulate_refuses_options_that_would_mislead(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    extra: list[str], words: str) -> None:
    station = tmp_path / "s.toml"
    station.write_text(EXAMPLE.read_text())
    before = station.read_text()
    others = {"RUN": tmp_path / "run.toml", "PRESET": tmp_path / "preset.toml"}
    others["RUN"].write_bytes(b"\x89HDF\r\n\x1a\n data")   # a run file with a bad name
    others["PRESET"].write_text('[device]\nmodel = "cmo-hfox"\n')
    kept = {k: p.read_bytes() for k, p in others.items()}
    argv = [str(station) if x == "SELF" else str(others[x]) if x in others
            else str(tmp_path / x) if x.endswith((".toml", ".h5")) else x for x in extra]
    assert main(["emulate", str(station), "--ephemeral", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert station.read_text() == before
    assert {k: p.read_bytes() for k, p in others.items()} == kept


def test_a_port_in_use_names_the_way_out(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Two users (or two emulators) on one machine: the fixed port is taken; the one-line
    error says how to bind free ports instead."""
    import socket
    import tomllib

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        text = EXAMPLE.read_text()
        first = tomllib.loads(text)["instruments"]["smu"]["resource"]
        station = tmp_path / "s.toml"
        station.write_text(text.replace(first, f"TCPIP0::127.0.0.1::{port}::SOCKET"))
        assert main(["emulate", str(station), "--duration-s", "1"]) == 2
    finally:
        holder.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0], err
    assert "--ephemeral --station-out" in err[0], err


def test_station_out_replaces_an_earlier_station_file(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Every start binds new ports: the station file an earlier start wrote is replaced."""
    out = tmp_path / "bound.toml"
    out.write_text(EXAMPLE.read_text())
    assert main(["emulate", str(EXAMPLE), "--ephemeral", "--station-out", str(out),
                 "--duration-s", "0.2"]) == 0
    assert out.read_text() != EXAMPLE.read_text()
    assert "TCPIP0::127.0.0.1::" in out.read_text()
    assert not list(tmp_path.glob(".*.tmp"))
