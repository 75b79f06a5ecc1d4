"""Holding Ctrl-C and SIGTERM while a record is written, so a run file never keeps half of one.

Python raises KeyboardInterrupt for SIGINT, and the CLI does the same for SIGTERM
(``labctl.cli``), wherever the main thread happens to be -- between two datasets of one
step's record, say.  Inside :func:`interrupts_deferred` both signals are only noted; when
the block ends the previous handlers are back and the first signal noted is raised again,
so it interrupts right after the block (KeyboardInterrupt, or whatever its handler does).
Keep such blocks short: they hold the user's Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_depth = 0   # blocks open in the main thread; only the outermost swaps the handlers


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then raise the first one received.

    A no-op outside the main thread (signals are handled only there) and inside another
    such block (the outer one holds them)."""
    global _depth
    if _depth or threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    previous: dict[int, object] = {}
    _depth += 1
    try:
        for sig in DEFERRED_SIGNALS:
            if signal.getsignal(sig) is not None:   # None: a handler not set from Python
                previous[sig] = signal.signal(sig, note)
        yield
    finally:
        _depth -= 1
        _restore(list(previous.items()))
        if noted:
            signal.raise_signal(noted[0])


def _restore(handlers: list[tuple[int, object]]) -> None:
    """Put every handler back, even if a signal arriving meanwhile raises from one of them."""
    if not handlers:
        return
    (sig, handler), rest = handlers[0], handlers[1:]
    try:
        signal.signal(sig, handler)  # type: ignore[arg-type]
    finally:
        _restore(rest)
