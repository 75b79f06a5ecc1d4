"""Stored test-set predictions, so every accuracy a pipeline prints is recomputed from its file.

A pipeline writes the test labels once (``dataset/test_labels``) and, beside every test
accuracy, the predicted class of every test input (``.../test_predictions``, one row per
evaluation; a shorter row is the first N inputs, as with prune's ``--chip-test-limit``).
The summaries compute their accuracies from these, so a reviewer can check each figure
against the data with nothing but h5py; files without predictions (older labctl) fall
back on the stored accuracies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LABELS = "dataset/test_labels"


def stored(predicted: np.ndarray) -> np.ndarray:
    """Class indices as stored: int16 (data sets here have at most a few dozen classes)."""
    return np.asarray(predicted, dtype=np.int16)


def labels_record(labels: np.ndarray) -> dict[str, tuple[Any, str]]:
    """The ``write`` entry that stores the test labels."""
    return {LABELS: (stored(labels), "")}


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of the first ``len(predicted)`` labels predicted right."""
    p = np.asarray(predicted)
    return float(np.mean(p == np.asarray(labels)[:p.shape[-1]])) if p.size else float("nan")


def recomputed(data: Any, name: str, index: int = -1) -> float | None:
    """Accuracy of the predictions ``name``: 1-D, one evaluation; 2-D, row ``index`` of one
    row per evaluation; 3-D, the mean over the passes of evaluation ``index``.  None when
    the file has no such predictions (or no labels)."""
    if name not in data or LABELS not in data:
        return None
    rows = np.asarray(data.data(name))
    if not rows.size:
        return None
    row = rows if rows.ndim == 1 else rows[index]
    labels = data.data(LABELS)
    if row.ndim == 2:
        return float(np.mean([accuracy(p, labels) for p in row]))
    return accuracy(row, labels)


def last_accuracy(data: Any, predicted: str, stored: str) -> float | None:
    """The last evaluation's accuracy: recomputed from the predictions ``predicted`` where
    the file has them, else the stored fraction ``stored`` (older files); None if neither."""
    value = recomputed(data, predicted)
    if value is not None:
        return value
    if stored not in data or not len(data.data(stored)):
        return None
    return float(data.data(stored)[-1])
