"""Benchmark: what the run file's crash journal costs per recorded step (run by hand).

    .venv/bin/python benchmarks/bench_runfile.py [--records N]

Appends N one-cell records (three datasets, a flush each, as program-verify records a
cell) and N/25 checkpoints of a 64x64 array state, once through RunWriter (HDF5 through
the undo journal, labctl.data.journal) and once with plain h5py on the same layout (no
journal, not crash-safe), and prints records and checkpoints per second for both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from labctl.data.runfile import RunWriter


def _plain_append(h5: h5py.File, name: str, value: np.ndarray) -> None:
    if name not in h5:
        h5.create_dataset(name, data=value[None], maxshape=(None, *value.shape),
                          chunks=(1024, *value.shape))
    else:
        ds = h5[name]
        ds.resize(ds.shape[0] + 1, axis=0)
        ds[-1] = value


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    n = ap.parse_args().records
    state = {"g_S": np.random.default_rng(0).uniform(1e-6, 1e-4, (64, 64)), "step": 0}
    cell = (np.array([1.0e-5]), np.array([12]), np.array([3, 4]))
    with tempfile.TemporaryDirectory() as tmp:
        w = RunWriter(Path(tmp) / "j.h5", command="bench", config={}, backend={})

        def journaled_records() -> None:
            for _ in range(n):
                w.append("cells/g_S", cell[0], "S")
                w.append("cells/pulses", cell[1], "")
                w.append("cells/address", cell[2][None], "")

        def journaled_checkpoints() -> None:
            for k in range(n // 25):
                w.checkpoint({**state, "step": k, "lengths": [["cells/g_S", n]]})

        tj_rec, tj_ck = _timed(journaled_records), _timed(journaled_checkpoints)
        w.finish("complete")

        h5 = h5py.File(Path(tmp) / "p.h5", "w", libver=("v108", "v108"), locking=False)

        def plain_records() -> None:
            for _ in range(n):
                names = ("cells/g_S", "cells/pulses", "cells/address")
                for name, value in zip(names, cell, strict=True):
                    _plain_append(h5, name, value)
                    h5.flush()

        def plain_checkpoints() -> None:
            for k in range(n // 25):
                slot = f"checkpoint_{'ab'[k % 2]}"
                if slot in h5:
                    del h5[slot]
                g = h5.create_group(slot)
                g.create_dataset("g_S", data=state["g_S"])
                g.attrs["step"] = k
                h5.flush()

        tp_rec, tp_ck = _timed(plain_records), _timed(plain_checkpoints)
        h5.close()
    print(f"{n} one-cell records (3 datasets, a flush each), {n // 25} checkpoints of 64x64")
    print(f"  {'':22}{'records/s':>12}{'checkpoints/s':>15}")
    print(f"  {'RunWriter (journal)':22}{n / tj_rec:12,.0f}{(n // 25) / tj_ck:15,.0f}")
    print(f"  {'plain h5py':22}{n / tp_rec:12,.0f}{(n // 25) / tp_ck:15,.0f}")


if __name__ == "__main__":
    main()
