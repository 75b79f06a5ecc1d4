"""Prepare a tile through the Array: forming, symmetry point, pulse step, initial weights.

* :func:`form_unformed` electro-forms the cells that read below the window (a fresh die):
  the quasi-static ramp under gate-limited compliance, the post-forming sweep in the set
  direction and one reset/set conditioning cycle of :mod:`labctl.protocols.forming` (seed
  004), swept over blocks of cells.  A formed chip is left alone.
* :func:`settle_symmetry_point` applies identical alternating set/reset pulses to every cell
  (the open-loop scheme of seed 004, Falcone et al. arXiv 2502.04524; reference/devices.md
  section 1) until each device sits at its symmetry point, then keeps alternating for
  ``average_pairs`` pairs while reading: the mean conductance is G_sp per cell and the mean
  single-pulse change is the step at the symmetry point, dG_sp.  The tile's weight
  granularity dw_min is the array mean of dG_sp in weight units (aihwkit's ``dw_min``).
  A pair closes a fraction of about 4 / N_states of the distance to the symmetry point
  (soft bounds; 8 / N_states for a gamma-2 power step), so a fine-grained device needs more
  pairs: when the measured step says ``settle_pairs`` were too few for
  ``settle_pairs_per_state`` pairs per state, settling goes on and the reading is repeated.
* :func:`program_weights` writes initial weights open loop with read-back: read, send
  ``round((target - w) / dw_min)`` pulses, repeat a few times (a coarse program-verify; the
  precise one is :mod:`labctl.protocols.program_verify`, not needed for a random start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.array import Cells
from labctl.errors import ConfigError
from labctl.pipelines.train.pulses import exact_counts
from labctl.pipelines.train.tile import AnalogTile


@dataclass(frozen=True)
class CalibrationConfig:
    """Symmetry-point settling and initial programming (devices.md: 500 alternating pulses)."""

    settle_pairs: int = 150       # alternating up/down pairs before averaging [C]
    settle_pairs_per_state: float = 1.5  # a pair closes 4/N_states of the distance to the SP
                                  # (soft bounds; 8/N_states power step gamma 2): 1.5 N_states
                                  # pairs leave e^-6 of it [C]
    max_settle_pairs: int = 20000  # cap on the pairs of a very fine device [C]
    average_pairs: int = 50       # pairs read for G_sp and dG_sp [C]
    program_iterations: int = 20  # read-back rounds of the open-loop initial programming [C]:
                                  # on 784x256 cmo-hfox 6 left 0.074 rms error on initial
                                  # weights of 0.087 rms (started at the SP), 20 leave 0.037
    max_pulses_per_round: int = 31
    form_v_stop_V: float = 4.0    # forming ramp maximum (devices.md: sweep <= 4 V) [C]
    form_v_step_V: float = 0.05   # coarse ramp: the forming voltage itself is not measured here
    form_gate_V: float = 1.2      # forming gate voltage [C]
    form_compliance_A: float = 1e-3
    post_sweep_V: float = 1.5     # set-direction sweep after forming (|V| < 1.5 V) [A]
    form_block_cells: int = 4096  # cells swept per call

    def validate(self) -> None:
        if (self.settle_pairs < 0 or self.average_pairs < 1 or self.settle_pairs_per_state < 0
                or self.max_settle_pairs < self.settle_pairs):
            raise ConfigError("settle_pairs and settle_pairs_per_state must be >= 0, "
                              "max_settle_pairs >= settle_pairs and average_pairs >= 1",
                              key="average_pairs")
        if self.program_iterations < 0 or self.max_pulses_per_round < 1:
            raise ConfigError("program_iterations >= 0 and max_pulses_per_round >= 1 required",
                              key="program_iterations")


def _ramp(v_to: float, step: float) -> np.ndarray:
    return np.linspace(0.0, v_to, max(2, int(round(abs(v_to) / step)) + 1))


def form_unformed(tile: AnalogTile, cfg: CalibrationConfig) -> int:
    """Form every cell that reads below a tenth of the window minimum; returns how many."""
    info = tile.array.info
    g = tile.read_conductance_S().ravel()
    todo = np.flatnonzero(g < 0.1 * info.g_min_S)
    if todo.size == 0:
        return 0
    ramp = _ramp(cfg.form_v_stop_V, cfg.form_v_step_V)
    post = info.set_polarity * _ramp(cfg.post_sweep_V, cfg.form_v_step_V)
    post = np.concatenate([post, post[::-1][1:]])
    cycle = np.concatenate([-post, post])  # reset then set (8W conditioning)
    for i in range(0, todo.size, cfg.form_block_cells):
        r, c = np.divmod(todo[i:i + cfg.form_block_cells], tile.cols)
        cells = Cells.at(r, c)
        for v in (ramp, post, cycle):
            tile.array.sweep(cells, v, gate_V=cfg.form_gate_V, compliance_A=cfg.form_compliance_A)
    return int(todo.size)


@dataclass
class SymmetryPoint:
    g_sp_S: np.ndarray   # (rows, cols) mean conductance while alternating
    step_S: np.ndarray   # (rows, cols) mean single-pulse change at the symmetry point


def settle_symmetry_point(tile: AnalogTile, cfg: CalibrationConfig) -> SymmetryPoint:
    """Drive every cell to its symmetry point with alternating pulses; measure G_sp and dG_sp."""
    _alternate(tile, cfg.settle_pairs)
    sp = _alternate_and_read(tile, cfg.average_pairs)
    more = settle_pairs_needed(sp, tile.g_unit_S, cfg) - cfg.settle_pairs - cfg.average_pairs
    if more <= 0:
        return sp
    _alternate(tile, more)
    return _alternate_and_read(tile, cfg.average_pairs)


def _alternate(tile: AnalogTile, pairs: int) -> None:
    """``pairs`` identical set/reset pulse pairs on every cell, without reading."""
    for _ in range(pairs):
        tile.pulse_all(+1)
        tile.pulse_all(-1)


def settle_pairs_needed(sp: SymmetryPoint, g_unit_S: float, cfg: CalibrationConfig) -> int:
    """Pairs of alternating pulses that bring a device of this step to its symmetry point."""
    step_S = float(np.mean(sp.step_S))
    if not np.isfinite(step_S) or step_S <= 0:
        return cfg.settle_pairs + cfg.average_pairs  # granularity() reports it
    n_states = 2.0 * g_unit_S / step_S
    return int(min(cfg.max_settle_pairs, np.ceil(cfg.settle_pairs_per_state * n_states)))


def _alternate_and_read(tile: AnalogTile, pairs: int) -> SymmetryPoint:
    """Keep alternating for ``pairs`` pairs, reading after each pulse: mean G and mean step."""
    g_prev = tile.read_conductance_S()
    g_sum = np.zeros_like(g_prev)
    step_sum = np.zeros_like(g_prev)
    for _ in range(pairs):
        tile.pulse_all(+1)
        g_up = tile.read_conductance_S()
        tile.pulse_all(-1)
        g_down = tile.read_conductance_S()
        g_sum += g_up + g_down
        step_sum += (g_up - g_prev) + (g_up - g_down)
        g_prev = g_down
    n = 2 * pairs
    return SymmetryPoint(g_sp_S=g_sum / n, step_S=step_sum / n)


def granularity(sp: SymmetryPoint, g_unit_S: float) -> float:
    """dw_min in weight units: the array-mean step at the symmetry point."""
    step = float(np.mean(sp.step_S)) / g_unit_S
    if not np.isfinite(step) or step <= 0:
        raise ConfigError("the array does not respond to open-loop pulses (no positive step at "
                          "the symmetry point); check that it is formed and the pulse amplitudes",
                          key="set_V")
    return step


def program_weights(tile: AnalogTile, target_w: np.ndarray, cfg: CalibrationConfig) -> np.ndarray:
    """Open-loop programming with read-back; returns the weights read after the last round."""
    w = tile.read_weights()
    for _ in range(cfg.program_iterations):
        n = np.rint((target_w - w) / tile.dw_min)
        n = np.clip(n, -cfg.max_pulses_per_round, cfg.max_pulses_per_round).astype(np.int64)
        if not n.any():
            break
        tile.apply(exact_counts(n), calibration=True)
        w = tile.read_weights()
    return w
