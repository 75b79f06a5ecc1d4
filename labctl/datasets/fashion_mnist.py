"""Fashion-MNIST 60k/10k from the Debian package ``dataset-fashion-mnist`` (IDX .gz files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl.datasets._common import Dataset, to_unit
from labctl.datasets.idx import find_idx_files, missing_idx_files, read_idx_split
from labctl.errors import DatasetNotInstalled

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HINT = "apt-get install -y dataset-fashion-mnist  (or --data-dir with the Fashion-MNIST IDX files)"


def load(*, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """Official Fashion-MNIST split; ``seed`` is unused (the split is fixed)."""
    directory = Path(data_dir) if data_dir is not None else DEBIAN_DIR
    files = find_idx_files(directory)
    if files is None and data_dir is not None:
        raise DatasetNotInstalled(f"--data-dir: {missing_idx_files(directory)}; without "
                                  f"--data-dir Fashion-MNIST comes from {DEBIAN_DIR} "
                                  f"(apt-get install -y dataset-fashion-mnist)")
    if files is None:
        raise DatasetNotInstalled(f"Fashion-MNIST not found in {directory}; install: {HINT}")
    a = read_idx_split(files)
    return Dataset(name="fashion-mnist", label="Fashion-MNIST", x_train=to_unit(a["x_train"]),
                   y_train=a["y_train"].astype(np.int64), x_test=to_unit(a["x_test"]),
                   y_test=a["y_test"].astype(np.int64), n_classes=10, stand_in=False,
                   source=str(directory.resolve()))
