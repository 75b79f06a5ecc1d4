"""The instrument transcript is appended to the run file as the run goes, and a resume
appends the new session's entries after the earlier ones, whatever state they were left in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.commands.common import TranscriptLog, prior_transcript
from labctl.data.runfile import RunReader, RunWriter

COLUMNS = ("resource", "time_s", "direction", "text", "session")


class FakeStation:
    """take_transcript() hands out the entries of each call's batch once."""

    def __init__(self, batches: list[list[str]]) -> None:
        self.batches = list(batches)
        self.round_trips = 0

    def take_transcript(self) -> dict[str, tuple[Any, str]] | None:
        texts = self.batches.pop(0) if self.batches else []
        self.round_trips += len(texts)
        n = len(texts)
        return {"resource": (np.array(["GPIB::1"] * n), ""),
                "time_s": (1.7e9 + np.arange(n, dtype=float), "s"),
                "direction": (np.array(["w"] * n), ""), "text": (np.array(texts), "")}


def _columns(path: Path) -> dict[str, list[Any]]:
    with RunReader(path) as r:
        return {c: [x.decode() if isinstance(x, bytes) else x for x in r.data(f"transcript/{c}")]
                for c in COLUMNS}


def _resume(path: Path, batches: list[list[str]]) -> None:
    with RunReader(path) as r:
        prior = prior_transcript(r)
    w = RunWriter(path, command="c", config={}, backend={}, resume=True)
    log = TranscriptLog(w, FakeStation(batches), prior)
    log.append()
    w.finish("complete")


def test_entries_are_on_disk_after_each_append_and_a_resume_adds_its_own(tmp_path: Path) -> None:
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    log = TranscriptLog(w, FakeStation([["*IDN?", "a"], ["b"]]), None)
    log.append()
    log.append()
    assert _columns(p)["text"] == ["*IDN?", "a", "b"]   # before the run ends: a kill keeps them
    w.h5.close()                                          # killed: never finished
    w._unlock()
    _resume(p, [["c", "d"]])
    cols = _columns(p)
    assert cols["text"] == ["*IDN?", "a", "b", "c", "d"]
    assert cols["session"] == [0, 0, 0, 1, 1]
    with RunReader(p) as r:
        assert int(r.attrs()["round_trips"]) == 5 and r.units("transcript/time_s") == "s"


def test_a_transcript_written_whole_by_an_older_labctl_is_carried_on(tmp_path: Path) -> None:
    p = tmp_path / "old.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.write("transcript/resource", np.array(["GPIB::1"] * 2), "")
    w.write("transcript/time_s", np.array([0.1, 0.2]), "s")
    w.write("transcript/direction", np.array(["w", "r"]), "")
    w.write("transcript/text", np.array(["*IDN?", "X"]), "")
    w.finish("aborted", error="KeyboardInterrupt: interrupted")
    _resume(p, [["e"]])
    cols = _columns(p)
    assert cols["text"] == ["*IDN?", "X", "e"] and cols["session"] == [0, 0, 1]


def test_columns_a_kill_left_of_unequal_length_are_cut_before_the_resume_appends(
        tmp_path: Path) -> None:
    p = tmp_path / "torn.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    TranscriptLog(w, FakeStation([["a", "b"]]), None).append()
    w.append("transcript/resource", np.array(["GPIB::1"]), "")   # killed after one column
    w.h5.close()
    w._unlock()
    with RunReader(p, whole_records=True) as r:   # as report and watch read it
        assert len(r.data("transcript/resource")) == len(r.data("transcript/text")) == 2
    _resume(p, [["c"]])
    cols = _columns(p)
    assert cols["text"] == ["a", "b", "c"] and len(cols["resource"]) == 3
