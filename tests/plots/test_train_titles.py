"""Training figure titles name the arrays' seeds as they are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def test_title_gives_the_range_of_the_arrays_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Residual learning lists its arrays P before W: the title said 'seeds 2..' for arrays
    seeded 1-6 (it took the first array's seed)."""
    import labctl.plots.train as plots

    monkeypatch.setattr(plots, "status_note", lambda reader: "")
    arrays = {f"L{k}.{r}": {"backend": "sim", "preset": "cmo-hfox-1t1r", "seed": s}
              for s, (k, r) in enumerate([(0, "P"), (0, "W"), (1, "P"), (1, "W")], start=1)}
    arrays = dict(sorted(arrays.items(), key=lambda kv: -kv[1]["seed"]))   # any order
    reader = SimpleNamespace(backend={"backend": "bank", "arrays": arrays}, provenance={})
    assert plots._note(reader) == "cmo-hfox-1t1r, seeds 1-4 (4 arrays)"
    one = {"L0.W": {"backend": "sim", "preset": "p", "seed": 7}}
    assert plots._note(SimpleNamespace(backend={"backend": "bank", "arrays": one},
                                       provenance={})) == "p, seed 7 (1 array)"
