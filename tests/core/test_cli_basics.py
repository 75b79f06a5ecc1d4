"""CLI contract: help, version, one-line errors with exit code 2, no traceback."""

import subprocess
import sys

import pytest

from labctl import __version__
from labctl.cli import main


def labctl(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "labctl.cli", *argv], capture_output=True,
                          text=True, timeout=timeout)


def test_help_and_version():
    r = labctl("--help")
    assert r.returncode == 0 and "run" in r.stdout and "report" in r.stdout
    r = labctl("--version")
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.mark.parametrize("argv", [
    ["run", "forming", "--rows", "0"],
    ["run", "forming", "--preset", "no-such-preset"],
    ["run", "forming", "--out", "/nonexistent-dir/x.h5"],
    ["run", "forming", "--backend", "nothing.txt"],
    ["run", "no-such-protocol"],
    ["report", "/nonexistent/run.h5"],
    ["report", "."],                  # a directory: was "internal error: ... empty name"
    ["watch", ".", "--wait-s", "1"],
    ["replay", "."],
])
def test_bad_input_is_one_line_and_exit_2(argv, tmp_path):
    r = labctl(*argv)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_report_refuses_a_file_that_is_not_a_run_file(tmp_path, capsys):
    f = tmp_path / "x.h5"
    f.write_text("hello")
    assert main(["report", str(f)]) == 2
    assert "not an HDF5 run file" in capsys.readouterr().err


def test_bad_input_leaves_no_file(tmp_path):
    out = tmp_path / "x.h5"
    r = labctl("run", "forming", "--rows", "-3", "--out", str(out))
    assert r.returncode == 2 and not out.exists()


def test_ctrl_c_in_a_read_only_command_does_not_claim_outputs_or_a_run_file(
        tmp_path, capsys, monkeypatch):
    import labctl.commands.report as report

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_render", interrupted)
    assert main(["report", str(tmp_path / "x.h5")]) == 130
    assert capsys.readouterr().err.strip() == "labctl: interrupted"


def test_forming_refuses_a_chip_whose_cells_are_not_formed(tmp_path, capsys):
    """A two-FeFET die has nothing to form: refused before any sweep, not '0/4096 formed'."""
    out = tmp_path / "f.h5"
    assert main(["run", "forming", "--preset", "mos2-fefet-2t", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fefet-2t" in err[0] and "not formed" in err[0]
    assert not out.exists()             # refused in preflight: no run file left behind


@pytest.mark.parametrize("argv, words", [
    (["run", "symmetry-point", "--up-V", "50"], "bit line voltage 50 V"),
    (["run", "symmetry-point", "--down-V", "-9"], "bit line voltage 9 V"),
    (["run", "forming", "--gate-V", "9"], "gate voltage 9 V"),
    (["run", "forming", "--v-stop-V", "30"], "bit line voltage 30 V"),
    (["pipeline", "sparse-train", "--pulse-V", "100"], "write gate voltage 100 V"),
])
def test_voltages_beyond_the_limits_are_refused_before_a_run_file_exists(
        tmp_path, capsys, argv, words):
    """The chip's limits are known once it opens: checked there, before any file or pulse."""
    out = tmp_path / "r.h5"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "exceeds the limit" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("argv, words", [
    (["run", "forming", "--conditioning-cycles", "100000000"], "0 to 1,000"),
    (["run", "symmetry-point", "--batch-pulses", "1000000000"], "at most 1,000,000"),
    # the fit of 262,144 devices took 17 GB and half an hour (1024x1024: out of memory)
    (["run", "symmetry-point", "--rows", "512", "--cols", "512"], "use a smaller die"),
    (["run", "program", "--levels", "100000000"], "at most 10,000,000"),
    (["run", "retention", "--levels", "10000", "--repeats", "10000"], "at most 10,000,000"),
])
def test_counts_that_would_run_for_days_are_refused_before_a_run_file_exists(
        tmp_path, capsys, argv, words):
    """A mistyped count used to allocate its schedule (MemoryError, an aborted file) or
    program for days: one line, exit 2, nothing written."""
    out = tmp_path / "r.h5"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["run", "program", "--levels", "3", "--width-s", "10"],
    ["run", "symmetry-point", "--width-s", "1e-12"],
    ["run", "retention", "--levels", "3", "--width-s", "10"],
    ["program", "W.npy", "--width-s", "10"],
    ["pipeline", "sparse-train", "--pulse-width-s", "10"],
])
def test_pulse_widths_beyond_the_limits_are_refused_before_anything_runs(tmp_path, capsys,
                                                                         argv):
    """Checked once the chip is open, before the run file, forming or any pulse."""
    import numpy as np

    np.save(tmp_path / "W.npy", np.eye(4) * 0.5)
    argv = [str(tmp_path / "W.npy") if a == "W.npy" else a for a in argv]
    out = tmp_path / "r.h5"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pulse width" in err[0] and "is outside" in err[0], err
    assert not out.exists()


def test_a_failed_command_with_json_ends_stdout_with_a_status_line(tmp_path, capsys):
    """Scripts read the last JSON line: a failure says so there too (and on stderr)."""
    import json

    code = main(["run", "forming", "--preset", "no-such-preset", "--json",
                 "--out", str(tmp_path / "x.h5")])
    out, err = capsys.readouterr()
    last = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and last == {"status": "failed", "exit_code": 2,
                                  "error": err.strip().removeprefix("labctl: ")}
    assert main(["run", "forming", "--preset", "no-such-preset",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert capsys.readouterr().out == ""                 # without --json: stderr only
    # a usage error caught by the argument parser itself: the same status line
    with pytest.raises(SystemExit) as e:
        main(["run", "forming", "--rows", "0", "--json"])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and json.loads(out.strip().splitlines()[-1]) == {
        "status": "failed", "exit_code": 2, "error": err.strip().removeprefix("labctl: ")}


def test_a_run_file_is_never_overwritten(tmp_path, capsys, monkeypatch):
    """An existing --out is refused (the first run intact); two runs in one second with the
    default name get two files."""
    from labctl.commands import common
    from labctl.data.runfile import RunReader

    out = tmp_path / "f.h5"
    assert main(["run", "forming", "--rows", "2", "--cols", "2", "--out", str(out),
                 "--quiet"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["run", "forming", "--rows", "1", "--cols", "1", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert out.read_bytes() == before
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common.time, "strftime", lambda fmt: "20260101-000000")
    for _ in range(2):
        assert main(["run", "forming", "--rows", "1", "--cols", "1", "--quiet"]) == 0
    names = sorted(p.name for p in tmp_path.glob("run-forming-*.h5"))
    assert names == ["run-forming-20260101-000000-2.h5", "run-forming-20260101-000000.h5"]
    for n in names:
        with RunReader(tmp_path / n) as r:
            assert r.status == "complete"


@pytest.mark.parametrize("argv, words", [
    (["pipeline", "train", "--dataset", "digits", "--preset", "mos2-fefet-2t"],
     "this chip is fefet-2t"),
    (["pipeline", "train", "--dataset", "digits", "--lr", "0"], "--lr must be > 0"),
    (["pipeline", "train", "--dataset", "digits", "--omega", "-1"], "--omega must be >= 0"),
    (["pipeline", "prune", "--dataset", "digits", "--software-epochs", "0"],
     "--software-epochs must be >= 1"),
    (["run", "forming", "--rows", "1", "--cols", "1", "--v-step-V", "1e-9"],
     "at most 16,000"),      # was a 30 GiB allocation, an internal error and an aborted file
])
def test_messages_name_the_option_and_leave_no_file(tmp_path, capsys, argv, words):
    out = tmp_path / "r.h5"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()


def test_an_out_path_naming_a_directory_is_refused(tmp_path, capsys):
    out = f"{tmp_path / 'newdir'}/"
    assert main(["run", "forming", "--rows", "1", "--cols", "1", "--out", out, "--quiet"]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path / "newdir").exists()


def test_forming_compliance_beyond_the_limit_is_refused_before_a_run_file_exists(
        tmp_path, capsys):
    out = tmp_path / "f.h5"
    assert main(["run", "forming", "--compliance-A", "0.01", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compliance 0.01 A is outside" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("command", [["run", "program", "--levels", "3"],
                                     ["run", "retention", "--levels", "3", "--repeats", "2",
                                      "--times", "1,10"],
                                     ["run", "symmetry-point"]])
def test_the_forming_ramp_of_unformed_cells_is_checked_in_preflight(tmp_path, capsys,
                                                                     command):
    """Protocols that form unformed cells first check that ramp too: a chip limited to 3 V
    cannot take the 4 V forming ramp, refused before any file or pulse."""
    from labctl.sim_backend.presets import preset_path

    text = preset_path("cmo-hfox-1t1r").read_text()
    low = tmp_path / "low.toml"
    low.write_text(text.replace("max_voltage_V = 4.0", "max_voltage_V = 3.0", 1))
    assert low.read_text() != text
    out = tmp_path / "r.h5"
    assert main([*command, "--preset", str(low), "--rows", "2", "--cols", "2", "--out",
                 str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bit line voltage 4 V exceeds the limit of 3 V" in err[0], err
    assert "forming ramp" in err[0] and "--no-form" in err[0]
    assert not out.exists()
    # a die already formed: --no-form skips the ramp, and its check
    assert main([*command, "--preset", str(low), "--rows", "2", "--cols", "2", "--no-form",
                 "--out", str(tmp_path / "nf.h5"), "--quiet"]) != 2 or "4 V" not in \
        capsys.readouterr().err


def test_out_with_resume_naming_another_file_is_refused(tmp_path, capsys):
    """A resumed run writes into the file it resumes: an --out elsewhere would be ignored."""
    run = tmp_path / "f.h5"
    assert main(["run", "forming", "--rows", "1", "--cols", "2", "--out", str(run),
                 "--quiet"]) == 0
    capsys.readouterr()
    other = tmp_path / "other.h5"
    assert main(["run", "forming", "--resume", str(run), "--out", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "carries on in its own file" in err[0], err
    assert not other.exists()


@pytest.mark.parametrize("argv, words", [
    (["run", "forming", "--preset", "{dir}.toml"], "is a directory, not a file"),
    (["emulate", "{dir}"], "is a directory, not a file"),
    (["run", "forming", "--backend", "{dir}.toml"], "is a directory, not a file"),
    (["run", "forming", "--out", "{file}/a.h5"], "is a file, not a directory"),
])
def test_a_path_of_the_wrong_kind_is_named_as_such(tmp_path, capsys, argv, words):
    """A directory given for a file (or a file for a directory) used to read 'does not
    exist', sending the user to look for a path that is right there."""
    (tmp_path / "d.toml").mkdir()
    (tmp_path / "f").write_text("")
    subs = {"{dir}.toml": str(tmp_path / "d.toml"), "{dir}": str(tmp_path / "d.toml"),
            "{file}/a.h5": str(tmp_path / "f" / "a.h5")}
    assert main([subs.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_report_into_a_file_is_named_as_such(tmp_path, capsys):
    run = tmp_path / "f.h5"
    assert main(["run", "forming", "--rows", "1", "--cols", "2", "--out", str(run),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(run)]) == 2     # was "File exists"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"labctl: --out {run} is a file, not a directory"]


@pytest.mark.parametrize("argv, words", [
    (["run", "forming", "--backend="], "--backend: empty"),   # "$STATION" unset in a script
    (["run", "forming", "--out="], "--out: empty"),
    (["report", "x.h5", "--out="], "--out: empty"),
    (["run", "forming", "--gate-V", "0"], "--gate-V must be > 0 V"),
    (["run", "forming", "--gate-V", "-1"], "--gate-V must be > 0 V"),
])
def test_empty_paths_and_a_gate_that_cannot_open_are_refused(tmp_path, capsys, monkeypatch,
                                                             argv, words):
    """An empty --backend used to run on the simulator, an empty --out to pick a default
    name, and a gate of 0 V to 'complete' a forming run at yield 0."""
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:   # a usage error: argparse exits
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not list(tmp_path.iterdir())


def test_a_single_cell_has_no_spread_rather_than_a_spread_of_zero(tmp_path, capsys):
    """One formed cell printed 'V_form 3.400 V +/- 0.000 V': a standard deviation of one
    value is none, not a measured 0."""
    import json

    assert main(["run", "forming", "--rows", "1", "--cols", "1", "--json",
                 "--out", str(tmp_path / "one.h5")]) == 0
    out = capsys.readouterr().out
    s = json.loads(out.strip().splitlines()[-1])
    assert s["formed"] == 1 and s["v_form_mean_V"] > 0
    assert s["v_form_std_V"] is None and s["i_form_std_A"] is None and "+/-" not in out


def test_a_path_the_system_refuses_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    """The last safety net: an OSError about a file, from wherever it comes (a full disk, a
    read-only mount), is bad input naming the file, not an internal error."""
    import errno

    from labctl.commands import report

    run = tmp_path / "f.h5"
    assert main(["run", "forming", "--rows", "1", "--cols", "1", "--quiet", "--out",
                 str(run)]) == 0
    capsys.readouterr()

    def refused(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/f-report/forming.png")

    monkeypatch.setattr(report, "_render", refused)
    assert main(["report", str(run), "--json"]) == 2
    out, err = capsys.readouterr()
    assert err == "labctl: /mnt/ro/f-report/forming.png: Read-only file system\n"
    assert '"exit_code": 2' in out.strip().splitlines()[-1]
