"""Prune by magnitude, regrow by gradient (RigL) with a cosine-decaying update fraction.

Evci et al., *Rigging the Lottery: Making All Tickets Winners*, ICML 2020: every
``period`` steps, until ``end_fraction`` of training, each layer drops the fraction
``f(t) = alpha / 2 (1 + cos(pi t / T_end))`` of its active connections with the smallest
weight magnitude and regrows as many inactive connections with the largest dense-gradient
magnitude, so the layer's sparsity stays fixed.  Seed 001 does not give its prune/regrow rule
or schedule (reference/training.md section 5); this is the documented default.  Connections
dropped in this update are not regrown in the same update.  Layer sparsities follow RigL's
Erdos-Renyi (ERK) distribution by default (:func:`layer_sparsities`), uniform on request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labctl.errors import ConfigError


@dataclass(frozen=True)
class TopologyConfig:
    """RigL schedule: ``alpha`` (initial drop fraction, RigL's 0.3), ``period`` (steps between
    topology updates, RigL's delta T), ``end_fraction`` (stop after this fraction of the steps,
    RigL's 0.75)."""

    alpha: float = 0.3
    period: int = 25
    end_fraction: float = 0.75

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"prune/regrow fraction alpha must be in [0, 1], got {self.alpha}",
                              key="alpha")
        if self.period < 1:
            raise ConfigError(f"--topology-period must be >= 1, got {self.period}",
                              key="topology_period")
        if not 0.0 <= self.end_fraction <= 1.0:
            raise ConfigError(f"topology end fraction must be in [0, 1], got "
                              f"{self.end_fraction}", key="end_fraction")


def update_fraction(step: int, total_steps: int, cfg: TopologyConfig) -> float:
    """The cosine-decaying drop/regrow fraction at ``step``; 0 where no update is due."""
    end = cfg.end_fraction * total_steps
    if step <= 0 or step % cfg.period or step >= end:
        return 0.0
    return 0.5 * cfg.alpha * (1.0 + math.cos(math.pi * step / end))


DISTRIBUTIONS = ("erk", "uniform")


def layer_sparsities(shapes: list[tuple[int, int]], sparsity: float,
                     distribution: str = "erk") -> list[float]:
    """Per-layer sparsity with ``sparsity`` overall (weighted by the layers' sizes).

    ``uniform``: every layer at ``sparsity``.  ``erk`` (Erdos-Renyi, RigL's default for MLPs,
    Evci et al. 2020 / Mocanu et al. 2018): density proportional to
    ``(fan_in + fan_out) / (fan_in fan_out)``, layers that would exceed density 1 kept dense
    and the rest rescaled, so small layers (the classifier) stay denser than wide ones.
    """
    if distribution == "uniform" or sparsity == 0.0:
        return [float(sparsity)] * len(shapes)
    if distribution != "erk":
        raise ConfigError(f"unknown sparsity distribution {distribution!r}; choose one of "
                          f"{', '.join(DISTRIBUTIONS)}", key="distribution")
    sizes = np.array([r * c for r, c in shapes], float)
    raw = np.array([(r + c) / (r * c) for r, c in shapes])
    dense = np.zeros(len(shapes), bool)
    keep = (1.0 - sparsity) * sizes.sum()
    while True:
        eps = (keep - sizes[dense].sum()) / (raw[~dense] * sizes[~dense]).sum()
        density = np.where(dense, 1.0, eps * raw)
        over = (density > 1.0) & ~dense
        if not over.any():
            return [float(1.0 - d) for d in density]
        dense |= over


def initial_mask(shape: tuple[int, int], sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform random mask with exactly ``round((1 - sparsity) * size)`` active cells (RigL's
    random initial topology, uniform sparsity per layer)."""
    n = shape[0] * shape[1]
    keep = max(1, int(round((1.0 - sparsity) * n)))
    flat = np.zeros(n, bool)
    flat[rng.permutation(n)[:keep]] = True
    return flat.reshape(shape)


def _ranked(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices sorting ``values`` ascending; ties broken at random."""
    return np.lexsort((rng.random(values.size), values))


def prune_regrow(mask: np.ndarray, weight_mag: np.ndarray, grad_mag: np.ndarray,
                 fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """New mask after one RigL update and the number of connections moved."""
    m = np.asarray(mask, bool).ravel()
    active = np.flatnonzero(m)
    inactive = np.flatnonzero(~m)
    k = min(int(fraction * active.size), inactive.size)
    if k <= 0:
        return mask.copy(), 0
    drop = active[_ranked(np.abs(weight_mag).ravel()[active], rng)[:k]]
    grow = inactive[_ranked(-np.abs(grad_mag).ravel()[inactive], rng)[:k]]
    new = m.copy()
    new[drop] = False
    new[grow] = True
    return new.reshape(mask.shape), k
