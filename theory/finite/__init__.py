r"""Finite-dimension theory: label averaging on the random Gram matrix of a Gaussian mixture.

Everything else in :mod:`theory` is the ``p -> inf`` block limit, where the Gram matrix is exactly
``(1-c) I + (c-d) B + d 11^T``. Here the features are the project's Gaussian mixture at finite
dimension ``p`` (:mod:`simulations.features`): ``x = mu_y + z``, ``||mu_k||^2 = c``,
``<mu_k, mu_l> = d``, ``z ~ N(0, sigma^2 I_p)``, ``sigma^2 = (1 - c)/p``. The Gram matrix is then
random: ``K`` class spikes on top of a Marchenko-Pastur bulk. This module gives deterministic
predictions -- computed, not sampled -- of the linearised dynamics (``docs/theory.md`` §11)

.. math::  P_t - \tfrac1K = \hat Y_c f_t(G), \qquad f_t(x) = \Big(\frac{x}{x + \kappa}\Big)^{t+1},
           \quad \kappa = K \lambda N, \quad \hat Y_c = \hat Y - \tfrac1K,

round by round: the mean and covariance of every group's training outputs (true class ``k``,
given label ``l``), hence the training accuracy of all / clean / mislabeled points through
Gaussian orthant probabilities (:mod:`theory.orthant`), and the population accuracy from the
exact conditional law of a fresh point's logits (:mod:`theory.population`).

Derivation in one paragraph (§11 has every step and the named assumptions). Rotate ``R^p`` so the
means span the first ``K`` coordinates: ``X = [J M + Z_1, Z_2]`` with ``J`` (N, K) the class
indicator, ``M`` (K, K) the mean coordinates (:func:`theory.gram.mean_coordinates`), ``Z_1``
(N, K) and ``Z_2`` (N, p - K) Gaussian. So ``G = W + V V^T`` *exactly*, with a white Wishart
``W = Z_2 Z_2^T`` (``p - K`` degrees of freedom) independent of ``V = J M + Z_1``. Functions of
``G`` are contour integrals of the resolvent ``Q(z) = (G + z)^{-1}`` on a circle around
``kappa`` (:func:`contour_weights`); Woodbury reduces ``Q`` to ``Q_W = (W + z)^{-1}`` and ``K x K``
algebra; ``W``'s eigenvectors are Haar distributed, so bilinear forms of ``Q_W`` concentrate on
the Marchenko-Pastur Stieltjes transform ``s(z)`` (:func:`bulk_stieltjes`), with Gaussian
fluctuations whose covariance is the divided difference of ``s``. The point's own row gives the
own-label (memorisation) part, the class sums give the class-histogram part. Second-order terms in
the ``K x K`` fluctuations (relative size ``K/N``) and the training set's trial-to-trial
fluctuations are kept: at ``N = 100`` they move accuracies by a few percent.

Cost: ``O(m^2 K^4)`` for ``m ~ 40 + 2R`` contour points and ``K^2`` groups, independent of ``n``,
plus ``K^2 (R + 1)`` orthant probabilities.

Layout (issue 23): :mod:`~theory.finite.model` (:class:`MixtureModel`),
:mod:`~theory.finite.spectrum` (bulk Stieltjes transform and fluctuation kernel, class spikes,
:func:`spectrum_top`, :func:`bulk_eigen_weights`), :mod:`~theory.finite.contour` (the contour
rule), :mod:`~theory.finite.moments` (resolvent-level deterministic equivalents, group and
population moments, :func:`clean_covariance`), :mod:`~theory.finite.predict`
(:func:`predict_finite`, :class:`FinitePrediction`, :func:`finite_resource_estimate`) and
:mod:`~theory.finite.conditions` (:func:`population_rounds`, :func:`finite_phase_diagram`). Every
public name is importable from :mod:`theory.finite` itself.

References
----------
R. Couillet, Z. Liao, *Random Matrix Methods for Machine Learning*, Cambridge UP, 2022, ch. 2-4
(deterministic equivalents, Marchenko-Pastur, spiked models, contour integrals).
"""

from theory.finite.conditions import PopulationRounds, finite_phase_diagram, population_rounds
from theory.finite.contour import Contour, contour_weights
from theory.finite.model import MixtureModel
from theory.finite.moments import (
    FinitePrecisionError,
    FiniteResolutionError,
    clean_covariance,
    label_grams,
)
from theory.finite.predict import (
    FINITE_MAX_ROUNDS,
    ORTHANT_TOL,
    FinitePrediction,
    finite_resource_estimate,
    predict_finite,
)
from theory.finite.spectrum import (
    FiniteSpectrum,
    bulk_density,
    bulk_eigen_weights,
    bulk_stieltjes,
    bulk_variance_kernel,
    finite_spectrum,
    spectrum_top,
)

__all__ = [
    "FINITE_MAX_ROUNDS",
    "FinitePrecisionError",
    "FinitePrediction",
    "FiniteResolutionError",
    "PopulationRounds",
    "finite_phase_diagram",
    "finite_resource_estimate",
    "population_rounds",
    "FiniteSpectrum",
    "MixtureModel",
    "bulk_density",
    "bulk_eigen_weights",
    "bulk_stieltjes",
    "bulk_variance_kernel",
    "contour_weights",
    "finite_spectrum",
    "predict_finite",
    "Contour",
    "ORTHANT_TOL",
    "clean_covariance",
    "label_grams",
    "spectrum_top",
]
