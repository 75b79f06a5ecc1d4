"""Retention: time grid, relaxation analysis, the seed-004 bands, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader
from labctl.errors import ConfigError
from labctl.protocols.analysis.relaxation import (
    TEN_YEARS_S,
    fit_vs_ln_t,
    log_grid,
    relaxation_at_times,
    time_key,
)
from labctl.protocols.retention import Retention, RetentionConfig


def test_grid_and_keys():
    g = log_grid(86400.0)
    assert g[0] == 1.0 and g[-1] == 86400.0 and {600.0, 3600.0} <= set(g.tolist())
    assert np.all(np.diff(g) > 0)
    assert [time_key(t) for t in (600.0, 3600, 0.5)] == ["600", "3600", "0.5"]
    assert 3600.0 not in log_grid(1000.0)


def test_relaxation_statistics_of_synthetic_data():
    """Known drift: shift = -0.1 ln t uS, spread 0.05 ln t + 0.4 uS, 10 levels x 200 cells."""
    rng = np.random.default_rng(0)
    levels = np.linspace(10e-6, 90e-6, 10)
    targets = np.repeat(levels, 200)
    g_prog = targets.copy()
    times = np.array([1.0, 10.0, 100.0, 1000.0])
    z = rng.standard_normal((times.size, targets.size))
    reads = g_prog + (-0.1 * np.log(times)[:, None] + (0.05 * np.log(times)[:, None] + 0.4) * z
                      ) * 1e-6
    jobs = np.tile(np.arange(targets.size), times.size)
    rel = relaxation_at_times(targets, g_prog, np.ones(targets.size, bool), jobs,
                              np.repeat(times, targets.size), reads.ravel())
    assert np.allclose(rel.mean_shift_S, -0.1e-6 * np.log(times), atol=0.02e-6)
    assert np.allclose(rel.sigma_S, (0.05 * np.log(times) + 0.4) * 1e-6, rtol=0.06)
    slope, icpt = fit_vs_ln_t(rel.times_s, rel.sigma_S)
    assert slope == pytest.approx(0.05e-6, rel=0.15) and icpt == pytest.approx(0.4e-6, rel=0.05)
    assert np.all(np.diff(rel.overlap) > 0)  # spread grows, levels merge


def test_cells_that_did_not_converge_are_left_out_of_the_relaxation():
    """Cells stopped at the pulse cap sit far from their target and drift oddly: the shift,
    spread, overlap and ages are those of the converged cells alone, as if they were absent."""
    rng = np.random.default_rng(3)
    targets = np.repeat([20e-6, 50e-6, 80e-6], 6)
    valid = np.tile([True, True, True, True, False, False], 3)
    g_prog = targets + rng.normal(0, 0.2e-6, targets.size)
    g_prog[~valid] = 0.5 * targets[~valid]                   # never reached its band
    times = np.array([1.0, 10.0, 100.0])
    drift = -0.1e-6 * np.log(times)[:, None] + rng.normal(0, 0.4e-6, (times.size, targets.size))
    drift[:, ~valid] += 5e-6                                 # and moves the other way
    reads = (g_prog + drift).ravel()
    jobs = np.tile(np.arange(targets.size), times.size)
    t_s = np.repeat(times, targets.size)
    actual = t_s.copy()
    actual[~np.tile(valid, times.size)] *= 7.0               # ... read much later, too
    rel = relaxation_at_times(targets, g_prog, valid, jobs, t_s, reads, actual)

    keep = np.flatnonzero(valid)
    new_job = np.full(targets.size, -1)
    new_job[keep] = np.arange(keep.size)
    sel = valid[jobs]
    alone = relaxation_at_times(targets[keep], g_prog[keep], np.ones(keep.size, bool),
                                new_job[jobs[sel]], t_s[sel], reads[sel], actual[sel])
    assert np.isfinite(rel.sigma_S).all() and np.isfinite(rel.overlap).all()
    for name in ("mean_shift_S", "sigma_S", "overlap", "times_s", "ages_s", "latest_s"):
        assert np.allclose(getattr(rel, name), getattr(alone, name), rtol=1e-12, atol=0), name


def test_bad_config():
    for bad in (dict(times_s=(10.0, 5.0)), dict(times_s=(-1.0,)), dict(duration_s=0.5),
                dict(levels=1), dict(repeats=0), dict(duration_s=1e12),
                dict(times_s=(1.0, 6.4e8))):
        with pytest.raises(ConfigError):
            Retention(RetentionConfig(**bad))
    Retention(RetentionConfig(duration_s=3e8))   # ten years is the longest read


def test_bands_after_0p2_percent_programming(cmo_chip, drain):
    """devices.md: at 1 h shift -0.73 +/- 0.15 uS, sigma 0.76 +/- 0.15 uS; at 10 min the
    neighbouring levels overlap 9.6 +/- 3 %; a ten-year projection."""
    s, sink = drain(Retention(RetentionConfig(repeats=16)), cmo_chip(35, 16, seed=0))
    assert s["converged_fraction"] >= 0.995
    assert s["mean_shift_S"]["3600"] == pytest.approx(-0.73e-6, abs=0.15e-6)
    assert s["sigma_S"]["3600"] == pytest.approx(0.76e-6, abs=0.15e-6)
    assert s["overlap"]["600"] == pytest.approx(0.096, abs=0.03)
    p = s["projection_10y"]
    assert p["t_s"] == pytest.approx(TEN_YEARS_S)
    # devices.md: the seed's fits give (-1.74, 1.23) uS at ten years
    assert p["mean_shift_S"] == pytest.approx(-1.74e-6, abs=0.3e-6)
    assert p["sigma_S"] == pytest.approx(1.23e-6, abs=0.3e-6)
    assert set(s["mean_shift_S"]) == set(s["sigma_S"]) == set(s["overlap"])
    assert sink.data("retention/t_actual_s").min() >= 1.0


def test_batches_follow_each_batch_through_the_grid(cmo_chip, drain):
    s, sink = drain(Retention(RetentionConfig(levels=4, repeats=10, times_s=(1.0, 600.0, 3600.0),
                                              verify=RetentionConfig().verify)),
                    cmo_chip(8, 4, seed=2))
    jobs = sink.data("retention/job")
    assert np.bincount(jobs.astype(int)).tolist() == [3] * 40  # 2 batches, 3 reads each
    assert np.allclose(np.unique(sink.data("retention/t_actual_s")), [1.0, 600.0, 3600.0])
    assert list(s["mean_shift_S"]) == ["1", "600", "3600"]


def test_cli_complete_file_report_and_json(tmp_path, capsys):
    from labctl.commands.report import render_report

    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--levels", "5", "--repeats", "4", "--tolerance", "0.02",
                 "--times", "1,10s,10min,1h", "--out", str(out), "--json", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mean_shift_S", "sigma_S", "overlap", "fit", "projection_10y"):
        assert key in s
    assert {"600", "3600"} <= set(s["mean_shift_S"])   # units as in inference's --times
    assert s["times_s"] == [1.0, 10.0, 600.0, 3600.0]
    with RunReader(out) as r:
        assert r.status == "complete"
    assert len(render_report(out, tmp_path / "rep")) == 3


@pytest.mark.parametrize("extra", [["--times", "10,5"], ["--times", "a,b"],
                                   ["--tolerance", "0"], ["--g-min-S", "1e-6"],
                                   ["--duration-s", "0"]])
def test_cli_bad_input(extra, tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--out", str(out), *extra]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("times", ["-5s", "-5s,1h", "-.5"])
def test_negative_times_reach_the_options_own_check(times, tmp_path, capsys):
    """A value starting with a minus is the option's value (argparse would call it a missing
    argument): the message says what is wrong with it."""
    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--out", str(out), "--times", times]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["labctl: --times must be positive seconds"] and not out.exists()


def test_one_cell_per_level_gives_no_sigma(tmp_path, capsys):
    """With one cell per level no level has a spread: sigma and overlap are n/a (the spread
    of the shifts across levels is another quantity), the mean shift is still given."""
    from labctl.protocols.analysis.relaxation import relaxation_at_times

    targets = np.array([10e-6, 50e-6, 90e-6])
    rel = relaxation_at_times(targets, targets, np.ones(3, bool), np.arange(3),
                              np.ones(3), targets + [0.1e-6, 0.3e-6, 0.2e-6])
    assert rel.mean_shift_S[0] == pytest.approx(0.2e-6)
    assert np.isnan(rel.sigma_S).all() and np.isnan(rel.overlap).all()

    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--levels", "2", "--repeats", "1", "--times", "1,2",
                 "--rows", "2", "--cols", "2", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sigma n/a   overlap n/a" in text and "nan" not in text
    assert "n/a uS" not in text and "n/a %" not in text      # no unit after n/a
    assert " uS   sigma" in text                             # the shift keeps its unit
    assert "need levels of two or more cells" in text


def test_one_cell_per_level_figure_says_sigma_is_n_a(tmp_path, monkeypatch):
    """The sigma panel says why it is empty, has no empty legend, and spans the same times
    as the shift panel."""
    import labctl.plots.retention as plots
    from labctl.commands.report import render_report

    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--levels", "2", "--repeats", "1", "--times", "1,2",
                 "--rows", "2", "--cols", "2", "--quiet", "--out", str(out)]) == 0
    figs = {}
    real_save = plots.save

    def keep(fig, out_dir, name):
        figs[name] = (fig.axes[0].get_xlim(), fig.axes[1].get_xlim(), fig.axes[1].get_legend(),
                      [t.get_text() for t in fig.axes[1].texts], fig.axes[1].get_lines()) \
            if name == "retention_fit" else None
        return real_save(fig, out_dir, name)

    monkeypatch.setattr(plots, "save", keep)
    render_report(out, tmp_path / "rep")
    shift_x, sigma_x, legend, texts, lines = figs["retention_fit"]
    assert texts == ["sigma n/a: one cell per level"]
    assert legend is None and not lines
    assert sigma_x == shift_x and shift_x[1] > 1e8          # out to the ten-year projection


def test_duration_just_over_ten_years_is_told_apart_from_the_limit():
    with pytest.raises(ConfigError) as e:
        RetentionConfig(duration_s=TEN_YEARS_S + 1).validate()
    assert "(315576000 s)" in str(e.value) and "got 315576001" in str(e.value)
    with pytest.raises(ConfigError) as e:
        RetentionConfig(times_s=(1.0, TEN_YEARS_S + 1)).validate()
    assert "reaches 315576001 s" in str(e.value) and "(315576000 s)" in str(e.value)


def test_late_reads_set_the_age_of_their_planned_time():
    """Reads are grouped by planned time; the group's age is the reads' real age (the
    geometric mean when batches read it at different ages), the planned time without them."""
    targets = np.repeat([10e-6, 50e-6], 2)
    jobs = np.tile(np.arange(4), 2)
    t_s = np.repeat([1.0, 4.0], 4)
    spread = np.array([0.01, 0.02, -0.01, -0.02]) * 1e-6           # two cells per level
    g = np.r_[targets + spread, targets - 0.1e-6 + spread]
    rel = relaxation_at_times(targets, targets, np.ones(4, bool), jobs, t_s, g)
    assert rel.ages_s.tolist() == [1.0, 4.0]
    actual = np.array([1.0, 1.0, 1.0, 1.0, 4.0, 4.0, 25.0, 25.0])   # batch 2 read late
    rel = relaxation_at_times(targets, targets, np.ones(4, bool), jobs, t_s, g, actual)
    assert rel.times_s.tolist() == [1.0, 4.0] and rel.ages_s[0] == 1.0
    assert rel.ages_s[1] == pytest.approx(10.0)                     # sqrt(4 * 25)
    assert rel.mean_shift_S[1] == pytest.approx(-0.1e-6)            # statistics unchanged
    # the fit takes the real age only where it is noticeably late: a station's on-time
    # reads (a few ms late) stay at the planned time, so a replay's clock cannot move a fit
    from labctl.protocols.analysis.relaxation import fit_times

    assert fit_times(np.array([1.0, 4.0]), np.array([1.02, 25.0])).tolist() == [1.0, 25.0]
    # 13 % late at 10 s (a bench run interrupted and resumed): the fit uses the real age
    assert fit_times(np.array([1.0, 10.0]), np.array([1.0, 11.32])).tolist() == [1.0, 11.32]
    # a transcript replay's clock does not wait: its "reads" come early and mean nothing
    assert fit_times(np.array([1.0, 2.0]), np.array([4e-4, 0.01])).tolist() == [1.0, 2.0]


def _late_run(tmp_path, late_s):
    """A simulated retention run whose reads at 4, 8 and 16 s are rewritten as a resumed
    station's (taken at ``late_s`` after programming); the stored summary is dropped, as
    the analysis of such a file is what is tested."""
    import h5py

    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--levels", "4", "--repeats", "4", "--tolerance", "0.02",
                 "--times", "1,2,4,8,16", "--rows", "4", "--cols", "4", "--quiet", "--json",
                 "--out", str(out)]) == 0
    with h5py.File(out, "r+") as f:
        t = f["retention/t_s"][:]
        ta = f["retention/t_actual_s"][:]
        for n, a in late_s.items():
            ta[t == n] = a
        f["retention/t_actual_s"][:] = ta
        f.attrs["summary"] = "{}"
    return out


def test_late_station_reads_are_fitted_and_labelled_at_their_real_age(tmp_path, capsys,
                                                                       monkeypatch):
    """F1 of audit 14: a resumed station run read its 4, 8 and 16 s points at ~26 s. The
    statistics stay grouped by planned time, the summary gives the real ages, the ln t fits
    and the projection use them, the text flags the late rows and the figures put them at
    their real ages."""
    from labctl.commands.run_retention import human
    from labctl.protocols.analysis.relaxation import projection
    from labctl.protocols.retention import analyse_retention

    out = _late_run(tmp_path, {4.0: 25.88, 8.0: 25.94, 16.0: 25.98})
    on_time = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_time["t_actual_s"] == {"1": 1.0, "2": 2.0, "4": 4.0, "8": 8.0, "16": 16.0}
    with RunReader(out) as r:
        s = analyse_retention(r)
    assert s["t_actual_s"] == {"1": 1.0, "2": 2.0, "4": 25.88, "8": 25.94, "16": 25.98}
    assert s["times_s"] == on_time["times_s"] and s["mean_shift_S"] == on_time["mean_shift_S"]
    ages = np.array(list(s["t_actual_s"].values()))
    for name in ("mean_shift_S", "sigma_S"):
        slope, icpt = fit_vs_ln_t(ages, np.array(list(s[name].values())))
        assert s["fit"][name] == {"slope_S": pytest.approx(slope),
                                  "intercept_S": pytest.approx(icpt)}
        assert s["fit"][name]["slope_S"] != pytest.approx(on_time["fit"][name]["slope_S"])
    fits = [(s["fit"][k]["slope_S"], s["fit"][k]["intercept_S"]) for k in ("mean_shift_S",
                                                                            "sigma_S")]
    assert s["projection_10y"] == pytest.approx(projection(np.array(s["levels"]), *fits),
                                                nan_ok=True)

    text = human({**s, "run_file": str(out)})
    assert "t =                  1 s   shift" in text            # on time: no note
    for row in ("4 s (read at 25.9 s)", "8 s (read at 25.9 s)", "16 s (read at 26 s)"):
        assert f"t = {row:>20}   shift" in text
    assert "later than planned" in text and "no ln t fit" not in text

    figs = _rendered_figures(out, tmp_path / "rep", monkeypatch)
    titles = [a.get_title() for a in figs["retention_cdfs"].axes]
    assert titles[-1] == "16 s after programming (read at 26 s)"
    shift_ax = figs["retention_fit"].axes[0]
    late = [ln for ln in shift_ax.get_lines() if ln.get_label().startswith("read late")]
    assert len(late) == 1 and late[0].get_xdata().tolist() == [25.88, 25.94, 25.98]
    assert "planned 4, 8, 16 s" in late[0].get_label()
    legend = [t.get_text() for t in figs["retention_error_hist"].axes[0].get_legend().texts]
    assert legend == ["4 s (read at 25.9 s)", "16 s (read at 26 s)"]


def test_one_late_batch_among_reads_on_time_is_flagged(tmp_path, capsys):
    """A few reads of a planned time came late (one batch of a resumed station run) while
    the rest came on time: their fit age hardly moves, but the text still says so."""
    import h5py

    from labctl.commands.run_retention import human
    from labctl.protocols.retention import analyse_retention

    out = _late_run(tmp_path, {})
    capsys.readouterr()
    with h5py.File(out, "r+") as f:
        t = f["retention/t_s"][:]
        ta = f["retention/t_actual_s"][:]
        late = np.flatnonzero(t == 4.0)[:1]          # one read of 16 at 4 s came at 12 s
        ta[late] = 12.0
        f["retention/t_actual_s"][:] = ta
    with RunReader(out) as r:
        s = analyse_retention(r)
    assert s["latest_t_actual_s"]["4"] == 12.0 and s["latest_t_actual_s"]["2"] == 2.0
    assert 4.0 < s["t_actual_s"]["4"] < 4.5            # the group's age barely moves
    text = human({**s, "run_file": str(out)})
    # the group's fit age (4.28 s) is what the fit uses; the late read is named too
    assert "4 s (read at 4.28 s, some at up to 12 s)" in text and "later than planned" in text
    assert "2 s (" not in text


def _rendered_figures(run_file, out_dir, monkeypatch):
    """The report's retention figures by name, kept open to inspect (and saved as usual)."""
    import labctl.plots.retention as plots
    from labctl.commands.report import render_report

    figs = {}
    real_save = plots.save

    def keep(fig, out_dir, name):
        figs[name] = fig
        return real_save(fig, out_dir, name)

    monkeypatch.setattr(plots, "save", keep)
    render_report(run_file, out_dir)
    return figs


def test_reads_all_late_at_one_age_give_no_fit(tmp_path, capsys):
    """Resumed long after programming, every read comes at about one age: a ln t line
    through them (and a ten-year projection) would be noise, so none is given."""
    from labctl.commands.run_retention import human
    from labctl.protocols.retention import analyse_retention

    out = _late_run(tmp_path, {t: 3600.0 + t / 10 for t in (1.0, 2.0, 4.0, 8.0, 16.0)})
    capsys.readouterr()
    with RunReader(out) as r:
        s = analyse_retention(r)
    assert np.isnan(s["fit"]["mean_shift_S"]["slope_S"])
    assert np.isnan(s["projection_10y"]["mean_shift_S"])
    text = human({**s, "run_file": str(out)})
    assert "1 s (read at 3600 s)" in text and "no ln t fit or projection" in text


def test_partial_run_draws_its_one_cell_per_level_reads(tmp_path, monkeypatch):
    """F7 of audit 14: a run stopped after its first batch holds one cell per level at each
    read time; each is drawn (a CDF step from 0 to 1), not left as an invisible point."""
    import h5py


    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--levels", "4", "--repeats", "2", "--tolerance", "0.02",
                 "--times", "1,2,4", "--rows", "2", "--cols", "2", "--quiet",
                 "--out", str(out)]) == 0
    with h5py.File(out, "r+") as f:   # as if stopped after the first batch's reads
        for name in ("g_S", "t_s", "t_actual_s", "job"):
            f[f"retention/{name}"].resize((12,))
        f.attrs["status"], f.attrs["summary"] = "aborted", "{}"
    figs = _rendered_figures(out, tmp_path / "rep", monkeypatch)
    after = figs["retention_cdfs"].axes[1:]
    assert [a.get_title() for a in after] == ["2 s after programming\n(one cell per level)",
                                              "4 s after programming\n(one cell per level)"]
    for a in after:
        assert len(a.get_lines()) == 4
        assert all(ln.get_ydata().tolist() == [0.0, 1.0] for ln in a.get_lines())


def test_a_spread_that_narrowed_is_not_projected_below_zero():
    """Three reads whose spread happened to narrow: the ln t fit of sigma falls below zero by
    ten years; no negative standard deviation is printed."""
    from labctl.commands.run_retention import human
    from labctl.protocols.analysis.relaxation import projection

    p = projection(np.array([10e-6, 20e-6]), (0.0, 0.0), (-2e-9, 1e-8))
    assert np.isnan(p["sigma_S"]) and np.isnan(p["overlap"]) and "below zero" in p["sigma_note"]
    ok = projection(np.array([10e-6, 20e-6]), (0.0, 0.0), (2e-9, 1e-8))
    assert ok["sigma_S"] > 0 and "sigma_note" not in ok
    s = {"cells_programmed": 4, "levels": [1e-5, 2e-5], "converged_fraction": 1.0,
         "pulses_mean": 3.0, "mean_shift_S": {"1": 0.0}, "sigma_S": {"1": 1e-8},
         "overlap": {"1": 0.0}, "times_s": [1.0], "t_actual_s": {"1": 1.0},
         "projection_10y": p, "run_file": "r.h5"}
    text = human(s)
    assert "sigma n/a" in text and "no 10-year sigma" in text and "sigma -" not in text
