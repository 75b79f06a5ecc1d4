"""A protocol's analysis re-run on devices drawn with replacement (a bootstrap).

The spread of a summary value over such draws is its sampling spread: what another die of
the same process, or another seed of the simulator, moves it by with nothing changed.
``labctl replay`` judges a value that moved by more than its tolerance against it.  The
unit drawn is what is independent in the run: a device (a column of the symmetry-point
traces), or a programmed cell (a job of program or retention, drawn within its level so
that every level keeps its count).  The whole analysis is re-run on each draw, fits of
array-wide parameters (the symmetry point's median exponents) included.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from labctl.protocols.base import RunData
from labctl.protocols.program import GROUP as PROGRAM
from labctl.protocols.program import analyse_program
from labctl.protocols.retention import GROUP as RETENTION
from labctl.protocols.retention import PROGRAM_GROUP as RETENTION_PROGRAM
from labctl.protocols.retention import analyse_retention
from labctl.protocols.symmetry_point import GROUP as SYMMETRY
from labctl.protocols.symmetry_point import analyse_symmetry_point

log = logging.getLogger(__name__)

#: what the analyses read of a programmed cell (one value per job)
_JOB_DATASETS = ("target_S", "g_S", "pulses", "converged")
#: what retention reads of each read (one value per read; ``job`` names its cell)
_READ_DATASETS = ("g_S", "t_s", "t_actual_s")


class _Drawn:
    """A run's data with some datasets replaced by a draw (RunData for the analyses)."""

    def __init__(self, base: RunData, drawn: dict[str, np.ndarray]) -> None:
        self._base, self._drawn = base, drawn

    def data(self, name: str) -> np.ndarray:
        return self._drawn[name] if name in self._drawn else self._base.data(name)

    def __contains__(self, name: str) -> bool:
        return name in self._drawn or name in self._base

    @property
    def config(self) -> dict[str, Any]:
        return self._base.config


class _Cached:
    """Each dataset read from the run file once, however many draws use it; what was read
    or looked for is kept, so the draws can run in other processes on :meth:`frozen`."""

    def __init__(self, data: RunData) -> None:
        self._data = data
        self._cache: dict[str, np.ndarray] = {}
        self._has: dict[str, bool] = {}
        self._config: dict[str, Any] | None = None

    def data(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = np.asarray(self._data.data(name))
        return self._cache[name]

    def __contains__(self, name: str) -> bool:
        if name not in self._has:
            self._has[name] = name in self._data
        return self._has[name]

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = self._data.config
        return self._config

    def frozen(self) -> _Frozen:
        """What has been read so far, without the run file (it pickles)."""
        return _Frozen(dict(self._cache), dict(self._has), dict(self.config))


class _Frozen:
    """A run's datasets held in memory (RunData): what a worker process analyses."""

    def __init__(self, cache: dict[str, np.ndarray], has: dict[str, bool],
                 config: dict[str, Any]) -> None:
        self._cache, self._has, self.config = cache, has, config

    def data(self, name: str) -> np.ndarray:
        return self._cache[name]

    def __contains__(self, name: str) -> bool:
        return self._has.get(name, name in self._cache)


def _draw_devices(data: RunData, rng: np.random.Generator) -> dict[str, np.ndarray]:
    trace = data.data(f"{SYMMETRY}/trace_S")
    idx = rng.integers(0, trace.shape[1], trace.shape[1])
    out = {f"{SYMMETRY}/trace_S": trace[:, idx]}
    if f"{SYMMETRY}/repeat_reads_S" in data:
        out[f"{SYMMETRY}/repeat_reads_S"] = data.data(f"{SYMMETRY}/repeat_reads_S")[:, idx]
    return out


def _draw_jobs(data: RunData, group: str, rng: np.random.Generator) -> np.ndarray:
    """Job indices drawn with replacement within each target level."""
    targets = data.data(f"{group}/target_S")
    idx = np.empty(targets.size, dtype=np.int64)
    order = np.argsort(targets, kind="stable")
    _, starts, counts = np.unique(targets[order], return_index=True, return_counts=True)
    for s, c in zip(starts.tolist(), counts.tolist(), strict=True):
        idx[s:s + c] = order[s + rng.integers(0, c, c)]
    return idx


def _jobs(data: RunData, group: str, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {f"{group}/{n}": data.data(f"{group}/{n}")[idx] for n in _JOB_DATASETS
            if f"{group}/{n}" in data}


def _draw_program(data: RunData, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return _jobs(data, PROGRAM, _draw_jobs(data, PROGRAM, rng))


def _draw_retention(data: RunData, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return retention_jobs(data, _draw_jobs(data, RETENTION_PROGRAM, rng))


def retention_jobs(data: RunData, idx: np.ndarray) -> dict[str, np.ndarray]:
    """A retention run's datasets for the cells (jobs) ``idx``: each keeps all its reads,
    relabelled with its new job index."""
    out = _jobs(data, RETENTION_PROGRAM, idx)
    job = data.data(f"{RETENTION}/job").astype(np.int64)
    n_jobs = data.data(f"{RETENTION_PROGRAM}/target_S").size
    order = np.argsort(job, kind="stable")
    counts = np.bincount(job, minlength=n_jobs)
    starts = np.cumsum(counts) - counts
    c = counts[idx]
    pos = order[np.repeat(starts[idx] - (np.cumsum(c) - c), c) + np.arange(int(c.sum()))]
    out[f"{RETENTION}/job"] = np.repeat(np.arange(idx.size), c)
    for n in _READ_DATASETS:
        if f"{RETENTION}/{n}" in data:
            out[f"{RETENTION}/{n}"] = data.data(f"{RETENTION}/{n}")[pos]
    return out


_DrawFn = Callable[[RunData, np.random.Generator], dict[str, np.ndarray]]
_Analysis = Callable[[RunData], dict[str, Any]]

#: command -> (how to draw, the analysis to re-run)
RESAMPLED: dict[str, tuple[_DrawFn, _Analysis]] = {
    "run symmetry-point": (_draw_devices, analyse_symmetry_point),
    "run program": (_draw_program, analyse_program),
    "run retention": (_draw_retention, analyse_retention),
}


def analysed_now(command: str, data: RunData) -> dict[str, Any] | None:
    """The run's summary values as this labctl's analysis computes them from its data
    (None for a command without a re-runnable analysis): what a replay is compared with,
    so that a change of analysis between versions is not taken for a change of device."""
    if command not in RESAMPLED:
        return None
    return RESAMPLED[command][1](_Cached(data))


def bootstrap_summaries(command: str, data: RunData, replicates: int, *, seed: int = 0,
                        progress: Callable[[int, int], None] | None = None,
                        workers: int | None = None) -> list[dict[str, Any]]:
    """The summaries of ``replicates`` draws of the run's devices ([] for a command whose
    analysis has no such draw).  ``seed`` fixes the draws, so a verdict repeats.

    The first draw is analysed here, the others in ``workers`` processes (default: one per
    CPU this process may use; a symmetry-point draw re-runs the fit and its calibration,
    ~1 s on 32 devices); the draws are taken in order from one generator whatever the
    number of workers, so the summaries are the same.
    """
    if command not in RESAMPLED or replicates <= 0:
        return []
    draw, analyse = RESAMPLED[command]
    cached = _Cached(data)
    rng = np.random.default_rng(seed)
    # the first draw here: its analysis also reads every dataset a worker will need
    out = [analyse(_Drawn(cached, draw(cached, rng)))]
    if progress is not None:
        progress(1, replicates)
    n = min(usable_cpus() if workers is None else max(int(workers), 1), replicates - 1)
    rest: Iterable[dict[str, Any]]
    pool = None
    if n > 1:
        try:
            pool = _pool(n, command, cached.frozen())
        except OSError as e:   # no processes to be had here (a sandbox): in this one
            log.info("resampling in one process: %s", e)
    if pool is None:
        rest = (analyse(_Drawn(cached, draw(cached, rng))) for _ in range(replicates - 1))
    else:
        states = []
        for _ in range(replicates - 1):   # the generator's state at each draw, in order
            states.append(rng.bit_generator.state)
            draw(cached, rng)
        rest = pool.imap(_analyse_draw, states)
    try:
        for summary in rest:
            out.append(summary)
            if progress is not None:
                progress(len(out), replicates)
    finally:
        if pool is not None:
            pool.terminate()
    return out


def _generator(state: Mapping[str, Any]) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


#: a worker process's run data and command (set once per worker by _start_worker)
_WORKER: dict[str, Any] = {}


def _start_worker(command: str, data: _Frozen) -> None:
    _WORKER.update(command=command, data=data)


def _analyse_draw(state: Mapping[str, Any]) -> dict[str, Any]:
    draw, analyse = RESAMPLED[_WORKER["command"]]
    data = _WORKER["data"]
    return analyse(_Drawn(data, draw(data, _generator(state))))


def _pool(n: int, command: str, data: _Frozen) -> Any:
    """``n`` worker processes holding the run's data.  Started from a fresh interpreter
    (forkserver, or spawn where there is none), never forked from this one: a replay may
    run beside threads (an emulated bench) that a fork would copy mid-lock."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([__name__])
    return ctx.Pool(n, initializer=_start_worker, initargs=(command, data))
