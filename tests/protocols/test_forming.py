"""Forming: cells whose ramp shows no current jump are not formed, and the yield says so."""

from __future__ import annotations

import numpy as np

from labctl.protocols.forming import UNFORMED_FRACTION, Forming, FormingConfig


def test_a_ramp_stopping_below_the_forming_voltage_forms_no_cell(cmo_chip, drain):
    """A 2 V ramp stays below every cell's forming voltage (~3.1-3.5 V): yield 0, no V_form."""
    arr = cmo_chip(4, 4)
    summary, sink = drain(Forming(FormingConfig(v_stop_V=2.0, conditioning_cycles=0)), arr)
    assert summary["ramped"] == 16
    assert summary["formed"] == 0 and summary["yield"] == 0.0
    assert not sink.data("forming/formed").any()
    assert np.isnan(sink.data("forming/v_form_V")).all()
    assert summary["v_form_mean_V"] is None
    # ... and the cells indeed still read unformed
    assert (sink.data("forming/g_after_S") < UNFORMED_FRACTION * arr.info.g_min_S).all()


def test_a_ramp_stopping_inside_the_forming_spread_forms_only_some_cells(cmo_chip, drain):
    """Stopping at 3.35 V forms the die's low-V_form cells only: 0 < yield < 1, and the
    cells reported formed are exactly those that read formed afterwards."""
    arr = cmo_chip(4, 4)
    summary, sink = drain(Forming(FormingConfig(v_stop_V=3.35, conditioning_cycles=0)), arr)
    ok = sink.data("forming/formed").astype(bool)
    reads_formed = sink.data("forming/g_after_S") >= UNFORMED_FRACTION * arr.info.g_min_S
    assert 0 < ok.sum() < ok.size
    assert np.array_equal(ok, reads_formed)
    assert summary["formed"] == int(ok.sum())
    assert 0.0 < summary["yield"] < 1.0
    assert summary["yield"] == ok.sum() / ok.size
    assert np.array_equal(np.isfinite(sink.data("forming/v_form_V")), ok)
