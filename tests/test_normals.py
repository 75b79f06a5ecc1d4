"""standard_normal_f32: exact N(0, 1) float32 values, reproducible from the generator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from labctl.normals import BLOCK_PAIRS, MIN_BOX_MULLER, standard_normal_f32

# both paths (numpy's below MIN_BOX_MULLER, Box–Muller above), odd and even, one and several
# blocks of BLOCK_PAIRS pairs
SIZES = [0, 1, 2, 3, MIN_BOX_MULLER - 1, MIN_BOX_MULLER, MIN_BOX_MULLER + 1,
         2 * BLOCK_PAIRS, 2 * BLOCK_PAIRS + 1, 5 * BLOCK_PAIRS + 7]


@pytest.mark.parametrize("n", SIZES)
def test_shape_dtype_and_finite(n: int) -> None:
    z = standard_normal_f32(np.random.default_rng(n), n)
    assert z.shape == (n,) and z.dtype == np.float32
    assert np.isfinite(z).all()


@pytest.mark.parametrize("n", SIZES)
def test_same_seed_same_values(n: int) -> None:
    a = standard_normal_f32(np.random.default_rng(7), n)
    b = standard_normal_f32(np.random.default_rng(7), n)
    np.testing.assert_array_equal(a, b)
    if n > 1:
        assert not np.array_equal(a, standard_normal_f32(np.random.default_rng(8), n))


@pytest.mark.parametrize("n", [1001, 200_000, 200_001])
def test_is_standard_normal(n: int) -> None:
    z = standard_normal_f32(np.random.default_rng(12345), n).astype(np.float64)
    assert abs(z.mean()) < 5 / np.sqrt(n)                  # 5 standard errors
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_moments_rule_out_approximations() -> None:
    """Skewness 0 and kurtosis 3 to a few 1e-2: a sum of 12 uniforms (kurtosis 2.9) fails."""
    z = standard_normal_f32(np.random.default_rng(2), 1_000_001).astype(np.float64)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / z.size)
    assert abs(stats.kurtosis(z, fisher=False) - 3) < 5 * np.sqrt(96 / z.size)


def test_pairs_are_uncorrelated() -> None:
    """The cosine and sine halves of the transform share their radius, not their value."""
    n = 2 * 5 * BLOCK_PAIRS
    z = standard_normal_f32(np.random.default_rng(3), n).astype(np.float64)
    a, b = z[:n // 2], z[n // 2:]
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)
    # independent, not only uncorrelated: a shared-radius artefact would correlate the squares
    assert abs(np.corrcoef(a**2, b**2)[0, 1]) < 5 / np.sqrt(a.size)


class _Constant:
    """A stand-in generator whose uniforms all equal ``u`` (rounded to the dtype asked for)."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self, size: int | None = None, dtype: type = np.float64,
               out: np.ndarray | None = None) -> np.ndarray:
        assert out is not None
        out[...] = dtype(self.u)
        return out


def test_radius_keeps_float64_resolution_at_both_ends() -> None:
    """U1 next to 1 gives |z| ~ 8.6 (float32 uniforms would stop at sqrt(48 ln 2) = 5.8);
    U1 = 2**-40 gives z ~ sqrt(2**-39), not 0 (a float32 ``1 - U1`` would round to 1)."""
    top = standard_normal_f32(_Constant(1 - 2.0**-53), MIN_BOX_MULLER)  # type: ignore[arg-type]
    assert np.abs(top).max() > 8.5
    tiny = standard_normal_f32(_Constant(2.0**-40), MIN_BOX_MULLER)  # type: ignore[arg-type]
    np.testing.assert_allclose(tiny[0], np.sqrt(2.0**-39), rtol=1e-5)
