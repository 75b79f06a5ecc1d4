"""``labctl replay RUN.h5``: re-execute a recorded run and say whether the statistics agree.

The run file stores the exact command line; replay runs it again on the chosen backend
(the simulator by default, or ``transcript`` to drive the same drivers from a hardware
run's recorded instrument transcript) into a new file, then compares every summary
metric (relative difference) and every measured distribution (two-sample KS test).  A
value that moved by more than the tolerance is judged against its sampling spread where
one is known (its sample, or the analysis re-run on devices drawn with replacement), and
the verdict holds the family-wise error of all the tests at ``--alpha``
(:mod:`labctl.data.compare`).  Exit 0 when consistent, 1 when not.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from labctl.commands.argtypes import finite_float, name, positive_int, seed
from labctl.commands.common import jsonable
from labctl.commands.run_symmetry_point import preset_beside
from labctl.errors import ConfigError, DataFormatError

#: options that replay replaces (option -> takes a value)
#: options of the recorded command line that replay sets itself (True: takes a value);
#: ``--preset-out`` goes so the replay writes its preset next to its own run file instead of
#: over the recorded run's
_REPLACED = {"--out": True, "--resume": True, "--json": False, "--backend": True,
             "--quiet": False, "--preset-out": True}

#: commands that re-open the chip an input run file names (the inference: the transfer's
#: chip) instead of the one --backend asks for; on a station, replaying them drives it
_CHIP_FROM_INPUT = frozenset({"pipeline inference"})


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="re-execute a recorded run and compare its statistics",
                       description="Re-execute a run file's command on a backend and compare.")
    p.add_argument("run_file", metavar="RUN.h5")
    p.add_argument("--backend", default="sim",
                   help="'sim' (default), a station file, or 'transcript' (replay a hardware "
                   "run's recorded instrument transcript offline)")
    p.add_argument("--preset", type=name, default=None,
                   help="replay on another simulated preset")
    p.add_argument("--seed", type=seed, default=None, help="replay with another seed")
    p.add_argument("--tolerance", type=finite_float, default=0.1,
                   help="relative difference within which a scalar metric agrees; beyond it, "
                   "one whose sampling spread is known (a sample mean, a fit) is tested "
                   "instead, others fail (default 0.1)")
    p.add_argument("--alpha", type=finite_float, default=0.01,
                   help="family-wise significance of the replay's statistical tests (KS on "
                   "distributions, t-tests on sample means, resampled spreads; Holm's method): "
                   "the chance that a replay of unchanged physics is called inconsistent "
                   "(default 0.01)")
    p.add_argument("--resamples", type=int, default=30,
                   help="draws of devices (with replacement) whose re-run analysis gives the "
                   "sampling spread of a moved fit or overlap (symmetry-point, program, "
                   "retention; default 30; 0: such values keep the relative tolerance)")
    p.add_argument("--realisations", type=positive_int, default=1,
                   help="replays with N seeds (from --seed, or the recorded seed + 1), the "
                   "recording judged as one more realisation among them: every value "
                   "against its measured spread (pipelines' accuracies and pulse counts "
                   "too; 10 or more: a spread measured on a few seeds is itself rough); "
                   "simulator only (default 1)")
    p.add_argument("--no-pace", action="store_true",
                   help="replay a station run on the simulator with its clock moving only "
                   "with waits (default: at the station's recorded time per cell operation, "
                   "so the die relaxes during the measurement as it did there)")
    p.add_argument("--out", type=name, default=None,
                   help="replayed run file (default RUN-replay.h5, numbered -2, -3 ... when "
                   "taken); with --realisations N, the first of N (OUT-2.h5 ... beside it)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(handler=handle)


def strip_options(argv: list[str], names: dict[str, bool]) -> list[str]:
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        key = tok.split("=", 1)[0]
        if key in names:
            skip = names[key] and "=" not in tok
            continue
        out.append(tok)
    return out


def replay_argv(recorded_argv: list[str], args: argparse.Namespace, out: Path,
                recorded_backend: dict[str, Any] | None = None) -> list[str]:
    replaced = dict(_REPLACED)
    extra = ["--out", str(out), "--quiet"]
    if args.backend == "transcript":
        extra += ["--backend", f"transcript:{Path(args.run_file).resolve()}"]
    else:
        extra += ["--backend", args.backend]
        extra += _station_die(recorded_argv, args.backend, recorded_backend or {})
    if args.preset is not None:
        replaced["--preset"] = True
        extra += ["--preset", args.preset, *_recorded_size(recorded_argv, recorded_backend)]
    if args.seed is not None:
        replaced["--seed"] = True
        extra += ["--seed", str(args.seed)]
    if getattr(args, "no_pace", False):
        replaced["--pace"] = True
    elif getattr(args, "pace_from", None):
        replaced["--pace"] = True
        extra += ["--pace", str(args.pace_from)]
    return [*strip_options(recorded_argv, replaced), *extra]


def station_pace(src: Path, rec: Any, args: argparse.Namespace) -> Path | None:
    """The recording whose pace a replay on the simulator keeps: ``src`` when it is a
    station run that recorded one (an older one is replayed unpaced, with one line)."""
    from labctl.operation_time import ATTRIBUTE

    if args.backend != "sim" or args.no_pace or rec.backend.get("backend") != "station":
        return None
    if ATTRIBUTE not in rec.attrs():
        print(f"{src} records no station pace (recorded before labctl kept it): it is "
              f"replayed with the simulator's clock moving only with waits, so what the die "
              f"did during the measurement (relaxation) is not reproduced")
        return None
    return src.resolve()


def _station_die(recorded_argv: list[str], backend: str, recorded: dict[str, Any]) -> list[str]:
    """``--rows R --cols C`` of the die a station run measured, for its replay on the
    simulator (whose default die has another size; a station run names none)."""
    if backend != "sim" or recorded.get("backend") != "station" \
            or {"--rows", "--cols"} & set(recorded_argv):
        return []
    from labctl.drivers.links import station_from_description

    try:
        chip = station_from_description(recorded).chip
    except (ConfigError, OSError):   # no stored station text and its file is gone
        return []
    return ["--rows", str(chip.rows), "--cols", str(chip.cols)]


def _recorded_size(recorded_argv: list[str], recorded: dict[str, Any] | None) -> list[str]:
    """``--rows R --cols C`` of the simulated die a run measured, for its replay on another
    preset (whose default die may be another size: 4,096 cells against 32 would flag every
    count as moved); [] where the run named its size or had no single array."""
    rec = recorded or {}
    if {"--rows", "--cols"} & set(recorded_argv) or rec.get("backend") != "sim" \
            or not isinstance(rec.get("rows"), int) or not isinstance(rec.get("cols"), int):
        return []
    return ["--rows", str(rec["rows"]), "--cols", str(rec["cols"])]


def recorded_inputs(rec: Any, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``argv`` with each input file the run file holds a copy of replaced by a placeholder
    name, and the arrays to write there: a replay programs what the run programmed, even
    when the file it was read from is gone or was changed since."""
    import numpy as np

    cfg = rec.config
    if rec.command == "program" and "transfer/weights" in rec and \
            cfg.get("weights_source") in argv:
        k = argv.index(cfg["weights_source"])
        return [*argv[:k], "{weights.npy}", *argv[k + 1:]], {
            "weights.npy": rec.data("transfer/weights")}
    if rec.command == "run program" and cfg.get("targets_file") and "program/target_S" in rec:
        rows, cols = int(rec.backend.get("rows", 0)), int(rec.backend.get("cols", 0))
        r, c = rec.data("program/row"), rec.data("program/col")
        grid = np.full((rows, cols), np.nan)
        if rows and cols and r.size and r.max() < rows and c.max() < cols:
            grid[r, c] = rec.data("program/target_S")
        whole = grid.size > 0 and not np.isnan(grid).any()   # a station's: no size recorded
        for k, tok in enumerate(argv):
            if whole and tok.split("=", 1)[0] == "--targets":
                new = ["--targets", "{targets.npy}"]
                return [*argv[:k], *new, *argv[k + (1 if "=" in tok else 2):]], {
                    "targets.npy": grid}
    return argv, {}


def check_replayable(src: Path, rec: Any, backend: str, other_preset: bool = False) -> None:
    """Refuse (one line) a replay that would drive hardware the user did not point at, or
    that cannot reproduce the recording."""
    from labctl.commands.backend import recorded_stations

    stations = recorded_stations(rec.backend)
    if backend == "sim" and stations and rec.command in _CHIP_FROM_INPUT:
        raise ConfigError(f"{src}'s transfer ran on a station ({stations[0]}); replaying it "
                          f"drives that station: pass --backend {stations[0]} to do so, or "
                          f"--backend transcript to replay the recording offline",
                          key="backend")
    from labctl.commands.backend import changed_preset

    changed = changed_preset(rec.backend) if backend == "sim" and not other_preset else None
    if changed:
        raise ConfigError(f"{src} ran on preset file {changed}: a replay needs the preset "
                          f"the run used (restore it, or replay on another with --preset)",
                          key="preset")
    sessions = len(json.loads(rec.attrs().get("sessions", "[]")))
    resumed = max(sessions - 1, int(rec.attrs().get("resumed", 0)))
    if backend == "transcript" and resumed:
        raise ConfigError(f"{src} was resumed ({resumed + 1} sessions): a transcript replay runs "
                          f"the command once, uninterrupted, and cannot send what each session "
                          f"sent around its interruption; replay it with --backend sim or a "
                          f"station file", key="backend")


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.progress import ProgressBar
    from labctl.data.compare import compare_realisations, compare_runs
    from labctl.data.runfile import RunReader

    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha is a significance level in (0, 1), got {args.alpha}",
                          key="alpha")
    if args.tolerance <= 0:
        raise ConfigError(f"--tolerance must be > 0, got {args.tolerance:g}", key="tolerance")
    if args.resamples < 0 or 0 < args.resamples < 3:
        raise ConfigError(f"--resamples is 0 (off) or at least 3 draws, got {args.resamples}",
                          key="resamples")
    src = Path(args.run_file)
    with RunReader(src) as rec:
        argv = json.loads(rec.attrs().get("argv", "[]"))
        status = rec.shown_status
        recorded_backend = rec.backend
        if status != "complete":   # before the transcript check: resuming is the way on
            how = ("it was killed" if status == "killed" else f"it is {status}")
            if status == "running":   # a live run holds its file: nothing to resume yet
                raise DataFormatError(f"{src} is still being written by its run: replay it "
                                      "once that run has ended")
            if not rec.resumable():
                raise DataFormatError(f"{src} is not complete ({how}) and the kill left its "
                                      "checkpoint unreadable, so it can be neither resumed "
                                      "nor replayed; start a new run")
            raise DataFormatError(
                f"{src} is not complete ({how}): `--resume` it to finish the run, then replay "
                f"it" + (" on --backend sim or a station (a resumed run has no single-session "
                         "transcript)" if args.backend == "transcript" else ""))
        check_replayable(src, rec, args.backend, other_preset=args.preset is not None)
        argv, inputs = recorded_inputs(rec, argv)
        args.pace_from = station_pace(src, rec, args)
    if not argv:
        raise DataFormatError(f"{src} does not record the command line it was made with")
    seeds = _realisation_seeds(args, recorded_backend)
    outs = _replay_outputs(src, args.out, args.realisations, argv)
    if len(outs) == 1:
        code = _replay_once(argv, args, outs[0], recorded_backend, inputs, seeds[0])
    else:
        runs = ProgressBar(f"replaying {src.name} with {len(outs)} seeds", delay_s=0.0)
        try:
            code = _replay_side_by_side(argv, args, outs, seeds, recorded_backend, inputs, runs)
        finally:
            runs.close()
    if code != 0:
        return code
    with RunReader(src) as rec, contextlib.ExitStack() as stack:
        recorded = _AnalysedNow(rec)
        reps = [stack.enter_context(RunReader(o)) for o in outs]
        if len(reps) > 1:
            results = compare_realisations(recorded, reps, tolerance=args.tolerance,
                                           alpha=args.alpha)
        else:
            results = compare_runs(recorded, reps[0], tolerance=args.tolerance,
                                   alpha=args.alpha, resample=_resampler(args.resamples))
    if recorded.changed:
        n = len(recorded.changed)
        print(f"{src}: re-analysed from its data, {n} of the summary values stored when it "
              f"was recorded (labctl {recorded.version or '?'}) "
              f"{'differs' if n == 1 else 'differ'}: {', '.join(recorded.changed[:4])}"
              f"{' ...' if n > 4 else ''}; the analysis has changed since, and the "
              f"comparison uses the re-analysed values")
    consistent = all(r.passed for r in results)
    _print_table(results, consistent, outs)
    if args.json:
        print(json.dumps(jsonable({"run_file": str(outs[0]), "status": "complete",
                                   "run_files": [str(o) for o in outs],
                                   "consistent": consistent,
                                   "metrics": {r.name: r.as_dict() for r in results}})))
    return 0 if consistent else 1


def _replay_outputs(src: Path, out_arg: str | None, n: int, argv: list[str]) -> list[Path]:
    """The replayed run files: ``--out`` (or a free RUN-replay name), then OUT-2 ... OUT-n
    beside it; each must be new, and so must the preset a symmetry-point replay writes."""
    from labctl.data.runfile import check_writable

    outs = [check_writable(o, resumable=False) for o in _numbered(Path(out_arg) if out_arg
                                                 else _free_replay_name(src, n), n)]
    for out in outs:
        if out.resolve() == src.resolve():
            raise ConfigError("--out must differ from the recorded run file", key="out")
        preset = preset_beside(out)
        if "symmetry-point" in argv and preset.exists():
            raise ConfigError(f"--out {out}: the preset a symmetry-point replay writes beside "
                              f"it, {preset}, already exists; choose another --out", key="out")
    return outs


def _realisation_seeds(args: argparse.Namespace, recorded: dict[str, Any]) -> list[int | None]:
    """One seed per replay: ``--seed`` (or None: the recorded one) for a single replay; for N
    realisations N seeds from ``--seed``, or from the recorded seed + 1 (never the recorded
    seed itself, whose replay would be the recording)."""
    n = args.realisations
    if n == 1:
        return [args.seed]
    if args.backend != "sim":
        raise ConfigError("--realisations needs the simulator (--backend sim): a station "
                          "measures its one die again, and a transcript replays one recording",
                          key="realisations")
    base = args.seed if args.seed is not None else int(recorded.get("seed") or 0) + 1
    return [base + k for k in range(n)]


def _command(argv: list[str], args: argparse.Namespace, out: Path,
             recorded_backend: dict[str, Any], seed_: int | None,
             paths: dict[str, str]) -> list[str]:
    """The command line that replays the recording into ``out`` with ``seed_``."""
    new_argv = replay_argv(argv, argparse.Namespace(**{**vars(args), "seed": seed_}), out,
                           recorded_backend)
    return [paths.get(a, a) for a in new_argv] + (["--json"] if args.json else [])


def _saved_inputs(tmp: str, inputs: dict[str, Any]) -> dict[str, str]:
    """The recording's copies of its input files, saved in ``tmp``: placeholder -> path."""
    import numpy as np

    paths = {}
    for fname, values in inputs.items():
        np.save(Path(tmp) / fname, values)
        paths["{" + fname + "}"] = str(Path(tmp) / fname)
    return paths


def _failed(code: int, stdout: str, args: argparse.Namespace) -> int:
    """A replayed command failed and said why on stderr; with --json its status line (the
    last line of its stdout) is this command's too."""
    lines = stdout.strip().splitlines()
    if args.json and lines:
        print(lines[-1], flush=True)
    return code


def _replay_once(argv: list[str], args: argparse.Namespace, out: Path,
                 recorded_backend: dict[str, Any], inputs: dict[str, Any],
                 seed_: int | None) -> int:
    """Re-execute the recorded command into ``out``, in this process (its stdout kept, its
    progress bar shown: a large run's replay takes minutes)."""
    from labctl.cli import main

    buf = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="labctl-replay-") as tmp, \
            contextlib.redirect_stdout(buf):
        cmd = _command(argv, args, out, recorded_backend, seed_, _saved_inputs(tmp, inputs))
        code = main([t for t in cmd if t != "--quiet"])
    return code if code == 0 else _failed(code, buf.getvalue(), args)


def _replay_side_by_side(argv: list[str], args: argparse.Namespace, outs: list[Path],
                         seeds: list[int | None], recorded_backend: dict[str, Any],
                         inputs: dict[str, Any], progress: Any) -> int:
    """The realisations' replays, each a labctl process of its own, as many at a time as
    this process may use CPUs (each runs single-threaded).  The first that fails stops the
    others (their files are marked aborted) and its error is this command's; so does
    Ctrl-C or SIGTERM here."""
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from labctl.protocols.resample import usable_cpus

    procs: list[subprocess.Popen[str]] = []
    lock, stopping = threading.Lock(), threading.Event()

    def run(cmd: list[str]) -> tuple[int, str, str] | None:
        with lock:
            if stopping.is_set():
                return None
            p = subprocess.Popen([sys.executable, "-m", "labctl.cli", *cmd],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(p)
        stdout, stderr = p.communicate()
        return p.returncode, stdout, stderr

    def stop() -> None:
        with lock:
            stopping.set()
            for p in procs:
                if p.poll() is None:
                    p.terminate()   # SIGTERM: the run marks its file aborted and exits

    workers = min(usable_cpus(), len(outs))
    progress(0, len(outs), f"{workers} at a time")
    try:
        with tempfile.TemporaryDirectory(prefix="labctl-replay-") as tmp, \
                ThreadPoolExecutor(workers) as pool:
            paths = _saved_inputs(tmp, inputs)
            futures = [pool.submit(run, _command(argv, args, out, recorded_backend, seed_,
                                                 paths))
                       for out, seed_ in zip(outs, seeds, strict=True)]
            done = 0
            try:
                for future in as_completed(futures):
                    result = future.result()
                    if result is None:
                        continue
                    code, stdout, stderr = result
                    sys.stderr.write(stderr)   # its warnings, or the line saying why it failed
                    if code != 0:
                        stop()
                        return _failed(code, stdout, args)
                    done += 1
                    progress(done, len(outs), f"{done} of {len(outs)} seeds")
            except BaseException:
                stop()
                raise
    except KeyboardInterrupt:   # the others have stopped: say which file each left
        _finished_by_others(outs)
        raise
    return 0


def _finished_by_others(outs: list[Path]) -> None:
    """Note the replayed files other processes finished (complete or aborted) as this
    process's own, for the line an interrupted command closes with."""
    from labctl.data import runfile

    for out in outs:
        try:
            with runfile.RunReader(out) as r:
                status = r.status
        except Exception:  # noqa: BLE001 - not written, or not readable: nothing to name
            continue
        if status in ("complete", "aborted"):
            runfile.FINISHED.append((out, status))


class _AnalysedNow:
    """A recorded run whose summary is re-computed from its data by this labctl's analysis
    (where the command has one, :func:`labctl.protocols.resample.analysed_now`); the
    replay's analysis is this version's, and so must the recording's be."""

    def __init__(self, run: Any) -> None:
        from labctl.data.compare import flatten
        from labctl.protocols.resample import analysed_now

        self._run = run
        stored = run.summary
        try:
            now = analysed_now(run.command, run)
        except (KeyError, ValueError, IndexError) as e:   # a file this analysis cannot read
            print(f"{run.path}: its data cannot be re-analysed by this version ({e}); "
                  f"compared as its stored summary")
            now = None
        self.summary = stored if now is None else {**stored, **now}
        self.version = str(run.attrs().get("labctl_version", ""))
        old, new = flatten(stored), flatten(self.summary)
        self.changed = [k for k in new if k in old and not _same(old[k], new[k])]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def __contains__(self, name: str) -> bool:
        return name in self._run


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    try:
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                rtol=1e-9, atol=0.0, equal_nan=True))
    except (TypeError, ValueError):
        return bool(a == b)


def _resampler(replicates: int) -> Any:
    """run -> its analysis on ``replicates`` draws of its devices, with a progress bar."""
    from labctl.commands.progress import ProgressBar
    from labctl.protocols.resample import bootstrap_summaries

    def resample(run: Any) -> list[dict[str, Any]]:
        bar = ProgressBar(f"resampling the devices of {Path(run.path).name}")
        try:
            return bootstrap_summaries(run.command, run, replicates,
                                       progress=lambda k, n: bar(k, n, "draws"))
        finally:
            bar.close()

    return resample


def _free_replay_name(src: Path, realisations: int = 1) -> Path:
    """RUN-replay.h5, or RUN-replay-2.h5, -3 ... when an earlier replay took the name (or
    left the preset a symmetry-point replay writes beside its file); with N realisations,
    the first name whose N files (OUT, OUT-2 ... OUT-N) are all free."""
    for k in range(1, 10_000):
        out = src.with_name(f"{src.stem}-replay{'' if k == 1 else f'-{k}'}.h5")
        if all(not o.exists() and not preset_beside(o).exists()
               for o in _numbered(out, realisations)):
            return out
    raise ConfigError(f"no free replay name beside {src}; give --out", key="out")


def _numbered(first: Path, n: int) -> list[Path]:
    """OUT, OUT-2 ... OUT-n: the files of n realisations."""
    return [first] + [first.with_name(f"{first.stem}-{k}{first.suffix}") for k in range(2, n + 1)]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict) and "mean" in v:
        return f"n={v['n']} mean={v['mean']:.4g}"
    return str(v)[:28]


#: unit suffixes of metric and dataset names (SI, as the names are written: ``g_S``)
_UNIT_SUFFIXES = ("S", "V", "A", "s", "ohm", "J", "W", "Hz", "F", "m")


def unit_of(name: str) -> str:
    """The unit a metric's name carries (``sigma_fit_S.intercept_S`` -> ``S``), else ''."""
    last = name.replace(":", "/").replace(".", "/").rsplit("/", 1)[-1]
    stem, sep, suffix = last.rpartition("_")
    return suffix if sep and stem and suffix in _UNIT_SUFFIXES else ""


def _print_table(results: list[Any], consistent: bool, outs: list[Path]) -> None:
    from labctl.data.compare import NOT_JUDGED

    print(f"{'metric':<40} {'unit':<4} {'recorded':>24} {'replayed':>24} {'stat':>9} "
          f"{'p':>8}  pass")
    for r in results:
        verdict = "-" if r.kind in NOT_JUDGED else "yes" if r.passed else "NO"
        p = "" if r.p_holm is None else f"{r.p_holm:8.2g}"
        print(f"{r.name[:40]:<40} {unit_of(r.name):<4} {_fmt(r.recorded):>24} "
              f"{_fmt(r.replayed):>24} {r.statistic:9.3g} {p:>8}  {verdict}")
    moved = [r.name for r in results if not r.passed]
    shown = sum(r.kind in NOT_JUDGED for r in results)
    where = (f"run in {outs[0]}" if len(outs) == 1
             else f"runs {outs[0]} ... {outs[-1].name} ({len(outs)} seeds)")
    print(f"replay {'CONSISTENT' if consistent else 'INCONSISTENT'} ({len(results) - shown} "
          f"metrics judged, their tests at a family-wise alpha; "
          + (f"{shown} shown only: timings, extremes, spreads and fit intercepts, which differ "
             f"between realisations, and metrics the recording predates; " if shown else "")
          + f"replayed {where})"
          + ("" if consistent else f"; moved: {', '.join(moved[:12])}"))
