"""``labctl run PROTOCOL``: one device protocol on the chosen backend."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

# one module per protocol: labctl/commands/run_<name>.py with register(subparsers)
PROTOCOL_MODULES = ("run_forming", "run_program", "run_symmetry_point", "run_retention")


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run one device protocol (forming, program, symmetry-point, "
                       "retention)", description="Run one device protocol and write a run file.")
    psub = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True,
                            parser_class=type(p))
    for name in PROTOCOL_MODULES:
        if importlib.util.find_spec(f"labctl.commands.{name}") is not None:
            importlib.import_module(f"labctl.commands.{name}").register(psub)
    p.set_defaults(handler=lambda a: p.error("name a protocol"))


def positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v
