"""The state of one probe solve (:func:`simulations.solver.solve_probe`): its fixed data
(:class:`SolveSetup`), the iterate (:class:`Iterate`) and the outputs and gradient at an iterate
(:class:`Gradient`, :func:`outputs_and_gradient`), shared by the Newton steps
(:mod:`simulations.solver.newton`) and the nonlinear CG steps (:mod:`simulations.solver.ncg`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulations.solver.factorisation import ProbeFactor
from simulations.solver.kernels import basis_t_times, softmax32, softmax64

__all__ = ["Gradient", "Iterate", "SolveSetup", "outputs_and_gradient"]


@dataclass(eq=False)
class SolveSetup:
    """The fixed data of one solve, after argument checking (``newton._prepare``).

    Attributes
    ----------
    factor : ProbeFactor
    lam, tol : float
    max_iter : int
    single : bool
        Whether the solve starts with the float32 phase (and uses float32 Hessian products).
    n, q, k : int
        Samples, basis columns and classes.
    dev_t : ndarray, shape (N, K)
        Target deviations ``T - 1/K``, rows are samples.
    dev_t_low : ndarray of float32, shape (N, K), or None
        Their float32 copy (float32 phase only).
    b32 : ndarray of float32, shape (N, q), or None
        The float32 basis (``factor.basis32()``) when ``single``.
    rowmax : float
        ``max_i sqrt(G_ii)``.
    features_route : bool
        ``B = X`` (routes ``'spectral'`` and ``'direct'``): ``Z'`` comes from the gradient.
    work : dict
        (N, K) work arrays by name (:meth:`buffer`).
    """

    factor: ProbeFactor
    lam: float
    tol: float
    max_iter: int
    single: bool
    n: int
    q: int
    k: int
    dev_t: np.ndarray
    dev_t_low: np.ndarray | None
    b32: np.ndarray | None
    rowmax: float
    features_route: bool
    work: dict = field(default_factory=dict)

    @property
    def basis(self) -> np.ndarray:
        return self.factor.basis

    def buffer(self, name: str, dt) -> np.ndarray:
        """The (N, K) work array ``name`` of dtype ``dt``, allocated once per solve.

        Overwritten in place: each iteration's outputs are dead once the next softmax is formed
        (see ``kernels._BLOCK_ELEMENTS`` for why whole fresh (N, K) arrays are avoided).
        """
        if name not in self.work:
            self.work[name] = np.empty((self.n, self.k), dt)
        return self.work[name]


@dataclass(eq=False)
class Iterate:
    """The mutable state of the Newton iteration.

    Attributes
    ----------
    coef : ndarray, shape (q, K)
        Coefficients ``C`` with ``sum_k C_jk = 0``.
    logits : ndarray, shape (N, K)
        ``Z = B C``, float32 in the float32 phase, accumulated from the steps' logit changes.
    passes, passes32 : int
        Products with the data matrix so far (:attr:`Certificate.passes`), and the float32 ones.
    b_hvp : ndarray, shape (N, q)
        The basis of the Hessian products (float32 until CG cannot reach its accuracy).
    it, cg_total, stalls : int
        Newton steps, CG iterations, and steps without progress beyond round-off.
    certify_next : bool
        Try the certificate at the next float64 gradient whatever the residual bound says.
    trust_next : bool
        Take the next float64 Newton step whole, without a line search (set where the float32
        phase ends at its switch point, ``newton._SWITCH_RTOL``).
    logit_error : float
        Bound on ``max|Z - B C|`` for the float64 logits (``newton._product_error``), from the
        float32 phase's end on; ``inf`` where not tracked.
    """

    coef: np.ndarray
    logits: np.ndarray
    passes: int
    passes32: int
    b_hvp: np.ndarray
    it: int = 0
    cg_total: int = 0
    stalls: int = 0
    certify_next: bool = False
    trust_next: bool = False
    logit_error: float = math.inf


@dataclass(eq=False)
class Gradient:
    """Outputs and gradient at one iterate (:func:`_gradient`).

    Attributes
    ----------
    probs, dev_p, resid : ndarray, shape (N, K)
        ``P``, ``D_P = P - 1/K`` and ``D_P - D_T`` (work arrays of the iterate's precision).
    btr : ndarray, shape (q, K)
        ``B^T (D_P - D_T) / N``, float64.
    grad : ndarray, shape (q, K)
        The gradient ``btr + lam C``, projected onto ``sum_k = 0``.
    gnorm, terms, ratio : float
        ``||grad||``, the norm of its terms (its round-off scale) and ``gnorm / terms``.
    """

    probs: np.ndarray
    dev_p: np.ndarray
    resid: np.ndarray
    btr: np.ndarray
    grad: np.ndarray
    gnorm: float
    terms: float
    ratio: float


def outputs_and_gradient(setup: SolveSetup, state: Iterate, low: bool) -> Gradient:
    """Outputs, residual and gradient at the current iterate, in float32 when ``low`` (one pass).

    Returns
    -------
    Gradient
    """
    n, lam, coef = setup.n, setup.lam, state.coef
    if low:
        probs, dev_p = softmax32(
            state.logits, setup.buffer("p32", np.float32), setup.buffer("d32", np.float32)
        )
        resid = np.subtract(dev_p, setup.dev_t_low, out=setup.buffer("r32", np.float32))
        btr = (setup.b32.T @ resid).astype(np.float64) / n
    else:
        probs, dev_p = setup.buffer("p64", float), setup.buffer("d64", float)
        softmax64(state.logits, probs, dev_p)
        resid = np.subtract(dev_p, setup.dev_t, out=setup.buffer("r64", float))
        btr = basis_t_times(setup.basis, resid) / n  # (q, K)
    state.passes += 1
    state.passes32 += int(low)
    # Iterates and the optimum satisfy sum_k C_jk = 0, where the Hessian is positive definite;
    # the class-mean part of the computed gradient is round-off, which CG cannot remove.
    grad = btr + lam * coef
    grad -= grad.mean(axis=1, keepdims=True)
    gnorm = float(np.linalg.norm(grad))
    # Round-off scale of the gradient: float32 products err by ~1e-6 of the terms.
    terms = float(np.linalg.norm(btr)) + lam * float(np.linalg.norm(coef))
    ratio = gnorm / terms if terms > 0 else 0.0
    return Gradient(probs, dev_p, resid, btr, grad, gnorm, terms, ratio)
