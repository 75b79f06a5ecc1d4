"""``labctl emulate STATION.toml``: start the emulated bench a station file describes.

One loopback server per instrument, on the ports the station's resources name
(``TCPIP0::127.0.0.1::15025::SOCKET``), all wired through an emulated matrix to the
simulated die of the station's ``[emulation]`` section.  Prints the resource strings,
then serves until Ctrl-C or SIGTERM.  With ``--ephemeral`` free ports are used instead
and ``--station-out`` writes a copy of the station file that names them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from labctl.commands.argtypes import finite_float
from labctl.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser("emulate", help="start the emulated bench of a station file",
                       description="Serve every instrument of STATION.toml on loopback TCP, "
                       "wired to the simulated die of its [emulation] section, until Ctrl-C.")
    p.add_argument("station", metavar="STATION.toml")
    p.add_argument("--ephemeral", action="store_true",
                   help="bind free ports instead of the ones the station names")
    p.add_argument("--station-out", metavar="FILE.toml", default=None,
                   help="write the station file with the ports actually bound")
    p.add_argument("--json", action="store_true", help="print the resources as one JSON line")
    p.add_argument("--duration-s", type=finite_float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C/SIGTERM)")
    p.set_defaults(handler=handle)


def check_station_out(path: Path) -> None:
    """Refuse a ``--station-out`` that would replace anything but an earlier station file
    (a run file, a preset, weights: the bound ports are rewritten on every start)."""
    from labctl.commands.out_file import check_out_file
    from labctl.drivers.station import load_station

    check_out_file(path, "--station-out", suffix=".toml",
                   why_suffix="a station file ends in .toml")
    if path.exists():
        try:
            load_station(path)
        except ConfigError:
            raise ConfigError(f"--station-out {path} already exists and is not a station "
                              "file; labctl replaces only a station file there",
                              key="station_out") from None


def write_station_out(path: Path, text: str) -> None:
    """Write the station file whole or not at all (a reader never sees half of it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"--station-out {path}: {e.strerror}", key="station_out") from None


def handle(args: argparse.Namespace) -> int:
    from labctl.drivers.station import load_station
    from labctl.sim_backend.emulator.serve import start_bench

    if args.duration_s is not None and args.duration_s <= 0:
        raise ConfigError(f"--duration-s must be > 0 s, got {args.duration_s:g}",
                          key="duration_s")
    if args.station_out and Path(args.station_out).resolve() == Path(args.station).resolve():
        raise ConfigError(f"--station-out {args.station_out} is the station file being "
                          f"emulated; write the bound ports to another file", key="station_out")
    station = load_station(args.station)
    if args.station_out:
        check_station_out(Path(args.station_out))
    running = start_bench(station, ephemeral=args.ephemeral)
    try:
        if args.station_out:
            write_station_out(Path(args.station_out), running.station_text())
        em = station.emulation
        print(f"emulated bench '{station.name}': simulated {em.preset if em else '?'} "
              f"{station.chip.rows}x{station.chip.cols} die, seed {em.seed if em else '?'}")
        for role, res in running.resources.items():
            print(f"  {role:<12} {station.instruments[role].driver:<16} {res}")
        if args.json:
            print(json.dumps({"status": "serving", "station": str(station.path),
                              "resources": running.resources,
                              "station_out": args.station_out}))
        print("serving; Ctrl-C to stop", file=sys.stderr)
        sys.stdout.flush()
        threading.Event().wait(args.duration_s)  # KeyboardInterrupt (or SIGTERM) ends it
    except KeyboardInterrupt:
        print("stopping the emulated bench", file=sys.stderr)
    finally:
        running.stop()
    if args.json:   # the last line says how it ended, as every command's does
        print(json.dumps({"status": "stopped", "station": str(station.path)}), flush=True)
    return 0
