"""Analog inference: the IR-drop solver, DAC/ADC, and the pipeline on a transferred chip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labctl.array import ArrayInfo, Limits
from labctl.cli import main
from labctl.data.runfile import RunReader
from labctl.errors import ConfigError
from labctl.pipelines.inference import (
    CAUSES,
    ChipPlan,
    Inference,
    InferenceConfig,
    adc,
    dac,
    parse_times,
    rms,
    time_label,
)
from labctl.pipelines.tiling import Placement, Tile
from labctl.pipelines.weight_mapping import Mapping, default_window
from labctl.sim_backend.ir_drop import _direct, mvm_with_ir_drop


@pytest.mark.parametrize("shape, r_ohm", [((5, 7), 0.35), ((24, 16), 0.35), ((16, 16), 40.0)])
def test_ir_drop_solver_equals_the_direct_nodal_solution(shape, r_ohm):
    rng = np.random.default_rng(1)
    g = rng.uniform(8e-6, 90e-6, shape)
    v = rng.uniform(-0.2, 0.2, (6, shape[0]))
    ref = _direct(g, v, 1 / r_ohm)
    got = mvm_with_ir_drop(g, v, r_ohm)
    assert np.allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    assert not np.allclose(ref, v @ g, rtol=1e-4)          # the drop is really there
    got_t = mvm_with_ir_drop(g.T, rng.uniform(-0.2, 0.2, (3, shape[1])), r_ohm)
    assert got_t.shape == (3, shape[0])


def test_ir_drop_solves_a_large_batch_in_chunks_of_bounded_memory(monkeypatch):
    """A batch whose node arrays would not fit in memory goes through in chunks (a 512x1024
    transfer's default calibration needed ~40 GB at once): the same currents."""
    from labctl.sim_backend import ir_drop

    rng = np.random.default_rng(3)
    g = rng.uniform(8e-6, 90e-6, (12, 10))
    v = rng.uniform(-0.2, 0.2, (9, 12))
    whole = mvm_with_ir_drop(g, v, 0.35)
    monkeypatch.setattr(ir_drop, "MAX_NODE_VALUES", 2 * g.size)     # chunks of 2 inputs
    calls = []
    solve = ir_drop._line_solve
    monkeypatch.setattr(ir_drop, "_line_solve",
                        lambda G, V, *a: calls.append(len(V)) or solve(G, V, *a))
    chunked = mvm_with_ir_drop(g, v, 0.35)
    assert calls == [2, 2, 2, 2, 1]
    assert np.allclose(chunked, whole, rtol=1e-8, atol=1e-8 * np.abs(whole).max())


def test_ir_drop_limits_and_physics():
    rng = np.random.default_rng(2)
    g = rng.uniform(8e-6, 90e-6, (32, 32))
    v = np.full((1, 32), 0.2)
    ideal = v @ g
    assert np.allclose(mvm_with_ir_drop(g, v, 1e-9), ideal, rtol=1e-7)
    lo, hi = mvm_with_ir_drop(g, v, 0.35), mvm_with_ir_drop(g, v, 3.5)
    assert np.all(hi < lo) and np.all(lo < ideal)           # more wire, less current
    loss = 1 - lo / ideal                                    # columns far from the drivers
    assert loss[0, -1] > loss[0, 0]                          # lose more
    x = rng.uniform(-1, 1, (4, 32)) * 0.2
    assert np.allclose(mvm_with_ir_drop(g, 2 * x, 0.35), 2 * mvm_with_ir_drop(g, x, 0.35))
    assert np.allclose(mvm_with_ir_drop(g, x, 0.35, transpose=True),
                       _direct(g.T, x, 1 / 0.35), rtol=1e-8)


def test_dac_adc_and_times():
    x = np.linspace(-1.2, 1.2, 2001)
    assert np.unique(dac(x, 6)).size == 63 and np.abs(dac(x, 6)).max() == 1.0
    assert np.max(np.abs(dac(x[np.abs(x) <= 1], 6) - x[np.abs(x) <= 1])) <= 0.5 / 31 + 1e-12
    y = adc(np.linspace(-20, 20, 4001), 8, 10.0)
    assert np.unique(y).size == 255 and y.max() == 10.0 and y.min() == -10.0
    assert parse_times("1s,1h,1d,1y,10y") == (1.0, 3600.0, 86400.0, 365.25 * 86400,
                                              3652.5 * 86400)
    assert [time_label(t) for t in parse_times("1s,1h,1d,1y,10y,90s")] == \
        ["1s", "1h", "1d", "1y", "10y", "90s"]
    # a repeated time replaced one row of results; an empty item was a time left out
    for spec, why in (("1s,1s", "given twice"), ("1s,3600s,1h", "given twice"),
                      ("1s,,1h", "empty item"), ("1s,", "empty item"), ("", "at least one")):
        with pytest.raises(ConfigError, match=why):
            parse_times(spec)


def test_one_bit_converters_are_refused(transfer, tmp_path, capsys):
    """1-bit signed codes have no level besides 0: the MVM was all zeros and the fit crashed
    (exit 1, internal error)."""
    for opt in ("--dac-bits", "--adc-bits"):
        out = tmp_path / f"i{opt}.h5"
        assert main(["pipeline", "inference", str(transfer[0]), opt, "1", "--quiet",
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "2..24" in err[0] and not out.exists(), err


def test_too_few_calibration_inputs_are_refused(transfer, tmp_path, capsys):
    """One input cannot fit a gain and an offset per column: refused before the run file,
    not fitted underdetermined."""
    for calibration, n in (("rows", "5"), ("columns", "2")):
        out = tmp_path / f"i-{calibration}.h5"
        assert main(["pipeline", "inference", str(transfer[0]), "--calibration", calibration,
                     "--calibration-inputs", n, "--quiet", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "too few" in err[0] and not out.exists(), err


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    d = tmp_path_factory.mktemp("inference")
    w = np.clip(np.random.default_rng(3).normal(size=(16, 16)), -1, 1)
    np.save(d / "w.npy", w)
    out = d / "transfer.h5"
    code = main(["program", str(d / "w.npy"), "--rows", "16", "--cols", "16", "--mapping",
                 "reference", "--window-S", "9e-6", "88.19e-6", "--tolerance", "0.02",
                 "--seed", "3", "--out", str(out), "--quiet"])
    assert code == 0
    return out, w


def _infer(transfer_file, out, capsys, *extra):
    code = main(["pipeline", "inference", str(transfer_file), "--out", str(out), "--json",
                 "--quiet", "--inputs", "40", "--times", "1s,1d,10y", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def test_inference_summary_breakdown_and_growth(transfer, tmp_path, capsys):
    tf, w = transfer
    s = _infer(tf, tmp_path / "i.h5", capsys)
    assert s["status"] == "complete" and s["cells"] == 256 and s["pulses_mean"] > 1
    assert list(s["rmse"]) == ["1s", "1d", "10y"]
    assert set(s["rmse_breakdown"]["1s"]) == {"quantisation", "programming", "relaxation",
                                              "read_noise", "ir_drop"}
    assert s["rmse"]["1s"] < s["rmse"]["10y"]
    b1, b10 = s["rmse_breakdown"]["1s"], s["rmse_breakdown"]["10y"]
    assert b10["relaxation"] > 2 * b1["relaxation"]
    # the simulator's wires are known and applied; its virtual clock reads on time
    assert s["wire_resistance_ohm"] == 0.35
    assert s["t_actual_s"] == {"1s": 1.0, "1d": 86400.0, "10y": 10 * 365.25 * 86400.0}
    # the readout calibration's inputs as used (the config records 0: automatic)
    assert s["calibration_inputs"] == max(256, 4 * 16)
    with RunReader(tmp_path / "i.h5") as r:
        assert r.config["transfer_file"] == str(tf)
        assert r.config["calibration_inputs"] == 0
        assert r.backend["wire_resistance_ohm"] == 0.35
        # the breakdown's columns are named in the file, as in the summary
        causes = [c.decode() for c in r.data("inference/breakdown_causes")]
        assert causes == list(s["rmse_breakdown"]["1s"])
        assert r.data("inference/breakdown")[0].tolist() == list(s["rmse_breakdown"]["1s"]
                                                                .values())
        x, y_fp = r.data("inference/inputs"), r.data("inference/y_fp")
        assert np.allclose(y_fp, x @ w)                      # w_max = 1 for clipped N(0,1)
        y = r.data("inference/y_analog")
        assert np.isclose(np.sqrt(np.mean((y[0] - y_fp) ** 2)), s["rmse"]["1s"])
        fs = r.data("inference/adc_full_scale")[0]
    # the quantisation entry is the digital DAC + ADC model, recomputed here independently
    yq = adc(dac(x, 6) @ w, 8, fs)
    assert np.isclose(b1["quantisation"], np.sqrt(np.mean((yq - y_fp) ** 2)))
    # the terms the table prints as "< noise" are named in the JSON line, and only those
    assert s["below_noise"] == {lab: [c for c in ("ir_drop",) if b[c] <= 0]
                                for lab, b in s["rmse_breakdown"].items() if b["ir_drop"] <= 0}


def test_below_noise_names_only_terms_estimated_by_subtraction():
    from labctl.commands.pipeline_inference import with_below_noise

    s = {"rmse_breakdown": {"1s": {"quantisation": 0.0, "ir_drop": 0.0},
                            "1h": {"quantisation": 0.01, "mvm_vs_reads": -0.001},
                            "1d": {"quantisation": 0.01, "ir_drop": 0.002}}}
    assert with_below_noise(s)["below_noise"] == {"1s": ["ir_drop"], "1h": ["mvm_vs_reads"]}


def test_finer_converters_and_no_wires_remove_their_causes(transfer, tmp_path, capsys):
    tf, _ = transfer
    # a wide ADC range, so that no output clips and only the resolution differs; wires of
    # 10 ohm per segment so that the 16x16 array has an IR drop well above the noise floor
    base = _infer(tf, tmp_path / "a.h5", capsys, "--adc-sigmas", "8", "--wire-resistance-ohm",
                  "10")["rmse_breakdown"]["1s"]
    fine = _infer(tf, tmp_path / "b.h5", capsys, "--adc-sigmas", "8", "--dac-bits", "14",
                  "--adc-bits", "16", "--wire-resistance-ohm", "0")["rmse_breakdown"]["1s"]
    assert fine["quantisation"] < 0.05 * base["quantisation"]
    # without wires the term is named for what it is (no IR drop): the MVM against the reads
    assert "ir_drop" not in fine
    assert base["ir_drop"] > 0.02 and fine["mvm_vs_reads"] < 0.2 * base["ir_drop"], (base, fine)
    assert fine["relaxation"] == pytest.approx(base["relaxation"], rel=0.2)


def test_human_table_names_the_wires_and_flags_late_reads():
    from labctl.commands.pipeline_inference import human

    b = dict.fromkeys(("quantisation", "programming", "relaxation", "read_noise", "ir_drop"),
                      0.01)
    s = {"cells": 4, "inputs": 8, "dac_bits": 6, "adc_bits": 8, "run_file": "i.h5",
         "rmse": {"1s": 0.02, "1h": 0.03}, "rmse_breakdown": {"1s": b, "1h": b},
         "t_actual_s": {"1s": 3.83, "1h": 3600.2, "1d": 100000.4},
         "wire_resistance_ohm": None}
    text = human({**s, "rmse": {**s["rmse"], "1d": 0.04},
                  "rmse_breakdown": {**s["rmse_breakdown"], "1d": b}})
    assert "1d (read at 100000 s)" in text
    text = human(s)
    assert "ohm/segment" not in text.splitlines()[0]
    rows = text.splitlines()[3:5]
    assert rows[0].split()[:5] == ["1s", "(read", "at", "3.83", "s)"]
    assert rows[1].split()[:2] == ["1h", "0.0300"]             # on time: the asked-for label
    assert len(rows[0]) == len(rows[1])                        # columns stay aligned
    assert "0.35 ohm/segment" in human({**s, "wire_resistance_ohm": 0.35}).splitlines()[0]
    # an IR-drop term whose estimate came out at zero is below resolution, not a measured 0
    zero = {**b, "ir_drop": 0.0}
    text = human({**s, "rmse_breakdown": {"1s": zero, "1h": b}})
    rows = text.splitlines()[3:5]
    assert rows[0].endswith("< noise") and rows[1].endswith("0.0100")
    assert len(rows[0]) == len(rows[1]) and "at or below zero" in text
    assert "< noise" not in human(s)


def test_inference_refuses_what_is_not_a_transfer(tmp_path, capsys):
    code = main(["pipeline", "inference", str(tmp_path / "none.h5"), "--quiet"])
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    f = tmp_path / "f.h5"
    assert main(["run", "forming", "--rows", "2", "--cols", "2", "--out", str(f),
                 "--quiet"]) == 0
    capsys.readouterr()
    code = main(["pipeline", "inference", str(f), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not a `labctl program` transfer" in err



@pytest.mark.parametrize("w, refused, allowed", [
    ([[0.3, -0.5, 0.9, -0.1]], ("rows", "columns"), "none"),        # one row
    ([[0.0, 1 / 3], [2 / 3, 1.0]], ("rows",), "columns"),          # rows plus columns
])
def test_inference_refuses_weights_its_calibration_fits_without_the_chip(w, refused, allowed,
                                                                        tmp_path, capsys):
    """A 1x4 matrix's rows-calibrated RMSE was the same at 1 s and 1000 y (gains ~1e-11:
    the offsets alone reproduce W x); such a tile is refused, naming what would work."""
    wf, tf = tmp_path / "w.npy", tmp_path / "t.h5"
    np.save(wf, np.array(w))
    assert main(["program", str(wf), "--out", str(tf), "--quiet"]) == 0
    capsys.readouterr()
    for calibration in refused:
        out = tmp_path / f"{calibration}.h5"
        code = main(["pipeline", "inference", str(tf), "--calibration", calibration,
                     "--quiet", "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "without the chip" in err[0], err
        assert allowed in err[0].split("use --calibration")[-1] and not out.exists()
    out = tmp_path / "ok.h5"
    assert main(["pipeline", "inference", str(tf), "--calibration", allowed, "--times",
                 "1s,1000y", "--quiet", "--json", "--out", str(out)]) == 0
    rmse = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rmse"]
    assert rmse["1000y"] > 1.2 * rmse["1s"], rmse           # the chip's relaxation shows


def test_inference_refuses_chip_options_it_would_ignore(transfer, tmp_path, capsys):
    """The chip is the transfer's: --preset/--rows/--cols/--backend are refused, not ignored."""
    tf, _ = transfer
    for extra in (["--preset", "powstep-gamma2"], ["--rows", "8", "--cols", "8"],
                  ["--backend", "station.toml"]):
        out = tmp_path / "i.h5"
        code = main(["pipeline", "inference", str(tf), "--quiet", "--out", str(out), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "do not apply" in err[0], err
        assert extra[0] in err[0] and not out.exists()


def test_report_figures(transfer, tmp_path, capsys):
    tf, _ = transfer
    _infer(tf, tmp_path / "i.h5", capsys)
    from labctl.commands.report import render_report

    paths = render_report(tf, tmp_path / "rt") + render_report(tmp_path / "i.h5", tmp_path / "ri")
    assert len(paths) == 5 and all(p.stat().st_size > 1000 for p in paths)


def _benchmark(tmp_path, n, tolerance):
    """devices.md section 1: n x n clipped N(0,1), reference mapping onto 9.0-88.19 uS,
    100 inputs, 6-bit in, 8-bit out, 0.35 ohm/segment; the inference run's summary."""
    w = np.clip(np.random.default_rng(0).normal(size=(n, n)), -1, 1)
    np.save(tmp_path / "w.npy", w)
    assert main(["program", str(tmp_path / "w.npy"), "--rows", str(n), "--cols", str(n),
                 "--mapping", "reference", "--window-S", "9.0e-6", "88.19e-6", "--tolerance",
                 str(tolerance), "--out", str(tmp_path / "t.h5"), "--quiet"]) == 0
    assert main(["pipeline", "inference", str(tmp_path / "t.h5"), "--out",
                 str(tmp_path / "i.h5"), "--quiet"]) == 0
    with RunReader(tmp_path / "i.h5") as r:
        return {**r.summary, "_transfer": str(tmp_path / "t.h5")}


@pytest.fixture(scope="module")
def benchmark64(tmp_path_factory):
    return _benchmark(tmp_path_factory.mktemp("bench64"), 64, 0.002)


def test_devices_md_benchmark_64x64_late_and_growth(benchmark64):
    r, b = benchmark64["rmse"], benchmark64["rmse_breakdown"]
    series = [r[k] for k in ("1s", "1h", "1d", "1y", "10y")]
    assert series == sorted(series)                          # grows with time
    assert 0.12 <= r["10y"] <= 0.30, r
    assert benchmark64["dominant"]["10y"] == "relaxation"
    assert b["10y"]["relaxation"] > 2 * b["1s"]["relaxation"]


def test_devices_md_benchmark_64x64_early(benchmark64):
    r, b = benchmark64["rmse"], benchmark64["rmse_breakdown"]
    assert 0.03 <= r["1s"] <= 0.10, r
    assert b["1s"]["quantisation"] >= max(v for k, v in b["1s"].items() if k != "quantisation")


@pytest.mark.slow
def test_256x256_ir_drop_dominates(tmp_path):
    s = _benchmark(tmp_path, 256, 0.02)
    assert set(s["dominant"].values()) == {"ir_drop"}, s["rmse_breakdown"]


def test_calibration_fit_recovers_column_gains_and_row_reference():
    """Outputs distorted by a gain and offset per column and a reference error per row (what
    the column-wire drop does to the reference current) are restored exactly by the fit."""
    from labctl.pipelines.inference import fit_calibration

    rng = np.random.default_rng(3)
    n, m, k = 24, 16, 80
    w = rng.uniform(-1, 1, (n, m))
    x = rng.uniform(-1, 1, (k, n))
    gain, offset, row = rng.uniform(0.8, 1.2, m), rng.normal(0, 0.1, m), rng.normal(0, 0.1, n)
    y = (x @ w - np.outer(x.sum(1), offset) - (x @ row)[:, None]) / gain
    a, b, u = fit_calibration(y, x, x @ w, rows=True)
    fitted = a * y + np.outer(x.sum(1), b) + (x @ u)[:, None]
    assert np.allclose(fitted, x @ w, atol=1e-9)
    assert np.allclose(a, gain)
    a, b, u = fit_calibration(y, x, x @ w, rows=False)
    assert not np.any(u) and np.sqrt(np.mean((a * y + np.outer(x.sum(1), b) - x @ w) ** 2)) > 0.05


def test_row_calibration_halves_the_ir_drop_residual(benchmark64, tmp_path, capsys):
    """At the 64x64 benchmark the per-row reference takes out the common column-wire drop."""
    tf = benchmark64["_transfer"]
    assert main(["pipeline", "inference", tf, "--calibration", "columns", "--times", "1s",
                 "--out", str(tmp_path / "c.h5"), "--quiet"]) == 0
    with RunReader(tmp_path / "c.h5") as r:
        columns_only = r.summary["rmse_breakdown"]["1s"]["ir_drop"]
    rows = benchmark64["rmse_breakdown"]["1s"]["ir_drop"]
    assert rows < 0.7 * columns_only, (rows, columns_only)


def test_a_station_transfer_refuses_waits_longer_than_a_week(transfer, tmp_path, capsys):
    """On a station the chip ages in wall-clock time: the default schedule's 1y and 10y
    points would wait years.  Refused before any instrument opens."""
    import shutil

    import h5py

    tf, _ = transfer
    station_tf = tmp_path / "station-transfer.h5"
    shutil.copy(tf, station_tf)
    with h5py.File(station_tf, "a") as f:        # as if programmed through a station
        f.attrs["backend"] = json.dumps({"backend": "station", "station": "bench.toml"})
    code = main(["pipeline", "inference", str(station_tf), "--out", str(tmp_path / "i.h5"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "real time" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "i.h5").exists()


def test_a_killed_transfer_is_called_killed(transfer, tmp_path, capsys):
    """A transfer file left 'running' by a killed run: inference said 'running', report and
    watch say 'killed'."""
    import shutil

    import h5py

    killed = tmp_path / "killed.h5"
    shutil.copy(transfer[0], killed)
    with h5py.File(killed, "r+") as f:
        f.attrs["status"] = "running"
    assert main(["pipeline", "inference", str(killed), "--quiet",
                 "--out", str(tmp_path / "i.h5")]) == 2
    err = capsys.readouterr().err
    assert "the transfer is killed, not complete" in err and "--resume" in err, err


def _two_tile_plan(rng: np.random.Generator) -> ChipPlan:
    """An 8x6 reference-mapped matrix in two 4-row tiles side by side on a 4x12 array."""
    w = rng.uniform(-1.0, 1.0, (8, 6))
    w[4:] *= 0.3                                           # tiles of different scale
    mapping = Mapping("reference", 10e-6, 90e-6, 1.0)
    tiles = (Tile(0, (0, 4), (0, 6), (0, 0)), Tile(0, (4, 8), (0, 6), (0, 6)))
    placement = Placement((8, 6), (4, 12), 1, tiles)
    g_prog = mapping.conductances(w) + rng.normal(0, 0.5e-6, w.shape)
    return ChipPlan(weights=w, mapping=mapping, placement=placement, g_programmed_S=g_prog,
                    pulses=np.ones(48, dtype=np.int64), programmed_at_s=0.0)


class _WireFreeArray:
    """An ideal array holding a device matrix at the plan's tile positions."""

    def __init__(self, plan: ChipPlan, device_g: np.ndarray) -> None:
        self.info = ArrayInfo(rows=4, cols=12, technology="1t1r-reram",
                              limits=Limits(1.0, 3.0, 1e-3), g_min_S=1e-6, g_max_S=1e-4)
        self.g = np.zeros((4, 12))
        for t in plan.placement.tiles:
            n, m = t.shape
            self.g[t.at[0]:t.at[0] + n, t.at[1]:t.at[1] + m] = \
                device_g[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]]

    def mvm(self, v: np.ndarray, *, transpose: bool = False) -> np.ndarray:
        return v @ (self.g.T if transpose else self.g)


def _measure(plan: ChipPlan, reads: list[np.ndarray], chip_g: np.ndarray,
             n_inputs: int = 50) -> tuple[dict, np.ndarray, np.ndarray]:
    cfg = InferenceConfig(transfer_file="-", calibration="none", read_repeats=len(reads),
                          inputs=n_inputs)
    inf = Inference(cfg, plan)
    x = inf.inputs()
    xq = dac(x, cfg.dac_bits)
    w_prog = plan.mapping.weights(plan.g_programmed_S)
    rec = inf._measure(_WireFreeArray(plan, chip_g), {"calibration": {}}, x, xq,
                       x @ plan.weights, w_prog, reads, {"quantisation": 0.0,
                                                         "programming": 0.0})
    return dict(zip(CAUSES, rec["breakdown"][0], strict=True)) | {
        k: rec[k][0] for k in ("g_spread_S", "g_mean_shift_S")}, x, xq


def test_adc_full_scale_is_sigmas_times_the_output_sigma_of_each_tile():
    """ADC full scale = adc_sigmas * sqrt(mean column sum of w^2 / 3), E[x^2] = 1/3 on U[-1,1]."""
    plan = _two_tile_plan(np.random.default_rng(0))
    inf = Inference(InferenceConfig(transfer_file="-", adc_sigmas=2.5), plan)
    w = plan.weights
    want = [2.5 * np.sqrt(np.mean(np.sum(w[r] ** 2, axis=0)) / 3) for r in (slice(0, 4),
                                                                       slice(4, 8))]
    assert np.allclose(inf.full_scale, want, rtol=1e-12)
    assert inf.full_scale[1] < 0.5 * inf.full_scale[0]


def test_reads_equal_to_the_programmed_values_have_no_spread_or_shift():
    """The conductance spread and shift are of the reads about the programmed values."""
    plan = _two_tile_plan(np.random.default_rng(1))
    g = plan.g_programmed_S
    b, _, _ = _measure(plan, [g.copy(), g.copy()], g)
    assert b["g_spread_S"] == pytest.approx(0.0, abs=1e-15)
    assert b["g_mean_shift_S"] == pytest.approx(0.0, abs=1e-15)
    assert b["relaxation"] == pytest.approx(0.0, abs=1e-12)
    assert b["read_noise"] == pytest.approx(0.0, abs=1e-12)
    assert b["ir_drop"] == pytest.approx(0.0, abs=1e-12)     # a wire-free chip


def test_relaxation_read_noise_and_ir_terms_recomputed_from_the_reads():
    """Relaxation uses the unquantised inputs, read noise the n/(n-1) spread of the reads,
    and the IR term takes off the expected read-noise share rn^2 (1 + 1/n)."""
    rng = np.random.default_rng(2)
    plan = _two_tile_plan(rng)
    mp, g0 = plan.mapping, plan.g_programmed_S
    drift = rng.normal(0, 2e-6, g0.shape)
    reads = [g0 + drift + rng.normal(0, 1e-6, g0.shape) for _ in range(3)]
    chip = g0 + drift + rng.normal(0, 3e-6, g0.shape)     # the MVM sees a noisier chip
    b, x, xq = _measure(plan, reads, chip)
    w_t = mp.weights(np.mean(reads, axis=0))
    w_prog = mp.weights(g0)
    assert b["relaxation"] == pytest.approx(rms(x @ (w_t - w_prog)), rel=1e-9)
    assert b["relaxation"] != pytest.approx(rms(xq @ (w_t - w_prog)), rel=1e-6)
    rn = np.sqrt(sum(rms(x @ (mp.weights(g) - w_t)) ** 2 for g in reads) / 2)
    assert b["read_noise"] == pytest.approx(rn, rel=1e-9)
    y_lin = xq @ mp.weights(chip)
    ir = np.sqrt(np.mean((y_lin - xq @ w_t) ** 2) - rn ** 2 * (1 + 1 / 3))
    assert b["ir_drop"] == pytest.approx(ir, rel=1e-9)
    assert b["g_spread_S"] == pytest.approx(np.std(np.mean(reads, axis=0) - g0), rel=1e-9)


def test_default_window_insets_both_ends_by_the_same_fraction():
    """The programming window keeps 1.25 % of the span off each end of the chip's window."""
    assert default_window(0.0, 1.0) == pytest.approx((0.0125, 0.9875))
    assert default_window(10e-6, 90e-6, 0.1) == pytest.approx((18e-6, 82e-6))
