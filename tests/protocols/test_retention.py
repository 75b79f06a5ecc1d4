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
