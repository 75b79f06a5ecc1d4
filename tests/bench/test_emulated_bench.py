"""The acceptance runs of issue 4 on the emulated bench (pyvisa-py over loopback TCP):
forming and program-verify complete through the station backend, agree with the
simulator within noise, record round trips and a transcript, and leave the bench safe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1]) if code == 0 and lines else {}
    return code, summary, err


def test_forming_on_the_emulated_bench_agrees_with_the_simulator(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station()
    code, hw, err = cli(capsys, "run", "forming", "--backend", str(station), "--json",
                        "--quiet", "--out", str(tmp_path / "hw.h5"))
    assert code == 0, err
    code, sim, err = cli(capsys, "run", "forming", "--json", "--quiet", "--seed", "0",
                         "--out", str(tmp_path / "sim.h5"))
    assert code == 0, err
    assert hw["status"] == "complete" and hw["cells"] == sim["cells"] == 32
    assert hw["yield"] == sim["yield"] == 1.0
    assert hw["v_form_mean_V"] == pytest.approx(sim["v_form_mean_V"], abs=0.05)
    assert hw["i_form_mean_A"] == pytest.approx(sim["i_form_mean_A"], rel=0.05)
    assert hw["g_after_mean_S"] == pytest.approx(sim["g_after_mean_S"], rel=0.05)
    with RunReader(tmp_path / "hw.h5") as rr:
        assert rr.backend["backend"] == "station"
        assert set(rr.backend["instruments"]) >= {"smu", "pulse", "matrix", "gate"}
        assert "2636B" in rr.backend["instruments"]["smu"]
        assert int(rr.attrs()["round_trips"]) > 32
        assert rr.data("transcript/text").size > 100
    assert running.all_safe()
    assert running.bench.exposure.max_line_V <= 4.0 + 1e-12
    assert running.bench.exposure.overstress == []


def test_program_on_the_emulated_bench_agrees_with_the_simulator(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station()
    args = ["run", "program", "--levels", "8", "--tolerance", "0.02", "--json", "--quiet"]
    code, hw, err = cli(capsys, *args, "--backend", str(station), "--out",
                        str(tmp_path / "hw.h5"))
    assert code == 0, err
    code, sim, err = cli(capsys, *args, "--out", str(tmp_path / "sim.h5"))
    assert code == 0, err
    assert hw["status"] == "complete"
    assert hw["converged_fraction"] == sim["converged_fraction"] == 1.0
    levels = np.asarray(hw["levels"])
    np.testing.assert_allclose(hw["mean_S"], levels, rtol=0.02)
    np.testing.assert_allclose(sim["mean_S"], levels, rtol=0.02)
    # pulses per cell: same loop statistics within noise (8 cells each)
    with RunReader(tmp_path / "hw.h5") as a, RunReader(tmp_path / "sim.h5") as b:
        pa, pb = a.data("program/pulses"), b.data("program/pulses")
        rt = int(a.attrs()["round_trips"])
    spread = np.sqrt(pa.var() / pa.size + pb.var() / pb.size)
    assert abs(pa.mean() - pb.mean()) <= 4 * spread + 2, (pa, pb)
    assert rt > 0
    assert running.all_safe()
    lim = running.bench.station.limits
    assert running.bench.exposure.max_line_V <= lim.max_voltage_V + 1e-12
    assert running.bench.exposure.max_gate_V <= lim.max_gate_voltage_V + 1e-12


def test_instruments_check_reports_every_instrument(
        serve_station: Any, capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station()
    running.server("pulse").emulator.push_error(-222, "Data out of range")
    code = main(["instruments", "check", str(station), "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 1, err  # an error was queued on the generator
    assert set(report["instruments"]) == {"smu", "gate", "pulse", "pulse_reset", "matrix"}
    assert "2636B" in report["instruments"]["smu"]["identity"]
    errs = report["instruments"]["pulse"]["errors"] + report["instruments"]["pulse_reset"]["errors"]
    assert {"code": -222, "text": "Data out of range"} in errs
    assert "role" in out.splitlines()[0] and "keithley-707b" in out
    assert running.all_safe()
    code = main(["instruments", "check", str(station)])
    assert code == 0


@pytest.mark.parametrize("example", ["station-2450-81150a-b2200.toml",
                                     "station-b2902a-33500b-relay.toml"])
def test_other_example_stations_program_on_their_emulated_bench(
        example: str, serve_station: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from .conftest import EXAMPLE

    doc = __import__("tomllib").loads((EXAMPLE.parent / example).read_text())
    running, station = serve_station(doc)
    code, s, err = cli(capsys, "run", "program", "--levels", "3", "--json", "--quiet",
                       "--backend", str(station), "--out", str(tmp_path / "p.h5"))
    assert code == 0, err
    assert s["converged_fraction"] == 1.0
    np.testing.assert_allclose(s["mean_S"], s["levels"], rtol=0.02)
    assert running.all_safe()
    assert 0 < running.bench.exposure.max_gate_V <= 1.2 + 1e-12
