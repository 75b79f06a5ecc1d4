"""Shared fixtures: a tiny deterministic device model for testing the core machinery."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

# the bench locks of this session (and of the labctl processes it starts) in a directory of
# its own, removed at the end: emulated benches listen on throw-away ports, one lock file each
if "LABCTL_LOCK_DIR" not in os.environ:
    os.environ["LABCTL_LOCK_DIR"] = tempfile.mkdtemp(prefix="labctl-test-locks-")
    atexit.register(shutil.rmtree, os.environ["LABCTL_LOCK_DIR"], ignore_errors=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from labctl.array import Limits  # noqa: E402


class LinearTestModel:
    """A test double: linear conductance steps, no noise; forming at a per-cell threshold.

    Used only to test the run machinery (runner, run files, resume) independently of the
    calibrated physics of the real presets.
    """

    name = "test-linear"
    technology = "1t1r-reram"
    limits = Limits(max_voltage_V=5.0, max_gate_voltage_V=3.0, max_current_A=1e-2,
                    min_pulse_width_s=1e-9, max_pulse_width_s=1.0)
    g_min_S = 1e-6
    g_max_S = 100e-6
    read_voltage_V = 0.2
    gate_voltage_V = 1.2
    set_polarity = 1
    selector_resistance_ohm = 800.0
    params: dict[str, Any] = {}

    def initial_state(self, shape: tuple[int, int], rng: np.random.Generator) -> dict:
        return {"g": np.full(shape, 1e-9), "vf": rng.normal(3.0, 0.1, shape),
                "on": np.ones(shape, bool)}

    def sweep(self, state, r, c, v, gate_V, compliance_A, rng, t_s):
        formed = v[None, :] >= state["vf"][r, c][:, None]
        state["g"][r, c] = np.where(formed.any(axis=1), np.maximum(state["g"][r, c], 50e-6),
                                    state["g"][r, c])
        i = np.where(formed, np.minimum(50e-6 * v[None, :], 2.5e-4), 1e-9 * v[None, :])
        return i

    def pulse(self, state, r, c, amp, width_s, gate_V, count, rng, t_s):
        step = 1e-6 * np.sign(amp) * count
        state["g"][r, c] = np.clip(state["g"][r, c] + step, self.g_min_S, self.g_max_S)

    def conductance(self, state, r, c, rng, t_s, v, gate_V):
        return state["g"][r, c] * state["on"][r, c]

    def mask(self, state, r, c, enabled, rng, t_s):
        state["on"][r, c] = enabled

    def conductance_matrix(self, state, rng, t_s):
        return state["g"] * state["on"]


@pytest.fixture
def test_model() -> LinearTestModel:
    return LinearTestModel()
