"""What a bench does when it opens, before any output, source or route command.

1. Every instrument is asked ``*IDN?`` and the answer compared with what its driver speaks
   to (``Instrument.IDENTITY``): a station file that points a role at another instrument
   (the matrix's address under ``[instruments.pulse]``) would otherwise send one command
   set to the other box -- and leave the real instrument of that role unforced.
2. Errors an earlier session left in an error queue are read, cleared and noted in one log
   line, so that they are not blamed on the first command of this run.

A role that does not answer, refuses the connection or answers as the wrong instrument, is
named in a one-line error with its driver and resource (:func:`who`); the caller leaves it
out of the safe shutdown, which would only send it more commands it cannot take.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping

from labctl.drivers.roles import Instrument
from labctl.drivers.station import InstrumentSpec, Station
from labctl.errors import IdentityMismatch, InstrumentError, InstrumentTimeout

log = logging.getLogger(__name__)


def who(spec: InstrumentSpec) -> str:
    """``pulse (keysight-33500b at TCPIP0::10.0.0.5::5025::SOCKET)``."""
    return f"{spec.role} ({spec.driver} at {spec.resource})"


def instrument_names(station: Station) -> dict[str, str]:
    """Resource -> how errors name its instrument; roles sharing a box are joined
    (``smu/gate (keithley-2636b at TCPIP0::...)``)."""
    roles: dict[str, list[InstrumentSpec]] = {}
    for spec in station.instruments.values():
        roles.setdefault(spec.resource, []).append(spec)
    return {res: f"{'/'.join(s.role for s in specs)} ({specs[0].driver} at {res})"
            for res, specs in roles.items()}


def link_fault(spec: InstrumentSpec, exc: InstrumentError, command: str,
               timeout_s: float | None = None) -> InstrumentError:
    """``exc`` (a transport error naming only the resource) reworded to name the role too."""
    if refused(exc):
        return InstrumentError(f"{who(spec)}: connection refused -- is the instrument on and "
                               f"the address right?", instrument=spec.role, code=exc.code,
                               text=exc.text)
    if isinstance(exc, InstrumentTimeout):
        within = f" within {timeout_s:g} s" if timeout_s is not None else ""
        return InstrumentTimeout(f"{who(spec)}: no answer{within} to {command}",
                                 instrument=spec.role, text=exc.text)
    detail = str(exc)
    named = re.match(rf"[^()]*\([^()]* at {re.escape(spec.resource)}\): ", detail)
    if named:      # the link's label (instrument_names) already names a role: say it once
        detail = detail[named.end():]
    elif detail.startswith(f"{spec.resource}: "):
        detail = detail[len(spec.resource) + 2:]
    elif detail.startswith(f"cannot open {spec.resource}: "):
        detail = "cannot open: " + detail[len(spec.resource) + 13:]
    return InstrumentError(f"{who(spec)}: {detail}", instrument=spec.role, code=exc.code,
                           text=exc.text)


def refused(exc: BaseException) -> bool:
    """Whether the connection was refused (nothing listens at the address): a
    ConnectionRefusedError among the causes of ``exc`` (pyvisa-py's socket on the first
    write, pyserial's ``socket://`` on open)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ConnectionRefusedError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def identify_all(station: Station, instruments: Mapping[str, Instrument]
                 ) -> tuple[dict[str, str], dict[str, InstrumentError]]:
    """Ask every role ``*IDN?`` and check it against its driver.

    Returns (identity per role that answered, error per role that failed), both in station
    order.  A box that did not answer for one role is not asked again for another.
    """
    identities: dict[str, str] = {}
    failed: dict[str, InstrumentError] = {}
    dead: dict[str, InstrumentError] = {}
    for role, inst in instruments.items():
        spec = station.instruments.get(role)
        if spec is None:
            identities[role] = inst.identify()
            continue
        if spec.resource in dead:
            failed[role] = dead[spec.resource]
            continue
        try:
            identity = inst.identify()
        except InstrumentError as exc:
            timeout = getattr(getattr(inst, "transport", None), "timeout_s", None)
            failed[role] = dead[spec.resource] = link_fault(spec, exc, "*IDN?", timeout)
            continue
        identities[role] = identity
        expected = inst.identity_problem(identity)
        if expected is not None:
            failed[role] = IdentityMismatch(
                f"{who(spec)} identifies as {identity.strip()!r}; expected {expected} "
                f"-- check instruments.{role}.resource in {station.path.name}",
                role=role, resource=spec.resource, identity=identity, expected=expected)
    return identities, failed


def clear_stale_errors(station: Station, instruments: Mapping[str, Instrument]) -> None:
    """Read and clear every error queue (once per box); what was there goes to one log line."""
    seen: set[str] = set()
    for role, inst in instruments.items():
        spec = station.instruments.get(role)
        resource = spec.resource if spec is not None else role
        if resource in seen:
            continue
        seen.add(resource)
        try:
            stale = inst.clear_errors()
        except InstrumentError as exc:
            if spec is None:
                raise
            timeout = getattr(getattr(inst, "transport", None), "timeout_s", None)
            raise link_fault(spec, exc, "its error-queue query", timeout) from exc
        if stale:
            log.warning("%s: cleared %s", who(spec) if spec is not None else role,
                        describe_stale(stale))


def describe_stale(stale: list[tuple[int, str]]) -> str:
    """``8 errors left from an earlier session: 8 x -285 'Program syntax error ...'``."""
    counts = Counter(stale)
    shown = "; ".join(f"{n} x {code} {text!r}" if n > 1 else f"{code} {text!r}"
                      for (code, text), n in list(counts.items())[:3])
    more = f"; ... ({len(counts) - 3} other kinds)" if len(counts) > 3 else ""
    plural = "" if len(stale) == 1 else "s"
    return f"{len(stale)} error{plural} left from an earlier session: {shown}{more}"
