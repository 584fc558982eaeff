r"""The state equations of exact self-distillation at finite ratio, solved round by round.

Notation (docs/theory.md §16). Rounds ``t = 0..R`` stack into ``D = (R+1) K`` logit coordinates;
``psi_t(z) = tau_t - softmax(z_t)`` is round ``t``'s negative loss gradient (``tau_0 = e_l``, the
given label; ``tau_t = softmax(z_{t-1})``). A training point of group ``g`` (true class ``k``,
label ``l``) has training logits

.. math::  z = b_k - U_k \bar\psi_g + \eta_k + \omega + (\mathbf V + U_k + \Omega)\, \psi(z),

round by round a cross-entropy prox (``V``, ``U_k``, ``Omega`` block lower triangular):
``omega ~ N(0, Sigma)`` is its cavity noise (``Sigma = Q + sigma^2 B Gamma^+ B^T``, bulk plus
mean-subspace noise), ``V`` the bulk self-response, ``U_k`` and ``Omega`` the self-response
through its class's means and through its own noise in the mean directions, and
``eta_k ~ N(0, C_k)`` the training set's fluctuation of the class means
(:mod:`theory.finite_exact.fluctuations`), ``psi-bar_g = E_g[psi]``. The order parameters solve,
with ``alpha = N/p'``, ``p' = p - K``, ``v_0 = sigma^2 p'/(lam N)``, ``<.>`` the average over all
``N`` training points and ``A = I - alpha v_0 <d psi/d h>``,

.. math::  \mathbf V = v_0 A^{-1}, \qquad Q = \alpha\, \mathbf V \langle \psi \psi^T \rangle
           \mathbf V^T, \qquad A\,\mathbf B = \mathbf S\,\Gamma/(\lambda N),

``S_l`` the class sums of ``psi`` (expected), ``Gamma = (c - d) I + d 1 1^T`` the class means'
Gram; ``U_k`` and ``C_k`` come from the same equations linearised around the solution. Because
``psi_t`` only involves rounds ``<= t``, every quantity is determined block row by block row:
round ``t``'s row is a fixed point given rounds ``< t``.

Expectations are averages over :func:`theory.finite_exact.quadrature.gauss_points` with
``h - (b_k - U_k psi-bar_g) = L_k xi`` (``L_k`` the block-lower-triangular Cholesky factor of
``Sigma + C_k`` in zero-sum coordinates). The derivatives are pathwise: ``d psi_t/d h_t =
-H (I + R_tt H)^{-1}`` (``R = V + U_k + Omega``) and the cross-round ones ``d psi_t / d h_r``
(``r < t``, the rounds' coupling through the data) by forward-mode tangents kept per point
(float32, ``O(M K^2 R^2)`` storage). The PLL student's target is discontinuous in the teacher's
logits; its cross-round derivative is the distributional one, from the Stein (score) identity
``E[psi_t xi^T] = E[d psi_t / d h] L_k`` (well conditioned there: two rounds with different
targets). The score identity is not used for self-distillation: when successive rounds are nearly
collinear (small ``lam``, many rounds) the diagonal blocks of ``L_k`` are ~1e-4 and dividing by
them made the iteration cycle.

Layout (issue 23): the per-point integration of one group (the prox solves, the pathwise tangents,
the score identity) is :mod:`theory.finite_exact.integrate`; the order parameters, each round's
fixed point and the training statistics are here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from theory.finite_exact.fluctuations import class_mean_response, class_mean_response_cyclic
from theory.finite_exact.integrate import NotPSD, cross_derivatives, group_pass, noise_factor
from theory.finite_exact.prox import softmax
from theory.finite_exact.quadrature import GaussPoints
from theory.finite_exact.symmetry import ClassSymmetry
from theory.metrics import correct_and_tied

__all__ = ["FixedPointNotConverged", "RoundStats", "StateProblem", "solve_state"]

#: Default stopping rule of each round's fixed point: the largest relative change of ``V``, ``U``
#: and ``Omega`` (in units of ``v_0``), of ``Q`` and ``C`` (relative to the largest cavity
#: variance) and of ``B``, and the class-sum residual (both relative to ``1 + max|b|``). 1e-6 is
#: far below the quadrature's own error (~1e-3 in accuracy) and above the map's evaluation
#: noise when successive rounds are nearly collinear (small lam, many rounds): the cavity
#: covariance's Cholesky factor then has condition ~1e9 and its round-off makes the map rough at
#: the ~1e-7 level (measured: a 4-cycle at 2e-7 with tol 1e-7).
STATE_TOL = 1e-6
_EPS = float(np.finfo(float).eps)
#: Iteration cap per round (measured: 12-25 iterations from the warm start).
MAX_ITER = 300
#: Anderson memory (iterates kept).
_ANDERSON_MEMORY = 10
#: Anderson restarts (history dropped) when the residual exceeds this multiple of the best so far;
#: Anderson is not monotone, and restarting on every small increase was measured to lock the
#: iteration into a cycle when successive rounds are nearly collinear (lam = 1e-4, many rounds).
_RESTART_GROWTH = 10.0
#: Stall rule: when the residual has not improved for ``_STALL_ITER`` iterations and the best one
#: is below ``_STALL_ACCEPT``, the best iterate is kept and its residual reported (``residuals``;
#: ``converged`` stays true). Nearly collinear rounds make the map rough at 1e-7-1e-5 (Cholesky
#: round-off, above); a relative error of 1e-4 in the order parameters moves accuracies by ~1e-4,
#: a tenth of the quadrature error.
_STALL_ITER = 25
_STALL_ACCEPT = 1e-4
#: Continuation: shifts used in the coarse phase, and the residual that ends it.
_COARSE_SHIFTS = 2
_COARSE_TOL = 1e-3


class FixedPointNotConverged(RuntimeError):
    """A round's state equations did not reach the tolerance within the iteration cap."""


@dataclass(frozen=True)
class StateProblem:
    """Everything the state equations need (validated by :func:`theory.finite_exact.predict`).

    ``dim = inf`` is the block limit: ``sigma^2 = 0``, ``alpha = 0``, ``v_0 = (1 - c)/(lam N)``,
    no bulk noise (every point of a group has the same logits).
    """

    counts: np.ndarray  # (K, K) int
    lam: float
    rounds: int
    c: float
    d: float
    dim: float
    student: str = "sd"  # 'sd': round t trains on softmax(z_{t-1}); 'pll': round 1 on top-2
    infinite: bool = field(init=False)
    n_classes: int = field(init=False)
    n_samples: int = field(init=False)
    sigma2: float = field(init=False)
    alpha: float = field(init=False)
    v0: float = field(init=False)
    gamma: np.ndarray = field(init=False)

    def __post_init__(self):
        k = self.counts.shape[0]
        n_tot = int(self.counts.sum())
        inf = math.isinf(self.dim)
        set_ = object.__setattr__
        set_(self, "infinite", inf)
        set_(self, "n_classes", k)
        set_(self, "n_samples", n_tot)
        if inf:
            set_(self, "sigma2", 0.0)
            set_(self, "alpha", 0.0)
            set_(self, "v0", (1.0 - self.c) / (self.lam * n_tot))
        else:
            sigma2 = (1.0 - self.c) / self.dim
            bulk = self.dim - k
            set_(self, "sigma2", sigma2)
            set_(self, "alpha", n_tot / bulk)
            set_(self, "v0", sigma2 * bulk / (self.lam * n_tot))
        set_(self, "gamma", (self.c - self.d) * np.eye(k) + self.d * np.ones((k, k)))


@dataclass
class RoundStats:
    """Per-round outputs after the round's fixed point converged."""

    group_correct: np.ndarray  # (K, K): fraction of points of group (k, l) classified correctly
    group_correct_shift: np.ndarray  # (K, K, n_shifts): the same per lattice shift
    group_logit_mean: np.ndarray  # (K, K, K)
    group_logit_cov: np.ndarray  # (K, K, K, K)
    group_output_mean: np.ndarray  # (K, K, K): mean of softmax(z) - 1/K
    iterations: int
    residual: float


@dataclass
class _State:
    v: np.ndarray  # (R1, R1, K, K) bulk self-response
    a: np.ndarray  # (R1, R1, K, K)
    q: np.ndarray  # (R1 K, R1 K) bulk covariance
    b: np.ndarray  # (R1, K, K): b[t][:, k] = b_{k, t}
    pp: np.ndarray  # (R1, R1, K, K): <psi_t psi_s^T> over all training points
    z: np.ndarray  # (R1, G, M, K) training logits of the integrated groups
    psi: np.ndarray  # (R1, G, M, K)
    psi_mean: np.ndarray  # (R1, G, K): per-group mean of psi_t
    jac_class: np.ndarray  # (K, R1, R1, K, K): class sums of d psi_t / d h_s (s <= t)
    psi_cov_class: np.ndarray  # (K, R1, R1, K, K): class sums of C_g Cov_g(psi_t, psi_s)
    u: np.ndarray  # (K, R1 K, R1 K): self-response through the class means (simulated classes)
    omega: np.ndarray  # (R1 K, R1 K): self-response through the mean directions' noise
    ceta: np.ndarray  # (K, R1 K, R1 K): class-mean fluctuation covariance (simulated classes)
    dpsi: dict = field(default_factory=dict)  # (g, s, r) -> d psi_s / d h_r per point, float32
    dz: dict = field(default_factory=dict)  # (g, s, r) -> d z_s / d h_r per point (s = t - 1)


def zero_sum_basis(k: int) -> np.ndarray:
    """Orthonormal basis (K, K-1) of ``{x : 1^T x = 0}`` (Helmert)."""
    e = np.zeros((k, k - 1))
    for j in range(1, k):
        e[:j, j - 1] = 1.0 / math.sqrt(j * (j + 1))
        e[j, j - 1] = -j / math.sqrt(j * (j + 1))
    return e


def _init_round(t, prob, st):
    k = prob.n_classes
    if t == 0:
        st.v[0, 0] = prob.v0 * np.eye(k)
        st.a[0, 0] = np.eye(k)
        st.b[0] = np.eye(k) - 1.0 / k
        return
    # Round t starts from round t-1's parameters with h_t = rho h_{t-1} (a PSD covariance).
    rho = 0.9
    st.v[t, t] = st.v[t - 1, t - 1]
    st.b[t] = st.b[t - 1]
    prev, cur = slice((t - 1) * k, t * k), slice(t * k, (t + 1) * k)
    for mat in (st.q, *st.ceta):
        row = rho * mat[prev, : t * k]
        mat[cur, : t * k] = row
        mat[: t * k, cur] = row.T
        mat[cur, cur] = mat[prev, prev]
    for u in (*st.u, st.omega):
        u[cur, cur] = u[prev, prev]
    st.z[t] = st.z[t - 1]
    st.psi_mean[t] = st.psi_mean[t - 1]


def _b_newton(t, prob, sym, st, psi_cls, jac_cls):
    """One Newton step on round ``t``'s class-sum equation ``A B = S Gamma/(lam N)``."""
    k = prob.n_classes
    lam_n = prob.lam * prob.n_samples
    lhs = sum(st.a[t, s] @ st.b[s] for s in range(t + 1))
    if sym.kind == "cyclic":
        # Columns are rolls of column 0 and 1^T S_0 = 0, so [S Gamma]_0 = (c - d) S_0 and the
        # equivariant Jacobian in b_0 is (c - d) J_0/(lam N) - A_tt.
        res = (prob.c - prob.d) * psi_cls[0] / lam_n - lhs[:, 0]
        jac = (prob.c - prob.d) * jac_cls[0] / lam_n - st.a[t, t]
        step0 = -np.linalg.solve(jac, res)
        step = np.stack([np.roll(step0, j) for j in range(k)], axis=1)
        return step, float(np.max(np.abs(res)))
    res = psi_cls.T @ prob.gamma / lam_n - lhs  # (K, K): columns l'
    big = np.zeros((k * k, k * k))
    for lp in range(k):
        for cl in range(k):
            blk = prob.gamma[cl, lp] * jac_cls[cl] / lam_n
            if cl == lp:
                blk = blk - st.a[t, t]
            big[lp * k : (lp + 1) * k, cl * k : (cl + 1) * k] = blk
    step = -np.linalg.solve(big, res.T.reshape(-1)).reshape(k, k).T
    return step, float(np.max(np.abs(res)))


class _RoundMap:
    """Round ``t``'s fixed-point map ``x -> G(x)``, ``x = (V row, Q row, B_t, U rows, C rows)``.

    ``G`` sets the state to ``x``, integrates every group once
    (:func:`theory.finite_exact.integrate.group_pass`) and returns the updated ``V`` and ``Q`` rows
    (their defining equations), ``B_t`` plus one Newton step of the class-sum equation, and the
    rows of the self-response ``U_k`` and fluctuation covariance ``C_k`` of the integrated classes.
    Scaled so that one unit is ``v_0`` for ``V`` and ``U``, the largest entry of ``Q`` for ``Q``
    and ``C`` and ``1 + max|b|`` for ``B``: the stopping rule and Anderson's least squares see
    relative changes.
    """

    def __init__(self, t, prob, sym, st, pts, groups, fluctuations):
        self.t, self.prob, self.sym, self.st, self.pts, self.groups = t, prob, sym, st, pts, groups
        self.fluct = fluctuations
        self.basis = zero_sum_basis(prob.n_classes)
        self.calls = 0
        self.m = pts.size  # points in use (a prefix of whole shifts in the coarse phase)
        self.b_floor = 0.0  # round-off level of B_t, set by each integration

    def _rows(self):
        t, k = self.t, self.prob.n_classes
        return slice(t * k, (t + 1) * k), slice(0, (t + 1) * k)

    def pack(self):
        t, st = self.t, self.st
        cur, upto = self._rows()
        sim = self.sym.simulated
        return np.concatenate(
            [
                st.v[t, : t + 1].ravel(),
                st.q[cur, upto].ravel(),
                st.b[t].ravel(),
                st.u[sim][:, cur, upto].ravel(),
                st.ceta[sim][:, cur, upto].ravel(),
                st.omega[cur, upto].ravel(),
            ]
        )

    def _sizes(self):
        t, k = self.t, self.prob.n_classes
        nv = (t + 1) * k * k
        ns = len(self.sym.simulated) * nv
        return nv, ns

    def unpack(self, x):
        t, k, st = self.t, self.prob.n_classes, self.st
        cur, upto = self._rows()
        nv, ns = self._sizes()
        st.v[t, : t + 1] = x[:nv].reshape(t + 1, k, k)
        st.v[t, t] = 0.5 * (st.v[t, t] + st.v[t, t].T)
        _set_row(st.q, x[nv : 2 * nv].reshape(k, (t + 1) * k), cur, upto, t, k)
        off = 2 * nv
        st.b[t] = x[off : off + k * k].reshape(k, k)
        off += k * k
        u_rows = x[off : off + ns].reshape(-1, k, (t + 1) * k)
        c_rows = x[off + ns : off + 2 * ns].reshape(-1, k, (t + 1) * k)
        for j, cls in enumerate(self.sym.simulated):
            st.u[cls, cur, upto] = u_rows[j]
            _set_row(st.ceta[cls], c_rows[j], cur, upto, t, k)
        st.omega[cur, upto] = x[off + 2 * ns :].reshape(k, (t + 1) * k)

    def b_scale(self, b_t) -> float:
        """Unit of ``B_t``: its own size, or its round-off level where that is larger."""
        return max(float(np.max(np.abs(b_t))), self.b_floor, 1e-300)

    def scales(self, x):
        nv, ns = self._sizes()
        k = self.prob.n_classes
        t = self.t
        # Each round's covariances are measured against that round's own cavity variances: the
        # (t, s) block of a Q or C row in units of sqrt(d_t d_s), d_r the largest variance of
        # round r (bulk plus class-mean fluctuation). At large lam the variances shrink by ~1e-6
        # per round; measured against round 0's, a late round's changes were never resolved
        # (chance accuracies at lam = 100). Round-off in psi is relative since psi is formed from
        # softmax deviations (integrate.group_pass).
        n_sim = len(self.sym.simulated)
        q_row = x[nv : 2 * nv].reshape(k, t + 1, k)
        c_rows = x[2 * nv + k * k + ns : 2 * nv + k * k + 2 * ns].reshape(n_sim, k, t + 1, k)
        d = np.empty(t + 1)
        for r in range(t + 1):
            if r == t:
                q_var = np.diagonal(q_row[:, t, :])
                c_var = np.diagonal(c_rows[:, :, t, :], axis1=1, axis2=2)
            else:
                blk = slice(r * k, (r + 1) * k)
                q_var = np.diag(self.st.q[blk, blk])
                c_var = np.diagonal(self.st.ceta[:, blk, blk], axis1=1, axis2=2)
            d[r] = float(np.max(q_var)) + float(np.max(c_var, initial=0.0))
        unit = np.sqrt(np.maximum(d[t] * d, 0.0))
        unit = np.maximum(unit, 1e-300 + 1e-300 * float(np.max(unit)))
        sq = np.broadcast_to(unit[None, :, None], (k, t + 1, k)).ravel()
        sc = np.broadcast_to(unit[None, None, :, None], (n_sim, k, t + 1, k)).ravel()
        sb = self.b_scale(x[2 * nv : 2 * nv + k * k])
        v0 = self.prob.v0
        return np.concatenate(
            [
                np.full(nv, v0),
                sq,
                np.full(k * k, sb),
                np.full(ns, v0),
                sc,
                np.full(nv, v0),
            ]
        )

    def integrate(self, store=False):
        """One pass over the groups at the current state; returns the class sums and globals.
        ``store``: keep the per-point tangents (the pass at the converged state)."""
        t, prob, sym, st, pts = self.t, self.prob, self.sym, self.st, self.pts
        k = prob.n_classes
        psi_cls = np.zeros((k, k))
        psi_abs = np.zeros(k)  # per class: sum over groups of count * max|psi-bar_g|
        jac_cls = np.zeros((k, k, k))
        pp_cls = np.zeros((k, t + 1, k, k))
        cov_cls = np.zeros((k, t + 1, k, k))
        cross_cls = np.zeros((k, t, k, k))
        warm = self.calls > 0 or t > 0  # round t > 0 starts from round t-1's logits
        for cls in sym.simulated:
            m = self.m
            if prob.infinite:  # block limit: no bulk noise, one point per group
                chol, noise_t = None, np.zeros((m, k))
            else:
                chol, fac = noise_factor(t, prob, st, self.basis, cls)
                noise_t = pts.xi[:m, : (t + 1) * (k - 1)] @ fac[t * k : (t + 1) * k].T
            score_sum = np.zeros((k, (t + 1) * (k - 1)))
            for g, (gc, label, cnt) in enumerate(self.groups):
                if gc != cls:
                    continue
                psi_m, jac_m, pp_m, cross_m, score_m = group_pass(
                    t, g, gc, label, prob, st, pts, noise_t, warm, m, store
                )
                cross_cls[cls] += cnt * cross_m
                psi_cls[cls] += cnt * psi_m
                psi_abs[cls] += cnt * float(np.max(np.abs(psi_m)))
                jac_cls[cls] += cnt * jac_m
                pp_cls[cls] += cnt * pp_m
                mean_outer = psi_m[None, :, None] * st.psi_mean[: t + 1, g, None, :]
                cov_cls[cls] += cnt * (pp_m - mean_outer)
                if score_m is not None:
                    score_sum += cnt * score_m
            if t and prob.alpha > 0 and prob.student == "pll":
                cross_cls[cls] = cross_derivatives(t, jac_cls[cls], score_sum, chol, self.basis, k)
        self.calls += 1
        # Round-off level of B_t: the class sums' terms (before any cancellation between groups,
        # e.g. the exact ties of equal label histograms) through Gamma / (lam N); B is resolved
        # relative to max(|B_t|, this) (scales).
        gmax = float(np.max(np.abs(prob.gamma)))
        self.b_floor = (
            64.0
            * _EPS
            * k
            * gmax
            * float(np.max(psi_abs[sym.simulated]))
            / (prob.lam * prob.n_samples)
        )
        psi_cls = sym.expand_vectors(psi_cls)
        jac_cls = sym.expand_matrices(jac_cls)
        # Class-level sums kept for the fluctuations (fluctuations.py).
        st.jac_class[:, t, t] = jac_cls
        if t:
            st.jac_class[:, t, :t] = sym.expand_matrices(cross_cls)
        st.psi_cov_class[:, t, : t + 1] = sym.expand_matrices(cov_cls)
        n_tot = prob.n_samples
        pp_glob = sym.expand_matrices(pp_cls).sum(axis=0) / n_tot  # (t+1, K, K)
        cross_glob = sym.expand_matrices(cross_cls).sum(axis=0) / n_tot if t else None
        return psi_cls, jac_cls, pp_glob, cross_glob

    def __call__(self, x):
        """``G(x)`` and the class-sum residual (relative) at ``x``."""
        t, prob, st = self.t, self.prob, self.st
        k, v0 = prob.n_classes, prob.v0
        self.unpack(x)
        psi_cls, jac_cls, pp_glob, cross_glob = self.integrate()
        jac_glob = jac_cls.sum(axis=0) / prob.n_samples
        # A's block row t, then V's block row t (block lower-triangular inverse, v0 A^{-1}).
        a_row = np.zeros((t + 1, k, k))
        a_row[t] = np.eye(k) - prob.alpha * v0 * jac_glob
        for r in range(t):
            a_row[r] = -prob.alpha * v0 * cross_glob[r]
        st.a[t, : t + 1] = a_row
        att_inv = np.linalg.inv(a_row[t])
        v_row = np.zeros((t + 1, k, k))
        v_row[t] = v0 * 0.5 * (att_inv + att_inv.T)
        for r in range(t):
            acc = sum(a_row[q] @ st.v[q, r] for q in range(r, t))
            v_row[r] = -att_inv @ acc
        st.pp[t, : t + 1] = pp_glob
        st.pp[: t + 1, t] = np.transpose(pp_glob, (0, 2, 1))
        q_row = np.zeros((k, (t + 1) * k))
        if prob.alpha > 0:
            for s in range(t + 1):
                acc = np.zeros((k, k))
                for a_ in range(t + 1):
                    v_ta = v_row[a_]
                    for b_ in range(s + 1):
                        v_sb = v_row[b_] if s == t else st.v[s, b_]
                        acc += v_ta @ st.pp[a_, b_] @ v_sb.T
                q_row[:, s * k : (s + 1) * k] = prob.alpha * acc
        step, fres = _b_newton(t, prob, self.sym, st, psi_cls, jac_cls)
        bscale = self.b_scale(st.b[t])
        cur, upto = self._rows()
        sim = self.sym.simulated
        if self.fluct:
            if self.sym.kind == "cyclic":
                u_all, c_all, om = class_mean_response_cyclic(prob, st, t)
            else:
                u_all, c_all, om = class_mean_response(prob, st, t, sim)
            u_rows, c_rows, om_row = u_all[:, cur, upto], c_all[:, cur, upto], om[cur, upto]
        else:
            u_rows = c_rows = np.zeros((len(sim), k, (t + 1) * k))
            om_row = np.zeros((k, (t + 1) * k))
        gx = np.concatenate(
            [
                v_row.ravel(),
                q_row.ravel(),
                (st.b[t] + step).ravel(),
                u_rows.ravel(),
                c_rows.ravel(),
                om_row.ravel(),
            ]
        )
        return gx, fres / bscale


def _set_row(mat, row, cur, upto, t, k):
    """Write block row ``t`` of a symmetric matrix (and its transpose block column)."""
    row = row.copy()
    row[:, t * k :] = 0.5 * (row[:, t * k :] + row[:, t * k :].T)
    mat[cur, upto] = row
    mat[upto, cur] = row.T


def _anderson(xs, gs, scale):
    """Anderson (type II) extrapolation from the last iterates ``xs`` and images ``gs``."""
    fs = [(g - x) / scale for x, g in zip(xs, gs, strict=True)]
    if len(fs) < 2:
        return gs[-1]
    df = np.stack([fs[i + 1] - fs[i] for i in range(len(fs) - 1)], axis=1)
    dg = np.stack([gs[i + 1] - gs[i] for i in range(len(gs) - 1)], axis=1)
    gamma, *_ = np.linalg.lstsq(df, fs[-1], rcond=1e-10)
    return gs[-1] - dg @ gamma


def _solve_round(t, prob, sym, st, pts, groups, tol, max_iter, fluctuations):
    """Solve round ``t``'s block row by Anderson-accelerated fixed-point iteration.

    Continuation: the first iterations use the first ``_COARSE_SHIFTS`` lattice shifts only (a
    coarser balanced rule, 4x cheaper) until the residual is below ``_COARSE_TOL``; the rest use
    every point (the coarse solution differs from the fine one by the quadrature error, ~1e-3,
    so a few fine iterations finish).

    Anderson (memory ``_ANDERSON_MEMORY``) on the map of :class:`_RoundMap`; a restart (plain
    step, history dropped) when the scaled residual grows ``_RESTART_GROWTH``-fold or an
    extrapolated iterate's covariance is not PSD.
    """
    _init_round(t, prob, st)
    gmap = _RoundMap(t, prob, sym, st, pts, groups, fluctuations)
    coarse = pts.size * _COARSE_SHIFTS // pts.n_shifts
    if pts.n_shifts > _COARSE_SHIFTS and coarse > 4 * pts.dim:
        gmap.m = coarse  # coarse phase: a quarter of the points, until COARSE_TOL
    x = gmap.pack()
    xs, gs = [], []
    res = best = math.inf
    best_x, since_best = None, 0
    it = 0
    while it < max_iter:
        it += 1
        try:
            gx, fres = gmap(x)
        except NotPSD:
            if not gs:
                raise
            x, xs, gs = gs[-1], [], []  # the plain image is PSD: restart from it
            continue
        scale = gmap.scales(gx)
        res = max(float(np.max(np.abs(gx - x) / scale)), fres)
        if gmap.m < pts.size and res <= _COARSE_TOL:
            gmap.m = pts.size  # all points from here on: the map changed, drop the history
            x, xs, gs, best = gx, [], [], math.inf
            continue
        if res <= tol:
            gmap.unpack(gx)
            break
        if res < best:
            best, best_x, since_best = res, gx, 0
        else:
            since_best += 1
        if since_best >= _STALL_ITER and best <= _STALL_ACCEPT and gmap.m == pts.size:
            # Stalled at the map's own round-off floor (nearly collinear rounds): keep the best
            # iterate and report its residual (module constants).
            gmap.unpack(best_x)
            res = best
            break
        if res > _RESTART_GROWTH * best:  # diverging: restart from the plain image
            xs, gs = [], []
        xs.append(x)
        gs.append(gx)
        xs, gs = xs[-_ANDERSON_MEMORY:], gs[-_ANDERSON_MEMORY:]
        x = _anderson(xs, gs, scale)
    if res > max(tol, _STALL_ACCEPT):
        raise FixedPointNotConverged(
            f"round {t}: state equations not converged in {max_iter} iterations "
            f"(residual {res:.3g} > {tol:g})"
        )
    # One last pass at the converged parameters, so that the stored logits are the solution and
    # the tangents of this round are kept for the next ones (round t - 1's are no longer needed).
    gmap.integrate(store=True)
    for key in [key for key in st.dz if key[1] < t]:
        del st.dz[key]
    return it, res


def _round_outputs(t, prob, sym, st, pts, groups, it, res):
    k = prob.n_classes
    n_sh = pts.n_shifts
    correct = np.full((k, k), np.nan)
    correct_sh = np.full((k, k, n_sh), np.nan)
    lmean = np.full((k, k, k), np.nan)
    lcov = np.full((k, k, k, k), np.nan)
    omean = np.full((k, k, k), np.nan)
    for g, (cls, label, _cnt) in enumerate(groups):
        z = st.z[t, g]
        ok, _tied = correct_and_tied(z.T, np.full(z.shape[0], cls))
        labels = [(cls, label)]
        if sym.kind == "cyclic":
            labels = [((cls + j) % k, (label + j) % k) for j in range(k)]
        for j, (kk, ll) in enumerate(labels):
            shift = j if sym.kind == "cyclic" else 0
            correct[kk, ll] = ok.mean()
            correct_sh[kk, ll] = np.bincount(pts.shift_of, weights=ok, minlength=n_sh) / (
                np.bincount(pts.shift_of, minlength=n_sh)
            )
            mu = z.mean(axis=0)
            lmean[kk, ll] = np.roll(mu, shift)
            lcov[kk, ll] = np.roll(np.cov(z.T, bias=True).reshape(k, k), (shift, shift), (0, 1))
            omean[kk, ll] = np.roll(softmax(z).mean(axis=0) - 1.0 / k, shift)
    return RoundStats(correct, correct_sh, lmean, lcov, omean, it, res)


def solve_state(
    prob: StateProblem,
    sym: ClassSymmetry,
    pts: GaussPoints,
    *,
    tol: float = STATE_TOL,
    max_iter: int = MAX_ITER,
    progress=None,
    fluctuations: bool = True,
):
    """Solve the state equations of rounds ``0..R`` and evaluate the training statistics.

    With ``fluctuations`` (default), a point's law includes its self-response through its class's
    means and the training set's fluctuation of those means (``O(1/n)`` terms; exact and absent
    in the block limit); without, the leading-order equations (``U = C = 0``).

    Returns
    -------
    state : _State
        Order parameters ``v`` (R1, R1, K, K), ``q`` (R1 K, R1 K), ``b`` (R1, K, K), ``u`` and
        ``ceta`` (K, R1 K, R1 K) (the integrated classes' blocks; the rest by symmetry).
    rounds : list of RoundStats
    """
    k = prob.n_classes
    r1 = prob.rounds + 1
    groups = [
        (int(cls), int(label), int(prob.counts[cls, label]))
        for cls in sym.simulated
        for label in range(k)
        if prob.counts[cls, label] > 0
    ]
    m = pts.size
    st = _State(
        v=np.zeros((r1, r1, k, k)),
        a=np.zeros((r1, r1, k, k)),
        q=np.zeros((r1 * k, r1 * k)),
        b=np.zeros((r1, k, k)),
        pp=np.zeros((r1, r1, k, k)),
        z=np.zeros((r1, len(groups), m, k)),
        psi=np.zeros((r1, len(groups), m, k)),
        psi_mean=np.zeros((r1, len(groups), k)),
        jac_class=np.zeros((k, r1, r1, k, k)),
        psi_cov_class=np.zeros((k, r1, r1, k, k)),
        u=np.zeros((k, r1 * k, r1 * k)),
        omega=np.zeros((r1 * k, r1 * k)),
        ceta=np.zeros((k, r1 * k, r1 * k)),
    )
    fluct = fluctuations and not prob.infinite
    out = []
    for t in range(r1):
        it, res = _solve_round(t, prob, sym, st, pts, groups, tol, max_iter, fluct)
        out.append(_round_outputs(t, prob, sym, st, pts, groups, it, res))
        if progress is not None:
            progress(t)
    if sym.kind == "cyclic":  # fill the other classes' blocks by symmetry (outputs use them)
        for cls in range(1, k):
            st.u[cls] = _roll_blocks(st.u[0], cls, k, r1)
            st.ceta[cls] = _roll_blocks(st.ceta[0], cls, k, r1)
    return st, out


def _roll_blocks(mat, shift, k, r1):
    """Roll the logit index of every K x K block of an (R1 K, R1 K) matrix by ``shift``."""
    blocks = mat.reshape(r1, k, r1, k)
    return np.roll(blocks, (shift, shift), axis=(1, 3)).reshape(r1 * k, r1 * k)
