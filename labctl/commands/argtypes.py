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


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{what} is an integer >= {low}, not {value}")
    return value


def seed(text: str) -> int:
    """An RNG seed: an integer >= 0 (numpy's generators take no negative seeds)."""
    return _int_at_least(text, 0, "a seed")


def positive_int(text: str) -> int:
    """A count of at least one (rows, columns)."""
    return _int_at_least(text, 1, "a count")


def name(text: str) -> str:
    """A non-empty name or path (an empty ``--preset=`` would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; give a name or a path")
    return text

