r"""Structured Newton engine for the group-level fixed point of any per-sample loss.

Unknowns: the logits ``z_g`` (K each) of the non-empty groups ``g = (k, l)`` of the block model
(at most ``K^2`` groups, ``K^3`` unknowns). The fixed point (``docs/theory.md``, Sections 4, 12)

.. math::  F(z) = z - L f(z) = 0, \qquad (L r)_g = a r_g + g_c S_{k(g)} + g_a S,

with ``a = (1-c)/(lam N)``, ``g_c = (c-d)/(lam N)``, ``g_a = d/(lam N)``, class sums
``S_k = sum_{l} C[k,l] r_(k,l)`` and ``S = sum_k S_k``; ``f = -grad l`` is the loss force
(:mod:`theory.losses`).

The Newton matrix ``I + L H`` is solved exactly in ``O(r K^4)`` time and ``O(r K^3)`` memory by
:mod:`theory.group_newton_matrix` (its docstring gives the four steps; its names are re-exported
here). For the convex cross-entropy every piece is provably invertible (``docs/theory.md``,
Section 13). For the non-convex candidate-set losses ``I + L H`` itself may be singular; a failed
or inaccurate step (checked by one extra matrix-vector product) falls back to the *convexified*
Hessian (negative curvature terms dropped), whose step always exists; a second-order diagnostic
(:func:`newton_inertia`) counts the negative eigenvalues of ``I + L H`` at the solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.group_newton_matrix import (
    NewtonSystem,
    StructuredInverse,
    apply_hessian,
    apply_newton,
    inertia_from_inverse,
    newton_inertia,
    structured_step,
)
from theory.losses import softmax_deviation
from theory.validation import CERTIFICATE_RTOL_CAP

__all__ = [
    "EngineResult",
    "GroupCoupling",
    "NewtonSystem",
    "StructuredInverse",
    "apply_hessian",
    "apply_newton",
    "engine_memory_bytes",
    "force_to_logits_inverse",
    "inertia_from_inverse",
    "linear_solve",
    "minimise_objective",
    "newton_inertia",
    "newton_solve",
    "structured_step",
]

_EPS = np.finfo(float).eps


class GroupCoupling:
    r"""The coupling operator ``L`` of the block model restricted to the non-empty groups.

    Groups are ordered class-major (``np.nonzero`` order), so class sums are contiguous
    segment sums. Every class has at least one non-empty group (its row of ``C`` sums to n >= 1).

    Attributes
    ----------
    kk, ll : ndarray of int, shape (G,)
        True class and given label of every non-empty group.
    w : ndarray, shape (G,)
        Group sizes ``C[k, l]``.
    a, g_class, g_all : float
        ``(1-c)/(lam N)``, ``(c-d)/(lam N)``, ``d/(lam N)``.
    """

    def __init__(self, model, counts, lam):
        cnt = np.asarray(counts)
        self.k = int(model.n_classes)
        self.kk, self.ll = np.nonzero(cnt > 0)
        self.w = cnt[self.kk, self.ll].astype(float)
        self.starts = np.searchsorted(self.kk, np.arange(self.k))
        self.slot = np.arange(self.kk.size) - self.starts[self.kk]
        self.lmax = int(self.slot.max()) + 1
        self.lam_n = float(lam) * model.n_samples
        self.c, self.d = float(model.c), float(model.d)
        self.a = (1.0 - self.c) / self.lam_n
        self.g_class = (self.c - self.d) / self.lam_n
        self.g_all = self.d / self.lam_n

    @property
    def n_groups(self) -> int:
        return int(self.kk.size)

    def class_sums(self, v):
        """``S_k = sum_{g in class k} C_g v_g``; ``v`` of shape (G, ...) -> (K, ...)."""
        wv = self.w.reshape((-1,) + (1,) * (v.ndim - 1)) * v
        return np.add.reduceat(wv, self.starts, axis=0)

    def apply(self, r):
        """``(L r)_g = a r_g + g_c S_k(g) + g_a S`` for r of shape (G, K)."""
        s = self.class_sums(r)
        return self.a * r + self.g_class * s[self.kk] + self.g_all * s.sum(axis=0)[None, :]

    def apply_abs(self, r):
        """``|L| |r|``: the same sums with absolute values (a bound for their round-off)."""
        s = self.class_sums(np.abs(r))
        return (
            abs(self.a) * np.abs(r)
            + abs(self.g_class) * s[self.kk]
            + abs(self.g_all) * s.sum(axis=0)[None, :]
        )

    def population_logits(self, r):
        """Logits ``[c S_k + d (S - S_k)] / (lam N)`` of the K population points, shape (K, K)."""
        s = self.class_sums(r)
        return (self.c * s + self.d * (s.sum(axis=0)[None, :] - s)) / self.lam_n

    def population_logit_error(self, r) -> float:
        """Bound on the round-off of :meth:`population_logits` (largest entry, absolute).

        Every entry is a sum of at most ``G + K + 4`` rounded terms whose magnitudes are bounded
        by ``(|c| A_k + |d| (A + A_k)) / (lam N)``, ``A_k = sum_{g in k} C_g |r_g|``: the same
        terms before any cancellation. Logit gaps below twice this are round-off -- e.g. the
        exact ties of classes with equal label histograms, or of ``c = d`` (one shared mean),
        whose population logits agree mathematically but not bit for bit.
        """
        a = self.class_sums(np.abs(r))
        terms = abs(self.c) * a + abs(self.d) * (a.sum(axis=0)[None, :] + a)
        gamma = (self.n_groups + self.k + 4) * _EPS
        return float(gamma * np.max(terms) / self.lam_n)

    def pad(self, x):
        """Scatter group rows (G, ...) into a zero-padded (K, lmax, ...) array by class."""
        out = np.zeros((self.k, self.lmax) + x.shape[1:])
        out[self.kk, self.slot] = x
        return out


def engine_memory_bytes(n_classes: int, n_groups: int, rank: int = 1) -> int:
    """Peak working memory of one structured Newton step, in bytes (an upper estimate).

    About ``(12 + 6 r)`` group arrays of shape (G, K) and ``(6 + 2 r)`` class arrays of shape
    (K, K, K) (padded low-rank factors, ``Q``, ``E`` and the batched solve), 8 bytes each.
    """
    k, g = int(n_classes), int(n_groups)
    return 8 * ((12 + 6 * rank) * g * k + (6 + 2 * rank) * k**3)


# --------------------------------------------------------------------------------------------
# Newton iteration with certificate


@dataclass(frozen=True)
class EngineResult:
    """Outcome of :func:`newton_solve` / :func:`minimise_objective`.

    Attributes
    ----------
    z : ndarray, shape (G, K)
        Logits of the best iterate (smallest residual).
    residual : float
        ``max |delta(z) - delta(L f(z))|`` (outputs vs the outputs the fixed point maps them to).
    target : float
        Certified tolerance ``max(tol * s, min(floor, CERTIFICATE_RTOL_CAP * s))`` with ``s`` the
        smaller of ``scale`` and the outputs' deviation from uniform (:func:`_certify`).
    floor : float
        Round-off floor of the residual evaluation,
        ``eps [64 (max|delta| + max|z|) + 8 max(|L| m_f)]`` with ``m_f`` the magnitudes of the
        terms forming the force (``|t - 1/K| + |delta|`` for cross-entropy): the force carries an
        absolute error ``~ eps m_f``, which ``L`` amplifies by up to ``mu_1 / (lam N)``.
    converged : bool
        ``residual <= target``.
    iterations : int
    fallback_steps : int
        Steps that used the convexified Hessian (non-convex losses only).
    system : NewtonSystem
        The Newton-system solver (its preconditioner can be reused by a later, similar solve).
    """

    z: np.ndarray
    residual: float
    target: float
    floor: float
    converged: bool
    iterations: int
    fallback_steps: int
    system: object = None


class _State:
    """Logits, force and residual pieces at one iterate (evaluated once, reused)."""

    def __init__(self, coupling, loss, z, r=None):
        self.z = z
        self.dev = softmax_deviation(z)
        self.force = loss.force(z, self.dev)
        self.lz = coupling.apply(self.force)  # L f(z)
        self.fz = z - self.lz  # F(z)
        self.norm = float(np.abs(self.fz).max())
        self.r = r
        self._cp, self._loss = coupling, loss

    def certificate(self):
        """``(residual, floor, size)``: see :class:`EngineResult`; ``size`` is the outputs'
        deviation from uniform, ``max(max|delta(z)|, max|delta(L f(z))|)``."""
        dev = self.dev
        mapped = softmax_deviation(self.lz)
        res = float(np.abs(dev - mapped).max())
        size = max(float(np.abs(dev).max()), float(np.abs(mapped).max())) if dev.size else 0.0
        # f is a difference of terms of size force_magnitude, so it carries an absolute error
        # ~ eps force_magnitude, which L amplifies (|L| ~ mu_1 / (lam N) at small lam).
        amplified = float(self._cp.apply_abs(self._loss.force_magnitude(self.z, dev)).max())
        floor = _EPS * (
            64 * (float(np.abs(dev).max()) + float(np.abs(self.z).max())) + 8 * amplified
        )
        return res, floor, size


def _certify(res, floor, scale, size, tol):
    """``(target, converged)`` of a residual: relative to the outputs' own size, capped floor.

    The residual is measured on output deviations, so it is judged relative to
    ``s = min(scale, size)``: the force's size at zero logits (``max|t - 1/K|``) *and* the
    outputs' actual deviation from uniform, which is far smaller at large ``lam`` (outputs within
    1e-14 of ``1/K``: a residual of 1e-14 there is 100% of the answer, not 1e-14 of ``scale``).
    The round-off floor raises the target, but never above
    :data:`theory.validation.CERTIFICATE_RTOL_CAP` ``* s``: a residual the floor does not let us
    resolve to that relative accuracy (e.g. ``lam = 1e-16``, where ``|L| ~ 1 / (lam N)`` makes
    the floor exceed the outputs themselves) is reported as not converged, never certified.
    """
    s = min(scale, size)
    target = max(tol * s, min(floor, CERTIFICATE_RTOL_CAP * s))
    return target, bool(res <= target)


def _forcing(norm, scale):
    """Inexact-Newton forcing term: loose far away, ``~ |F|`` near the solution (quadratic).

    ``scale = 0`` (a force vanishing at zero logits, e.g. two-hot targets for K = 2) measures
    ``|F|`` absolutely.
    """
    return min(1e-2, max(norm / (scale if scale > 0 else 1.0), 1e-14))


def newton_solve(
    coupling, loss, z0, *, tol=1e-12, max_iter=100, system: NewtonSystem | None = None
) -> EngineResult:
    r"""Damped (inexact) Newton for ``F(z) = z - L f(z) = 0`` from ``z0``, with a certificate.

    The residual is certified ``<= max(tol * scale, floor)`` with ``scale = max|f(0)|`` (the size
    of the force at zero logits: ``max|t - 1/K|`` for cross-entropy), so the accuracy is *relative*
    to the problem's own scale: targets within 1e-20 of uniform are solved to 1e-32. Backtracking
    on ``max|F|`` guards the first steps at small ``lam``. Steps solve the Newton system with
    :class:`NewtonSystem` (structured inverse + GMRES) to a relative accuracy ``~ |F|``. Meant for
    convex losses (cross-entropy), where ``I + L H`` has eigenvalues ``>= 1``; non-convex losses
    use :func:`minimise_objective`. Returns the best iterate; ``converged`` says whether it is
    certified (no exception: callers decide).
    """
    system = system or NewtonSystem(coupling)
    scale = float(np.abs(loss.force0()).max()) if z0.size else 0.0
    st = _State(coupling, loss, np.array(z0, dtype=float))
    res, floor, size = st.certificate()
    best = (res, floor, size, st.z)
    it = stalls = 0
    # Iterate to the requested tolerance (relative to the outputs' size, _certify); if round-off
    # prevents that, continue while progress is made (the floor is a worst-case bound), then
    # certify against max(tol * s, capped floor).
    while res > tol * min(scale, size) and it < max_iter and stalls < 5:
        it += 1
        step = system.solve(loss.hessian(st.z), -st.fz, rtol=_forcing(st.norm, scale))
        if step is None:
            break
        alpha, decreased = 1.0, False
        while True:
            trial = _State(coupling, loss, st.z + alpha * step)
            if np.isfinite(trial.norm) and trial.norm <= (1 - 1e-4 * alpha) * st.norm:
                decreased = True
                break
            if alpha < 1e-10:
                break  # round-off allows no decrease: take the (tiny) step, count a stall
            alpha *= 0.5
        if not np.isfinite(trial.norm):
            break
        st = trial
        res, floor, size = st.certificate()
        # A stall is an iteration that neither decreases max|F| (far from the solution the output
        # residual may grow while |F| falls by orders of magnitude) nor halves the best residual:
        # five in a row mean round-off has won.
        stalls = 0 if (decreased and res > floor) or res < 0.5 * best[0] else stalls + 1
        if res < best[0]:
            best = (res, floor, size, st.z)
    res, floor, size, z = best
    target, converged = _certify(res, floor, scale, size, tol)
    return EngineResult(z, res, target, floor, converged, it, 0, system)


def force_to_logits_inverse(coupling, z):
    r"""``r`` with ``L r = z`` (``a > 0``): class sums solve ``(a I + n Gamma) s = C z``-sums.

    ``L r = a r + Gamma``-broadcast of the class sums ``s_k = sum_g C_g r_g``; summing
    ``C_g (L r)_g`` over a class gives ``(a + n g_c) s_k + n g_a sum_j s_j = t_k`` (``t`` the
    class sums of ``z``), solved by Sherman-Morrison; then ``r = (z - g_c s_k - g_a s) / a``.
    """
    k, a = coupling.k, coupling.a
    n = float(coupling.w.sum()) / k
    t = coupling.class_sums(z)
    diag = a + n * coupling.g_class
    tot = t.sum(axis=0)
    s_all = tot / (diag + k * n * coupling.g_all)
    s = (t - n * coupling.g_all * s_all[None, :]) / diag
    return (z - coupling.g_class * s[coupling.kk] - coupling.g_all * s_all[None, :]) / a


def _objective(coupling, loss, st):
    """``N f = sum_g C_g [l_g(z_g) + r_g . z_g / 2]`` with ``z = L r`` (Section 12)."""
    return float(np.sum(coupling.w * (loss.value(st.z) + 0.5 * np.sum(st.r * st.z, axis=1))))


def minimise_objective(
    coupling, loss, r0, *, tol=1e-12, max_iter=200, system: NewtonSystem | None = None
) -> EngineResult:
    r"""Minimise the training objective of a (possibly non-convex) loss, from ``r0``.

    The probe's weights are ``W = sum_g r_g (sum_{i in g} x_i)^T / (lam N)`` (representer form, all
    stationary points have it), so with ``z = L r`` the objective is
    ``N f(r) = sum_g C_g [l_g(z_g) + r_g . z_g / 2]``, its gradient ``S (r - f(z)) / N`` and Hessian
    ``S (I + H L) / N`` (``S = Omega L``). The Newton direction
    ``dr = -(I + H L)^-1 (r - f) = -(r - f) + H (I + L H)^-1 L (r - f)`` is used when it is a
    descent direction with an Armijo decrease of ``f``. Otherwise (negative curvature) two
    descent directions compete and the one with the larger Armijo decrease wins: the reversed
    Newton direction (uphill Newton means its reverse descends, scaled by the curvature's
    magnitude) and the step of the convexified Hessian ``H+`` (negative-curvature terms dropped,
    ``S (I + H+ L)`` positive definite, so it always descends). The iteration is a descent method
    on the objective, like gradient descent from the same start (the reference code's choice),
    and converges to a stationary point -- generically a local minimum (:func:`newton_inertia`
    checks it). Certificate as in :func:`newton_solve`.
    """
    system = system or NewtonSystem(coupling)
    convex_system = NewtonSystem(coupling)
    scale = float(np.abs(loss.force0()).max()) if r0.size else 0.0
    r = np.array(r0, dtype=float)
    st = _State(coupling, loss, coupling.apply(r), r)
    obj = _objective(coupling, loss, st)
    res, floor, size = st.certificate()
    best = (res, floor, size, st.z)
    it = fallbacks = stalls = 0
    while res > tol * min(scale, size) and it < max_iter and stalls < 5:
        it += 1
        grad_r = r - st.force  # (N / S) times the gradient
        l_grad = coupling.apply(grad_r)  # L (r - f): the gradient is Omega L (r - f) / N
        slack = 16 * _EPS * max(1.0, abs(obj))
        # Inner solves tighter than for convex Newton: a loose step wastes outer iterations in
        # regions of negative curvature.
        rtol = _forcing(st.norm, scale)
        directions = []
        hess = loss.hessian(st.z)
        y = system.solve(hess, l_grad, rtol=rtol)
        if y is not None:
            d = -grad_r + apply_hessian(hess, y)
            slope = float(np.sum(coupling.w[:, None] * l_grad * d))
            if slope < 0:
                directions.append((d, slope, False))
            elif slope > 0:
                # Newton points uphill (negative curvature): its reverse descends, scaled by the
                # curvature's magnitude (a saddle-free step).
                directions.append((-d, -slope, True))
        if not directions or directions[0][2]:
            hess_c = loss.hessian(st.z, convex=True)
            y = convex_system.solve(hess_c, l_grad, rtol=rtol)
            if y is not None:
                d = -grad_r + apply_hessian(hess_c, y)
                slope = float(np.sum(coupling.w[:, None] * l_grad * d))
                if slope < 0:
                    directions.append((d, slope, True))
        accepted = None
        for direction, slope, fallback in directions:
            alpha = 1.0
            while alpha >= 1e-10:
                r_new = r + alpha * direction
                trial = _State(coupling, loss, coupling.apply(r_new), r_new)
                obj_new = _objective(coupling, loss, trial)
                if np.isfinite(obj_new) and obj_new <= obj + 1e-4 * alpha * slope + slack:
                    if accepted is None or obj_new < accepted[1]:
                        accepted = (trial, obj_new, fallback)
                    break
                alpha *= 0.5
            if accepted is not None and not fallback:
                break  # a descending exact Newton step: take it
        if accepted is None:
            break
        st, obj_new, fallback = accepted
        r = st.r
        fallbacks += int(fallback)
        res, floor, size = st.certificate()
        # Progress is a decrease of the objective beyond round-off (far from the solution the
        # residual may grow while the descent leaves a saddle region) or a halved residual.
        progressed = (obj_new < obj - slack and res > floor) or res < 0.5 * best[0]
        stalls = 0 if progressed else stalls + 1
        obj = obj_new
        if res < best[0]:
            best = (res, floor, size, st.z)
    res, floor, size, z = best
    target, converged = _certify(res, floor, scale, size, tol)
    return EngineResult(z, res, target, floor, converged, it, fallbacks, system)


def linear_solve(coupling, hess, rhs):
    """Solve ``(I + L H) z = rhs`` for a fixed Hessian (linearised losses); None if singular."""
    return structured_step(coupling, hess, rhs)
