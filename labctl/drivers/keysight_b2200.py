"""Keysight B2200A/B2201A and E5250A switching matrices (SCPI).

Channel format ``cIIOO`` -- card, input port, output port -- as in qcodes'
``keysight_b220x`` driver (``:CLOS (@00345)``) and the B2200 user's guide
(reference/instruments.md section 6.2).  Card 0 is the auto-configuration mode (outputs
numbered across cards); cards 1-4 are normal mode.  The driver sets the single-route
connection rule (an output is never shared by two inputs) and break-before-make once,
with the first switch.  A switch with its ``*OPC?`` and error check is one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from labctl.drivers import validators as v
from labctl.drivers.roles import SwitchMatrix
from labctl.drivers.scpi import ScpiInstrument
from labctl.drivers.transport import Transport
from labctl.errors import InstrumentError

_CHANNEL_RE = re.compile(r"^(\d)(\d\d)(\d\d)$")


class KeysightB2200(ScpiInstrument, SwitchMatrix):
    """A B2200A/B2201A/E5250A matrix driven on one card (or card 0, auto mode)."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"(keysight|agilent) technologies[^,]*,\s*(b220[01]a|e5250a)\b"
    IDENTITY_EXPECTED = "a Keysight/Agilent B2200A/B2201A/E5250A switching matrix"

    def __init__(self, transport: Transport, *, card: int = 0, inputs: int = 14,
                 outputs: int = 12, rule: str = "SROU", bias_port: int | None = None,
                 label: str | None = None) -> None:
        self.card = v.integer(card, 0, 4, quantity="card")
        self.inputs = v.integer(inputs, 1, 14, quantity="inputs")
        self.outputs = v.integer(outputs, 1, 48 if self.card == 0 else 12, quantity="outputs")
        self.rule = str(v.choice(str(rule).upper(), ("SROU", "FREE"), quantity="rule"))
        self.bias_port = (None if bias_port is None else
                          v.integer(bias_port, 1, self.inputs, quantity="bias_port"))
        super().__init__(transport, label=label)
        self._set_up = False

    def channel(self, route: tuple[int, int]) -> str:
        """``(input, output)`` -> ``cIIOO`` (LimitError if outside the matrix)."""
        inp = v.integer(route[0], 1, self.inputs, quantity="matrix input")
        out = v.integer(route[1], 1, self.outputs, quantity="matrix output")
        return f"{self.card}{inp:02d}{out:02d}"

    def _setup_commands(self) -> list[str]:
        if self._set_up:
            return []
        c = self.card
        cmds = [f":ROUT:CONN:RULE {c},{self.rule}", f":ROUT:CONN:SEQ {c},BBM"]
        if self.bias_port is not None:
            cmds += [f":ROUT:BIAS:PORT {c},{self.bias_port}",
                     f":ROUT:BIAS:CHAN:ENAB:CARD {c}", f":ROUT:BIAS {c},1"]
        return cmds

    def connect(self, routes: Sequence[tuple[int, int]], *, exclusive: bool = True) -> None:
        channels = ",".join(self.channel(r) for r in routes)
        cmds = self._setup_commands()
        if exclusive:
            cmds.append(f":ROUT:OPEN:CARD {self.card}")
        if channels:
            cmds.append(f":ROUT:CLOS (@{channels})")
        if not cmds:
            return
        self._run(*cmds, "*OPC?")
        self._set_up = True

    def open_all(self) -> None:
        self._run(f":ROUT:OPEN:CARD {self.card}", "*OPC?")

    def closed(self) -> list[tuple[int, int]]:
        reply = self._ask(f":ROUT:CLOS:CARD? {self.card}").strip()
        m = re.fullmatch(r"\(@([\d,\s]*)\)", reply)
        if m is None:
            raise InstrumentError(f"{self.label}: unexpected closed-list reply {reply!r}",
                                  instrument=self.label, text=reply)
        routes = []
        for ch in filter(None, (s.strip() for s in m.group(1).split(","))):
            cm = _CHANNEL_RE.match(ch)
            if cm is None:
                raise InstrumentError(f"{self.label}: unexpected channel {ch!r}",
                                      instrument=self.label, text=ch)
            routes.append((int(cm.group(2)), int(cm.group(3))))
        return sorted(routes)

    def qcodes_instrument(self, name: str = "keysight_b2200") -> Any:
        """qcodes' own ``KeysightB2200`` driver on this driver's link (for interactive use)."""
        from labctl.drivers.qcodes_bridge import qcodes_instrument

        return qcodes_instrument("Keysight", "KeysightB2200", name, self.transport)

    def safe(self) -> None:
        self._quiet(f":ROUT:OPEN:CARD {self.card}")
