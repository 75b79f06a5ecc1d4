"""Turn ``--backend``/``--preset``/``--rows``/``--cols``/``--seed`` into a concrete Array.

This is the only place in labctl that knows the concrete backends (DESIGN.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labctl.array import Array
from labctl.errors import ConfigError, missing


def open_sim(preset: str | None, rows: int | None, cols: int | None, seed: int,
             *, wire_resistance_ohm: float = 0.0, default_preset: str = "cmo-hfox-1t1r",
             pace_s: dict[str, float] | None = None) -> Array:
    from labctl.sim_backend.presets import default_shape, load_model, preset_digest
    from labctl.sim_backend.simulated_array import SimulatedArray

    name = preset or default_preset
    model = load_model(name)
    d_rows, d_cols = default_shape(name)
    r = d_rows if rows is None else rows
    c = d_cols if cols is None else cols
    if r <= 0 or c <= 0:
        raise ConfigError(f"--rows and --cols must be positive (got {r}x{c})", key="rows")
    source = str(Path(name).resolve()) if Path(name).suffix == ".toml" else None
    return SimulatedArray(model, r, c, seed=seed, preset_name=model.name, preset_source=source,
                          wire_resistance_ohm=wire_resistance_ohm,
                          preset_sha256=preset_digest(source) if source else None,
                          pace_s=pace_s)


#: slowest pace a number may give: a station spends milliseconds per cell operation; a minute
#: or more is a mistyped unit, and an astronomical one overflows the die's clock
MAX_PACE_S = 60.0


def sim_pace(args: argparse.Namespace) -> dict[str, float] | None:
    """``--pace``: seconds per cell operation by kind, from a station run file's record or
    one figure for every kind; None when not given.  ConfigError (one line) otherwise."""
    from labctl.operation_time import ATTRIBUTE, KINDS, OperationTimes

    text = getattr(args, "pace", None)
    if text is None:
        return None
    if (getattr(args, "backend", None) or "sim") != "sim":
        raise ConfigError("--pace is for the simulated chip; a station keeps its own pace",
                          key="pace")
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not (0 <= seconds <= MAX_PACE_S):
            raise ConfigError(f"--pace must be a time of 0 to {MAX_PACE_S:g} s per cell "
                              f"operation or a station run file, got {text!r}", key="pace")
        return dict.fromkeys(KINDS, seconds)
    from labctl.data.runfile import RunReader

    if not Path(text).is_file():
        raise ConfigError(f"--pace {text}: neither a time in seconds nor an existing run file",
                          key="pace")
    with RunReader(text) as reader:
        pace = OperationTimes.from_json(reader.attrs().get(ATTRIBUTE)).per_operation_s()
    if not pace:
        raise ConfigError(f"--pace {text}: the run file records no station pace (a simulator "
                          f"run, or a station run recorded before labctl kept it)", key="pace")
    return pace


def open_backend(args: argparse.Namespace, *, default_preset: str = "cmo-hfox-1t1r",
                 wire_resistance_ohm: float = 0.0) -> Array:
    """The Array the command line asks for; raises ConfigError for bad options."""
    backend = getattr(args, "backend", "sim") or "sim"
    rows, cols = getattr(args, "rows", None), getattr(args, "cols", None)
    if rows is not None and rows <= 0 or cols is not None and cols <= 0:
        raise ConfigError(f"--rows and --cols must be positive (got {rows}x{cols})", key="rows")
    pace = sim_pace(args)
    if backend == "sim":
        return open_sim(getattr(args, "preset", None), rows, cols, getattr(args, "seed", 0),
                        wire_resistance_ohm=wire_resistance_ohm, default_preset=default_preset,
                        pace_s=pace)
    if backend == "transcript":
        raise ConfigError("--backend transcript is only for `labctl replay`", key="backend")
    if backend.startswith("transcript:"):
        from labctl.data.runfile import RunReader
        from labctl.drivers.hardware_array import HardwareArray

        with RunReader(backend.split(":", 1)[1]) as reader:
            return HardwareArray.from_run_file(reader)
    path = Path(backend)
    if path.suffix != ".toml":
        raise ConfigError(f"--backend must be 'sim' or a station file (.toml), got {backend!r}",
                          key="backend")
    if not path.is_file():
        raise ConfigError(f"station file {missing(backend)}", key="backend")
    given = [f"--{k}" for k in ("preset", "rows", "cols") if getattr(args, k, None) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: for the simulated chip; the station file "
                          f"{backend} says which chip is on the probe card", key=given[0][2:])
    from labctl.drivers.hardware_array import HardwareArray

    return HardwareArray.from_station(path)


def backend_from_description(desc: dict[str, Any]) -> Array:
    """Re-open the backend a run file recorded (resume on the simulator)."""
    if desc.get("backend") == "sim":
        return open_sim(desc.get("preset_source") or desc["preset"], int(desc["rows"]),
                        int(desc["cols"]), int(desc["seed"]),
                        wire_resistance_ohm=float(desc.get("wire_resistance_ohm", 0.0)),
                        pace_s=desc.get("pace_s"))
    station = desc.get("station")
    if not station:
        raise ConfigError("the run file does not say which backend it ran on", key="backend")
    from labctl.drivers.hardware_array import HardwareArray

    return HardwareArray.from_station(Path(station))


# --- resume: the same chip, or nothing --------------------------------------------------------
#: backend description keys that do not identify the chip (a resumed inference may set its
#: wire model anew; the station's text may name new ports of the same instruments)
_NOT_IDENTITY = ("wire_resistance_ohm", "station_toml")


def recorded_stations(desc: Any) -> list[str]:
    """The station files (resolved paths) a backend description names, banks included."""
    if not isinstance(desc, dict):
        return []
    own = [str(Path(str(desc["station"])).resolve())] \
        if desc.get("backend") == "station" and desc.get("station") else []
    return own + [s for v in (desc.get("arrays") or {}).values() for s in recorded_stations(v)]


def resume_hint(reader: Any) -> str:
    """``labctl COMMAND --resume RUN.h5`` for a run file, with the ``--backend`` a station
    run needs typed again (its station files, comma-separated for a bank)."""
    stations = recorded_stations(reader.backend)
    again = f" --backend {','.join(stations)}" if stations else ""
    return f"labctl {reader.command} --resume {reader.path}{again}"


def check_resume_backend(args: argparse.Namespace, recorded: dict[str, Any], path: Any) -> None:
    """Before anything opens: ``--resume`` carries on on the kind of backend, and the station
    files, the run recorded -- never a station run on the simulator, a simulated run on a
    station, or one bench's run on another's station file."""
    stations = recorded_stations(recorded)
    requested = getattr(args, "backend", None) or "sim"
    if requested == "sim":
        if stations:
            raise ConfigError(f"--resume {path} ran on station {','.join(stations)}; pass "
                              f"--backend {','.join(stations)} to carry it on there (it cannot "
                              f"continue on the simulator)", key="backend")
        return
    if requested.startswith("transcript"):
        raise ConfigError(f"--resume {path}: a transcript is only replayed by `labctl replay`",
                          key="backend")
    if not stations:
        raise ConfigError(f"--resume {path} ran on the simulator; it cannot carry on on "
                          f"station {requested} (drop --backend)", key="backend")
    given = sorted({str(Path(s).resolve()) for s in requested.split(",")})
    if given != sorted(set(stations)):
        raise ConfigError(f"--resume {path} ran on station {','.join(stations)}, not "
                          f"{requested}: a run carries on on the bench it started on",
                          key="backend")


def backend_identity(desc: Any) -> Any:
    """What identifies the chip of a backend description: preset, size and seed of a
    simulator; path, drivers and the instruments' identities of a station."""
    if isinstance(desc, dict):
        out = {str(k): backend_identity(v) for k, v in desc.items() if k not in _NOT_IDENTITY}
        if desc.get("backend") == "station" and desc.get("station"):
            out["station"] = str(Path(str(desc["station"])).resolve())
        return out
    if isinstance(desc, (list, tuple)):
        return [backend_identity(v) for v in desc]
    return desc


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _at(d: Any, path: str) -> Any:
    """The value at a dotted ``path`` of nested dicts (None where it is missing)."""
    for key in path.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d


def describe_differences(then: Any, now: Any, limit: int = 3) -> str:
    """``key.sub: recorded X, now Y; ...`` for the first ``limit`` leaves that differ."""
    diff = _differences(then, now)
    shown = "; ".join(f"{k}: recorded {_at(then, k)!r}, now {_at(now, k)!r}"
                      for k in diff[:limit])
    return shown + (f" (and {len(diff) - limit} more)" if len(diff) > limit else "")


def check_opened_backend(args: argparse.Namespace, desc: dict[str, Any],
                         recorded: dict[str, Any] | None) -> None:
    """After the backend opened, before any voltage and before the run file is touched.

    A resumed run (``recorded``: its backend description) must have opened the chip it
    recorded; and a command given ``--backend sim`` must not have opened a station (its
    file would claim the simulator for a hardware run).
    """
    import json

    from labctl.commands.common import jsonable

    if getattr(args, "backend", None) == "sim" and recorded_stations(desc):
        raise ConfigError(f"--backend sim, but this command opens station "
                          f"{','.join(recorded_stations(desc))}: pass that station file as "
                          f"--backend to drive it", key="backend")
    if recorded is None:
        return
    now = json.loads(json.dumps(jsonable(backend_identity(desc))))
    then = json.loads(json.dumps(jsonable(backend_identity(recorded))))
    if "preset_sha256" not in json.dumps(recorded):   # recorded before labctl kept the digest
        now = _without(now, "preset_sha256")
    else:   # a preset file is identified by its contents: it may have moved with the project
        now, then = _without(now, "preset_source"), _without(then, "preset_source")
    diff = _differences(then, now)
    if diff:
        shown = describe_differences(then, now)
        what = "instruments answering" if any(k.startswith(("instruments", "drivers"))
                                               for k in diff) else "options"
        raise ConfigError(f"--resume {getattr(args, 'resume', '')}: this backend is not the one "
                          f"the run recorded (the {what} differ: {shown}); a run carries on "
                          f"on the same chip", key="backend")


def _without(d: Any, key: str) -> Any:
    """``d`` with ``key`` dropped at every depth."""
    if isinstance(d, dict):
        return {k: _without(v, key) for k, v in d.items() if k != key}
    if isinstance(d, list):
        return [_without(v, key) for v in d]
    return d


def changed_preset(desc: Any) -> str | None:
    """The first preset file a backend description names whose contents are no longer the
    ones the run recorded (or that is gone), else None."""
    from labctl.sim_backend.presets import preset_digest

    if isinstance(desc, dict):
        src, digest = desc.get("preset_source"), desc.get("preset_sha256")
        if src and digest:
            if not Path(str(src)).is_file():
                return f"{src}, which is gone"
            if preset_digest(str(src)) != digest:
                return f"{src}, which has changed since"
        for v in (desc.get("arrays") or {}).values():
            hit = changed_preset(v)
            if hit:
                return hit
    return None
