"""A SCPI parser for the emulators: the header rules real instruments apply.

Patterns are written as in the manuals: ``[:SOURce#]:VOLTage[:LEVel]:HIGH`` -- upper
case is the short form, ``[...]`` an optional node, ``#`` a numeric suffix (default 1).
A header matches in short or long form, any case.  Messages are split on ``;`` (not
inside quotes or parentheses); a header without a leading ``:`` continues in the path
of the previous header (SCPI-99 7.6).  Unknown headers queue -113 and discard the rest
of the message (no answer: the client's query times out, as on a real box); execution
errors (-2xx) queue and carry on.  Answers of one message are joined with ``;``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labctl.sim_backend.emulator.base import EmulatorError, InstrumentEmulator

Handler = Callable[[list[str], list[int]], Any]

UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_VALUE = (-224, "Illegal parameter value")
MISSING_PARAMETER = (-109, "Missing parameter")
DATA_TYPE = (-104, "Data type error")
SETTINGS_CONFLICT = (-221, "Settings conflict")

_NODE_RE = re.compile(r"\[:([A-Za-z]+)(#?)\]|:?([A-Za-z]+)(#?)")
_TOKEN_RE = re.compile(r"^([A-Za-z]+)(\d*)$")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool


def compile_pattern(pattern: str) -> tuple[_Node, ...]:
    nodes = []
    for m in _NODE_RE.finditer(pattern):
        name = m.group(1) or m.group(3)
        short = "".join(c for c in name if c.isupper() or c.isdigit()) or name.upper()
        nodes.append(_Node(short, name.upper(), m.group(1) is not None,
                           bool(m.group(2) or m.group(4))))
    return tuple(nodes)


def _match(nodes: tuple[_Node, ...], tokens: list[tuple[str, str]], i: int = 0,
           j: int = 0) -> list[int] | None:
    """Suffixes (one per suffix node, default 1) if ``tokens`` match ``nodes``, else None."""
    if i == len(nodes):
        return [] if j == len(tokens) else None
    node = nodes[i]
    if j < len(tokens):
        name, digits = tokens[j]
        if name in (node.short, node.long) and (node.suffix or not digits):
            rest = _match(nodes, tokens, i + 1, j + 1)
            if rest is not None:
                return ([int(digits) if digits else 1] if node.suffix else []) + rest
    if node.optional:
        rest = _match(nodes, tokens, i + 1, j)
        if rest is not None:
            return ([1] if node.suffix else []) + rest
    return None


def split_outside(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and parentheses."""
    parts: list[str] = []
    current: list[str] = []
    quote, depth = "", 0
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


# -- argument helpers --------------------------------------------------------------------
def arg(args: list[str], index: int) -> str:
    if index >= len(args) or not args[index].strip():
        raise EmulatorError(*MISSING_PARAMETER)
    return args[index].strip()


def number(text: str, low: float, high: float, *, default: float | None = None) -> float:
    """A numeric parameter with MIN/MAX/DEF/INF keywords; outside [low, high] -> -222."""
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    if word in ("DEF", "DEFAULT") and default is not None:
        return default
    try:
        value = float("inf") if word in ("INF", "INFINITY") else float(word)
    except ValueError:
        raise EmulatorError(*DATA_TYPE) from None
    if not low <= value <= high:
        raise EmulatorError(*DATA_OUT_OF_RANGE)
    return value


def boolean(text: str) -> bool:
    word = text.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise EmulatorError(*ILLEGAL_VALUE)


def keyword(text: str, options: tuple[str, ...]) -> str:
    """Match a SCPI keyword (short or long form, any case); return its short form."""
    word = text.strip().strip("\"'").upper()
    for option in options:
        short = "".join(c for c in option if c.isupper() or c.isdigit())
        if word in (short, option.upper()):
            return short
    raise EmulatorError(*ILLEGAL_VALUE)


def unquote(text: str) -> str:
    return text.strip().strip("\"'")


def channel_list(text: str) -> list[str]:
    """``(@1,2)`` -> ["1", "2"]."""
    m = re.fullmatch(r"\(@([^)]*)\)", text.strip())
    if m is None:
        raise EmulatorError(*DATA_TYPE)
    return [s.strip() for s in m.group(1).split(",") if s.strip()]


def nr3(value: float, digits: int = 6) -> str:
    """An NR3 number as Keysight/Keithley boxes answer it: ``+1.234560E-06``."""
    return f"{value:+.{digits}E}"


class ScpiEmulator(InstrumentEmulator):
    """Base of the SCPI emulators: header matching, error queue, common commands."""

    #: manufacturer field of ``*IDN?``
    manufacturer = "Keysight Technologies"
    firmware = "1.0.0-emulated"
    #: text of the empty error queue (with its code, as the instrument prints it)
    no_error = '+0,"No error"'

    def __init__(self, instrument_id: str, bench: Any, *, serial: str = "EMU0001") -> None:
        super().__init__(instrument_id, bench, serial=serial)
        self._commands: list[tuple[tuple[_Node, ...], bool, Handler]] = []
        self._cache: dict[tuple[str, bool], tuple[Handler, list[int]] | None] = {}
        self.common: dict[str, Handler] = {
            "*IDN?": lambda a, s: self.idn(), "*OPC?": lambda a, s: "1",
            "*OPC": lambda a, s: None, "*WAI": lambda a, s: None,
            "*CLS": lambda a, s: self.error_queue.clear(), "*RST": lambda a, s: self.reset(),
            "*TRG": lambda a, s: self.bus_trigger(), "*ESR?": lambda a, s: "0",
            "*STB?": lambda a, s: "0",
        }
        self.command(":SYSTem:ERRor[:NEXT]", query=lambda a, s: self.next_error())
        self.command(":SYSTem:ERRor:COUNt", query=lambda a, s: str(len(self.error_queue)))
        self.command(":SYSTem:ERRor:ALL", query=lambda a, s: self.all_errors())
        self.define()
        self.reset()

    # -- for subclasses ------------------------------------------------------------------
    def define(self) -> None:
        """Register the instrument's commands with :meth:`command`."""

    def reset(self) -> None:
        """``*RST``: the power-on state."""

    def bus_trigger(self) -> None:
        """``*TRG``."""

    def settled(self) -> None:
        """Called after each command of a message, whether it succeeded or not: the state
        between two commands is what the instrument's output shows meanwhile."""

    def idn(self) -> str:
        return f"{self.manufacturer},{self.model},{self.serial},{self.firmware}"

    def command(self, pattern: str, set: Handler | None = None,  # noqa: A002 -- SCPI wording
                query: Handler | None = None) -> None:
        nodes = compile_pattern(pattern)
        if set is not None:
            self._commands.append((nodes, False, set))
        if query is not None:
            self._commands.append((nodes, True, query))

    def format_error(self, code: int, text: str) -> str:
        return f'{code:+d},"{text}"' if self.no_error.startswith("+") else f'{code},"{text}"'

    def next_error(self) -> str:
        entry = self.pop_error()
        return self.no_error if entry is None else self.format_error(*entry)

    def all_errors(self) -> str:
        out = []
        while (entry := self.pop_error()) is not None:
            out.append(self.format_error(*entry))
        return ",".join(out) or self.no_error

    # -- parsing -------------------------------------------------------------------------
    def handle(self, message: str) -> list[str]:
        answers: list[str] = []
        path: list[str] = []
        for unit in split_outside(message, ";"):
            unit = unit.strip()
            if not unit:
                continue
            header, _, rest = unit.partition(" ") if " " in unit else unit.partition("\t")
            args = split_outside(rest, ",") if rest.strip() else []
            try:
                answer, path = self._execute(header, args, path)
            except EmulatorError as exc:
                self.push_error(exc.code, exc.text)
                if -199 <= exc.code <= -100:
                    break
                continue
            finally:
                self.settled()
            if answer is not None:
                answers.append(str(answer))
        return [";".join(answers)] if answers else []

    def _execute(self, header: str, args: list[str], path: list[str]) -> tuple[Any, list[str]]:
        is_query = header.endswith("?")
        if header.startswith("*"):
            handler = self.common.get(header.upper())
            if handler is None:
                raise EmulatorError(*UNDEFINED_HEADER)
            answer = handler(args, [])
            return (answer if is_query else None), path
        name = header.rstrip("?")
        tokens = name[1:].split(":") if name.startswith(":") else [*path, *name.split(":")]
        found = self._lookup(tokens, is_query)
        if found is None:
            raise EmulatorError(*UNDEFINED_HEADER)
        handler, suffixes = found
        answer = handler(args, suffixes)
        return (answer if is_query else None), tokens[:-1]

    def _lookup(self, tokens: list[str], is_query: bool) -> tuple[Handler, list[int]] | None:
        key = (":".join(tokens).upper(), is_query)
        if key not in self._cache:
            parsed = []
            for token in tokens:
                m = _TOKEN_RE.match(token.strip())
                if m is None:
                    self._cache[key] = None
                    return None
                parsed.append((m.group(1).upper(), m.group(2)))
            self._cache[key] = None
            for nodes, query, handler in self._commands:
                if query == is_query and (suffixes := _match(nodes, parsed)) is not None:
                    self._cache[key] = (handler, suffixes)
                    break
        return self._cache[key]
