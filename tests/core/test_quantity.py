"""Figures in human summaries: a value with its unit, or n/a with none."""

from __future__ import annotations

import math

from labctl.commands.quantity import quantity


def test_a_value_carries_its_unit_and_n_a_carries_none():
    assert quantity(2.5e-6, ".2f", scale=1e6, unit="uS") == "2.50 uS"
    assert quantity(0.5, ".1f", scale=100, unit="%") == "50.0 %"
    assert quantity(3) == "3"
    for missing in (None, math.nan, math.inf):
        assert quantity(missing, ".2f", scale=1e6, unit="uS") == "n/a"


def test_forming_summary_of_a_formed_die_says_n_a_without_units():
    from labctl.commands.run_forming import human

    s = {"formed": 0, "ramped": 0, "cells": 4, "already_formed": 4, "yield": None,
         "v_form_mean_V": None, "v_form_std_V": None, "v_form_reram_mean_V": None,
         "i_form_mean_A": None, "g_after_mean_S": math.nan, "run_file": "f.h5"}
    text = human(s)
    assert "G after         n/a\n" in text and "V_form (1T1R)   n/a\n" in text
    assert "n/a uS" not in text and "n/a V" not in text and "n/a +/-" not in text
    text = human({**s, "v_form_mean_V": 2.1, "v_form_std_V": 0.1, "g_after_mean_S": 5e-5})
    assert "V_form (1T1R)   2.100 V +/- 0.100 V" in text and "G after         50.00 uS" in text


def test_a_percentage_short_of_everything_never_prints_as_100():
    from labctl.commands.quantity import percent_down

    assert percent_down(1_048_575 / 1_048_576, 2) == "99.99"   # beside "1 not converged"
    assert percent_down(1.0, 2) == "100.00" and percent_down(0.29, 2) == "29.00"
    assert percent_down(0.12345, 1) == "12.3" and percent_down(0.0, 1) == "0.0"
