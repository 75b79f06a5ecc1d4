"""8x8 handwritten digits bundled with scikit-learn (1797 samples): small, fast, always there."""

from __future__ import annotations

import numpy as np

from labctl.datasets._common import Dataset, stratified_split

TEST_FRACTION = 0.25


def load(*, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """sklearn ``load_digits`` (pixel values 0..16 -> [0, 1]) with a seeded stratified split."""
    from sklearn.datasets import load_digits  # bundled file, no network

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = stratified_split(y, TEST_FRACTION, np.random.default_rng([seed, 8]))
    return Dataset(name="digits", label="8x8 digits (scikit-learn)", x_train=x[tr],
                   y_train=y[tr], x_test=x[te], y_test=y[te], n_classes=10, stand_in=False,
                   source="sklearn.datasets.load_digits (bundled)")
