"""The README's first command: `labctl demo` runs every protocol and draws the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.cli import main


def test_demo_runs_every_protocol_and_leaves_no_earlier_demo_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo-run"
    (out / "report").mkdir(parents=True)
    (out / "report" / "stale.png").write_bytes(b"an earlier demo's figure")
    (out / "retention.h5").write_bytes(b"an earlier demo's run")
    (out / ".labctl-demo").write_text("an earlier demo's directory")
    (out / "symmetry-point-preset.toml").write_text("# an earlier demo's fitted preset\n")
    assert main(["demo", "--out", str(out), "--quiet", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["status"] == "complete"
    assert set(s["runs"]) == {"forming", "program", "symmetry-point", "retention"}
    assert all(r["status"] == "complete" for r in s["runs"].values())
    assert s["runs"]["forming"]["summary"]["yield"] == 1.0
    sp = s["runs"]["symmetry-point"]["summary"]      # per-device lists stay in the run file
    assert sp["per_device"] == "in the run file's summary" and "n_states_mean" in sp
    figures = sorted(p.name for p in (out / "report").glob("*.png"))
    assert "stale.png" not in figures and len(figures) >= 10
    assert s["runs"]["retention"]["run_file"] == str(out / "retention.h5")
    preset = (out / "symmetry-point-preset.toml").read_text()   # this demo's own fit
    assert "earlier demo" not in preset and "fitted by labctl run symmetry-point" in preset


def test_demo_never_replaces_files_it_did_not_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory of the user's own (no demo marker) is refused before anything is touched:
    the demo used to delete program.h5 and report/*.png there."""
    out = tmp_path / "mydata"
    (out / "report").mkdir(parents=True)
    (out / "program.h5").write_bytes(b"the user's own run")
    (out / "report" / "thesis.png").write_bytes(b"the user's own figure")
    assert main(["demo", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no labctl demo wrote" in err[0], err
    assert (out / "program.h5").read_bytes() == b"the user's own run"
    assert (out / "report" / "thesis.png").is_file()
    assert not (out / ".labctl-demo").exists()


def test_a_failed_demo_step_ends_with_one_line_and_the_json_status(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The step says why in its own one line; with --json the demo's last stdout line says
    how it ended (it used to end with the step's banner, and a second stderr line)."""
    from labctl.commands import demo

    monkeypatch.setattr(demo, "STEPS", [("forming", "run_forming",
                                          ["run", "forming", "--v-step-V", "-1"], "forming.h5")])
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet", "--json"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    end = json.loads(captured.out.strip().splitlines()[-1])
    assert end == {"status": "failed", "exit_code": 2,
                   "error": "demo step 'forming' failed with exit code 2"}


def test_an_interrupted_demo_step_is_called_interrupted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl import cli
    from labctl.commands import demo

    monkeypatch.setattr(demo, "STEPS", [("forming", "run_forming", ["run", "forming"],
                                          "forming.h5")])
    real = cli.main
    monkeypatch.setattr(cli, "main", lambda argv=None: 130 if argv and argv[0] == "run"
                        else real(argv))
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet", "--json"]) == 130
    end = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert end == {"status": "interrupted", "exit_code": 130,
                   "error": "demo step 'forming' was interrupted"}
