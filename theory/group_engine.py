r"""Structured Newton engine for the group-level fixed point of any per-sample loss.

Unknowns: the logits ``z_g`` (K each) of the non-empty groups ``g = (k, l)`` of the block model
(at most ``K^2`` groups, ``K^3`` unknowns). The fixed point (``docs/theory.md``, Sections 4, 12)

.. math::  F(z) = z - L f(z) = 0, \qquad (L r)_g = a r_g + g_c S_{k(g)} + g_a S,

with ``a = (1-c)/(lam N)``, ``g_c = (c-d)/(lam N)``, ``g_a = d/(lam N)``, class sums
``S_k = sum_{l} C[k,l] r_(k,l)`` and ``S = sum_k S_k``; ``f = -grad l`` is the loss force
(:mod:`theory.losses`).

Newton matrix ``I + L H`` (``H = blockdiag(H_g)``, ``H_g = diag(h_g) + U_g diag(w_g) U_g^T`` with
``r <= 3`` columns) is solved exactly in ``O(r K^4)`` time and ``O(r K^3)`` memory, never forming
the ``K^3 x K^3`` (or the old dense ``K^2 x K^2``) matrix:

1. per group, ``B_g = I + a H_g`` by Woodbury on its diagonal ``Delta_g = 1 + a h_g > 0``:
   ``B_g^-1 = Delta^-1 - Ut M (a W) Ut^T`` with ``Ut = Delta^-1 U``,
   ``M = (I_r + a W U^T Ut)^-1`` (r x r), and ``H_g B_g^-1 = diag(h / Delta) + Ut (M W) Ut^T``;
2. per class, ``Q_k = sum_{g in k} C_g H_g B_g^-1`` (K x K: a diagonal plus one matrix product
   over the class's groups) and ``E_k = I + g_c Q_k``;
3. the class unknowns ``m_k = g_c Y_k + g_a Y`` (``Y_k`` the class sums of ``H delta``) solve
   ``E_k m_k + g_a sum_j Q_j m_j = g_c q_k + g_a q``: with ``V = sum_j Q_j m_j`` this is one K x K
   system ``(I + g_a sum_j E_j^-1 Q_j) V = sum_j Q_j E_j^-1 rhs_j`` and ``K`` batched K x K
   solves;
4. back-substitution ``delta_g = B_g^-1 (-F_g - m_k(g))``.

For the convex cross-entropy every piece is provably invertible (``docs/theory.md``, Section 13).
For the non-convex candidate-set losses ``I + L H`` itself may be singular; a failed or inaccurate
step (checked by one extra matrix-vector product) falls back to the *convexified* Hessian (negative
curvature terms dropped), whose step always exists; a second-order diagnostic
(:func:`newton_inertia`) counts the negative eigenvalues of ``I + L H`` at the solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
#: Relative accuracy a structured Newton step must reach (checked with one matrix-vector product)
#: before it is used; a failed check means a (nearly) singular Newton matrix.
STEP_RTOL = 1e-6


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
# the structured inverse of I + L H


@dataclass
class _Factors:
    """Per-group Woodbury pieces of ``B_g = I + a H_g`` (module docstring, step 1).

    Low-rank factors use the layout (r, G, K) (``u[j, g]`` is column ``j`` of ``U_g``) and small
    matrices (r, r, G), so every reduction runs over a contiguous axis.
    """

    h: np.ndarray  # (G, K) diagonal of H
    u: np.ndarray  # (r, G, K)
    wts: np.ndarray  # (r, G)
    delta: np.ndarray  # (G, K) = 1 + a h
    ut: np.ndarray  # (r, G, K) = U / Delta
    minv: np.ndarray  # (r, r, G) = I + a W U^T Ut
    mw: np.ndarray  # (r, r, G) = M W


def _small_inv(m):
    """Inverses of a stack of r x r matrices (layout (r, r, G)), r <= 3, in closed form.

    Adjugate over determinant, vectorised over the stack (``np.linalg.inv`` would pay one LAPACK
    call per 2 x 2 matrix). A zero determinant gives non-finite entries (checked by callers).
    """
    r = m.shape[0]
    with np.errstate(all="ignore"):
        if r == 1:
            return 1.0 / m
        if r == 2:
            det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
            return np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det
        if r == 3:
            adj = np.empty_like(m)
            for i in range(3):
                for j in range(3):
                    i1, i2 = [x for x in range(3) if x != i]
                    j1, j2 = [x for x in range(3) if x != j]
                    minor = m[i1, j1] * m[i2, j2] - m[i1, j2] * m[i2, j1]
                    adj[j, i] = (-1) ** (i + j) * minor  # adjugate = cofactor^T
            det = m[0, 0] * adj[0, 0] + m[0, 1] * adj[1, 0] + m[0, 2] * adj[2, 0]
            return adj / det
    return np.moveaxis(np.linalg.inv(np.moveaxis(m, -1, 0)), 0, -1)  # pragma: no cover


def _negative_real_eigenvalues(m):
    """Number of negative eigenvalues of each r x r matrix (layout (r, r, G), r <= 3) with REAL
    eigenvalues.

    Descartes' rule of signs is exact for real-rooted polynomials: the number of negative roots of
    ``det(x I - m)`` equals the number of sign changes of the coefficients of
    ``det(x I + m) = x^r + tr x^(r-1) + (sum of principal 2-minors) x^(r-2) + ... + det``.
    """
    r = m.shape[0]
    tr = sum(m[i, i] for i in range(r))
    if r == 1:
        return (m[0, 0] < 0).astype(int)
    if r == 2:
        coefs = [np.ones_like(tr), tr, m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]]
    elif r == 3:
        minors = sum(
            m[i, i] * m[j, j] - m[i, j] * m[j, i] for i in range(3) for j in range(i + 1, 3)
        )
        adj0 = [m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1], m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]]
        adj0.append(m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])
        det = m[0, 0] * adj0[0] + m[0, 1] * adj0[1] + m[0, 2] * adj0[2]
        coefs = [np.ones_like(tr), tr, minors, det]
    else:  # pragma: no cover - r <= 3 for every loss here
        return np.sum(np.linalg.eigvals(np.moveaxis(m, -1, 0)).real < 0, axis=1)
    changes = np.zeros(tr.shape, dtype=int)
    last = np.sign(coefs[0])
    for c in coefs[1:]:
        s = np.sign(c)
        changes += (s != 0) & (s != last)
        last = np.where(s != 0, s, last)
    return changes


def _proj(ut, x):
    """``Ut_g^T x_g``: (r, G, K), (G, K) -> (r, G)."""
    return np.einsum("rgk,gk->rg", ut, x)


def _comb(ut, c):
    """``Ut_g c_g``: (r, G, K), (r, G) -> (G, K)."""
    out = ut[0] * c[0][:, None]
    for j in range(1, ut.shape[0]):
        out += ut[j] * c[j][:, None]
    return out


def _matvec(mat, v):
    """``mat_g v_g``: (r, r, G), (r, G) -> (r, G)."""
    return np.sum(mat * v[None, :, :], axis=1)


def _factors(coupling, hess):
    h, u, wts = hess
    delta = 1.0 + coupling.a * h
    ut = u / delta[None]
    r = u.shape[0]
    utu = np.einsum("igk,jgk->ijg", u, ut)  # (r, r, G)
    minv = np.eye(r)[:, :, None] + coupling.a * wts[:, None, :] * utu
    m = _small_inv(minv)
    mw = m * wts[None, :, :]
    return _Factors(h, u, wts, delta, ut, minv, mw)


def _binv(coupling, fac, x):
    """``B_g^-1 x_g`` for x of shape (G, K)."""
    return x / fac.delta - coupling.a * _comb(fac.ut, _matvec(fac.mw, _proj(fac.ut, x)))


def _hbinv(fac, x):
    """``H_g B_g^-1 x_g`` for x of shape (G, K)."""
    return fac.h / fac.delta * x + _comb(fac.ut, _matvec(fac.mw, _proj(fac.ut, x)))


def _pad_factor(coupling, cols):
    """(r, G, K) -> (K, K, lmax * r): column ``(slot, j)`` of class ``k`` holds ``cols[j, g]``."""
    r = cols.shape[0]
    out = np.zeros((coupling.k, coupling.k, coupling.lmax, r))
    for j in range(r):
        out[coupling.kk, :, coupling.slot, j] = cols[j]
    return out.reshape(coupling.k, coupling.k, -1)


def _class_q(coupling, fac):
    """``Q_k = sum_{g in k} C_g H_g B_g^-1``, shape (K, K, K).

    ``H_g B_g^-1 = diag(h / Delta) + Ut (M W) Ut^T``; the low-rank parts of a class are one matrix
    product over its groups (zero-padded to ``lmax`` groups per class).
    """
    k = coupling.k
    r = fac.ut.shape[0]
    left = np.stack([_comb(fac.ut, fac.mw[:, j]) for j in range(r)]) * coupling.w[None, :, None]
    lp = _pad_factor(coupling, left)
    del left
    rp = _pad_factor(coupling, fac.ut)
    q = lp @ rp.transpose(0, 2, 1)
    del lp, rp
    idx = np.arange(k)
    q[:, idx, idx] += coupling.class_sums(fac.h / fac.delta)
    return q


def apply_hessian(hess, x):
    """``H_g x_g`` for x of shape (G, K)."""
    h, u, wts = hess
    return h * x + _comb(u, wts * _proj(u, x))


def apply_newton(coupling, hess, x):
    """``(I + L H) x`` for x of shape (G, K) (one matrix-vector product, O(r K^3))."""
    return x + coupling.apply(apply_hessian(hess, x))


class StructuredInverse:
    r"""Exact inverse of ``I + L H`` for one Hessian, by the structured elimination.

    Building costs ``O(r K^4)`` time (the class matrices ``Q_k``, batched inverses of ``E_k``) and
    ``O(r K^3)`` memory; :meth:`apply` costs ``O(r K^3)``. Raises ``numpy.linalg.LinAlgError`` if a
    piece is singular or not finite (possible only for non-convex losses).
    """

    def __init__(self, coupling, hess):
        k = coupling.k
        self.coupling = coupling
        with np.errstate(all="ignore"):
            self.fac = _factors(coupling, hess)
            q = _class_q(coupling, self.fac)
            e = coupling.g_class * q
            idx = np.arange(k)
            e[:, idx, idx] += 1.0
            self.einv = np.linalg.inv(e)
            del e
            self.q = q
            self.vinv = None
            if coupling.g_all != 0.0:
                # sum_j E_j^-1 Q_j (E_j and Q_j commute)
                s = (self.einv @ q).sum(axis=0)
                self.vinv = np.linalg.inv(np.eye(k) + coupling.g_all * s)
        finite = np.all(np.isfinite(self.einv)) and np.all(np.isfinite(self.fac.mw))
        if not finite or (self.vinv is not None and not np.all(np.isfinite(self.vinv))):
            raise np.linalg.LinAlgError("singular structured Newton matrix")

    def apply(self, rhs):
        """``(I + L H)^-1 rhs`` for rhs of shape (G, K) (module docstring, steps 2-4)."""
        cp, fac = self.coupling, self.fac
        with np.errstate(all="ignore"):
            # B^-1 x and H B^-1 x share their low-rank part Ut (M W) Ut^T x.
            low = _comb(fac.ut, _matvec(fac.mw, _proj(fac.ut, rhs)))
            binv_f = rhs / fac.delta - cp.a * low
            qv = cp.class_sums(fac.h / fac.delta * rhs + low)
            rhs_c = cp.g_class * qv + cp.g_all * qv.sum(axis=0)[None, :]
            x_c = (self.einv @ rhs_c[:, :, None])[:, :, 0]
            if self.vinv is not None:
                v = self.vinv @ (self.q @ x_c[:, :, None])[:, :, 0].sum(axis=0)
                m_c = x_c - cp.g_all * (self.einv @ v)
            else:
                m_c = x_c
            return binv_f - _binv(cp, fac, m_c[cp.kk])


def _gmres(apply_a, apply_m, rhs, rtol, max_iter):
    """Right-preconditioned GMRES without restarts (modified Gram-Schmidt, Givens-free: the small
    least-squares problem is solved directly). Returns ``(x, relative residual, iterations)``."""
    shape = rhs.shape
    b = rhs.ravel()
    beta = float(np.linalg.norm(b))
    if beta == 0.0:
        return np.zeros(shape), 0.0, 0
    basis = [b / beta]
    precond = []
    hess = np.zeros((max_iter + 1, max_iter))
    rel, y = 1.0, np.zeros(0)
    j = 0
    for j in range(max_iter):
        zj = apply_m(basis[j].reshape(shape)).ravel()
        precond.append(zj)
        w = apply_a(zj.reshape(shape)).ravel()
        for i, vi in enumerate(basis):
            hess[i, j] = float(vi @ w)
            w = w - hess[i, j] * vi
        hess[j + 1, j] = float(np.linalg.norm(w))
        e1 = np.zeros(j + 2)
        e1[0] = beta
        y, *_ = np.linalg.lstsq(hess[: j + 2, : j + 1], e1, rcond=None)
        rel = float(np.linalg.norm(hess[: j + 2, : j + 1] @ y - e1)) / beta
        if rel <= rtol or hess[j + 1, j] <= 1e-300:
            break
        basis.append(w / hess[j + 1, j])
    x = sum(yi * zi for yi, zi in zip(y, precond, strict=False))
    return np.asarray(x).reshape(shape), rel, j + 1


class NewtonSystem:
    r"""Solves ``(I + L H) x = rhs`` for a sequence of Hessians, reusing one structured inverse.

    The exact structured inverse of an earlier Hessian is a preconditioner for GMRES on the
    current system (Newton-Krylov); it is rebuilt when GMRES needs more than ``max_krylov``
    iterations. Consecutive Newton iterates, and consecutive self-distillation rounds, have close
    Hessians, so most steps cost ``O(r K^3)`` instead of the ``O(r K^4)`` of a rebuild.
    """

    #: Below this many flops a rebuild is cheaper than the Python overhead of a Krylov solve, and
    #: every step is an exact direct solve (about K <= 20).
    DIRECT_FLOPS = 1e6

    def __init__(self, coupling, max_krylov: int = 6):
        self.coupling = coupling
        self.max_krylov = max_krylov
        self.inverse = None
        self.builds = 0
        self.krylov_iterations = 0
        k = coupling.k
        self.direct = 2 * k * k * coupling.n_groups + 4 * k**4 <= self.DIRECT_FLOPS

    def _build(self, hess):
        self.inverse = None
        self.inverse = StructuredInverse(self.coupling, hess)
        self.builds += 1

    def solve(self, hess, rhs, rtol=1e-10):
        """``x`` with ``|(I + L H) x - rhs| <= rtol |rhs|`` (2-norm) if attainable.

        GMRES preconditioned by the stored inverse; if that misses ``rtol`` within
        ``max_krylov`` iterations, the inverse is rebuilt at ``hess`` and GMRES rerun, and its
        best iterate is returned even if ill-conditioning keeps it above ``rtol`` (the direct
        structured solve is then the most accurate step float64 allows). ``None`` only if the
        Newton matrix is singular: a piece of the elimination fails, or the best iterate does not
        even halve the residual (possible for non-convex losses only).
        """
        rtol = max(float(rtol), 1e-15)
        if self.direct:  # small problem: an exact direct solve at every step, no Krylov overhead
            try:
                self._build(hess)
            except np.linalg.LinAlgError:
                self.inverse = None
                return None
            x = self.inverse.apply(rhs)
            check = apply_newton(self.coupling, hess, x) - rhs
            ok = np.all(np.isfinite(x)) and np.linalg.norm(check) < 0.5 * np.linalg.norm(rhs)
            return x if ok else None
        for fresh in (False, True):
            if fresh or self.inverse is None:
                try:
                    self._build(hess)
                except np.linalg.LinAlgError:
                    self.inverse = None
                    return None
                fresh = True
            x, rel, its = _gmres(
                lambda v, h=hess: apply_newton(self.coupling, h, v),
                self.inverse.apply,
                rhs,
                rtol,
                self.max_krylov,
            )
            self.krylov_iterations += its
            finite = bool(np.all(np.isfinite(x)))
            if finite and rel <= rtol:
                return x
            if fresh:
                return x if finite and rel < 0.5 else None
        return None  # pragma: no cover - the loop returns on its second pass


def structured_step(coupling, hess, rhs):
    r"""Solve ``(I + L H) x = rhs`` exactly by the structured elimination (module docstring).

    Parameters
    ----------
    coupling : GroupCoupling
    hess : tuple
        ``(h (G, K), U (r, G, K), w (r, G))`` with ``H_g = diag(h_g) + sum_j w_jg u_jg u_jg^T``,
        ``h >= 0``.
    rhs : ndarray, shape (G, K)

    Returns
    -------
    ndarray, shape (G, K), or None
        ``None`` if a piece is singular or the solution misses ``STEP_RTOL`` relative accuracy
        (a singular or nearly singular Newton matrix).
    """
    try:
        x = StructuredInverse(coupling, hess).apply(rhs)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(x)):
        return None
    check = apply_newton(coupling, hess, x) - rhs
    scale = max(float(np.abs(rhs).max()), np.finfo(float).tiny)
    if float(np.abs(check).max()) > STEP_RTOL * scale:
        return None
    return x


# --------------------------------------------------------------------------------------------
# second-order diagnostic


def _n_negative_symmetric(mats):
    """Number of negative eigenvalues of a stack of symmetric matrices (Cholesky fast path)."""
    try:
        np.linalg.cholesky(mats)
        return 0
    except np.linalg.LinAlgError:
        return int(np.sum(np.linalg.eigvalsh(mats) < 0))


def newton_inertia(coupling, hess):
    r"""Number of negative eigenvalues of the Newton matrix ``I + L H`` (and of the ``B_g``).

    ``I + L H`` is similar to ``I + S^(1/2) H Omega^-1 S^(1/2)`` (``S = Omega L`` the symmetric
    positive definite compressed Gram matrix, ``Omega = diag(C_g)``), so its eigenvalues are real
    and, by Sylvester's law and Haynsworth's inertia additivity (``docs/theory.md``, Section 12),

    ``n_neg(I + L H) = sum_g n_neg(B_g) + n_neg(Gamma^-1 + Q) - n_neg(a Gamma^-1 + n I)``,

    ``Gamma = g_c I + g_a 1 1^T`` (class index), ``Q = blockdiag(Q_k)``. ``n_neg(B_g)`` equals the
    number of negative eigenvalues of the r x r matrix ``I + a W U^T Delta^-1 U``;
    ``Gamma^-1 + Q = blockdiag(E_k / g_c) - beta 1 1^T`` (``beta = g_a / (g_c (g_c + K g_a))``) is
    reduced once more: ``n_neg = sum_k n_neg(E_k / g_c) + n_neg(I / beta - g_c sum_k E_k^-1)
    - n_neg(I / beta)``. The full ``N x N`` problem has, in addition, the within-group directions
    of every group with ``C_g >= 2``, whose Newton matrix is ``B_g``.

    Returns
    -------
    tuple of (int, int) or None
        ``(n_neg(I + L H), number of groups with C_g >= 2 and n_neg(B_g) > 0)``; ``(0, 0)`` means
        the stationary point is a strict local minimum of the N x N objective (up to the
        floating-point sign of eigenvalues within round-off of zero). ``None`` where the
        reduction does not apply: ``c = d`` or ``c + (K-1) d = 0`` (``Gamma`` singular), a
        singular Gram matrix (``mu_1 = 0``: ``a Gamma^-1 + n I`` singular), ``c = 1`` with
        ``Gamma`` not positive definite, or a singular intermediate block
        (:func:`theory.group_descent.second_order` then counts from dense matrices).
    """
    if not _inertia_applies(coupling):
        return None
    try:
        inv = StructuredInverse(coupling, hess)
    except np.linalg.LinAlgError:
        return None
    return inertia_from_inverse(inv)


def _inertia_applies(coupling) -> bool:
    k, a, gc, ga = coupling.k, coupling.a, coupling.g_class, coupling.g_all
    if gc == 0 or gc + k * ga == 0:
        return False
    # A singular Gram matrix (mu_1 = 0, e.g. K = 3, c = 0, d = -0.05, n = 10) makes the block
    # a Gamma^-1 + n I singular: the reduction's count is then decided by round-off.
    n = float(coupling.w.sum()) / k
    mu1 = a + n * (gc + k * ga)  # mu_1 / (lam N)
    if abs(mu1) <= 1e-9 * (abs(a) + n * (abs(gc) + k * abs(ga))):
        return False
    return a > 0 or (gc > 0 and gc + k * ga > 0)


def inertia_from_inverse(inv: StructuredInverse):
    """:func:`newton_inertia` from an already built :class:`StructuredInverse`."""
    coupling = inv.coupling
    if not _inertia_applies(coupling):
        return None
    k = coupling.k
    a, gc, ga = coupling.a, coupling.g_class, coupling.g_all
    n = float(coupling.w.sum()) / k  # per-class size
    with np.errstate(all="ignore"):
        neg_b = _negative_real_eigenvalues(inv.fac.minv)  # (G,)
        e = gc * 0.5 * (inv.q + inv.q.transpose(0, 2, 1))  # symmetric in exact arithmetic
        idx = np.arange(k)
        e[:, idx, idx] += 1.0
        neg_e = _n_negative_symmetric(e)
        neg = int(neg_b.sum()) + (neg_e if gc > 0 else k * k - neg_e)
        if ga != 0:
            beta = ga / (gc * (gc + k * ga))
            s = gc * inv.einv.sum(axis=0)
            schur = np.eye(k) / beta - 0.5 * (s + s.T)
            neg += int(np.sum(np.linalg.eigvalsh(schur) < 0)) - (k if beta < 0 else 0)
        # n_neg(a Gamma^-1 + n I): eigenvalues a/gc + n (K(K-1) times), a/(gc + K ga) + n (K).
        neg -= (k * (k - 1)) * int(a / gc + n < 0) + k * int(a / (gc + k * ga) + n < 0)
    within = int(np.sum((coupling.w >= 2) & (neg_b > 0)))
    return neg, within


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
