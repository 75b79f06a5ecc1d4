"""Edge-popup on frozen random weights: scores, per-layer top-k masks, straight-through gradient.

Ramanujan et al., "What's hidden in a randomly weighted neural network?", CVPR 2020, as used by
seed 000 (Li, Wang et al., Nat. Commun. 2026; reference/training.md section 4): every weight
has a score s; a layer keeps the top ``k`` fraction of |s|; the mask's gradient passes straight
through to the scores.  Here a pruned edge is not zero but keeps the residual weight ``r`` of a
reset cell pair, so the effective weight is ``m*w + (1-m)*r`` and
dL/ds = dL/dW_eff * (w - r) * sign(s).

Seed 000's hysteresis: a mask bit may flip only if its score moved by more than a relative
threshold since the bit last flipped; every flip is one set or reset of the chip.
"""

from __future__ import annotations

import numpy as np


def topk_mask(scores: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask of the ``keep`` fraction of largest |score| (ties broken by position)."""
    flat = np.abs(scores).ravel()
    n_keep = int(round(keep * flat.size))
    mask = np.zeros(flat.size, bool)
    if n_keep > 0:
        mask[np.argpartition(-flat, n_keep - 1)[:n_keep]] = True
    return mask.reshape(scores.shape)


def effective_weights(w: np.ndarray, residual: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Kept edges carry the chip's random weight, pruned ones the reset-cell residual."""
    return np.where(mask, w, residual).astype(w.dtype)


def score_gradient(grad_w_eff: np.ndarray, w: np.ndarray, residual: np.ndarray,
                   scores: np.ndarray) -> np.ndarray:
    """Straight-through estimator: dm/d|s| := 1, so dL/ds = dL/dW_eff * (w - residual) * sign(s)
    (the mask ranks |s|, as edge-popup's ``GetSubnet(scores.abs())``)."""
    return grad_w_eff * (w - residual) * np.sign(scores)


def init_scores(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Kaiming-uniform scores, as in edge-popup (the scale only sets the lr's meaning)."""
    bound = np.sqrt(6.0 / shape[0])
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def hysteresis_update(mask: np.ndarray, scores: np.ndarray, ref: np.ndarray, keep: float,
                      threshold: float) -> tuple[int, int]:
    """Move ``mask`` towards the top-k of ``scores``, flipping only bits whose score moved
    by more than ``threshold`` (relative) since their last flip; updates ``mask`` and ``ref``
    (the score at each bit's last flip) in place.  Returns (pruned, restored) flip counts:
    on the chip each pruned edge is a RESET, each restored one a SET."""
    target = topk_mask(scores, keep)
    moved = np.abs(scores - ref) > threshold * np.maximum(np.abs(ref), 1e-12)
    flip = (target != mask) & moved
    restored = int(np.count_nonzero(flip & target))
    mask[flip] = target[flip]
    ref[flip] = scores[flip]
    return int(np.count_nonzero(flip)) - restored, restored


def threshold_for(progress: float, start: float = 0.01, end: float = 0.007) -> float:
    """Seed 000 lowers the flip threshold 0.01 -> 0.007 as accuracy improves; ``progress`` in
    [0, 1] is the accuracy gained over chance as a fraction of what is left to gain."""
    return start + (end - start) * float(np.clip(progress, 0.0, 1.0))
