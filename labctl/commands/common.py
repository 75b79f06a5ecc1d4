"""What the sub-commands share: common options, the run flow, the JSON summary line."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labctl.commands.argtypes import name, positive_int, seed
from labctl.errors import ConfigError, LabctlError
from labctl.operation_time import ATTRIBUTE as OPERATION_TIME
from labctl.operation_time import OperationTimes


def add_common(p: argparse.ArgumentParser, *, preset_default: str = "cmo-hfox-1t1r",
               out_default: str | None = None, hidden: tuple[str, ...] = ()) -> None:
    """--backend, --preset, --rows/--cols, --seed, --out, --resume, --json.  ``hidden``: the
    options (dests) a command refuses, left out of its --help (given, they get the one-line
    refusal that says why)."""
    g = p.add_argument_group("common options")
    # default None (= sim): a command can tell an explicit 'sim' from no --backend at all
    g.add_argument("--backend", type=name, default=None,
                   help="'sim' (default: the simulated chip) or a station file STATION.toml")
    g.add_argument("--preset", type=name, default=None,
                   help="simulated device preset name or preset FILE.toml "
                        f"(default {preset_default})")
    g.add_argument("--rows", type=positive_int, default=None,
                   help="array rows (default: the preset's)")
    g.add_argument("--cols", type=positive_int, default=None,
                   help="array columns (default: the preset's)")
    g.add_argument("--seed", type=seed, default=0,
                   help="seed of the simulator's RNG (default 0; on a station the protocols "
                   "draw nothing from it, the pipelines their data order and initial weights)")
    g.add_argument("--pace", default=None, metavar="RUN.h5|SECONDS",
                   help="simulated chip only: advance its clock after every operation by the "
                   "time a station took per cell (the per-kind times a station run file "
                   "recorded, or SECONDS for each cell pulse, read, sweep point and MVM "
                   "input), so the die relaxes during a measurement as it did on that station "
                   "(default: the clock moves only with waits)")
    g.add_argument("--out", type=name, default=out_default, help="run file to write (RUN.h5)")
    g.add_argument("--resume", type=name, default=None, metavar="RUN.h5",
                   help="carry on an interrupted run file; options not given are the "
                        "run's own (a station run needs its --backend STATION.toml again)")
    g.add_argument("--json", action="store_true",
                   help="print a one-line JSON summary as the last line of stdout")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    for action in g._group_actions:
        if action.dest in hidden:
            action.help = argparse.SUPPRESS


def blas_threads(n: int) -> Any:
    """A context limiting BLAS to ``n`` threads (threadpoolctl ships with scikit-learn);
    0 = the library's default.  The simulator's many small matrix products run fastest on
    one thread, and threaded BLAS spinning on a shared machine slowed training ~7x."""
    import contextlib

    if n < 0:
        raise ConfigError(f"--blas-threads must be >= 0, got {n}", key="blas_threads")
    if n == 0:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def add_blas_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads (default 1: the simulator's many small products run "
                   "fastest single-threaded, and extra threads contend on a shared machine; "
                   "0 = BLAS default)")


def default_out(command: str) -> str:
    """``COMMAND-YYYYmmdd-HHMMSS.h5`` in the working directory, with ``-2``, ``-3``, ... when
    a run of the same second has it already (run files are never overwritten)."""
    stem = f"{command.replace(' ', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, k = f"{stem}.h5", 1
    while Path(name).exists():
        k += 1
        name = f"{stem}-{k}.h5"
    return name


def jsonable(x: Any) -> Any:
    """Summaries to plain JSON: numpy scalars/arrays to Python, non-finite floats to null."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def emit(summary: dict[str, Any], *, as_json: bool, human: Callable[[dict[str, Any]], str] | None
         = None, json_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Print the human summary, then (with --json) one JSON object as the last stdout line
    (``json_view`` of the summary, where a command keeps bulky parts to its run file)."""
    if human is not None:
        text = human(summary)
        if text:
            print(text)
    else:
        for k, v in summary.items():
            if not isinstance(v, (dict, list)):
                print(f"{k:>24}: {v}")
    if as_json:
        print(json.dumps(jsonable(summary if json_view is None else json_view(summary))))
    sys.stdout.flush()


def execute_protocol(args: argparse.Namespace, command: str, protocol: Any, *,
                     default_preset: str = "cmo-hfox-1t1r", wire_resistance_ohm: float = 0.0,
                     provenance: dict[str, Any] | None = None,
                     array_factory: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Open the backend, write the run file, drain the protocol, mark the file; return summary.

    Bad options fail before the backend opens and before any file is created; what needs
    the chip (voltages against its limits) fails in the protocol's ``preflight``, after it
    opens and before the file.  On any error or interrupt the outputs go off
    (``array.close()``) and the file says ``aborted``.
    """
    from labctl.commands.backend import (
        check_opened_backend,
        check_resume_backend,
        describe_differences,
        open_backend,
    )
    from labctl.commands.progress import ProgressBar
    from labctl.data.runfile import RunReader, RunWriter, check_writable
    from labctl.protocols.base import run

    config = protocol.config_dict()
    resume_ckpt, recorded, prior = None, None, None
    array: Any  # an Array that is also a context manager (every backend is one)
    if args.resume:
        with RunReader(args.resume) as rr:
            if rr.command != command:
                raise ConfigError(f"--resume {args.resume} is a '{rr.command}' run, "
                                  f"not '{command}'",
                                  key="resume")
            if rr.status == "complete":   # first: whatever the options, nothing is left
                raise ConfigError(f"--resume {args.resume}: the run is already complete",
                                  key="resume")
            then = jsonable(rr.config)
            now = jsonable(json.loads(json.dumps(jsonable(config))))
            if "weights_sha256" in then and then.get("weights_sha256") == now.get(
                    "weights_sha256"):     # the same matrix, wherever its file is now
                now = {**now, "weights_source": then.get("weights_source")}
            if then != now:
                if then.get("weights_sha256") != now.get("weights_sha256"):
                    raise ConfigError(
                        f"--resume {args.resume}: the matrix in {config.get('weights_source')} "
                        f"is not the one the run programmed (recorded from "
                        f"{then.get('weights_source')}); give the file it programmed",
                        key="resume")
                raise ConfigError(f"--resume {args.resume}: this command differs from the run "
                                  f"it resumes ({describe_differences(then, now)}); drop the "
                                  f"options that changed", key="resume")
            check_resume_backend(args, rr.backend, args.resume)
            resume_ckpt = rr.checkpoint()
            recorded = rr.backend
            prior = prior_transcript(rr)
        out = Path(args.resume)
    else:
        out = check_writable(args.out or default_out(command))
    array = open_backend(args, default_preset=default_preset,
                         wire_resistance_ohm=wire_resistance_ohm) \
        if array_factory is None else array_factory()
    bar = ProgressBar(command, enabled=not getattr(args, "quiet", False))
    writer, transcript = None, None
    try:
        with array:
            desc = array.describe()
            check_opened_backend(args, desc, recorded)   # before any voltage, before the file
            if hasattr(protocol, "preflight"):   # refused here, no run file is left behind
                protocol.preflight(array)
            if wire_resistance_ohm and desc.get("backend") == "sim":   # a station's are its own
                desc["wire_resistance_ohm"] = wire_resistance_ohm
            # argv: the exact command line, so `labctl replay` can re-execute it
            writer = RunWriter(out, command=command, config=config, backend=desc,
                               provenance=provenance, resume=bool(args.resume),
                               argv=list(getattr(args, "argv", [])),
                               durable=desc.get("backend") != "sim")   # a die's data
            if args.resume and resume_ckpt is None:
                writer.clear_data()  # killed before the first checkpoint: start over
            transcript = TranscriptLog(writer, array, prior)
            summary = run(protocol, array, writer, progress=bar, resume=resume_ckpt,
                          after_step=transcript.append)
            bar.close()
        # after the backend closed, so the transcript ends with its outputs off, matrix open
        transcript.append()
        writer.finish("complete")
    except BaseException as e:
        bar.close()
        if writer is not None:
            if transcript is None:
                transcript = TranscriptLog(writer, array, prior)
            transcript.append()
            # Ctrl-C, or SIGTERM (which the CLI raises as KeyboardInterrupt("SIGTERM"))
            reason = (("interrupted" + (f" by {e}" if str(e) else "")) if
                      isinstance(e, KeyboardInterrupt) else f"{e}")
            writer.finish("aborted", error=f"{e.__class__.__name__}: {reason}")
        if isinstance(e, LabctlError) or isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise
    summary = {"run_file": str(out), "status": "complete", **summary}
    return summary


#: the columns of a run file's instrument transcript (``transcript/<name>``), and the
#: session of each entry (0 for the first)
TRANSCRIPT_COLUMNS = ("resource", "time_s", "direction", "text")
_JOURNAL_COLUMNS = (*TRANSCRIPT_COLUMNS, "session")


def prior_transcript(reader: Any) -> dict[str, Any]:
    """What the earlier sessions of a run being resumed recorded: their transcript columns
    (empty when they left none: a simulator, or a process killed before its first step),
    the session of each entry, their round trips, and the index of the session that starts
    now.  Columns a kill left of unequal length are cut to the shortest."""
    import h5py

    attrs = reader.attrs()
    index = len(json.loads(attrs.get("sessions", "[]"))) or 1
    columns: dict[str, Any] = {}
    if all(f"transcript/{n}" in reader for n in TRANSCRIPT_COLUMNS):
        for n in TRANSCRIPT_COLUMNS:
            ds = reader.h5[f"transcript/{n}"]
            columns[n] = (np.array(ds.asstr()[()], dtype=str) if h5py.check_string_dtype(ds.dtype)
                          else np.array(ds[()]))
        columns["session"] = (reader.data("transcript/session") if "transcript/session" in reader
                              else np.zeros(len(columns["text"]), dtype=np.int64))
        shortest = min(len(v) for v in columns.values())
        columns = {k: v[:shortest] for k, v in columns.items()}
    return {"index": index, "columns": columns,
            "round_trips": int(attrs.get("round_trips", 0)),
            "operation_time": OperationTimes.from_json(attrs.get(OPERATION_TIME))}


class TranscriptLog:
    """A hardware run's instrument transcript (``transcript/*``: every command and response,
    ``time_s`` in POSIX seconds) and round trips, appended to the run file as the run goes.

    :meth:`append` runs after every step, with the step's records (``run(after_step=...)``),
    and once more when the run ends or aborts, so a killed session loses at most the
    entries of the step in flight.  A resumed run appends its entries after those of the
    earlier sessions (``prior``, from :func:`prior_transcript`); ``transcript/session``
    numbers the session of each entry.  Never masks the run's own outcome.
    """

    def __init__(self, writer: Any, array: Any, prior: dict[str, Any] | None = None) -> None:
        self.writer, self.array = writer, array
        self.prior = prior or {"index": 0, "columns": {}, "round_trips": 0}
        self._warned = False
        self._guarded(self._keep_prior)

    def _keep_prior(self) -> None:
        """The earlier sessions' entries as a journal the new ones are appended to: a
        resume cut to their shortest column, or rewrote them (an older labctl wrote them
        whole; a kill before the first checkpoint had them cleared with the data)."""
        columns = self.prior["columns"]
        n = len(columns.get("text", ()))
        if self.writer.cut_journal("transcript", _JOURNAL_COLUMNS) == n:
            return
        self.writer.delete("transcript")
        if n:
            self.writer.append_journal("transcript", {
                k: (columns[k], "s" if k == "time_s" else "") for k in _JOURNAL_COLUMNS})

    def append(self) -> None:
        """Append the entries made since the last call (none on a simulator), whole: Ctrl-C
        and SIGTERM wait until every column has them."""
        from labctl.interrupts import interrupts_deferred

        with interrupts_deferred():
            self._guarded(self._append)

    def _append(self) -> None:
        take = getattr(self.array, "take_transcript", None)
        new = dict(take() or {}) if callable(take) else {}
        n = len(new["text"][0]) if new else 0
        if n:
            new["session"] = (np.full(n, self.prior["index"], dtype=np.int64), "")
            self.writer.append_journal("transcript", new)
        if hasattr(self.array, "round_trips"):
            self.writer.set_attrs("/", round_trips=int(self.array.round_trips)
                                  + self.prior["round_trips"])
        times = getattr(self.array, "operation_times", None)
        if times is not None and times.totals:   # a station's pace, every session's
            prior = self.prior.get("operation_time") or OperationTimes()
            self.writer.set_attrs("/", **{OPERATION_TIME: (prior + times).to_json()})

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            if self.writer.h5.id.valid:
                action()
        except Exception as e:  # noqa: BLE001 - the run's own outcome matters more
            if not self._warned:
                import logging

                logging.getLogger(__name__).warning(
                    "could not store the instrument transcript: %s", e)
                self._warned = True
