"""Link faults on the emulated bench: dropped connection, stall past the timeout, garbage,
an error pushed mid-run.  Each time the outputs end off and the routes open, the run file
holds every finished row and names the fault, and the CLI exits 3 with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader

from .conftest import example_doc


def small_doc(rows: int = 3, cols: int = 2, timeout_s: float = 0.5) -> dict[str, Any]:
    """The example station on a smaller die (fast runs) with a short VISA timeout."""
    doc = example_doc()
    doc["chip"].update(rows=rows, cols=cols)
    m = doc["wiring"]["mapping"]
    m["bits"], m["words"], m["sources"] = m["bits"][:cols], m["words"][:rows], m["sources"][:rows]
    doc["timing"]["timeout_s"] = timeout_s
    return doc


FAULTS = [
    # pyvisa-py sees a closed socket as a timeout; the transport's peek tells them apart
    ("drop", "matrix", {}, "closed the connection"),
    ("stall", "smu", {"seconds": 1.5}, "InstrumentTimeout"),
    ("garbage", "smu", {}, "InstrumentError"),
    ("error", "smu", {"code": -222, "text": "Data out of range"}, "Data out of range"),
]


@pytest.mark.parametrize("kind,role,kw,named", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_mid_run_aborts_safely(kind: str, role: str, kw: dict[str, Any], named: str,
                                     serve_station: Any, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station(small_doc())
    # let the first row finish, then fail in the second
    after = {"matrix": 25, "smu": 35}[role]
    running.server(role).inject_fault(kind, after=after, **kw)
    out = tmp_path / "run.h5"
    code = main(["run", "forming", "--backend", str(station), "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("labctl: instrument fault:")
    spec = running.bench.station.instruments[role]
    named = err.split("instrument fault: ", 1)[1].split(f" ({spec.driver} at ", 1)[0]
    assert role in named.split("/"), err     # the role (and roles sharing its box)
    assert running.all_safe(), {r: e.snapshot() for r, e in running.emulators.items()}
    with RunReader(out) as rr:
        assert rr.status == "aborted"
        assert named in rr.attrs()["error"]
        resource = running.resource_of(running.bench.station.instruments[role].resource)
        assert resource in rr.attrs()["error"]  # the failing instrument is named
        formed = rr.data("forming/formed") if "forming/formed" in rr else []
        assert len(formed) % 2 == 0 and 2 <= len(formed) < 6  # whole rows, not all of them
        assert "transcript/text" in rr


def test_sigterm_mid_run_leaves_the_bench_safe(serve_station: Any, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    running, station = serve_station()
    out = tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "run", "forming", "--backend",
                             str(station), "--quiet", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while running.bench.exposure.max_line_V < 3.0:   # wait until forming ramps are running
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"no forming ramp within the deadline: {proc.communicate()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1, err
    assert running.all_safe()
    with RunReader(out) as rr:
        assert rr.status == "aborted" and "interrupted by SIGTERM" in rr.attrs()["error"]


def test_a_bench_in_use_is_refused_to_a_second_run(serve_station: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs on one bench would interleave their commands on the same instruments: while
    one HardwareArray is open, a second open (here: the CLI) is refused with one line naming
    the instrument and the holder; closing the first frees the bench."""
    import os

    from labctl.drivers.hardware_array import HardwareArray
    from labctl.errors import InstrumentError

    running, station = serve_station(small_doc())
    out = tmp_path / "run.h5"
    with HardwareArray.from_station(station, record=False):
        code = main(["run", "forming", "--backend", str(station), "--quiet", "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 3 and len(err) == 1, err
        assert "is in use by another labctl process" in err[0]
        assert f"(pid {os.getpid()})" in err[0] and not out.exists()
        with pytest.raises(InstrumentError, match="in use"):
            HardwareArray.from_station(station, record=False)
    assert running.all_safe()
    assert main(["run", "forming", "--backend", str(station), "--quiet", "--out", str(out)]) == 0


def test_simulator_options_are_refused_on_a_station(serve_station: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--rows/--cols/--preset describe the simulated chip; a station file fixes its own chip,
    so they are refused instead of silently ignored (a 2x2 request once ramped all 32 cells)."""
    _, station = serve_station(small_doc())
    for extra in (["--rows", "2", "--cols", "2"], ["--preset", "rram-40nm-random"]):
        out = tmp_path / "r.h5"
        code = main(["run", "forming", "--backend", str(station), "--quiet", "--out", str(out),
                     *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "for the simulated chip" in err[0], err
        assert extra[0] in err[0] and not out.exists()


def test_an_error_found_after_an_operation_leaves_the_bench_safe(serve_station: Any) -> None:
    """An instrument error read at the end of an operation that otherwise went through (the
    error-queue check every ``error_check_every`` operations) used to be raised with the
    sources still on: a script catching it held the outputs on until close()."""
    from labctl.array import Cells
    from labctl.drivers.hardware_array import HardwareArray
    from labctl.errors import InstrumentError

    doc = small_doc()
    doc["timing"]["error_check_every"] = 1
    running, station = serve_station(doc)
    with HardwareArray.from_station(station) as hw:
        hw.read(Cells.all())
        assert not running.all_safe()              # the read left the SMU on, as it may
        hw.instruments["smu"].errors = lambda: [(-222, "Data out of range")]
        with pytest.raises(InstrumentError, match="-222"):
            hw.read(Cells.all())
        assert running.all_safe()                  # before close()


def test_a_failed_operation_leaves_the_bench_safe_before_the_array_closes(
        serve_station: Any) -> None:
    """The operation itself makes the bench safe on a fault, not only the CLI's exit: a
    script that catches the error and carries on holds no output on in the meantime."""
    from labctl.array import Cells
    from labctl.drivers.hardware_array import HardwareArray
    from labctl.errors import InstrumentError

    running, station = serve_station(small_doc())
    with HardwareArray.from_station(station) as hw:
        hw.read(Cells.all())                       # outputs on, routes used
        running.server("smu").inject_fault("error", after=2, code=-222,
                                           text="Data out of range")
        with pytest.raises(InstrumentError):
            hw.sweep(Cells.all(), [0.1, 0.2, 0.3], gate_V=1.2, compliance_A=1e-4)
            hw.check_errors()
        assert running.all_safe()                  # before close()
