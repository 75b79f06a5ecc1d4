"""argparse value types that turn nonsense numbers into argparse's one-line usage error.

``float`` accepts "nan", "inf" and "1e999"; no option of labctl means either, and passed on
they surface later as an internal error or as a limit message about something else.
"""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A finite number: ``float`` without nan and +-inf (which "1e999" also gives)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def seed(text: str) -> int:
    """An RNG seed: an integer >= 0 (numpy's generators take no negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is an integer >= 0, not {value}")
    return value


def name(text: str) -> str:
    """A non-empty name or path (an empty ``--preset=`` would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; give a name or a path")
    return text


def positive_int(text: str) -> int:
    """A count of at least one (rows, columns)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value
