"""Symmetry point: schedule, figures of merit, the seed-004 bands, the fitted preset's loop."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from labctl.cli import main
from labctl.data.runfile import RunReader
from labctl.errors import ConfigError
from labctl.protocols.analysis.open_loop import figures_of_merit, open_loop_schedule
from labctl.protocols.analysis.preset_toml import fitted_preset_text, pulse_table
from labctl.protocols.symmetry_point import SymmetryPoint, SymmetryPointConfig


def _bands(s, *, n_lo=18.0, n_hi=26.0):
    """devices.md section 1 / issue 3: states 22 +/- 4, skew 0.61 +/- 0.06, NSR 0.90 +/- 0.15."""
    assert n_lo <= s["n_states_mean"] <= n_hi
    assert s["sp_skew_mean"] == pytest.approx(0.61, abs=0.06)
    assert s["nsr_mean"] == pytest.approx(0.90, abs=0.15)


def _config(preset_pulse: dict) -> SymmetryPointConfig:
    return SymmetryPointConfig(
        fit_g_exponent=preset_pulse["g_exponent"], fit_g_ref_S=preset_pulse["g_ref_S"],
        fit_sigma_g_rel=preset_pulse["sigma_g_rel"], fit_floor_S=preset_pulse["floor_S"],
        fit_ceiling_S=preset_pulse["ceiling_S"])


def test_schedule_is_the_seed_scheme():
    sch = open_loop_schedule(400, 2, 500)
    assert sch.n_pulses == 2100
    assert sch.sign[:400].tolist() == [1] * 400 and sch.sign[400:800].tolist() == [-1] * 400
    assert sch.sign[1600:1604].tolist() == [1, -1, 1, -1]
    assert sch.alternating.sum() == 500 and not sch.alternating[:1600].any()


def test_figures_of_merit_of_a_known_trace():
    """A noise-free device stepping 1 uS up / 1 uS down between 10 and 50 uS, SP at 20 uS."""
    sch = open_loop_schedule(100, 1, 200)
    g = [20e-6]
    for s in sch.sign:
        g.append(min(max(g[-1] + s * 1e-6, 10e-6), 50e-6))
    g = np.array(g)
    g[sch.n_pulses - 200 + 1:] = np.where(np.arange(200) % 2 == 0, 21e-6, 20e-6)
    fom = figures_of_merit(g[:, None], sch, smooth=1)
    assert fom.g_max_S[0] == pytest.approx(50e-6) and fom.g_min_S[0] == pytest.approx(10e-6)
    assert fom.g_sp_S[0] == pytest.approx(20.5e-6)
    assert fom.dg_sp_S[0] == pytest.approx(1e-6) and fom.nsr[0] == pytest.approx(0, abs=1e-9)
    assert fom.n_states[0] == pytest.approx(40) and fom.sp_skew[0] == pytest.approx(29.5 / 40)


def test_bad_config():
    for bad in (dict(up_V=-1.0), dict(down_V=0.5), dict(cycles=0), dict(alternating_pulses=2),
                dict(settle=1.0)):
        with pytest.raises(ConfigError):
            SymmetryPoint(SymmetryPointConfig(**bad))


def test_preset_text_keeps_the_base_and_marks_fitted_values():
    base = '# head\nmodel = "cmo-hfox"\nname = "x"\n\n[pulse]\ndw_min = 0.1   # [C] old\n' \
           'keep = 2   # [A] kept\n\n[other]\ndw_min = 7\n'
    text = fitted_preset_text(base, name="fit", source="fitted", note="run.h5",
                              table_values={"pulse": {"dw_min": 0.2, "asymmetry": -0.1}})
    d = tomllib.loads(text)
    assert d["name"] == "fit" and d["source"] == "fitted"
    assert d["pulse"] == {"dw_min": 0.2, "keep": 2, "asymmetry": -0.1}
    assert d["other"]["dw_min"] == 7
    assert "# [A] kept" in text and "# fitted: run.h5" in text and "[C] old" not in text


def test_bands_on_the_8x4_chip_and_the_fitted_preset_closes_the_loop(cmo_chip, drain, tmp_path):
    """Measure, model, simulate: the fitted preset, loaded back, lands in the same bands."""
    from labctl.sim_backend.presets import load_model, load_preset, preset_path
    from labctl.sim_backend.simulated_array import SimulatedArray

    base = load_preset("cmo-hfox-1t1r")
    s, _ = drain(SymmetryPoint(_config(base["pulse"])), cmo_chip(8, 4, seed=0))
    _bands(s)
    assert s["n_states_min"] <= 18 and s["n_states_max"] >= 29  # spread reaches ~16 and ~33
    text = fitted_preset_text(preset_path("cmo-hfox-1t1r").read_text(), name="fitted",
                              source="test", note="test",
                              table_values={"pulse": pulse_table(s["fit"]["population"],
                                                                 s["fit"]["scheme"])})
    path = tmp_path / "fitted.toml"
    path.write_text(text)
    fitted = load_preset(str(path))
    for key in ("dw_min", "asymmetry", "sigma_c2c", "dw_min_d2d_ln"):
        assert fitted["pulse"][key] == pytest.approx(s["fit"]["population"][key], rel=1e-5)
    again, _ = drain(SymmetryPoint(_config(fitted["pulse"])),
                     SimulatedArray(load_model(str(path)), 8, 4, seed=7))
    _bands(again)


def test_cli_writes_run_file_and_preset_the_simulator_loads(tmp_path, capsys):
    from labctl.commands.report import render_report

    out, preset = tmp_path / "sp.h5", tmp_path / "fit.toml"
    assert main(["run", "symmetry-point", "--batch-pulses", "100", "--cycles", "1",
                 "--alternating-pulses", "100", "--out", str(out), "--preset-out", str(preset),
                 "--json", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("n_states_mean", "n_states_min", "n_states_max", "sp_skew_mean", "nsr_mean",
                "preset_file"):
        assert key in s
    assert s["preset_file"] == str(preset.resolve()) and preset.is_file()
    # fitted values say so; the scheme the fit was measured with and the spread the fit
    # fixes by design say what they are instead
    lines = {ln.split("=")[0].strip(): ln for ln in preset.read_text().splitlines()
             if "=" in ln and not ln.lstrip().startswith("#")}
    assert "# fitted: labctl run symmetry-point" in lines["dw_min"]
    for key in ("set_ref_V", "reset_ref_V", "width_ref_s"):
        assert "# the pulse scheme of sp.h5" in lines[key], lines[key]
    assert "# not fitted: " in lines["gamma_d2d"] and "# fitted" not in lines["gamma_d2d"]
    with RunReader(out) as r:
        assert r.status == "complete" and r.data("symmetry/trace_S").shape == (301, 32)
        # the per-device lists stay in the file: the --json line stays short on any die
        assert len(r.summary["per_device"]["n_states"]) == 32
        assert len(r.summary["fit"]["per_device"]["dw_min"]) == 32
        assert s["fit"]["population"] == r.summary["fit"]["population"]
    assert s["per_device"] == s["fit"]["per_device"] == "in the run file's summary"
    assert len(render_report(out, tmp_path / "rep")) == 3
    out2 = tmp_path / "sp2.h5"
    assert main(["run", "symmetry-point", "--preset", str(preset), "--batch-pulses", "50",
                 "--cycles", "1", "--alternating-pulses", "50", "--read-repeats", "0",
                 "--out", str(out2), "--quiet"]) == 0
    with RunReader(out2) as r:
        assert r.backend["preset"] == "fit"


def test_cli_bad_preset_out_is_exit_2_before_anything(tmp_path, capsys):
    out = tmp_path / "sp.h5"
    assert main(["run", "symmetry-point", "--preset-out", str(tmp_path / "x.txt"),
                 "--out", str(out)]) == 2
    assert main(["run", "symmetry-point", "--preset-out", "/no/such/dir/x.toml",
                 "--out", str(out)]) == 2
    assert main(["run", "symmetry-point", "--cycles", "0", "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3 and not out.exists()
    existing = tmp_path / "mine.toml"      # runs made with a preset record only its path
    existing.write_text("# a preset other runs were made with\n")
    assert main(["run", "symmetry-point", "--preset-out", str(existing), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and not out.exists()
    assert existing.read_text() == "# a preset other runs were made with\n"
    assert main(["run", "symmetry-point", "--preset-out", str(tmp_path / "no" / "x.toml"),
                 "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_symmetric_variant_moves_only_the_symmetry_point(tmp_path, capsys):
    """The symmetric-device preset of the training benchmark (zero device asymmetry) has its
    symmetry point at the centre of the analog window, where the base preset's sits below it
    (SP skew 61 %), while its number of states and noise-to-signal ratio stay those of the
    measured device."""
    from labctl.sim_backend.presets import PRESET_DIR

    measured = {}
    for name in ("cmo-hfox-1t1r", "cmo-hfox-1t1r-symmetric"):
        out = tmp_path / f"{name}.h5"
        assert main(["run", "symmetry-point", "--preset", str(PRESET_DIR / f"{name}.toml"),
                     "--rows", "8", "--cols", "8", "--seed", "1", "--out", str(out),
                     "--json", "--quiet"]) == 0
        measured[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    base, sym = measured["cmo-hfox-1t1r"], measured["cmo-hfox-1t1r-symmetric"]
    centre_S = (8e-6 + 90e-6) / 2
    assert abs(sym["g_sp_mean_S"] - centre_S) < 3e-6 and base["g_sp_mean_S"] < centre_S - 5e-6
    assert sym["sp_skew_mean"] == pytest.approx(0.53, abs=0.03)  # beta > 0: see the preset
    assert base["sp_skew_mean"] == pytest.approx(0.61, abs=0.03)
    assert abs(sym["n_states_mean"] / base["n_states_mean"] - 1) < 0.1, (sym, base)
    assert abs(sym["nsr_mean"] / base["nsr_mean"] - 1) < 0.05, (sym, base)


def test_a_device_without_a_noise_estimate_leaves_the_population_one_finite(tmp_path,
                                                                            capsys):
    """On 4x4 with 50-pulse batches one device's steps are too few for its cycle-to-cycle
    noise (nan): the population mean used to be nan, and writing the preset an internal
    error (exit 1) after the run file said complete.  The mean is over the devices that
    have one; and a population value that is still not finite writes no preset, with the
    warning, instead of failing."""
    from labctl.commands.run_symmetry_point import write_preset
    from labctl.data.runfile import RunReader
    from labctl.errors import ConfigError
    from labctl.sim_backend.presets import load_model, preset_path

    preset, run = tmp_path / "short.toml", tmp_path / "short.h5"
    assert main(["run", "symmetry-point", "--rows", "4", "--cols", "4", "--batch-pulses", "50",
                 "--cycles", "1", "--alternating-pulses", "50", "--out", str(run),
                 "--preset-out", str(preset), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    load_model(str(preset))                        # a preset the simulator loads
    with RunReader(run) as r:
        summary = {**r.summary, "run_file": str(run)}
    summary["fit"]["population"]["sigma_c2c"] = float("nan")
    with pytest.raises(ConfigError, match="no usable value"):
        write_preset(summary, preset_path("cmo-hfox-1t1r").read_text(), tmp_path / "x.toml")
    assert not (tmp_path / "x.toml").exists()


def test_a_fit_the_simulator_cannot_use_writes_no_preset(tmp_path, capsys):
    """A handful of noisy pulses can fit an upside-down window or a step larger than the
    window: no preset file (it used to be written, and then refused by every command that
    loaded it), one warning line; the measurement itself is complete and kept (it used to
    exit 2 with a 'complete' file)."""
    preset = tmp_path / "few.toml"
    code = main(["run", "symmetry-point", "--rows", "2", "--cols", "2", "--batch-pulses", "20",
                 "--cycles", "1", "--alternating-pulses", "10", "--read-repeats", "3",
                 "--out", str(tmp_path / "few.h5"), "--preset-out", str(preset), "--quiet",
                 "--json"])
    out, err = capsys.readouterr()
    err_lines = err.strip().splitlines()
    assert code == 0 and len(err_lines) == 1 and "no preset written" in err_lines[0], err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["preset_file"] is None and "preset_error" in s
    assert not preset.exists()


def test_pulses_below_the_switching_threshold_give_no_preset(tmp_path, capsys):
    """0.5 V set pulses (threshold 0.6 V) switch almost nothing: the few devices fitted from
    noise were written as a preset with asymmetry -0.99; now the text says how many devices
    were fitted and no preset is written."""
    preset = tmp_path / "weak.toml"
    code = main(["run", "symmetry-point", "--up-V", "0.5", "--out", str(tmp_path / "w.h5"),
                 "--preset-out", str(preset), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0 and "few devices" in err and len(err.strip().splitlines()) == 1, err
    assert "fitted preset   none written" in out and " fitted\n" in out
    assert not preset.exists()


def test_a_preset_file_the_model_refuses_is_named(tmp_path, capsys):
    """The model's own check of a preset file ("[pulse] needs ...") says which file."""
    from labctl.sim_backend.presets import preset_path

    head, rest = preset_path("cmo-hfox-1t1r").read_text().split("[pulse]", 1)
    body, sep, tail = rest.partition("\n[")
    body = "\n".join("g_max_S = -1.0" if ln.split("=")[0].strip() == "g_max_S" else ln
                     for ln in body.split("\n"))
    bad = tmp_path / "bad.toml"
    bad.write_text(f"{head}[pulse]{body}{sep}{tail}")
    assert main(["run", "forming", "--preset", str(bad), "--quiet",
                 "--out", str(tmp_path / "f.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"preset {bad}: [pulse] needs" in err[0], err


def test_too_few_pulses_are_not_blamed_on_the_voltages(tmp_path, capsys):
    """Steps of microsiemens, but too few pulses for most devices' fit: the warning asks for
    more pulses, not other voltages (it said 'the pulses moved few devices')."""
    code = main(["run", "symmetry-point", "--batch-pulses", "2", "--alternating-pulses", "4",
                 "--cycles", "1", "--read-repeats", "2", "--out", str(tmp_path / "f.h5"),
                 "--preset-out", str(tmp_path / "f.toml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and "too few pulses" in err and "--up-V" not in err, err
    assert not (tmp_path / "f.toml").exists()
