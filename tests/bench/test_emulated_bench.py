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
        text = rr.data("transcript/text").astype(str)
        direction = rr.data("transcript/direction").astype(str)
        t = rr.data("transcript/time_s")
    # stored after the backend closed, in one time order across instruments: the last
    # command is the matrix opening every route, after the SMU outputs went off
    commands = [x for x, d in zip(text, direction, strict=True) if d == "w"]
    assert commands[-1].startswith('channel.open("allslots")')
    assert any("OUTPUT_OFF" in x for x in commands[-4:-1])
    assert np.all(np.diff(t) >= 0)
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
    # no generator held a DC level on the chip between its pulses (a reconfiguration with
    # the output on leaves the old polarity at the new levels meanwhile)
    assert running.bench.exposure.max_idle_V == 0.0


def test_instruments_check_reports_every_instrument(
        serve_station: Any, capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station()
    running.server("pulse").emulator.push_error(-222, "Data out of range")
    code = main(["instruments", "check", str(station), "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 1, err  # an error was queued on the generator
    assert report["status"] == "failed" and report["exit_code"] == 1
    assert "Data out of range" in report["error"]
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
    assert running.bench.exposure.max_idle_V == 0.0


def test_the_emulated_b2902a_answers_a_pulsed_list_through_the_chip(
        serve_station: Any) -> None:
    """The B2902A's pulsed list (``FUNC:SHAP PULS``) reaches the emulated chip: routed to a
    cell (bit line, source to ground, gate on) each pulse reads the current the same cell
    gives in a DC list sweep; with the matrix open nothing flows.  (The bench once lacked
    ``smu_pulse``, so a pulsed list hung the served SMU until the client timed out.)"""
    import tomllib

    from labctl.drivers.registry import open_instrument
    from labctl.drivers.station import load_station

    from .conftest import EXAMPLE

    doc = tomllib.loads((EXAMPLE.parent / "station-b2902a-33500b-relay.toml").read_text())
    running, path = serve_station(doc)
    st = load_station(path)
    smu, gate, matrix = (open_instrument(st.instruments[r].driver, st.instruments[r].resource,
                                         st.instruments[r].options)
                         for r in ("smu", "gate", "matrix"))
    try:
        for d in (smu, gate):
            d.configure(compliance_A=1e-3)
        smu.output(True)
        volts = [0.2, 0.1, -0.2]
        np.testing.assert_allclose(smu.pulse_list(volts, 1e-4), 0.0, atol=1e-10)  # SMU floor
        w = st.wiring
        matrix.connect([(w.inputs["smu"], w.bit(0)), (w.inputs["ground"], w.source(0)),
                        (w.gate_input, w.word(0))])
        gate.source_voltage(1.2)
        gate.output(True)
        pulsed, dc = smu.pulse_list(volts, 1e-4), smu.sweep(volts)
        assert np.all(np.abs(pulsed) > 2e-11) and np.all(np.sign(pulsed) == np.sign(volts))
        np.testing.assert_allclose(pulsed, dc, rtol=0.05)
    finally:
        for d in (smu, gate, matrix):
            d.safe()
            d.transport.close()
    assert running.all_safe()
