"""Index-free sparse training on two-FeFET arrays (issue 8): pieces, then the whole pipeline.

The end-to-end test trains on the 8x8 digits through the ``mos2-fefet-2t`` simulator (10 %
write noise, 4.25 % read noise) and checks the issue's targets: at 75 % sparsity the accuracy
is within 3 points of the dense network on the same arrays, and the vectorial approximate
update within 1 point of the exact cell-by-cell update.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labctl.array import CellCounts, Cells
from labctl.commands.backend import open_sim
from labctl.data.runfile import RunReader, RunWriter
from labctl.errors import ConfigError
from labctl.pipelines.array_bank import make_bank
from labctl.pipelines.sparse import cost_model as cm
from labctl.pipelines.sparse.arrays import ArrayWindow, tile
from labctl.pipelines.sparse.layer import PulseConfig, SparseLayer
from labctl.pipelines.sparse.topology import (
    TopologyConfig,
    initial_mask,
    layer_sparsities,
    prune_regrow,
    update_fraction,
)
from labctl.pipelines.sparse.train import SparseData, SparseTrainConfig, SparseTraining, array_plan
from labctl.pipelines.sparse.vau import (
    exact_counts,
    exact_sample_counts,
    update_error_curve,
    vau_counts,
    vau_trains,
)
from labctl.protocols.base import run
from labctl.sim_backend.simulated_array import SimulatedArray

PRESET = "mos2-fefet-2t"


# --- the update rules ----------------------------------------------------------------------------
def _batch(rng: np.random.Generator, b: int = 8, rows: int = 12, cols: int = 5):
    return rng.random((b, rows)), rng.normal(0.0, 0.05, (b, cols))


@pytest.mark.parametrize("rule", ["vau", "cell", "cell-batch"])
def test_updates_are_unbiased_estimates_of_the_exact_update(rule):
    rng = np.random.default_rng(0)
    x, d = _batch(rng)
    mask = np.ones((12, 5), bool)
    target = -6.0 * x.T @ d
    draws = 3000
    if rule == "vau":
        mean = sum(vau_counts(x, d, 6.0, rng, slots=31).net for _ in range(draws)) / draws
    elif rule == "cell":
        mean = sum(exact_sample_counts(x, d, mask, 6.0, rng, 64).net
                   for _ in range(draws)) / draws
    else:
        mean = sum(exact_counts(x, d, mask, 6.0, rng, 64).net for _ in range(draws)) / draws
    assert np.abs(mean - target).max() < 0.12
    assert np.corrcoef(mean.ravel(), target.ravel())[0, 1] > 0.99


def test_vau_trains_give_each_sample_max_of_slots_and_ceil_k_time_slots():
    """Sample b takes BL_b = max(slots, ceil(k_b)) slots, k_b = lr max|x_b| max|d_b| / dw_min
    (fewer than ceil(k_b) would need line probabilities above 1); a silent sample none."""
    rng = np.random.default_rng(4)
    x, d = _batch(rng)
    x[5] = 0.0
    for lr_over_dw, slots in ((6.0, 31), (300.0, 4), (1000.0, 31)):
        k = lr_over_dw * np.abs(x).max(axis=1) * np.abs(d).max(axis=1)
        bl = np.maximum(slots, np.ceil(k[k > 0])).astype(int)
        assert lr_over_dw < 100 or (bl > slots).any()
        rows, cols = vau_trains(x, d, lr_over_dw, rng, slots)
        assert rows.shape == (bl.sum(), 12) and cols.shape == (bl.sum(), 5)
        assert vau_counts(x, d, lr_over_dw, rng, slots).slots == bl.sum()


def test_vau_is_unbiased_when_samples_need_more_than_the_slots():
    """With k_b > slots (a large lr / dw_min) every sample takes ceil(k_b) slots, so no line
    probability clips at 1 and the VAU still writes the exact update in expectation."""
    rng = np.random.default_rng(0)
    x, d = _batch(rng)
    lr_over_dw, slots = 2000.0, 31
    assert (lr_over_dw * np.abs(x).max(axis=1) * np.abs(d).max(axis=1) > slots).all()
    target = -lr_over_dw * x.T @ d
    draws = 2000
    mean = sum(vau_counts(x, d, lr_over_dw, rng, slots).net for _ in range(draws)) / draws
    assert np.abs(mean - target).max() < 0.01 * np.abs(target).max()
    assert np.corrcoef(mean.ravel(), target.ravel())[0, 1] > 0.999


def test_vau_programs_masked_cells_the_exact_update_does_not():
    rng = np.random.default_rng(1)
    x, d = _batch(rng, b=16)
    mask = initial_mask((12, 5), 0.75, rng)
    vau = sum(np.abs(vau_counts(x, d, 20.0, rng, 31).net) for _ in range(20))
    cell = sum(np.abs(exact_sample_counts(x, d, mask, 20.0, rng, 8).net) for _ in range(20))
    assert vau[~mask].sum() > 0
    assert cell[~mask].sum() == 0 and cell[mask].sum() > 0


def test_vau_error_grows_with_sparsity_and_the_exact_rounding_error_falls():
    rng = np.random.default_rng(2)
    x = rng.random((128, 24))
    d = rng.normal(0.0, 0.02, (128, 6)) + 0.01   # a coherent gradient component
    sp = np.array([0.0, 0.5, 0.9])
    c = update_error_curve(x, d, sp, runs=20, batch=8, lr_over_dw=10.0, rng=rng,
                           slots=31, window=5)
    assert c.vau_bias_mse[0] == 0.0 and np.all(np.diff(c.vau_bias_mse) > 0)
    assert np.all(np.diff(c.vau_mse - c.cell_mse) > 0)
    assert np.all(np.diff(c.cell_mse) < 0)
    assert c.runs == 20 and c.window == 5
    # at 0 % sparsity no cell is masked: their error is undefined, not 0 (a 0 was drawn)
    assert np.isnan(c.vau_mse_masked[0]) and np.all(np.isfinite(c.vau_mse_masked[1:]))
    assert np.all(np.isfinite(c.vau_mse_active))


# --- topology (RigL) -----------------------------------------------------------------------------
def test_cosine_prune_fraction_schedule():
    cfg = TopologyConfig(alpha=0.3, period=10, end_fraction=0.5)
    assert update_fraction(10, 200, cfg) == pytest.approx(0.15 * (1 + np.cos(np.pi * 0.1)))
    assert update_fraction(11, 200, cfg) == 0.0          # not a topology step
    assert update_fraction(100, 200, cfg) == 0.0         # after the end fraction
    fr = [update_fraction(s, 200, cfg) for s in range(10, 100, 10)]
    assert np.all(np.diff(fr) < 0)


def test_prune_by_magnitude_regrow_by_gradient():
    rng = np.random.default_rng(3)
    mask = np.zeros((4, 4), bool)
    mask[0] = mask[1] = True
    w = np.arange(16, dtype=float).reshape(4, 4) + 1.0   # row 0 has the smallest magnitudes
    g = np.zeros((4, 4))
    g[3] = [9, 8, 7, 6]
    new, moved = prune_regrow(mask, w, g, 0.25, rng)
    assert moved == 2 and new.sum() == mask.sum()
    assert not new[0, 0] and not new[0, 1]               # the two smallest weights dropped
    assert new[3, 0] and new[3, 1]                       # the two largest gradients grown


@pytest.mark.parametrize("shapes", [[(784, 128), (128, 26)], [(64, 64), (64, 10)],
                                    [(64, 32), (32, 32), (32, 10)]])
def test_erk_keeps_the_overall_sparsity_and_small_layers_denser(shapes):
    sp = layer_sparsities(shapes, 0.75, "erk")
    sizes = np.array([r * c for r, c in shapes])
    assert np.sum(sizes * (1 - np.array(sp))) == pytest.approx(0.25 * sizes.sum())
    assert all(0.0 <= s < 1.0 for s in sp) and sp[-1] < sp[0]
    assert layer_sparsities(shapes, 0.75, "uniform") == [0.75] * len(shapes)


def test_rejects_bad_topology_settings():
    with pytest.raises(ConfigError):
        TopologyConfig(period=0).validate()
    with pytest.raises(ConfigError):
        TopologyConfig(alpha=1.5).validate()


# --- the layer on simulated two-FeFET arrays ------------------------------------------------------
@pytest.fixture
def layer() -> SparseLayer:
    return SparseLayer(open_sim(PRESET, 6, 4, 11), open_sim(PRESET, 6, 4, 12), PulseConfig(),
                       "L")


def test_mask_in_the_array_zeroes_the_weight(layer):
    x = np.zeros((1, 6))
    x[0, 2] = 1.0
    before = layer.forward(x)[0]
    mask = np.ones((6, 4), bool)
    mask[2, 1] = False
    layer.set_mask(mask)
    after = layer.forward(x)[0]
    assert abs(after[1]) < 1e-3 and abs(after[1]) < 0.1 * abs(before[1]) + 1e-3
    assert layer.read_mask()[2, 1] == 0 and layer.read_mask().sum() == 23
    assert layer.mask_writes == 2                       # one sparsity FeFET on each array


def test_push_pull_gate_pulses_move_the_weights_and_calibrate(layer):
    dw = layer.calibrate()
    assert 0.005 < dw < 0.2
    w0 = layer.read_weights()
    n = np.zeros((6, 4), np.int64)
    n[1, 1], n[4, 3] = 10, -10
    layer._apply_cells(n)
    dw_meas = layer.read_weights() - w0
    assert dw_meas[1, 1] > 4 * dw and dw_meas[4, 3] < -4 * dw
    assert layer.backward(np.ones((1, 4))).shape == (1, 6)


def test_regrown_weights_can_be_programmed_to_zero(layer):
    layer.calibrate()
    n = np.zeros((6, 4), np.int64)
    n[0, :] = 20
    layer._apply_cells(n)
    sel = np.zeros((6, 4), bool)
    sel[0, :2] = True
    before = layer.read_weights()
    layer.zero_weights(sel)
    after = sum(layer.read_weights() for _ in range(20)) / 20
    assert np.all(np.abs(after[0, :2]) < 0.4 * np.abs(before[0, :2]))
    assert np.allclose(after[0, 2:], before[0, 2:], atol=0.06)   # untouched


def test_forward_and_backward_are_the_array_products(layer):
    """Averaged over fresh read noise, the MVMs equal products with the read weights."""
    rng = np.random.default_rng(4)
    x = rng.random((3, 6))
    d = rng.normal(size=(3, 4))
    n = 40
    w = sum(layer.read_weights() for _ in range(n)) / n
    fwd = sum(layer.forward(x) for _ in range(n)) / n
    bwd = sum(layer.backward(d) for _ in range(n)) / n
    assert np.allclose(fwd, x @ w, atol=0.02)
    assert np.allclose(bwd, d @ w.T, atol=0.05)


# --- windows of one die and the bank -----------------------------------------------------------
def test_window_is_the_sub_array(test_model):
    die = SimulatedArray(test_model, 8, 10, seed=0)
    die.pulse(Cells.all(), 1.0, 1e-6, count=np.arange(80) % 7)
    win = ArrayWindow(die, 2, 3, 4, 5)
    g = die.conductance_matrix()[2:6, 3:8]
    x = np.random.default_rng(0).random((2, 4))
    assert np.allclose(win.mvm(x), x @ g)
    y = np.random.default_rng(1).random((2, 5))
    assert np.allclose(win.mvm(y, transpose=True), y @ g.T)
    win.mask(Cells.at([0], [0]), False)
    assert not die.state["on"][2, 3]
    win.pulse_outer(np.ones((4, 5), int), 1e-6, set_V=1.0, reset_V=1.0)
    assert np.allclose(die.conductance_matrix()[2:6, 4:8], g[:, 1:] + 1e-6)
    # a scipy.sparse count matrix means the same
    from scipy import sparse

    win.pulse_outer(sparse.coo_array(np.ones((4, 5), int)), 1e-6, set_V=1.0, reset_V=1.0)
    assert np.allclose(die.conductance_matrix()[2:6, 4:8], g[:, 1:] + 2e-6)
    # and so does a CellCounts listing every cell of the window
    win.pulse_outer(CellCounts((4, 5), np.arange(20), np.ones(20, np.int64)), 1e-6, set_V=1.0,
                    reset_V=1.0)
    assert np.allclose(die.conductance_matrix()[2:6, 4:8], g[:, 1:] + 3e-6)


def test_tiling_and_bank():
    plan = [("a", 4, 6), ("b", 4, 6), ("c", 2, 3)]
    places = tile(plan, (8, 12))
    assert len(set(places.values())) == 3
    with pytest.raises(ValueError):
        tile(plan, (4, 8))
    bank = make_bank({"a": open_sim(PRESET, 2, 2, 0), "b": open_sim(PRESET, 3, 2, 1)})
    assert bank.info.shape == (3, 2) and set(bank.snapshot()) == {"a", "b"}


# --- cost model -----------------------------------------------------------------------------------
def _workload(nnz_frac: float = 0.25) -> cm.Workload:
    lay = cm.LayerLoad(rows=64, cols=64, nnz=int(64 * 64 * nnz_frac),
                       max_col_nnz=int(64 * nnz_frac) + 4, input_ms=0.1, g_on_S=5e-6,
                       g_off_S=2e-9)
    return cm.Workload(layers=(lay,), read_voltage_V=0.1, batch=16, steps=100,
                       topology_period=25)


def test_cost_model_file_and_comparison(tmp_path):
    p = cm.load_cost_model()
    table = cm.compare(_workload(), {}, p)
    assert cm.ratios(table, "inference_energy_J", "dense") > 1.0
    assert cm.ratios(table, "inference_latency_s", "dense") > 1.0
    assert cm.ratios(table, "inference_energy_J", "index_based") > 1.0
    # the index memory is what costs the index-based layout: make it free and it gets cheaper
    text = (Path(cm.__file__).with_name("cost_fefet.toml")).read_text()
    free = tmp_path / "free.toml"
    free.write_text(text.replace("index_bit_read_J = 0.16e-12", "index_bit_read_J = 0"))
    t2 = cm.compare(_workload(), {}, cm.load_cost_model(str(free)))
    i = table["designs"].index("index_based")
    assert t2["inference_energy_J"][i] < table["inference_energy_J"][i]
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("mac_J", "mac_energy"))
    with pytest.raises(ConfigError):
        cm.load_cost_model(str(bad))
    with pytest.raises(ConfigError):
        cm.load_cost_model(str(tmp_path / "missing.toml"))


def test_cost_model_follows_the_pulse_the_run_sends(tmp_path):
    """The file's pulse costs are for its reference pulse (2 V, 100 us); a run with another
    --pulse-width-s or --pulse-V pays its own (the latency ignored the width before)."""
    p = cm.load_cost_model()
    assert (p.pulse_ref_V, p.pulse_ref_width_s) == (2.0, 100e-6)
    assert p.for_pulse(2.0, 100e-6) == p
    q = p.for_pulse(-3.0, 1e-3)
    assert q.pulse_time_s == pytest.approx(10 * p.pulse_time_s)
    assert q.pulse_energy_J == pytest.approx(2.25 * p.pulse_energy_J)
    assert q.line_energy_J == pytest.approx(2.25 * p.line_energy_J)
    assert (q.mask_write_J, q.mask_write_time_s) == (p.mask_write_J, p.mask_write_time_s)
    upd = {"index_free": cm.UpdateLoad("vau", pulses=1000, slots=500, mask_writes=0, moved=0)}
    i = 0
    slow = cm.compare(_workload(), upd, q)["train_latency_s"][i]
    assert slow > cm.compare(_workload(), upd, p)["train_latency_s"][i]
    # a file without the reference keys (written before they existed) is read as 2 V, 100 us
    text = (Path(cm.__file__).with_name("cost_fefet.toml")).read_text()
    old = tmp_path / "old.toml"
    old.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("pulse_ref")))
    assert cm.load_cost_model(str(old)) == p


def test_cell_by_cell_update_costs_scale_with_pulses():
    w, p = _workload(), cm.load_cost_model()
    few = cm.UpdateLoad("cell", pulses=100, slots=50, mask_writes=0, moved=0)
    many = cm.UpdateLoad("cell", pulses=1000, slots=500, mask_writes=0, moved=0)
    t1, e1 = cm.training_step("index_free", few, w, p)
    t2, e2 = cm.training_step("index_free", many, w, p)
    assert t2 > t1 and e2 > e1


# --- the protocol: resume, then the whole pipeline -----------------------------------------------
def _small(tmp_path: Path, **over):
    from labctl.datasets import load_dataset

    ds = load_dataset("digits", limit=200)
    cfg = SparseTrainConfig(hidden=(16,), epochs=1, batch=16, vau_runs=3, eval_passes=1,
                            batches_per_yield=4, vau_sparsities=(0.0, 0.75), vau_window=2,
                            cost=cm.load_cost_model().as_dict(), **over)
    data = SparseData.from_dataset(ds)
    plan = array_plan(cfg, data.x_train.shape[1], data.n_classes)

    def bank():
        return make_bank({n: open_sim(PRESET, r, c, 7 + i) for i, (n, r, c) in enumerate(plan)})

    return SparseTraining(cfg, data), bank


def _writer(path: Path, proto, resume: bool = False) -> RunWriter:
    return RunWriter(path, command="pipeline sparse-train", config=proto.config_dict(),
                     backend={}, resume=resume)


class _Stop(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):   # as the CLI runs it
        _interrupt_and_resume(tmp_path)


def _interrupt_and_resume(tmp_path: Path) -> None:
    proto, bank = _small(tmp_path)
    full = tmp_path / "full.h5"
    with _writer(full, proto) as w:
        summary = run(proto, bank(), w)
    cut = tmp_path / "cut.h5"
    calls = {"n": 0}

    def stop(done, total, label):
        calls["n"] += 1
        if calls["n"] == 9:
            raise _Stop

    w = _writer(cut, proto)
    with pytest.raises(_Stop):
        run(proto, bank(), w, progress=stop)
    w.finish("aborted")
    from labctl.plots.sparse_train import title_note

    with RunReader(cut) as r:
        ckpt = r.checkpoint()
        assert title_note(r).endswith("aborted run: partial data")   # the figures say so
    w = _writer(cut, proto, resume=True)
    resumed = run(proto, bank(), w, resume=ckpt)
    w.finish()
    assert resumed == summary
    with RunReader(full) as a, RunReader(cut) as b:
        for name in a.datasets():
            if name.endswith("wall_s"):
                continue
            x, y = a.data(name), b.data(name)
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def test_config_validation():
    with pytest.raises(ConfigError):
        SparseTrainConfig(sparsity=1.0).validate()
    with pytest.raises(ConfigError):
        SparseTrainConfig(update="rowwise").validate()
    with pytest.raises(ConfigError):
        SparseTrainConfig(cost={"mac_J": 1.0}).validate()


def _labctl(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labctl.cli", *argv], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("argv", [
    ["--sparsity", "1.5"],
    ["--cost-model", "/nonexistent/cost.toml"],
    ["--hidden", "a,b"],
    ["--rows", "8"],
])
def test_bad_input_is_one_line_exit_2(argv, tmp_path):
    r = _labctl("pipeline", "sparse-train", "--out", str(tmp_path / "x.h5"), *argv)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The issue's command on the default settings, in process (no second interpreter)."""
    from labctl.cli import main

    out = tmp_path_factory.mktemp("sparse") / "run.h5"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["pipeline", "sparse-train", "--sparsity", "0.75", "--dataset", "digits",
                   "--preset", PRESET, "--update", "vau", "--out", str(out), "--json",
                   "--quiet"])
    assert rc == 0
    return out, json.loads(buf.getvalue().strip().splitlines()[-1])


def test_digits_meets_the_issue_targets(digits_run):
    _, s = digits_run
    assert s["status"] == "complete" and s["dataset"] == "digits" and s["sparsity"] == 0.75
    for key in ("accuracy", "accuracy_dense", "accuracy_cell_by_cell", "vau_mse",
                "latency_ratio", "energy_ratio"):
        assert s[key] is not None, key
    assert s["accuracy"] > 0.85
    assert s["accuracy_dense"] - s["accuracy"] <= 0.03
    assert s["accuracy_cell_by_cell"] - s["accuracy"] <= 0.01   # VAU within 1 point
    assert s["measured_sparsity"] == pytest.approx(0.75, abs=0.01)
    assert s["samples_per_s"] > 0


def test_run_file_holds_curves_maps_costs_and_provenance(digits_run, tmp_path):
    out, s = digits_run
    with RunReader(out) as r:
        assert r.provenance["dataset"] == "digits" and r.provenance["stand_in"] is False
        assert "source" in r.provenance and "dataset_label" in r.provenance
        sp = r.data("vau_error/sparsity")
        assert 0.75 in sp and len(sp) >= 5 and int(r.data("vau_error/runs")) == 50
        bias = r.data("vau_error/bias_mse")
        assert bias[0] == 0.0 and np.all(np.diff(bias) > 0)
        names = [n.decode() for n in r.data("cost/designs")]
        assert names == ["index_free", "index_free_cell", "index_based", "dense"]
        assert np.all(np.isfinite(r.data("cost/inference_energy_J")))
        assert {"epoch_000", "epoch_004", "epoch_008"} <= set(r.h5["maps"].keys())
        acc = r.data("sparse/test_accuracy")
        assert len(acc) == 9 and acc[-1] > acc[0] + 0.5
        # every printed accuracy is the stored predictions (3 passes) against the labels
        labels = r.data("dataset/test_labels")
        for network, key in (("sparse", "accuracy"), ("dense", "accuracy_dense")):
            predicted = r.data(f"{network}/test_predictions")
            assert predicted.shape == (9, 3, labels.size)
            hits = (predicted == labels).mean(axis=2)
            assert np.allclose(hits.mean(axis=1), r.data(f"{network}/test_accuracy"),
                               rtol=0, atol=1e-12)
            assert s[key] == pytest.approx(hits[-1].mean(), abs=1e-12)
        assert np.allclose(r.data("sparse/sparsity"), 0.75, atol=0.01)
        assert r.data("sparse/topology").shape[1] == 4    # step, fraction, moved per layer
        # the epoch-0 evaluation comes before any training sample: no training loss yet
        loss, seen = r.data("sparse/train_loss"), r.data("sparse/samples")
        assert seen[0] == 0 and np.isnan(loss[0]) and np.all(np.isfinite(loss[1:]))
    from labctl.commands.report import render_report

    pngs = sorted(p.name for p in render_report(out, tmp_path / "rep"))
    assert pngs == ["sparse_train_accuracy.png", "sparse_train_cost.png",
                    "sparse_train_maps.png", "sparse_train_vau_error.png"]


def test_pulses_below_the_coercive_voltage_are_refused_not_trained(tmp_path, capsys):
    """0.5 V gate pulses barely move a MoS2 FeFET: the calibration's step is within its read
    noise, and the run stops with one line instead of training at chance."""
    from labctl.cli import main

    out = tmp_path / "s.h5"
    code = main(["pipeline", "sparse-train", "--pulse-V", "0.5", "--epochs", "1", "--limit",
                 "100", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "do not move the weights measurably" in err[0], err
    assert main(["pipeline", "sparse-train", "--epochs", "1", "--limit", "100", "--quiet",
                 "--out", str(tmp_path / "ok.h5")]) == 0


@pytest.mark.parametrize("preset", ["rram-40nm-random", "cmo-hfox-1t1r"])
def test_a_chip_without_sparsity_fefets_is_refused_before_a_file(tmp_path, capsys, preset):
    """The mask lives in each cell's sparsity FeFET: a 1T1R ReRAM preset is refused with one
    line and no run file (with strong pulses it used to run to 'complete' with its mask
    read back at 0 % sparsity)."""
    from labctl.cli import main

    out = tmp_path / "s.h5"
    code = main(["pipeline", "sparse-train", "--epochs", "1", "--limit", "100", "--quiet",
                 "--preset", preset, "--pulse-V", "5", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "two-FeFET" in err[0] and "1t1r-reram" in err[0], err
    assert not out.exists()


def test_text_summary_without_baselines_and_sloppy_hidden_sizes(tmp_path, capsys):
    """No 'xn/a' for ratios that were not computed; '64,,32' is refused, not read as 64,32."""
    from labctl.cli import main
    from labctl.commands.pipeline_sparse_train import human

    s = {"dataset": "digits", "sparsity": 0.75, "update": "vau", "network": "64-64-10",
         "accuracy": 0.9, "accuracy_cell_by_cell": None, "accuracy_dense": None,
         "vau_mse": 0.45, "vau_mse_relative": 10.7, "latency_ratio": None,
         "energy_ratio": None, "run_file": "s.h5"}
    text = human(s)
    assert "xn/a" not in text and "latency n/a, energy n/a" in text
    assert "0.45 (10.7 x the exact update's mean square)" in text
    out = tmp_path / "s.h5"
    code = main(["pipeline", "sparse-train", "--hidden", "64,,32", "--epochs", "1", "--quiet",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--hidden" in err[0] and not out.exists(), err


def _simple_costs(**over: float) -> cm.CostParams:
    """Every cost 0 except the few a test sets (divisors 1, so that nothing divides by 0)."""
    values = {f: 0.0 for f in cm.CostParams.__dataclass_fields__}
    values.update(columns_per_adc=1, index_bits_per_cycle=1, gather_columns=1, macs_per_s=1e12,
                  adc_max_bits=16, pulse_ref_V=2.0, pulse_ref_width_s=1e-4)
    values.update(over)
    return cm.CostParams(**values)


def _close(value: object) -> object:
    """pytest.approx without its absolute 1e-12 floor (these costs are ~1e-13 J, 1e-8 s)."""
    return pytest.approx(value, rel=1e-9, abs=0.0)


_LAYER = cm.LayerLoad(rows=4, cols=3, nnz=6, max_col_nnz=2, input_ms=0.25, g_on_S=1e-5,
                      g_off_S=1e-7)


def test_adc_resolves_zero_to_n_active_rows():
    """An ADC for n active rows needs ceil(log2(n + 1)) bits: n + 1 levels 0..n."""
    p = _simple_costs(adc_base_bits=0)
    assert [cm.adc_bits(n, p) for n in (0, 1, 2, 3, 4, 7, 8)] == [1, 1, 2, 2, 3, 3, 4]
    assert cm.adc_bits(4, _simple_costs(adc_base_bits=2)) == 5
    assert cm.adc_bits(4, _simple_costs(adc_base_bits=2, adc_max_bits=4)) == 4


def test_one_layer_inference_costs_by_hand():
    """Dense and index-free inference of one layer: two arrays of cells, one conversion per
    column at log2(n+1) bits, one DAC per driven row."""
    p = _simple_costs(read_time_s=1e-8, adc_time_per_bit_s=1e-9, adc_fom_J=1e-15,
                      dac_row_J=1e-14)
    w = cm.Workload(layers=(_LAYER,), read_voltage_V=0.5, batch=1, steps=1, topology_period=1)
    cell = 0.25 * 0.5 ** 2 * 1e-8          # input_ms V^2 t_read, per siemens, per array
    t, e = cm.inference("dense", w, p)      # 4 active rows per column -> 3 bits
    assert t == _close(1e-8 + 3 * 3 * 1e-9)
    assert e == _close(2 * cell * 12 * 1e-5 + 3 * 1e-15 * 2 ** 3 + 4 * 1e-14)
    t, e = cm.inference("index_free", w, p)  # at most 2 active rows -> 2 bits
    assert t == _close(1e-8 + 3 * 2 * 1e-9)
    assert e == _close(2 * cell * (6 * 1e-5 + 6 * 1e-7) + 3 * 1e-15 * 2 ** 2
                              + 4 * 1e-14)


def test_training_step_counts_backward_mvms_and_writes_the_mask_in_two_slots_per_row():
    """A step: forward MVMs of every layer, backward MVMs of all but the first, per sample;
    a topology update rewrites each row's binary mask in an enable and a disable slot."""
    p = _simple_costs(read_time_s=1e-8, adc_time_per_bit_s=1e-9, adc_fom_J=1e-15,
                      dac_row_J=1e-14, mask_write_time_s=1e-6)
    second = cm.LayerLoad(rows=3, cols=2, nnz=3, max_col_nnz=2, input_ms=0.5, g_on_S=2e-5,
                          g_off_S=1e-7)
    w = cm.Workload(layers=(_LAYER, second), read_voltage_V=0.5, batch=2, steps=1,
                    topology_period=1)
    # second layer backward: 2 driven rows -> 3 outputs, ceil(3/3) = 1 active row -> 1 bit
    t_bwd = 1e-8 + 3 * 1 * 1e-9
    e_bwd = (2 * 0.5 * 0.25 * 1e-8 * (3 * 2e-5 + 3 * 1e-7) + 3 * 1e-15 * 2 + 2 * 1e-14)
    assert cm.layer_inference("index_free", second, 0.5, p, backward=True) == _close(
        (t_bwd, e_bwd))
    fwd = [cm.layer_inference("index_free", lay, 0.5, p) for lay in w.layers]
    quiet = cm.UpdateLoad(mode="cell", pulses=0, slots=0, mask_writes=0, moved=0)
    t, e = cm.training_step("index_free", quiet, w, p)
    macs = 2 * (12 + 6)                     # the per-cell gradient matrix of each sample
    assert t == _close(2 * (fwd[0][0] + fwd[1][0] + t_bwd) + macs / 1e12)
    assert e == _close(2 * (fwd[0][1] + fwd[1][1] + e_bwd))
    topo = cm.UpdateLoad(mode="cell", pulses=0, slots=0, mask_writes=0, moved=0,
                         topology_updates=1.0)
    t_topo, _ = cm.training_step("index_free", topo, w, p)
    assert t_topo - t == _close(2 * (4 + 3) * 1e-6 + 2 * 18 / 1e12)
