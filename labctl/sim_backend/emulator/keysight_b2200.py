"""Emulated Keysight B2200A / E5250A switching matrix, one card (instruments.md 6.2, 6.3).

``[:ROUT]:CLOS|OPEN (@cIIOO,...)`` (ranges ``cIIOO:cIIOO``), ``OPEN:CARD``,
``CLOS:CARD?`` -> ``(@...)``, ``CLOS? (@...)`` -> ``1,0,...``, connection rule (SROU:
an output gets one input; closing another input onto it opens the old route) and
sequence, bias mode (every output without a route is tied to the bias port -- reported
to the bench as a route, since that is where the line is electrically).  Channels of
another card or outside the ports queue -222.
"""

from __future__ import annotations

import re
from typing import Any

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.bench_api import routes_of
from labctl.sim_backend.emulator.scpi import (
    DATA_OUT_OF_RANGE,
    ScpiEmulator,
    arg,
    boolean,
    channel_list,
    keyword,
    number,
)

_CH_RE = re.compile(r"^(\d)(\d\d)(\d\d)$")


class KeysightB2200Emulator(ScpiEmulator):
    """A B2200A card (``card`` 0 = auto-configuration mode, 1-4 = normal mode)."""

    model = "B2200A"
    manufacturer = "Agilent Technologies"
    no_error = '0,"No error"'

    def __init__(self, instrument_id: str, bench: Any, *, serial: str = "EMU0001",
                 card: int = 0, inputs: int = 14, outputs: int = 12) -> None:
        self.card, self.inputs, self.outputs = int(card), int(inputs), int(outputs)
        self.closed: set[tuple[int, int]] = set()
        super().__init__(instrument_id, bench, serial=serial)

    def reset(self) -> None:
        self.rule = "FREE"
        self.sequence = "BBM"
        self.bias_port = 10 if self.inputs >= 10 else self.inputs
        self.bias_on = False
        self.bias_channels: set[int] = set()
        self._apply(set())

    def is_safe(self) -> bool:
        return not self.closed

    def define(self) -> None:
        c = self.command
        r = "[:ROUTe]"
        c(f"{r}:CLOSe[:LIST]", set=lambda a, s: self._close(self._channels(a)),
          query=lambda a, s: ",".join(str(int(x in self.closed)) for x in self._channels(a)))
        c(f"{r}:OPEN[:LIST]", set=lambda a, s: self._apply(self.closed - set(self._channels(a))),
          query=lambda a, s: ",".join(str(int(x not in self.closed)) for x in self._channels(a)))
        c(f"{r}:OPEN:CARD", set=self._open_card)
        c(f"{r}:CLOSe:CARD", query=lambda a, s: self._on_card(arg(a, 0), self._closed_list()))
        c(f"{r}:CONNection:RULE", set=lambda a, s: self._set(a, "rule", ("FREE", "SROUte")),
          query=lambda a, s: self._on_card(arg(a, 0), self.rule))
        c(f"{r}:CONNection:SEQuence",
          set=lambda a, s: self._set(a, "sequence", ("NSEQ", "BBM", "MBBR")),
          query=lambda a, s: self._on_card(arg(a, 0), self.sequence))
        c(f"{r}:BIAS:PORT", set=self._set_bias_port,
          query=lambda a, s: self._on_card(arg(a, 0), str(self.bias_port)))
        c(f"{r}:BIAS[:STATe]", set=self._set_bias,
          query=lambda a, s: self._on_card(arg(a, 0), str(int(self.bias_on))))
        c(f"{r}:BIAS:CHANnel:ENABle:CARD", set=lambda a, s: self._bias_card(arg(a, 0), True))
        c(f"{r}:BIAS:CHANnel:DISable:CARD", set=lambda a, s: self._bias_card(arg(a, 0), False))
        c(f"{r}:BIAS:CHANnel:ENABle[:LIST]", set=lambda a, s: self._bias_list(a, True))
        c(f"{r}:BIAS:CHANnel:DISable[:LIST]", set=lambda a, s: self._bias_list(a, False))
        c(f"{r}:FUNCtion", set=lambda a, s: keyword(arg(a, 0), ("ACONfig", "NCONfig")))

    # -- parsing -----------------------------------------------------------------------
    def _card(self, text: str) -> None:
        word = text.strip().upper()
        if word != "ALL" and int(number(word, 0, 4)) != self.card:
            raise EmulatorError(*DATA_OUT_OF_RANGE)

    def _on_card(self, text: str, reply: str) -> str:
        """``reply`` to a query naming this card (or ``ALL``); another card queues -222."""
        self._card(text)
        return reply

    def _channels(self, a: list[str]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for item in channel_list(",".join(a)):
            if ":" in item:
                (i0, o0), (i1, o1) = (self._one(x) for x in item.split(":", 1))
                out += [(i, o) for i in range(min(i0, i1), max(i0, i1) + 1)
                        for o in range(min(o0, o1), max(o0, o1) + 1)]
            else:
                out.append(self._one(item))
        return out

    def _one(self, text: str) -> tuple[int, int]:
        m = _CH_RE.match(text.strip())
        if m is None:
            raise EmulatorError(-104, "Data type error")
        card, inp, out = (int(g) for g in m.groups())
        if card != self.card or not 1 <= inp <= self.inputs or not 1 <= out <= self.outputs:
            raise EmulatorError(*DATA_OUT_OF_RANGE)
        return inp, out

    def _set(self, a: list[str], name: str, options: tuple[str, ...]) -> None:
        self._card(arg(a, 0))
        setattr(self, name, keyword(arg(a, 1), options))

    def _open_card(self, a: list[str], s: list[int]) -> None:
        self._card(arg(a, 0))
        self._apply(set())

    def _set_bias_port(self, a: list[str], s: list[int]) -> None:
        self._card(arg(a, 0))
        self.bias_port = int(number(arg(a, 1), 1, self.inputs))
        self._apply(self.closed)

    def _set_bias(self, a: list[str], s: list[int]) -> None:
        self._card(arg(a, 0))
        self.bias_on = boolean(arg(a, 1))
        self._apply(self.closed)

    def _bias_card(self, card: str, enable: bool) -> None:
        self._card(card)
        self.bias_channels = set(range(1, self.outputs + 1)) if enable else set()
        self._apply(self.closed)

    def _bias_list(self, a: list[str], enable: bool) -> None:
        outs = {o for _, o in self._channels(a)}
        self.bias_channels = self.bias_channels | outs if enable else self.bias_channels - outs
        self._apply(self.closed)

    # -- switching ---------------------------------------------------------------------
    def _close(self, routes: list[tuple[int, int]]) -> None:
        closed = set(self.closed)
        for inp, out in routes:
            if self.rule == "SROU":
                closed = {(i, o) for i, o in closed if o != out or i == inp}
            closed.add((inp, out))
        self._apply(closed)

    def _apply(self, closed: set[tuple[int, int]]) -> None:
        self.closed = set(closed)
        self.note("closed " + (",".join(f"{i},{o}" for i, o in sorted(closed)) or "none"))
        self.bench.matrix_set(self.instrument_id, self.routes())

    def routes(self) -> frozenset[tuple[int, int]]:
        """Closed relays plus, in bias mode, the bias port on every otherwise free output."""
        routes = set(self.closed)
        if self.bias_on:
            used = {o for _, o in self.closed}
            routes |= {(self.bias_port, o) for o in self.bias_channels - used}
        return routes_of(routes)

    def _closed_list(self) -> str:
        return "(@" + ",".join(f"{self.card}{i:02d}{o:02d}" for i, o in
                               sorted(self.closed)) + ")"

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "closed": sorted(self.closed), "bias": self.bias_on}
