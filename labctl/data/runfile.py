"""The run-file writer and reader.

Layout: root attributes ``format``, ``command``, ``config`` (JSON), ``backend`` (JSON),
``provenance`` (JSON), ``labctl_version``, ``start_time``, ``end_time``, ``status``
(``running`` | ``complete`` | ``aborted``), ``error`` and ``summary`` (JSON), ``argv`` (the
command line that started the run) and ``sessions`` (JSON: one entry per session, the first
and each ``--resume``, with its ``argv``, ``start_time``, ``end_time`` and ``status`` --
``complete``, ``aborted`` with its ``error``, or ``killed`` when it left no end).  ``error``
at the root is the last session's; a completed run keeps earlier errors only in
``sessions``.  One group
per step kind below ``/steps``-free paths chosen by the protocol (``forming/iv``...);
every dataset carries a ``units`` attribute.  Growable datasets are appended along
axis 0 and the file is flushed after every append, so a crash loses at most the
cell in flight.  HDF5 itself is not crash-safe (a kill in the middle of a flush can leave
a file that does not open), so the writer writes through an undo journal and each flush
is a commit (:mod:`labctl.data.journal`); a reader or a resume rolls a killed run's file
back to its last commit.  ``/checkpoint_a`` and ``/checkpoint_b`` alternate; the root
attribute ``checkpoint`` names the last complete one, so a kill while a checkpoint is
written leaves the previous one intact.  Files written before the journal can hold a slot a
kill left unreadable, so nothing but the named slot is ever opened; a resumed run deletes
a stale slot, or writes past one it cannot delete (``/checkpoint_2``, ...).
The pointer is a fixed-size string rewritten in place and a slot's values are fixed-length
strings in its own header: variable-length strings live in HDF5's shared global heap, whose
collections later writes move, and a kill during such a move once left the pointer and both
slots unreadable.  Each slot is marked complete after its last write, and when the pointer
cannot be read the newest complete slot is used (:func:`find_checkpoint`).

A step's datasets are appended one after another, so a process killed between two of them
leaves a partial record after the last checkpoint.  A resume cuts every growable dataset
back to its length at the checkpoint, and ``RunReader(whole_records=True)`` reads a run that
did not complete the same way (:func:`whole_records`): report and watch draw what a resume
keeps.
A *journal* (the instrument transcript, ``transcript/*``) is a group of growable datasets
with the ``journal`` attribute, one entry per message in each: it is appended beside the
step records, a resume keeps it whole (it says what every session sent), and torn columns
are cut to the shortest.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import h5py
import numpy as np

from labctl import __version__
from labctl.data.h5tree import read_tree, write_tree
from labctl.data.journal import JournaledFile, journal_path, recover
from labctl.errors import ConfigError, DataFormatError, missing
from labctl.interrupts import interrupts_deferred

_Method = TypeVar("_Method", bound=Callable[..., Any])

FORMAT = "labctl-run/1"
STATUSES = ("running", "complete", "aborted")
SLOT_PREFIX = "checkpoint_"
POINTER_ATTR = "checkpoint"
#: the pointer's fixed size: an attribute of one size and type is rewritten in place
POINTER_DTYPE = np.dtype("S32")
#: set on a slot once everything in it is written
COMPLETE_ATTR = "complete"
JOURNAL_ATTR = "journal"
#: bytes a growable dataset's chunk aims at: h5py would size it to the first append, so a
#: record appended one at a time (a program-verify round) got one chunk per record, and a
#: night-long run hundreds of thousands of chunks to index and read
CHUNK_TARGET_BYTES = 8192


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def data_names(h5: h5py.File) -> list[str]:
    """Every dataset outside the checkpoint slots, which are never visited (see above)."""
    names: list[str] = []
    for key in h5:
        if key.startswith(SLOT_PREFIX):
            continue
        obj = h5[key]
        if isinstance(obj, h5py.Dataset):
            names.append(key)
        else:
            obj.visititems(lambda n, o, k=key: names.append(f"{k}/{n}")
                           if isinstance(o, h5py.Dataset) else None)
    return names


def whole_records(h5: h5py.File, lengths: dict[str, int] | None) -> tuple[dict[str, int],
                                                                           set[str]]:
    """What a resume keeps of the growable datasets, as ``(cut, dropped)``: ``cut`` maps a
    dataset holding more than whole records to the length it keeps, ``dropped`` names those
    it deletes.  Step records are kept up to the last checkpoint (``lengths``: each dataset's
    length then; one it does not name was created after it, and with no checkpoint at all
    none is kept); the columns of a journal are cut to its shortest."""
    cut: dict[str, int] = {}
    dropped: set[str] = set()
    journals: dict[str, dict[str, int]] = {}
    for name in data_names(h5):
        ds = h5[name]
        if not (ds.maxshape and ds.maxshape[0] is None):
            continue
        n = int(ds.shape[0])
        if ds.attrs.get(JOURNAL_ATTR, 0):
            journals.setdefault(name.rpartition("/")[0], {})[name] = n
        elif lengths is None or name not in lengths:
            dropped.add(name)
        elif n > lengths[name]:
            cut[name] = int(lengths[name])
    for columns in journals.values():
        shortest = min(columns.values())
        cut.update({name: shortest for name, n in columns.items() if n > shortest})
    return cut, dropped


def find_checkpoint(h5: h5py.File) -> str:
    """The slot holding the last checkpoint ('' for none).

    The root pointer names it; if a kill left the pointer unreadable, the newest slot
    marked complete that reads whole is used.  DataFormatError when the pointer is
    unreadable and no slot is usable.
    """
    try:
        value = h5.attrs.get(POINTER_ATTR, "")
        slot = value.decode() if isinstance(value, bytes) else str(value)
        return slot if slot and slot in h5 else ""
    except (RuntimeError, OSError, KeyError, UnicodeDecodeError):
        pass
    best, best_step = "", -1
    for name in [k for k in h5 if k.startswith(SLOT_PREFIX)]:
        try:
            if COMPLETE_ATTR not in h5[name].attrs:
                continue
            tree = read_tree(h5[name])
            step = int(tree["step"])
        except (RuntimeError, OSError, KeyError, ValueError, TypeError):
            continue
        if step > best_step:
            best, best_step = name, step
    if not best:
        raise DataFormatError(f"{h5.filename}: the killed run left its checkpoint pointer "
                              "unreadable and no complete checkpoint was found; it cannot be "
                              "resumed (start a new run)")
    return best


def check_writable(path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
    """Refuse (ConfigError) an --out path that cannot be written, before anything runs, or
    that already exists: a run file is never overwritten (``--resume`` continues one, where
    the command has it: ``resumable``)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise ConfigError(f"--out {path} is a directory, expected a file name", key="out")
    if p.exists():
        raise ConfigError(f"--out {p} already exists; labctl does not overwrite run files "
                          f"(choose another name"
                          + (f", or --resume {p} if it was interrupted)" if resumable else ")"),
                          key="out")
    if not parent.is_dir():
        raise ConfigError(f"--out {p}: {missing(parent, directory=True)}", key="out")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {p}: directory {parent} is not writable", key="out")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"--out {p} exists and is not writable", key="out")
    return p


def _lock_for_writing(path: Path, *, create: bool) -> int | None:
    """An exclusive advisory lock on the run file while one process writes it.

    HDF5's own locking is off (readers such as ``labctl watch`` open a file that is being
    written), so without this a second run with the same ``--out``, or a second
    ``--resume``, would write the same file and corrupt it.  flock, not a POSIX record lock:
    HDF5 opens and closes descriptors of the file itself, and closing any descriptor drops
    a process's record locks.  Other programs that open the file with HDF5's default
    locking wait until the run ends, as for any HDF5 file open for writing
    (``HDF5_USE_FILE_LOCKING=FALSE`` reads it meanwhile).  The kernel drops the lock when the
    writer exits, however it exits, so a killed run can be resumed at once.
    """
    try:
        import fcntl
    except ImportError:                       # no flock (Windows): no protection
        return None
    try:
        # a new file is created exclusively: a run started meanwhile under the same name
        # (two runs in one second with the default name) fails instead of sharing it
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o666)
    except FileExistsError:
        raise ConfigError(f"--out {path} already exists; labctl does not overwrite run files",
                          key="out") from None
    except OSError as e:
        if create:                            # the first write of --out: say why it failed
            raise ConfigError(f"--out {path}: {e.strerror}", key="out") from None
        return None                           # resuming: the reader reports the file's problem
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"{path} is being written by another labctl run; wait for it to "
                          f"end or write elsewhere", key="out") from None
    return fd


def being_written(path: str | os.PathLike[str]) -> bool | None:
    """Whether a process holds the run file's write lock (:func:`_lock_for_writing`) now:
    a file whose status says ``running`` and that nobody writes was left by a killed run.
    None where that cannot be told (no flock, an unreadable file)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)   # closing drops the probe's own shared lock
    return False


def _check_not_empty(path: Path) -> None:
    """An empty run file was created by a run killed before its first flush."""
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path} is empty: its run was killed before it wrote anything; "
                              "start it again")


def recover_abandoned(path: Path) -> None:
    """Roll back what a killed writer wrote after its last flush (:mod:`labctl.data.journal`),
    unless a process is writing the file now (then its journal is live)."""
    if not journal_path(path).exists():
        return
    try:
        import fcntl
    except ImportError:   # no flock (Windows): a live writer cannot be told apart; --resume
        return            # rolls back, holding its own lock
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        raise DataFormatError(f"{path} was left mid-write by a killed run and must be rolled "
                              f"back from {journal_path(path).name}, but it cannot be "
                              f"written here ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return                        # a writer holds it: its journal is live
        _roll_back(path)
    finally:
        os.close(fd)                      # closing drops the lock


def _roll_back(path: Path) -> None:
    """:func:`~labctl.data.journal.recover`, its failure a one-line DataFormatError."""
    try:
        recover(path)
    except OSError as e:
        raise DataFormatError(f"{path}: rolling back the killed run's last write failed "
                              f"({e})") from None


def _check_format(path: Path) -> None:
    """Refuse (DataFormatError) a file to resume that is not a labctl run file."""
    _check_not_empty(path)
    try:
        with h5py.File(path, "r", locking=False) as h5:
            ok = h5.attrs.get("format") == FORMAT
    except OSError:
        ok = False
    if not ok:
        raise DataFormatError(f"{path} is not a labctl run file")


def _chunks(first: np.ndarray) -> tuple[int, ...]:
    """Chunk shape of a growable dataset created with the records ``first``: whole records,
    as many as fit in :data:`CHUNK_TARGET_BYTES` (1 to 1024), or as many as the first append
    holds if that is more, up to 1 MiB (HDF5's default chunk cache)."""
    record_bytes = max(1, first.dtype.itemsize * int(np.prod(first.shape[1:], dtype=np.int64)))
    rows = max(1, min(1024, CHUNK_TARGET_BYTES // record_bytes))
    rows = max(rows, min(first.shape[0], (1 << 20) // record_bytes))
    return (rows, *first.shape[1:])


#: every run file this process finished, with the status it gave it, in order (the CLI's
#: closing line names the file an interrupt marked aborted, or says there was none)
FINISHED: list[tuple[Path, str]] = []


def _rewrite_without(path: Path, broken: set[str]) -> None:
    """Copy a completed run file without the checkpoint slots a killed writer left
    unreadable, and put the copy in its place.

    HDF5 cannot unlink an object whose header is damaged, so without this a complete run
    kept a link that generic tools (h5dump, h5ls -r, MATLAB's h5info) fail on when they walk
    the file.  The copy is made beside the file, checked to read whole, and only then
    replaces it; any failure leaves the original as it was."""
    import logging

    tmp = path.with_name(f".{path.name}.{os.getpid()}.repack")
    try:
        with h5py.File(path, "r", locking=False) as src, \
                h5py.File(tmp, "w", libver=("v108", "v108"), locking=False) as dst:
            for key in src.attrs:
                dst.attrs.create(key, src.attrs[key], dtype=src.attrs.get_id(key).dtype)
            for name in src:
                if name not in broken:
                    src.copy(src[name], dst, name=name)
        with h5py.File(tmp, "r", locking=False) as check:
            check.visititems(lambda name, obj: None)     # every object reads
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        logging.getLogger(__name__).warning(
            "%s is complete but keeps a checkpoint slot a killed session left unreadable "
            "(%s); generic HDF5 tools may fail to walk it: %s", path, ", ".join(sorted(broken)),
            e)


def _held(method: _Method) -> _Method:
    """Run a writer method with Ctrl-C and SIGTERM held: HDF5 calls back into Python for
    each write to the file (the journal), and an interrupt raised there would fail a flush
    half done; it is raised when the method returns."""
    @functools.wraps(method)
    def held(*args: Any, **kwargs: Any) -> Any:
        with interrupts_deferred():
            return method(*args, **kwargs)
    return cast(_Method, held)


class RunWriter:
    """Writes one run file; use as a context manager or call :meth:`finish`."""

    @_held
    def __init__(self, path: str | os.PathLike[str], *, command: str, config: dict[str, Any],
                 backend: dict[str, Any], provenance: dict[str, Any] | None = None,
                 resume: bool = False, argv: list[str] | None = None,
                 durable: bool = False) -> None:
        """``durable``: sync each commit to disk, so a power cut rolls back to it too
        (:mod:`labctl.data.journal`); for runs on a station."""
        self.path = Path(path)
        self._durable = durable
        self._broken_slots: set[str] = set()
        self._prior_status = "running"   # a resumed file's status when it was opened
        self._lock_fd = _lock_for_writing(self.path, create=not resume)
        try:
            self._open(command=command, config=config, backend=backend,
                       provenance=provenance, resume=resume)
            self._begin_session(list(argv or []), resume=resume)
        except BaseException:
            if getattr(self, "h5", None) is not None and self.h5.id.valid:
                self.h5.close()
            if getattr(self, "_file", None) is not None:
                self._file.abandon()
            self._unlock()
            raise

    def _open(self, *, command: str, config: dict[str, Any], backend: dict[str, Any],
              provenance: dict[str, Any] | None, resume: bool) -> None:
        if resume:
            _roll_back(self.path)   # what a killed session wrote after its last flush goes
            _check_format(self.path)
            self._file = JournaledFile(self.path, durable=self._durable)
            self.h5 = h5py.File(self._file, "r+", locking=False)
            self._prior_status = str(self.h5.attrs.get("status", "running"))
            self.h5.attrs["status"] = "running"
            self.h5.attrs["resumed"] = int(self.h5.attrs.get("resumed", 0)) + 1
        else:
            # v1.8 file format: its superblock has no "open for write" flag, so a file whose
            # writer was killed (SIGKILL, power cut) still opens for reading and resuming
            self._file = JournaledFile(self.path, durable=self._durable)
            self.h5 = h5py.File(self._file, "w", libver=("v108", "v108"), locking=False)
            a = self.h5.attrs
            a["format"] = FORMAT
            a["command"] = command
            a["config"] = _json(config)
            a["backend"] = _json(backend)
            a["provenance"] = _json(provenance or {})
            a["labctl_version"] = __version__
            a["start_time"] = _now_iso()
            a["status"] = "running"
            a["summary"] = "{}"
        self._flush()

    def _flush(self) -> None:
        """Write everything to the file and commit it: a crash from here on rolls back to
        this point (:mod:`labctl.data.journal`)."""
        self.h5.flush()
        self._file.commit()

    # --- data -------------------------------------------------------------------------------
    @_held
    def append(self, name: str, values: Any, units: str) -> None:
        """Append ``values`` (one record or a stack along axis 0) to a growable dataset."""
        self._append(name, values, units)
        self._flush()

    @_held
    def append_journal(self, group: str, columns: dict[str, tuple[Any, str]]) -> None:
        """Append a batch of entries to the journal ``group`` (see the module docstring):
        ``columns`` maps a column to ``(values, units)``, as many values in each."""
        for column, (values, units) in columns.items():
            name = f"{group}/{column}"
            new = name not in self.h5
            self._append(name, values, units)
            if new:
                self.h5[name].attrs[JOURNAL_ATTR] = 1
        self._flush()

    @_held
    def cut_journal(self, group: str, columns: tuple[str, ...]) -> int | None:
        """Cut the journal ``group``'s columns to the shortest (a kill between two columns'
        appends) and return its length; None unless every one of ``columns`` is a journal
        column (absent, or written whole by an older labctl)."""
        names = [f"{group}/{c}" for c in columns]
        if not all(n in self.h5 and self.h5[n].attrs.get(JOURNAL_ATTR, 0) for n in names):
            return None
        shortest = min(int(self.h5[n].shape[0]) for n in names)
        for n in names:
            if self.h5[n].shape[0] > shortest:
                self.h5[n].resize(shortest, axis=0)
        self._flush()
        return shortest

    @_held
    def delete(self, name: str) -> None:
        """Delete a dataset or group, if there is one."""
        if name in self.h5:
            del self.h5[name]
            self._flush()

    def _append(self, name: str, values: Any, units: str) -> None:
        arr = np.asarray(values)
        if arr.dtype.kind == "U":
            arr = arr.astype(h5py.string_dtype())
        if name not in self.h5:
            shape = arr.shape if arr.ndim else (1,)
            arr = arr.reshape(shape) if arr.ndim else arr.reshape(1)
            ds = self.h5.create_dataset(name, data=arr, maxshape=(None, *arr.shape[1:]),
                                        chunks=_chunks(arr))
            ds.attrs["units"] = units
        else:
            ds = self.h5[name]
            if arr.ndim == 0 or arr.shape == ds.shape[1:]:
                arr = arr.reshape(1, *ds.shape[1:])
            n = ds.shape[0]
            ds.resize(n + arr.shape[0], axis=0)
            ds[n:] = arr

    @_held
    def write(self, name: str, values: Any, units: str, **attrs: Any) -> None:
        """Write (or overwrite) a whole dataset."""
        if name in self.h5:
            del self.h5[name]
        arr = np.asarray(values)
        if arr.dtype.kind == "U":
            arr = arr.astype(h5py.string_dtype())
        ds = self.h5.create_dataset(name, data=arr)
        ds.attrs["units"] = units
        for k, v in attrs.items():
            ds.attrs[k] = v if isinstance(v, (int, float, str)) else _json(v)
        self._flush()

    @_held
    def set_attrs(self, name: str, **attrs: Any) -> None:
        obj = self.h5.require_group(name) if name not in self.h5 else self.h5[name]
        for k, v in attrs.items():
            obj.attrs[k] = v if isinstance(v, (int, float, str)) else _json(v)
        self._flush()

    def length(self, name: str) -> int:
        return int(self.h5[name].shape[0]) if name in self.h5 else 0

    @_held
    def read(self, name: str) -> np.ndarray:
        return np.array(self.h5[name][()])

    data = read

    def __contains__(self, name: str) -> bool:
        return name in self.h5

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.h5.attrs["config"])

    @_held
    def set_summary(self, summary: dict[str, Any]) -> None:
        self.h5.attrs["summary"] = _json(summary)
        self._flush()

    # --- checkpoints (resume) ----------------------------------------------------------------
    @_held
    def checkpoint(self, state: dict[str, Any]) -> None:
        """Store ``state`` (protocol state, backend snapshot, dataset lengths) crash-safely."""
        current = find_checkpoint(self.h5)
        self._drop_slots(keep=current)
        names = itertools.chain((f"{SLOT_PREFIX}a", f"{SLOT_PREFIX}b"),
                                (f"{SLOT_PREFIX}{i}" for i in itertools.count(2)))
        slot = next(n for n in names if n not in self.h5)
        group = self.h5.create_group(slot)
        write_tree(group, state)
        group.attrs[COMPLETE_ATTR] = np.bytes_(b"true")   # JSON, as the tree's own values
        self._set_pointer(slot)
        self._flush()    # one commit: the slot and the pointer naming it, or neither

    def _set_pointer(self, slot: str) -> None:
        """Name ``slot`` as the last checkpoint, in place once the fixed-size pointer exists."""
        value = np.array(slot.encode(), dtype=POINTER_DTYPE)
        a = self.h5.attrs
        try:
            fixed = POINTER_ATTR in a and a.get_id(POINTER_ATTR).dtype == POINTER_DTYPE
            if fixed:
                a.modify(POINTER_ATTR, value)
            else:   # none yet, or a variable-length one (files written before)
                if POINTER_ATTR in a:
                    del a[POINTER_ATTR]
                a.create(POINTER_ATTR, value, dtype=POINTER_DTYPE)
        except (RuntimeError, OSError, KeyError) as e:
            raise DataFormatError(f"{self.path} was damaged where the killed run was writing "
                                  f"and cannot be resumed (HDF5: {e}); start a new run") from None

    def _drop_slots(self, keep: str = "") -> None:
        """Delete checkpoint slots but ``keep``; one a killed writer left unreadable stays."""
        for name in [k for k in self.h5 if k.startswith(SLOT_PREFIX) and k != keep]:
            if name in self._broken_slots:
                continue
            try:
                del self.h5[name]
            except (RuntimeError, OSError, KeyError):  # half-written when the process died
                self._broken_slots.add(name)

    @_held
    def truncate(self, lengths: dict[str, int]) -> None:
        """Cut growable datasets back to ``lengths`` (data after the last checkpoint).

        A growable dataset that ``lengths`` does not name was created after the checkpoint
        (by the step in flight when the run died) and is removed: the resumed run creates it
        again, so no record is stored twice.  Journals are kept (:func:`whole_records`).
        """
        try:
            cut, dropped = whole_records(self.h5, lengths)
            for name, n in cut.items():
                self.h5[name].resize(n, axis=0)
            for name in dropped:
                del self.h5[name]
        except (RuntimeError, OSError, KeyError) as e:  # HDF5 metadata a kill left half-written
            raise DataFormatError(f"{self.path} was damaged where the killed run was writing "
                                  f"and cannot be resumed (HDF5: {e}); start a new run") from None
        self._flush()

    @_held
    def clear_data(self) -> None:
        """Delete every group and dataset (a resumed run that never reached a checkpoint),
        but a checkpoint slot a kill left undeletable."""
        self._drop_slots()
        for name in [k for k in self.h5 if not k.startswith(SLOT_PREFIX)]:
            del self.h5[name]
        if POINTER_ATTR in self.h5.attrs:
            del self.h5.attrs[POINTER_ATTR]
        self._flush()

    @_held
    def finish(self, status: str = "complete", error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if not self.h5.id.valid:
            return
        end = _now_iso()
        if status == "complete":   # nothing resumes a complete run: its stale slots go
            try:
                self._drop_slots(keep=find_checkpoint(self.h5))
            except DataFormatError:
                pass
        self.h5.attrs["status"] = status
        self.h5.attrs["end_time"] = end
        if error:
            self.h5.attrs["error"] = error
        elif "error" in self.h5.attrs:   # an earlier session's: kept in ``sessions``
            del self.h5.attrs["error"]
        sessions = self.sessions
        if sessions:
            sessions[-1].update(end_time=end, status=status,
                                **({"error": error} if error else {}))
            self.h5.attrs["sessions"] = _json(sessions)
        self._flush()
        self.h5.close()
        self._file.close()
        if status == "complete" and self._broken_slots:
            _rewrite_without(self.path, self._broken_slots)
        self._unlock()
        FINISHED.append((self.path, status))

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """The ``sessions`` history (see the module docstring)."""
        return list(json.loads(self.h5.attrs.get("sessions", "[]")))

    def _begin_session(self, argv: list[str], *, resume: bool) -> None:
        """Close the previous session's entry from the root attributes it left (a file
        written before sessions were recorded gets its first entry here), start a new one."""
        a = self.h5.attrs
        sessions = self.sessions
        if resume:
            if not sessions:
                old = {"argv": json.loads(a.get("argv", "[]")),
                       "start_time": str(a.get("start_time", "")),
                       "end_time": str(a["end_time"]) if "end_time" in a else None,
                       "status": self._prior_status}
                sessions = [{**old, **({"error": str(a["error"])} if "error" in a else {})}]
            if sessions[-1].get("status") == "running":  # its process died unmarked
                sessions[-1].update(status="killed", end_time=None)
            for key in ("end_time", "error"):    # the new session's, once it ends
                if key in a:
                    del a[key]
        else:
            a["argv"] = _json(argv)   # the command that started the run (replay re-runs it)
        sessions.append({"argv": argv, "start_time": _now_iso(), "end_time": None,
                         "status": "running"})
        a["sessions"] = _json(sessions)
        self._flush()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)          # closing the descriptor releases the lock
            self._lock_fd = None

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if self.h5.id.valid:
            self.finish("aborted" if exc_type else "complete",
                        error=f"{exc_type.__name__}: {exc}" if exc_type else None)


class RunReader:
    """Opens a run file read-only and validates that it is one.

    With ``whole_records`` (report, watch) a run that did not complete is read as a resume
    would keep it (:func:`whole_records`); otherwise every dataset is read as it is."""

    def __init__(self, path: str | os.PathLike[str], *, whole_records: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise DataFormatError(f"{self.path} is a directory, not a run file")
        if not self.path.is_file():
            raise DataFormatError(f"{self.path}: no such run file")
        # probed before opening: a run that ends while this reader is open was still
        # writing then, and the status read after this is no older than the probe
        self._written_at_open = being_written(self.path)
        if self._written_at_open is False:
            recover_abandoned(self.path)
        _check_not_empty(self.path)
        try:
            self.h5 = h5py.File(self.path, "r", locking=False)
        except OSError as e:
            raise DataFormatError(f"{self.path} is not an HDF5 run file ({e.__class__.__name__})") \
                from None
        if self.h5.attrs.get("format") != FORMAT:
            self.h5.close()
            raise DataFormatError(f"{self.path} is not a labctl run file (no format={FORMAT})")
        self._cut, self._dropped = self._whole_records() if whole_records else ({}, set())

    def _whole_records(self) -> tuple[dict[str, int], set[str]]:
        """What :func:`whole_records` keeps of a run that did not complete; a checkpoint that
        cannot be read leaves the data as they are."""
        if self.status == "complete":
            return {}, set()
        try:
            slot = find_checkpoint(self.h5)
            lengths = ({str(n): int(k) for n, k in json.loads(self.h5[slot].attrs["lengths"])}
                       if slot else None)
            return whole_records(self.h5, lengths)
        except (RuntimeError, OSError, KeyError, ValueError, TypeError, DataFormatError):
            return {}, set()

    def _attr_json(self, key: str) -> Any:
        return json.loads(self.h5.attrs.get(key, "{}"))

    @property
    def command(self) -> str:
        return str(self.h5.attrs["command"])

    @property
    def config(self) -> dict[str, Any]:
        return self._attr_json("config")

    @property
    def backend(self) -> dict[str, Any]:
        return self._attr_json("backend")

    @property
    def provenance(self) -> dict[str, Any]:
        return self._attr_json("provenance")

    @property
    def status(self) -> str:
        return str(self.h5.attrs["status"])

    @property
    def summary(self) -> dict[str, Any]:
        return self._attr_json("summary")

    @property
    def shown_status(self) -> str:
        """The status word report, replay and the figures show: :attr:`status`, but
        ``killed`` for a file left ``running`` that no process wrote when it was opened."""
        status = self.status
        return "killed" if status == "running" and self._written_at_open is False else status

    def attrs(self, name: str = "/") -> dict[str, Any]:
        """The object's attributes; one a kill left unreadable (only ever the checkpoint
        pointer, see the module doc) is left out."""
        out: dict[str, Any] = {}
        a = self.h5[name].attrs
        for key in a:
            try:
                out[key] = a[key]
            except (RuntimeError, OSError):
                continue
        return out

    def __contains__(self, name: str) -> bool:
        return name not in self._dropped and name in self.h5

    def data(self, name: str) -> np.ndarray:
        if name in self._dropped:
            raise KeyError(f"Unable to open object (object '{name}' doesn't exist)")
        if name in self._cut:
            return np.array(self.h5[name][:self._cut[name]])
        return np.array(self.h5[name][()])

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of a dataset (clipped to what the file holds): a figure of a
        few traces out of a million cells reads only those."""
        n = self.length(name)
        return np.array(self.h5[name][min(start, n):min(stop, n)])

    def length(self, name: str) -> int:
        """Rows of a dataset as this reader sees it."""
        if name in self._dropped:
            raise KeyError(f"Unable to open object (object '{name}' doesn't exist)")
        n = int(self.h5[name].shape[0]) if self.h5[name].shape else 1
        return min(n, self._cut[name]) if name in self._cut else n

    def units(self, name: str) -> str:
        return str(self.h5[name].attrs.get("units", ""))

    def datasets(self) -> Iterator[str]:
        return iter([n for n in data_names(self.h5) if n not in self._dropped])

    def checkpoint(self) -> dict[str, Any] | None:
        slot = find_checkpoint(self.h5)
        if not slot:
            return None
        tree = read_tree(self.h5[slot])
        tree.pop(COMPLETE_ATTR, None)
        return tree

    def resumable(self) -> bool:
        """False when a kill left no readable checkpoint pointer and no usable slot."""
        try:
            find_checkpoint(self.h5)
        except DataFormatError:
            return False
        return True

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
