"""Training figure titles name the run's seed, or the arrays' seeds as they are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def test_title_names_the_runs_seed_or_the_range_of_the_arrays_seeds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's --seed when it recorded one (its arrays draw from seed x 100 + k: 'seeds
    301-306' for --seed 3 read as another run); else the arrays' range, whatever their
    order (residual learning lists P before W: the first array's seed was not the lowest)."""
    import labctl.plots.train as plots

    monkeypatch.setattr(plots, "status_note", lambda reader: "")
    arrays = {f"L{k}.{r}": {"backend": "sim", "preset": "cmo-hfox-1t1r", "seed": s}
              for s, (k, r) in enumerate([(0, "P"), (0, "W"), (1, "P"), (1, "W")], start=301)}
    arrays = dict(sorted(arrays.items(), key=lambda kv: -kv[1]["seed"]))   # any order
    bank = {"backend": "bank", "arrays": arrays}
    reader = SimpleNamespace(backend=bank, provenance={}, config={"seed": 3})
    assert plots._note(reader) == "cmo-hfox-1t1r, seed 3 (4 arrays)"
    reader = SimpleNamespace(backend=bank, provenance={}, config={})
    assert plots._note(reader) == "cmo-hfox-1t1r, array seeds 301-304 (4 arrays)"
    one = {"L0.W": {"backend": "sim", "preset": "p", "seed": 7}}
    assert plots._note(SimpleNamespace(backend={"backend": "bank", "arrays": one},
                                       provenance={}, config={})) == "p, seed 7 (1 array)"
