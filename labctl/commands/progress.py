"""A progress bar on stderr that appears only for work longer than a second."""

from __future__ import annotations

import sys
import threading
import time


class ProgressBar:
    """Call with (done, total, label); draws after ``delay_s``, at most ``rate_hz`` times a
    second.  Work whose last call comes before ``delay_s`` and that goes on after it (an
    analysis after a quick measurement) is drawn then, from a timer, with that call's label.
    """

    def __init__(self, title: str, *, delay_s: float = 1.0, rate_hz: float = 8.0,
                 enabled: bool = True) -> None:
        self.title = title
        self.start = time.monotonic()
        self.delay_s = delay_s
        self.min_dt = 1.0 / rate_hz
        self.last = 0.0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.drawn = False
        self._last_pct = -1
        self._lock = threading.Lock()
        self._latest: tuple[int, int, str] | None = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def __call__(self, done: int, total: int, label: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            self._latest = (done, total, label)
            if now - self.start < self.delay_s:
                if self._timer is None and not self._closed:
                    self._timer = threading.Timer(self.delay_s - (now - self.start), self._late)
                    self._timer.daemon = True
                    self._timer.start()
                return
            if now - self.last < self.min_dt and done < total:
                return
            self._draw(done, total, label, now)

    def _late(self) -> None:
        with self._lock:
            if not self._closed and self._latest is not None and not self.last:
                self._draw(*self._latest, time.monotonic())

    def _draw(self, done: int, total: int, label: str, now: float) -> None:
        self.last = now
        frac = done / total if total else 1.0
        elapsed = now - self.start
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        if self.tty:
            width = 30
            bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
            sys.stderr.write(f"\r{self.title} [{bar}] {100 * frac:5.1f}% {done}/{total} "
                             f"{elapsed:6.1f}s eta {eta:5.1f}s {label[:30]:<30}")
            self.drawn = True
        else:
            pct = int(10 * frac) * 10
            if pct != self._last_pct:
                self._last_pct = pct
                sys.stderr.write(f"{self.title}: {pct}% ({done}/{total}, {elapsed:.1f} s) "
                                 f"{label}\n")
        sys.stderr.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self.drawn:
                sys.stderr.write("\n")
                sys.stderr.flush()
