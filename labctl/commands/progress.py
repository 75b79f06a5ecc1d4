"""A progress bar on stderr that appears only for work longer than a second."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Call with (done, total, label); draws after ``delay_s``, at most ``rate_hz`` times a
    second."""

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

    def __call__(self, done: int, total: int, label: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay_s or (now - self.last < self.min_dt and done < total):
            return
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
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
