"""Accuracies recomputed from stored predictions (labctl/pipelines/predictions.py)."""

from __future__ import annotations

import numpy as np

from labctl.pipelines import predictions as pred


class _File(dict):
    """A run file's datasets, as the analyses read them."""

    def data(self, name: str) -> np.ndarray:
        return np.asarray(self[name])


LABELS = np.array([0, 1, 2, 3, 1, 0, 2, 3])


def test_one_evaluation_a_row_per_epoch_and_passes() -> None:
    f = _File({pred.LABELS: pred.stored(LABELS),
               "one": pred.stored([0, 1, 2, 3, 0, 0, 0, 0]),                # 5 of 8
               "epochs": pred.stored([LABELS, [1] * 8]),                   # 8 of 8, 2 of 8
               "passes": pred.stored([[LABELS, [0] * 8]])})                # (8 + 2) / 16
    assert pred.recomputed(f, "one") == 5 / 8
    assert pred.recomputed(f, "epochs") == 2 / 8
    assert pred.recomputed(f, "epochs", index=0) == 1.0
    assert pred.recomputed(f, "passes") == (1.0 + 2 / 8) / 2


def test_a_shorter_row_is_the_first_inputs_and_a_file_without_predictions_is_none() -> None:
    f = _File({pred.LABELS: pred.stored(LABELS), "first": pred.stored([0, 1, 0])})
    assert pred.recomputed(f, "first") == 2 / 3
    assert pred.recomputed(f, "missing") is None
    assert pred.recomputed(_File({"first": [0]}), "first") is None   # no labels stored
