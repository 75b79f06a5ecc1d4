"""A two-FeFET die at a station (examples/emulated-fefet-bench.toml): the same Array
interface as the simulator -- reads, weight gate pulses, sparsity masks, MVMs -- through
pyvisa-py to the emulated instruments, and the sparse-training pipeline on it (issue 8:
"on a real two-FeFET die through the same Array interface")."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl.array import Cells
from labctl.data.runfile import RunReader, RunWriter
from labctl.drivers.hardware_array import HardwareArray
from labctl.drivers.station import parse_station
from labctl.errors import ConfigError, LimitError

from .conftest import dump_toml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "emulated-fefet-bench.toml"


def fefet_doc() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


@pytest.fixture
def serve_fefet(tmp_path: Path) -> Iterator[Callable[..., tuple[Any, Path]]]:
    from labctl.sim_backend.emulator.serve import start_bench

    running: list[Any] = []

    def serve(doc: dict[str, Any] | None = None) -> tuple[Any, Path]:
        text = dump_toml(doc if doc is not None else fefet_doc())
        src = tmp_path / "src-fefet.toml"
        src.write_text(text)
        bench = start_bench(parse_station(tomllib.loads(text), src, text=text), ephemeral=True)
        running.append(bench)
        path = tmp_path / "fefet.toml"
        path.write_text(bench.station_text())
        return bench, path

    yield serve
    for bench in running:
        bench.stop()


def test_gate_pulses_and_masks_reach_only_the_addressed_cell(serve_fefet: Any) -> None:
    running, station = serve_fefet()
    die = running.bench.array
    with HardwareArray.from_station(station) as hw:
        assert type(hw).__name__ == "FefetHardwareArray"
        assert hw.info.technology == "fefet-2t"
        x0, s0 = die.state["x"].copy(), die.state["s_on"].copy()
        t0 = die.state["t_prog_s"].copy()
        die.wait(10.0)                                      # the die's (frozen) clock on
        hw.pulse(Cells.at([2, 5], [3, 0]), [3.0, -3.0], 100e-6, count=4)
        moved = np.argwhere(np.abs(die.state["x"] - x0) > 0)
        assert moved.tolist() == [[2, 3], [5, 0]]          # V/2 left the rest alone
        # ... down to their relaxation clocks: an inhibited cell was not programmed
        assert np.argwhere(die.state["t_prog_s"] != t0).tolist() == [[2, 3], [5, 0]]
        assert die.state["x"][2, 3] > x0[2, 3] and die.state["x"][5, 0] < x0[5, 0]
        hw.mask(Cells.at([4], [5]), False)
        assert np.argwhere(die.state["s_on"] != s0).tolist() == [[4, 5]]
        g = hw.read(Cells.all()).reshape(8, 8)
        assert g[4, 5] < 1e-8 < 1e-7 < np.delete(g.ravel(), 4 * 8 + 5).min()  # masked off
        hw.mask(Cells.at([4], [5]), True)
        assert np.array_equal(die.state["s_on"], s0)
        # the MVM is the sum of the cells' currents (read noise apart)
        g = np.mean([hw.read(Cells.all()) for _ in range(4)], axis=0).reshape(8, 8)
        v = np.linspace(0.02, 0.1, 8)
        assert hw.mvm(v) == pytest.approx(v @ g, rel=0.05)
        assert hw.mvm(v, transpose=True) == pytest.approx(g @ v, rel=0.05)
    assert running.all_safe()
    exposure = running.bench.exposure
    assert exposure.overstress == []
    assert exposure.max_gate_V == pytest.approx(3.0)        # pulses on the gate lines only
    assert exposure.max_line_V == pytest.approx(1.5)        # channel lines: the inhibit level


def test_levels_beyond_the_limits_are_refused_before_anything_is_sent(serve_fefet: Any) -> None:
    doc = fefet_doc()
    doc["limits"]["max_voltage_V"] = 3.5
    running, station = serve_fefet(doc)
    die = running.bench.array
    with HardwareArray.from_station(station) as hw:
        x0 = die.state["x"].copy()
        sent = running.bench.exposure.pulses
        with pytest.raises(LimitError, match="write gate voltage 3.6"):
            hw.pulse(Cells.at([0], [0]), 3.6, 100e-6)
        with pytest.raises(LimitError, match="pulse width"):
            hw.pulse(Cells.at([0], [0]), 3.0, 1.0)
        assert running.bench.exposure.pulses == sent and np.array_equal(die.state["x"], x0)
    assert running.all_safe()


@pytest.mark.parametrize("fraction, amp", [(0.5, 3.2), (0.5, -4.0), (0.25, 2.1)])
def test_a_pulse_that_would_switch_unselected_cells_is_refused_before_anything_is_sent(
        serve_fefet: Any, fraction: float, amp: float) -> None:
    """Within limits.max_voltage_V, but max(f, 1 - f) |V| above chip.max_disturb_V: the
    other cells of the row (or column) would switch too; an audit saw a +3.2 V pulse
    rewrite all 8 cells of its row on the emulated die, without a word."""
    doc = fefet_doc()
    doc["chip"].update(inhibit_fraction=fraction, mask_set_V=2.0, mask_reset_V=2.0)
    running, station = serve_fefet(doc)
    die = running.bench.array
    with HardwareArray.from_station(station) as hw:
        x0, sent = die.state["x"].copy(), running.bench.exposure.pulses
        with pytest.raises(LimitError, match="more than chip.max_disturb_V = 1.5 V"):
            hw.pulse(Cells.at([2], [3]), amp, 100e-6)
        assert running.bench.exposure.pulses == sent and np.array_equal(die.state["x"], x0)
        hw.pulse(Cells.at([2], [3]), 1.5 / max(fraction, 1 - fraction), 100e-6)   # the edge
        moved = np.argwhere(np.abs(die.state["x"] - x0) > 0).tolist()
        assert moved in ([], [[2, 3]])                     # nothing but the addressed cell
    assert running.all_safe()


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["wiring"]["mapping"].pop("sparsity"), "missing wiring.mapping.sparsity"),
    (lambda d: d["wiring"]["mapping"].update(sparsity=[25, 26]), "2 ports for 8 columns"),
    (lambda d: d["wiring"]["mapping"].update(sources=[17]), "one source line per row"),
    (lambda d: d["chip"].update(inhibit_fraction=1.0), "between 0 and 1"),
    (lambda d: d["chip"].update(technology="1t1r-reram"), "inhibit_fraction is for fefet-2t"),
    (lambda d: (d["chip"].update(technology="1t1r-reram"), d["chip"].pop("inhibit_fraction"),
                d["chip"].pop("max_disturb_V")), "sparsity is for fefet-2t"),
    (lambda d: (d["chip"].update(technology="1t1r-reram"), d["chip"].pop("inhibit_fraction")),
     "max_disturb_V is for fefet-2t"),
    (lambda d: d["chip"].pop("max_disturb_V"), "missing chip.max_disturb_V"),
    # a mask level whose inhibit would switch the unselected cells, at V/2 and off it
    (lambda d: d["chip"].update(mask_set_V=3.2), "chip.mask_set_V = 3.2 V puts 1.6 V"),
    (lambda d: d["chip"].update(inhibit_fraction=0.2), "chip.mask_set_V = 3 V puts 2.4 V"),
    (lambda d: d["chip"].update(gate_voltage_V=1.6), "would write the cells it reads"),
    (lambda d: d["wiring"].update(triggers={"set_line": 1, "reset_line": 2}),
     "[instruments.pulse_reset]"),
])
def test_a_fefet_station_file_that_cannot_address_its_cells_is_refused(
        edit: Callable[[dict[str, Any]], Any], words: str, tmp_path: Path) -> None:
    doc = fefet_doc()
    edit(doc)
    with pytest.raises(ConfigError) as e:
        parse_station(doc, tmp_path / "s.toml")
    assert words in str(e.value)


def test_an_emulated_die_of_another_technology_is_refused(tmp_path: Path) -> None:
    from labctl.sim_backend.emulator.bench import EmulatedBench

    doc = fefet_doc()
    doc["emulation"]["preset"] = "cmo-hfox-1t1r"
    with pytest.raises(ConfigError, match="is a 1t1r-reram die but chip.technology is fefet"):
        EmulatedBench.from_station(parse_station(doc, tmp_path / "s.toml"))


def test_sparse_training_runs_on_the_fefet_station(serve_fefet: Any, tmp_path: Path) -> None:
    """The sparse-training pipeline on windows of the emulated die: masks written through
    the sparsity lines, weights through the word lines; it learns two separable classes."""
    from labctl.pipelines.array_bank import make_bank
    from labctl.pipelines.sparse import cost_model as cm
    from labctl.pipelines.sparse.arrays import ArrayWindow, tile
    from labctl.pipelines.sparse.train import (
        SparseData,
        SparseTrainConfig,
        SparseTraining,
        array_plan,
    )
    from labctl.protocols.base import run

    rng = np.random.default_rng(3)

    def blobs(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = np.clip(0.5 + (2 * y[:, None] - 1) * np.array([0.3, -0.3, 0.3, -0.3]) +
                    0.1 * rng.standard_normal((n, 4)), 0, 1)
        return x, y

    (xa, ya), (xb, yb) = blobs(96), blobs(40)
    data = SparseData(xa, ya, xb, yb, 2)
    cfg = SparseTrainConfig(dataset="blobs", sparsity=0.5, hidden=(4,), epochs=2, batch=8,
                            baselines=False, eval_passes=1, vau_runs=2,
                            vau_sparsities=(0.0, 0.5), vau_window=2, batches_per_yield=6,
                            cost=cm.load_cost_model().as_dict())
    plan = array_plan(cfg, 4, 2)
    running, station = serve_fefet()
    proto = SparseTraining(cfg, data)
    out = tmp_path / "sparse.h5"
    with HardwareArray.from_station(station) as hw:
        places = tile(plan, hw.info.shape)
        bank = make_bank({n: ArrayWindow(hw, *places[n], r, c) for n, r, c in plan})
        with RunWriter(out, command="pipeline sparse-train", config=proto.config_dict(),
                       backend=hw.describe()) as w:
            summary = run(proto, bank, w)
        die_mask = running.bench.array.state["s_on"].copy()
    assert running.all_safe() and running.bench.exposure.overstress == []
    assert summary["accuracy"] >= 0.9, summary
    assert summary["measured_sparsity"] == pytest.approx(0.5, abs=0.13)
    with RunReader(out) as r:
        assert r.status == "complete"
        for name, rows, cols in plan:     # sparse.L<k>.<pos|neg>
            r0, c0 = places[name]
            stored = r.data(f"maps/epoch_002/{name.split('.')[1]}/mask").astype(bool)
            # the mask the run recorded is the die's sparsity FeFETs
            assert np.array_equal(die_mask[r0:r0 + rows, c0:c0 + cols], stored), name


@pytest.mark.parametrize("argv, words", [
    (["run", "forming"], "forming is for 1T1R ReRAM cells; this chip is fefet-2t"),
    (["run", "symmetry-point"], "models 1T1R ReRAM cells"),
    (["pipeline", "sparse-train", "--dataset", "digits"],
     "the arrays need more than the 8x8 die"),
])
def test_what_a_fefet_station_cannot_do_is_refused_before_a_pulse(
        argv: list[str], words: str, serve_fefet: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main

    running, station = serve_fefet()
    code = main([*argv, "--backend", str(station), "--out", str(tmp_path / "r.h5")])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert running.bench.exposure.pulses == 0 and running.all_safe()


def test_a_fefet_station_run_replays_from_its_transcript(
        serve_fefet: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Weight pulses and reads through the word and bit lines, recorded, then replayed
    offline through the same FefetHardwareArray: the same summary."""
    import json

    from labctl.cli import main

    running, station = serve_fefet()
    out = tmp_path / "p.h5"
    assert main(["run", "program", "--backend", str(station), "--levels", "2", "--g-min-S",
                 "3e-6", "--g-max-S", "6e-6", "--max-pulses", "20", "--reset", "pulses",
                 "--set-V", "2.3", "--reset-V", "-2.3", "--width-s", "1e-4", "--quiet",
                 "--json", "--out", str(out)]) == 0
    recorded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert recorded["pulses_mean_all"] > 0 and running.bench.exposure.pulses > 0
    running.stop()     # no instrument from here on
    code = main(["replay", str(out), "--backend", "transcript", "--json"])
    replay = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, [k for k, v in replay["metrics"].items() if not v["pass"]]
    with RunReader(tmp_path / "p-replay.h5") as r:
        assert r.summary["pulses_mean_all"] == recorded["pulses_mean_all"]


def test_relays_switch_with_the_hold_source_at_zero(serve_fefet: Any) -> None:
    """The inhibit level goes on after the routes close and off before they change or open:
    the relays never switch the gate source-meter's 1.5 V hot (as reads never switch a
    level above the read voltage)."""
    running, station = serve_fefet()
    with HardwareArray.from_station(station) as hw:
        seen: list[float | None] = []
        close, open_routes = hw._close, hw._open_routes
        hw._close = lambda routes: (seen.append(hw._gate_level), close(routes))[1]
        hw._open_routes = lambda: (seen.append(hw._gate_level), open_routes())[1]
        hw.pulse(Cells.at([1, 2, 5], [3, 3, 0]), [3.0, 2.0, -3.0], 100e-6)
        hw.mask(Cells.at([4, 4], [5, 6]), [False, True])
        assert len(seen) >= 7 and set(seen) <= {None, 0.0}, seen
        assert running.bench.exposure.max_line_V == pytest.approx(1.5)   # the inhibit held
    assert running.all_safe()
