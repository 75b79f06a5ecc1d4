"""Replay a recorded instrument transcript: a transport that answers from what was recorded.

A driver run over :class:`TranscriptTransport` must send exactly the commands of the
transcript, in order; the first command that differs raises :class:`TranscriptMismatch`
naming it.  Tests use the same class with hand-written transcripts to pin a driver's
exact command/response sequence (pymeasure's ``expected_protocol`` idea).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from labctl.drivers.transport import TranscriptEntry, Transport
from labctl.errors import InstrumentError


class TranscriptMismatch(InstrumentError):  # noqa: N818 -- reads as what happened
    """The driver sent something other than what the transcript recorded next."""


def exchanges(*pairs: tuple[str, str | None]) -> list[TranscriptEntry]:
    """Build a transcript from ``(command, reply_or_None)`` pairs (timestamps 0)."""
    out: list[TranscriptEntry] = []
    for command, reply in pairs:
        out.append((0.0, "w", command))
        if reply is not None:
            out.append((0.0, "r", reply))
    return out


class TranscriptTransport(Transport):
    """Answers from a recorded transcript; raises on the first divergence."""

    def __init__(self, entries: Iterable[Sequence[object]], *, name: str = "transcript",
                 transcript: list[TranscriptEntry] | None = None) -> None:
        super().__init__(name, transcript=transcript)
        self._entries = [(float(str(t)), str(d), str(x)) for t, d, x in entries]
        self._pos = 0
        self._timeout_s = 0.0

    def _next(self) -> TranscriptEntry | None:
        return self._entries[self._pos] if self._pos < len(self._entries) else None

    def _send(self, text: str) -> None:
        entry = self._next()
        if entry is None or entry[1] != "w" or entry[2] != text:
            expected = "the end of the transcript" if entry is None else (
                f"a read of {entry[2]!r}" if entry[1] == "r" else repr(entry[2]))
            raise TranscriptMismatch(
                f"{self.label}: command {text!r} (transcript entry #{self._pos}) differs from "
                f"the transcript, which has {expected}", instrument=self.name, text=text)
        self._pos += 1

    def _receive(self) -> str:
        entry = self._next()
        if entry is None or entry[1] != "r":
            expected = "the end of the transcript" if entry is None else f"command {entry[2]!r}"
            raise TranscriptMismatch(
                f"{self.label}: the driver reads at entry #{self._pos} where the transcript has "
                f"{expected}", instrument=self.name, text="read")
        self._pos += 1
        return entry[2]

    @property
    def remaining(self) -> list[TranscriptEntry]:
        """Entries not consumed yet."""
        return self._entries[self._pos:]

    def assert_complete(self) -> None:
        """Raise :class:`TranscriptMismatch` unless every entry was consumed."""
        if self._pos != len(self._entries):
            raise TranscriptMismatch(
                f"{self.label}: {len(self._entries) - self._pos} transcript entries were not "
                f"replayed; next is {self._entries[self._pos][2]!r}", instrument=self.name)

    def close(self) -> None:
        """Nothing to close."""
