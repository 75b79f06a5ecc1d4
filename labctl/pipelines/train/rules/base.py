"""What every update rule shares: its arrays (roles), forward/backward, update, state.

A rule owns the analog tiles of one layer.  ``roles`` names its arrays (``("W",)`` for analog
SGD, ``("A", "C")`` for the Tiki-Taka family, ``("W", "P")`` for residual learning);
``visible`` is the array that is programmed with the initial weights; ``references`` says
which reference each array is read against (``"mid"`` or ``"symmetry-point"``, see
:mod:`labctl.pipelines.train.tile`).  The digital parts of the layer (bias, output scale,
activation) live in :mod:`labctl.pipelines.train.network`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, fields, is_dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.errors import ConfigError
from labctl.pipelines.train.tile import REFERENCES, AnalogTile


def make_config(cls: type, overrides: dict[str, Any]) -> Any:
    """Build a rule's config dataclass from overrides; unknown keys are a ConfigError."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for this algorithm; "
                          f"it takes {', '.join(sorted(names))}", key=unknown[0])
    defaults = cls()
    for key, value in overrides.items():
        _check_kind(key, value, getattr(defaults, key))
    cfg = cls(**overrides)
    for f in fields(cls):
        v = getattr(cfg, f.name)
        if f.name.endswith("reference") and v not in REFERENCES:
            raise ConfigError(f"{f.name} must be one of {', '.join(REFERENCES)}, got {v!r}",
                              key=f.name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise ConfigError(f"{f.name} must be >= 0, got {v}", key=f.name)
    return cfg


def _check_kind(key: str, value: Any, default: Any) -> None:
    """An override has its default's kind: a finite number for a number (an integer for an
    integer), true/false for a switch, a probability within [0, 1]."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} is true or false, not {value!r}", key=key)
    elif isinstance(default, (int, float)):
        if not number or not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}", key=key)
        if isinstance(default, int) and value != int(value):
            raise ConfigError(f"{key} must be a whole number, got {value!r}", key=key)
        if key.endswith("_prob") and not 0 <= value <= 1:
            raise ConfigError(f"{key} is a probability in [0, 1], got {value!r}", key=key)


class UpdateRule(ABC):
    """One layer's analog weights and how gradients become pulses."""

    name: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]
    visible: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, cfg: Any, tiles: dict[str, AnalogTile], rng: np.random.Generator) -> None:
        missing = set(self.roles) - set(tiles)
        if missing:
            raise ValueError(f"{self.name} needs arrays {', '.join(sorted(missing))}")
        self.cfg = cfg
        self.tiles = tiles
        self.rng = rng

    @classmethod
    def references(cls, cfg: Any) -> dict[str, str]:
        """Reference per role; defaults to the config fields ``<role>_reference``."""
        return {r: getattr(cfg, f"{r.lower()}_reference", "mid") for r in cls.roles}

    @property
    def lr(self) -> float:
        """The learning rate the digital bias uses alongside this rule."""
        return float(self.cfg.lr)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.tiles[self.visible].forward(x)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.tiles[self.visible].backward(d)

    @abstractmethod
    def update(self, x: np.ndarray, d: np.ndarray) -> None:
        """Apply the batch gradient ``x^T d`` (x: layer input, d: dL/d(pre-activation))."""

    def state(self) -> dict[str, Any]:
        """Digital state to checkpoint (buffers, choppers, running means, counters)."""
        return {}

    def load_state(self, s: dict[str, Any]) -> None:  # noqa: B027 (optional hook, like state)
        """Inverse of :meth:`state`."""

    def weight_maps(self) -> dict[str, np.ndarray]:
        """Weights of every array of the layer, read through the Array (final maps)."""
        return {role: t.read_weights() for role, t in self.tiles.items()}

    def effective_weights(self, maps: dict[str, np.ndarray]) -> np.ndarray:
        """The weight the network computes with, from :meth:`weight_maps`."""
        return maps[self.visible]

    def config_dict(self) -> dict[str, Any]:
        cfg = self.cfg
        return asdict(cfg) if is_dataclass(cfg) and not isinstance(cfg, type) else dict(cfg)
