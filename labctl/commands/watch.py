"""``labctl watch RUN.h5``: follow a run while it is written and redraw its figures.

The writer flushes after every record; the watcher opens the file read-only without
HDF5 file locking (single writer, many readers), redraws the run's figures into a
directory whenever the data grew, and stops when the run is no longer ``running``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.commands.argtypes import finite_float, name


def register(sub: Any) -> None:
    p = sub.add_parser("watch", help="follow a run being written and redraw its figures",
                       description="Follow a run file being written; redraw figures as data "
                       "arrive (PNG files in --out, refreshed in place).")
    p.add_argument("run_file", metavar="RUN.h5")
    p.add_argument("--out", type=name, default=None, help="figure directory (default RUN-live/)")
    p.add_argument("--interval-s", type=finite_float, default=1.0,
                   help="poll interval (default 1 s)")
    p.add_argument("--timeout-s", type=finite_float, default=None,
                   help="stop after this long even if the run is still running")
    p.add_argument("--wait-s", type=finite_float, default=60.0,
                   help="how long to wait for RUN.h5 to appear (default 60 s), so the "
                   "watcher can be started before the run")
    p.add_argument("--quiet", action="store_true",
                   help="no line per poll; only the closing line")
    p.add_argument("--json", action="store_true",
                   help="print a one-line JSON summary as the last line of stdout")
    p.set_defaults(handler=handle)


def _may_be_hdf5(path: Path) -> bool:
    """False for a file that already has bytes and no HDF5 signature."""
    with path.open("rb") as fh:
        head = fh.read(8)
    return len(head) < 8 or head == b"\x89HDF\r\n\x1a\n"


def _size(reader: Any) -> int:
    return sum(int(reader.h5[n].size) for n in reader.datasets())


def snapshot_once(run_file: Path, out: Path, last_size: int) -> tuple[str, int, int]:
    """One poll: (status, ``killed`` for a file nobody writes; data size now; figures drawn
    now).  Figures are drawn when the
    data grew past ``last_size``; partial or torn reads, or too little data for the run's
    figures, draw nothing (0)."""
    import importlib

    from labctl.data.runfile import RunReader
    from labctl.plots import RENDERERS

    with RunReader(run_file, whole_records=True) as r:   # not a step being appended
        status, size = r.shown_status, _size(r)
        if size == last_size:
            return status, size, 0
        module = RENDERERS.get(r.command)
        if module is None:
            return status, size, 0
        try:
            figs = importlib.import_module(f"labctl.plots.{module}").render(r, out)
        except (KeyError, ValueError, IndexError, OSError):
            return status, size, 0  # not enough data yet for this kind's figures
    return status, size, len(figs)


def _resume(run_file: Path) -> str:
    """The command that carries ``run_file`` on."""
    from labctl.commands.backend import resume_hint
    from labctl.data.runfile import RunReader

    with RunReader(run_file) as r:
        return resume_hint(r)


def handle(args: argparse.Namespace) -> int:
    from labctl.errors import ConfigError, DataFormatError

    run_file = Path(args.run_file)
    if run_file.is_dir():
        raise DataFormatError(f"{run_file} is a directory, not a run file")
    if args.interval_s <= 0:
        raise ConfigError("--interval-s must be > 0", key="interval_s")
    if args.wait_s < 0:
        raise ConfigError("--wait-s must be >= 0", key="wait_s")
    if args.timeout_s is not None and args.timeout_s <= 0:
        raise ConfigError("--timeout-s must be > 0", key="timeout_s")
    out = Path(args.out) if args.out else run_file.with_name(run_file.stem + "-live")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory", key="out")
    import labctl.plots.style  # noqa: F401  (matplotlib loads here, not in the first poll)

    t0 = time.monotonic()

    def say(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    def done(status: str, redraws: int) -> int:
        print(f"run is {status}; {redraws} redraws", flush=True)
        if args.json:
            print(json.dumps({"run_file": str(run_file), "status": status,
                              "redraws": redraws, "figures": str(out)}), flush=True)
        return 0

    if not run_file.exists():
        say(f"waiting for {run_file} (up to {args.wait_s:g} s)")
        while not run_file.exists():
            waited = time.monotonic() - t0
            if args.timeout_s is not None and waited > args.timeout_s:
                # as for --wait-s: no run to follow is an error, not a watch that ended
                raise DataFormatError(f"{run_file} did not appear within --timeout-s "
                                      f"{args.timeout_s:g} s")
            if waited > args.wait_s:
                raise DataFormatError(f"{run_file} did not appear within {args.wait_s:g} s")
            time.sleep(min(args.interval_s, 0.1))
    created = not out.exists()
    try:   # only now: a watch that found no run leaves no empty folder behind
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: {e.strerror}", key="out") from None
    try:
        return _follow(args, run_file, out, t0, say, done)
    except DataFormatError:   # not a run file after all: nor does it leave an empty folder
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _follow(args: argparse.Namespace, run_file: Path, out: Path, t0: float,
            say: Callable[[str], None], done: Callable[[str, int], int]) -> int:
    """Redraw the figures while the run is written; return ``done``'s exit code."""
    from labctl.errors import DataFormatError

    t_file = time.monotonic()
    size, drawn, redraws, status, seen, orphan = -1, -1, 0, "running", False, 0
    while True:
        try:
            status, new_size, n = snapshot_once(run_file, out, drawn)
            seen = True
        except (DataFormatError, RuntimeError, OSError, KeyError, ValueError):
            # a file being created may not carry its attributes yet: allow a short grace,
            # unless it is no HDF5 file at all (its signature is the first thing written)
            if (not run_file.exists() or (not seen and time.monotonic() - t_file > 10.0)
                    or not seen and not _may_be_hdf5(run_file)):
                raise DataFormatError(f"{run_file} is not a readable labctl run file") from None
            time.sleep(args.interval_s)  # a torn read while the writer appends: try again
            continue
        stamp = f"[{time.monotonic() - t0:7.1f} s] {status}: {new_size} values"
        if n:
            redraws += 1
            drawn = new_size
            say(f"{stamp}, {n} figures redrawn in {out}")
        elif new_size != size:   # progress, though the figures need more data (or none exist)
            say(f"{stamp}, no figures yet")
        size = new_size
        if status not in ("running", "killed"):
            break
        # 'running' with nobody writing, twice in a row (a writer locks its file right
        # after creating it): the run was killed, and the file will not change again
        orphan = orphan + 1 if status == "killed" else 0
        if orphan >= 2:
            print(f"no process is writing {run_file} (its run was killed); "
                  f"`{_resume(run_file)}` carries it on", flush=True)
            status = "killed"
            break
        if args.timeout_s is not None and time.monotonic() - t0 > args.timeout_s:
            break
        time.sleep(args.interval_s)
    return done(status, redraws)
