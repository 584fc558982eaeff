"""Baseline for ``benchmarks.theory``: the previous exact group solver (dense K^2 x K^2 Newton).

A faithful copy of the group-level Newton iteration that ``theory.groups`` used before the
structured engine (``theory.group_engine``): every Newton step assembles and solves the dense
class-level system of K^2 unknowns (``K^4`` memory, ``K^6 / 3`` flops), with the same
Sherman-Morrison group blocks, the same backtracking on ``max|F|`` and the same stopping rule
(absolute residual ``<= max(tol, 64 eps (1 + max|z|))``). Kept only to measure speed-ups and to
cross-check outputs in the same run; not part of the toolkit's API.
"""

from __future__ import annotations

import numpy as np

from theory.blas import single_thread_blas
from theory.groups import BlockModel, check_counts, one_hot_group_targets


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)  # log-sum-exp shift: no overflow
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class _GroupSystem:
    """``F(z) = z - L (T - softmax(z))`` over the non-empty groups, with its dense Newton solve."""

    def __init__(self, model: BlockModel, cnt, lam):
        self.k = model.n_classes
        self.kk, self.ll = np.nonzero(cnt > 0)
        self.w = cnt[self.kk, self.ll].astype(float)
        lam_n = lam * model.n_samples
        self.a = (1.0 - model.c) / lam_n
        self.g_class = (model.c - model.d) / lam_n
        self.g_all = model.d / lam_n
        self.c, self.d, self.lam_n = model.c, model.d, lam_n

    def class_sums(self, v):
        s = np.zeros((self.k, v.shape[-1]))
        np.add.at(s, self.kk, self.w[:, None] * v)
        return s

    def apply_l(self, r):
        s = self.class_sums(r)
        return self.a * r + self.g_class * s[self.kk] + self.g_all * s.sum(axis=0)[None, :]

    def residual(self, z, targets):
        p = _softmax(z)
        return z - self.apply_l(targets - p), p

    def newton_step(self, z, f):
        k = self.k
        p = _softmax(z)
        p = np.where(p < 1e-200, 0.0, p)
        dinv = 1.0 / (1.0 + self.a * p)
        u = p * dinv
        s = self.a / (1.0 - self.a * np.sum(p * u, axis=1))

        def binv(x):
            return dinv * x + (s * np.sum(u * x, axis=1))[:, None] * u

        binv_f = binv(-f)
        jb_f = p * binv_f - p * np.sum(p * binv_f, axis=1, keepdims=True)
        coef = s[:, None] * p * u - (1.0 + s * np.sum(p * u, axis=1))[:, None] * p
        jb = coef[:, :, None] * u[:, None, :]
        jb[:, np.arange(k), np.arange(k)] += u
        q = np.zeros((k, k))
        np.add.at(q, self.kk, self.w[:, None] * jb_f)
        qm = np.zeros((k, k, k))
        np.add.at(qm, self.kk, self.w[:, None, None] * jb)
        mat = np.zeros((k, k, k, k))
        idx = np.arange(k)
        mat[idx, :, idx, :] = np.eye(k)[None] + self.g_class * qm
        mat += self.g_all * qm[None, :, :, :].transpose(0, 2, 1, 3)
        rhs = self.g_class * q + self.g_all * q.sum(axis=0)[None, :]
        m = np.linalg.solve(mat.reshape(k * k, k * k), rhs.reshape(-1)).reshape(k, k)
        return binv_f - binv(m[self.kk])


def _newton(sys_, z, tgt, tol, max_iter):
    f, p = sys_.residual(z, tgt)
    norm = np.abs(f).max()
    it = 0
    res = np.inf
    while it < max_iter:
        it += 1
        step = sys_.newton_step(z, f)
        alpha = 1.0
        while True:
            z_new = z + alpha * step
            f_new, p_new = sys_.residual(z_new, tgt)
            norm_new = np.abs(f_new).max()
            if norm_new <= (1 - 1e-4 * alpha) * norm or alpha < 1e-10:
                break
            alpha *= 0.5
        z, f, p, norm = z_new, f_new, p_new, norm_new
        res = float(np.abs(p - _softmax(sys_.apply_l(tgt - p))).max())
        if res <= max(tol, 64 * np.finfo(float).eps * (1.0 + np.abs(z).max())):
            break
    return z, p, res, it


def dense_predict_exact_outputs(model: BlockModel, counts, lam, rounds, tol=1e-12):
    """Group outputs (R + 1, K, K, K) of the exact rounds by the dense baseline."""
    cnt = check_counts(counts, model)
    k = model.n_classes
    targets = one_hot_group_targets(k)
    outputs = np.full((rounds + 1, k, k, k), np.nan)
    init = None
    for t in range(rounds + 1):
        sys_ = _GroupSystem(model, cnt, lam)
        tgt = targets[sys_.kk, sys_.ll]
        z0 = np.zeros_like(tgt) if init is None else init[sys_.kk, sys_.ll].copy()
        with single_thread_blas():
            z, p, res, _ = _newton(sys_, z0, tgt, tol, 100)
        if res > max(tol, 64 * np.finfo(float).eps * (1.0 + np.abs(z).max())):
            raise RuntimeError(f"dense baseline did not converge: residual {res:.3g}")
        outputs[t][sys_.kk, sys_.ll] = p
        init = np.full((k, k, k), np.nan)
        init[sys_.kk, sys_.ll] = z
        targets = outputs[t]
    return outputs


def dense_newton_bytes(n_classes: int) -> int:
    """Memory of the dense class-level Newton matrix alone: ``8 K^4`` bytes."""
    return 8 * int(n_classes) ** 4
