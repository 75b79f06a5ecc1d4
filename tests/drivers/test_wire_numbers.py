"""Numbers as the drivers send them: never larger in magnitude than the value that was checked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from labctl.drivers.validators import fmt


def test_a_limit_is_not_exceeded_by_rounding() -> None:
    # found by test_limits_property: 9 significant digits rounded 1.068359375 V up
    assert fmt(1.068359375) == "1.06835937"
    assert fmt(-1.068359375) == "-1.06835937"


def test_short_values_go_out_unchanged() -> None:
    for v, text in ((1.2, "1.2"), (-1.3, "-1.3"), (2.5e-6, "2.5e-06"), (0.0, "0"), (4.0, "4"),
                    (1e-3, "0.001")):
        assert fmt(v) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_sent_value_never_exceeds_the_checked_one(v: float) -> None:
    sent = float(fmt(v))
    assert abs(sent) <= abs(v)
    assert abs(sent - v) <= abs(v) * 1e-8
