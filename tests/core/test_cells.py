import numpy as np
import pytest

from labctl.array import Cells, Limits
from labctl.errors import LimitError


def test_all_is_row_major():
    r, c = Cells.all().indices((2, 3))
    assert list(zip(r, c, strict=True)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_rect_mask_and_index_agree():
    m = np.zeros((4, 5), bool)
    m[1:3, 2:4] = True
    a = Cells.rect(1, 3, 2, 4).indices((4, 5))
    b = Cells.from_mask(m).indices((4, 5))
    c = Cells.at([1, 1, 2, 2], [2, 3, 2, 3]).indices((4, 5))
    for x, y in ((a, b), (a, c)):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])


@pytest.mark.parametrize("cells", [Cells.rect(0, 5, 0, 1), Cells.at([0], [9]),
                                   Cells.at([0], [4]), Cells.at([4], [0]),   # one past the edge
                                   Cells.at([-1], [0]), Cells.rect(0, 4, 0, 5),
                                   Cells.from_mask(np.ones((2, 2), bool))])
def test_out_of_range_selection_raises(cells):
    with pytest.raises(IndexError):
        cells.indices((4, 4))


def test_limits_refuse_and_never_clip():
    lim = Limits(max_voltage_V=2.0, max_gate_voltage_V=1.5, max_current_A=1e-3)
    lim.check_voltage([-2.0, 1.9])
    with pytest.raises(LimitError) as e:
        lim.check_voltage([0.1, -2.01])
    assert e.value.value == pytest.approx(2.01)
    with pytest.raises(LimitError):
        lim.check_voltage(1.6, terminal="gate")
    lim.check_current(1e-3)                         # the limit itself is allowed
    for bad in (2e-3, 0.0, -1e-4):                  # beyond it, and no compliance at all
        with pytest.raises(LimitError):
            lim.check_current(bad)
    with pytest.raises(LimitError):
        lim.check_voltage(float("nan"))
