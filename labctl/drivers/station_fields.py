"""Typed getters for the station file: every error is a ConfigError naming the key."""

from __future__ import annotations

import math
from typing import Any

from labctl.errors import ConfigError


def get_table(d: dict[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    if key not in d:
        if required:
            name = join_key(where, key)
            raise ConfigError(f"station file: missing [{name}]", key=name)
        return {}
    v = d[key]
    if not isinstance(v, dict):
        name = join_key(where, key)
        raise ConfigError(f"station file: {name} must be a table", key=name)
    return v


def join_key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def get_number(d: dict[str, Any], key: str, where: str, default: float | None = None, *,
         positive: bool = False, nonneg: bool = False) -> float:
    name = join_key(where, key)
    if key not in d:
        if default is None:
            raise ConfigError(f"station file: missing {name}", key=name)
        return float(default)
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"station file: {name} must be a finite number, got {v!r}", key=name)
    if positive and v <= 0:
        raise ConfigError(f"station file: {name} must be > 0, got {v!r}", key=name)
    if nonneg and v < 0:
        raise ConfigError(f"station file: {name} must be >= 0, got {v!r}", key=name)
    return float(v)


def get_int(d: dict[str, Any], key: str, where: str, default: int | None = None, *,
         minimum: int | None = None) -> int:
    name = join_key(where, key)
    if key not in d:
        if default is None:
            raise ConfigError(f"station file: missing {name}", key=name)
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"station file: {name} must be an integer, got {v!r}", key=name)
    if minimum is not None and v < minimum:
        raise ConfigError(f"station file: {name} must be >= {minimum}, got {v}", key=name)
    return v


def get_str(d: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    name = join_key(where, key)
    if key not in d:
        if default is None:
            raise ConfigError(f"station file: missing {name}", key=name)
        return default
    v = d[key]
    if not isinstance(v, str) or not v:
        raise ConfigError(f"station file: {name} must be a non-empty string, got {v!r}", key=name)
    return v


def get_ports(d: dict[str, Any], key: str, where: str, required: bool = True) -> tuple[int, ...]:
    name = join_key(where, key)
    if key not in d:
        if required:
            raise ConfigError(f"station file: missing {name} (one matrix output port per line)",
                              key=name)
        return ()
    v = d[key]
    if not isinstance(v, list) or not all(isinstance(p, int) and not isinstance(p, bool)
                                          for p in v):
        raise ConfigError(f"station file: {name} must be a list of port numbers", key=name)
    if any(p < 1 for p in v):
        raise ConfigError(f"station file: {name} has a port < 1 (ports are 1-based)", key=name)
    return tuple(v)


def check_unique(ports: dict[str, int], where: str) -> None:
    seen: dict[int, str] = {}
    for name, p in ports.items():
        if p in seen:
            raise ConfigError(f"station file: {where}.{name} and {where}.{seen[p]} use the same "
                              f"port {p}", key=f"{where}.{name}")
        seen[p] = name


def check_unknown(d: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(d) - known)
    if extra:
        name = join_key(where, extra[0])
        raise ConfigError(f"station file: unknown key {name}", key=name)
