"""Input validation shared by the whole toolkit.

Every public function that accepts a Gram matrix, targets, labels or a regularisation strength
validates it here, so that bad input fails with one clear ``ValueError`` naming the parameter and
the valid range instead of producing NaNs downstream.
"""

from __future__ import annotations

import numpy as np

#: Relative tolerance for symmetry of a Gram matrix, ``max|G - G^T| <= SYM_RTOL * max(1, max|G|)``.
#: Round-off of ``X @ X.T`` in float64 is far below this; user matrices above it are not symmetric.
SYM_RTOL = 1e-10
#: Relative PSD tolerance: the smallest eigenvalue must be ``>= -PSD_RTOL * max(1, |mu_max|)``.
#: ``eigh`` has backward error ~ N * eps * ||G||; 1e-8 covers N up to ~1e7 with margin.
PSD_RTOL = 1e-8
#: Absolute tolerance for targets lying on the simplex (entries >= -tol, columns summing to 1).
SIMPLEX_ATOL = 1e-9
#: Largest fixed-point residual, relative to the outputs' deviation from uniform, that any solver
#: reports as certified (converged), whatever its round-off floor: a certified solution has at
#: least six correct digits of every output's deviation from ``1/K``. Where round-off does not
#: allow that (``lam`` so small that ``1 / (lam N)`` amplifies the rounding of the force beyond
#: the outputs themselves) the solve is reported as *not* converged: residual 0.67 with a floor
#: of 2.4 at ``lam = 1e-16`` used to read as certified (issue 21).
CERTIFICATE_RTOL_CAP = 1e-6

#: Range of the regularisation strength ``lam`` that every entry point accepts (command lines,
#: :class:`simulations.pipelines.TrialConfig`, the probe, the estimator): :func:`check_lam`.
#: Both ends were found by experiment (issue 21; K = 2..100, n = 1..10^9, lam = 1e-300..1e308) and
#: follow from the filter ratios ``a_j = mu_j / (mu_j + K lam N)`` of the eigenvalues ``mu_j`` of
#: a Gram matrix of unit-norm features (``mu_j <= N``, the trace):
#:
#: * lower end: ``1 - a_j ~ K lam N / mu_j >= K lam`` must stay far above the float64 spacing
#:   ``eps = 2.2e-16`` near 1. At ``lam = 1e-12`` it is ``>= 2e-12`` (four decades of margin);
#:   around ``lam = 1e-20`` ``a_j`` rounds to 1 and the probe solver divides by zero, at
#:   ``lam = 1e-200`` the eigensolver fails. Between ``1e-12`` and ``~1e-10`` the round-off floor
#:   of the certificates (``~eps mu_1 / (lam N)``) can exceed
#:   :data:`CERTIFICATE_RTOL_CAP`: such a solve is reported as *not converged*, never as certified.
#: * upper end: the group-level coupling ``(c - d) / (lam N)`` and its square must stay far above
#:   the smallest normal double (``2.2e-308``): with ``lam <= 1e12`` and ``N <= MAX_SAMPLES ~ 9e15``
#:   they are ``>= 1e-56``; at ``lam = 1e200`` (N = 15) they underflow and the structured Newton
#:   step divides by zero. Outputs then sit within ``~1 / (K lam N)`` of ``1/K``; every solver
#:   certifies *relative* to that distance, so the decisions (taken from logits) keep their digits.
#:   Self-distillation rounds after the teacher shrink the deviations by ``a_j`` per round; the
#:   probe solver resolves a round only while ``K lam N / mu_2`` stays below ``~tol / eps``
#:   (``~4e6`` at its default ``tol = 1e-9``), beyond which it stops with a one-line
#:   ``ConvergenceError`` instead of returning an uncertified point.
LAM_MIN = 1e-12
LAM_MAX = 1e12
#: Largest number of training points ``N = K n`` of a model: every count is then an integer
#: exactly representable in float64 (``2^53``); larger values lose integers in the eigenvalues
#: ``n (c - d)``, ``K n d`` (``--per-class 10**21`` used to overflow int64 with a traceback).
MAX_SAMPLES = 2**53


def check_solver_lam(value, name: str = "lam") -> float:
    """``lam`` for the certified probe solver: a number ``>= LAM_MIN``, with no upper end.

    Below :data:`LAM_MIN` the filter ratios ``mu_j / (mu_j + K lam N)`` round to 1 and the
    solver's arithmetic breaks down (a ZeroDivisionError in CG at 1e-20). Upwards it is
    scale-free: its certificate is relative to the outputs' distance from uniform (tested at
    ``lam = 1e250``), unlike the group-level theories, which :func:`check_lam` bounds at
    :data:`LAM_MAX`. Booleans and strings are refused, not converted.
    """
    if not is_real_number(value):
        raise ValueError(
            f"{name} must be a number >= {LAM_MIN:g}, got {value!r} ({type(value).__name__})"
        )
    val = check_positive(value, name)
    if val < LAM_MIN:
        raise ValueError(
            f"{name} must be >= {LAM_MIN:g} (below it mu/(mu + K lam N) rounds to 1 and the "
            f"solver's arithmetic breaks down; docs/reliability.md), got {value!r}"
        )
    return val


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float, raising ``ValueError`` unless it is finite and > 0."""
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not np.isfinite(val) or val <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return val


def is_real_number(value) -> bool:
    """Whether ``value`` is an int or float (numpy's included) and not a bool: a bool or a string
    passed for a number is a mistake to refuse, not to convert (``eta=True`` is not 1.0)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(
        value, (int, float, np.integer, np.floating)
    )


def check_lam(value, name: str = "lam") -> float:
    """Return ``lam`` as a float in ``[LAM_MIN, LAM_MAX]`` (the supported range, see there).

    Raises ``ValueError`` naming the parameter and the range otherwise (also for booleans and
    strings: ``lam=True`` or ``lam='0.1'`` are refused, not converted).
    """
    if not is_real_number(value):
        raise ValueError(
            f"{name} must be a number in [{LAM_MIN:g}, {LAM_MAX:g}], got {value!r} "
            f"({type(value).__name__})"
        )
    val = float(value)
    if not np.isfinite(val) or val <= 0:
        raise ValueError(
            f"{name} must be a finite number > 0, in [{LAM_MIN:g}, {LAM_MAX:g}], got {value!r}"
        )
    if not LAM_MIN <= val <= LAM_MAX:
        raise ValueError(
            f"{name} must lie in [{LAM_MIN:g}, {LAM_MAX:g}], the range the solvers support "
            f"(docs/reliability.md), got {value!r}"
        )
    return val


def check_int(value, name: str, minimum: int) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_finite_matrix(array, name: str, ndim: int = 2) -> np.ndarray:
    """Return ``array`` as a float64 array of dimension ``ndim`` with only finite entries.

    Complex input is refused (casting would drop the imaginary part with only a warning).
    """
    if np.iscomplexobj(array):
        raise ValueError(f"{name} must hold real numbers, got complex values")
    arr = np.asarray(array, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    # A NaN or inf entry makes the sum NaN or inf; a finite sum proves every entry finite with
    # one read of the array and no (N, p) temporary. Only a non-finite sum (which finite entries
    # near 1e308 can also give) needs the entrywise test.
    if not np.isfinite(arr.sum()) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf entries")
    return arr


def check_symmetric(gram, name: str = "gram") -> np.ndarray:
    """Validate a square, finite, symmetric matrix (PSD is checked where it is factorised)."""
    g = check_finite_matrix(gram, name)
    if g.shape[0] != g.shape[1]:
        raise ValueError(f"{name} must be square (N x N), got shape {g.shape}")
    scale = max(1.0, float(np.max(np.abs(g))))
    asym = float(np.max(np.abs(g - g.T)))
    if asym > SYM_RTOL * scale:
        raise ValueError(
            f"{name} is not symmetric: max|G - G^T| = {asym:.3g} > {SYM_RTOL:g} * {scale:.3g}; "
            "a Gram matrix X X^T is always symmetric"
        )
    return g


def check_psd_spectrum(eigenvalues, name: str = "gram") -> None:
    """Raise ``ValueError`` if an eigenvalue is negative beyond the stated PSD tolerance."""
    mu = np.asarray(eigenvalues, dtype=float)
    scale = max(1.0, float(np.max(np.abs(mu))))
    if mu.min() < -PSD_RTOL * scale:
        raise ValueError(
            f"{name} is not positive semidefinite: smallest eigenvalue {mu.min():.3g} < "
            f"-{PSD_RTOL:g} * {scale:.3g}; it cannot be the Gram matrix of any features"
        )


def validate_gram(gram, name: str = "gram") -> np.ndarray:
    """Validate a Gram matrix: square, finite, symmetric and positive semidefinite.

    Parameters
    ----------
    gram : array_like, shape (N, N)

    Returns
    -------
    ndarray, shape (N, N)
        The symmetrised float64 matrix ``(G + G^T) / 2``.
    """
    g = check_symmetric(gram, name)
    g = 0.5 * (g + g.T)
    check_psd_spectrum(np.linalg.eigvalsh(g), name)
    return g


def check_targets(targets, n_samples: int | None = None, name: str = "targets") -> np.ndarray:
    """Validate soft targets ``T`` of shape (K, N) whose columns lie on the probability simplex."""
    t = check_finite_matrix(targets, name)
    k, n = t.shape
    if k < 2:
        raise ValueError(f"{name} must have K >= 2 rows (classes), got shape {t.shape}")
    if n_samples is not None and n != n_samples:
        raise ValueError(f"{name} has {n} columns but there are {n_samples} samples")
    if t.min() < -SIMPLEX_ATOL:
        raise ValueError(
            f"{name} has negative entries (min {t.min():.3g}); columns must be on the simplex"
        )
    col_err = float(np.max(np.abs(t.sum(axis=0) - 1.0)))
    if col_err > SIMPLEX_ATOL * k:
        raise ValueError(
            f"{name} columns must sum to 1 (probability simplex); max deviation {col_err:.3g}"
        )
    return np.clip(t, 0.0, None)


def check_labels(labels, n_classes: int, name: str = "labels") -> np.ndarray:
    """Validate integer labels in ``[0, n_classes)``; returns an int64 array of shape (N,)."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {lab.shape}")
    # Numbers only (booleans are the classes 0 and 1): strings and objects are refused here,
    # not by a TypeError from isfinite below.
    if not (
        lab.dtype == np.bool_
        or np.issubdtype(lab.dtype, np.integer)
        or np.issubdtype(lab.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be integers in [0, {n_classes}), got dtype {lab.dtype}")
    if np.issubdtype(lab.dtype, np.floating):
        if not np.all(np.isfinite(lab)) or not np.all(np.equal(np.mod(lab, 1), 0)):
            raise ValueError(f"{name} must be integers in [0, {n_classes})")
    lab = lab.astype(np.int64)
    if lab.min() < 0 or lab.max() >= n_classes:
        raise ValueError(
            f"{name} must lie in [0, {n_classes}) (n_classes={n_classes}); "
            f"got range [{lab.min()}, {lab.max()}]"
        )
    return lab


def one_hot(labels, n_classes: int) -> np.ndarray:
    """One-hot targets ``Y`` of shape (K, N) with ``Y[labels[i], i] = 1``."""
    k = check_int(n_classes, "n_classes", 2)
    lab = check_labels(labels, k)
    y = np.zeros((k, lab.size))
    y[lab, np.arange(lab.size)] = 1.0
    return y
