"""Place a device matrix on an array: one tile when it fits, tiles over several loads if not.

The device matrix (rows = inputs, columns = devices: one or a pair per weight) is cut into
tiles of at most the array's size, never splitting a differential pair.  Tiles are packed
onto array "loads" (batches) shelf by shelf: several small tiles can share one load side
by side or one above the other.  A load is what one array holds at a time; a matrix that
needs several loads is programmed load after load (on one chip: reprogrammed), and each
tile's partial sums are added digitally after its ADC.  With tiling off a matrix that does
not fit is refused with one line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labctl.errors import ConfigError


@dataclass(frozen=True)
class Tile:
    """A block of the device matrix and where it sits on which load."""

    load: int
    rows: tuple[int, int]        # device-matrix rows (= weight rows / inputs), stop exclusive
    cols: tuple[int, int]        # device-matrix columns, stop exclusive
    at: tuple[int, int]          # array (row, col) of the block's top-left cell

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows[1] - self.rows[0], self.cols[1] - self.cols[0])

    def array_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Array (rows, cols) of the tile's cells in row-major order of the block."""
        n, m = self.shape
        rr, cc = np.meshgrid(np.arange(n) + self.at[0], np.arange(m) + self.at[1], indexing="ij")
        return rr.ravel(), cc.ravel()


@dataclass(frozen=True)
class Placement:
    """All tiles of one matrix on an array of ``array_shape``."""

    matrix_shape: tuple[int, int]     # device matrix
    array_shape: tuple[int, int]
    group: int                        # devices per weight: tiles never split a group
    tiles: tuple[Tile, ...]

    @property
    def loads(self) -> int:
        return 1 + max(t.load for t in self.tiles)

    def tiles_of(self, load: int) -> list[Tile]:
        return [t for t in self.tiles if t.load == load]

    def load_targets(self, device_G: np.ndarray, load: int) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
        """(array rows, array cols, targets) of every cell a load programs."""
        rs, cs, ts = [], [], []
        for t in self.tiles_of(load):
            r, c = t.array_cells()
            rs.append(r)
            cs.append(c)
            ts.append(device_G[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]].ravel())
        return np.concatenate(rs), np.concatenate(cs), np.concatenate(ts)

    def load_devices(self, load: int) -> tuple[np.ndarray, np.ndarray]:
        """Device-matrix (rows, cols) of every cell a load programs, in :meth:`load_targets`
        order."""
        rs, cs = [], []
        for t in self.tiles_of(load):
            rr, cc = np.meshgrid(np.arange(*t.rows), np.arange(*t.cols), indexing="ij")
            rs.append(rr.ravel())
            cs.append(cc.ravel())
        return np.concatenate(rs), np.concatenate(cs)

    def to_dict(self) -> dict[str, Any]:
        return {"matrix_shape": list(self.matrix_shape), "array_shape": list(self.array_shape),
                "group": self.group, "loads": self.loads,
                "tiles": [asdict(t) for t in self.tiles]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Placement:
        tiles = tuple(Tile(load=int(t["load"]), rows=tuple(t["rows"]), cols=tuple(t["cols"]),
                           at=tuple(t["at"])) for t in d["tiles"])  # type: ignore[arg-type]
        return cls(matrix_shape=tuple(d["matrix_shape"]),  # type: ignore[arg-type]
                   array_shape=tuple(d["array_shape"]),  # type: ignore[arg-type]
                   group=int(d["group"]), tiles=tiles)


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    """Cut ``0..n`` into near-equal blocks of at most ``size``."""
    k = -(-n // size)
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _col_blocks(n_groups: int, max_groups: int, group: int) -> list[tuple[int, int]]:
    return [(a * group, b * group) for a, b in _blocks(n_groups, max_groups)]


def place(matrix_shape: tuple[int, int], array_shape: tuple[int, int], *, group: int = 1,
          tiling: bool = True) -> Placement:
    """Cut the device matrix into tiles and pack them onto as few loads as a shelf packer can."""
    n, m = matrix_shape
    ar, ac = array_shape
    if n < 1 or m < 1:
        raise ConfigError("the weight matrix is empty", key="weights")
    if m % group:
        raise ConfigError(f"{m} device columns do not form pairs of {group}", key="mapping")
    if ac < group:
        raise ConfigError(f"the array has {ac} columns, fewer than one weight needs ({group})",
                          key="cols")
    if n <= ar and m <= ac:
        return Placement((n, m), (ar, ac), group, (Tile(0, (0, n), (0, m), (0, 0)),))
    if not tiling:
        raise ConfigError(f"the {n}x{m // group} weight matrix needs {n}x{m} devices "
                          f"({'pairs' if group > 1 else 'one per weight'}); the array is {ar}x{ac}"
                          " and tiling is off", key="tiling")
    blocks = [(rb, cb) for rb in _blocks(n, ar) for cb in _col_blocks(m // group, ac // group,
                                                                       group)]
    return Placement((n, m), (ar, ac), group, tuple(_pack(blocks, ar, ac)))


def _pack(blocks: list[tuple[tuple[int, int], tuple[int, int]]], ar: int, ac: int) -> list[Tile]:
    """Shelf packing: fill a load left to right in shelves of the first tile's height."""
    tiles: list[Tile] = []
    load, shelf_top, shelf_h, x = 0, 0, 0, 0
    for rb, cb in blocks:
        h, w = rb[1] - rb[0], cb[1] - cb[0]
        if x + w > ac:                       # next shelf
            shelf_top, x, shelf_h = shelf_top + shelf_h, 0, 0
        if shelf_top + h > ar:               # next load
            load, shelf_top, shelf_h, x = load + 1, 0, 0, 0
        tiles.append(Tile(load, rb, cb, (shelf_top, x)))
        x += w
        shelf_h = max(shelf_h, h)
    return tiles
