"""``labctl run retention``: program levels at 0.2 %, then read them on a log time grid."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_common, emit
from labctl.commands.run_program import (
    add_level_options,
    add_verify_options,
    checked_factory,
    verify_config,
)


def register(sub: Any) -> None:
    p = sub.add_parser("retention", help="program levels, then follow their relaxation (seed 004)",
                       description="Program levels with program-verify, read them on a "
                       "log-spaced time grid (virtual clock on the simulator), fit shift and "
                       "spread against ln t and project to ten years.")
    add_level_options(p, levels=35, repeats=16)
    add_verify_options(p, tolerance=0.002)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--times", default=None,
                   help="comma-separated read times after programming, in s or with a unit "
                   "s/min/h/d/y (e.g. 1,10,600,3600 or 1s,10min,1h,1d)")
    g.add_argument("--duration-s", type=finite_float, default=86400.0,
                   help="last read time of a 1-2-5 log grid from 1 s, plus 600 and 3600 s "
                   "(default 86400)")
    p.add_argument("--no-form", action="store_true",
                   help="do not electro-form cells that read as unformed (default: form them "
                   "first, as `run forming` does)")
    add_common(p)
    p.set_defaults(handler=handle)


def human(s: dict[str, Any]) -> str:
    import numpy as np

    from labctl.commands.quantity import percent_down, quantity
    from labctl.protocols.analysis.relaxation import ages_too_close

    def f(d: dict[str, Any], k: str, scale: float = 1e6, fmt: str = "+.3f",
          unit: str = "uS") -> str:
        return quantity(d.get(k), fmt, scale=scale, unit=unit)

    lines = [f"retention: {s['cells_programmed']} cells, {len(s['levels'])} levels "
             f"(converged {percent_down(s['converged_fraction'], 1)} %, pulses mean "
             f"{s['pulses_mean'] if s['pulses_mean'] is None else round(s['pulses_mean'], 1)})"]
    rows = {k: _row_label(k, s.get("t_actual_s", {}).get(k),
                          s.get("latest_t_actual_s", {}).get(k)) for k in s["mean_shift_S"]}
    w = max([11, *(len(r) for r in rows.values())])
    for k, row in rows.items():
        lines.append(f"  t = {row:>{w}}   shift {f(s['mean_shift_S'], k)}   sigma "
                     f"{f(s['sigma_S'], k, fmt='.3f')}   overlap "
                     f"{f(s['overlap'], k, 100, '.2f', '%')}")
    p = s["projection_10y"]
    lines.append(f"  {'10 years':<{w + 4}}   shift {f(p, 'mean_shift_S')}   sigma "
                 f"{f(p, 'sigma_S', fmt='.3f')}   overlap {f(p, 'overlap', 100, '.2f', '%')}")
    if p.get("sigma_note"):
        lines.append(f"  no 10-year sigma: {p['sigma_note']} (measure longer, or more cells)")
    if any(r != f"{k} s" for k, r in rows.items()):
        lines.append("  reads came later than planned (a resumed or slow station run): the ln t "
                     "fits\n  and the 10-year projection use the real read times")
        if ages_too_close(np.asarray(s["times_s"]), np.array([s["t_actual_s"][k] for k in rows])):
            lines.append("  no ln t fit or projection: the real read times are too close "
                         "together")
    if all(f(s["sigma_S"], k) == "n/a" for k in s["sigma_S"]):
        lines.append("  sigma and overlap need levels of two or more cells (--repeats 2 or more)")
    lines.append(f"  run file        {s['run_file']}")
    return "\n".join(lines)


def _row_label(key: str, t_actual_s: float | None, latest_s: float | None = None) -> str:
    """'4 s'; '4 s (read at 25.9 s)' when the reads came noticeably later than planned (the
    group's fit age; ', some at up to 40 s' when its reads spread); '4 s (some read at up to
    25.9 s)' when only a few did and the group's fit age hardly moves."""
    from labctl.protocols.analysis.relaxation import came_late

    def at(t: float) -> str:
        return f"{t:.3g}" if t < 1000 else f"{t:.0f}"

    if t_actual_s is not None and came_late(float(key), t_actual_s):
        some = (f", some at up to {at(latest_s)} s" if latest_s is not None
                and came_late(t_actual_s, latest_s) else "")
        return f"{key} s (read at {at(t_actual_s)} s{some})"
    if latest_s is not None and came_late(float(key), latest_s):
        return f"{key} s (some read at up to {at(latest_s)} s)"
    return f"{key} s"


def _duration(seconds: float) -> str:
    """A wall-clock span in the largest unit that reads well: '45 s', '2.5 h', '3.0 d'."""
    for unit, scale in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= scale:
            return f"{seconds / scale:.1f} {unit}"
    return f"{seconds:.0f} s"


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.pipelines.inference import parse_times, time_label
    from labctl.protocols.program import check_targets
    from labctl.protocols.retention import Retention, RetentionConfig

    times = parse_times(args.times) if args.times is not None else None
    cfg = RetentionConfig(levels=args.levels, g_min_S=args.g_min_S, g_max_S=args.g_max_S,
                          repeats=args.repeats, verify=verify_config(args), times_s=times,
                          duration_s=args.duration_s, form=not args.no_form)
    proto = Retention(cfg)

    def check(info: Any) -> None:
        check_targets(proto.jobs(), info.g_min_S, info.g_max_S)
        if (args.backend or "sim") != "sim":   # a station's chip ages in real time
            batches = -(-proto.jobs().size // (info.rows * info.cols))
            last = float(cfg.grid()[-1])
            span = (f"at most about {_duration(batches * last)} (a resume waits only for the "
                    f"reads still due)" if getattr(args, "resume", None)
                    else f"about {_duration(batches * last)} in all")
            print(f"labctl: note: on a station every read is waited for: {batches} batch(es), "
                  f"each read until {time_label(last)} after it is programmed, {span}",
                  file=sys.stderr)

    summary = execute_protocol(args, "run retention", proto,
                               array_factory=checked_factory(args, check))
    emit(summary, as_json=args.json, human=human)
    return 0
