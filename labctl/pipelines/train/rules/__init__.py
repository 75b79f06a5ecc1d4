"""Update rules, one strategy per module (STYLE.md), each citing its paper."""

from __future__ import annotations

from labctl.errors import ConfigError
from labctl.pipelines.train.rules.agad import AGAD
from labctl.pipelines.train.rules.base import UpdateRule, make_config
from labctl.pipelines.train.rules.cttv2 import ChoppedTTv2
from labctl.pipelines.train.rules.rl import ResidualLearning
from labctl.pipelines.train.rules.rlv2 import ResidualLearningV2
from labctl.pipelines.train.rules.sgd import AnalogSGD
from labctl.pipelines.train.rules.ttv1 import TikiTakaV1
from labctl.pipelines.train.rules.ttv2 import TikiTakaV2

RULES: dict[str, type[UpdateRule]] = {cls.name: cls for cls in (
    AnalogSGD, TikiTakaV1, TikiTakaV2, ChoppedTTv2, AGAD, ResidualLearning, ResidualLearningV2)}
ALGORITHMS: tuple[str, ...] = tuple(RULES)

__all__ = ["ALGORITHMS", "RULES", "UpdateRule", "make_config", "rule_class"]


def rule_class(name: str) -> type[UpdateRule]:
    if name not in RULES:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}",
                          key="algorithm")
    return RULES[name]
