"""Form the cells of a selection that read as unformed, before a protocol uses them.

Program-verify, the symmetry point and retention need formed cells.  A fresh die (every
simulated die, and a real one straight from the fab) leaks ~1 nS per cell, orders of
magnitude below the analog window; such cells get the forming ramp, the set-direction
sweep and the conditioning cycles of :mod:`labctl.protocols.forming` (seed 004), and the
result is recorded.  Cells that already read inside the window are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from labctl.array import Array, Cells
from labctl.protocols.forming import UNFORMED_FRACTION, FormingConfig, formed, forming_point


def _staircase(v_to: float, step: float) -> np.ndarray:
    return np.linspace(0.0, v_to, max(2, int(round(abs(v_to) / step)) + 1))


def form_unformed(array: Array, cells: Cells, cfg: FormingConfig, *, group: str,
                  unformed_fraction: float = UNFORMED_FRACTION, chunk_cells: int = 8192
                  ) -> dict[str, tuple[Any, str]]:
    """Form the unformed cells of ``cells``; returns records to append (empty if none)."""
    parts = [rec for _, rec in forming_chunks(array, cells, cfg, group=group,
                                              unformed_fraction=unformed_fraction,
                                              chunk_cells=chunk_cells) if rec]
    if not parts:
        return {}
    return {k: (np.concatenate([p[k][0] for p in parts]), parts[0][k][1]) for k in parts[0]}


def forming_chunks(array: Array, cells: Cells, cfg: FormingConfig, *, group: str,
                   unformed_fraction: float = UNFORMED_FRACTION, chunk_cells: int = 8192
                   ) -> Iterator[tuple[str, dict[str, tuple[Any, str]]]]:
    """:func:`form_unformed` a chunk at a time: (progress label, records of the chunk), so
    a protocol stores each chunk as it is formed and shows how far forming has got (a
    fresh 1024x1024 die takes a minute).  One ("no unformed cells", {}) when none is."""
    r, c = cells.indices(array.info.shape)
    bad = unformed_among(array, cells, cfg, unformed_fraction)
    if bad.size == 0:
        yield "no unformed cells", {}
        return
    for k in range(0, bad.size, chunk_cells):
        sel = bad[k:k + chunk_cells]
        ok, v_form = form_cells_at(array, r[sel], c[sel], cfg, chunk_cells=chunk_cells)
        yield (f"formed {min(k + chunk_cells, bad.size)}/{bad.size} unformed cells",
               {f"{group}/row": (r[sel], ""), f"{group}/col": (c[sel], ""),
                f"{group}/v_form_V": (v_form, "V"), f"{group}/formed": (ok, "")})


def unformed_among(array: Array, cells: Cells, cfg: FormingConfig,
                   unformed_fraction: float = UNFORMED_FRACTION) -> np.ndarray:
    """Positions in ``cells`` of the cells that read below ``unformed_fraction * g_min``."""
    g = array.read(cells, voltage_V=cfg.read_voltage_V)
    return np.flatnonzero(g < unformed_fraction * array.info.g_min_S)


def form_cells_at(array: Array, r: np.ndarray, c: np.ndarray, cfg: FormingConfig, *,
                  chunk_cells: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """The forming ramp, the set-direction sweep and the conditioning cycles on the cells
    (r, c), ``chunk_cells`` at a time; returns (formed, forming voltage or NaN) per cell."""
    info = array.info
    ramp = _staircase(cfg.v_stop_V, cfg.v_step_V)
    post = info.set_polarity * _staircase(cfg.post_sweep_V, cfg.condition_step_V)
    post = np.concatenate([post, post[::-1][1:]])
    cycle = np.concatenate([-post, post])
    v_form = np.full(r.size, np.nan)
    ok = np.zeros(r.size, dtype=bool)
    for k in range(0, r.size, chunk_cells):
        sl = slice(k, k + chunk_cells)
        sel = Cells.at(r[sl], c[sl])
        res = array.sweep(sel, ramp, gate_V=cfg.gate_V, compliance_A=cfg.compliance_A)
        kk, v, _ = forming_point(res.voltage_V, res.current_A)
        ok[sl] = formed(res.current_A, kk, cfg.jump_ratio)
        v_form[sl] = np.where(ok[sl], v, np.nan)
        array.sweep(sel, post, gate_V=cfg.gate_V, compliance_A=cfg.compliance_A)
        for _ in range(cfg.conditioning_cycles):
            array.sweep(sel, cycle, gate_V=cfg.gate_V, compliance_A=cfg.compliance_A)
    return ok, v_form
