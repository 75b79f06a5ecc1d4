"""``labctl pipeline prune`` end to end on the simulated rram-40nm-random chip (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from labctl.cli import main
from labctl.data.runfile import RunReader, RunWriter
from labctl.datasets import fashion_mnist, load_dataset
from labctl.pipelines.energy import load_energy_model
from labctl.pipelines.prune import PruneConfig, PrunePipeline
from labctl.protocols.base import run
from labctl.sim_backend.presets import load_model
from labctl.sim_backend.simulated_array import SimulatedArray

KEYS = ("dataset", "accuracy_software", "accuracy_programmed", "accuracy_random",
        "accuracy_pruned", "kept_fraction", "set_reset_ops", "energy_J")


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(argv)
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    summary = json.loads(lines[-1]) if code == 0 else {}
    return code, summary, out.out + out.err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("prune") / "digits.h5"
    code = main(["pipeline", "prune", "--dataset", "digits", "--epochs", "30", "--seed", "0",
                 "--out", str(out), "--json", "--quiet"])
    assert code == 0
    with RunReader(out) as r:
        return r.summary, out, r.status


def test_pruned_random_mlp_on_digits(digits_run: tuple[dict, Path, str]) -> None:
    summary, _, status = digits_run
    assert status == "complete"
    for k in KEYS:
        assert k in summary
    assert summary["accuracy_pruned"] >= 0.90
    assert summary["accuracy_random"] < 0.25  # chance is 0.10
    assert summary["accuracy_software"] > summary["accuracy_pruned"] - 0.02
    assert 0.45 < summary["kept_fraction"] < 0.55
    ops = summary["set_reset_ops"]
    assert ops["random"] == 0 == ops["software"] and ops["pruned"] > 0
    assert ops["programmed"] > ops["pruned"]  # program-verify needs far more pulses
    assert all(summary["energy_J"][a] > 0 for a in ("software", "random", "pruned",
                                                     "programmed"))


def test_run_file_records_provenance_and_figures(digits_run: tuple[dict, Path, str],
                                                 tmp_path: Path) -> None:
    from labctl.commands.report import render_report

    _, path, _ = digits_run
    with RunReader(path) as r:
        assert r.provenance["dataset"] == "digits" and r.provenance["stand_in"] is False
        assert r.backend["preset"] == "rram-40nm-random"
        masks = [n for n in r.datasets() if n.endswith("/mask")]
        assert len(masks) == 2
        g0, g1 = r.data("prune/chip/g_formed_S"), r.data("prune/chip/g_pruned_S")
        assert np.median(g1) < np.median(g0)  # pruned cells went to the reset residual
        assert len(r.data("prune/train/epoch")) == 30
        # every printed accuracy is the stored predictions against the stored labels
        labels = r.data("dataset/test_labels")
        for a in ("software", "programmed", "random", "pruned", "random_software"):
            predicted = r.data(f"prune/result/test_predictions_{a}")
            hits = float(np.mean(predicted == labels[:predicted.size]))
            assert hits == r.data(f"prune/result/accuracy_{a}")[0], a
            if a != "random_software":
                assert r.summary[f"accuracy_{a}"] == hits
        per_epoch = {}
        for group in ("prune/train", "software/train"):
            per_epoch[group] = (r.data(f"{group}/test_predictions") == labels).mean(axis=1)
            assert np.array_equal(per_epoch[group], r.data(f"{group}/test_accuracy"))
        assert r.summary["accuracy_pruned_software"] == per_epoch["prune/train"][-1]
        # the programming error is the programmed weights against the software ones
        err = []
        for layer in r.h5["prune/layers"]:
            w_sw = r.data(f"prune/layers/{layer}/w_software")
            w_chip = r.data(f"prune/layers/{layer}/w_programmed")
            err.append(((w_chip - w_sw) / np.abs(w_sw).max()).ravel())
        rmse = float(np.sqrt(np.mean(np.concatenate(err) ** 2)))
        assert r.summary["program_rmse"] == pytest.approx(rmse, rel=1e-12)
    names = {p.name for p in render_report(path, tmp_path / "fig")}
    assert {"prune_curves.png", "prune_weights.png", "prune_masks.png"} <= names


def test_missing_data_set_prints_hint_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "absent")
    out = tmp_path / "run.h5"
    code, _, text = _run_cli(["pipeline", "prune", "--dataset", "fashion-mnist",
                              "--out", str(out)], capsys)
    assert code == 2
    err_lines = [ln for ln in text.splitlines() if ln.startswith("labctl:")]
    assert len(err_lines) == 1 and "apt-get install -y dataset-fashion-mnist" in err_lines[0]
    assert list(tmp_path.iterdir()) == []
    assert not out.exists()


def test_zero_bits_and_zero_chip_test_limit_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 is a value, not "the default": --bits 0 and --chip-test-limit 0 are errors."""
    for extra, word in ((["--bits", "0"], "bits"), (["--chip-test-limit", "0"], "chip-test-limit")):
        out = tmp_path / "run.h5"
        try:
            code = main(["pipeline", "prune", "--dataset", "digits", "--epochs", "1",
                         "--out", str(out), *extra])
        except SystemExit as e:     # argparse's own refusal
            code = int(e.code or 0)
        captured = capsys.readouterr()
        text = captured.out + captured.err
        err_lines = [ln for ln in text.splitlines() if "error" in ln or ln.startswith("labctl:")]
        assert code == 2 and len(err_lines) == 1 and word in err_lines[0], text
        assert not out.exists()


def test_stand_in_data_is_labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "letters.h5"
    code, summary, text = _run_cli(
        ["pipeline", "prune", "--dataset", "letters", "--network", "mlp", "--limit", "130",
         "--epochs", "1", "--verify-max-pulses", "5", "--chip-test-limit", "26",
         "--out", str(out), "--json"], capsys)
    assert code == 0
    assert summary["stand_in"] is True and summary["dataset_label"] == "synthetic letters"
    assert "stand-in data set: synthetic letters" in text
    with RunReader(out) as r:
        assert r.provenance["stand_in"] is True
        assert r.provenance["dataset_label"] == "synthetic letters"
        assert "DejaVu" in r.provenance["source"]


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    data = load_dataset("digits", limit=300)
    cfg = PruneConfig(dataset="digits", network="mlp", epochs=3, verify_max_pulses=20,
                      energy=load_energy_model().as_dict())

    def fresh() -> tuple[PrunePipeline, SimulatedArray]:
        p = PrunePipeline(cfg, data)
        return p, SimulatedArray(load_model("rram-40nm-random"), p.layout.rows, p.layout.cols,
                                 seed=3)

    p, arr = fresh()
    seen: list[tuple[int, int, str]] = []
    with threadpool_limits(limits=1), RunWriter(
            tmp_path / "a.h5", command="pipeline prune", config=p.config_dict(),
            backend=arr.describe()) as w:
        whole = run(p, arr, w, progress=lambda d, t, label: seen.append((d, t, label)))
    # the bar moves through training too (forming's rows used to fill 90 % of it)
    done = [d / t for d, t, _ in seen]
    assert done == sorted(done) and done[-1] == 1.0
    epochs = [f for f, (_, _, label) in zip(done, seen, strict=True)
              if label.startswith("prune epoch")]
    assert len(epochs) == 3 and epochs[0] < 0.6 and epochs[-1] - epochs[0] > 0.1

    class Stop(Exception):
        pass

    def stop_in_training(done: int, total: int, label: str) -> None:
        if label.startswith("prune epoch 2"):
            raise Stop

    p, arr = fresh()
    path = tmp_path / "b.h5"
    with threadpool_limits(limits=1), RunWriter(
            path, command="pipeline prune", config=p.config_dict(), backend=arr.describe()) as w:
        with pytest.raises(Stop):
            run(p, arr, w, progress=stop_in_training)
    with RunReader(path) as r:
        ckpt = r.checkpoint()
    assert ckpt is not None and ckpt["protocol"]["stage"] == "train"
    p, arr = fresh()
    with threadpool_limits(limits=1), RunWriter(
            path, command="pipeline prune", config=p.config_dict(), backend=arr.describe(),
            resume=True) as w:
        resumed = run(p, arr, w, resume=ckpt)
    for k in ("accuracy_pruned", "accuracy_programmed", "accuracy_random", "set_reset_ops"):
        assert resumed[k] == whole[k]
    with RunReader(path) as r:
        assert len(r.data("prune/train/epoch")) == 3
        # mask flips are edges (pairs of cells), and the file says so
        assert r.units("prune/train/resets") == r.units("prune/train/sets") == "edges"


def test_a_chip_that_does_not_electroform_is_refused_before_a_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pruning uses the random conductances electroforming leaves: a two-FeFET preset is
    refused with one line, before any pulse or run file (it used to 'form' the FeFETs)."""
    out = tmp_path / "run.h5"
    code, _, text = _run_cli(["pipeline", "prune", "--dataset", "digits", "--epochs", "1",
                              "--preset", "mos2-fefet-2t", "--quiet", "--out", str(out)], capsys)
    err_lines = [ln for ln in text.splitlines() if ln.startswith("labctl:")]
    assert code == 2 and len(err_lines) == 1, text
    assert "1T1R ReRAM" in err_lines[0] and "fefet-2t" in err_lines[0]
    assert not out.exists()


def test_a_replay_on_a_chip_that_does_not_electroform_is_refused(
        digits_run: tuple[dict, Path, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, path, _ = digits_run
    code = main(["replay", str(path), "--preset", "mos2-fefet-2t",
                 "--out", str(tmp_path / "re.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "1T1R ReRAM" in err, err


def test_text_names_the_data_set_once() -> None:
    from labctl.commands.pipeline_prune import human

    acc = {f"accuracy_{a}": 0.5 for a in ("software", "random", "pruned", "programmed")}
    s = {"dataset": "fashion-mnist", "dataset_label": "Fashion-MNIST", "network": "mlp",
         "kept_fraction": 0.5, "set_reset_ops": dict.fromkeys(
             ("software", "random", "pruned", "programmed"), 0),
         "energy_J": dict.fromkeys(("software", "random", "pruned", "programmed")),
         "run_file": "p.h5", **acc}
    assert human(s).splitlines()[0].startswith("prune: Fashion-MNIST, network mlp")
