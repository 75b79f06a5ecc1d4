"""Per-event cost files (energy, latency): a TOML of ``[section]`` tables of unique keys whose
values are finite numbers >= 0, read into a frozen dataclass of floats.

The sections are for the reader (each value names its source or says placeholder); the keys
must be the dataclass's fields.  Shared by the pruning energy model and the sparse-training
cost model, so the two files are checked alike.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from labctl.errors import ConfigError, missing


def read_sections(path: str | None, package: str, default_file: str, what: str,
                  key: str) -> dict[str, Any]:
    """The keys of every ``[section]`` of ``path`` (None: ``default_file`` in ``package``)."""
    try:
        if path is None:
            text = resources.files(package).joinpath(default_file).read_text()
        else:
            if not Path(path).is_file():
                raise ConfigError(f"{what} file {missing(path)}", key=key)
            text = Path(path).read_text()
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: {exc}", key=key) from exc
    flat: dict[str, Any] = {}
    for section in raw.values():
        if not isinstance(section, dict):
            raise ConfigError(f"{what}: every value belongs in a [section]", key=key)
        flat.update(section)
    return flat


def check_values(values: Mapping[str, Any], names: Iterable[str], what: str, *,
                 whole: Iterable[str] = ()) -> dict[str, float]:
    """``values`` has exactly ``names``, each a finite number >= 0 (``whole``: an integer
    >= 1); returned as floats."""
    names, whole = list(names), set(whole)
    missing = [n for n in names if n not in values]
    unknown = sorted(set(values) - set(names))
    if missing or unknown:
        k = (missing or unknown)[0]
        raise ConfigError(f"{what}: {'missing' if missing else 'unknown'} key {k}", key=k)
    for n in names:
        v = values[n]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or v < 0:
            raise ConfigError(f"{what}: {n} must be a finite number >= 0, got {v!r}", key=n)
        if n in whole and (v < 1 or v != int(v)):
            raise ConfigError(f"{what}: {n} must be a whole number >= 1, got {v!r}", key=n)
    return {n: float(values[n]) for n in names}
