"""Finite-dimension theory (theory/finite/): its pieces against exact computations.

The Monte Carlo comparisons of the whole prediction live in
``tests/simulations/test_finite_vs_simulation.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import theory.finite.spectrum as tf_spectrum
from tests.tolerances import assert_close
from theory.finite import (
    MixtureModel,
    bulk_density,
    bulk_eigen_weights,
    bulk_stieltjes,
    bulk_variance_kernel,
    contour_weights,
    finite_spectrum,
    predict_finite,
    spectrum_top,
)
from theory.groups import BlockModel, predict_linear
from theory.noise import exact_counts, transition_matrix


@pytest.mark.parametrize("kappa", [1e-4, 0.4, 4.0, 40.0, 400.0, 1e5])
@pytest.mark.parametrize("rounds", [0, 3, 10, 30])
def test_contour_weights_vs_closed_form(kappa, rounds):
    """f_t(x) = c0 - sum w z/(x + z) and g_t(x) = sum w/(x + z) on [0, top], both contour families.

    Tolerance: the rule's round-off, eps * 1.4^R (around the spectrum) or eps (q/u_top)^(R+1)
    <= 1e-7 (around kappa), relative to the largest value over the spectrum.
    """
    top = 20.0
    x = np.concatenate([[0.0], np.logspace(-3, math.log10(top / 1.1), 50)])
    cont = contour_weights(kappa, rounds, top)
    f = cont.identity - np.real(cont.weights @ (cont.z[:, None] / (x[None, :] + cont.z[:, None])))
    g = np.real(cont.weights @ (1.0 / (x[None, :] + cont.z[:, None])))
    powers = np.arange(rounds + 1)[:, None]
    f_exact = (x / (x + kappa))[None, :] ** (powers + 1)
    g_exact = x[None, :] ** powers / (x + kappa)[None, :] ** (powers + 1)
    for got, want in ((f, f_exact), (g, g_exact)):
        scale = want.max(axis=1, keepdims=True)
        assert np.max(np.abs(got - want) / scale) <= 1e-7


@pytest.mark.slow
@pytest.mark.parametrize("n, p", [(400, 200), (400, 800), (300, 300)])
def test_bulk_stieltjes_vs_wishart_eigenvalues(n, p):
    """s(z) against (1/N) tr (W + z)^-1 of one sampled Wishart matrix (both half-planes).

    The sample's own fluctuation is O(1/N) for such linear statistics; tolerance 3%.
    """
    model = MixtureModel(4, n // 4, p, 0.4, 0.1)
    rng = np.random.default_rng(0)
    z2 = rng.standard_normal((n, p - 4)) * math.sqrt(model.noise_var)
    lam = np.linalg.eigvalsh(z2 @ z2.T)
    # points at distance >= 0.3 from the bulk (the contours stay further away than that)
    zs = np.array([0.5 + 0.3j, -0.5 + 0.6j, -3 + 1j, -1 - 0.8j, 2 - 1j, 0.7])
    s, ds = bulk_stieltjes(zs, model)
    emp = np.array([np.mean(1 / (lam + z)) for z in zs])
    demp = np.array([-np.mean(1 / (lam + z) ** 2) for z in zs])
    assert np.all(np.abs(s - emp) <= 0.03 * np.abs(emp))
    assert np.all(np.abs(ds - demp) <= 0.05 * np.abs(demp))


def test_bulk_variance_kernel_vs_divided_difference():
    model = MixtureModel(3, 40, 90, 0.4, 0.1)
    z1 = np.array([0.3 + 0.2j, 1.5 - 0.1j, 0.8])
    z2 = np.array([0.9 - 0.4j, 0.2 + 0.05j, 2.0])
    s1, _ = bulk_stieltjes(z1, model)
    s2, _ = bulk_stieltjes(z2, model)
    direct = (s1 - s2) / (z2 - z1) - s1 * s2
    assert_close(bulk_variance_kernel(s1, s2, model).real, direct.real, rtol=1e-10)
    assert_close(bulk_variance_kernel(s1, s2, model).imag, direct.imag, rtol=1e-10, atol=1e-14)
    # diagonal: c(z, z) = -s'(z) - s(z)^2 >= 0 for real z > 0
    s, ds = bulk_stieltjes(np.array([0.5]), model)
    c = bulk_variance_kernel(s, s, model)
    assert_close(c.real, (-ds - s * s).real, rtol=1e-10)
    assert c.real[0] > 0


def test_bulk_density_integrates_to_one():
    model = MixtureModel(4, 50, 80, 0.4, 0.1)  # p - K = 76 < N = 200: an atom at 0
    edges = finite_spectrum(model).bulk_edges
    x = np.linspace(edges[0], edges[1], 200001)
    dens, atom = bulk_density(x, model)
    mass = float(np.sum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x)))  # trapezoid rule
    assert atom == pytest.approx(1 - 76 / 200)
    assert mass + atom == pytest.approx(1.0, abs=2e-3)  # square-root edges: trapezoid error


@pytest.mark.slow
@pytest.mark.parametrize("p", [100, 400, 2000])
def test_finite_spectrum_spikes_vs_sampled_gram(p):
    """Predicted outliers and bulk edge against the eigenvalues of one sampled Gram matrix.

    Outliers fluctuate by O(sqrt(spike/N)); tolerance 10% (N = 300).
    """
    from simulations.features import mixture_gram

    k, n, c, d = 3, 100, 0.4, 0.1
    model = MixtureModel(k, n, p, c, d)
    spec = finite_spectrum(model)
    y = np.repeat(np.arange(k), n)
    g = mixture_gram(k, p, c, d, y, np.random.default_rng(1))
    eig = np.sort(np.linalg.eigvalsh(g))[::-1]
    found = spec.spikes[np.isfinite(spec.spikes)]
    assert found.size == k  # all three class spikes are above the threshold here
    assert_close(eig[:k], np.sort(found)[::-1], rtol=0.1, what="spikes")
    assert eig[k] <= 1.1 * spec.bulk_edges[1]


def _spikes_one_by_one(model, top):
    """Reference: the bisection for every spike strength, repeated ones included (no reuse)."""
    out = []
    for t in np.sort(np.linalg.eigvalsh(_strength_matrix(model)))[::-1]:
        lo = top * (1 + 1e-12) + 1e-300
        if 1.0 + t * tf_spectrum._real_stieltjes_above(lo, model) >= 0:
            out.append(math.nan)
            continue
        hi = max(2 * lo, top + 2 * t + 1.0)
        while 1.0 + t * tf_spectrum._real_stieltjes_above(hi, model) < 0:
            hi *= 2.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if 1.0 + t * tf_spectrum._real_stieltjes_above(mid, model) < 0:
                lo = mid
            else:
                hi = mid
        out.append(0.5 * (lo + hi))
    return np.array(out)


def _strength_matrix(model):
    t = model.per_class * model.means().T @ model.means()
    t = t + model.n_samples * model.noise_var * np.eye(model.n_classes)
    return 0.5 * (t + t.T)


@pytest.mark.parametrize("k, p, c, d", [(10, 500, 0.5, 0.1), (3, 100, 0.4, 0.1), (6, 60, 0.3, 0.3)])
def test_finite_spectrum_reused_spikes_vs_one_by_one(k, p, c, d):
    """Equal spike strengths are solved once and reused: the same floats as solving each."""
    model = MixtureModel(k, 50, p, c, d)
    spec = finite_spectrum(model)
    np.testing.assert_array_equal(spec.spikes, _spikes_one_by_one(model, spec.bulk_edges[1]))


def test_spectrum_top_cached_vs_uncached():
    """spectrum_top is cached per model (it does not depend on lam, counts or rounds)."""
    model = MixtureModel(10, 50, 500, 0.5, 0.1)
    first = spectrum_top(model)
    hits = spectrum_top.cache_info().hits
    again = spectrum_top(MixtureModel(10, 50, 500, 0.5, 0.1))  # an equal model: a cache hit
    assert spectrum_top.cache_info().hits == hits + 1
    assert again == first == spectrum_top.__wrapped__(model)
    assert spectrum_top(MixtureModel(10, 50, 400, 0.5, 0.1)) != first


@pytest.mark.slow
def test_bulk_eigen_weights_vs_sampled_spectrum():
    """Average of (mu/(mu + kappa))^(t+1) over the bulk vs the sampled bulk eigenvalues."""
    k, n, p, lam = 4, 100, 300, 1e-3
    model = MixtureModel(k, n, p, 0.4, 0.1)
    rng = np.random.default_rng(2)
    z2 = rng.standard_normal((k * n, p - k)) * math.sqrt(model.noise_var)
    lam_w = np.linalg.eigvalsh(z2 @ z2.T)
    kappa = k * lam * k * n
    want = [np.mean((lam_w / (lam_w + kappa)) ** (t + 1)) for t in range(6)]
    assert_close(bulk_eigen_weights(model, lam, 5), want, rtol=0.02, what="bulk weights")


@pytest.mark.parametrize("lam", [1e-3, 1e-1, 1.0])
@pytest.mark.parametrize("noise", ["sym", "asym"])
def test_predict_finite_block_limit_vs_predict_linear(lam, noise):
    """p = inf: no bulk spread, no noise in the means' span -> the block model's linear groups.

    The contour rule's relative round-off (<= 1e-7 of the largest output, contour_weights) bounds
    the difference; accuracies must agree exactly.
    """
    k, n, c, d = 4, 25, 0.4, 0.1
    counts = exact_counts(transition_matrix(noise, k, 0.3), n)
    fin = predict_finite(MixtureModel(k, n, math.inf, c, d), counts, lam, 10)
    lin = predict_linear(BlockModel(k, n, c, d), counts, lam, 10)
    kk, ll = np.nonzero(counts)
    got, want = fin.group_means[:, kk, ll], lin.deviations[:, kk, ll]
    scale = np.abs(want).max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(got - want) / scale) <= 1e-7
    assert np.all(fin.group_covs[:, kk, ll] == 0.0)
    for key in ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc"):
        assert_close(getattr(fin, key), getattr(lin, key), what=key)


def test_predict_finite_class_relabelling():
    """Relabelling classes permutes groups and leaves the accuracies unchanged."""
    k, n, p = 4, 20, 120
    rng = np.random.default_rng(3)
    counts = rng.multinomial(n, [0.55, 0.15, 0.15, 0.15], size=k)
    counts = np.array([np.roll(row, i) for i, row in enumerate(counts)])
    perm = np.array([2, 0, 3, 1])
    model = MixtureModel(k, n, p, 0.4, 0.1)
    a = predict_finite(model, counts, 1e-3, 3)
    b = predict_finite(model, counts[np.ix_(perm, perm)], 1e-3, 3)
    tol = 2 * max(a.quadrature_err, b.quadrature_err) + 1e-12
    for key in ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc"):
        assert_close(getattr(a, key), getattr(b, key), atol=tol, what=key)
    assert_close(b.group_means[:, 0, 1], a.group_means[:, perm[0], perm[1]][:, perm], atol=1e-9)


def test_predict_finite_cost_independent_of_n():
    k, p_ratio, lam = 3, 2, 1e-3
    preds = []
    for n in (10, 10_000):
        counts = exact_counts(transition_matrix("sym", k, 0.3), n)
        preds.append(predict_finite(MixtureModel(k, n, p_ratio * k * n, 0.4, 0.1), counts, lam, 2))
    assert preds[1].group_means.shape == preds[0].group_means.shape


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"dim": 2}, "dim"),
        ({"c": 1.2}, "c"),
        ({"d": 0.5}, "d"),
        ({"per_class": 0}, "per_class"),
    ],
)
def test_mixture_model_bad_input(kwargs, word):
    params = dict(n_classes=3, per_class=10, dim=50, c=0.4, d=0.1) | kwargs
    with pytest.raises(ValueError, match=word):
        MixtureModel(**params)


def test_predict_finite_bad_input():
    model = MixtureModel(3, 10, 50, 0.4, 0.1)
    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    with pytest.raises(ValueError, match="lam"):
        predict_finite(model, counts, 0.0, 2)
    with pytest.raises(ValueError, match="rounds"):
        predict_finite(model, counts, 1e-3, -1)
    with pytest.raises(ValueError, match="counts"):
        predict_finite(model, counts[:2], 1e-3, 1)
    with pytest.raises(ValueError, match="model must be a theory.finite.MixtureModel"):
        predict_finite(None, counts, 1e-3, 1)  # was an AttributeError
