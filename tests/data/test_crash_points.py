"""A killed writer at every possible point: the run file rolls back to its last flush.

A SIGKILL stops a process between two system calls, and the kernel keeps every write that
finished.  So the file a kill can leave is the file after some prefix of the writer's
writes and truncations.  These tests record every one of them (to the run file and to its
journal, in order), rebuild the files each prefix leaves, run the recovery a reader or a
resume runs, and require the run file's bytes to equal those at the last commit, and every
committed state to read whole.  Before the journal, 1 such prefix in 10 of a prune run left
a file whose status or data could not be read.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

import labctl.data.journal as journal
from labctl.cli import main
from labctl.data.journal import JournaledFile, journal_path, recover
from labctl.data.runfile import RunReader, RunWriter, data_names, find_checkpoint


class _Recorder:
    """Logs each write and truncation of the run file and its journal, and each commit."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, str, int, bytes]] = []   # (kind, file, offset|size, data)
        self.names: dict[int, str] = {}

    def os_proxy(self) -> types.SimpleNamespace:
        real = os
        rec = self

        def open_(path, flags, mode=0o777):
            fd = real.open(path, flags, mode)
            rec.names[fd] = ("journal" if str(path).endswith("-journal") else
                             "dir" if real.path.isdir(path) else "run")
            if flags & real.O_TRUNC:
                rec.ops.append(("t", rec.names[fd], 0, b""))
            return fd

        def pwrite(fd, data, offset):
            rec.ops.append(("w", rec.names[fd], offset, bytes(data)))
            return real.pwrite(fd, data, offset)

        def ftruncate(fd, size):
            rec.ops.append(("t", rec.names[fd], size, b""))
            return real.ftruncate(fd, size)

        def fsync(fd):
            rec.ops.append(("s", rec.names[fd], 0, b""))
            return real.fsync(fd)

        proxy = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real)
                                         if not k.startswith("__")})
        proxy.open, proxy.pwrite, proxy.ftruncate, proxy.fsync = open_, pwrite, ftruncate, fsync
        return proxy


def _record(monkeypatch, tmp_path: Path, argv: list[str]) -> tuple[_Recorder, Path]:
    rec = _Recorder()
    monkeypatch.setattr(journal, "os", rec.os_proxy())
    commit = JournaledFile.commit

    def logged_commit(self):
        commit(self)
        rec.ops.append(("c", "run", 0, b""))

    monkeypatch.setattr(JournaledFile, "commit", logged_commit)
    out = tmp_path / "run.h5"
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    monkeypatch.undo()
    assert not journal_path(out).exists()    # a finished run leaves no journal
    return rec, out


def _apply(image: bytearray, kind: str, offset: int, data: bytes) -> None:
    if kind == "t":
        del image[offset:]
        image.extend(bytes(offset - len(image)))
    else:
        if offset > len(image):
            image.extend(bytes(offset - len(image)))
        image[offset:offset + len(data)] = data


def _check_reads_whole(path: Path) -> None:
    with RunReader(path) as r:
        assert r.status in ("running", "complete")
        find_checkpoint(r.h5)
        for name in data_names(r.h5):
            r.data(name)


def _every_prefix(rec: _Recorder, tmp_path: Path, points: np.ndarray | None = None) -> int:
    """Check the kill after each recorded operation (or each of ``points``)."""
    run, jour = bytearray(), bytearray()
    committed = b""
    checked_commits: set[bytes] = set()
    crash = tmp_path / "crash.h5"
    wanted = set(range(len(rec.ops))) if points is None else set(points.tolist())
    for i, (kind, name, offset, data) in enumerate(rec.ops):
        if kind == "s" or name == "dir":
            continue
        if kind == "c":
            assert committed == bytes(run)
            if committed not in checked_commits:
                crash.write_bytes(committed)
                _check_reads_whole(crash)
                checked_commits.add(committed)
            continue
        _apply(run if name == "run" else jour, kind, offset, data)
        if name == "journal" and not jour:    # emptied: this is the commit
            committed = bytes(run)
        if i not in wanted:
            continue
        crash.write_bytes(run)
        journal_path(crash).write_bytes(jour)
        recover(crash)
        assert crash.read_bytes() == committed, f"kill after operation {i} ({kind} {name})"
        assert not journal_path(crash).exists()
    assert checked_commits
    return len(wanted)


def test_a_kill_after_any_write_of_a_program_run_rolls_back_to_its_last_flush(
        monkeypatch, tmp_path):
    rec, _ = _record(monkeypatch, tmp_path, ["run", "program", "--levels", "4", "--repeats",
                                             "2", "--rows", "4", "--cols", "2"])
    assert sum(op[0] == "c" for op in rec.ops) > 20
    assert _every_prefix(rec, tmp_path) > 200


def test_a_kill_anywhere_in_a_checkpointed_pipeline_rolls_back_to_its_last_flush(
        monkeypatch, tmp_path):
    rec, out = _record(monkeypatch, tmp_path, ["pipeline", "train", "--algorithm", "agad",
                                               "--dataset", "digits", "--network", "64-16-10",
                                               "--epochs", "2", "--fp-epochs", "1",
                                               "--limit", "200"])
    points = np.random.default_rng(0).choice(len(rec.ops), size=min(400, len(rec.ops)),
                                             replace=False)
    _every_prefix(rec, tmp_path, points)


def test_a_reader_rolls_a_killed_file_back_and_a_resume_continues_from_there(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("d", np.arange(4), "")
    w.checkpoint({"lengths": [["d", 4]], "step": 1})
    committed = p.read_bytes()
    # a step half written: HDF5 has changed the file, the writer has not committed it
    w.h5["d"].resize(10, axis=0)
    w.h5["d"][4:] = 7
    w.h5.flush()
    # the process dies here: what it leaves is the file and its journal as they are now
    killed = tmp_path / "killed.h5"
    killed.write_bytes(p.read_bytes())
    journal_path(killed).write_bytes(journal_path(p).read_bytes())
    w.finish("complete")
    assert killed.read_bytes() != committed and journal_path(killed).stat().st_size > 0
    with RunReader(killed) as r:        # rolls back: nobody writes it, the journal is stale
        assert np.array_equal(r.data("d"), np.arange(4)) and r.status == "running"
    assert killed.read_bytes() == committed and not journal_path(killed).exists()
    w2 = RunWriter(killed, command="c", config={}, backend={}, resume=True)
    w2.append("d", [9], "")
    w2.finish("complete")
    with RunReader(killed) as r:
        assert np.array_equal(r.data("d"), [0, 1, 2, 3, 9])


def test_a_live_writers_journal_is_left_alone(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("d", np.arange(4), "")
    w.h5["d"].resize(6, axis=0)
    w.h5.flush()
    before = p.read_bytes()
    with RunReader(p) as r:                   # the writer holds its lock: no roll back
        assert r.status == "running"
    assert p.read_bytes() == before and journal_path(p).stat().st_size > 0
    w.finish("complete")
    assert not journal_path(p).exists()


def test_a_file_killed_before_its_first_flush_is_a_one_line_error(tmp_path):
    p = tmp_path / "r.h5"
    p.write_bytes(b"")
    with pytest.raises(Exception, match="empty: its run was killed before it wrote"):
        RunReader(p)
    with pytest.raises(Exception, match="empty: its run was killed before it wrote"):
        RunWriter(p, command="c", config={}, backend={}, resume=True)


def test_a_foreign_journal_is_not_applied(tmp_path):
    p = tmp_path / "r.h5"
    with h5py.File(p, "w") as f:
        f.attrs["x"] = 1
    journal_path(p).write_bytes(b"not a journal at all, but long enough")
    with pytest.raises(OSError, match="not a labctl journal"):
        recover(p)


def test_a_station_run_syncs_the_journal_before_the_file_and_the_file_before_a_commit(
        monkeypatch, tmp_path):
    """Power-cut ordering (``durable``): the kernel may put unsynced writes on disk in any
    order, so the run file is never changed while the journal holds unsynced records, and
    the journal is never emptied while the run file holds unsynced writes."""
    rec = _Recorder()
    monkeypatch.setattr(journal, "os", rec.os_proxy())
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={"backend": "station"}, durable=True)
    for k in range(30):
        w.append("cells/g_S", [1e-5 * k], "S")
        w.append("cells/pulses", [k], "")
        if k % 10 == 9:
            w.checkpoint({"g_S": np.full((16, 16), float(k)), "step": k,
                          "lengths": [["cells/g_S", k + 1], ["cells/pulses", k + 1]]})
    w.finish("complete")
    monkeypatch.undo()
    unsynced = {"run": False, "journal": False}
    commits = 0
    for kind, name, offset, _ in rec.ops:
        if name == "dir":
            continue
        if kind == "s":
            unsynced[name] = False
        elif name == "run":
            assert not unsynced["journal"], "run file changed before its journal was synced"
            unsynced["run"] = True
        elif kind == "t" and offset == 0:
            assert not unsynced["run"], "journal emptied before the run file was synced"
            commits += 1
        else:
            unsynced["journal"] = True
    assert commits > 60
    assert sum(op[0] == "s" and op[1] == "dir" for op in rec.ops) == 1
    with RunReader(p) as r:
        assert np.array_equal(r.data("cells/pulses"), np.arange(30))


def test_a_simulator_run_does_not_sync(monkeypatch, tmp_path):
    rec = _Recorder()
    monkeypatch.setattr(journal, "os", rec.os_proxy())
    w = RunWriter(tmp_path / "r.h5", command="c", config={}, backend={"backend": "sim"})
    w.append("d", [1.0], "")
    w.finish("complete")
    monkeypatch.undo()
    assert not [op for op in rec.ops if op[0] == "s"]
