"""Shared figure helpers: headless matplotlib, consistent sizes, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure(ncols: int = 1, nrows: int = 1, *, width_in: float = 5.0,
           height_in: float = 3.6) -> tuple[Any, Any]:
    return plt.subplots(nrows, ncols, figsize=(width_in * ncols, height_in * nrows),
                        squeeze=False, constrained_layout=True)


def save(fig: Any, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def title_note(reader: Any) -> str:
    """A short line naming the backend (and a stand-in data set, if any) for figure titles."""
    b = reader.backend
    src = b.get("preset") or b.get("station", "")
    prov = reader.provenance
    note = f"{src}, seed {b.get('seed')}" if b.get("backend") == "sim" else f"station {src}"
    if prov.get("stand_in"):
        note += f" — stand-in data: {prov.get('dataset_label', '')}"
    status = getattr(reader, "status", "complete")
    if status != "complete":
        note += f" — {status} run: partial data"
    return note
