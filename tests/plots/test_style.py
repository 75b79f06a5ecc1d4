"""Figure titles fit: a long station path or status note is wrapped, never cut off."""

from __future__ import annotations

from pathlib import Path

from labctl.plots.style import figure, fit_titles, save

NOTE = ("station /tmp/a/rather/long/path/to/the/bench/S.toml — aborted run: partial data")


def _inside(fig) -> bool:  # type: ignore[no-untyped-def]
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in [fig._suptitle, *(a.title for a in fig.axes)]
             if t is not None and t.get_text()]
    return all(b.x0 >= fig.bbox.x0 and b.x1 <= fig.bbox.x1 for b in boxes)


def test_long_titles_are_wrapped_into_the_figure(tmp_path: Path) -> None:
    fig, ax = figure()
    ax[0, 0].set_title(f"right after programming (no reads recorded)\n{NOTE}")
    assert not _inside(fig)                 # as the audit found it: cut at the edge
    fit_titles(fig)
    assert _inside(fig)
    assert ax[0, 0].title.get_text().count("\n") >= 2
    assert ax[0, 0].title.get_text().replace("\n", " ") == \
        f"right after programming (no reads recorded) {NOTE}"   # wrapped, nothing lost

    fig, ax = figure(ncols=3, width_in=2.5)
    fig.suptitle(f"Relaxation of the programmed levels — {NOTE}")
    ax[0, 1].set_title("x" * 120)           # one unbreakable word: a smaller font
    assert not _inside(fig)
    fit_titles(fig)
    assert _inside(fig) and ax[0, 1].title.get_fontsize() < 12.0
    assert save(fig, tmp_path, "t").is_file()      # save() fits them too, and then draws


def test_titles_that_fit_are_left_alone() -> None:
    fig, ax = figure()
    ax[0, 0].set_title("Forming I-V (4 cells)\ncmo-hfox-1t1r, seed 0")
    fit_titles(fig)
    assert ax[0, 0].title.get_text() == "Forming I-V (4 cells)\ncmo-hfox-1t1r, seed 0"
    assert ax[0, 0].title.get_fontsize() == 12.0
