r"""The structured Newton matrix ``I + L H`` of the group engine: solve, inverse and inertia.

:mod:`theory.group_engine` solves the group-level fixed point ``F(z) = z - L f(z) = 0`` (its
docstring states it and the coupling ``L``). Its Newton matrix ``I + L H`` (``H =
blockdiag(H_g)``, ``H_g = diag(h_g) + U_g diag(w_g) U_g^T`` with ``r <= 3`` columns) is solved here
exactly in ``O(r K^4)`` time and ``O(r K^3)`` memory, never forming the ``K^3 x K^3`` (or the old
dense ``K^2 x K^2``) matrix:

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

A step is checked by one extra matrix-vector product (:data:`STEP_RTOL`);
:func:`newton_inertia` counts the negative eigenvalues of ``I + L H`` (the second-order
diagnostic of the non-convex losses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "STEP_RTOL",
    "NewtonSystem",
    "StructuredInverse",
    "apply_hessian",
    "apply_newton",
    "inertia_from_inverse",
    "newton_inertia",
    "structured_step",
]

_EPS = np.finfo(float).eps
#: Relative accuracy a structured Newton step must reach (checked with one matrix-vector product)
#: before it is used; a failed check means a (nearly) singular Newton matrix.
STEP_RTOL = 1e-6


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
