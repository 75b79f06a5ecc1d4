"""Turn ``--backend``/``--preset``/``--rows``/``--cols``/``--seed`` into a concrete Array.

This is the only place in labctl that knows the concrete backends (DESIGN.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labctl.array import Array
from labctl.errors import ConfigError


def open_sim(preset: str | None, rows: int | None, cols: int | None, seed: int,
             *, wire_resistance_ohm: float = 0.0, default_preset: str = "cmo-hfox-1t1r") -> Array:
    from labctl.sim_backend.presets import default_shape, load_model
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
                          wire_resistance_ohm=wire_resistance_ohm)


def open_backend(args: argparse.Namespace, *, default_preset: str = "cmo-hfox-1t1r",
                 wire_resistance_ohm: float = 0.0) -> Array:
    """The Array the command line asks for; raises ConfigError for bad options."""
    backend = getattr(args, "backend", "sim") or "sim"
    rows, cols = getattr(args, "rows", None), getattr(args, "cols", None)
    if rows is not None and rows <= 0 or cols is not None and cols <= 0:
        raise ConfigError(f"--rows and --cols must be positive (got {rows}x{cols})", key="rows")
    if backend == "sim":
        return open_sim(getattr(args, "preset", None), rows, cols, getattr(args, "seed", 0),
                        wire_resistance_ohm=wire_resistance_ohm, default_preset=default_preset)
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
        raise ConfigError(f"station file {backend} does not exist", key="backend")
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
                        wire_resistance_ohm=float(desc.get("wire_resistance_ohm", 0.0)))
    station = desc.get("station")
    if not station:
        raise ConfigError("the run file does not say which backend it ran on", key="backend")
    from labctl.drivers.hardware_array import HardwareArray

    return HardwareArray.from_station(Path(station))
