"""What every protocol and pipeline shares: typed steps, the protocol contract, ``run()``.

A protocol is a generator of :class:`Step` records over an Array (emcee's ``sample()``);
:func:`run` drains it, appends every record to the run file, checkpoints the protocol
state (and the simulator's state where the backend can be snapshotted) and reports
progress.  Resuming restores the last checkpoint, cuts the file back to it and carries
on, so a resumed run equals an uninterrupted one under the same seed and no step is
recorded twice.  The protocol itself knows none of this.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, ClassVar, cast
from typing import Protocol as TypingProtocol

import numpy as np

from labctl.array import Array, Snapshottable
from labctl.errors import ConfigError
from labctl.interrupts import interrupts_deferred

ProgressFn = Callable[[int, int, str], None]


@dataclass
class Step:
    """One unit of measured work: datasets to append and the progress it represents.

    ``append`` maps a dataset path to ``(values, units)``; values are appended along
    axis 0.  ``write`` maps a path to ``(values, units)`` written whole (final maps).
    """

    done: int
    total: int
    label: str = ""
    append: dict[str, tuple[Any, str]] = field(default_factory=dict)
    write: dict[str, tuple[Any, str]] = field(default_factory=dict)


class RunData(TypingProtocol):
    """Read access to a run's datasets: a RunReader or the RunWriter of a live run."""

    def data(self, name: str) -> np.ndarray: ...

    def __contains__(self, name: str) -> bool: ...

    @property
    def config(self) -> dict[str, Any]: ...


class RunSink(TypingProtocol):
    """What :func:`run` writes to (a RunWriter)."""

    def append(self, name: str, values: Any, units: str) -> None: ...

    def write(self, name: str, values: Any, units: str) -> None: ...

    def length(self, name: str) -> int: ...

    def checkpoint(self, state: dict[str, Any]) -> None: ...

    def truncate(self, lengths: dict[str, int]) -> None: ...

    def set_summary(self, summary: dict[str, Any]) -> None: ...

    def data(self, name: str) -> np.ndarray: ...

    def __contains__(self, name: str) -> bool: ...

    @property
    def config(self) -> dict[str, Any]: ...


class BaseProtocol(ABC):
    """A measurement or pipeline: ``steps()`` yields records, ``analyse()`` summarises a file."""

    name: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        cfg = self.config
        return asdict(cfg) if is_dataclass(cfg) and not isinstance(cfg, type) else dict(cfg)

    def preflight(self, array: Array) -> None:
        """Checks against the opened chip before a run file exists (the voltages the
        protocol will apply against the station limits, the cell technology); raise a
        LabctlError to refuse.  Default: nothing to check."""
        return None

    @abstractmethod
    def initial_state(self, array: Array) -> dict[str, Any]:
        """The protocol's loop state before the first step (arrays and JSON-able values)."""

    @abstractmethod
    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        """Yield steps, updating ``state`` in place before each yield so it can resume."""

    @abstractmethod
    def analyse(self, data: RunData) -> dict[str, Any]:
        """Summary metrics computed from the stored data alone (re-runnable on a file)."""


def _lengths(sink: RunSink, names: set[str]) -> list[list[Any]]:
    return [[n, sink.length(n)] for n in sorted(names)]


def run(protocol: BaseProtocol, array: Array, sink: RunSink, *,
        progress: ProgressFn | None = None, resume: dict[str, Any] | None = None,
        checkpoint_every_s: float | None = None,
        after_step: Callable[[], None] | None = None) -> dict[str, Any]:
    """Drain ``protocol`` over ``array`` into ``sink``; returns the summary.

    ``resume`` is the checkpoint read from an interrupted run file.  Exceptions
    propagate after the file has what was measured; the caller marks it aborted.
    Each step's record (its datasets, ``after_step`` -- the CLI appends the instrument
    transcript there -- and a checkpoint when one is due) is written with Ctrl-C and
    SIGTERM held (:func:`~labctl.interrupts.interrupts_deferred`), so an interrupt never
    leaves its datasets of unequal length; the measuring itself stays interruptible.
    """
    snap = isinstance(array, Snapshottable)
    if resume is not None:
        if snap and "backend" in resume:
            cast(Snapshottable, array).restore(resume["backend"])
        elif not snap and "backend" in resume:
            raise ConfigError("this run was checkpointed on a simulator and cannot resume on "
                              "another backend", key="resume")
        state = resume["protocol"]
        names = {n for n, _ in resume["lengths"]}
        sink.truncate(dict((n, int(k)) for n, k in resume["lengths"]))
        step_index = int(resume["step"])
    else:
        state = protocol.initial_state(array)
        names = set()
        step_index = 0
    if checkpoint_every_s is None:
        cells = array.info.rows * array.info.cols
        checkpoint_every_s = 0.0 if (not snap or cells <= 65536) else 2.0
    last_ckpt = time.monotonic()
    pending = False
    last: tuple[int, int] | None = None
    for step in protocol.steps(array, state):
        with interrupts_deferred():
            for name, (values, units) in step.append.items():
                sink.append(name, values, units)
                names.add(name)
            for name, (values, units) in step.write.items():
                sink.write(name, values, units)
            step_index += 1
            pending = True
            if after_step is not None:
                after_step()
            if time.monotonic() - last_ckpt >= checkpoint_every_s:
                _checkpoint(sink, array, state, names, step_index, snap)
                last_ckpt, pending = time.monotonic(), False
        if progress is not None:
            progress(step.done, step.total, step.label)
            last = (step.done, step.total)
    if pending:
        _checkpoint(sink, array, state, names, step_index, snap)
    if progress is not None and last is not None:
        progress(*last, "analysing")        # fits of large arrays take seconds
    summary = protocol.analyse(sink)
    sink.set_summary(summary)
    return summary


def _checkpoint(sink: RunSink, array: Array, state: dict[str, Any], names: set[str],
                step_index: int, snap: bool) -> None:
    ckpt: dict[str, Any] = {"protocol": state, "lengths": _lengths(sink, names),
                            "step": step_index}
    if snap:
        ckpt["backend"] = array.snapshot()  # type: ignore[attr-defined]
    sink.checkpoint(ckpt)
