"""``--resume RUN.h5`` alone: the options not typed again are the run's own, except the
session's own and ``--backend`` (a station is driven only when the command names it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.cli import build_parser, main
from labctl.data.runfile import RunWriter
from labctl.resume_line import resume_command_line


def _run_file(tmp_path: Path, argv: list[str], name: str = "r.h5") -> Path:
    out = tmp_path / name
    w = RunWriter(out, command=" ".join(argv[:2]), config={}, backend={"backend": "sim"},
                  argv=argv)
    w.finish("aborted", error="KeyboardInterrupt")
    return out


def _line(argv: list[str]) -> list[str]:
    return resume_command_line(build_parser(), argv)


def test_a_bare_resume_takes_the_recorded_options_but_not_the_sessions_own(tmp_path):
    rec = ["run", "forming", "--rows", "64", "--cols", "8", "--seed=5", "--out", "x.h5",
           "--backend", "station.toml", "--json", "--quiet"]
    f = str(_run_file(tmp_path, rec))
    line = _line(["-v", "run", "forming", "--resume", f, "--json"])
    assert line == ["-v", "run", "forming", "--rows", "64", "--cols", "8", "--seed=5",
                    "--resume", f, "--json"]


def test_typed_options_replace_the_recorded_ones(tmp_path):
    rec = ["pipeline", "train", "--algorithm", "agad", "--rule-option", "a=1",
           "--rule-option", "b=2", "--epoch", "3"]             # (an abbreviation, as typed)
    f = str(_run_file(tmp_path, rec))
    line = _line(["pipeline", "train", "--resume", f, "--rule-option", "a=3", "--epochs", "4"])
    assert line == ["pipeline", "train", "--algorithm", "agad",
                    "--resume", f, "--rule-option", "a=3", "--epochs", "4"]


def test_an_option_that_replaces_others_drops_the_recorded_ones(tmp_path):
    f = str(_run_file(tmp_path, ["run", "program", "--levels", "8", "--repeats", "2"]))
    assert _line(["run", "program", "--resume", f, "--targets", "t.npy"]) == [
        "run", "program", "--resume", f, "--targets", "t.npy"]
    g = str(_run_file(tmp_path, ["run", "program", "--targets", "t.npy"], name="g.h5"))
    assert _line(["run", "program", "--resume", g, "--levels", "4"]) == [
        "run", "program", "--resume", g, "--levels", "4"]


def test_positional_inputs_come_from_the_run_or_must_match_it(tmp_path):
    rec = ["program", "w.npy", "--rows", "8", "--window-S", "1e-5", "9e-5"]
    f = str(_run_file(tmp_path, rec))
    full = ["program", "w.npy", "--rows", "8", "--window-S", "1e-5", "9e-5", "--resume", f]
    assert _line(["program", "--resume", f]) == full
    assert _line(["program", "w.npy", "--resume", f]) == full
    other = ["program", "v.npy", "--resume", f]
    assert _line(other) == other      # the command itself then says what differs


@pytest.mark.parametrize("argv", [
    ["run", "retention", "--resume", "{f}"],           # another command's run
    ["run", "forming", "--rows", "4"],                  # nothing resumed
    ["report", "{f}"],                                  # a command without --resume
])
def test_anything_else_is_left_as_typed(tmp_path, argv):
    f = _run_file(tmp_path, ["run", "forming", "--rows", "64"])
    argv = [a.format(f=f) for a in argv]
    assert _line(argv) == argv


def test_a_recorded_option_this_labctl_does_not_know_is_not_guessed(tmp_path):
    f = str(_run_file(tmp_path, ["run", "forming", "--rows", "64", "--no-such-option", "1"]))
    argv = ["run", "forming", "--resume", f]
    assert _line(argv) == argv


def test_a_missing_run_file_is_the_one_error_even_when_the_command_lacks_its_inputs(
        tmp_path, capsys):
    missing = tmp_path / "none.h5"
    # (without the completion, argparse would first ask for the inference's TRANSFER.h5)
    assert main(["pipeline", "inference", "--resume", str(missing), "--json"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"labctl: {missing}: no such run file"]
    assert '"status": "failed"' in out.strip().splitlines()[-1]
    not_h5 = tmp_path / "notes.h5"
    not_h5.write_text("not a run")
    assert main(["program", "--resume", str(not_h5)]) == 2
    assert "is not an HDF5 run file" in capsys.readouterr().err


def test_the_resume_hint_names_the_station_again():
    """--backend is never taken from the file, so the hint after a station run's fault or
    interrupt types it again; a simulator run's hint needs none."""
    from labctl.cli import build_parser
    from labctl.resume_line import resume_command

    parser = build_parser()
    assert resume_command(parser, ["run", "forming", "--backend", "st.toml", "--rows", "2"],
                          "r.h5") == "labctl run forming --resume r.h5 --backend st.toml"
    assert resume_command(parser, ["run", "program", "--backend=st.toml"], "r.h5") \
        == "labctl run program --resume r.h5 --backend st.toml"
    assert resume_command(parser, ["run", "forming"], "r.h5") == \
        "labctl run forming --resume r.h5"


def test_an_ambiguous_abbreviation_leaves_the_line_as_typed(tmp_path):
    """``--r`` could be --rows or --resume: nothing is guessed, the command reports it."""
    f = str(_run_file(tmp_path, ["run", "forming", "--rows", "64", "--cols", "8",
                                 "--seed=5"]))
    typed = ["run", "forming", "--resume", f, "--r", "16"]
    assert _line(typed) == typed
