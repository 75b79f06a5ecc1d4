"""A hardware run's transcript replays offline through the same drivers and protocol code:
identical reads and summary; a changed protocol fails at the first differing command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader, RunWriter
from labctl.drivers.hardware_array import HardwareArray
from labctl.drivers.transcript import TranscriptMismatch
from labctl.protocols.base import run
from labctl.protocols.forming import Forming, FormingConfig

from .test_faults import small_doc


def test_recorded_forming_replays_identically(serve_station: Any, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station(small_doc())
    out = tmp_path / "hw.h5"
    assert main(["run", "forming", "--backend", str(station), "--quiet", "--out", str(out)]) == 0
    running.stop()  # no instrument from here on
    with RunReader(out) as rr:
        cfg = FormingConfig(**rr.config)
        recorded = {n: rr.data(n) for n in rr.datasets() if n.startswith("forming/")}
        summary, config = rr.summary, rr.config
        array = HardwareArray.from_run_file(rr)
    with array, RunWriter(tmp_path / "replay.h5", command="run forming", config=config,
                          backend=array.describe()) as w:
        replayed = run(Forming(cfg), array, w)
        data = {n: w.data(n) for n in recorded}
    assert replayed == summary
    for name, values in recorded.items():
        np.testing.assert_array_equal(data[name], values, err_msg=name)


def test_a_changed_protocol_names_the_first_differing_command(
        serve_station: Any, tmp_path: Path) -> None:
    _, station = serve_station(small_doc())
    out = tmp_path / "hw.h5"
    assert main(["run", "forming", "--backend", str(station), "--quiet", "--out", str(out)]) == 0
    with RunReader(out) as rr:
        array = HardwareArray.from_run_file(rr)
    with array, RunWriter(tmp_path / "r.h5", command="run forming", config={},
                          backend={}) as w, pytest.raises(TranscriptMismatch) as e:
        run(Forming(FormingConfig(v_step_V=0.02)), array, w)
    assert "differs from the transcript" in str(e.value) and "listv" in str(e.value)


def test_a_run_without_transcript_is_refused(tmp_path: Path) -> None:
    from labctl.errors import ConfigError

    out = tmp_path / "sim.h5"
    assert main(["run", "forming", "--quiet", "--rows", "1", "--cols", "1", "--out",
                 str(out)]) == 0
    with RunReader(out) as rr, pytest.raises(ConfigError, match="no instrument transcript"):
        HardwareArray.from_run_file(rr)


def _program(array: HardwareArray) -> dict[str, Any]:
    """Form, then program-verify every cell (the on-instrument loop on this station)."""
    from labctl.array import Cells
    from labctl.protocols.program_verify import VerifyConfig, verify_steps
    from labctl.protocols.unformed import form_unformed

    form_unformed(array, Cells.all(), FormingConfig(), group="f")
    state: dict[str, Any] = {}
    targets = np.linspace(15e-6, 75e-6, array.info.rows * array.info.cols)
    for _ in verify_steps(array, Cells.all(), targets, VerifyConfig(), state):
        pass
    state["g_final"] = array.read(Cells.all())
    return state


def test_recorded_program_verify_replays_with_identical_pulses_and_reads(
        serve_station: Any) -> None:
    _, station = serve_station(small_doc())
    with HardwareArray.from_station(station) as hw:
        recorded = _program(hw)
        backend, transcript = hw.describe(), hw.transcript
    assert transcript is not None and recorded["converged"].all()
    columns = {name: values for name, (values, _) in transcript.items()}
    with HardwareArray.from_transcript(backend, columns) as replay:
        replayed = _program(replay)
    for key in ("g_S", "pulses", "converged", "g_reset_S", "g_final"):
        np.testing.assert_array_equal(replayed[key], recorded[key], err_msg=key)


def test_a_station_run_replays_on_a_simulated_die_of_its_size(serve_station: Any,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    """A station run names no --rows/--cols (its die is the station's): a replay on the
    simulator measures a die of the same size, not the simulator's default 8x4."""
    import json

    from .test_faults import small_doc

    _, station = serve_station(small_doc())
    rec = tmp_path / "f.h5"
    assert main(["run", "forming", "--backend", str(station), "--quiet", "--out",
                 str(rec)]) == 0
    capsys.readouterr()
    main(["replay", str(rec), "--backend", "sim", "--json", "--out", str(tmp_path / "r.h5")])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["metrics"]["cells"]["recorded"] == res["metrics"]["cells"]["replayed"] == 6
    with RunReader(tmp_path / "r.h5") as r:
        assert (r.backend["rows"], r.backend["cols"]) == (3, 2)
