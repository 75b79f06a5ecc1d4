import json

import h5py
import numpy as np
import pytest

from labctl.data.runfile import RunReader, RunWriter, check_writable
from labctl.errors import ConfigError, DataFormatError


def test_append_flush_units_and_status(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="run test", config={"a": 1}, backend={"backend": "sim", "seed": 3})
    w.append("g/x_V", np.arange(3.0), "V")
    w.append("g/x_V", np.arange(3.0, 5.0), "V")
    w.append("g/m_A", np.ones((2, 4)), "A")
    w.append("g/m_A", np.ones(4), "A")  # one record
    # readable while the writer is open, and says running
    with RunReader(p) as r:
        assert r.status == "running"
        assert np.array_equal(r.data("g/x_V"), np.arange(5.0))
        assert r.data("g/m_A").shape == (3, 4)
        assert r.units("g/m_A") == "A"
    w.set_summary({"k": np.float64(2.5)})
    w.finish("complete")
    with RunReader(p) as r:
        assert r.status == "complete" and r.summary == {"k": 2.5}
        assert r.config == {"a": 1} and r.backend["seed"] == 3
        assert r.attrs()["labctl_version"]
        assert all(r.units(n) for n in r.datasets())


def test_records_appended_one_at_a_time_share_chunks(tmp_path):
    # h5py sizes chunks to the first append: one record each made a night-long program run
    # (one row per verify round) hundreds of thousands of chunks
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    for k in range(300):
        w.append("rounds/index", k, "")
        w.append("rounds/trace_S", np.full((1, 8), float(k)), "S")
    w.append("big/iv_A", np.zeros((4, 401)), "A")       # a first append larger than 8 KiB
    w.finish("complete")
    with h5py.File(p) as f:
        assert f["rounds/index"].chunks == (1024,)
        assert f["rounds/trace_S"].chunks == (128, 8)
        assert f["big/iv_A"].chunks == (4, 401)
    with RunReader(p) as r:
        assert np.array_equal(r.data("rounds/index"), np.arange(300))
        assert r.data("rounds/trace_S")[-1, 0] == 299.0


def test_checkpoint_slots_alternate_and_truncate(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("d", np.arange(4), "")
    w.checkpoint({"protocol": {"i": 1, "arr": np.arange(3)}, "lengths": [["d", 4]], "step": 1})
    w.append("d", np.arange(2), "")
    w.checkpoint({"protocol": {"i": 2, "arr": np.arange(3)}, "lengths": [["d", 6]], "step": 2})
    w.truncate({"d": 4})
    w.finish("aborted", error="test")
    with RunReader(p) as r:
        ck = r.checkpoint()
        assert ck["protocol"]["i"] == 2 and ck["step"] == 2
        assert np.array_equal(ck["protocol"]["arr"], np.arange(3))
        assert r.data("d").shape == (4,)
        assert r.status == "aborted" and r.attrs()["error"] == "test"


def _two_checkpoints(p):
    """A live writer with records of 4 and 2 values, each followed by a checkpoint."""
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("g/d", np.arange(4), "")
    w.checkpoint({"protocol": {"i": 1}, "lengths": [["g/d", 4]], "step": 1})
    w.append("g/d", np.arange(2), "")
    w.checkpoint({"protocol": {"i": 2}, "lengths": [["g/d", 6]], "step": 2})
    return w


def test_a_slot_left_unreadable_by_a_kill_does_not_block_reading_or_resuming(tmp_path):
    """HDF5 is not crash-safe: a SIGKILL while a checkpoint slot is written can leave that
    slot's object header garbage (seen in the kill-and-resume tests).  The last complete
    slot, the data and the resume must not depend on it."""
    p = tmp_path / "r.h5"
    w = _two_checkpoints(p)
    w.append("g/d", np.arange(3), "")  # after the last checkpoint: cut on resume
    w.h5.flush()
    with h5py.File(p, "r", locking=False) as f:  # the stale slot, as a killed writer leaves it
        current = f.attrs["checkpoint"].decode()
        stale = [k for k in f if k.startswith("checkpoint_") and k != current]
        addr = h5py.h5o.get_info(f[stale[0]].id).addr
    w.h5.close()
    w._unlock()                            # as the kernel does for a killed writer
    with open(p, "r+b") as fh:
        fh.seek(addr)
        fh.write(b"\xff" * 64)
    with h5py.File(p, "r") as f, pytest.raises(RuntimeError):
        f.visititems(lambda n, o: None)  # the file really is damaged there
    with RunReader(p) as r:
        assert list(r.datasets()) == ["g/d"] and r.data("g/d").shape == (9,)
        assert r.checkpoint()["protocol"]["i"] == 2
    w = RunWriter(p, command="c", config={}, backend={}, resume=True)
    w.truncate({"g/d": 6})
    w.append("g/d", np.arange(3), "")
    for i in (3, 4, 5):  # past the damaged slot, then alternating again
        w.checkpoint({"protocol": {"i": i}, "lengths": [["g/d", 9]], "step": i})
    w.finish("complete")
    with RunReader(p) as r:
        assert r.status == "complete" and r.checkpoint()["protocol"]["i"] == 5
        assert np.array_equal(r.data("g/d"), np.r_[np.arange(4), np.arange(2), np.arange(3)])
        # complete: nothing resumes it, so only its last slot stays, and the file is
        # rewritten without the damaged one (which HDF5 cannot unlink): it walks whole, as
        # h5dump, h5ls -r or MATLAB's h5info walk it
        assert [k for k in r.h5 if k.startswith("checkpoint_")] == [r.h5.attrs["checkpoint"]
                                                                    .decode()]
        r.h5.visititems(lambda n, o: None)
        assert r.h5["g/d"].attrs["units"] == ""
    assert not list(tmp_path.glob(".*repack"))


def test_a_data_set_left_unreadable_by_a_kill_is_a_one_line_error_on_resume(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("g/d", np.arange(4), "")
    w.checkpoint({"protocol": {"i": 1}, "lengths": [["g/d", 4]], "step": 1})
    w.append("g/e", np.arange(4), "")  # created after the checkpoint, removed on resume
    w.h5.flush()
    with h5py.File(p, "r", locking=False) as f:
        addr = h5py.h5o.get_info(f["g/e"].id).addr
    w.h5.close()
    w._unlock()                            # as the kernel does for a killed writer
    with open(p, "r+b") as fh:
        fh.seek(addr)
        fh.write(b"\xff" * 64)
    w = RunWriter(p, command="c", config={}, backend={}, resume=True)
    with pytest.raises(DataFormatError, match="damaged where the killed run was writing"):
        w.truncate({"g/d": 4})


def test_reader_refuses_foreign_files(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError):
        RunReader(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(DataFormatError):
        RunReader(other)
    with pytest.raises(DataFormatError):
        RunReader(tmp_path / "missing.h5")


def test_check_writable(tmp_path):
    check_writable(tmp_path / "ok.h5")
    with pytest.raises(ConfigError):
        check_writable(tmp_path / "nodir" / "x.h5")
    with pytest.raises(ConfigError):
        check_writable(tmp_path)


def test_config_is_json(tmp_path):
    p = tmp_path / "r.h5"
    RunWriter(p, command="c", config={"path": tmp_path, "x": np.int64(3)}, backend={}).finish()
    with h5py.File(p) as f:
        assert json.loads(f.attrs["config"])["x"] == 3


def test_a_file_being_written_by_another_process_is_refused_not_shared(tmp_path):
    """Two writers on one file corrupt it (a second run with the same --out truncated the
    first's file under it); while one process writes, another gets a one-line ConfigError,
    for a new run and for --resume alike, and readers still open the file."""
    import subprocess
    import sys

    from labctl.errors import ConfigError

    p = tmp_path / "r.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom labctl.data.runfile import RunWriter\n"
         f"w = RunWriter({str(p)!r}, command='c', config={{}}, backend={{}})\n"
         "w.append('g/d', [1.0, 2.0], '')\nw.h5.flush()\nprint('ready', flush=True)\n"
         "sys.stdin.readline()\nw.finish('complete')\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError, match="already exists"):   # a new run: never over it
            RunWriter(p, command="c", config={}, backend={})
        with pytest.raises(ConfigError, match="being written by another labctl run"):
            RunWriter(p, command="c", config={}, backend={}, resume=True)
        with RunReader(p) as r:                      # untouched, and readable meanwhile
            assert r.status == "running" and r.data("g/d").tolist() == [1.0, 2.0]
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    w = RunWriter(p, command="c", config={}, backend={}, resume=True)   # free again
    w.finish("complete")


def test_sessions_record_each_command_and_a_complete_run_keeps_no_stale_error(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={}, argv=["run", "c"])
    w.finish("aborted", error="KeyboardInterrupt: interrupted by SIGTERM")
    killed = RunWriter(p, command="c", config={}, backend={}, resume=True,
                       argv=["run", "c", "--resume", "r.h5"])
    killed.h5.close()  # killed outright: never finished (the kernel drops its lock)
    killed._unlock()
    w = RunWriter(p, command="c", config={}, backend={}, resume=True,
                  argv=["run", "c", "--resume", "r.h5", "--quiet"])
    w.finish("complete")
    with RunReader(p) as r:
        a = r.attrs()
        assert r.status == "complete" and "error" not in a
        assert json.loads(a["argv"]) == ["run", "c"]  # the command that started the run
        s = json.loads(a["sessions"])
        assert [x["status"] for x in s] == ["aborted", "killed", "complete"]
        assert "SIGTERM" in s[0]["error"] and s[1]["end_time"] is None
        assert s[2]["argv"][-1] == "--quiet" and s[2]["end_time"] == a["end_time"]


def test_a_file_without_sessions_gets_its_first_from_the_root_attributes(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={}, argv=["run", "c"])
    w.finish("aborted", error="boom")
    with h5py.File(p, "a") as h5:   # as written before sessions were recorded
        del h5.attrs["sessions"]
    w = RunWriter(p, command="c", config={}, backend={}, resume=True, argv=["x"])
    w.finish("complete")
    with RunReader(p) as r:
        s = json.loads(r.attrs()["sessions"])
        assert [(x["argv"], x["status"], x.get("error")) for x in s] == \
            [(["run", "c"], "aborted", "boom"), (["x"], "complete", None)]


def test_a_run_that_did_not_complete_is_read_as_whole_records(tmp_path):
    """A kill between two datasets of one step leaves them of unequal length: readers see
    what a resume keeps (the last checkpoint), a journal cut to its shortest column."""
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("g/row", np.arange(4), "")
    w.append("g/g_S", np.ones(4), "S")
    w.append_journal("log", {"a": (np.arange(3), ""), "b": (np.arange(3), "s")})
    w.checkpoint({"protocol": {}, "lengths": [["g/row", 4], ["g/g_S", 4]], "step": 1})
    w.append("g/row", np.arange(2), "")            # the step in flight: g_S never came
    w.append("g/late", np.arange(2), "")           # created after the checkpoint
    w.append_journal("log", {"a": (np.arange(2), "")})   # b never came
    w.write("g/map", np.eye(2), "")
    w.finish("aborted", error="killed")
    with RunReader(p) as r:                        # by default: as written
        assert r.data("g/row").shape == (6,) and "g/late" in r
    with RunReader(p, whole_records=True) as r:
        assert r.data("g/row").shape == r.data("g/g_S").shape == (4,)
        assert "g/late" not in r and "g/late" not in list(r.datasets())
        with pytest.raises(KeyError, match="g/late"):
            r.data("g/late")
        assert np.array_equal(r.data("log/a"), np.arange(3)) and r.data("log/b").shape == (3,)
        assert r.data("g/map").shape == (2, 2)
    # a resume cuts the same, and keeps the journal (not named by the checkpoint)
    w = RunWriter(p, command="c", config={}, backend={}, resume=True)
    w.truncate({"g/row": 4, "g/g_S": 4})
    assert "g/late" not in w and w.length("g/row") == 4
    assert w.length("log/a") == w.length("log/b") == 3
    assert w.cut_journal("log", ("a", "b")) == 3 and w.cut_journal("log", ("a", "c")) is None
    w.finish("complete")
    with RunReader(p, whole_records=True) as r:    # complete: read as written
        assert r.data("g/row").shape == (4,)


def test_a_complete_run_is_read_as_written(tmp_path):
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.append("g/row", np.arange(4), "")
    w.checkpoint({"protocol": {}, "lengths": [["g/row", 2]], "step": 1})
    w.finish("complete")
    with RunReader(p, whole_records=True) as r:
        assert r.data("g/row").shape == (4,)


def test_resuming_a_complete_run_says_so_whatever_the_options(tmp_path, capsys):
    """'already complete' comes before the config comparison: resuming a finished run
    without its original options used to report a config difference instead."""
    from labctl.cli import main

    out = tmp_path / "f.h5"
    assert main(["run", "program", "--levels", "2", "--repeats", "1", "--quiet",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "program", "--resume", str(out), "--quiet"]) == 2   # other options
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the run is already complete" in err[0], err


def test_checkpoint_values_stay_out_of_the_shared_heap_and_an_unreadable_pointer_falls_back(
        tmp_path, monkeypatch):
    """A kill once left the variable-length pointer and both slots' attributes unreadable
    ("actual len exceeds EOA": HDF5 had moved their shared global-heap collection).  The
    pointer and slot values are fixed-length now; an unreadable pointer falls back to the
    newest slot marked complete, never to one a kill left half-written."""
    p = tmp_path / "r.h5"
    w = _two_checkpoints(p)
    half = w.h5.create_group("checkpoint_2")       # a slot the kill interrupted: no mark
    half.attrs["step"] = np.bytes_(b"3")
    w.h5.flush()
    for slot in ("checkpoint_a", "checkpoint_b"):
        assert all(w.h5[slot].attrs.get_id(k).dtype.kind == "S" for k in w.h5[slot].attrs)
    assert w.h5.attrs.get_id("checkpoint").dtype == np.dtype("S32")
    w.h5.close()
    w._unlock()
    real = h5py.AttributeManager.__getitem__

    def unreadable_pointer(self, name):
        if name == "checkpoint":
            raise OSError("Can't synchronously read data (actual len exceeds EOA)")
        return real(self, name)

    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", unreadable_pointer)
    with RunReader(p) as r:
        assert r.checkpoint() == {"protocol": {"i": 2}, "lengths": [["g/d", 6]], "step": 2}
    w = RunWriter(p, command="c", config={}, backend={}, resume=True)
    w.truncate({"g/d": 6})
    w.checkpoint({"protocol": {"i": 3}, "lengths": [["g/d", 6]], "step": 3})
    w.finish("complete")
    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", real)
    with RunReader(p) as r:
        assert r.checkpoint()["protocol"] == {"i": 3}
    with h5py.File(p, "a") as f:                   # no slot usable: one clear error
        for k in [k for k in f if k.startswith("checkpoint_")]:
            del f[k]
        f.create_group("checkpoint_a").attrs["step"] = np.bytes_(b"1")
    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", unreadable_pointer)
    with RunReader(p) as r, pytest.raises(DataFormatError, match="cannot be resumed"):
        r.checkpoint()


def test_a_run_that_ends_while_its_file_is_read_is_not_called_killed(tmp_path, monkeypatch):
    """The reader probes the write lock before it opens the file: a run that finishes while
    report draws its figures was running then, not killed."""
    path = tmp_path / "r.h5"
    RunWriter(path, command="run program", config={}, backend={}).finish("complete")
    with h5py.File(path, "a") as h5:
        h5.attrs["status"] = "running"            # what a reader opened mid-run reads
    monkeypatch.setattr("labctl.data.runfile.being_written", lambda p: True)
    with RunReader(path) as r:
        monkeypatch.setattr("labctl.data.runfile.being_written", lambda p: False)  # it ends
        assert r.shown_status == "running"
    with RunReader(path) as r:                    # opened after: nobody writes a 'running' file
        assert r.shown_status == "killed"



def test_a_reader_reads_a_slice_of_rows_without_the_rest(tmp_path):
    """A figure of 64 traces out of a million cells reads only those rows."""
    path = tmp_path / "r.h5"
    with RunWriter(path, command="run x", config={}, backend={}) as w:
        for k in range(10):
            w.append("iv", np.full((1, 3), float(k)), "A")
    with RunReader(path) as r:
        assert r.length("iv") == 10
        assert r.rows("iv", 3, 5).tolist() == [[3.0] * 3, [4.0] * 3]
        assert r.rows("iv", 8, 100).shape == (2, 3) and r.rows("iv", 20, 30).shape == (0, 3)


def test_each_resume_is_counted_in_the_resumed_attribute(tmp_path):
    """Two resumes of one run are two, not one: the count adds up over sessions."""
    p = tmp_path / "r.h5"
    RunWriter(p, command="c", config={}, backend={}).finish("aborted", error="x")
    RunWriter(p, command="c", config={}, backend={}, resume=True).finish("aborted", error="y")
    RunWriter(p, command="c", config={}, backend={}, resume=True).finish("complete")
    with RunReader(p) as r:
        assert int(r.attrs()["resumed"]) == 2


def test_a_whole_dataset_written_keeps_its_units(tmp_path):
    """write() stores the units as append() does (a reader shows them beside the values)."""
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.write("fit/g_S", np.arange(3.0), "S", note="n")
    w.write("fit/g_S", np.arange(4.0), "uS")      # overwritten whole, with its new units
    w.finish("complete")
    with RunReader(p) as r:
        assert r.units("fit/g_S") == "uS" and r.data("fit/g_S").size == 4


def test_a_complete_finish_drops_an_error_set_earlier_in_the_session(tmp_path):
    """A run that ends complete carries no error attribute, even one written before."""
    p = tmp_path / "r.h5"
    w = RunWriter(p, command="c", config={}, backend={})
    w.set_attrs("/", error="stale")
    w.finish("complete")
    with RunReader(p) as r:
        assert r.status == "complete" and "error" not in r.attrs()
