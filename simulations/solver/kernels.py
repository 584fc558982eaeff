"""Row-blocked element-wise kernels and products with the data matrix of the probe solver.

Samples are rows: logits ``Z = B C`` (N, K) for a data matrix ``B`` (N, q) and coefficients
``C`` (q, K). The row-wise work (softmax, line search, certificate, the Jacobian part of Hessian
products) runs in row blocks of ~2 MB (:data:`_BLOCK_ELEMENTS`, :func:`row_blocks`); products with
``B`` are formed in the orientation OpenBLAS runs fastest (:func:`basis_times`,
:func:`basis_t_times`; ``python -m benchmarks.blas_orientation``).
"""

from __future__ import annotations

import math

import numpy as np

from simulations import softmax as _softmax_mod
from simulations.softmax import (
    expm1_minus_identity,
    log1p_minus_identity,
)

__all__ = [
    "LineObjective",
    "LineObjective32",
    "basis_t_times",
    "basis_times",
    "log_softmax",
    "max_abs",
    "row_blocks",
    "softmax32",
    "softmax64",
    "softmax64_block",
]


#: Work ``N q K`` from which float64 products ``B @ M`` are formed as ``(M^T B^T)^T``
#: (:func:`basis_times`).
_ORIENT_MIN_WORK = 2e8


#: Elements per block of the row-wise kernels (softmax, line search, certificate, the Jacobian
#: part of Hessian products): 2 MB in float64. A block's temporaries stay in cache and come back
#: from the heap, whereas whole (N, K) temporaries above glibc's 32 MB mmap limit are fresh
#: mappings whose pages the kernel faults in and zeroes on every call (at N = 50,000, K = 100
#: that system time was ~1 s of a ~4.4 s solve).
_BLOCK_ELEMENTS = 1 << 18


#: Logit spread below which :func:`softmax64_block` uses ``expm1``: the threshold of
#: :func:`simulations.softmax.softmax_with_deviation`, which it reproduces bit for bit (a test
#: compares the two on rows either side of it).
_NEAR_UNIFORM = 1e-3


#: Logit spread (max - min of a row) from which :func:`softmax32` forms that row's deviations
#: from ``e^w`` alone (without ``expm1``).
_SPREAD32 = 2.0


#: The smallest normal double, and ``log`` of it plus one (:func:`softmax64_block` needs its
#: subnormal check only for rows with ``min w <= log(K tiny) + 1``).
_TINY = np.finfo(float).tiny
_SUBNORMAL_LOG_MIN = math.log(_TINY) + 1.0


def log_softmax(logits) -> np.ndarray:
    """Column-wise log-softmax of a (K, M) array via log-sum-exp (no overflow for |z| ~ 1e300)."""
    return _softmax_mod.log_softmax(logits, axis=0)


def max_abs(a: np.ndarray) -> float:
    """``max|a|`` without an ``|a|`` temporary."""
    return max(float(np.max(a)), -float(np.min(a)))


def row_blocks(n: int, k: int) -> list[slice]:
    """Row slices of an (n, k) array with about ``_BLOCK_ELEMENTS`` entries each."""
    rows = max(1, _BLOCK_ELEMENTS // max(k, 1))
    return [slice(a, min(a + rows, n)) for a in range(0, n, rows)]


def basis_times(b: np.ndarray, m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``B @ M``, C-contiguous (N, K), for the basis ``B`` (N, q) and ``M`` (q, K).

    In float64, OpenBLAS forms the transposed product ``(M^T B^T)^T`` (computed in row blocks
    and copied back to rows) 1.1-1.6x faster than ``B M`` from ``N q K ~ 5e8`` on, and up to
    ~25% slower for small ``q`` (``python -m benchmarks.blas_orientation``); float32 is level,
    so it keeps ``B M``. ``out`` (N, K) of ``B``'s dtype receives the product if given.
    """
    n, k = b.shape[0], m.shape[1]
    m = m.astype(b.dtype, copy=False)
    if b.dtype == np.float64 and n * b.shape[1] * k >= _ORIENT_MIN_WORK:
        out = np.empty((n, k)) if out is None else out
        mt = np.ascontiguousarray(m.T)
        for rows in row_blocks(n, k):
            out[rows] = (mt @ b[rows].T).T
        return out
    return b @ m if out is None else np.matmul(b, m, out=out)


def basis_t_times(b: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``B^T @ R`` (q, K) for ``R`` (N, K): in float64 formed as ``(R^T B)^T``, which OpenBLAS
    runs 1.0-1.6x faster on every shape ``python -m benchmarks.blas_orientation`` measures."""
    if b.dtype == np.float64:
        return np.ascontiguousarray((r.T @ b).T)
    return b.T @ r


def softmax32(logits: np.ndarray, probs=None, dev=None) -> tuple[np.ndarray, np.ndarray]:
    """Float32 softmax ``P`` and deviations ``P - 1/K`` of (N, K) float32 logits (rows).

    The float32 phase only needs a few digits, but relative to the outputs' own spread:
    ``D = (expm1(w) - mean expm1(w)) / sum e^w`` with ``w = z - max z`` never subtracts ``1/K``
    (:mod:`simulations.softmax`), and ``sum e^w`` is a sum of positive terms (relative error
    ~``eps_32 log2 K``). Two transcendentals per entry are cheaper than the memory traffic a
    branch on the spread would save. ``probs`` and ``dev`` (N, K) float32 receive the results
    if given (computed in row blocks, :data:`_BLOCK_ELEMENTS`).
    """
    probs = np.empty_like(logits) if probs is None else probs
    dev = np.empty_like(logits) if dev is None else dev
    for rows in row_blocks(*logits.shape):
        w = probs[rows]
        z = logits[rows]
        np.subtract(z, z.max(axis=1, keepdims=True), out=w)
        # Rows spread by >= _SPREAD32 take D = (e - mean e) / S from e = e^w alone (float32's
        # expm1 is not vectorised: ~4x the cost of exp). There max e = 1 and min e <= e^-2 put
        # the row's largest |e - mean e| above (1 - e^-2) / 2 = 0.43, so the two roundings of
        # e - mean e (<= eps_32 each) err by <= 5 eps_32 of the row's own deviations. Each row's
        # path depends on that row alone (not on the blocking).
        spread = w.min(axis=1) <= -_SPREAD32
        n_spread = int(np.count_nonzero(spread))
        d = dev[rows]
        if n_spread < spread.size:
            np.expm1(w, out=d)
            d -= d.mean(axis=1, keepdims=True)
        np.exp(w, out=w)
        total = w.sum(axis=1, keepdims=True)
        if n_spread == spread.size:
            np.subtract(w, w.mean(axis=1, keepdims=True), out=d)
        elif n_spread:
            d[spread] = w[spread] - w[spread].mean(axis=1, keepdims=True)
        w /= total
        d /= total
    return probs, dev


def softmax64(logits: np.ndarray, probs: np.ndarray, dev: np.ndarray) -> None:
    """:func:`simulations.softmax.softmax_with_deviation` of (N, K) rows into ``probs`` and
    ``dev``, in row blocks (:data:`_BLOCK_ELEMENTS`), bit for bit (:func:`softmax64_block`)."""
    for rows in row_blocks(*logits.shape):
        softmax64_block(logits[rows], probs[rows], dev[rows])


def softmax64_block(z: np.ndarray, probs: np.ndarray, dev: np.ndarray) -> None:
    r"""One row block of :func:`softmax64`, written into the views ``probs`` and ``dev``.

    The same operations, in the same order, as
    :func:`simulations.softmax.softmax_with_deviation` along ``axis=1`` (hence the same bits;
    ``tests/simulations/test_solver_large_k.py`` compares them), fused in place: ``w = z - max z``
    goes straight into ``probs`` and the deviations into ``dev``, with no block temporaries and
    no copies (the general function allocates ``w`` and ``e - mean e`` and copies both results
    out: ~11 passes over the block against 8 here). Its check for outputs below the smallest
    normal double is skipped when no row can have one: ``P_k = e^{w_k} / S`` with
    ``1 <= S <= K``, so ``min_k w_k > log(K tiny) + 1`` gives every ``P_k > e tiny``.

    Parameters
    ----------
    z : ndarray, shape (M, K)
        Float64 logits, rows are samples.
    probs, dev : ndarray, shape (M, K)
        Float64 outputs ``P`` and ``D = P - 1/K`` (views of larger work arrays allowed).
    """
    k = z.shape[1]
    zmax = z.max(axis=1, keepdims=True)
    spread = zmax - z.min(axis=1, keepdims=True)
    near = spread < _NEAR_UNIFORM
    n_near = int(np.count_nonzero(near))
    w = np.subtract(z, zmax, out=probs)
    if n_near == near.size:  # every row near uniform: expm1 only (no subnormal outputs)
        u = np.expm1(w, out=w)
        denom = k + u.sum(axis=1, keepdims=True)
        np.subtract(u, u.mean(axis=1, keepdims=True), out=dev)
        dev /= denom
        u += 1.0
        u /= denom
        return
    if n_near:
        u = np.expm1(w, out=dev)
    e = np.exp(w, out=w)
    e /= e.sum(axis=1, keepdims=True)
    if n_near:
        denom = k + u.sum(axis=1, keepdims=True)
        u -= u.mean(axis=1, keepdims=True)
        u /= denom
        # The other rows: P - mean(P) (softmax_with_deviation's np.where, in place).
        np.subtract(e, e.mean(axis=1, keepdims=True), out=dev, where=~near)
    else:
        np.subtract(e, e.mean(axis=1, keepdims=True), out=dev)
    if -float(np.max(spread)) <= _SUBNORMAL_LOG_MIN + math.log(k) and e.min() < _TINY:
        e[e < _TINY] = 0.0


class LineObjective:
    r"""``J(C + alpha S) - J(C)`` along a step without cancellation (``y = B S``, (N, K)).

    Per sample, with ``f(z) = lse(z) - mean(z)`` (the cross-entropy up to constants),
    ``phi(w) = e^w - 1 - w``, ``psi(a) = log(1 + a) - a`` and ``a = sum_k p_k expm1(alpha y_k)``:

    ``f(z + alpha y) - f(z) = alpha D_P . y + sum_k p_k phi(alpha y_k) + psi(a)``,

    exact, with every term of the size of the change itself (so Armijo tests still work when all
    changes are 1e-30). Rows with ``max |alpha y| > 1/2`` use
    ``lse(z + alpha y) - lse(z) = m + log sum_k p_k e^{alpha y_k - m}`` (``m`` the row maximum of
    ``alpha y``; no cancellation problem there, no overflow). The target term is
    ``-alpha D_T . y`` and the penalty ``lam (alpha <C, S> + alpha^2 ||S||^2 / 2)``. The
    alpha-independent row sums are formed once per step.
    """

    def __init__(self, probs, dev_p, dev_t, y, coef, step, lam):
        self.probs, self.y, self.lam = probs, y, lam
        n, k = y.shape
        self.blocks = row_blocks(n, k)
        self.lin, self.py, self.ymax = np.empty(n), np.empty(n), np.empty(n)
        for rows in self.blocks:
            yb = y[rows]
            self.lin[rows] = np.einsum("ik,ik->i", dev_p[rows] - dev_t[rows], yb)
            self.py[rows] = np.einsum("ik,ik->i", probs[rows], yb)
            self.ymax[rows] = np.maximum(yb.max(axis=1), -yb.min(axis=1))
        self.cs = float(np.sum(coef * step))
        self.ss = float(np.sum(step * step))

    def _second(self, alpha: float, y, probs, py, ymax) -> np.ndarray:
        """``sum_k p_k phi(alpha y_k) + psi(a)`` per row of one block (class docstring)."""
        second = np.empty(y.shape[0])
        big = alpha * ymax > 0.5
        n_big = int(np.count_nonzero(big))
        if n_big < y.shape[0]:
            rows = slice(None) if n_big == 0 else ~big
            ay = alpha * y[rows]
            pphi = np.einsum("ik,ik->i", probs[rows], expm1_minus_identity(ay))
            a = alpha * py[rows] + pphi
            second[rows] = pphi + log1p_minus_identity(a)
        if n_big:
            rows = slice(None) if n_big == y.shape[0] else big
            ay = alpha * y[rows]
            m = ay.max(axis=1)
            ay -= m[:, None]
            total = np.einsum("ik,ik->i", probs[rows], np.exp(ay, out=ay))
            second[rows] = m + np.log(total) - alpha * py[rows]
        return second

    def __call__(self, alpha: float) -> tuple[float, float]:
        """Returns (change, magnitude); magnitude sums the terms' absolute values (the scale of
        the change's round-off)."""
        n = self.y.shape[0]
        second = np.empty(n)
        for rows in self.blocks:
            second[rows] = self._second(
                alpha, self.y[rows], self.probs[rows], self.py[rows], self.ymax[rows]
            )
        lin = alpha * self.lin
        pen_lin = self.lam * alpha * self.cs
        pen_sq = 0.5 * self.lam * alpha**2 * self.ss
        change = float(np.sum(lin) + np.sum(second)) / n + pen_lin + pen_sq
        magnitude = float(np.sum(np.abs(lin)) + np.sum(np.abs(second))) / n + abs(pen_lin) + pen_sq
        return change, magnitude


class LineObjective32:
    r"""``J(C + alpha S) - J(C)`` in float32 for the float32 phase (:class:`LineObjective`).

    Per sample ``log(1 + a) - alpha p.y + alpha (D_P - D_T).y`` with
    ``a = sum_k p_k expm1(alpha y_k)`` (the same identity, without the series for small
    ``alpha y``: the float32 phase ends while changes are still far above float32 round-off, and
    the magnitude returned makes the Armijo test tolerate that round-off). Sums over samples
    are accumulated in float64.
    """

    def __init__(self, probs, dev_p, dev_t, y, coef, step, lam):
        self.probs, self.y, self.lam = probs, y, lam
        n, k = y.shape
        self.blocks = row_blocks(n, k)
        self.lin, self.py = np.empty(n, np.float32), np.empty(n, np.float32)
        for rows in self.blocks:
            self.lin[rows] = np.einsum("ik,ik->i", dev_p[rows] - dev_t[rows], y[rows])
            self.py[rows] = np.einsum("ik,ik->i", probs[rows], y[rows])
        self.cs = float(np.sum(coef * step))
        self.ss = float(np.sum(step * step))

    def __call__(self, alpha: float) -> tuple[float, float]:
        a32 = np.float32(alpha)
        log_term = np.empty(self.y.shape[0], np.float32)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for rows in self.blocks:
                u = np.expm1(a32 * self.y[rows])
                log_term[rows] = np.log1p(np.einsum("ik,ik->i", self.probs[rows], u))
        lin = a32 * (self.lin - self.py)
        pen_lin = self.lam * alpha * self.cs
        pen_sq = 0.5 * self.lam * alpha**2 * self.ss
        n = self.y.shape[0]
        change = float(np.sum(log_term, dtype=float) + np.sum(lin, dtype=float)) / n
        change += pen_lin + pen_sq
        magnitude = (
            float(np.sum(np.abs(log_term), dtype=float) + np.sum(np.abs(lin), dtype=float)) / n
            + abs(pen_lin)
            + pen_sq
        )
        return change, magnitude
