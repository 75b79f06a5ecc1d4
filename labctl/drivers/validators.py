"""Strict validators: an out-of-range value raises LimitError naming it; nothing is clipped.

Built on qcodes' validators (``Numbers``, ``Ints``, ``Enum``) so a range reads the way it
does in a qcodes driver; their ``ValueError``/``TypeError`` become :class:`LimitError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal
from typing import TypeVar

from labctl.errors import LimitError

T = TypeVar("T")


def number(value: float, low: float, high: float, *, quantity: str, unit: str = "") -> float:
    """``value`` as a float if ``low <= value <= high`` (and finite), else LimitError."""
    from qcodes.validators import Numbers

    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LimitError(f"{quantity} {value!r} is not a number", quantity=quantity) from None
    try:
        if not math.isfinite(v):
            raise ValueError("not finite")
        Numbers(min_value=low, max_value=high).validate(v)
    except (TypeError, ValueError):
        limit = high if v > high else low
        raise LimitError(f"{quantity} {v:g} {unit} is outside [{low:g}, {high:g}] {unit}".strip(),
                         quantity=quantity, value=v, limit=limit) from None
    return v


def magnitude(value: float, high: float, *, quantity: str, unit: str = "") -> float:
    """``value`` if ``|value| <= high``, else LimitError."""
    return number(value, -high, high, quantity=quantity, unit=unit)


def integer(value: int, low: int, high: int, *, quantity: str) -> int:
    """``value`` as an int if it is integral and ``low <= value <= high``, else LimitError."""
    from qcodes.validators import Ints

    try:
        integral = not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral:
        raise LimitError(f"{quantity} {value!r} is not an integer", quantity=quantity)
    v = int(value)
    try:
        Ints(min_value=low, max_value=high).validate(v)
    except (TypeError, ValueError):
        raise LimitError(f"{quantity} {v} is outside [{low}, {high}]", quantity=quantity,
                         value=v, limit=high if v > high else low) from None
    return v


def choice(value: T, options: Iterable[object], *, quantity: str) -> T:
    """``value`` if it is one of ``options``, else LimitError."""
    from qcodes.validators import Enum

    opts = tuple(options)
    try:
        Enum(*opts).validate(value)
    except (TypeError, ValueError):
        raise LimitError(f"{quantity} {value!r} is not one of {', '.join(map(repr, opts))}",
                         quantity=quantity) from None
    return value


def fmt(value: float) -> str:
    """A number as sent on the wire: 9 significant digits, no trailing zeros, rounded toward
    zero, so a value that passed a limit check is never sent larger than it was checked
    (1.068359375 V goes out as 1.06835937, not 1.06835938)."""
    v = float(value)
    if v == 0.0 or not math.isfinite(v):
        return f"{v:.9g}"
    exact = Decimal(repr(v))  # the shortest decimal that is exactly v
    digits = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 8), rounding=ROUND_DOWN)
    return f"{float(digits):.9g}"
