"""Weight transfer: mapping, placement, refusing bad weights, programming, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.cli import main
from labctl.data.runfile import RunReader
from labctl.errors import ConfigError
from labctl.pipelines.tiling import place
from labctl.pipelines.weight_mapping import Mapping, make_mapping
from labctl.protocols.transfer import load_results

WINDOW = (9.0e-6, 88.19e-6)


@pytest.mark.parametrize("kind", ["reference", "differential"])
def test_mapping_round_trip_and_ideal_readout(kind):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 5))
    m = make_mapping(w, kind, WINDOW)
    g = m.conductances(w)
    assert g.shape == (7, 5 * m.devices_per_weight)
    assert g.min() >= WINDOW[0] - 1e-15 and g.max() <= WINDOW[1] + 1e-15
    assert np.allclose(m.weights(g), w / np.abs(w).max())
    x = rng.uniform(-1, 1, (3, 7))
    v = 0.2 * x
    assert np.allclose(m.outputs(v @ g, v, 0.2), x @ (w / np.abs(w).max()))


def test_reference_mapping_is_the_benchmark_window():
    m = Mapping("reference", *WINDOW, w_max=1.0)
    assert np.allclose(m.conductances(np.array([[-1.0, 0.0, 1.0]])),
                       [[9.0e-6, 48.595e-6, 88.19e-6]])


def test_placement_refuses_with_tiling_off():
    with pytest.raises(ConfigError, match="tiling is off"):
        place((65, 128), (64, 64), group=2, tiling=False)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), m=st.integers(1, 40), ar=st.integers(1, 32),
       ac=st.integers(2, 32), group=st.sampled_from([1, 2]))
def test_tiles_cover_the_matrix_once_and_fit(n, m, ar, ac, group):
    p = place((n, m * group), (ar, ac), group=group)
    seen = np.zeros((n, m * group), int)
    for k in range(p.loads):
        used = np.zeros((ar, ac), int)
        for t in p.tiles_of(k):
            r0, r1 = t.rows
            c0, c1 = t.cols
            assert c0 % group == 0 and c1 % group == 0       # pairs never split
            seen[r0:r1, c0:c1] += 1
            rr, cc = t.array_cells()
            assert rr.max() < ar and cc.max() < ac
            used[rr, cc] += 1
        assert used.max() <= 1                               # no overlap within a load
    assert (seen == 1).all()


def _run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("content, why", [
    (np.array([[1.0, np.nan], [0.5, 0.1]]), "NaN"),
    (np.array([[1.0, np.inf], [0.5, 0.1]]), "NaN/infinite"),
    (np.zeros((0, 4)), "empty"),
    (np.ones(5), "2-D"),
    (np.ones((2, 2, 2)), "2-D"),
    (np.zeros((3, 3)), "all zero"),
    (np.ones((9, 3)), "tiling is off"),
])
def test_bad_weights_exit_2_one_line_no_file(content, why, tmp_path, capsys):
    f = tmp_path / "w.npy"
    np.save(f, content)
    out = tmp_path / "run.h5"
    code, _, err = _run_cli(["program", str(f), "--no-tiling", "--out", str(out), "--quiet"],
                            capsys)
    assert code == 2
    assert why in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_weight_files(tmp_path, capsys):
    bad = tmp_path / "w.csv"
    bad.write_text("1,2\n3,x\n")
    code, _, err = _run_cli(["program", str(bad), "--quiet", "--out", str(tmp_path / "a.h5")],
                            capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = _run_cli(["program", str(tmp_path / "none.npy"), "--quiet"], capsys)
    assert code == 2 and "does not exist" in err
    text = tmp_path / "w.npy"
    text.write_text("1 2\n3 4\n")
    code, _, err = _run_cli(["program", str(text), "--quiet"], capsys)
    assert code == 2 and "not a NumPy .npy file" in err and "pickled" not in err


def test_h5_dataset_source_and_tiled_transfer(tmp_path, capsys):
    import h5py

    w = np.random.default_rng(3).normal(size=(12, 3))
    src = tmp_path / "w.h5"
    with h5py.File(src, "w") as f:
        f["layer/w"] = w
    out = tmp_path / "t.h5"
    code, stdout, err = _run_cli(["program", f"{src}:layer/w", "--out", str(out), "--json",
                                  "--quiet", "--seed", "2"], capsys)
    assert code == 0, err
    import json

    s = json.loads(stdout.strip().splitlines()[-1])
    # 12x3 weights as pairs = 12x6 devices on the default 8x4 chip: several loads
    assert s["cells"] == 72 and s["loads"] > 1 and s["converged"] == 72
    with RunReader(out) as r:
        assert np.array_equal(r.data("transfer/weights"), w)
        assert r.config["mapping"]["kind"] == "differential"
        assert r.h5["transfer/load_end_s"].shape == (s["loads"],)


class _Spy:
    """Counts the pulses every cell receives (wraps a SimulatedArray)."""

    def __init__(self, array):
        self.a = array
        self.count = np.zeros(array.info.shape, int)

    def __getattr__(self, name):
        return getattr(self.a, name)

    def pulse(self, cells, amplitude_V, width_s, *, gate_V=None, count=1):
        r, c = cells.indices(self.a.info.shape)
        n = np.broadcast_to(np.asarray(count), r.shape)
        amp = np.broadcast_to(np.asarray(amplitude_V), r.shape)
        np.add.at(self.count, (r, c), np.where(amp != 0, n, 0))
        return self.a.pulse(cells, amplitude_V, width_s, gate_V=gate_V, count=count)


def test_no_cell_is_pulsed_after_it_converged(tmp_path):
    """Pulses received == pulses recorded (all attempts): converged cells are never retried."""
    import argparse

    from labctl.commands.backend import open_sim
    from labctl.commands.program import build_transfer
    from labctl.data.runfile import RunWriter
    from labctl.protocols.base import run

    w = np.clip(np.random.default_rng(1).normal(size=(12, 12)), -1, 1)
    spy = _Spy(open_sim("cmo-hfox-1t1r", 12, 12, seed=4))
    args = argparse.Namespace(weights="w.npy", mapping="reference", window_S=list(WINDOW),
                              w_max=None, no_tiling=True, tolerance=0.002, max_pulses=150,
                              width_s=2.5e-6, reset="sweep")
    proto = build_transfer(args, w, spy.info)
    with RunWriter(tmp_path / "t.h5", command="program", config=proto.config_dict(),
                   backend=spy.describe()) as wr:
        run(proto, spy, wr)
        res = load_results(wr, 1)
        retried = "transfer/load0/retry1/g_S" in wr
    grid = np.zeros((12, 12), int)
    grid[res["row"].astype(int), res["col"].astype(int)] = res["pulses"]
    assert retried                        # the small pulse cap forces retries
    assert np.array_equal(spy.count, grid)


def _labctl(*argv):
    return subprocess.run([sys.executable, "-m", "labctl.cli", *argv, "--quiet"],
                          capture_output=True, text=True, timeout=600)


def _checkpointed(path) -> bool:
    """The run file holds a checkpoint (False while it does not exist or is being created)."""
    try:
        with RunReader(path) as r:
            return r.checkpoint() is not None
    except Exception:  # noqa: BLE001 - not yet created, or created but not yet flushed
        return False


def test_sigkill_then_resume_ends_with_the_same_chip(tmp_path):
    w = np.clip(np.random.default_rng(7).normal(size=(16, 16)), -1, 1)
    wf = tmp_path / "w.npy"
    np.save(wf, w)
    argv = ["program", str(wf), "--rows", "16", "--cols", "16", "--mapping", "reference",
            "--window-S", "9e-6", "88.19e-6", "--tolerance", "0.002", "--seed", "11"]
    full = tmp_path / "full.h5"
    t0 = time.monotonic()
    r = _labctl(*argv, "--out", str(full))
    duration = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    killed = tmp_path / "killed.h5"
    rng = np.random.default_rng()
    for _ in range(6):       # a random moment after the first checkpoint, while programming
        killed.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", *argv, "--out",
                                 str(killed), "--quiet"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # polled, not timed: on a loaded machine a timed kill can land before the first
        # flush (an empty file, refused as such), which says nothing about resuming
        deadline = time.monotonic() + 120
        while proc.poll() is None and not _checkpointed(killed) \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3) * duration)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and _checkpointed(killed):
            with RunReader(killed) as k:
                if k.status == "running":
                    break
    else:
        pytest.skip("could not kill the transfer mid-way (machine too fast)")
    r = _labctl(*argv, "--resume", str(killed))
    assert r.returncode == 0, r.stderr
    with RunReader(full) as a, RunReader(killed) as b:
        assert b.status == "complete"
        assert a.summary == b.summary
        sa, sb = a.checkpoint()["backend"], b.checkpoint()["backend"]
        assert sa["t_s"] == sb["t_s"]
        for key in sa["state"]:          # the whole chip, noise-free: identical
            assert np.array_equal(sa["state"][key], sb["state"][key]), key
        ra, rb = load_results(a, 1), load_results(b, 1)
        for key in ("g_S", "pulses", "converged"):
            assert np.array_equal(ra[key], rb[key]), key
        n = "transfer/load0/rounds/index"
        assert a.h5[n].shape == b.h5[n].shape            # no round recorded twice


def test_report_of_a_transfer_stopped_before_its_first_batch(tmp_path, capsys, monkeypatch):
    """An aborted transfer with no finished batch is said to have recorded nothing to draw
    (one line, exit 2, as every other report), not drawn as an empty '0 cells' figure."""
    from labctl.protocols.program_verify import VerifyConfig

    def stop(*a, **k):
        raise KeyboardInterrupt

    f = tmp_path / "w.npy"
    np.save(f, np.eye(4) * 0.5)
    out = tmp_path / "run.h5"
    monkeypatch.setattr(VerifyConfig, "check_limits", lambda self, limits: None)
    monkeypatch.setattr("labctl.protocols.transfer.verify_steps", stop)
    code, _, _ = _run_cli(["program", str(f), "--out", str(out), "--quiet"], capsys)
    assert code == 130
    code, _, err = _run_cli(["report", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "is aborted and stopped before it recorded anything" in err
    assert not (tmp_path / "run-report" / "transfer_conductance.png").exists()


def test_a_w_max_below_the_largest_weight_is_said_to_clip(tmp_path, capsys):
    f = tmp_path / "w.npy"
    np.save(f, np.array([[0.5, -0.2], [0.05, 0.3]]))
    code, _, err = _run_cli(["program", str(f), "--w-max", "0.25", "--quiet",
                             "--out", str(tmp_path / "a.h5")], capsys)
    assert code == 0 and "--w-max 0.25 clips 2 of 4 weights (largest |w| 0.5)" in err
    code, _, err = _run_cli(["program", str(f), "--quiet", "--out", str(tmp_path / "b.h5")],
                            capsys)
    assert code == 0 and "clips" not in err


@pytest.mark.parametrize("kind, shape", [("differential", (4, 3)), ("reference", (4, 3)),
                                         ("differential", (12, 5))])
def test_weight_error_combines_each_weights_devices(kind, shape, tmp_path, capsys):
    """The summary's weight error is that of the weights the programmed conductances
    represent (a differential pair carries both devices' errors), over every load."""
    import json

    w = np.random.default_rng(1).normal(size=shape)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "p.h5"
    assert main(["program", str(tmp_path / "w.npy"), "--mapping", kind, "--rows", "8",
                 "--cols", "4", "--quiet", "--json", "--out", str(out)]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with RunReader(out) as r:
        cfg = r.config
        mapping = Mapping.from_dict(cfg["mapping"])
        res = load_results(r, int(cfg["placement"]["loads"]))
    # independently: each load's cells back into the device matrix, tile by tile
    from labctl.pipelines.tiling import Placement

    placement = Placement.from_dict(cfg["placement"])
    g = np.full(placement.matrix_shape, np.nan)
    for k in range(placement.loads):
        at = res["load"] == k
        cell = {(int(a), int(b)): v for a, b, v in zip(res["row"][at], res["col"][at],
                                                        res["g_S"][at], strict=True)}
        for t in placement.tiles_of(k):
            for i in range(t.shape[0]):
                for j in range(t.shape[1]):
                    g[t.rows[0] + i, t.cols[0] + j] = cell[(t.at[0] + i, t.at[1] + j)]
    want = np.sqrt(np.mean((mapping.weights(g) - w / mapping.w_max) ** 2))
    assert s["weight_error_rms"] == pytest.approx(want, rel=1e-9)
    per_device = s["g_error_rms_S"] / mapping.scale_S
    assert (s["weight_error_rms"] > per_device) == (kind == "differential")


@pytest.mark.parametrize("command, name, content, why", [
    ("program", "w.npy", b"", "is empty"),
    ("program", "w.csv", b"\n", "are empty"),
    ("program", "w.txt", b"1,2\n", "expected a .npy or .csv file"),
    ("targets", "t.npy", b"", "is empty"),
    ("targets", "t.csv", b"", "is empty"),
    ("targets", "t.csv", b"\n", "holds no values"),
    ("targets", "t.txt", b"1e-5\n", "expected a .npy or .csv file"),
    ("targets", "t.npy", b"not numpy at all", "not a NumPy .npy file"),
])
def test_empty_or_misnamed_array_files_are_one_line(command, name, content, why, tmp_path,
                                                    capsys):
    """An empty .npy was an internal error (EOFError, exit 1); an empty .csv printed numpy's
    warning too; a .txt was 'not a numeric array: ... expected .npy or .csv'."""
    f = tmp_path / name
    f.write_bytes(content)
    out = tmp_path / "run.h5"
    argv = (["program", str(f)] if command == "program"
            else ["run", "program", "--targets", str(f)])
    code, _, err = _run_cli([*argv, "--out", str(out), "--quiet"], capsys)
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    assert "numeric array" not in err and not out.exists()
    (tmp_path / "d").mkdir()
    code, _, err = _run_cli(["program", str(tmp_path / "d"), "--quiet"], capsys)
    assert code == 2 and "is a directory" in err


def test_text_warns_of_unconverged_cells_and_of_several_loads():
    """A FeFET transfer with 7 of 64 cells converged ended without a word; a matrix on two
    loads of the default 8x4 die could not be inferred, and program did not say so."""
    from labctl.commands.program import human

    s = {"cells": 64, "mapping": "differential", "tiles": 2, "loads": 2, "tolerance": 0.02,
         "converged": 7, "pulses_mean": 2767.2, "pulses_max": 3000, "g_error_rms_S": 3e-6,
         "weight_error_rms": 0.6, "run_file": "p.h5"}
    text = human(s)
    assert "only 7 of 64 cells converged" in text and "2 loads of the array" in text
    ok = human({**s, "converged": 64, "loads": 1, "mapping": "reference"})
    assert "WARNING" not in ok and "loads of the array" not in ok
    assert "(rms)" in ok and "combined" not in ok     # one device per weight
