"""The command line of ``--resume RUN.h5``: what was not typed again comes from the run file.

A run carries on only with the command and options that started it (the run's config and
chip are checked against the file before anything opens).  So that an overnight run is
resumed with ``labctl run forming --resume RUN.h5`` rather than by retyping it, the options
not given with ``--resume`` are taken from the command line the run file recorded (its
``argv``); options that are given replace the recorded ones (and are refused, as before, if
they change the run).  Never taken from the file: the options of one session (``--out``,
``--json``, ``--quiet``, ``--blas-threads``, ``-v``) and ``--backend``: a station run drives
hardware only when this command names the station again.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

#: option destinations that belong to one session, or that must be typed again (--backend)
NOT_INHERITED = frozenset({"out", "resume", "json", "quiet", "blas_threads", "backend"})
#: options that replace others (``program``'s ``--targets`` the ``--levels`` grid): typing
#: one drops the recorded others, so the command judges what was typed, not a mixture
REPLACES = {"targets": frozenset({"levels", "repeats"}),
            "levels": frozenset({"targets"}), "repeats": frozenset({"targets"})}

Item = tuple[argparse.Action | None, list[str]]   # (option, its tokens) or (None, [positional])


def resume_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` completed from the run file it resumes; ``argv`` itself when it resumes
    nothing, or when its recorded command line cannot be used (the command then reports what
    is wrong, as without this completion).  Raises DataFormatError for a file to resume that
    does not exist or is no labctl run file."""
    if not any(t == "--resume" or t.startswith("--resume=") for t in argv):
        return argv
    glob_now, rest_now = _globals(argv)
    sub, path = _command(parser, rest_now)
    acts = sub._option_string_actions
    if "--resume" not in acts:
        return argv
    now = _items(rest_now[len(path):], sub)
    if now is None:
        return argv
    run_file = next((_value(toks) for a, toks in now if a is acts["--resume"]), None)
    recorded = _recorded_argv(run_file) if run_file else None
    if not recorded:
        return argv
    _, rest_rec = _globals(recorded)
    if rest_rec[:len(path)] != path:
        return argv          # another command's run: the command says so
    rec = _items(rest_rec[len(path):], sub)
    if rec is None:
        return argv
    positional_now = [t for a, toks in now if a is None for t in toks]
    if positional_now and positional_now != [t for a, toks in rec if a is None for t in toks]:
        return argv          # other inputs than the run's: the command says what differs
    given = {a for a, _ in now if a is not None}
    replaced = NOT_INHERITED.union(*(REPLACES.get(a.dest, ()) for a in given))
    kept = [t for a, toks in rec
            if a is None or (a not in given and a.dest not in replaced) for t in toks]
    typed = [t for a, toks in now if a is not None for t in toks]
    return [*glob_now, *path, *kept, *typed]


def resume_command(parser: argparse.ArgumentParser, argv: list[str], run_file: object) -> str:
    """``labctl COMMAND --resume RUN.h5``, the command that carries on ``run_file`` that
    ``argv`` was writing; '' when that command cannot resume."""
    sub, path = _command(parser, _globals(argv)[1])
    if "--resume" not in sub._option_string_actions:
        return ""
    # --backend is never taken from the file (a station is driven only when named again)
    backend = next((t.split("=", 1)[1] if "=" in t else argv[k + 1]
                    for k, t in enumerate(argv) if (t == "--backend" and k + 1 < len(argv))
                    or t.startswith("--backend=")), "sim")
    again = ["--backend", backend] if backend != "sim" else []
    return " ".join(["labctl", *path, "--resume", str(run_file), *again])


def _globals(argv: list[str]) -> tuple[list[str], list[str]]:
    """Leading options of ``labctl`` itself (``-v``) and the rest."""
    k = 0
    while k < len(argv) and argv[k].startswith("-"):
        k += 1
    return argv[:k], argv[k:]


def _command(parser: argparse.ArgumentParser, rest: list[str]) -> tuple[argparse.ArgumentParser,
                                                                         list[str]]:
    """The sub-command parser that ``rest`` names (``run forming``) and its words."""
    p, path = parser, []
    for word in rest:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        p = subs[0].choices[word]
        path.append(word)
    return p, path


def _items(tokens: list[str], p: argparse.ArgumentParser) -> list[Item] | None:
    """``tokens`` as options with their values and positionals; None when one cannot be
    read without guessing (an unknown or ambiguous option, a variable number of values)."""
    acts = p._option_string_actions
    out: list[Item] = []
    k = 0
    while k < len(tokens):
        tok = tokens[k]
        if not tok.startswith("-") or tok == "-" or p._negative_number_matcher.match(tok):
            out.append((None, [tok]))
            k += 1
            continue
        key = tok.split("=", 1)[0]
        action = acts.get(key) or _abbreviated(acts, key)
        if action is None:
            return None
        n = 0 if "=" in tok else _arity(action)
        if n is None or k + 1 + n > len(tokens):
            return None
        out.append((action, tokens[k:k + 1 + n]))
        k += 1 + n
    return out


def _abbreviated(acts: dict[str, argparse.Action], key: str) -> argparse.Action | None:
    """argparse's unique-prefix abbreviation of a long option (``--epoch`` for --epochs)."""
    if not key.startswith("--"):
        return None
    hits = {a for s, a in acts.items() if s.startswith(key)}
    return hits.pop() if len(hits) == 1 else None


def _arity(action: argparse.Action) -> int | None:
    """Values an option takes; None for a variable number."""
    if action.nargs is None:
        return 1
    if isinstance(action.nargs, int):
        return action.nargs
    return None


def _value(tokens: list[str]) -> str:
    return tokens[0].split("=", 1)[1] if "=" in tokens[0] else tokens[1]


def _recorded_argv(run_file: str) -> list[str] | None:
    """The command line that started ``run_file``; None if it has none or cannot be read.

    A missing file, or one that is no labctl run file, is refused here (DataFormatError), in
    the words the resume itself would use, before the rest of the command line is judged.
    """
    from labctl.data.runfile import RunReader
    from labctl.errors import DataFormatError

    try:
        with RunReader(run_file) as rr:
            raw: Any = rr.attrs().get("argv")
    except DataFormatError:
        raise
    except Exception:  # noqa: BLE001 - the resume itself reports what else is wrong
        return None
    try:
        argv = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(argv, list) or not all(isinstance(t, str) for t in argv):
        return None
    return argv
