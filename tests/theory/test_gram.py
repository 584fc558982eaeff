import numpy as np
import pytest

from tests.tolerances import assert_close
from theory.gram import block_eigenvalues, block_gram, check_block_params, gram_from_spectrum
from theory.validation import validate_gram


@pytest.mark.parametrize(
    "k,n,c,d", [(2, 3, 0.5, 0.1), (4, 5, 0.4, 0.1), (3, 4, 0.9, -0.2), (5, 2, 0.3, 0.3)]
)
def test_block_eigenvalues_vs_eigvalsh(k, n, c, d):
    mu1, mu2, mu3 = block_eigenvalues(k, n, c, d)
    expected = np.sort(np.linalg.eigvalsh(block_gram(k, n, c, d)))
    closed = np.sort(np.r_[mu1, np.full(k - 1, mu2), np.full(k * n - k, mu3)])
    # eigvalsh is backward stable: absolute error ~ N eps ||G||.
    assert_close(closed, expected, atol=1e-12 * k * n * max(1.0, mu1), rtol=0)


def test_block_gram_entries():
    g = block_gram(3, 2, 0.5, 0.1)
    assert g.shape == (6, 6)
    assert np.all(np.diag(g) == 1)
    assert g[0, 1] == 0.5 and g[1, 2] == 0.1


@pytest.mark.parametrize(
    "args,match",
    [
        ((1, 3, 0.5, 0.1), "n_classes"),
        ((3, 0, 0.5, 0.1), "per_class"),
        ((3, 3, 1.5, 0.1), "c must be <= 1"),
        ((3, 3, 0.5, -0.5), "mu_1"),
        ((3, 3, 0.2, 0.9), "mu_2"),
        ((3, 3, float("nan"), 0.1), "finite"),
    ],
)
def test_block_params_rejected(args, match):
    with pytest.raises(ValueError, match=match):
        check_block_params(*args)


def test_gram_from_spectrum_known_answer():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    mu = np.array([5.0, 3.0, 1.0, 0.5, 0.0, 0.0])
    g = gram_from_spectrum(q, mu)
    assert_close(np.sort(np.linalg.eigvalsh(g)), np.sort(mu), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="eigenvalues"):
        gram_from_spectrum(q, -mu)


def test_validate_gram_rejects():
    with pytest.raises(ValueError, match="not symmetric"):
        validate_gram(np.array([[1.0, 0.5], [0.4, 1.0]]))
    with pytest.raises(ValueError, match="positive semidefinite"):
        validate_gram(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        validate_gram(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        validate_gram(np.ones((2, 3)))
