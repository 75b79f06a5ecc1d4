"""``labctl report RUN.h5 [--out DIR]``: PNG figures of whatever the run file holds."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

from labctl.commands.argtypes import name
from labctl.errors import ConfigError, DataFormatError


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="draw PNG figures of a run file",
                       description="Draw the figures of a run file into a directory.")
    p.add_argument("run_file", metavar="RUN.h5")
    p.add_argument("--out", type=name, default=None,
                   help="directory for the figures (default RUN-report/)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(handler=handle)


def render_report(run_file: Path, out_dir: Path) -> list[Path]:
    """Render every figure the run's kind has; returns the written paths."""
    return _render(run_file, out_dir)[0]


def _render(run_file: Path, out_dir: Path) -> tuple[list[Path], str, str]:
    """(the written figures, the run's status: ``killed`` for a file left ``running`` that
    nobody writes, the command that resumes it: '' if a resume could not read its
    checkpoint), from one opening of the file."""
    from labctl.commands.backend import resume_hint
    from labctl.data.runfile import RunReader
    from labctl.plots import RENDERERS

    with RunReader(run_file, whole_records=True) as reader:   # not a kill's partial step
        module = RENDERERS.get(reader.command)
        if module is None:
            raise DataFormatError(f"{run_file}: no report for runs of kind '{reader.command}'")
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out {out_dir} is a file, not a directory", key="out")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--out {out_dir}: {e.strerror}", key="out") from None
        try:
            with warnings.catch_warnings():   # an empty legend is no news to the user
                warnings.filterwarnings("ignore", message="No artists with labels found")
                paths = importlib.import_module(f"labctl.plots.{module}").render(reader, out_dir)
        except KeyError as e:
            status = reader.shown_status
            if status in ("running", "killed"):
                raise DataFormatError(
                    f"{run_file}: the run has recorded nothing the '{reader.command}' report "
                    f"draws yet" + (" and no process is writing it (its run was killed; "
                                    f"`{resume_hint(reader)}` carries "
                                    "it on)" if status == "killed" else "")
                ) from None
            if status != "complete":
                raise DataFormatError(
                    f"{run_file}: the run is {status} and stopped before it recorded "
                    f"anything the '{reader.command}' report draws") from None
            raise DataFormatError(f"{run_file} lacks data the '{reader.command}' report needs "
                                  f"({_missing(e)})") from None
        resume = resume_hint(reader) if reader.resumable() else ""
        return paths, reader.shown_status, resume


def _missing(e: KeyError) -> str:
    """The dataset name in h5py's KeyError text ("... (object 'g_S' doesn't exist)")."""
    import re

    m = re.search(r"object '([^']+)' doesn't exist", str(e))
    return repr(m.group(1)) if m else str(e)


def handle(args: argparse.Namespace) -> int:
    import json

    run_file = Path(args.run_file)
    if run_file.is_dir():
        raise DataFormatError(f"{run_file} is a directory, not a run file")
    out = Path(args.out) if args.out else run_file.with_name(run_file.stem + "-report")
    paths, status, resume = _render(run_file, out)
    for p in paths:
        print(p)
    if status == "killed":
        then = (f"`{resume}` carries it on" if resume else
                "the kill left its checkpoint unreadable, so it cannot be resumed")
        print(f"note: the run file says 'running' but no process is writing it (its run was "
              f"killed); the figures show what it recorded: {then}", file=sys.stderr)
    elif status == "running":
        print("note: the run is still running; the figures show what it has recorded so far",
              file=sys.stderr)
    elif status != "complete":
        print(f"note: the run is {status}; the figures show what it recorded before it stopped"
              + (f"; `{resume}` carries it on" if resume else ""), file=sys.stderr)
    if args.json:
        print(json.dumps({"run_file": str(run_file), "status": status,
                          "figures": [str(p) for p in paths]}))
    return 0
