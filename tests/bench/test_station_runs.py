"""Runs on an emulated station: pipeline train checks its arrays against each die before any
instrument is touched (a larger die lends a window); reports of the on-instrument loop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from labctl.cli import main


def test_a_network_larger_than_the_die_is_refused_before_the_bench_is_touched(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    running, station = serve_station()
    out = tmp_path / "t.h5"
    code = main(["pipeline", "train", "--backend", str(station), "--algorithm", "sgd",
                 "--dataset", "digits", "--network", "64-10", "--epochs", "1", "--quiet",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "L0.W needs a 64x10 array and the die of" in err and "is 8x4" in err
    assert not out.exists()
    assert running.bench.exposure.max_line_V == 0.0


def test_a_die_larger_than_its_tile_lends_it_a_window(serve_station: Any) -> None:
    from labctl.commands.pipeline_train import array_factory

    _, station = serve_station()
    bank = array_factory(argparse.Namespace(backend=str(station)), [("L0.A", 4, 2)])()
    try:
        assert bank["L0.A"].info.shape == (4, 2)
        assert bank.owners[0].info.shape == (8, 4)
    finally:
        bank.close()


def test_report_of_a_station_program_run_draws_the_native_loop_as_start_and_end(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The closed loop runs on the SMU: only each cell's start and end are known, drawn at
    the pulses it took (not as one-pulse steps)."""
    from labctl.data.runfile import RunReader

    _, station = serve_station()
    out = tmp_path / "p.h5"
    assert main(["run", "program", "--backend", str(station), "--levels", "4", "--repeats",
                 "2", "--quiet", "--out", str(out)]) == 0
    with RunReader(out) as r:
        idx = r.data("program/rounds/index")
        pulses = r.data("program/pulses")
        n_set = r.data("program/rounds/set_pulses")
        n_reset = r.data("program/rounds/reset_pulses")
        times = json.loads(r.attrs()["operation_time"])
    assert idx[0] == 0 and idx[1] == pulses[:8].max() > 1    # start and end rows only
    # the end row holds the loop's real totals, as the SMU's script counted them
    assert n_set[0] == n_reset[0] == 0
    assert n_set[1] > 0 and n_reset[1] >= 0 and n_set[1] + n_reset[1] == pulses[:8].sum()
    # the station's pace counts the loop's pulses, and a read before and after each
    loop_pulses = int(n_set[1] + n_reset[1])
    assert times["pulse"][0] >= loop_pulses and times["read"][0] >= 8 + loop_pulses
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "program_traces.png").is_file()


def test_retention_on_a_station_says_how_long_it_will_take(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, station = serve_station()
    assert main(["run", "retention", "--backend", str(station), "--levels", "4", "--repeats",
                 "2", "--times", "0.2,0.4", "--quiet", "--out", str(tmp_path / "r.h5")]) == 0
    err = capsys.readouterr().err
    assert ("every read is waited for: 1 batch(es), each read until 0.4s after it is "
            "programmed, about 0 s in all") in err


def test_a_resumed_station_retention_run_gives_the_planned_span_as_an_upper_bound(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A resume waits only for the reads still due: the note must not promise the whole
    planned duration again."""
    import h5py

    _, station = serve_station()
    out = tmp_path / "r.h5"
    args = ["run", "retention", "--backend", str(station), "--levels", "4", "--repeats", "2",
            "--times", "0.2,0.4", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    with h5py.File(out, "r+") as f:      # as a killed session leaves it
        f.attrs["status"] = "aborted"
    capsys.readouterr()
    assert main([*args, "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "at most about 0 s (a resume waits only for the reads still due)" in err
    assert "in all" not in err


def test_inference_of_a_station_transfer_counts_ages_across_processes(
        serve_station: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The station clock is wall-clock time: an inference started after the asked-for age
    says so and records the real age; a transfer whose end time is process-relative (older
    labctl) is refused, its age being unknown."""
    import time

    import h5py
    import numpy as np

    from labctl.data.runfile import RunReader

    _, station = serve_station()
    w = tmp_path / "w.npy"
    np.save(w, np.array([[0.5], [-0.25]]))
    pw = tmp_path / "pw.h5"
    assert main(["program", str(w), "--backend", str(station), "--quiet", "--out",
                 str(pw)]) == 0
    time.sleep(2.0)
    capsys.readouterr()
    inf = tmp_path / "inf.h5"
    assert main(["pipeline", "inference", str(pw), "--times", "1s", "--inputs", "8",
                 "--calibration", "columns", "--quiet", "--out", str(inf)]) == 0
    out, err = capsys.readouterr()
    assert "reads asked for earlier are taken now" in err
    with RunReader(inf) as r:
        age = r.data("inference/t_s")[0]
        assert age >= 1.5
        # the chip's wires are its own: no simulator wire resistance claimed or recorded
        assert r.config["wire_resistance_ohm"] is None
        assert "wire_resistance_ohm" not in r.backend
    assert "ohm/segment" not in out
    # no IR drop to see in a cell-by-cell MVM: the last cause is named for what it is
    assert "mvm_vs_reads" in out and "ir_drop" not in out
    assert f"1s (read at {age:.3g} s)" in out      # the row says when it was really read
    from labctl.plots import inference as inference_plots

    titles: list[str] = []

    def keep_titles(fig: Any, out_dir: Path, name: str) -> Path:
        titles.extend(a.get_title() for a in fig.axes)
        return out_dir / name

    monkeypatch.setattr(inference_plots, "save", keep_titles)
    with RunReader(inf) as r:
        inference_plots.render(r, tmp_path / "fig")
    assert any(t.startswith(f"t = 1s (read at {age:.3g} s)") for t in titles), titles
    assert main(["pipeline", "inference", str(pw), "--times", "1s", "--inputs", "8",
                 "--wire-resistance-ohm", "0.35", "--quiet", "--out",
                 str(tmp_path / "inf1.h5")]) == 2
    assert "ran on a station, whose chip has its own wires" in capsys.readouterr().err
    assert not (tmp_path / "inf1.h5").exists()
    with h5py.File(pw, "r+") as h:
        h["transfer/load_end_s"][...] = 0.56
    assert main(["pipeline", "inference", str(pw), "--times", "1s", "--quiet", "--out",
                 str(tmp_path / "inf2.h5")]) == 2
    assert "the age of its weights is unknown" in capsys.readouterr().err
