"""Network weight layers on one array: differential-pair tiles, reads, and the analog matmul.

A weight matrix (fan_in, fan_out) occupies ``fan_in`` rows and ``2 * fan_out`` columns: G+ in
the even and G- in the odd column of each pair (seed 000: a weight is a differential pair).
Tiles are packed side by side on shelves; a spare strip of columns at the right serves to
measure the residual conductance of reset cells.  The matmul drives a tile's rows through the
DAC (other rows at 0 V), reads the column currents and takes I+ - I-; every call is a fresh
read of the array (read noise included), as every test batch on the chip is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from labctl.array import Array, Cells
from labctl.errors import ConfigError

MAX_VECTORS_PER_MVM = 4096  # bounds memory; each chunk is its own (fresh) array read


@dataclass(frozen=True)
class LayerTile:
    name: str
    row0: int
    col0: int
    fan_in: int
    fan_out: int

    def cells(self) -> Cells:
        return Cells.rect(self.row0, self.row0 + self.fan_in, self.col0,
                          self.col0 + 2 * self.fan_out)

    def pair_cells(self, select: np.ndarray) -> Cells:
        """Both cells of every weight where ``select`` (fan_in, fan_out) is True."""
        i, j = np.nonzero(select)
        rows = np.repeat(i + self.row0, 2)
        cols = np.stack([self.col0 + 2 * j, self.col0 + 2 * j + 1], axis=1).ravel()
        return Cells.at(rows, cols)


@dataclass(frozen=True)
class ChipLayout:
    rows: int
    cols: int
    tiles: dict[str, LayerTile]
    spare_col0: int
    spare_cols: int

    def spare_cells(self) -> Cells | None:
        if self.spare_cols == 0:
            return None
        return Cells.rect(0, self.rows, self.spare_col0, self.spare_col0 + self.spare_cols)

    def check(self, shape: tuple[int, int]) -> None:
        if shape[0] < self.rows or shape[1] < self.cols:
            raise ConfigError(f"the network needs a {self.rows}x{self.cols} array, the backend "
                              f"has {shape[0]}x{shape[1]}", key="rows")


def plan_layout(shapes: Mapping[str, tuple[int, int]], *, spare_cols: int = 2,
                max_cols: int = 1024) -> ChipLayout:
    """Shelf packing, tallest tiles first; ConfigError if a layer cannot fit ``max_cols``."""
    order = sorted(shapes, key=lambda n: -shapes[n][0])
    tiles: dict[str, LayerTile] = {}
    shelf_row, shelf_h, col, width = 0, 0, 0, 0
    for name in order:
        fan_in, fan_out = shapes[name]
        if 2 * fan_out + spare_cols > max_cols:
            raise ConfigError(f"layer {name} needs {2 * fan_out} columns, more than an array has",
                              key="network")
        if col + 2 * fan_out + spare_cols > max_cols:
            shelf_row, shelf_h, col = shelf_row + shelf_h, 0, 0
        tiles[name] = LayerTile(name, shelf_row, col, fan_in, fan_out)
        col += 2 * fan_out
        shelf_h = max(shelf_h, fan_in)
        width = max(width, col)
    return ChipLayout(shelf_row + shelf_h, width + spare_cols, tiles, width, spare_cols)


def read_pairs(array: Array, tile: LayerTile) -> tuple[np.ndarray, np.ndarray]:
    """(G+, G-) of a tile, each (fan_in, fan_out), in siemens."""
    g = np.asarray(array.read(tile.cells()), dtype=float).reshape(tile.fan_in, 2 * tile.fan_out)
    return g[:, 0::2], g[:, 1::2]


class ChipMatMul:
    """``matmul(name, x)`` on the array: y = (I+ - I-) * full_scale / (V_read * scale[name]).

    The DAC full scale of a call is the largest |x| it carries (inputs are already quantised,
    so this only maps the grid onto [-V_read, V_read]).  ``counts`` accumulates DAC and ADC
    conversions and the sum of V^2 * G over driven cells (W; times the integration time gives
    the array's read energy).  ``row_g_S[name]`` holds each tile row's summed conductance.
    """

    def __init__(self, array: Array, layout: ChipLayout, scales: Mapping[str, float],
                 row_g_S: Mapping[str, np.ndarray], counts: dict[str, float]) -> None:
        self.array, self.layout, self.scales = array, layout, scales
        self.row_g_S, self.counts = row_g_S, counts
        self.v_read = float(array.info.read_voltage_V)

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        tile = self.layout.tiles[name]
        out = np.empty((len(x), tile.fan_out), dtype=np.float32)
        for k in range(0, len(x), MAX_VECTORS_PER_MVM):
            out[k:k + MAX_VECTORS_PER_MVM] = self._chunk(tile, x[k:k + MAX_VECTORS_PER_MVM])
        return out

    def _chunk(self, tile: LayerTile, x: np.ndarray) -> np.ndarray:
        full_scale = float(np.max(np.abs(x))) if x.size else 0.0
        if full_scale == 0.0:
            return np.zeros((len(x), tile.fan_out))
        v = np.zeros((len(x), self.layout.rows))
        v[:, tile.row0:tile.row0 + tile.fan_in] = x * (self.v_read / full_scale)
        i = np.asarray(self.array.mvm(v))[:, tile.col0:tile.col0 + 2 * tile.fan_out]
        self._count(tile, v[:, tile.row0:tile.row0 + tile.fan_in])
        return (i[:, 0::2] - i[:, 1::2]) * (full_scale / (self.v_read * self.scales[tile.name]))

    def _count(self, tile: LayerTile, v: np.ndarray) -> None:
        c = self.counts
        c["dac"] = c.get("dac", 0.0) + float(v.size)
        c["adc"] = c.get("adc", 0.0) + float(len(v) * 2 * tile.fan_out)
        c["read_V2S"] = c.get("read_V2S", 0.0) + float(((v ** 2) @ self.row_g_S[tile.name]).sum())
        c["macs"] = c.get("macs", 0.0) + float(v.size * tile.fan_out)

