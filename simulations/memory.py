r"""Memory estimates of the Monte Carlo before allocation: refuse up front what cannot fit.

The command lines (``python -m simulations run | sweep | probe``), the estimator's ``fit`` and the
explorer estimate the peak memory of the arrays a run allocates *before* allocating them and stop
with one line naming the estimate and the limit (:class:`MemoryLimitError`, a ``ValueError``)
when it does not fit. The limit is the memory available now (:func:`available_bytes`) unless the
user passes ``--max-memory GB``. The limit, the check and the refusal are
:mod:`selfdistill_cli.memory`'s (re-exported here: :func:`check_memory`,
:func:`parse_max_memory`); this module is the registry of the Monte Carlo's estimates.

Estimates (float64, 8 bytes per number; ``N = K n`` training points, ``p`` features, ``r =
min(N, p)`` the rank of the spectral features, ``T`` test points, ``R`` rounds)
---------------------------------------------------------------------------------------------
One trial (:func:`trial_bytes`, :func:`simulations.pipelines.run_trial`), the larger of

* drawing the features: the draw ``X`` and its two summands (class means per row, noise),
  ``3 N p``, and afterwards the test draw ``3 T p`` next to ``X``;
* solving: ``X``, ``|X|`` (round-off bound of the certificate), the spectral features and their
  squares (``2 N r``), the test points ``T p``, the factorisation (``3 p^2`` for ``X^T X`` with
  ``p <= N``, else ``5 N^2`` for the Gram matrix, its symmetrised copy, eigenvectors and LAPACK
  work space), ``K^2 N`` for the block preconditioner and per round (plus one student) the outputs,
  logits and dual coefficients ``(R + 2)(4 K N + K p)``.

Exact-block features have ``p = K + N``. The group-level theory printed next to a run
(:func:`group_theory_bytes`) uses the theory's own estimate of its structured solver.
The finite-``p`` theory printed next to a mixture run (:func:`finite_theory_bytes`,
:func:`theory.finite.predict_finite`) holds complex ``(m, K, K, K)``-sized working arrays for its
``m`` contour points: ``48 m K^3`` complex numbers, the measured peak ``~30 m K^3`` (K = 5..30)
with headroom.
One fit of :class:`simulations.estimator.SelfDistillationClassifier` (:func:`fit_memory_bytes`)
holds the input and its preprocessed copy, the spectral features and the eigenproblem, the
solver's work arrays and every kept round's outputs (its docstring).
A probe on real features (:func:`probe_bytes`) preprocesses a copy of the features and splits it
(``3 N p``), then factorises the training split as above; its theory adds a thin SVD
(``2 N_train r``) and the group-level theory of the fitted block model.

The estimates are checked against ``tracemalloc`` peaks (which count numpy's allocations) in
``tests/simulations/test_memory.py``: never below the measured peak, and within a small factor of
it. Every estimate includes :data:`OVERHEAD` for small arrays and Python objects; the interpreter
and imported libraries (~100-200 MB) come on top and are not counted.
"""

from __future__ import annotations

import numpy as np

from selfdistill_cli.memory import (
    GB,
    MemoryLimitError,
    available_bytes,
    check_memory,
    parse_max_memory,
)

__all__ = [
    "GB",
    "OVERHEAD",
    "WORKER_BYTES",
    "MemoryLimitError",
    "available_bytes",
    "check_memory",
    "finite_theory_bytes",
    "fit_memory_bytes",
    "group_theory_bytes",
    "parse_max_memory",
    "probe_bytes",
    "trial_bytes",
]

_F8 = 8  # bytes of a float64
#: Added to every estimate: small arrays, Python objects and caches of one run (measured peaks of
#: tiny runs are 0.1-2 MB above their arrays).
OVERHEAD = 4 * 2**20


#: Up to this many rounds :func:`finite_theory_bytes` asks the theory for its exact number of
#: contour points (which allocates ``(R + 1) m`` complex numbers, 18 MB at R = 1000); above, the
#: bound ``m <= R + 147`` of :func:`theory.finite.contour_weights` is used.
_CONTOUR_ROUNDS = 1000
#: Memory of one worker process before it allocates anything: the interpreter with numpy, scipy
#: and the toolkit imported (~100-150 MB resident, measured).
WORKER_BYTES = 150 * 2**20


def _solve_numbers(n: int, p: int, k: int, rounds: int, n_test: int) -> int:
    r = min(n, p)
    factor = 3 * p * p if p <= n else 5 * n * n
    return (
        2 * n * p + 2 * n * r + n_test * p + factor + k * k * n + (rounds + 2) * (4 * k * n + k * p)
    )


def trial_bytes(config) -> int:
    """Estimated peak bytes of :func:`simulations.pipelines.run_trial` for ``config``.

    Parameters
    ----------
    config : simulations.pipelines.TrialConfig

    Returns
    -------
    int
        ``8 * max(draw, solve)`` numbers (module docstring).
    """
    k, n = int(config.n_classes), int(config.n_samples)
    if config.features == "mixture":
        p, n_test = int(config.dim), k * int(config.n_test)
        draw = max(3 * n * p, n * p + 3 * n_test * p)
    else:  # exact-block: [mu_y, sqrt(1-c) e_i] features, one kernel row per class for testing
        p, n_test = k + n, k
        draw = 2 * n * p
    draw += 3 * k * k  # the transition matrix, its cumulative rows and the realised counts
    solve = _solve_numbers(n, p, k, int(config.rounds), n_test)
    if config.method in ("pll-candidate", "pll-gce", "pll-gce-ref"):
        solve += _second_order_numbers(k, min(n, p))
    return OVERHEAD + _F8 * max(draw, solve)


def _second_order_numbers(k: int, r: int) -> int:
    """Working set of the non-convex PLL students' second-order test (``simulations.pll_losses``).

    Dense Hessian for ``K r <= DENSE_HESSIAN_MAX``: three ``(K r)^2`` arrays (the blocks, the
    Hessian and LAPACK's copy) plus three sample-chunk operands of ``2^21`` numbers; otherwise
    Lanczos on ``K r`` vectors.
    """
    from simulations.pll_losses import DENSE_HESSIAN_MAX

    if k * r <= DENSE_HESSIAN_MAX:
        return 3 * (k * r) ** 2 + 3 * 2**21
    return 40 * k * r


def group_theory_bytes(n_classes: int, rounds: int, *, escape: bool = False) -> int:
    """Estimated peak bytes of the group-level theory (:mod:`theory.groups`, :mod:`theory.pll`).

    The theory's own estimate (:func:`theory.groups.prediction_memory_bytes`, the structured
    ``O(K^3)`` Newton solver with a rank-3 loss) for the worst case of every group non-empty;
    ``escape=True`` (a non-convex PLL student: ``candidate``, ``gce``) adds the escape from a
    saddle point (:func:`theory.group_descent.descent_memory_bytes`).
    """
    from theory.report import group_prediction_bytes

    # G = K^2 non-empty groups (the largest working set), in arithmetic: building the K x K count
    # matrix to ask would itself be 80 GB at K = 10^5.
    return OVERHEAD + group_prediction_bytes(n_classes, int(n_classes) ** 2, rounds, escape=escape)


def finite_theory_bytes(model, lam: float, rounds: int, counts=None) -> int:
    """Estimated peak bytes of :func:`theory.finite.predict_finite` (module docstring).

    ``16 * 48 m K^3`` with ``m`` the number of contour points the theory will use
    (:func:`theory.finite.contour_weights`, computed here without the theory's work). With
    ``counts`` that have a class symmetry (:func:`theory.class_symmetry.class_symmetry`) the
    theory takes its orbit path instead, estimated by
    :func:`theory.finite_symmetric.symmetric_cost` (``12 m^2 K`` numbers plus the orthant
    rule's chunked work space).

    Parameters
    ----------
    model : theory.finite.MixtureModel
    lam : float
    rounds : int
    counts : array_like of int, shape (K, K), optional
        The count matrix (unknown before sampling: then the general path, the larger estimate).
    """
    from theory.class_symmetry import class_symmetry
    from theory.finite import contour_weights, spectrum_top

    k, r = int(model.n_classes), int(rounds)
    if r > _CONTOUR_ROUNDS:
        # contour_weights itself holds (R + 1) x m complex powers (14.6 TiB at R = 10^6): use its
        # documented bound m <= R + 147 instead of building them.
        return OVERHEAD + 16 * 48 * (r + 147) * k**3
    kappa = k * float(lam) * model.n_samples
    top = spectrum_top(model)
    m = contour_weights(kappa, r, top).z.size
    sym = None if counts is None else class_symmetry(np.asarray(counts))
    if sym is not None:
        from theory.finite_symmetric import symmetric_cost

        m_cov = contour_weights(kappa, 2 * r + 1, top).z.size
        numbers, _ = symmetric_cost(k, r, len(sym.group_reps), m, m_cov)
        return OVERHEAD + _F8 * numbers
    return OVERHEAD + 16 * 48 * m * k**3


def probe_bytes(
    n_samples: int, n_features: int, n_classes: int, n_train: int, rounds: int, theory: bool
) -> int:
    """Estimated peak bytes of one probe trial (:mod:`simulations.probe`) beyond the loaded data.

    Parameters
    ----------
    n_samples, n_features, n_classes : int
        Shape of the whole dataset (all splits) and number of classes.
    n_train : int
        Training rows (the solver works on these).
    rounds : int
    theory : bool
        Whether the theory on the real features is computed too.
    """
    n, p, k, m = int(n_samples), int(n_features), int(n_classes), int(n_train)
    numbers = 3 * n * p + _solve_numbers(m, p, k, int(rounds), n - m)
    numbers += _second_order_numbers(k, min(m, p))  # the non-convex PLL students
    total = OVERHEAD + _F8 * numbers
    if theory:
        total += _F8 * 2 * m * min(m, p) + group_theory_bytes(k, rounds)
    return total


def fit_memory_bytes(
    n_samples: int, n_features: int, n_classes: int, rounds: int = 1, store_outputs=False
) -> int:
    """Estimated peak memory (bytes) of one ``fit`` on an (N, p) float64 matrix with K classes.

    Counts the input and its preprocessed copy (``2 N p``), the spectral features and their squares
    (``2 N m`` with ``m = min(N, p)``), the ``m x m`` matrix being eigendecomposed with LAPACK's
    workspace and eigenvectors (``~4 m^2``, plus ``N^2`` for the Gram matrix when ``p > N``), the
    solver's (K, N) work arrays (``~16 K N``) and, for every one of the ``rounds + 1`` models kept
    (self-distillation keeps each round's solution), its outputs, logits, duals and weights
    (``3 K N + 2 K p``; ``K N`` more with ``store_outputs``), in float64.
    """
    n, p, k, r = int(n_samples), int(n_features), int(n_classes), int(rounds)
    m = min(n, p)
    gram = n * n if p > n else 0
    per_round = 3 * k * n + 2 * k * p + (k * n if store_outputs else 0)
    return 8 * (2 * n * p + 2 * n * m + 4 * m * m + gram + 16 * k * n + (r + 1) * per_round)
