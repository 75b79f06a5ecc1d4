"""``--resume RUN.h5`` alone: the options not typed again are the run's own, except the
session's own and ``--backend`` (a station is driven only when the command names it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.cli import build_parser, main
from labctl.data.runfile import RunReader, RunWriter
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
    ["run", "forming", "--resume", "{missing}"],        # no such file
    ["run", "forming", "--rows", "4"],                  # nothing resumed
    ["report", "{f}"],                                  # a command without --resume
])
def test_anything_else_is_left_as_typed(tmp_path, argv):
    f = _run_file(tmp_path, ["run", "forming", "--rows", "64"])
    argv = [a.format(f=f, missing=tmp_path / "none.h5") for a in argv]
    assert _line(argv) == argv


def test_a_recorded_option_this_labctl_does_not_know_is_not_guessed(tmp_path):
    f = str(_run_file(tmp_path, ["run", "forming", "--rows", "64", "--no-such-option", "1"]))
    argv = ["run", "forming", "--resume", f]
    assert _line(argv) == argv


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    from labctl.commands.progress import ProgressBar

    calls = [0]

    def call(self: Any, done: int, total: int, label: str = "") -> None:
        calls[0] += 1
        if calls[0] >= n:
            monkeypatch.undo()
            raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(ProgressBar, "__call__", call)


def test_an_interrupted_run_resumes_from_its_file_alone_to_the_uninterrupted_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "symmetry-point", "--rows", "4", "--cols", "2", "--seed", "3",
            "--batch-pulses", "20", "--cycles", "1", "--alternating-pulses", "20",
            "--read-repeats", "4", "--quiet"]
    full, cut = tmp_path / "full.h5", tmp_path / "cut.h5"
    assert main([*args, "--out", str(full)]) == 0
    _interrupt_after(monkeypatch, 2)
    assert main([*args, "--out", str(cut)]) == 130
    capsys.readouterr()
    assert main(["run", "symmetry-point", "--resume", str(cut)]) == 0, capsys.readouterr().err
    with RunReader(full) as a, RunReader(cut) as b:
        assert b.status == "complete"
        for name in a.datasets():
            assert (a.data(name) == b.data(name)).all(), name
        # the session records the completed command line (--quiet was the first session's)
        session = json.loads(b.attrs()["sessions"])[-1]["argv"]
        assert session == [*args[:-1], "--resume", str(cut)]
    # a changed option is still refused, with what differs
    cut2 = tmp_path / "cut2.h5"
    _interrupt_after(monkeypatch, 2)
    assert main([*args, "--out", str(cut2)]) == 130
    capsys.readouterr()
    assert main(["run", "symmetry-point", "--resume", str(cut2), "--seed", "4"]) == 2
    assert "seed" in capsys.readouterr().err
