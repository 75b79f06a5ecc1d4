"""Number options: nan, inf ("1e999") and negative seeds are argparse's one-line usage error
(exit 2), never an internal error later or a limit message about another quantity."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.cli import main


@pytest.mark.parametrize("argv, words", [
    (["run", "forming", "--seed", "-1"], "argument --seed: a seed is an integer >= 0"),
    (["demo", "--seed", "-1"], "argument --seed: a seed is an integer >= 0"),
    (["run", "forming", "--v-stop-V", "1e999"], "argument --v-stop-V: not a finite number"),
    (["run", "program", "--g-max-S", "inf"], "argument --g-max-S: not a finite number"),
    (["pipeline", "train", "--lr", "nan"], "argument --lr: not a finite number"),
    (["pipeline", "train", "--omega", "abc"], "argument --omega: not a number"),
    (["watch", "x.h5", "--interval-s", "nan"], "argument --interval-s: not a finite number"),
    (["run", "forming", "--preset="], "argument --preset: empty"),
])
def test_nonsense_numbers_are_usage_errors(argv: list[str], words: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.h5"
    extra = [] if argv[0] == "watch" else ["--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main([*argv, *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert words in err[-1] and "internal error" not in "".join(err)
    assert not out.exists()


def test_a_path_the_system_refuses_is_a_one_line_error(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """OSErrors that name a file (a directory given for a file, a file where a directory
    must go) are the user's paths, not labctl bugs: one line, exit 2."""
    from labctl.data.runfile import RunWriter

    run = tmp_path / "r.h5"
    RunWriter(run, command="run forming", config={}, backend={}).finish("complete")
    (tmp_path / "notes.txt").write_text("mine")
    code = main(["watch", str(run), "--out", str(tmp_path / "notes.txt"), "--timeout-s", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "internal error" not in err[0]
    assert str(tmp_path / "notes.txt") in err[0]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    code = main(["run", "forming", "--out", str(tmp_path / "notes.txt" / "x.h5"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "internal error" not in err[0]


@pytest.mark.parametrize("option, value, words", [("--alpha", "2", "significance level"),
                                                  ("--alpha", "0", "significance level"),
                                                  ("--tolerance", "-0.1", "tolerance")])
def test_replay_checks_its_statistics_options(option: str, value: str, words: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    replays = Path(__file__).resolve().parents[1] / "replays"
    run = sorted(replays.glob("*.h5"))[0]
    assert main(["replay", str(run), option, value]) == 2
    assert words in capsys.readouterr().err
