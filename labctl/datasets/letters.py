"""Synthetic letters: a stand-in for EMNIST letters (which no package ships), never called EMNIST.

26 classes (a-z, upper and lower case merged as in EMNIST letters).  Each sample is one glyph
of the six DejaVu faces of Debian's ``fonts-dejavu-core`` (matplotlib ships the same faces, so
this also works without the Debian package), under a random affine map (rotation, shear, scale,
shift), rasterised on a 2x super-sampled 28x28 grid with the even-odd rule, plus Gaussian noise.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

import numpy as np

from labctl.datasets._common import Dataset
from labctl.errors import DatasetNotInstalled

DEBIAN_DIR = Path("/usr/share/fonts/truetype/dejavu")
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")
SIZE = 28
SUPER = 2
BOX_PX = 20.0  # glyph box like MNIST's 20x20 digit box in a 28x28 frame
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 80
NOISE_SIGMA = 0.05
HINT = "apt-get install -y fonts-dejavu-core  (or pip install matplotlib, which ships DejaVu)"


def font_dir() -> Path:
    """Debian's DejaVu directory when it has every face, else matplotlib's bundled copy."""
    if all((DEBIAN_DIR / f).is_file() for f in FACES):
        return DEBIAN_DIR
    try:
        import matplotlib
    except ImportError as exc:
        raise DatasetNotInstalled(f"no DejaVu fonts found; install: {HINT}") from exc
    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    if not all((bundled / f).is_file() for f in FACES):
        raise DatasetNotInstalled(f"no DejaVu fonts found; install: {HINT}")
    return bundled


@cache
def _glyph(font_path: str, char: str) -> tuple[np.ndarray, ...]:
    """Outline polygons of one glyph, centred and scaled to a unit box."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    path = TextPath((0.0, 0.0), char, size=1.0, prop=FontProperties(fname=font_path))
    polys = path.to_polygons(closed_only=True)
    pts = np.concatenate(polys)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, extent = (lo + hi) / 2, float((hi - lo).max())
    return tuple((p - centre) / extent for p in polys)


def _grid() -> np.ndarray:
    """Super-sampled pixel centres in image coordinates (x right, y down)."""
    c = (np.arange(SIZE * SUPER) + 0.5) / SUPER
    xx, yy = np.meshgrid(c, c)
    return np.column_stack([xx.ravel(), yy.ravel()])


def _affine(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random jitter: rotation +-12 deg, shear +-0.25, scale 0.75..1.05, shift +-2 px."""
    theta = np.deg2rad(rng.uniform(-12, 12))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    shear = np.array([[1.0, rng.uniform(-0.25, 0.25)], [0.0, 1.0]])
    flip_y = np.diag([1.0, -1.0])  # glyph y points up, image rows point down
    matrix = BOX_PX * rng.uniform(0.75, 1.05) * flip_y @ rot @ shear
    shift = SIZE / 2 + rng.uniform(-2, 2, size=2)
    return matrix, shift


def render(polys: tuple[np.ndarray, ...], rng: np.random.Generator,
           grid: np.ndarray) -> np.ndarray:
    """One jittered, anti-aliased (box-filtered) 28x28 image in [0, 1] with noise."""
    from matplotlib.path import Path as MplPath

    matrix, shift = _affine(rng)
    inside = np.zeros(len(grid), bool)
    for poly in polys:
        inside ^= MplPath(poly @ matrix.T + shift).contains_points(grid)
    img = inside.reshape(SIZE, SUPER, SIZE, SUPER).mean(axis=(1, 3))
    img = img + rng.normal(0.0, NOISE_SIGMA, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def generate(n_per_class: int, rng: np.random.Generator,
             directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` samples of each of the 26 letters, in a seeded random order."""
    grid = _grid()
    y = rng.permutation(np.repeat(np.arange(26, dtype=np.int64), n_per_class))
    x = np.empty((len(y), SIZE, SIZE), np.float32)
    for i, cls in enumerate(y):
        face = FACES[rng.integers(len(FACES))]
        cases = string.ascii_uppercase if rng.random() < 0.5 else string.ascii_lowercase
        x[i] = render(_glyph(str(directory / face), cases[cls]), rng, grid)
    return x, y


def load(*, data_dir: str | None = None, seed: int = 0, limit: int | None = None) -> Dataset:
    """Generate the train and test sets from independent seeded streams."""
    directory = Path(data_dir) if data_dir is not None else font_dir()
    n_train = TRAIN_PER_CLASS if limit is None else min(TRAIN_PER_CLASS, -(-limit // 26))
    n_test = TEST_PER_CLASS if limit is None else min(TEST_PER_CLASS, -(-limit // 26))
    x_tr, y_tr = generate(n_train, np.random.default_rng([seed, 26, 0]), directory)
    x_te, y_te = generate(n_test, np.random.default_rng([seed, 26, 1]), directory)
    return Dataset(name="letters", label="synthetic letters",
                   x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, n_classes=26,
                   stand_in=True, source=f"rendered from DejaVu fonts in {directory}")
