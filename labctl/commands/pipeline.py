"""``labctl pipeline NAME``: whole pipelines (inference, prune, train, sparse-train)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# one module per pipeline: labctl/commands/pipeline_<name>.py with register(subparsers)
PIPELINE_MODULES = ("pipeline_inference", "pipeline_prune", "pipeline_train",
                    "pipeline_sparse_train")


def register(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="run a pipeline (inference, prune, train, sparse-train)",
                       description="Run a whole pipeline on the chosen backend.")
    psub = p.add_subparsers(dest="pipeline", metavar="PIPELINE", required=True,
                            parser_class=type(p))
    for name in PIPELINE_MODULES:
        if importlib.util.find_spec(f"labctl.commands.{name}") is not None:
            importlib.import_module(f"labctl.commands.{name}").register(psub)
    p.set_defaults(handler=lambda a: p.error("name a pipeline"))
