"""The checks a user's array file (weights, targets) gets before numpy reads it: each
problem in one line of its own, not numpy's message about pickles or empty text."""

from __future__ import annotations

from pathlib import Path

from labctl.errors import ConfigError


def check_array_file(path: Path, what: str, key: str, *, expected: str,
                     suffix_ok: bool) -> None:
    """``path`` exists, is a file, has an accepted suffix (``suffix_ok``, described by
    ``expected``), is not empty, and a ``.npy`` carries NumPy's header."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory", key=key)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist", key=key)
    if not suffix_ok:
        raise ConfigError(f"{what} {path}: expected {expected}", key=key)
    if path.stat().st_size == 0:
        raise ConfigError(f"{what} {path} is empty", key=key)
    if path.suffix == ".npy":
        with path.open("rb") as fh:
            if fh.read(6) != b"\x93NUMPY":   # numpy would call it pickled data
                raise ConfigError(f"{what} {path} is not a NumPy .npy file (no NumPy header); "
                                  f"save it with numpy.save", key=key)
