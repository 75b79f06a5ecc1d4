"""A progress bar on stderr that appears only for work longer than a second."""

from __future__ import annotations

import math
import sys
import threading
import time


class ProgressBar:
    """Call with (done, total, label); draws after ``delay_s``, at most ``rate_hz`` times a
    second.  Work whose last call comes before ``delay_s`` and that goes on after it (an
    analysis after a quick measurement) is drawn then, from a timer, with that call's label.

    The ETA is the rate measured since ``done`` first moved in this session: time spent
    before that (forming a fresh die, a resumed run's earlier sessions) does not count as
    progress.  While no call comes (a long analysis, one long step), a heartbeat keeps the
    elapsed time moving: a terminal line is redrawn every second, a log gets a line every
    ``log_every_s``.
    """

    def __init__(self, title: str, *, delay_s: float = 1.0, rate_hz: float = 8.0,
                 enabled: bool = True, log_every_s: float = 30.0) -> None:
        self.title = title
        self.start = time.monotonic()
        self.delay_s = delay_s
        self.min_dt = 1.0 / rate_hz
        self.log_every_s = log_every_s
        self.last = 0.0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.drawn = False
        self._last_pct = -1
        self._last_line = 0.0
        self._lock = threading.Lock()
        self._latest: tuple[int, int, str] | None = None
        #: (time, done) from which the rate is measured: moved on while done has not changed
        self._origin: tuple[float, int] | None = None
        self._timer: threading.Timer | None = None
        self._beat: threading.Thread | None = None
        self._closed = False
        self._stop = threading.Event()

    def __call__(self, done: int, total: int, label: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            self._latest = (done, total, label)
            if self._origin is None or done == self._origin[1]:
                self._origin = (now, done)
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

    def _eta(self, done: int, total: int, now: float) -> float:
        """Seconds left at the rate measured since ``done`` first moved; NaN before it has."""
        if self._origin is None or done <= self._origin[1] or now <= self._origin[0]:
            return math.nan
        rate = (done - self._origin[1]) / (now - self._origin[0])
        return max(total - done, 0) / rate

    def _draw(self, done: int, total: int, label: str, now: float) -> None:
        self.last = now
        frac = min(done / total, 1.0) if total else 1.0
        elapsed = now - self.start
        eta = self._eta(done, total, now)
        eta_text = f"eta {eta:5.1f}s" if math.isfinite(eta) else "eta    ? "
        if self.tty:
            width = 30
            bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
            sys.stderr.write(f"\r{self.title} [{bar}] {100 * frac:5.1f}% {done}/{total} "
                             f"{elapsed:6.1f}s {eta_text} {label[:30]:<30}")
            self.drawn = True
        else:
            pct = int(10 * frac) * 10
            if pct != self._last_pct or now - self._last_line >= self.log_every_s:
                self._last_pct = pct
                self._last_line = now
                sys.stderr.write(f"{self.title}: {pct}% ({done}/{total}, {elapsed:.1f} s) "
                                 f"{label}\n")
        sys.stderr.flush()
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        if self._beat is None and not self._closed:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        """Redraw the latest state when no call has come for a while (see the class)."""
        every = 1.0 if self.tty else self.log_every_s
        while not self._stop.wait(min(every, 1.0)):
            with self._lock:
                now = time.monotonic()
                quiet = now - (self.last if self.tty else self._last_line)
                if self._closed or self._latest is None or quiet < every:
                    continue
                self._draw(*self._latest, now)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop.set()
            if self._timer is not None:
                self._timer.cancel()
            if self.drawn:
                sys.stderr.write("\n")
                sys.stderr.flush()
