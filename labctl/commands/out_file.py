"""The checks every output-file option shares (``--preset-out``, ``--station-out``): made
before anything runs, so a bad path costs a one-line error, not a finished measurement."""

from __future__ import annotations

import os
from pathlib import Path

from labctl.errors import ConfigError, missing


def check_out_file(path: Path, option: str, *, suffix: str, why_suffix: str) -> Path:
    """``path`` ends in ``suffix`` (else ``why_suffix`` says why it must), its directory
    exists and is writable, and it is not a directory."""
    key = option.lstrip("-").replace("-", "_")
    if path.suffix != suffix:
        raise ConfigError(f"{option} {path}: {why_suffix}", key=key)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {missing(parent, directory=True)}",
                          key=key)
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{option} {path}: directory {parent} is not writable", key=key)
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory", key=key)
    return path
