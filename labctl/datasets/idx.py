"""Standard IDX files (MNIST family): plain or gzip, images offset 16, labels offset 8."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from labctl.errors import DataFormatError

SPLIT_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (``.gz`` or not), or None if any is missing."""
    found: dict[str, Path] = {}
    for key, stem in SPLIT_FILES.items():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def missing_idx_files(directory: Path) -> str:
    """What a ``--data-dir`` lacks, for its error message: 'X, Y (or .gz)' or 'the directory'."""
    if not directory.is_dir():
        return f"{directory} is not a directory"
    absent = [stem for stem in SPLIT_FILES.values()
              if not (directory / stem).is_file() and not (directory / f"{stem}.gz").is_file()]
    return f"{directory} lacks {', '.join(absent)} (plain or .gz)"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX uint8 file; the header gives the shape and is checked against the size."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:   # truncated, or not gzip at all
            raise DataFormatError(f"{path}: cannot be read as gzip ({e}); download it again"
                                  ) from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFormatError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise DataFormatError(f"{path}: header says {dims}, file holds {data.size} bytes")
    return data.reshape(dims)


def read_idx_split(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """All four arrays of an IDX split."""
    return {key: read_idx(path) for key, path in files.items()}
