"""One way to print a figure in a human summary: the value with its unit, or ``n/a`` alone."""

from __future__ import annotations

import math
from typing import Any


def quantity(x: Any, fmt: str = ".3g", *, scale: float = 1.0, unit: str = "") -> str:
    """``x * scale`` formatted with ``fmt`` and followed by ``unit`` (e.g. ``"uS"``, ``"%"``);
    ``"n/a"`` with no unit when there is no value (None, or not finite: one level, one cell,
    nothing formed).

    >>> quantity(2.5e-6, ".2f", scale=1e6, unit="uS"), quantity(None, unit="uS")
    ('2.50 uS', 'n/a')
    """
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    text = format(float(x) * scale, fmt)
    return f"{text} {unit}" if unit else text


def percent_down(fraction: float, digits: int) -> str:
    """``fraction`` in per cent, rounded down: 1,048,575 of 1,048,576 cells converged is
    99.99 %, not a 100.00 % beside '1 not converged'."""
    scale = 10 ** digits
    return f"{math.floor(100 * fraction * scale + 1e-9) / scale:.{digits}f}"
