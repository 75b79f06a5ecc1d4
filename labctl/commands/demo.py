"""``labctl demo [--out DIR]``: the main job on the default simulated chip, then the report.

Runs every protocol that exists on the simulated ``cmo-hfox-1t1r`` die (forming, program-
verify, symmetry point, retention) with the seed chip's settings, writes one run file each
into DIR and renders every figure into DIR/report/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from labctl.commands.argtypes import name as nonempty
from labctl.commands.argtypes import seed

# (label, run-command module that must exist, argv after `labctl`, file name)
STEPS: tuple[tuple[str, str, list[str], str], ...] = (
    ("forming", "run_forming", ["run", "forming"], "forming.h5"),
    ("program-verify, 35 levels x 32 cells at 2 %", "run_program",
     ["run", "program", "--levels", "35", "--repeats", "32", "--tolerance", "0.02"],
     "program.h5"),
    ("symmetry point", "run_symmetry_point", ["run", "symmetry-point"], "symmetry-point.h5"),
    ("retention after 0.2 % programming", "run_retention", ["run", "retention"],
     "retention.h5"),
)


#: the file that marks a directory as a demo's own (a rerun may replace what it holds)
MARKER = ".labctl-demo"


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run every protocol on the simulated chip, then the report",
                       description="The main job on the default simulated chip: every protocol, "
                       "then a report with figures.")
    p.add_argument("--out", type=nonempty, default="demo-run",
                   help="output directory (default demo-run/): new, empty, or an earlier demo's "
                   "(whose run files and figures a rerun replaces)")
    p.add_argument("--seed", type=seed, default=0, help="simulator seed (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from labctl.cli import main
    from labctl.commands.report import render_report
    from labctl.commands.run_symmetry_point import without_per_device
    from labctl.data.runfile import RunReader
    from labctl.errors import ConfigError

    out = Path(args.out)
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory", key="out")
    if out.is_dir() and any(out.iterdir()) and not marker.is_file():
        # run files are never overwritten: only a directory an earlier demo made is reused
        raise ConfigError(f"--out {out} already holds files that no labctl demo wrote; give "
                          f"a new or empty directory", key="out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text("written by `labctl demo`: a rerun into this directory replaces "
                          "the demo's run files and report figures\n")
    except OSError as e:
        raise ConfigError(f"--out {out}: {e.strerror}", key="out") from None
    # an earlier demo's files would sit next to this one's if this one stops half-way
    for _, _, _, name in STEPS:
        (out / name).unlink(missing_ok=True)
        # the symmetry-point step's fitted preset (never overwritten by the command itself)
        (out / f"{Path(name).stem}-preset.toml").unlink(missing_ok=True)
    for old in (out / "report").glob("*.png"):
        old.unlink()
    runs: dict[str, Any] = {}
    t0 = time.monotonic()
    for label, module, argv, name in STEPS:
        if importlib.util.find_spec(f"labctl.commands.{module}") is None:
            continue
        path = out / name
        print(f"== {label} -> {path}", flush=True)
        code = main([*argv, "--seed", str(args.seed), "--out", str(path),
                     *(["--quiet"] if args.quiet else [])])
        if code != 0:   # the step said why in its one line; --json: how the demo ended
            from labctl.cli import EXIT_INTERRUPTED, _fail

            how = ("was interrupted" if code == EXIT_INTERRUPTED
                   else f"failed with exit code {code}")
            return _fail(args, code, f"demo step '{label}' {how}", stderr=False)
        with RunReader(path) as r:
            summary = r.summary if argv[1] != "symmetry-point" else without_per_device(r.summary)
            runs[argv[1]] = {"run_file": str(path), "status": r.status, "summary": summary}
        figures = render_report(path, out / "report")
        print(f"   {len(figures)} figures in {out / 'report'}", flush=True)
    print(f"demo complete in {time.monotonic() - t0:.1f} s: {len(runs)} runs in {out}/, "
          f"figures in {out / 'report'}/")
    if args.json:
        print(json.dumps({"run_file": str(out), "status": "complete", "runs": runs},
                         default=str))
    return 0
