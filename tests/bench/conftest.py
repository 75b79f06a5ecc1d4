"""Fixtures: the emulated bench of examples/emulated-bench.toml, served in-process on free ports."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.drivers.station import parse_station

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "emulated-bench.toml"


def example_doc() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def dump_toml(doc: dict[str, Any]) -> str:
    """A minimal TOML writer for station documents (tables of scalars, lists, inline tables)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) or k == "options"}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict) and k != "options":
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(lines) + "\n"


@pytest.fixture
def serve_station(tmp_path: Path) -> Iterator[Callable[..., tuple[Any, Path]]]:
    """``serve(doc=None)`` starts the emulated bench of a station document on free ports and
    returns (RunningBench, path of a station file naming those ports); all stop at teardown."""
    from labctl.sim_backend.emulator.serve import start_bench

    running: list[Any] = []

    def serve(doc: dict[str, Any] | None = None, name: str = "station.toml") -> tuple[Any, Path]:
        text = EXAMPLE.read_text() if doc is None else dump_toml(doc)
        src = tmp_path / f"src-{name}"
        src.write_text(text)
        station = parse_station(tomllib.loads(text), src, text=text)
        bench = start_bench(station, ephemeral=True)
        running.append(bench)
        path = tmp_path / name
        path.write_text(bench.station_text())
        return bench, path

    yield serve
    for bench in running:
        bench.stop()
