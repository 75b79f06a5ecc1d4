"""The analyses re-run on devices drawn with replacement (replay's bootstrap): a draw of
every device once is the run itself, a drawn cell keeps its own reads, and the draws are
repeatable."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.cli import main
from labctl.data.compare import flatten
from labctl.data.runfile import RunReader
from labctl.protocols.resample import (
    RESAMPLED,
    _Drawn,
    bootstrap_summaries,
    retention_jobs,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("resample")
    argvs = {"sp": ["run", "symmetry-point"],
             "program": ["run", "program", "--levels", "4", "--repeats", "16"],
             "retention": ["run", "retention", "--levels", "4", "--repeats", "8"]}
    for name, argv in argvs.items():
        assert main([*argv, "--quiet", "--out", str(d / f"{name}.h5")]) == 0
    return {name: d / f"{name}.h5" for name in argvs}


class _Identity(np.random.Generator):
    """Draws every index once, in order (a 'draw' that is the run itself)."""

    def __init__(self) -> None:
        super().__init__(np.random.PCG64(0))

    def integers(self, low, high=None, size=None, **kw):   # type: ignore[override]
        return np.arange(int(size))


@pytest.mark.parametrize("name", ["sp", "program", "retention"])
def test_a_draw_of_every_device_once_is_the_run_itself(runs, name):
    with RunReader(runs[name]) as r:
        draw, analyse = RESAMPLED[r.command]
        again = flatten(analyse(_Drawn(r, draw(r, _Identity()))))
        _assert_same(again, flatten(analyse(r)))
        _assert_same(again, {k: v for k, v in flatten(r.summary).items() if k in again})


def _assert_same(a: dict, b: dict) -> None:
    """Equal summaries, to round-off (a drawn trace is a copy in another memory layout)."""
    assert a.keys() == b.keys()
    for k, v in a.items():
        if isinstance(v, (str, bool)) or v is None:
            assert v == b[k], k
        else:
            np.testing.assert_allclose(np.asarray(v, float), np.asarray(b[k], float),
                                       rtol=1e-8, atol=0, err_msg=k)


def test_a_drawn_cell_keeps_its_own_reads(runs):
    with RunReader(runs["retention"]) as r:
        job, g = r.data("retention/job"), r.data("retention/g_S")
        t = r.data("retention/t_s")
        idx = np.array([5, 5, 0, 31])
        out = retention_jobs(r, idx)
        assert np.array_equal(out["retention/program/g_S"], r.data("retention/program/g_S")[idx])
        for k, old in enumerate(idx):
            new = out["retention/job"] == k
            assert np.array_equal(out["retention/g_S"][new], g[job == old])
            assert np.array_equal(out["retention/t_s"][new], t[job == old])
        assert out["retention/job"].size == sum(np.count_nonzero(job == i) for i in idx)


def test_draws_are_repeatable_and_spread(runs):
    with RunReader(runs["sp"]) as r:
        a = bootstrap_summaries(r.command, r, 4, seed=1, workers=1)
        b = bootstrap_summaries(r.command, r, 4, seed=1, workers=2)   # in worker processes
        assert [x["fit"]["population"] for x in a] == [x["fit"]["population"] for x in b]
        asym = [x["fit"]["population"]["asymmetry"] for x in a]
        assert np.std(asym) > 0
    with RunReader(runs["program"]) as r:
        levels = [x["levels"] for x in bootstrap_summaries(r.command, r, 3, workers=1)]
        drawn = bootstrap_summaries(r.command, r, 3, workers=2)
        counts = [x["cells_per_level"] for x in drawn]
        assert levels[0] == r.summary["levels"] and all(c == [16] * 4 for c in counts)
        assert [x["levels"] for x in drawn] == levels
        assert bootstrap_summaries("run forming", r, 3) == []
