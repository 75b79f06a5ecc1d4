"""Wall time of a replay's statistics: the bootstrap of a symmetry-point run, and N realisations.

Run by hand: ``python benchmarks/bench_replay.py [--draws 30] [--realisations 6]``.  Records
a `labctl run symmetry-point` on the default simulated 8x4 die (not timed), then times

- ``bootstrap_summaries`` of the symmetry-point run (each draw re-runs the fit and its
  debias calibration) in one process and in one worker process per CPU, and checks that
  both give the same summaries;
- ``labctl replay --realisations N`` of the symmetry-point run (one labctl process per
  seed, as many at a time as there are CPUs), against N single replays one after another
  (``--resamples 0``: the same work, a run and its analysis per seed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from labctl.cli import main as labctl
from labctl.data.runfile import RunReader
from labctl.protocols.resample import bootstrap_summaries, usable_cpus


def _quiet(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return labctl(argv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=30)
    p.add_argument("--realisations", type=int, default=4)
    a = p.parse_args()
    print(f"CPUs usable: {usable_cpus()}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        assert _quiet(["run", "symmetry-point", "--quiet", "--out", str(d / "sp.h5")]) == 0
        with RunReader(d / "sp.h5") as r:
            times, results = {}, {}
            for label, workers in (("1 process", 1), (f"{usable_cpus()} workers", None)):
                t0 = time.perf_counter()
                results[label] = bootstrap_summaries(r.command, r, a.draws, workers=workers)
                times[label] = time.perf_counter() - t0
        same = len({repr(v) for v in results.values()}) == 1
        print(f"bootstrap of an 8x4 symmetry-point run, {a.draws} draws: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
              + f" (same summaries: {same})")
        t0 = time.perf_counter()
        for k in range(a.realisations):
            assert _quiet(["replay", str(d / "sp.h5"), "--seed", str(k + 1),
                           "--resamples", "0", "--out", str(d / f"one-{k}.h5")]) in (0, 1)
        one_by_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert _quiet(["replay", str(d / "sp.h5"), "--realisations", str(a.realisations),
                       "--out", str(d / "many.h5")]) in (0, 1)
        side_by_side = time.perf_counter() - t0
        print(f"{a.realisations} symmetry-point replays of the 8x4 die: one after another "
              f"{one_by_one:.1f} s, side by side (--realisations) {side_by_side:.1f} s")


if __name__ == "__main__":
    main()
