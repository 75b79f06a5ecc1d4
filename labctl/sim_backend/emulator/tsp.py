"""Base of the TSP emulators: a sandboxed Lua runtime (lupa) with the instrument's objects.

TSP is Lua, so the emulator runs real Lua: ``print``, assignments, functions,
``loadscript``/``endscript``, ``loadandrunscript`` and whole program-verify loops work
without special cases (reference/instruments.md section 7.4).  The instrument's objects
(``smua``, ``channel``, ``errorqueue``...) are Python objects exposed to Lua; unknown
fields raise, as on the instrument.  The sandbox has no ``io``/``os``/``load``/``python``
and a per-message instruction budget.  Errors go to the queue in the 2600 format:
``errorqueue.next()`` -> code, message, severity, node; -285 for syntax errors, -286 for
runtime errors [mem: 2600B error list].
"""

from __future__ import annotations

import re
import types
from typing import Any

import lupa.lua54 as lua

from labctl.sim_backend.emulator.base import EmulatorError, InstrumentEmulator

SYNTAX_ERROR = -285
RUNTIME_ERROR = -286
#: Lua VM instructions one message may run before it is aborted (runaway loops)
INSTRUCTION_BUDGET = 20_000_000

_SCRIPT_RE = re.compile(r"^(loadscript|loadandrunscript)(?:\s+([A-Za-z_]\w*))?\s*$")
_SANDBOX_REMOVE = ("io", "os", "require", "dofile", "loadfile", "load", "package", "debug",
                   "python", "collectgarbage", "rawset", "rawget", "setmetatable",
                   "getmetatable")


class TspNode:
    """An instrument object seen from Lua: assigning an unknown field is an error."""

    _sealed = False

    def __getattribute__(self, name: str) -> Any:
        # Lua reaches methods as bound-method objects; made anew on every access, thousands
        # of them per second are created and freed, and lupa 2.8 (Lua 5.4) then now and
        # again resolved a field to another, reused object ('function' object has no
        # attribute 'clear' after ~1,000 verify loops).  One bound method per name and node,
        # kept for the node's life, never frees an object Lua may still refer to.
        value = object.__getattribute__(self, name)
        if type(value) is types.MethodType and not name.startswith("__"):
            cache = object.__getattribute__(self, "__dict__").setdefault("_bound", {})
            return cache.setdefault(name, value)
        return value

    def _seal(self) -> None:
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._sealed and not hasattr(self, name):
            raise EmulatorError(RUNTIME_ERROR, f"TSP Runtime error: unknown field '{name}'")
        object.__setattr__(self, name, value)


def tsp_number(value: float, precision: int = 6) -> str:
    """A number as TSP ``print`` shows it by default: ``4.00000e+00``."""
    return f"{float(value):.{precision - 1}e}"


class ErrorQueueNode(TspNode):
    """``errorqueue``: count, next(), clear()."""

    def __init__(self, emulator: InstrumentEmulator) -> None:
        self._emulator = emulator
        self._seal()

    @property
    def count(self) -> int:
        return len(self._emulator.error_queue)

    def next(self) -> tuple[int, str, int, int]:
        entry = self._emulator.pop_error()
        if entry is None:
            return 0, "Queue Is Empty", 0, 1
        return entry[0], entry[1], 2, 1

    def clear(self) -> None:
        self._emulator.error_queue.clear()


class ScriptNode(TspNode):
    """A stored script: ``name()`` or ``name.run()`` runs its chunk."""

    def __init__(self, runtime: Any, name: str, source: str) -> None:
        self._chunk = runtime.compile(source)
        self.name = name
        self.source = source
        self._seal()

    def run(self) -> None:
        self._chunk()

    def __call__(self) -> None:
        self._chunk()


class TspEmulator(InstrumentEmulator):
    """Executes each received line as a TSP chunk in the instrument's Lua runtime."""

    manufacturer = "Keithley Instruments Inc."
    firmware = "3.3.5"
    precision = 6

    def __init__(self, instrument_id: str, bench: Any, *, serial: str = "EMU0001") -> None:
        super().__init__(instrument_id, bench, serial=serial)
        self.runtime = lua.LuaRuntime(unpack_returned_tuples=True, register_eval=False,
                                      register_builtins=False,
                                      attribute_filter=self._attribute_filter)
        g = self.runtime.globals()
        self._sethook = g.debug.sethook
        self._budget_hook = self.runtime.eval(
            "function() error('instruction budget exceeded') end")
        for name in _SANDBOX_REMOVE:
            g[name] = None
        self._out: list[str] = []
        self._compiled: dict[str, Any] = {}
        self._script: list[str] | None = None
        self._script_name: str | None = None
        self._script_run = False
        g.print = self._print
        g.printbuffer = self._printbuffer
        g.delay = self._delay
        g.waitcomplete = lambda *a: None
        g.errorqueue = ErrorQueueNode(self)
        g.reset = self.reset
        g.script = self._script_namespace()
        self.define(g)
        self.reset()

    # -- for subclasses ----------------------------------------------------------------
    def define(self, g: Any) -> None:
        """Install the instrument's objects into the Lua globals ``g``."""

    def reset(self) -> None:
        """``reset()`` / ``*RST``."""

    def idn(self) -> str:
        return f"{self.manufacturer}, Model {self.model}, {self.serial}, {self.firmware}"

    # -- message handling --------------------------------------------------------------
    def handle(self, message: str) -> list[str]:
        self._out = []
        line = message.strip()
        if self._script is not None:
            if line == "endscript":
                self._finish_script()
            else:
                self._script.append(message)
            return self._out
        m = _SCRIPT_RE.match(line)
        if m:
            self._script, self._script_name = [], m.group(2)
            self._script_run = m.group(1) == "loadandrunscript"
        elif line.startswith("*"):
            self._common(line)
        elif line:
            self._run_chunk(line)
        return self._out

    def _common(self, line: str) -> None:
        word = line.upper()
        if word == "*IDN?":
            self._out.append(self.idn())
        elif word == "*OPC?":
            self._out.append("1")
        elif word == "*RST":
            self.reset()
        elif word == "*CLS":
            self.error_queue.clear()
        elif word not in ("*WAI", "*OPC", "*TRG"):
            self.push_error(-113, "Undefined header")

    def _run_chunk(self, source: str) -> None:
        chunk = self._compiled.get(source)
        if chunk is None:
            try:
                chunk = self.runtime.compile(source)
            except lua.LuaSyntaxError as exc:
                self.push_error(SYNTAX_ERROR, f"Program syntax error: {_lua_message(exc)}")
                return
            if len(self._compiled) >= 512:  # repeated messages (reads, switches) compile once
                self._compiled.clear()
            self._compiled[source] = chunk
        self._call(chunk)

    def _call(self, function: Any) -> None:
        self._sethook(self._budget_hook, "", INSTRUCTION_BUDGET)
        try:
            function()
        except EmulatorError as exc:
            self.push_error(exc.code, exc.text)
        except lua.LuaError as exc:
            self.push_error(RUNTIME_ERROR, f"TSP Runtime error: {_lua_message(exc)}")
        except Exception as exc:  # noqa: BLE001 -- any Python error is a runtime error in Lua
            self.push_error(RUNTIME_ERROR, f"TSP Runtime error: {exc}")
        finally:
            self._sethook()

    def _finish_script(self) -> None:
        source = "\n".join(self._script or [])
        name, run = self._script_name, self._script_run
        self._script, self._script_name = None, None
        try:
            node = ScriptNode(self.runtime, name or "anonymous", source)
        except lua.LuaSyntaxError as exc:
            self.push_error(SYNTAX_ERROR, f"Program syntax error: {_lua_message(exc)}")
            return
        if name:
            self.runtime.globals()[name] = node
        self._anonymous = node if not name else getattr(self, "_anonymous", None)
        if run:
            self._call(node.run)

    def _script_namespace(self) -> Any:
        emulator = self

        class ScriptNamespace(TspNode):
            def run(self) -> None:
                anonymous = getattr(emulator, "_anonymous", None)
                if anonymous is not None:
                    anonymous.run()

        return ScriptNamespace()

    # -- built-in functions ------------------------------------------------------------
    def _format(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "nil"
        if isinstance(value, int | float):
            return tsp_number(value, self.precision)
        return str(value)

    def _print(self, *values: Any) -> None:
        self._out.append("\t".join(self._format(v) for v in values))

    def _printbuffer(self, start: float, stop: float, *buffers: Any) -> None:
        columns = [_values(b) for b in buffers]
        first, last = int(start), int(stop)
        if first < 1 or any(last > len(c) for c in columns):
            raise EmulatorError(-222, "Data out of range")
        fields = [self._format(c[k]) for k in range(first - 1, last) for c in columns]
        self._out.append(", ".join(fields))

    def _delay(self, seconds: float) -> None:
        if not 0 <= float(seconds) <= 1e5:
            raise EmulatorError(-222, "Data out of range")
        self.bench.wait(float(seconds))

    @staticmethod
    def _attribute_filter(obj: Any, name: Any, is_setting: bool) -> Any:
        if isinstance(name, str) and name.startswith("_"):
            raise AttributeError(f"no field '{name}'")
        return name


def _values(buffer: Any) -> list[float]:
    """A buffer column from Lua: a Lua table (1-based) or a Python sequence."""
    if hasattr(buffer, "values") and callable(buffer.values):
        return [float(x) for x in buffer.values()]
    return [float(x) for x in buffer]


def _lua_message(exc: Exception) -> str:
    return str(exc).replace('[string "<python>"]', "").strip()
