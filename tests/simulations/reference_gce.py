r"""Reference implementation (tests only): PLL student with the per-candidate GCE loss.

An independent implementation of ``loss='gce-reference'`` of
:func:`simulations.pll_losses.train_pll_student` (SciPy's L-BFGS-B on the primal weights instead
of the package's truncated Newton method in spectral coordinates), which the tests compare it
with (``tests/simulations/test_pipelines.py``, ``tests/simulations/test_gce.py``). It lived in
``simulations/gce.py`` until only tests used it (issue 23).

The theory's PLL student (:func:`simulations.distill.train_pll`) minimises cross-entropy on the
two-hot top-2 target. The public reference code instead applies the generalised cross-entropy of
Zhang & Sabuncu (2018), ``L_q(p, y) = (1 - p_y^q) / q`` with ``q = 0.7``, to *each* of the two
candidate labels, starting from the teacher's weights. Here, for a linear softmax probe
``p_i = softmax(W x_i)`` with ``W`` of shape (K, p), we minimise

.. math::

    J(W) = \frac1N \sum_{i=1}^N \frac12 \sum_{j=1}^{2} \frac{1 - p_{i, a_{ji}}^{\,q}}{q}
           + \frac{\lambda}{2} \lVert W \rVert_F^2,

where ``a_{1i}, a_{2i}`` are the two candidate labels of sample ``i``. The weight 1/2 per candidate
(the mean over the two candidates) makes ``q -> 0`` recover exactly the cross-entropy on the two-hot
target, ``(1/N) sum_i sum_j (1/2)(-log p_{i,a_ji})``, which is the theory's PLL loss; summing the
two candidates instead (weight 1) is the same problem with ``lam`` halved.

Gradient. With ``z_i = W x_i`` and ``d p_y^q / d z = q p_y^q (e_y - p)``,

.. math::

    \nabla_W J = \frac1N \Gamma X + \lambda W, \qquad
    \Gamma_{:, i} = -\frac12 \sum_{j} p_{i,a_{ji}}^{\,q} \,(e_{a_{ji}} - p_i),

with ``X`` of shape (N, p) and ``Gamma`` of shape (K, N). For ``q > 0`` the loss is bounded and
**not convex** in ``W``, so the result depends on the starting point: following the reference
code we start from the teacher's weights and run a quasi-Newton method (SciPy's L-BFGS-B with the
analytic gradient above). The report states whether the max-abs gradient reached ``tol`` (a
stationary point, not necessarily the global minimum).

Cost: O(N p K) time per objective/gradient evaluation and O(N K + K p) extra memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from theory.names import DEFAULT_Q  # the public reference code's GCE exponent
from theory.validation import check_finite_matrix, check_int, check_positive

__all__ = ["GCEReport", "GCEResult", "gce_objective", "predict_proba", "train_pll_gce"]


@dataclass(frozen=True)
class GCEReport:
    """Convergence report of :func:`train_pll_gce`.

    Attributes
    ----------
    converged : bool
        ``gradient_norm <= tol`` (a first-order stationary point to the requested accuracy).
    gradient_norm : float
        Max-abs entry of ``grad_W J`` at the returned weights.
    objective : float
        ``J(W)`` at the returned weights.
    initial_objective : float
        ``J(W_0)`` at the starting point.
    iterations : int
        L-BFGS-B iterations used.
    evaluations : int
        Objective/gradient evaluations used.
    tol : float
        Requested gradient tolerance.
    message : str
        SciPy's termination message.
    """

    converged: bool
    gradient_norm: float
    objective: float
    initial_objective: float
    iterations: int
    evaluations: int
    tol: float
    message: str


class GCEResult(NamedTuple):
    """``(weights, report)``: weights of shape (K, p) and their :class:`GCEReport`."""

    weights: np.ndarray
    report: GCEReport


def _check_candidates(candidates, n_samples: int, n_classes: int | None) -> np.ndarray:
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.shape != (2, n_samples):
        raise ValueError(f"candidates must have shape (2, N) = (2, {n_samples}), got {cand.shape}")
    if not np.issubdtype(cand.dtype, np.integer):
        if not (np.all(np.isfinite(cand)) and np.all(np.mod(cand, 1) == 0)):
            raise ValueError("candidates must be integer class indices")
    cand = cand.astype(np.int64)
    upper = n_classes if n_classes is not None else None
    if cand.min() < 0 or (upper is not None and cand.max() >= upper):
        raise ValueError(
            f"candidates must lie in [0, {upper}) (n_classes = init_weights rows), "
            f"got range [{cand.min()}, {cand.max()}]"
        )
    return cand


def _objective_and_gradient(w_flat, x, cand, lam, q, k):
    """``J(W)`` and ``grad J`` (flattened) for weights ``W = w_flat.reshape(K, p)``."""
    n, p = x.shape
    w = w_flat.reshape(k, p)
    logp = log_softmax(x @ w.T, axis=1)  # (N, K); log-softmax keeps tiny p_y^q finite
    probs = np.exp(logp)
    rows = np.arange(n)
    loss = 0.0
    # coef (N, K) is Gamma^T: sum over candidates of -(1/2) p_a^q (e_a - p).
    coef = np.zeros((n, k))
    for a in cand:
        pq = np.exp(q * logp[rows, a])  # p_{i,a}^q
        loss += 0.5 * np.sum((1.0 - pq) / q)
        coef -= 0.5 * pq[:, None] * (-probs)
        coef[rows, a] -= 0.5 * pq
    obj = loss / n + 0.5 * lam * float(np.sum(w * w))
    grad = coef.T @ x / n + lam * w
    return obj, grad.ravel()


def gce_objective(weights, features, candidates, lam, *, q=DEFAULT_Q):
    """GCE PLL objective ``J(W)`` and its gradient (module docstring), for tests and diagnostics.

    Parameters
    ----------
    weights : array_like, shape (K, p)
    features : array_like, shape (N, p)
    candidates : array_like of int, shape (2, N)
    lam : float
        ``lam > 0``.
    q : float
        GCE exponent, ``0 < q <= 1``.

    Returns
    -------
    objective : float
    gradient : ndarray, shape (K, p)
    """
    x = check_finite_matrix(features, "features")
    w = check_finite_matrix(weights, "weights")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"weights must have shape (K, p={x.shape[1]}), got {w.shape}")
    lam = check_positive(lam, "lam")
    q = _check_q(q)
    cand = _check_candidates(candidates, x.shape[0], w.shape[0])
    obj, grad = _objective_and_gradient(w.ravel(), x, cand, lam, q, w.shape[0])
    return obj, grad.reshape(w.shape)


def _check_q(q) -> float:
    q = check_positive(q, "q")
    if q > 1:
        raise ValueError(f"q must lie in (0, 1] (GCE exponent), got {q!r}")
    return q


def train_pll_gce(
    features,
    candidates,
    lam,
    *,
    init_weights=None,
    q=DEFAULT_Q,
    max_iter=2000,
    tol=1e-7,
    n_classes=None,
) -> GCEResult:
    """Train the PLL student with the GCE loss on two candidate labels per sample.

    Minimises ``J(W)`` of the module docstring with L-BFGS-B and the analytic gradient.

    Parameters
    ----------
    features : array_like, shape (N, p)
        Training features ``X`` (rows are samples), the same ones the teacher was trained on.
    candidates : array_like of int, shape (2, N)
        The two candidate labels of each sample, e.g. ``theory.partial_labels.top2_indices`` of the
        teacher's outputs.
    lam : float
        L2 strength ``lam > 0`` of the penalty ``(lam / 2) ||W||^2``.
    init_weights : array_like, shape (K, p), optional
        Starting point (the teacher's weights, as in the reference code). Default: zeros, which
        then requires ``n_classes``.
    q : float, default 0.7
        GCE exponent in ``(0, 1]``.
    max_iter : int, default 2000
        Maximum L-BFGS-B iterations.
    tol : float, default 1e-7
        Target max-abs gradient; also passed to L-BFGS-B as ``gtol``. A line-search method cannot
        certify much below ``sqrt(eps |J| lam)`` (~3e-9 for ``J ~ 1``, ``lam = 0.05``): near the
        optimum a step decreases ``J`` by ~``|grad|^2 / lam``, which then drops below the
        float64 round-off ``eps |J|`` of the objective, and L-BFGS-B stops.
    n_classes : int, optional
        ``K``; required only when ``init_weights`` is None.

    Returns
    -------
    GCEResult
        ``(weights (K, p), report)``. The report's ``converged`` is False if the gradient did not
        reach ``tol`` within ``max_iter`` iterations; callers must check it (this function does
        not raise, so a Monte Carlo sweep can record the failure).
    """
    x = check_finite_matrix(features, "features")
    n, p = x.shape
    lam = check_positive(lam, "lam")
    q = _check_q(q)
    max_iter = check_int(max_iter, "max_iter", 1)
    tol = check_positive(tol, "tol")
    if init_weights is None:
        if n_classes is None:
            raise ValueError("pass init_weights (K, p) or n_classes")
        k = check_int(n_classes, "n_classes", 2)
        w0 = np.zeros((k, p))
    else:
        w0 = check_finite_matrix(init_weights, "init_weights")
        if w0.shape[1] != p or w0.shape[0] < 2:
            raise ValueError(f"init_weights must have shape (K >= 2, p={p}), got {w0.shape}")
        k = w0.shape[0]
        if n_classes is not None and check_int(n_classes, "n_classes", 2) != k:
            raise ValueError(f"n_classes={n_classes} disagrees with init_weights rows K={k}")
    cand = _check_candidates(candidates, n, k)
    args = (x, cand, lam, q, k)
    obj0, _ = _objective_and_gradient(w0.ravel(), *args)
    res = minimize(
        _objective_and_gradient,
        w0.ravel().copy(),
        args=args,
        jac=True,
        method="L-BFGS-B",
        # ftol=0 so that only the gradient test (or max_iter) stops the run: the relative-decrease
        # test would otherwise stop far from stationarity on flat GCE plateaus.
        options={"maxiter": max_iter, "gtol": tol, "ftol": 0.0, "maxcor": 20},
    )
    obj, grad = _objective_and_gradient(res.x, *args)
    gnorm = float(np.max(np.abs(grad)))
    report = GCEReport(
        converged=bool(gnorm <= tol),
        gradient_norm=gnorm,
        objective=float(obj),
        initial_objective=float(obj0),
        iterations=int(res.nit),
        evaluations=int(res.nfev),
        tol=tol,
        message=str(res.message),
    )
    return GCEResult(res.x.reshape(k, p).copy(), report)


def predict_proba(weights, features) -> np.ndarray:
    """Softmax outputs ``softmax(W x)`` of shape (K, M) for features of shape (M, p)."""
    w = check_finite_matrix(weights, "weights")
    x = check_finite_matrix(features, "features")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"weights (K, p={w.shape[1]}) and features (M, {x.shape[1]}) disagree")
    return np.exp(log_softmax(w @ x.T, axis=0))
