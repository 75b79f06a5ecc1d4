"""The labctl error hierarchy: errors carry data, not only text (STYLE.md)."""

from __future__ import annotations

import os
from pathlib import Path


class LabctlError(Exception):
    """Base of every error labctl raises on purpose."""


class ConfigError(LabctlError, ValueError):
    """A configuration, station file, preset or command-line value is invalid.

    ``key`` names the offending setting when there is one.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class LimitError(LabctlError, ValueError):
    """A requested voltage, current, width or channel is outside a limit; nothing was clipped."""

    def __init__(self, message: str, *, quantity: str = "", value: float | None = None,
                 limit: float | None = None) -> None:
        super().__init__(message)
        self.quantity = quantity
        self.value = value
        self.limit = limit


class DataFormatError(LabctlError, ValueError):
    """A file is not a labctl run file, or not the kind of run file expected."""


class DatasetNotInstalled(LabctlError):
    """A data set is not on this machine; the message says how to install it."""


class ProtocolAbort(LabctlError):
    """A protocol stopped on purpose (user request, safety condition)."""


class InstrumentError(LabctlError):
    """An instrument reported an error; code and text come from its error queue."""

    def __init__(self, message: str, *, instrument: str = "", code: int | None = None,
                 text: str = "") -> None:
        super().__init__(message)
        self.instrument = instrument
        self.code = code
        self.text = text


class InstrumentTimeout(InstrumentError):
    """An instrument did not answer within its timeout."""


class IdentityMismatch(InstrumentError):
    """The instrument at a role's resource is not the one its driver speaks to (``*IDN?``)."""

    def __init__(self, message: str, *, role: str, resource: str, identity: str,
                 expected: str) -> None:
        super().__init__(message, instrument=role, text=identity)
        self.role = role
        self.resource = resource
        self.identity = identity
        self.expected = expected


def missing(path: str | os.PathLike[str], *, directory: bool = False) -> str:
    """Why ``path`` is not the file (``directory``: the directory) asked for, in the words
    of a one-line error: ``directory D does not exist``, ``D is a file, not a directory``
    (and likewise for a file: ``F does not exist``, ``F is a directory, not a file``)."""
    p = Path(path)
    if directory:
        return f"{p} is a file, not a directory" if p.exists() else f"directory {p} does not exist"
    return f"{p} is a directory, not a file" if p.is_dir() else f"{p} does not exist"
