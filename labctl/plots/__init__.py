"""Figures of run files, one module per run kind: ``render(reader, out_dir) -> [paths]``.

Matplotlib is imported with the Agg backend inside the modules, so reports render on
headless machines and in CI.
"""

from __future__ import annotations

# run command -> module in labctl/plots
RENDERERS = {
    "run forming": "forming",
    "run program": "program",
    "run symmetry-point": "symmetry_point",
    "run retention": "retention",
    "program": "transfer",
    "pipeline inference": "inference",
    "pipeline prune": "prune",
    "pipeline train": "train",
    "pipeline sparse-train": "sparse_train",
}
