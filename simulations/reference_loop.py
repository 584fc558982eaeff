r"""The public reference code's numerical solver, reproduced faithfully (baseline for benchmarks).

The paper's repository (``Hyeonsu-Jeong/SelfPLL``, ``numerical_solving.py``) computes the
distillation rounds of the block model not by training a probe but by running Adam on the outputs
``Y`` (K, N) directly, minimising the **squared Frobenius norm** of the fixed-point residual

.. math::  L(Y) = \lVert Y - \mathrm{softmax}\big((T - Y)\, C / (\lambda N)\big) \rVert_F^2,

(``N = K n``; its ``Knl`` is ``K n lambda``) with, per round, exactly this loop (defaults
``lr = 1e-3`` for the softmax objective, ``max_iter = 100000``):

1. **random start**: ``Y = torch.rand(K, N)`` (uniform on [0, 1)), columns normalised to sum 1;
2. for ``k < max_iter``: evaluate ``L(Y)``; Adam step (PyTorch defaults ``betas = (0.9, 0.999)``,
   ``eps = 1e-8``); **clamp** ``Y >= 1e-6`` and renormalise the columns; **early stop** if the
   loss evaluated *before* the step is ``< 1e-5``;
3. the next round's target is the returned ``Y``.

Everything is **float32** (PyTorch's default dtype). Its "correlation" matrix
(:func:`reference_correlation`) is the block matrix plus independent ``U(-eps, eps)`` entries with
a unit diagonal: neither symmetric nor positive semidefinite in general.

:func:`reference_loop` runs this loop with PyTorch when it is installed (``backend='torch'``,
autograd and ``torch.optim.Adam`` as in the reference) and otherwise the same arithmetic in numpy
float32 (``backend='numpy'``, analytic gradient ``dL/dY = 2 R + 2 (J_S R) C^T / (lam N)`` with
``R = Y - S``, ``J_S`` the per-column softmax Jacobians; Adam exactly as ``torch.optim.Adam``:
``Y -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``). The loss it stops on is the
squared Frobenius norm, so its threshold ``1e-5`` allows a max-abs residual up to ``3.2e-3``.

Cost: O(K N^2) per iteration (three K x N by N x N products), memory O(N^2) for ``C``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from theory.validation import check_finite_matrix, check_int, check_positive

__all__ = [
    "REFERENCE_DEFAULTS",
    "ReferenceRun",
    "reference_correlation",
    "reference_loop",
    "reference_noisy_labels",
    "residual_loss_and_gradient",
    "torch_available",
]

#: Defaults of the reference script (``numerical_solving.py``'s argparse and solver).
REFERENCE_DEFAULTS = {
    "n_classes": 4,
    "per_class": 500,
    "lam": 1e-5,
    "c": 0.4,
    "d": 0.1,
    "eta": 0.5,
    "epsilon": 0.05,
    "rounds": 10,
    "max_iter": 100_000,
    "lr": 1e-3,
    "stop": 1e-5,
    "clamp": 1e-6,
}


def torch_available() -> bool:
    """True if PyTorch can be imported (it is optional; never a dependency)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def reference_correlation(n_classes, per_class, c, d, epsilon, rng, dtype=np.float32):
    """The reference code's ``get_correlation_matrix``: block ``c``/``d``, plus ``U(-eps, eps)``
    independently in every entry, then a unit diagonal. Not symmetric, not PSD in general.

    Returns
    -------
    ndarray, shape (K n, K n), ``dtype``
    """
    k = check_int(n_classes, "n_classes", 2)
    n = check_int(per_class, "per_class", 1)
    eps = float(epsilon)
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    big = k * n
    labels = np.repeat(np.arange(k), n)
    corr = np.where(labels[:, None] == labels[None, :], c, d).astype(dtype)
    corr += (rng.random((big, big), dtype=np.float32) * 2 * eps - eps).astype(dtype)
    np.fill_diagonal(corr, 1.0)
    return corr


def reference_noisy_labels(n_classes, per_class, eta, rng) -> np.ndarray:
    """The reference code's noise: each point independently, with probability ``eta``, gets a
    uniformly random *other* class (its ``torch.randint(0, K-1)`` shifted past the true class)."""
    k = check_int(n_classes, "n_classes", 2)
    n = check_int(per_class, "per_class", 1)
    labels = np.repeat(np.arange(k), n)
    flip = rng.random(k * n) < eta
    other = rng.integers(0, k - 1, k * n)
    other = np.where(other >= labels, other + 1, other)
    return np.where(flip, other, labels)


@dataclass(frozen=True)
class ReferenceRun:
    """One round of the reference loop.

    Attributes
    ----------
    outputs : ndarray, shape (K, N)
        The returned ``Y`` (float64 copy of the float32 iterate).
    loss : float
        The loop's own squared-Frobenius residual at its last evaluation (before the last step).
    iterations : int
        Iterations run (the reference's ``k + 1``).
    stopped : bool
        True if the early stop (``loss < stop``) fired, False if ``max_iter`` ran out.
    seconds : float
        Wall-clock time of the loop (the start is included, the correlation matrix is not).
    backend : str
        ``'torch'`` or ``'numpy'``.
    """

    outputs: np.ndarray
    loss: float
    iterations: int
    stopped: bool
    seconds: float
    backend: str


def _softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def residual_loss_and_gradient(y, target, corr, scale, corr_t=None):
    """Reference objective ``||Y - S||_F^2``, ``S = softmax((T - Y) C s)``, and its gradient.

    ``dL/dY = 2 R + 2 (J_S R) C^T scale`` with ``R = Y - S`` and ``J_S`` the per-column softmax
    Jacobian ``diag(s) - s s^T`` (symmetric). Computed in the dtype of the inputs.

    Returns
    -------
    loss : float
    gradient : ndarray, shape (K, N)
    """
    if corr_t is None:
        corr_t = np.ascontiguousarray(corr.T)
    s = _softmax((target - y) @ corr * scale)
    r = y - s
    loss = float(np.sum(r * r, dtype=r.dtype))
    u = r + r
    ju = s * (u - np.sum(s * u, axis=0, keepdims=True))
    return loss, u + (ju @ corr_t) * scale


def _loop_numpy(target, corr, scale, y, max_iter, lr, stop, clamp, progress, every):
    b1, b2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    lr32, scale32, clamp32 = np.float32(lr), np.float32(scale), np.float32(clamp)
    corr_t = np.ascontiguousarray(corr.T)
    m = np.zeros_like(y)
    v = np.zeros_like(y)
    loss = math.inf
    it = 0
    for it in range(1, max_iter + 1):
        loss, grad = residual_loss_and_gradient(y, target, corr, scale32, corr_t)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        bc1 = 1 - b1**it
        bc2 = 1 - b2**it
        y = y - (lr32 / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps)
        y = np.maximum(y, clamp32)
        y = y / y.sum(axis=0, keepdims=True)
        if loss < stop:
            return y, loss, it, True
        if progress is not None and it % every == 0:
            progress(it, loss)
    return y, loss, it, False


def _loop_torch(target, corr, scale, y0, max_iter, lr, stop, clamp, progress, every):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(target))
    c = torch.from_numpy(np.ascontiguousarray(corr))
    y = torch.from_numpy(np.ascontiguousarray(y0)).requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    knl = 1.0 / scale
    loss_val = math.inf
    it = 0
    for it in range(1, max_iter + 1):
        opt.zero_grad()
        z = (t - y) @ c / knl
        e = torch.exp(z - torch.max(z, dim=0, keepdim=True)[0])
        loss = torch.norm(y - e / torch.sum(e, dim=0, keepdim=True), p=2) ** 2
        loss.backward()
        opt.step()
        with torch.no_grad():
            y.data = torch.maximum(y.data, torch.tensor(clamp))
            y.data = y.data / torch.sum(y.data, dim=0, keepdim=True)
        loss_val = float(loss.item())
        if loss_val < stop:
            return y.detach().numpy(), loss_val, it, True
        if progress is not None and it % every == 0:
            progress(it, loss_val)
    return y.detach().numpy(), loss_val, it, False


def reference_loop(
    targets,
    corr,
    lam,
    rng,
    *,
    max_iter: int = REFERENCE_DEFAULTS["max_iter"],
    lr: float = REFERENCE_DEFAULTS["lr"],
    stop: float = REFERENCE_DEFAULTS["stop"],
    clamp: float = REFERENCE_DEFAULTS["clamp"],
    backend: str = "auto",
    progress=None,
    progress_every: int = 10_000,
) -> ReferenceRun:
    """One round of the reference code's solver (module docstring), in float32.

    Parameters
    ----------
    targets : array_like, shape (K, N)
        The round's targets (one-hot noisy labels for the teacher, the previous ``Y`` after).
    corr : array_like, shape (N, N)
        The "correlation" matrix ``C`` (any square matrix: the reference's is not symmetric).
    lam : float
        ``lam > 0``; the logits are ``(T - Y) C / (lam N)``.
    rng : numpy.random.Generator
        Draws the random start (uniform on [0, 1), as ``torch.rand``).
    max_iter, lr, stop, clamp
        The reference's budget, Adam learning rate, early-stop threshold on the squared Frobenius
        residual and lower clamp.
    backend : {'auto', 'torch', 'numpy'}
        ``'auto'`` uses PyTorch when installed.
    progress : callable(iteration, loss) or None
        Called every ``progress_every`` iterations.

    Returns
    -------
    ReferenceRun
    """
    t = check_finite_matrix(targets, "targets").astype(np.float32)
    c = check_finite_matrix(corr, "corr").astype(np.float32)
    k, n = t.shape
    if c.shape != (n, n):
        raise ValueError(f"corr must have shape (N, N) = ({n}, {n}), got {c.shape}")
    lam = check_positive(lam, "lam")
    max_iter = check_int(max_iter, "max_iter", 1)
    every = check_int(progress_every, "progress_every", 1)
    for name, val in (("lr", lr), ("stop", stop), ("clamp", clamp)):
        check_positive(val, name)
    if backend not in ("auto", "torch", "numpy"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numpy', got {backend!r}")
    if backend == "auto":
        backend = "torch" if torch_available() else "numpy"
    elif backend == "torch" and not torch_available():
        raise ValueError("backend='torch' needs PyTorch installed; use backend='numpy'")
    y0 = rng.random((k, n), dtype=np.float32)
    y0 /= y0.sum(axis=0, keepdims=True)
    loop = _loop_torch if backend == "torch" else _loop_numpy
    start = time.perf_counter()
    y, loss, it, stopped = loop(
        t, c, 1.0 / (lam * n), y0, max_iter, lr, stop, clamp, progress, every
    )
    seconds = time.perf_counter() - start
    return ReferenceRun(
        np.asarray(y, dtype=float), float(loss), int(it), bool(stopped), seconds, backend
    )
