"""Fixtures of the device-protocol tests: an in-memory run sink and the simulated chip."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from labctl.protocols.base import BaseProtocol, run


class MemorySink:
    """A RunSink that keeps every dataset in memory (what a RunWriter would store)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._data: dict[str, list[np.ndarray]] = {}
        self._whole: dict[str, np.ndarray] = {}
        self.units: dict[str, str] = {}
        self._config = json.loads(json.dumps(config, default=lambda o: o.tolist()))
        self.summary: dict[str, Any] = {}
        self.checkpoints = 0

    def append(self, name: str, values: Any, units: str) -> None:
        arr = np.array(values)
        self._data.setdefault(name, []).append(arr.reshape(1) if arr.ndim == 0 else arr)
        self.units[name] = units

    def write(self, name: str, values: Any, units: str) -> None:
        self._whole[name] = np.array(values)
        self.units[name] = units

    def length(self, name: str) -> int:
        return int(sum(a.shape[0] for a in self._data.get(name, [])))

    def checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoints += 1

    def truncate(self, lengths: dict[str, int]) -> None:
        raise NotImplementedError

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.summary = summary

    def data(self, name: str) -> np.ndarray:
        if name in self._whole:
            return self._whole[name]
        return np.concatenate(self._data[name])

    def __contains__(self, name: str) -> bool:
        return name in self._whole or name in self._data

    @property
    def config(self) -> dict[str, Any]:
        return self._config


def drain_protocol(protocol: BaseProtocol, array: Any) -> tuple[dict[str, Any], MemorySink]:
    sink = MemorySink(protocol.config_dict())
    summary = run(protocol, array, sink)
    return summary, sink


@pytest.fixture
def drain():
    """``drain(protocol, array) -> (summary, sink)`` through the real runner, in memory."""
    return drain_protocol


@pytest.fixture
def cmo_chip():
    """``cmo_chip(rows, cols, seed=0, preset="cmo-hfox-1t1r")``: a fresh simulated die."""
    from labctl.sim_backend.presets import load_model
    from labctl.sim_backend.simulated_array import SimulatedArray

    def make(rows: int = 8, cols: int = 4, seed: int = 0, preset: str = "cmo-hfox-1t1r"):
        return SimulatedArray(load_model(preset), rows, cols, seed=seed)

    return make
