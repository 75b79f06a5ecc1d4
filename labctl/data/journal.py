"""An undo journal that makes each flush of a run file atomic against a killed process.

HDF5 updates a file's metadata in place, in many writes per flush.  A process killed
between two of them leaves object headers, heaps and B-trees from two different states,
and the file may not open at all: replaying a ``pipeline prune`` run's writes and cutting
it after each one, 1 cut in 10 gave a file whose root attributes or datasets could not be
read.  So HDF5 writes a run file through :class:`JournaledFile` (h5py's file-object
driver).  Before any byte of the file as it stood at the last commit is overwritten or cut
off, the old content of its page is appended to ``<run file>-journal``; :meth:`commit`,
called after each HDF5 flush, empties the journal.  A run file found with a non-empty
journal and no process writing it is rolled back to its last commit by :func:`recover`,
as SQLite does with a hot rollback journal: a crash loses only what was written since the
last flush, the cell in flight.

This guards against the process dying (SIGKILL, a crash, running out of memory): the
kernel keeps every write the process finished.  A power cut or an operating-system crash
can also lose writes the kernel had not yet put on disk, in any order; with ``durable``
(runs on a station) the journal is synced to disk before the run file is changed, and the
run file before the journal is emptied, so those roll back to the last commit as well, at
the cost of a few fsyncs per commit.  Simulator runs, which can be repeated exactly, skip
them.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

#: journal granularity: a page's old content is saved once per transaction
PAGE = 4096
MAGIC = b"LABCTLJ1"
_HEADER = struct.Struct("<8sQI")      # magic, file size at the last commit, crc32
_RECORD = struct.Struct("<QII")       # page index, length, crc32 of the old content


_BINARY = getattr(os, "O_BINARY", 0)     # Windows opens descriptors in text mode otherwise


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)       # Windows has no pread
    return os.read(fd, size)


def _pwrite(fd: int, data: bytes, offset: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, data)


def journal_path(path: str | os.PathLike[str]) -> Path:
    """The journal beside a run file: ``run.h5`` -> ``run.h5-journal``."""
    p = Path(path)
    return p.with_name(p.name + "-journal")


class JournaledFile:
    """The run file as HDF5 writes it: a binary file object (seek, tell, read, readinto,
    write, truncate, flush) that journals old content before changing it."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self._fd = os.open(self.path, os.O_RDWR | _BINARY)
        try:
            self._jfd = os.open(journal_path(self.path),
                                os.O_RDWR | os.O_CREAT | os.O_TRUNC | _BINARY, 0o666)
            if durable:      # the journal's directory entry, and the new run file's
                _sync_directory(self.path.parent)
        except OSError:
            os.close(self._fd)
            raise
        self._pos = 0
        self._begin()

    def __repr__(self) -> str:
        return str(self.path)      # h5py's File.filename for a file object

    def _begin(self) -> None:
        self._size0 = os.fstat(self._fd).st_size   # the committed file ends here
        self._saved: set[int] = set()
        self._jsize = 0                            # 0: no change since the last commit
        self._changed = False                      # the run file written since its sync

    def _open_transaction(self) -> None:
        if self._jsize == 0:
            head = MAGIC + struct.pack("<Q", self._size0)
            self._jwrite(_HEADER.pack(MAGIC, self._size0, zlib.crc32(head)))

    def _jwrite(self, data: bytes) -> None:
        done = 0
        while done < len(data):
            done += _pwrite(self._jfd, data[done:], self._jsize + done)
        self._jsize += len(data)

    def _save(self, start: int, end: int) -> None:
        """Journal the committed content of the pages overlapping bytes [start, end), on
        disk before the run file changes when durable."""
        jsize = self._jsize
        self._open_transaction()
        end = min(end, self._size0)
        records = []
        for page in range(start // PAGE, (end + PAGE - 1) // PAGE):
            if page in self._saved:
                continue
            old = _pread(self._fd, min(PAGE, self._size0 - page * PAGE), page * PAGE)
            records.append(_RECORD.pack(page, len(old), zlib.crc32(old)) + old)
            self._saved.add(page)
        if records:
            self._jwrite(b"".join(records))
        if self.durable and self._jsize != jsize:
            os.fsync(self._jfd)
        self._changed = True

    # --- the file-object interface h5py's driver calls ------------------------------------
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = max(0, os.fstat(self._fd).st_size - self._pos)
        data = _pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into HDF5's buffer; past the end of the file it reads zeros, as HDF5's
        default (sec2) driver does."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        view[len(data):] = bytes(len(view) - len(data))
        return len(view)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        data = bytes(data)
        self._save(self._pos, self._pos + len(data))
        written = 0
        while written < len(data):
            written += _pwrite(self._fd, data[written:], self._pos + written)
        self._pos += written
        return written

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        self._save(size, self._size0)
        os.ftruncate(self._fd, size)
        return size

    def flush(self) -> None:
        """Nothing to do: every write is already the kernel's (see the module doc)."""

    # --- transactions --------------------------------------------------------------------
    def commit(self) -> None:
        """Make what HDF5 has written so far the state a crash rolls back to (call after
        a flush that left the file consistent)."""
        if self._jsize:
            if self.durable and self._changed:
                os.fsync(self._fd)
            os.ftruncate(self._jfd, 0)
        self._begin()

    def abandon(self) -> None:
        """Close without committing, as a crash would: a journal holding changes stays for
        :func:`recover`."""
        if self._close_descriptors() and not self._jsize:
            journal_path(self.path).unlink(missing_ok=True)

    def close(self) -> None:
        """Commit, close, and remove the journal."""
        if self._fd >= 0:
            self.commit()
        if self._close_descriptors():
            journal_path(self.path).unlink(missing_ok=True)

    def _close_descriptors(self) -> bool:
        """Close both files; False if they were closed already."""
        if self._fd < 0:
            return False
        os.close(self._fd)
        os.close(self._jfd)
        self._fd = self._jfd = -1
        return True


def _sync_directory(directory: Path) -> None:
    """Put a directory's entries on disk (a new file survives a power cut); a no-op where
    directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def recover(path: str | os.PathLike[str]) -> bool:
    """Roll ``path`` back to its last commit if its journal holds changes; True if it did.

    The caller holds the run file's write lock, or knows no process writes it.  Safe to
    repeat: a recovery cut short rolls back the same way when run again."""
    jpath = journal_path(path)
    try:
        journal = jpath.read_bytes()
    except FileNotFoundError:
        return False
    if len(journal) < _HEADER.size:   # empty (committed), or killed before the first change
        jpath.unlink(missing_ok=True)
        return False
    magic, size0, crc = _HEADER.unpack_from(journal)
    if magic != MAGIC or crc != zlib.crc32(journal[:_HEADER.size - 4]):
        raise OSError(f"{jpath} is not a labctl journal; move it away to read {path} as is")
    restores = []
    at = _HEADER.size
    while at + _RECORD.size <= len(journal):
        page, length, crc = _RECORD.unpack_from(journal, at)
        old = journal[at + _RECORD.size:at + _RECORD.size + length]
        if len(old) < length or zlib.crc32(old) != crc:
            break      # cut off mid-record: its page was not yet changed
        restores.append((page, old))
        at += _RECORD.size + length
    fd = os.open(path, os.O_RDWR | _BINARY)
    try:
        for page, old in restores:
            _pwrite(fd, old, page * PAGE)
        os.ftruncate(fd, size0)
        os.fsync(fd)
    finally:
        os.close(fd)
    jpath.unlink(missing_ok=True)
    return True
