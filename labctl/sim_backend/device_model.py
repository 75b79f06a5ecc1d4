"""The contract between :class:`SimulatedArray` and a device model (one strategy per file).

A device model is stateless physics: the per-cell state lives in a dict of numpy
arrays owned by the array, so that a whole chip can be snapshotted, restored and
updated in one vectorised call.  ``r`` and ``c`` are the index arrays of the
addressed cells; every method acts on all of them at once, never in a Python loop
over cells.

Optional: ``read_moments(state, r, c, t_s) -> (mean_S, var_S2)``, the noise-free
conductance and the read-noise variance of one nominal read of each cell (independent
Gaussian noise).  With it :class:`SimulatedArray` draws the read noise of an MVM in output
space (one normal per output current instead of one per cell and MVM).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from labctl.array import FloatArray, IntArray, Limits

State = dict[str, np.ndarray]


class DeviceModel(Protocol):
    """Physics of one technology, parameterised by a preset."""

    name: str
    technology: str
    limits: Limits
    g_min_S: float
    g_max_S: float
    read_voltage_V: float
    gate_voltage_V: float
    set_polarity: int
    selector_resistance_ohm: float
    params: dict[str, Any]

    def initial_state(self, shape: tuple[int, int], rng: np.random.Generator) -> State:
        """Fresh (unformed, where that applies) die: per-cell arrays of ``shape``."""
        ...

    def sweep(self, state: State, r: IntArray, c: IntArray, voltages_V: FloatArray,
              gate_V: float, compliance_A: float, rng: np.random.Generator,
              t_s: float) -> FloatArray:
        """Staircase on every addressed cell; returns current_A (n_cells, n_steps)."""
        ...

    def pulse(self, state: State, r: IntArray, c: IntArray, amplitude_V: FloatArray,
              width_s: float, gate_V: float, count: IntArray, rng: np.random.Generator,
              t_s: float) -> None:
        """Apply ``count[k]`` identical pulses of ``amplitude_V[k]`` to cell k, in place.

        The sign of ``amplitude_V`` is semantic (positive = set / potentiate).
        """
        ...

    def conductance(self, state: State, r: IntArray, c: IntArray, rng: np.random.Generator,
                    t_s: float, read_voltage_V: float, gate_V: float) -> FloatArray:
        """Measured conductance (relaxation at time ``t_s`` and read noise included)."""
        ...

    def mask(self, state: State, r: IntArray, c: IntArray, enabled: np.ndarray,
             rng: np.random.Generator, t_s: float) -> None:
        """Switch cells in or out (sparsity FeFET, or reset/set of a 1T1R cell)."""
        ...

    def conductance_matrix(self, state: State, rng: np.random.Generator, t_s: float) -> FloatArray:
        """Whole-array conductance for an MVM at the read voltage (noise included)."""
        ...
