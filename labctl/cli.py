"""The ``labctl`` command line: parses, picks the backend, runs, prints, exits with a code.

Exit codes: 0 success; 1 a replay found inconsistent results or an unexpected internal
error; 2 bad input (one line on stderr, nothing written that claims to be complete);
3 an instrument fault; 130 interrupted (Ctrl-C / SIGTERM).  Heavy imports happen inside
the commands so that ``labctl --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labctl import __version__
from labctl.errors import InstrumentError, LabctlError
from labctl.resume_line import resume_command, resume_command_line

# Each module in labctl/commands registers one sub-command (or a group) with register().
COMMAND_MODULES = (
    "run", "program", "pipeline", "replay", "report", "watch", "demo", "emulate", "instruments",
)

EXIT_BAD_INPUT = 2
EXIT_INSTRUMENT = 3
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    #: the last usage error, for the --json status line (main prints it)
    last_error: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a value that starts with a minus and a digit ("--times -5s", "--set-V -1.2") is a
        # value, not an unknown option: the option's own check then says what is wrong with
        # it (argparse takes only plain numbers such as -5 or -1.2 as values)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"labctl: {message}\n")
        _Parser.last_error = message
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="labctl", description="Hardware-in-the-loop lab suite for analog "
                     "in-memory-computing chips (1T1R ReRAM, two-FeFET). Every command runs on "
                     "the simulated chip (--backend sim, the default) or on a probe station "
                     "(--backend STATION.toml).")
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-vv: every instrument command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"labctl.commands.{name}") is not None:
            importlib.import_module(f"labctl.commands.{name}").register(sub)
    return parser


class _OneLineFormatter(logging.Formatter):
    """Log records as one line each: the exception's message, not its traceback (unless -vv)."""

    def __init__(self, fmt: str, *, tracebacks: bool) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        exc = record.exc_info[1]
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return f"{super().format(record)} ({exc.__class__.__name__}: {exc})"


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: stop the command (KeyboardInterrupt, "SIGTERM" for the latter);
    further ones are ignored while it stops, so a second signal can neither cut the shutdown
    short nor kill the process by the signal's default action (exit 130, always)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is _interrupt:
            signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt("SIGTERM" if signum == signal.SIGTERM else "")


def _finished_run_files() -> list[tuple[Path, str]]:
    """Run files this process finished, with their status, in order (none before the
    run-file module is imported: it is not imported for that)."""
    runfile = sys.modules.get("labctl.data.runfile")
    return list(getattr(runfile, "FINISHED", []))


def _interrupted_line(before: int, parser: argparse.ArgumentParser, argv: list[str]) -> str:
    """The closing line of an interrupted command (``before``: run files finished before
    it began): the run file it marked aborted, if any, and how to carry it on."""
    note = _aborted_note(before, parser, argv)
    if note:
        return "interrupted; outputs off" + note
    done = [str(p) for p, status in _finished_run_files()[before:] if status == "complete"]
    if done:   # a replay stopped while comparing: its replayed runs are whole
        return (f"interrupted; outputs off; run file{'s' if len(done) > 1 else ''} "
                f"{', '.join(done)} {'are' if len(done) > 1 else 'is'} complete")
    return "interrupted before a run file was written; outputs off"


def _aborted_note(before: int, parser: argparse.ArgumentParser, argv: list[str]) -> str:
    """', run file RUN.h5 marked aborted; `labctl ... --resume RUN.h5` carries it on' for a
    command that stopped after writing a run file ('' when it wrote none)."""
    aborted = [p for p, status in _finished_run_files()[before:] if status == "aborted"]
    if not aborted:
        return ""
    if len(aborted) > 1:   # replays side by side (a replay has no --resume: run it again)
        return f", run files {', '.join(map(str, aborted))} marked aborted"
    again = resume_command(parser, argv, aborted[-1])
    return f", run file {aborted[-1]} marked aborted" + (
        f"; `{again}` carries it on" if again else "")


#: commands that neither drive instruments nor write a run file
READ_ONLY_COMMANDS = frozenset({"report", "watch"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv_list = list(sys.argv[1:] if argv is None else argv)
    # `--resume RUN.h5`: what is not typed again comes from the run's recorded command line
    try:
        argv_list = resume_command_line(parser, argv_list)
    except LabctlError as e:
        return _fail(argparse.Namespace(json="--json" in argv_list), EXIT_BAD_INPUT, str(e))
    _Parser.last_error = None
    try:
        args = parser.parse_args(argv_list)
    except SystemExit as e:
        # a usage error: with --json, scripts read the status from the last stdout line too
        if e.code == EXIT_BAD_INPUT and _Parser.last_error and "--json" in argv_list:
            _fail(argparse.Namespace(json=True), EXIT_BAD_INPUT, _Parser.last_error,
                  stderr=False)
        raise
    args.argv = argv_list
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    resume, out = getattr(args, "resume", None), getattr(args, "out", None)
    if resume and out and os.path.realpath(out) != os.path.realpath(resume):
        return _fail(args, EXIT_BAD_INPUT, f"--out {out} with --resume {resume}: a resumed run "
                     f"carries on in its own file; drop --out")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(levelname)s %(name)s: %(message)s",
                                           tracebacks=args.verbose >= 2))
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), handlers=[handler])
    for noisy in ("h5py", "matplotlib", "PIL"):   # -vv is for labctl's debug lines, not theirs
        logging.getLogger(noisy).setLevel(logging.WARNING)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _interrupt)
    if previous[signal.SIGINT] is signal.default_int_handler:   # not if ignored
        signal.signal(signal.SIGINT, _interrupt)
    before = len(_finished_run_files())
    try:
        return int(args.handler(args) or 0)
    except InstrumentError as e:
        return _fail(args, EXIT_INSTRUMENT, f"instrument fault: {e}"
                     + _aborted_note(before, parser, argv_list))
    except LabctlError as e:
        return _fail(args, EXIT_BAD_INPUT, str(e))
    except KeyboardInterrupt:
        if args.command in READ_ONLY_COMMANDS:
            return _fail(args, EXIT_INTERRUPTED, "interrupted")
        return _fail(args, EXIT_INTERRUPTED, _interrupted_line(before, parser, argv_list))
    except BrokenPipeError:
        return 0
    except OSError as e:
        if e.filename is None or os.environ.get("LABCTL_DEBUG"):
            return _internal_error(args, e)
        # a path the system refused (a missing directory, /proc, a directory for a file)
        return _fail(args, EXIT_BAD_INPUT, f"{e.filename}: {e.strerror or e}")
    except Exception as e:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        return _internal_error(args, e)
    finally:
        # the caller's handlers back (main() called in-process), unless an interrupt was
        # handled: then further signals stay ignored until the process has exited.  As the
        # process's own entry point (no argv) the command is over: a late Ctrl-C is ignored
        # rather than turning a finished run's exit status into death by signal
        for sig, old_handler in previous.items():
            if signal.getsignal(sig) is _interrupt and old_handler is not None:
                signal.signal(sig, signal.SIG_IGN if argv is None else old_handler)


def _fail(args: argparse.Namespace, code: int, message: str, *, stderr: bool = True) -> int:
    """The one stderr line of a failed command; with --json also a summary line on stdout,
    so a script reading the last JSON line learns that the command failed and why.  A
    message that spans lines (a library's text passed on) is folded into that one line."""
    message = " ".join(message.split())
    if stderr:
        sys.stderr.write(f"labctl: {message}\n")
    if getattr(args, "json", False):
        import json

        status = "interrupted" if code == EXIT_INTERRUPTED else "failed"
        print(json.dumps({"status": status, "exit_code": code, "error": message}), flush=True)
    return code


def _internal_error(args: argparse.Namespace, e: Exception) -> int:
    """A bug: one line naming the exception (the traceback with LABCTL_DEBUG=1)."""
    if os.environ.get("LABCTL_DEBUG"):
        raise e
    return _fail(args, 1, f"internal error: {e.__class__.__name__}: {e} "
                          "(set LABCTL_DEBUG=1 for the traceback)")


if __name__ == "__main__":
    raise SystemExit(main())
