"""The PLL student's objective ``J`` in orthogonal spectral coordinates ``Theta`` (K, r).

Logits ``Z = Theta F^T`` with ``F^T F`` diagonal (:func:`orthogonal_coordinates`, cached on the
solver's factor), so ``||W||_F = ||Theta||_F`` for the minimum-norm ``W``.
"""

from __future__ import annotations

import numpy as np

from simulations.pll_losses.losses import CandidateSetLoss
from simulations.solver import ProbeFactor, ProbeSolution, log_softmax

__all__ = ["Objective", "initial_coef", "orthogonal_coordinates"]


def orthogonal_coordinates(factor: ProbeFactor):
    """Orthogonal spectral features ``F`` (N, r), ``s = diag(F^T F)`` and ``V`` with ``F = X V``.

    The students work in coordinates ``Theta`` with logits ``Theta F^T`` and ``F^T F`` diagonal,
    whatever route the solver's factorisation took (:func:`simulations.solver.factorize`): the
    Gram route's basis ``U diag(sqrt(mu))`` is already orthogonal; from features ``F = X V`` with
    ``X^T X = V diag(s) V^T`` (reusing the solver's ``V`` when it has one). Cached on the factor.
    """

    def compute():
        if factor.route == "dual":
            return factor.basis, np.asarray(factor.col_sq_norms, dtype=float), None
        x = factor.features
        if factor.route == "spectral" and factor.rotation is not None:
            rot, sq = factor.rotation, np.asarray(factor.col_sq_norms, dtype=float)
        else:
            sq, rot = np.linalg.eigh(x.T @ x)
            sq, rot = np.clip(sq[::-1], 0.0, None), rot[:, ::-1]
        return x @ rot, sq, rot

    return factor.cached("pll_orthogonal", compute)


class Objective:
    """Objective, gradient and Hessian action of ``J`` in the coordinates ``Theta`` (K, r)."""

    def __init__(self, loss: CandidateSetLoss, factor: ProbeFactor, lam: float):
        self.loss, self.factor, self.lam = loss, factor, lam
        self.f, self.sq_norms, self.rotation = orthogonal_coordinates(factor)
        self.n = factor.n_samples

    def evaluate(self, theta):
        z = theta @ self.f.T
        st = self.loss.state(log_softmax(z))
        obj = float(np.mean(st.values)) + 0.5 * self.lam * float(np.sum(theta * theta))
        return z, st, obj

    def gradient(self, theta, st):
        return st.grad @ self.f / self.n + self.lam * theta

    def hvp(self, st, s):
        return self.loss.hvp(st, s @ self.f.T) @ self.f / self.n + self.lam * s


def initial_coef(teacher: ProbeSolution, factor: ProbeFactor, k: int) -> np.ndarray:
    """Teacher's coordinates ``Theta`` (K, r) in ``factor``'s orthogonal features.

    ``Theta = Z F diag(1/s)``: exact, because the teacher's training logits ``Z = W X^T`` lie in
    the row space of ``F^T`` (least squares for a teacher trained on other features).
    """
    z = np.asarray(teacher.logits, dtype=float)
    if z.shape != (k, factor.n_samples):
        raise ValueError(
            f"the teacher has {z.shape[1]} training samples but the features / gram have "
            f"{factor.n_samples}"
        )
    f, s, _ = orthogonal_coordinates(factor)
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return (z @ f) * inv
