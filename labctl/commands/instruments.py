"""``labctl instruments check STATION.toml``: identity, options, error queue and limits of
every instrument of a station, as a table (or one JSON object with --json).

The station file is validated first; while a run holds the bench (bench_lock.py) the check
stops with one line and sends nothing, since it would read the run's errors and switch its
outputs off.  Otherwise every instrument is opened, identified (its ``*IDN?`` checked
against its driver), its error queue drained, and left safe (outputs off, routes open).
Exit 0 when every instrument answered with an empty error queue, 1 when some
queue held errors, 3 when one did not answer or is not the instrument its driver expects
(one line on stderr; the table marks it), 2 for a bad station file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from labctl.commands.common import jsonable

if TYPE_CHECKING:
    from labctl.drivers.station import Station


def register(sub: Any) -> None:
    p = sub.add_parser("instruments", help="check the instruments of a station file",
                       description="Inspect the instruments a station file names.")
    isub = p.add_subparsers(dest="instruments_command", metavar="ACTION", required=True)
    c = isub.add_parser("check", help="identity, options, error queue and limits of every "
                        "instrument, as a table")
    c.add_argument("station", metavar="STATION.toml")
    c.add_argument("--json", action="store_true", help="one JSON object as the last stdout line")
    c.set_defaults(handler=handle_check)


def check_station(path: str) -> dict[str, Any]:
    """Open every instrument of the station, query it, leave it safe; returns the report."""
    from labctl.drivers.bench_lock import BenchLock
    from labctl.drivers.bench_open import instrument_names
    from labctl.drivers.station import load_station

    station = load_station(path)
    lock = BenchLock.acquire((spec.resource for spec in station.instruments.values()),
                             names=instrument_names(station))
    try:
        return _query(station)
    finally:
        lock.release()


def _query(station: Station) -> dict[str, Any]:
    """Identify, drain and make safe every instrument of a validated station."""
    from labctl.drivers.bench_open import identify_all
    from labctl.drivers.links import Links
    from labctl.drivers.station import CAPABILITIES, matrix_size

    links = Links.open(station)
    report: dict[str, Any] = {"station": str(station.path), "name": station.name,
                              "limits": vars(station.limits).copy(), "instruments": {}}
    try:
        drivers = links.drivers(station)
        identities, failed = identify_all(station, drivers)
        for role, inst in drivers.items():
            spec = station.instruments[role]
            cap = CAPABILITIES.get(spec.driver)
            can = {} if cap is None else {k: v for k, v in vars(cap).items() if v and k != "role"}
            if role == "matrix":
                can["inputs"], can["outputs"] = matrix_size(spec)
            # a box that is not the driver's instrument gets no command of the driver's set
            errors = [] if role in failed else inst.errors()
            report["instruments"][role] = {
                "driver": spec.driver, "resource": spec.resource,
                "identity": identities.get(role, ""), "options": spec.options,
                "errors": [{"code": c, "text": t} for c, t in errors],
                "problem": str(failed[role]) if role in failed else None,
                "expected": getattr(failed.get(role), "expected", None),
                "capability": can,
            }
        for role, inst in drivers.items():
            if role not in failed:
                inst.safe()
                if inst.shutdown_error:   # outputs off / routes open not confirmed
                    report["instruments"][role]["problem"] = f"safe: {inst.shutdown_error}"
        report["round_trips"] = sum(t.round_trips for t in links.transports.values())
    finally:
        links.close()
    report["ok"] = not any(i["errors"] or i["problem"] for i in report["instruments"].values())
    return report


_CAP_LABELS = {"max_voltage_V": ("|V| <=", "V"), "max_current_A": ("I <=", "A"),
               "min_width_s": ("width >=", "s"), "max_width_s": ("width <=", "s"),
               "inputs": ("inputs", ""), "outputs": ("outputs", "")}


def _fmt_cap(cap: dict[str, float]) -> str:
    return ", ".join(f"{_CAP_LABELS[k][0]} {v:g} {_CAP_LABELS[k][1]}".rstrip()
                     for k, v in cap.items() if k in _CAP_LABELS)


def table(report: dict[str, Any]) -> str:
    rows = [("role", "driver", "resource", "identity", "options", "errors", "can do")]
    for role, i in report["instruments"].items():
        errs = "; ".join(f"{e['code']} {e['text']}" for e in i["errors"]) or "none"
        if i.get("expected"):
            errs = f"WRONG INSTRUMENT: expected {i['expected']}"
        elif i.get("problem"):
            errs = f"NO ANSWER: {i['problem'].split('): ', 1)[-1]}"
        opts = ", ".join(f"{k}={v}" for k, v in i["options"].items()) or "-"
        rows.append((role, i["driver"], i["resource"], i["identity"], opts, errs,
                     _fmt_cap(i["capability"])))
    widths = [max(len(str(r[k])) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lim = report["limits"]
    lines.append(f"station limits: |V| <= {lim['max_voltage_V']:g} V, |V_gate| <= "
                 f"{lim['max_gate_voltage_V']:g} V, I <= {lim['max_current_A']:g} A, pulse width "
                 f"{lim['min_pulse_width_s']:g} .. {lim['max_pulse_width_s']:g} s")
    return "\n".join(lines)


def handle_check(args: argparse.Namespace) -> int:
    report = check_station(args.station)
    print(table(report))
    problems = [i["problem"] for i in report["instruments"].values() if i["problem"]]
    queued = [f"{role}: {e['code']} {e['text']}" for role, i in report["instruments"].items()
              for e in i["errors"]]
    code, error = ((3, f"instrument fault: {problems[0]}") if problems else
                   (1, f"errors left in the queues: {'; '.join(queued)}") if queued else
                   (0, None))
    if args.json:   # one object: the report, and how the command ended (as every --json)
        end = ({"status": "complete"} if code == 0 else
               {"status": "failed", "exit_code": code, "error": error})
        print(json.dumps(jsonable({**report, **end})))
    if code == 3:
        sys.stderr.write(f"labctl: {error}\n")
    return code
