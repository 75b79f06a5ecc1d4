"""Program-verify: the loop's rules, the seed-004 bands on the simulated chip, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from labctl.array import Cells
from labctl.cli import main
from labctl.data.runfile import RunReader
from labctl.errors import ConfigError
from labctl.protocols.analysis.levels import (
    adjacent_overlap,
    fit_line,
    gaussian_overlap,
    level_stats,
)
from labctl.protocols.program import Program, ProgramConfig
from labctl.protocols.program_verify import (
    AMPLITUDE_TABLE,
    VerifyConfig,
    amplitudes_for,
    verify_steps,
)

# devices.md section 1: programming-noise fits of seed 004 (slope, intercept in uS units)
FIT_2 = (11.29e-3, 11.22e-3)
FIT_02 = (1.0688e-3, 0.811e-3)


class Spy:
    """Wraps an Array and records, per cell, every pulse and the read after it."""

    def __init__(self, array):
        self.array = array
        self.pulses: dict[tuple[int, int], int] = {}

    def __getattr__(self, name):
        return getattr(self.array, name)

    def pulse(self, cells, amplitude_V, width_s, **kw):
        r, c = cells.indices(self.array.info.shape)
        for rr, cc in zip(r.tolist(), c.tolist(), strict=True):
            self.pulses[(rr, cc)] = self.pulses.get((rr, cc), 0) + 1
        return self.array.pulse(cells, amplitude_V, width_s, **kw)


# --- pure pieces ----------------------------------------------------------------------------
def test_amplitude_table_of_devices_md():
    v_set, v_reset = amplitudes_for(np.array([9e-6, 10e-6, 29.9e-6, 30e-6, 59e-6, 60e-6, 90e-6]))
    assert v_set.tolist() == [1.35, 1.35, 1.35, 1.35, 1.35, 1.5, 1.5]
    assert v_reset.tolist() == [-1.5, -1.5, -1.5, -1.3, -1.3, -1.3, -1.3]
    assert len(AMPLITUDE_TABLE) == 3


def test_gaussian_overlap_against_numerical_integration():
    x = np.linspace(-30, 30, 600001)
    for m1, s1, m2, s2 in ((0, 1, 2, 1), (0, 1, 2, 1.5), (3, 2, 3, 1), (0, 0.3, 5, 2.0)):
        num = np.trapezoid(np.minimum(norm.pdf(x, m1, s1), norm.pdf(x, m2, s2)), x)
        assert gaussian_overlap(m1, s1, m2, s2) == pytest.approx(num, abs=1e-6)
    # SI units, tiny sigmas: no underflow artefacts
    assert gaussian_overlap(10e-6, 1e-7, 12e-6, 1.2e-7) < 1e-15
    assert gaussian_overlap(0, 1, 0, 1) == pytest.approx(1.0)


def test_level_stats_and_line_fit():
    rng = np.random.default_rng(1)
    levels = np.linspace(10e-6, 90e-6, 9)
    t = np.repeat(levels, 400)
    g = t + rng.normal(0, 1, t.size) * (0.01 * t + 0.1e-6)
    st = level_stats(t, g)
    assert np.allclose(st.levels_S, levels) and (st.count == 400).all()
    slope, icpt = fit_line(st.levels_S, st.sigma_S)
    assert slope == pytest.approx(0.01, rel=0.1) and icpt == pytest.approx(0.1e-6, abs=0.05e-6)
    assert adjacent_overlap(st.mean_S, st.sigma_S).shape == (8,)


def test_bad_verify_config():
    for bad in (dict(tolerance=0), dict(tolerance=-0.1), dict(max_pulses=0),
                dict(reset="magic")):
        with pytest.raises(ConfigError):
            VerifyConfig(**bad).validate()


# --- the loop's rules ---------------------------------------------------------------------------
def test_every_pulse_is_accounted_for_and_cells_stop_inside_the_band(cmo_chip, drain):
    spy = Spy(cmo_chip(6, 8, seed=3))
    _, sink = drain(Program(ProgramConfig(levels=6, repeats=8)), spy)
    r, c = sink.data("program/row"), sink.data("program/col")
    seen = np.array([spy.pulses.get((a, b), 0) for a, b in zip(r, c, strict=True)])
    assert np.array_equal(seen, sink.data("program/pulses"))  # reset is a sweep, not pulses
    t, g = sink.data("program/target_S"), sink.data("program/g_S")
    assert sink.data("program/converged").all() and np.all(np.abs(g - t) <= 0.02 * t)


def test_converged_cells_get_no_more_pulses_in_later_rounds(cmo_chip):
    """A cell in its band is finished: no round after the one it converged in pulses it."""
    arr = cmo_chip(4, 8, seed=5)
    from labctl.protocols.forming import FormingConfig
    from labctl.protocols.unformed import form_unformed

    form_unformed(arr, Cells.all(), FormingConfig(), group="f")
    spy = Spy(arr)
    targets = np.linspace(15e-6, 80e-6, 32)
    state: dict = {}
    cfg = VerifyConfig(tolerance=0.01, rounds_per_step=1)   # one step per round
    done: set[tuple[int, int]] = set()       # converged at the end of the previous round
    before: dict[tuple[int, int], int] = {}  # pulses per cell at the end of that round
    checked = 0
    for _ in verify_steps(spy, Cells.all(), targets, cfg, state):
        assert [k for k in done if spy.pulses.get(k, 0) != before.get(k, 0)] == []
        checked += len(done)
        done = {(int(i) // 8, int(i) % 8) for i in np.flatnonzero(state["converged"])}
        before = dict(spy.pulses)
    assert state["phase"] == "done" and state["converged"].all()
    assert checked > 0   # some cells converged rounds before the last one


def test_pulse_cap_reports_cells_that_did_not_converge(cmo_chip, drain):
    summary, sink = drain(Program(ProgramConfig(levels=4, repeats=8, verify=VerifyConfig(
        tolerance=0.0005, max_pulses=3))), cmo_chip(8, 4, seed=1))
    conv = sink.data("program/converged").astype(bool)
    assert summary["not_converged"] == int((~conv).sum()) > 0
    assert summary["converged_fraction"] == pytest.approx(conv.mean())
    assert sink.data("program/pulses")[~conv].tolist() == [3] * int((~conv).sum())
    assert summary["pulses_mean_all"] == pytest.approx(sink.data("program/pulses").mean())
    assert summary["pulses_max"] is None or summary["pulses_max"] <= 3


def test_level_statistics_are_of_the_converged_cells_only(cmo_chip, drain):
    """A cell stopped at the pulse cap is off its target: it is left out of the per-level
    count, mean and sigma (else it would inflate the programming noise)."""
    summary, sink = drain(Program(ProgramConfig(levels=4, repeats=8, verify=VerifyConfig(
        tolerance=0.02, max_pulses=10))), cmo_chip(8, 4, seed=1))
    t, g = sink.data("program/target_S"), sink.data("program/g_S")
    conv = sink.data("program/converged").astype(bool)
    levels = np.unique(t)
    per_level = [int(conv[t == lv].sum()) for lv in levels]
    assert any(0 < n < 8 for n in per_level)      # a level with cells on both sides
    assert summary["cells_per_level"] == per_level
    ref = level_stats(t[conv], g[conv])
    assert np.allclose(summary["levels"], levels)
    idx = np.searchsorted(levels, ref.levels_S)   # levels with no converged cell: NaN
    expect = np.full(levels.size, np.nan)
    expect[idx] = ref.sigma_S
    assert np.allclose(summary["sigma_S"], expect, equal_nan=True, rtol=1e-12, atol=0)
    assert np.isfinite(expect).sum() >= 2
    mean = np.full(levels.size, np.nan)
    mean[idx] = ref.mean_S
    assert np.allclose(summary["mean_S"], mean, equal_nan=True, rtol=1e-12, atol=0)


def test_text_says_pulse_statistics_and_separation_are_of_the_converged_cells(tmp_path,
                                                                             capsys):
    """An audit read "pulses mean 2.00" beside 31 of 35 cells at the 5-pulse cap, and
    "levels separated: yes" judged on 4 cells, with no word that the rest were left out."""
    out = tmp_path / "p.h5"
    assert main(["run", "program", "--max-pulses", "5", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    with RunReader(out) as r:
        conv = r.data("program/converged").astype(bool)
        pulses = r.data("program/pulses")
    n = int(conv.sum())
    assert 0 < n < conv.size
    assert f"(the {n} converged cells)" in text
    assert (f"all {conv.size} cells mean {pulses.mean():.2f} ({conv.size - n} stopped at the "
            "pulse cap)") in text
    assert f"judged on the {n} converged cells" in text


def test_batches_reuse_the_cells_of_a_small_chip(cmo_chip, drain):
    summary, sink = drain(Program(ProgramConfig(levels=5, repeats=9)), cmo_chip(8, 4))
    batch = sink.data("program/batch")
    assert batch.tolist() == [0] * 32 + [1] * 13
    assert summary["cells_per_level"] == [9] * 5
    assert np.allclose(summary["levels"], np.linspace(10e-6, 90e-6, 5))


# --- seed-004 bands (35 levels x 32 cells, one 35x32 batch: same loop, fewer resets) ----------
def _program(cmo_chip, drain, tol, seed=0):
    return drain(Program(ProgramConfig(levels=35, repeats=32, verify=VerifyConfig(
        tolerance=tol))), cmo_chip(35, 32, seed=seed))[0]


def test_bands_at_2_percent(cmo_chip, drain):
    s = _program(cmo_chip, drain, 0.02)
    assert s["converged_fraction"] == 1.0
    assert 8 <= s["pulses_mean"] <= 15
    fit = s["sigma_fit_S"]
    assert fit["slope"] * 90e-6 + fit["intercept_S"] <= 1.1e-6
    assert fit["slope"] == pytest.approx(FIT_2[0], rel=0.3)


def test_bands_at_0p2_percent(cmo_chip, drain):
    s = _program(cmo_chip, drain, 0.002)
    assert s["converged_fraction"] >= 0.995
    assert 60 <= s["pulses_mean"] <= 120
    fit = s["sigma_fit_S"]
    assert fit["slope"] * 90e-6 + fit["intercept_S"] <= 0.11e-6
    assert fit["slope"] == pytest.approx(FIT_02[0], rel=0.3)
    assert s["levels_separated"] and max(s["adjacent_overlap"]) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("tol,lo,hi,at90,ref", [(0.02, 8, 15, 1.1e-6, FIT_2[0]),
                                                (0.002, 60, 120, 0.11e-6, FIT_02[0])])
def test_bands_on_the_8x4_chip_in_35_batches(tmp_path, tol, lo, hi, at90, ref):
    out = tmp_path / "p.h5"
    assert main(["run", "program", "--levels", "35", "--repeats", "32", "--tolerance",
                 str(tol), "--out", str(out), "--quiet"]) == 0
    with RunReader(out) as r:
        s = r.summary
    assert lo <= s["pulses_mean"] <= hi
    fit = s["sigma_fit_S"]
    assert fit["slope"] * 90e-6 + fit["intercept_S"] <= at90
    assert fit["slope"] == pytest.approx(ref, rel=0.3)


# --- the command ------------------------------------------------------------------------------
def test_cli_writes_a_complete_file_that_renders(tmp_path, capsys):
    from labctl.commands.report import render_report

    out = tmp_path / "p.h5"
    assert main(["run", "program", "--levels", "4", "--repeats", "3", "--out", str(out),
                 "--json", "--quiet"]) == 0
    import json

    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("pulses_mean", "pulses_median", "converged_fraction", "levels", "sigma_S",
                "sigma_fit_S", "adjacent_overlap"):
        assert key in s
    assert set(s["sigma_fit_S"]) == {"slope", "intercept_S"}
    assert len(s["adjacent_overlap"]) == 3 and s["status"] == "complete"
    with RunReader(out) as r:
        assert r.status == "complete" and r.units("program/g_S") == "S"
    figs = render_report(out, tmp_path / "rep")
    assert len(figs) == 4 and all(p.stat().st_size > 0 for p in figs)


def test_cli_defaults_complete_with_a_last_batch_smaller_than_the_trace(tmp_path, capsys):
    """``labctl run program`` as typed: 35 levels x 1 cell on the 8x4 chip is a batch of 32
    and one of 3; the round traces (8 cells wide) of the small batch are padded with NaN
    instead of failing the append (which once aborted the default command)."""
    from labctl.commands.report import render_report

    out = tmp_path / "p.h5"
    assert main(["run", "program", "--out", str(out), "--quiet"]) == 0
    with RunReader(out) as r:
        assert r.status == "complete"
        assert r.data("program/batch").tolist() == [0] * 32 + [1] * 3
        tr, idx = r.data("program/rounds/trace_S"), r.data("program/rounds/index")
    second = np.flatnonzero(idx == 0)[1]
    assert tr.shape[1] == 8 and np.isfinite(tr[:second]).all()
    assert np.isfinite(tr[second:, :3]).all() and np.isnan(tr[second:, 3:]).all()
    assert any(p.name == "program_traces.png" for p in render_report(out, tmp_path / "rep"))
    # one cell per level: no sigma, no overlap -- said as n/a, never nan or None
    text = capsys.readouterr().out
    assert "sigma fit       n/a" in text and "max overlap     n/a" in text
    assert "nan" not in text and "None" not in text and "True" not in text


def test_cli_targets_file_programs_one_target_per_cell(tmp_path, capsys):
    t = np.linspace(12e-6, 85e-6, 32).reshape(8, 4)
    f = tmp_path / "t.npy"
    np.save(f, t)
    out = tmp_path / "p.h5"
    assert main(["run", "program", "--targets", str(f), "--out", str(out), "--quiet"]) == 0
    with RunReader(out) as r:
        got = r.data("program/target_S")
        rows, cols = r.data("program/row"), r.data("program/col")
    assert np.allclose(got, t[rows, cols])


@pytest.fixture
def no_pulses(monkeypatch):
    """Fail the test if anything reaches the chip."""
    from labctl.sim_backend.simulated_array import SimulatedArray

    def boom(*a, **k):
        raise AssertionError("a pulse or sweep reached the chip")

    monkeypatch.setattr(SimulatedArray, "pulse", boom)
    monkeypatch.setattr(SimulatedArray, "sweep", boom)


@pytest.mark.parametrize("case", ["outside", "negative", "tolerance0", "tolerance_neg", "shape",
                                  "csv_shape", "text", "levels_outside"])
def test_bad_input_exit_2_one_line_no_file_no_pulse(case, tmp_path, capsys, no_pulses):
    out = tmp_path / "p.h5"
    argv = ["run", "program", "--out", str(out)]
    if case == "outside":
        np.save(tmp_path / "t.npy", np.full((8, 4), 200e-6))
        argv += ["--targets", str(tmp_path / "t.npy")]
    elif case == "negative":
        t = np.full((8, 4), 50e-6)
        t[2, 1] = -5e-6
        np.save(tmp_path / "t.npy", t)
        argv += ["--targets", str(tmp_path / "t.npy")]
    elif case == "tolerance0":
        argv += ["--tolerance", "0"]
    elif case == "tolerance_neg":
        argv += ["--tolerance", "-0.02"]
    elif case == "shape":
        np.save(tmp_path / "t.npy", np.full((3, 5), 50e-6))
        argv += ["--targets", str(tmp_path / "t.npy")]
    elif case == "csv_shape":
        np.savetxt(tmp_path / "t.csv", np.full(31, 50e-6), delimiter=",")
        argv += ["--targets", str(tmp_path / "t.csv")]
    elif case == "text":
        (tmp_path / "t.csv").write_text("a,b,c\n")
        argv += ["--targets", str(tmp_path / "t.csv")]
    else:
        argv += ["--g-max-S", "150e-6"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "inf" not in err          # no "window 0..inf uS" before the chip is known
    if case == "negative":
        assert "the smallest is -5 uS" in err
    assert not out.exists()


class NativeLoop:
    """A backend with its own program-verify loop (ProgramVerifyCapable): a fake that
    lands every cell on its target except the last, which it reports as not converged."""

    def __init__(self, array):
        self.array = array
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.array, name)

    def program_verify(self, cells, targets_S, tolerance, *, max_pulses, set_V, reset_V,
                       width_s, gate_V=None):
        self.calls += 1
        t = np.asarray(targets_S, dtype=float)
        assert np.all(np.asarray(set_V) > 0) and np.all(np.asarray(reset_V) < 0)
        pulses = np.full(t.size, 7)
        pulses[-1] = -1
        return t.copy(), pulses


def test_a_native_program_verify_backend_is_used(cmo_chip):
    from labctl.array import ProgramVerifyCapable

    arr = NativeLoop(cmo_chip(2, 4))
    assert isinstance(arr, ProgramVerifyCapable)
    state: dict = {}
    targets = np.linspace(20e-6, 60e-6, 8)
    steps = list(verify_steps(arr, Cells.all(), targets, VerifyConfig(max_pulses=50), state))
    assert arr.calls == 1 and state["phase"] == "done"
    assert state["pulses"].tolist() == [7] * 7 + [50]
    assert state["converged"].tolist() == [True] * 7 + [False]
    assert "program/g_S" in steps[-1].append
    # this backend does not say which of its pulses were sets: -1 (not known), not 0
    rec = steps[-1].append
    assert rec["program/rounds/set_pulses"][0].tolist() == [-1]
    assert rec["program/rounds/reset_pulses"][0].tolist() == [-1]


def test_figures_of_an_unfinished_run_are_drawn_from_its_records(tmp_path, monkeypatch):
    """A killed or live run has no summary: the sigma figure was blank (drawn from the
    summary) and the symmetry-point histograms empty; both now come from the records."""
    import h5py

    import labctl.plots.program as program_plots
    import labctl.plots.symmetry_point as sp_plots
    from labctl.commands.report import render_report

    runs = {"program": ["run", "program", "--levels", "4", "--repeats", "4", "--rows", "4",
                        "--cols", "4"],
            "sp": ["run", "symmetry-point", "--rows", "2", "--cols", "4"]}
    kept: dict[str, object] = {}

    def keep(save):
        def wrapped(fig, out_dir, name):
            kept[name] = fig
            return save(fig, out_dir, name)
        return wrapped

    monkeypatch.setattr(program_plots, "save", keep(program_plots.save))
    monkeypatch.setattr(sp_plots, "save", keep(sp_plots.save))
    for name, argv in runs.items():
        out = tmp_path / f"{name}.h5"
        assert main([*argv, "--quiet", "--out", str(out),
                     "--preset-out" if name == "sp" else "--seed",
                     str(tmp_path / "p.toml") if name == "sp" else "0"]) == 0
        with h5py.File(out, "r+") as f:      # as a killed run leaves it
            f.attrs["summary"] = "{}"
            f.attrs["status"] = "aborted"
        render_report(out, tmp_path / f"rep-{name}")
    sigma = kept["program_sigma"].axes[0]
    measured = [ln for ln in sigma.get_lines() if ln.get_label() == "measured"]
    assert measured and np.isfinite(measured[0].get_ydata()).sum() == 4
    assert "aborted" in sigma.get_title()
    hist = [k for k in kept if k.startswith("symmetry") and "hist" in k]
    filled = [ax for ax in kept[hist[0]].axes if any(p.get_height() > 0 for p in ax.patches)]
    assert len(filled) >= 3, [ax.get_title() for ax in kept[hist[0]].axes]


def test_a_two_fefet_die_programs_with_its_own_amplitudes(tmp_path, capsys):
    """Seed 004's amplitude table (1.3-1.5 V) is below a FeFET's coercive voltage: with
    --set-V/--reset-V (and a FeFET's 100 us width) program-verify converges on
    mos2-fefet-2t; without them it stops at the pulse cap."""
    import json

    common = ["run", "program", "--preset", "mos2-fefet-2t", "--rows", "4", "--cols", "4",
              "--levels", "4", "--repeats", "4", "--g-min-S", "2e-6", "--g-max-S", "8e-6",
              "--width-s", "1e-4", "--max-pulses", "200", "--reset", "pulses", "--json",
              "--quiet"]
    assert main([*common, "--set-V", "2.3", "--reset-V", "-2.3",
                 "--out", str(tmp_path / "fefet.h5")]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["converged_fraction"] == 1.0 and s["levels_separated"]
    with RunReader(tmp_path / "fefet.h5") as r:   # the reset pulses act (at --reset-V)
        assert r.config["verify"]["reset_pulse_V"] == -2.3
        # a fresh mos2-fefet-2t cell reads ~5 uS; 20 pulses at -1.5 V (below the coercive
        # voltage, the old default amplitude) or a drain sweep would leave it there
        assert np.mean(r.data("program/g_reset_S")) < 4.2e-6
    assert main([*common, "--out", str(tmp_path / "table.h5")]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["converged_fraction"] < 0.5
    for bad, words in ((["--set-V", "2.3"], "go together"),
                       (["--set-V", "2.3", "--reset-V", "1"], "--reset-V < 0"),
                       # a drain sweep does not reset a FeFET: refused, not a silent no-op
                       (["--set-V", "2.3", "--reset-V", "-2.3", "--reset", "sweep"],
                        "give --reset pulses")):
        assert main([*common, *bad, "--out", str(tmp_path / "x.h5")]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("targets, hinted", [(np.full(4, 50.0), True), (np.full(4, 200e-6), False),
                                             (np.array([0.02, 0.05]), True)])
def test_targets_written_in_microsiemens_get_a_hint(targets, hinted):
    from labctl.protocols.program import check_targets

    with pytest.raises(ConfigError) as err:
        check_targets(targets, 8e-6, 90e-6)
    assert ("targets are in siemens" in str(err.value)) == hinted
