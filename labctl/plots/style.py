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
    fit_titles(fig)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _wrap(text: str, chars: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, max(chars, 12), break_long_words=False)
                     if len(line) > chars else line for line in text.split("\n"))


def fit_titles(fig: Any) -> None:
    """Make every title fit inside the figure (and an axes title over its panel): long lines
    (a station path, a status note) are wrapped, and the font made smaller if still too wide."""
    fig.draw_without_rendering()    # the laid-out positions
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    titles = [(fig._suptitle, None)] + [(t, ax) for ax in fig.axes
                                        for t in (ax.title, ax._left_title, ax._right_title)]
    for text, ax in titles:
        if text is None or not text.get_text() or not text.get_visible():
            continue
        box = text.get_window_extent(renderer)
        centre = 0.5 * (box.x0 + box.x1)
        room = 2 * min(centre - fig_box.x0, fig_box.x1 - centre) - 8.0   # px, a small margin
        if ax is not None:
            room = min(room, 1.15 * ax.get_window_extent(renderer).width)
        for _ in range(3):
            width = text.get_window_extent(renderer).width
            if width <= room or room <= 0:
                break
            lines = text.get_text().split("\n")
            longest = max(len(line) for line in lines)
            wrapped = _wrap(text.get_text(), int(longest * room / width * 0.95))
            if wrapped != text.get_text():
                text.set_text(wrapped)
            else:                        # one unbreakable word: a smaller font
                text.set_fontsize(text.get_fontsize() * max(room / width, 0.5))


def title_note(reader: Any) -> str:
    """A short line naming the backend (and a stand-in data set, if any) for figure titles."""
    b = reader.backend
    src = b.get("preset") or b.get("station", "")
    prov = reader.provenance
    note = f"{src}, seed {b.get('seed')}" if b.get("backend") == "sim" else f"station {src}"
    if prov.get("stand_in"):
        note += f" — stand-in data: {prov.get('dataset_label', '')}"
    return note + status_note(reader)


def seed_note(reader: Any, arrays: Any) -> str:
    """``seed N``: the run's --seed (a bank's simulated arrays draw from seeds derived from
    it), or for a run that recorded none the range of its arrays' seeds."""
    seed = reader.config.get("seed")
    if isinstance(seed, int):
        return f"seed {seed}"
    seeds = sorted({int(a["seed"]) for a in arrays if isinstance(a.get("seed"), int)})
    if len(seeds) > 1:
        return f"array seeds {seeds[0]}-{seeds[-1]}"
    return f"seed {seeds[0] if seeds else None}"


def shown_status(reader: Any) -> str:
    """The run's status word (:attr:`labctl.data.runfile.RunReader.shown_status`):
    ``killed`` for a file left ``running`` that no process writes."""
    return str(getattr(reader, "shown_status", getattr(reader, "status", "complete")))


def status_note(reader: Any) -> str:
    """The end of a title line for a run that did not complete ("" for one that did)."""
    status = shown_status(reader)
    if status == "complete":
        return ""
    if status == "killed":
        return " — killed run (not being written): partial data"
    return f" — {status} run: partial data"


def run_is(reader: Any) -> str:
    """'the run is running', 'the run is aborted' or 'the run was killed'."""
    status = shown_status(reader)
    return "the run was killed" if status == "killed" else f"the run is {status}"
