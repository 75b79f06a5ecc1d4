"""Nested dicts of arrays and JSON-able values <-> HDF5 groups (checkpoints, snapshots)."""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np


def write_tree(group: h5py.Group, tree: dict[str, Any]) -> None:
    """Write ``tree`` below ``group``: dicts become groups, arrays datasets, the rest JSON attrs."""
    for key, value in tree.items():
        if isinstance(value, dict):
            write_tree(group.create_group(key), value)
        elif isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:   # fixed-length: kept in the group's own header, not HDF5's shared global
            # heap, whose collections a later write can move (a kill then left every
            # checkpoint's variable-length attributes unreadable at once)
            group.attrs[key] = np.bytes_(json.dumps(value, default=_plain).encode())


def _plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def read_tree(group: h5py.Group) -> dict[str, Any]:
    """Inverse of :func:`write_tree`."""
    tree: dict[str, Any] = {k: json.loads(v) for k, v in group.attrs.items()}
    for key, item in group.items():
        tree[key] = read_tree(item) if isinstance(item, h5py.Group) else np.array(item[()])
    return tree
