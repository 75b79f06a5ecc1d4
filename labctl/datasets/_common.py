"""The Dataset value type and helpers shared by the loaders (split, subsample, file lookup)."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl.errors import DataFormatError, DatasetNotInstalled

EXTRA_HINT = "pip install 'labctl[datasets]'"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split; x in [0, 1] as float32, y as int64 class indices.

    ``stand_in`` is True for generated substitutes (label says what they are); ``source``
    names the file or generator the samples came from.
    """

    name: str
    label: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    stand_in: bool
    source: str

    def __post_init__(self) -> None:
        """A user's files (``--data-dir``) can disagree with themselves: refuse them here,
        with what is wrong, rather than deep inside a training step."""
        where = f"data set {self.name} ({self.source})"
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise DataFormatError(f"{where}: {len(x)} {split} samples but {len(y)} labels")
            if len(y) == 0:
                raise DataFormatError(f"{where}: no {split} samples")
            bad = (y < 0) | (y >= self.n_classes)
            if np.any(bad):
                raise DataFormatError(f"{where}: {split} label {int(y[np.argmax(bad)])} is "
                                      f"outside 0..{self.n_classes - 1}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataFormatError(f"{where}: train samples are {self.x_train.shape[1:]}, test "
                                  f"samples {self.x_test.shape[1:]}")

    def provenance(self) -> dict[str, object]:
        """The run-file provenance record of this data set."""
        return {"dataset": self.name, "dataset_label": self.label, "stand_in": self.stand_in,
                "source": self.source, "n_train": int(len(self.y_train)),
                "n_test": int(len(self.y_test)), "n_classes": self.n_classes}


def package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, found without importing its code."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, hint: str) -> Path:
    """A data file inside an installed package, or DatasetNotInstalled carrying ``hint``."""
    root = package_dir(package)
    path = None if root is None else root / relative
    if path is None or not path.is_file():
        raise DatasetNotInstalled(f"data set file {package}/{relative} not found; install: {hint}")
    return path


def stratified_split(y: np.ndarray, test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/test index split: each class contributes the same fraction."""
    train, test = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def subsample(data: Dataset, limit: int, seed: int) -> Dataset:
    """Keep a seeded random subset of at most ``limit`` samples per split."""
    rng = np.random.default_rng([seed, 7919])

    def pick(n: int) -> np.ndarray:
        return np.sort(rng.permutation(n)[:limit]) if n > limit else np.arange(n)

    tr, te = pick(len(data.y_train)), pick(len(data.y_test))
    return dataclasses.replace(data, x_train=data.x_train[tr], y_train=data.y_train[tr],
                               x_test=data.x_test[te], y_test=data.y_test[te])


def to_unit(images_u8: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]."""
    return images_u8.astype(np.float32) / np.float32(255.0)
