"""Typed preset tables: one TOML table -> one frozen dataclass, errors naming the key."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

import numpy as np

from labctl.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Shape:
    """Default array size of a preset (table ``[array]``)."""

    rows: int
    cols: int


def preset_table(cls: type[T], preset: dict[str, Any], key: str, name: str,
                 allow_extra: tuple[str, ...] = ()) -> T:
    """Dataclass ``cls`` from table ``[key]`` of preset ``name``.

    Fields without a default are required; every value must be a finite number; a key the
    dataclass does not know (and ``allow_extra`` does not excuse) is refused.
    """
    table = preset.get(key)
    if not isinstance(table, dict):
        raise ConfigError(f"preset {name}: missing table [{key}]", key=key)
    all_fields = fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in all_fields]
    required = [f.name for f in all_fields
                if f.default is MISSING and f.default_factory is MISSING]
    extra = sorted(set(table) - set(names) - set(allow_extra))
    if extra:
        raise ConfigError(f"preset {name}: unknown key {key}.{extra[0]}", key=f"{key}.{extra[0]}")
    missing = [n for n in required if n not in table]
    if missing:
        raise ConfigError(f"preset {name}: missing key {key}.{missing[0]}",
                          key=f"{key}.{missing[0]}")
    values = {n: table[n] for n in names if n in table}
    for n, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise ConfigError(f"preset {name}: {key}.{n} must be a finite number, got {v!r}",
                              key=f"{key}.{n}")
    return cls(**values)
