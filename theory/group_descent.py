r"""From a stationary point of a non-convex group objective to the local minimum training reaches.

The group engine (:func:`theory.group_engine.minimise_objective`) is a descent method on the
training objective, but a descent method started on the stable manifold of a saddle point can end
at the saddle: under pair noise the circulant teacher makes the student's problem cyclically
symmetric, and Newton steps that keep the symmetry converge to the symmetric stationary point even
where it is a saddle (``docs/theory.md``, Section 15). Training (gradient descent from the
teacher's weights, or the ``N x N`` truncated-Newton student of
:func:`simulations.pll_losses.train_pll_student`) leaves such a saddle. This module does the same
at the group level:

1. The inertia of the Newton matrix ``I + L H`` (:func:`second_order`:
   :func:`theory.group_engine.newton_inertia`, or dense matrices where its reduction does not
   apply) counts the negative curvature directions of the objective within the group-symmetric
   subspace (all points of a group move together) and the groups with a negative *within-group*
   direction.
2. If there is a group-level negative direction, the most negative curvature direction of the
   objective **in the weights' Euclidean metric** is computed: in the representer coordinates
   ``r`` (``W = sum_g r_g (sum_{i in g} x_i)^T / (lam N)``, ``z = L r``) the objective ``N J`` has
   Hessian ``S (I + H L)`` and ``|W|^2 = r^T S r / (lam N)`` with ``S = Omega L`` (``Omega`` the
   group sizes), so the direction is the generalised eigenvector

   .. math::  S (I + H L) u = \mu S u \iff (I + H L) u = \mu u, \qquad \mu < 0 \text{ smallest},

   i.e. the most unstable direction of gradient flow ``dr/ds = -(r - f(L r))`` at the saddle
   (dense ``scipy.linalg.eigh`` for at most :data:`DENSE_MAX_UNKNOWNS` unknowns ``G K``, Lanczos
   (ARPACK, ``O(G K)`` per product, ``S^-1`` in closed form) above).
3. The objective is lowered by a small step along ``+u`` and along ``-u``, and the group engine
   descends from each (it keeps the group structure); the end with the lower objective is kept
   (the ``+`` side if equal: mirror images), and the procedure repeats there until a strict local
   minimum (inertia ``(0, 0)``) or ``max_escapes`` saddles.
4. If the only negative directions are within groups (``(0, m)``, ``m > 0``), a descent must make
   the points of one group differ: the minimum below breaks the group symmetry and the group
   theory cannot follow it; :attr:`Descent.status` says so and no minimum is reported.

Everything is deterministic (no random numbers): the sign of an eigenvector is fixed by its
largest entry (both signs are tried anyway), and Lanczos starts from a fixed vector.

Limits. Which side of a saddle training takes is decided by perturbations too small for the group
theory (the teacher's deviations from exact symmetry); the lower end is a choice, and
:attr:`Descent.ambiguous` says when the two sides differ in accuracy. Minima related by a symmetry
of the problem have the same objective but may differ in accuracy (``docs/theory.md``,
Proposition 15.6): at ``K = 5`` near the threshold the minima at 40% and 60% are mirror images,
and which one the descent reports (its ``+`` side, whose sign convention is :func:`_unit`'s), the
``N x N`` solver or the gradient flow reaches is decided by round-off at the symmetric saddle, so
it can differ between machines (``tests/theory/test_group_descent.py`` checks the equal depth, and
the accuracies in a non-strict xfail). In rugged
problems different optimisers may end in different minima (``K = 25``, pair noise, ``d = 0.1``,
``lam = 5.62e-3``: the descent and the gradient flow 52%, the ``N x N`` solver 56%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from theory.group_engine import (
    apply_hessian,
    force_to_logits_inverse,
    minimise_objective,
    newton_inertia,
)

__all__ = [
    "DENSE_MAX_UNKNOWNS",
    "Descent",
    "StationaryPoint",
    "dense_coupling",
    "dense_hessians",
    "dense_objective_hessian",
    "dense_second_order",
    "descend_to_minimum",
    "descent_memory_bytes",
    "group_objective",
    "negative_curvature_direction",
    "second_order",
]

#: Largest number of unknowns ``G K`` for which the escape direction is computed from the dense
#: ``(G K) x (G K)`` Hessian and metric (at most 6 such matrices live at once: 48 MB at 1000, and
#: about 0.3 s for the generalised eigenproblem); above it, Lanczos with ``O(G K)`` memory per
#: vector.
DENSE_MAX_UNKNOWNS = 1000
#: Lanczos vectors kept by ARPACK (memory ``LANCZOS_VECTORS * G K`` floats).
LANCZOS_VECTORS = 40

STATUS_MINIMUM = "local minimum"
STATUS_SYMMETRY = "saddle: descent breaks the group symmetry"
STATUS_LIMIT = "saddle: escape limit reached"
STATUS_NO_DIRECTION = "saddle: no descent direction found"
STATUS_UNKNOWN = "second-order test not applicable"
STATUS_UNCONVERGED = "descent not certified"


# --------------------------------------------------------------------------------------------
# objective and its dense Hessian (group level)


def group_objective(coupling, loss, r) -> float:
    """``N J(r) = sum_g C_g [l_g(z_g) + r_g . z_g / 2]`` with ``z = L r`` (``docs/theory.md``,
    Section 12): the training objective times ``N``, up to a constant."""
    z = coupling.apply(r)
    return float(np.sum(coupling.w * (loss.value(z) + 0.5 * np.sum(r * z, axis=1))))


def dense_hessians(hess):
    """Dense (G, K, K) Hessians from ``(h, U, W)`` (``diag(h) + sum_j W_j u_j u_j^T``)."""
    h, u, w = hess
    dense = np.einsum("jg,jgi,jgl->gil", w, u, u)
    idx = np.arange(h.shape[1])
    dense[:, idx, idx] += h
    return dense


def dense_coupling(coupling):
    """``L`` on group rows as a dense (G, G) matrix: ``a I + g_c [same class] C_h + g_a C_h``."""
    kk, w = coupling.kk, coupling.w
    same = kk[:, None] == kk[None, :]
    mat = (coupling.g_class * same + coupling.g_all) * w[None, :]
    mat[np.diag_indices_from(mat)] += coupling.a
    return mat


def _dense_metric(coupling):
    """``S = Omega L`` acting on (G, K) arrays, as a dense (G K, G K) matrix (symmetric)."""
    g, k = coupling.n_groups, coupling.k
    s = (coupling.w[:, None] * dense_coupling(coupling))[:, None, :, None] * np.eye(k)[
        None, :, None, :
    ]
    return s.reshape(g * k, g * k)


def dense_objective_hessian(coupling, hess):
    """Symmetric Hessian ``S (I + H L)`` of ``N J(r)`` (``S = Omega L``), shape (G K, G K)."""
    g, k = coupling.n_groups, coupling.k
    lg = dense_coupling(coupling)
    hd = dense_hessians(hess)
    s = _dense_metric(coupling)
    hl = np.einsum("gil,gh->gihl", hd, lg).reshape(g * k, g * k)
    m = s + s @ hl
    return 0.5 * (m + m.T)


def descent_memory_bytes(n_classes: int, n_groups: int) -> int:
    """Peak memory (bytes) of one escape direction: the dense path holds the Hessian, the metric,
    their product and LAPACK's copies (at most 6 matrices of ``(G K)^2`` floats); Lanczos holds
    two bases of :data:`LANCZOS_VECTORS` vectors of ``G K`` floats (ARPACK's and the Ritz
    vectors') and about 20 work vectors (measured peak: 87 vectors)."""
    n = int(n_classes) * int(n_groups)
    if n <= DENSE_MAX_UNKNOWNS:
        return 8 * 6 * n * n
    return 8 * (2 * LANCZOS_VECTORS + 20) * n


def second_order(coupling, hess, *, dense_max: int = DENSE_MAX_UNKNOWNS):
    """``(group-level negative directions, groups with a negative within-group direction)``.

    :func:`theory.group_engine.newton_inertia` (exact structured count, ``O(K^4)``); where its
    reduction does not apply (``None``: e.g. a singular Gram matrix), :func:`dense_second_order`
    if ``G K <= dense_max``; ``None`` otherwise. ``(0, 0)``: a strict local minimum of the
    ``N x N`` objective.
    """
    found = newton_inertia(coupling, hess)
    if found is not None or coupling.n_groups * coupling.k > dense_max:
        return found
    return dense_second_order(coupling, hess)


def dense_second_order(coupling, hess):
    r"""The two counts of :func:`second_order` from dense matrices (``O((G K)^3)``).

    Group level: the negative eigenvalues of the objective's Hessian ``S (I + H L)`` in ``r``
    below ``-1e-10`` of its largest eigenvalue (congruent to
    ``S^(1/2) (I + S^(1/2) H Omega^-1 S^(1/2)) S^(1/2)``; directions in the null space of a
    singular ``S`` leave the weights unchanged and have zero curvature). Within groups: the
    groups with ``C_g >= 2`` whose Newton matrix ``I + a H_g`` has an eigenvalue below ``-1e-12``.
    """
    k = coupling.k
    vals = np.linalg.eigvalsh(dense_objective_hessian(coupling, hess))
    neg = int(np.sum(vals < -1e-10 * max(1.0, float(np.abs(vals).max()))))
    within = np.eye(k)[None] + coupling.a * dense_hessians(hess)
    low = np.linalg.eigvalsh(0.5 * (within + within.transpose(0, 2, 1)))[:, 0]
    return neg, int(np.sum((coupling.w >= 2) & (low < -1e-12)))


def _metric_definite(coupling) -> bool:
    """``S = Omega L`` positive definite: every Gram eigenvalue ``mu_j / (lam N) > 0``
    (``mu_3 = 1 - c``, ``mu_2``, ``mu_1``), beyond round-off."""
    k, a, gc, ga = coupling.k, coupling.a, coupling.g_class, coupling.g_all
    n = float(coupling.w.sum()) / k
    scale = abs(a) + n * (abs(gc) + k * abs(ga))
    return min(a, a + n * gc, a + n * (gc + k * ga)) > 1e-9 * scale


# --------------------------------------------------------------------------------------------
# the escape direction


#: Entries within this relative distance of ``max|u|`` count as tied for the sign of an escape
#: direction (:func:`_unit`): well above the direction's own accuracy (~1e-12 dense, ~1e-7 by
#: Lanczos at its 1e-8 residual), far below any gap between entries that are not symmetric images.
_SIGN_TIE_RTOL = 1e-5


def _unit(u, shape):
    """``u`` reshaped and scaled to max-abs 1, with a sign that does not depend on round-off.

    The first entry (row-major) among those within :data:`_SIGN_TIE_RTOL` of ``max|u|`` is made
    positive. "The largest entry positive" would not do: at the symmetric saddles the escape
    directions have entries of equal magnitude and opposite signs (mirror images, Proposition
    15.6), and which of them round-off makes largest -- hence which mirror minimum the ``+`` side
    reaches -- depended on the machine's BLAS.
    """
    u = np.asarray(u, dtype=float).reshape(shape)
    mag = np.abs(u)
    first = int(np.argmax(mag.ravel() >= (1.0 - _SIGN_TIE_RTOL) * mag.max()))
    return u / (float(np.sign(u.flat[first])) * float(mag.max()))


def negative_curvature_direction(coupling, hess, *, dense_max: int = DENSE_MAX_UNKNOWNS):
    r"""Most negative curvature direction of the group objective in the weights' metric.

    Solves ``S (I + H L) u = mu S u`` for the smallest ``mu`` (module docstring, step 2): the
    eigenvector of ``I + H L`` with the most negative eigenvalue. ``S`` is positive definite
    unless the Gram matrix is singular (``c = 1``, or ``mu_1 = 0``); then the Euclidean metric of
    ``r`` is used instead (any negative curvature direction descends).

    Parameters
    ----------
    coupling : theory.group_engine.GroupCoupling
    hess : tuple
        The loss Hessian ``(h, U, W)`` at the point (:mod:`theory.losses`).
    dense_max : int
        Dense eigensolver up to this many unknowns ``G K``, Lanczos above.

    Returns
    -------
    (u, mu) or None
        ``u`` of shape (G, K) in the representer coordinates ``r`` (max-abs 1, largest entry
        positive) and ``mu``, the curvature per unit ``|W|^2`` (in units of ``1 / (lam N)`` times
        the objective ``N J``); ``None`` if no eigenvalue is below the round-off of the
        matrix (``1e-10`` of its largest entry) or Lanczos fails.
    """
    g, k = coupling.n_groups, coupling.k
    n = g * k
    use_metric = _metric_definite(coupling)
    if n <= dense_max:
        m = dense_objective_hessian(coupling, hess)
        scale = max(1.0, float(np.abs(m).max()))
        if use_metric:
            s = _dense_metric(coupling)
            vals, vecs = scipy.linalg.eigh(m, s, subset_by_index=[0, 0])
            scale /= max(float(np.abs(s).max()), np.finfo(float).tiny)
        else:
            vals, vecs = np.linalg.eigh(m)
        mu, u = float(vals[0]), vecs[:, 0]
    else:
        w = coupling.w[:, None]

        def hess_op(v):
            r = v.reshape(g, k)
            return (w * coupling.apply(r + apply_hessian(hess, coupling.apply(r)))).ravel()

        def metric_op(v):
            return (w * coupling.apply(v.reshape(g, k))).ravel()

        def metric_inv(v):
            return force_to_logits_inverse(coupling, v.reshape(g, k) / w).ravel()

        a_op = LinearOperator((n, n), matvec=hess_op, dtype=float)
        # At most 300 restarts of LANCZOS_VECTORS products: an extreme eigenvalue converges in a
        # few; a failure is reported (None), never a hang.
        # ARPACK's default start vector comes from its own random state (the result would depend
        # on earlier calls); a fixed, generic start (a Weyl sequence: no symmetry of the problem)
        # keeps the escape deterministic.
        v0 = 1.0 + np.mod(np.arange(n) * 0.6180339887498949, 1.0)
        kwargs = dict(
            k=1, which="SA", ncv=min(LANCZOS_VECTORS, n - 1), tol=1e-8, maxiter=300, v0=v0
        )
        if use_metric:
            kwargs |= dict(
                M=LinearOperator((n, n), matvec=metric_op, dtype=float),
                Minv=LinearOperator((n, n), matvec=metric_inv, dtype=float),
            )
        try:
            vals, vecs = eigsh(a_op, **kwargs)
        except (ArpackNoConvergence, ArpackError):
            return None
        mu, u = float(vals[0]), vecs[:, 0]
        # The matrix's size: S (I + H L) applied to a unit vector along the found direction.
        scale = max(1.0, float(np.linalg.norm(hess_op(u)) / max(np.linalg.norm(u), 1e-300)))
        if use_metric:
            scale /= max(float(np.linalg.norm(metric_op(u)) / np.linalg.norm(u)), 1e-300)
    if not np.isfinite(mu) or mu >= -1e-10 * scale:
        return None
    return _unit(u, (g, k)), mu


# --------------------------------------------------------------------------------------------
# descent to a local minimum


@dataclass(frozen=True)
class StationaryPoint:
    """A certified stationary point of the group objective.

    Attributes
    ----------
    z : ndarray, shape (G, K)
        Group logits (non-empty groups in ``np.nonzero(counts > 0)`` order).
    objective : float
        ``N J`` (:func:`group_objective`; comparable between points of one problem).
    second_order : tuple or None
        :func:`theory.group_engine.newton_inertia`: ``(group-level negative directions, groups
        with a negative within-group direction)``; ``(0, 0)`` = strict local minimum of the
        ``N x N`` objective.
    residual, target : float
        Certified fixed-point residual and its tolerance (:class:`EngineResult`).
    converged : bool
    label : tuple
        ``classify(z)`` of :func:`descend_to_minimum` (e.g. the accuracies).
    """

    z: np.ndarray = field(repr=False)
    objective: float
    second_order: tuple | None
    residual: float
    target: float
    converged: bool
    label: tuple = ()

    @property
    def local_minimum(self) -> bool:
        """Strict local minimum of the ``N x N`` objective (``second_order == (0, 0)``)."""
        return self.second_order == (0, 0)


@dataclass(frozen=True)
class Descent:
    """Outcome of :func:`descend_to_minimum`.

    Attributes
    ----------
    start : StationaryPoint
        The point the descent started from (the engine's stationary point).
    end : StationaryPoint
        The reported point: a strict local minimum if ``status == 'local minimum'``.
    saddles : tuple of StationaryPoint
        The saddle points left, in order (``start`` first if it was one).
    branches : tuple of (StationaryPoint, StationaryPoint)
        For every saddle left, the end points on its ``+u`` and ``-u`` sides.
    ambiguous : bool
        The two sides of a saddle gave end points with different labels (e.g. accuracies): which
        one training reaches is decided by an infinitesimal perturbation, not by the problem.
    status : str
        ``'local minimum'``; ``'saddle: descent breaks the group symmetry'`` (only within-group
        negative directions: the minimum below is not group-symmetric); ``'saddle: escape limit
        reached'``; ``'saddle: no descent direction found'``; ``'second-order test not
        applicable'`` (``newton_inertia`` returned None); ``'descent not certified'``.
    """

    start: StationaryPoint
    end: StationaryPoint
    saddles: tuple = ()
    branches: tuple = ()
    ambiguous: bool = False
    status: str = STATUS_MINIMUM

    @property
    def escaped(self) -> bool:
        """At least one saddle was left."""
        return len(self.saddles) > 0


def _point(coupling, loss, res, classify, dense_max) -> StationaryPoint:
    z = res.z
    hess = loss.hessian(z)
    r = loss.force(z)  # at a stationary point r = f(z)
    return StationaryPoint(
        z=z,
        objective=group_objective(coupling, loss, r),
        second_order=second_order(coupling, hess, dense_max=dense_max),
        residual=float(res.residual),
        target=float(res.target),
        converged=bool(res.converged),
        label=tuple(classify(z)) if classify is not None else (),
    )


def _step_off(coupling, loss, r, u):
    """Largest step ``r + eps u`` (``eps`` halved from ``1e-2 (1 + max|r|)``) that lowers the
    objective beyond round-off: leaves the saddle without jumping over a basin."""
    f0 = group_objective(coupling, loss, r)
    slack = 16 * np.finfo(float).eps * max(1.0, abs(f0))
    eps = 1e-2 * (1.0 + float(np.abs(r).max()))
    for _ in range(40):
        trial = r + eps * u
        if group_objective(coupling, loss, trial) < f0 - slack:
            return trial
        eps *= 0.5
    return None


def descend_to_minimum(
    coupling,
    loss,
    start,
    *,
    tol: float,
    classify=None,
    max_escapes: int = 4,
    max_iter: int = 200,
    dense_max: int = DENSE_MAX_UNKNOWNS,
) -> Descent:
    r"""Leave saddle points of the group objective until a strict local minimum (module docstring).

    Parameters
    ----------
    coupling : theory.group_engine.GroupCoupling
    loss
        A non-convex loss of :mod:`theory.losses` on the non-empty groups.
    start : theory.group_engine.EngineResult
        A stationary point (e.g. from :func:`theory.group_engine.minimise_objective`).
    tol : float
        Certified relative residual of the descents (as the engine's).
    classify : callable, optional
        ``classify(z) -> tuple`` (e.g. accuracies); two sides of a saddle with different labels
        make the descent ``ambiguous``.
    max_escapes : int
        Saddles left before giving up (``status`` then says so).
    max_iter : int
        Iterations of each descent.
    dense_max : int
        See :func:`negative_curvature_direction`.

    Returns
    -------
    Descent
    """
    here = _point(coupling, loss, start, classify, dense_max)
    first = here
    saddles, branches, ambiguous = [], [], False
    while True:
        second = here.second_order
        if not here.converged:
            status = STATUS_UNCONVERGED
            break
        if second is None:
            status = STATUS_UNKNOWN
            break
        if second == (0, 0):
            status = STATUS_MINIMUM
            break
        if second[0] == 0:
            status = STATUS_SYMMETRY
            break
        if len(saddles) >= max_escapes:
            status = STATUS_LIMIT
            break
        found = negative_curvature_direction(coupling, loss.hessian(here.z), dense_max=dense_max)
        if found is None:
            status = STATUS_NO_DIRECTION
            break
        u, _ = found
        r_here = loss.force(here.z)
        ends = []
        for sign in (1.0, -1.0):
            r1 = _step_off(coupling, loss, r_here, sign * u)
            if r1 is None:
                continue
            res = minimise_objective(coupling, loss, r1, tol=tol, max_iter=max_iter)
            ends.append(_point(coupling, loss, res, classify, dense_max))
        certified = [e for e in ends if e.converged]
        if not certified:
            status = STATUS_NO_DIRECTION if not ends else STATUS_UNCONVERGED
            if ends:
                saddles.append(here)
                branches.append(tuple(ends))
                here = min(ends, key=lambda e: e.objective)
            break
        saddles.append(here)
        branches.append(tuple(ends))
        if len(certified) == 2 and certified[0].label != certified[1].label:
            ambiguous = True
        # The lower end (the + side if both agree to round-off: mirror images).
        best = certified[0]
        for e in certified[1:]:
            if e.objective < best.objective - 1e-9 * max(1.0, abs(best.objective)):
                best = e
        here = best
    return Descent(
        start=first,
        end=here,
        saddles=tuple(saddles),
        branches=tuple(branches),
        ambiguous=ambiguous,
        status=status,
    )
