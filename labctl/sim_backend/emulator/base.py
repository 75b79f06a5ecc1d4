"""Base of every instrument emulator: identity, error queue, lock, event log.

An emulator turns one received message (a line, terminations stripped) into the lines it
answers, and acts on the chip only through its :class:`~.bench_api.Bench`.  Servers call
:meth:`InstrumentEmulator.process`, which holds the emulator's lock, so several
connections (e.g. the safety path reconnecting) see one consistent instrument.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from labctl.sim_backend.emulator.bench_api import Bench

#: error-queue depth before the overflow entry replaces the newest [mem: 2450/33500 queues]
QUEUE_DEPTH = 32


class EmulatorError(Exception):
    """An error the instrument would put in its queue: code and text as the real box."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class InstrumentEmulator(ABC):
    """One emulated instrument."""

    #: model number shown in ``*IDN?``
    model = ""

    def __init__(self, instrument_id: str, bench: Bench, *, serial: str = "EMU0001") -> None:
        self.instrument_id = instrument_id
        self.bench = bench
        self.serial = serial
        self.lock = threading.RLock()
        self.error_queue: deque[tuple[int, str]] = deque()
        #: (monotonic time, text) of notable events -- pulses, switches -- the latest 10 000
        self.events: deque[tuple[float, str]] = deque(maxlen=10_000)
        self.messages = 0

    @abstractmethod
    def handle(self, message: str) -> list[str]:
        """Lines to send back for ``message`` (empty for a command without a query)."""

    @abstractmethod
    def is_safe(self) -> bool:
        """True when this instrument cannot drive the chip: outputs off / all relays open."""

    def process(self, message: str) -> list[str]:
        with self.lock:
            self.messages += 1
            return self.handle(message)

    def push_error(self, code: int, text: str) -> None:
        with self.lock:
            if len(self.error_queue) >= QUEUE_DEPTH:
                self.error_queue.pop()
                self.error_queue.append((-350, "Queue overflow"))
                return
            self.error_queue.append((int(code), str(text)))

    def pop_error(self) -> tuple[int, str] | None:
        with self.lock:
            return self.error_queue.popleft() if self.error_queue else None

    def external_trigger(self, channel: int = 1) -> None:
        """A pulse on the rear Trig In (generators fire if armed on EXT); default: ignored."""
        return None

    def note(self, text: str) -> None:
        self.events.append((time.monotonic(), text))

    def snapshot(self) -> dict[str, Any]:
        """Public state for tests and the bench (override to add more)."""
        return {"model": self.model, "safe": self.is_safe(), "errors": list(self.error_queue)}
