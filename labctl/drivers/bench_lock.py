"""One labctl process per bench: exclusive locks on the instruments' resources.

Two runs on one station would interleave their commands on the same source-measure unit,
pulse generator and switching matrix: voltages on the die that neither run asked for.  While
a :class:`~labctl.drivers.hardware_array.HardwareArray` is open it holds an exclusive
``flock`` on one lock file per instrument resource (in the temp directory, so two station
files naming the same instrument share it); a second process gets a one-line error naming
the instrument (role, driver and resource when known) and the holder's process id.  The
kernel drops the locks when the holder exits, however it exits, so a killed run never
leaves a bench locked.  ``LABCTL_LOCK_DIR`` moves the lock files; the tests use it so that
their emulated benches, on throw-away ports, leave no files behind.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from labctl.errors import InstrumentError

#: where the lock files live (shared by every user of the machine)
LOCK_DIR = Path(os.environ.get("LABCTL_LOCK_DIR")
                or Path(tempfile.gettempdir()) / "labctl-bench-locks")


def lock_path(resource: str) -> Path:
    """The lock file of a VISA resource or serial port (case-insensitive, like VISA)."""
    return LOCK_DIR / (re.sub(r"[^a-z0-9.-]+", "_", resource.lower()).strip("_") + ".lock")


class BenchLock:
    """Held locks on a set of instrument resources; :meth:`release` (or exit) frees them."""

    def __init__(self, fds: list[int]) -> None:
        self._fds = fds

    @classmethod
    def acquire(cls, resources: Iterable[str], *,
                names: Mapping[str, str] | None = None) -> BenchLock:
        """Lock every resource (sorted, so two processes never wait on each other), or raise
        InstrumentError for the first one another process holds.

        ``names`` maps a resource to how the error names its instrument (e.g.
        ``pulse (keysight-33500b at TCPIP0::...)``); by default the resource itself.
        """
        try:
            import fcntl
        except ImportError:                   # no flock (Windows): no protection
            return cls([])
        LOCK_DIR.mkdir(mode=0o1777, parents=True, exist_ok=True)
        fds: list[int] = []
        try:
            for resource in sorted(set(resources)):
                path = lock_path(resource)
                try:
                    fd, writable = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), True
                except PermissionError:       # another user's lock file: lockable read-only
                    fd, writable = os.open(path, os.O_RDONLY), False
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    os.close(fd)
                    by = f" (pid {holder})" if holder.isdigit() else ""
                    name = (names or {}).get(resource, resource)
                    raise InstrumentError(f"instrument {name} is in use by another labctl "
                                          f"process{by}; wait for its run to end",
                                          instrument=resource) from None
                if writable:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, str(os.getpid()).encode(), 0)
                fds.append(fd)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return cls(fds)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
