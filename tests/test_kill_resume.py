"""Crash safety end to end: SIGKILL a real CLI run at a random point, then resume it.

For each protocol and pipeline: the killed file opens, says ``running`` and holds every
step finished before the kill; ``--resume`` completes it; the result equals an
uninterrupted run with the same seed, and no step is recorded twice.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from labctl.data.runfile import RunReader

# (id, argv, a growable dataset that counts finished steps, records needed before the kill,
#  command module that must exist)
CASES = [
    ("forming", ["run", "forming", "--rows", "64", "--cols", "8"], "forming/v_form_V", 8,
     "run_forming"),
    ("program", ["run", "program", "--levels", "8", "--repeats", "16", "--rows", "8",
                 "--cols", "4", "--tolerance", "0.002"], None, 1, "run_program"),
    ("symmetry-point", ["run", "symmetry-point", "--rows", "16", "--cols", "8"], None, 2,
     "run_symmetry_point"),
    ("retention", ["run", "retention", "--levels", "12", "--repeats", "8"], None, 2,
     "run_retention"),
    ("prune", ["pipeline", "prune", "--dataset", "digits", "--network", "mlp", "--epochs", "30"],
     None, 3, "pipeline_prune"),
    ("train", ["pipeline", "train", "--algorithm", "agad", "--dataset", "digits", "--network",
               "64-32-10", "--epochs", "8", "--fp-epochs", "2"], None, 2, "pipeline_train"),
    ("sparse-train", ["pipeline", "sparse-train", "--dataset", "digits", "--epochs", "4",
                      "--limit", "500"], None,
     2, "pipeline_sparse_train"),
]


def _records(path, name):
    try:
        with RunReader(path) as r:
            if name is None:
                names = list(r.datasets())
                return max((r.h5[n].shape[0] for n in names if r.h5[n].maxshape[0] is None),
                           default=0)
            return r.h5[name].shape[0] if name in r else 0
    except Exception:  # noqa: BLE001 - the file may not exist yet or be mid-write
        return 0


def _timing(name: str) -> bool:
    return name.endswith(("samples_per_s", "wall_s"))


def _labctl(*argv):
    return subprocess.run([sys.executable, "-m", "labctl.cli", *argv, "--quiet"],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sigkill_then_resume_equals_uninterrupted(case, tmp_path):
    cid, argv, counter, need, module = case
    if importlib.util.find_spec(f"labctl.commands.{module}") is None:
        pytest.fail(f"labctl.commands.{module} is missing")
    _kill_resume_compare(cid, argv, counter, need, tmp_path)


def test_sigkill_then_resume_inference(tmp_path):
    """The inference pipeline on a 64x64 transfer: killed mid-way, resumed, equal."""
    w = tmp_path / "w.npy"
    np.save(w, np.clip(np.random.default_rng(1).normal(size=(64, 64)), -1, 1))
    transfer = tmp_path / "transfer.h5"
    r = _labctl("program", str(w), "--rows", "64", "--cols", "64", "--mapping", "reference",
                "--tolerance", "0.02", "--seed", "2", "--out", str(transfer))
    assert r.returncode == 0, r.stderr
    _kill_resume_compare("inference", ["pipeline", "inference", str(transfer)], None, 1,
                         tmp_path)


def _kill_resume_compare(cid, argv, counter, need, tmp_path):
    full = tmp_path / "full.h5"
    r = _labctl(*argv, "--seed", "5", "--out", str(full))
    assert r.returncode == 0, r.stderr
    killed = tmp_path / "killed.h5"
    rng = np.random.default_rng()
    # the kill lands anywhere in the first 80 % of the run (a damaged checkpoint slot was
    # found only when kills were spread over the whole run, not just its start)
    last = max(2 * need, int(0.8 * _records(full, counter)))
    threshold = int(rng.integers(need, last + 1))
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", *argv, "--seed", "5",
                             "--out", str(killed), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while proc.poll() is None and _records(killed, counter) < threshold \
            and time.monotonic() - t0 < 300:
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip(f"{cid}: the run finished before it could be killed (machine too fast)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with RunReader(killed) as k:
        assert k.status == "running"
        kept = _records(killed, counter)
        assert kept >= 1
    r = _labctl(*argv, "--seed", "5", "--resume", str(killed))
    assert r.returncode == 0, r.stderr
    with RunReader(full) as a, RunReader(killed) as b:
        assert b.status == "complete"
        # wall-clock speeds legitimately differ between two runs; everything else must not
        sa = {k: v for k, v in a.summary.items() if not _timing(k)}
        sb = {k: v for k, v in b.summary.items() if not _timing(k)}
        files = [k for k in sa if k.endswith("_file")]
        assert {k: v for k, v in sa.items() if k not in files} == \
            {k: v for k, v in sb.items() if k not in files}
        for k in files:  # files written by the run (a fitted preset) hold the same content

            def body(path):  # all values but those naming the file the preset came from
                doc = tomllib.loads(Path(path).read_text())
                return {k: v for k, v in doc.items() if k not in ("name", "source")}

            assert body(sa[k]) == body(sb[k])
        names_a, names_b = set(a.datasets()), set(b.datasets())
        assert names_a == names_b
        for name in names_a:
            x, y = a.data(name), b.data(name)
            assert x.shape == y.shape, name  # no step recorded twice
            if _timing(name):
                continue
            if x.dtype.kind == "f":
                assert np.array_equal(x, y, equal_nan=True), name
            else:
                assert np.array_equal(x, y), name


def test_a_second_sigterm_while_stopping_still_exits_130(tmp_path):
    """The first SIGTERM stops the run; one more while it stops (a supervisor's retry) is
    ignored: the process never dies by the signal's default action (exit 143)."""
    out = tmp_path / "r.h5"
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "run", "retention", "--levels",
                             "12", "--repeats", "8", "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while proc.poll() is None and _records(out, None) < 2 and time.monotonic() - t0 < 300:
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted (machine too fast)")
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        f"labctl: interrupted; outputs off, run file {out} marked aborted; "
        f"`labctl run retention --resume {out}` carries it on"]
    with RunReader(out) as r:
        assert r.status == "aborted"


def test_an_interrupt_before_the_run_file_says_there_is_none(tmp_path, monkeypatch, capsys):
    from labctl.cli import main
    from labctl.commands import run_retention

    def interrupted(args):
        raise KeyboardInterrupt("SIGTERM")     # as while a data set or a station is loading

    monkeypatch.setattr(run_retention, "handle", interrupted)
    out = tmp_path / "r.h5"
    assert main(["run", "retention", "--out", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err == ("labctl: interrupted before a run file was written; "
                                       "outputs off\n")
    assert not out.exists()
