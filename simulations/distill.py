r"""Multi-round self-distillation and the one-round PLL student, by exact training.

Round 0 (the teacher) is trained on the one-hot noisy labels ``Y``; round ``t >= 1`` is trained on
round ``t-1``'s softmax outputs (optionally sharpened or smoothed by a temperature ``tau``:
``T_t = softmax(log P_{t-1} / tau)``, ``tau = 1`` reproduces the paper's setting). Every round is
solved to a certified KKT fixed point by :func:`simulations.solver.solve_probe`, reusing one
factorisation of the features / Gram matrix and warm-starting from the previous round.

The PLL student (paper, Section 5) is trained once on the teacher's top-2 labels with weight 1/2
each (:func:`theory.partial_labels.top2_targets`, ties to the smaller class index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.solver import (
    Certificate,
    ProbeFactor,
    ProbeSolution,
    factorize,
    log_softmax,
    solve_probe,
)
from theory.partial_labels import top2_targets
from theory.validation import check_int, check_labels, check_positive, one_hot

__all__ = ["DistillResult", "self_distill", "soften", "train_pll"]


@dataclass(frozen=True, eq=False)
class DistillResult:
    """Outputs of the teacher (round 0) and students (rounds 1..R).

    Attributes
    ----------
    outputs : ndarray, shape (R + 1, K, N)
        Training outputs of every round.
    solutions : list of ProbeSolution
        One per round, with weights / dual coefficients and certificates.
    labels : ndarray, shape (N,)
        The (noisy) labels the teacher was trained on.
    """

    outputs: np.ndarray
    solutions: list
    labels: np.ndarray
    n_classes: int
    lam: float
    temperature: float

    @property
    def rounds(self) -> int:
        return len(self.solutions) - 1

    @property
    def certificates(self) -> list[Certificate]:
        return [s.certificate for s in self.solutions]

    @property
    def factor(self) -> ProbeFactor:
        return self.solutions[0].factor

    def predict(self, round: int, *, features=None, kernel_rows=None) -> np.ndarray:
        """Round-``round`` outputs (K, M) for new points (features (M, p) or kernel rows (M, N))."""
        if not 0 <= int(round) <= self.rounds:
            raise ValueError(f"round must be in [0, {self.rounds}], got {round}")
        return self.solutions[int(round)].predict(features=features, kernel_rows=kernel_rows)


def soften(outputs, temperature: float) -> np.ndarray:
    """Targets ``softmax(log P / tau)`` column-wise; ``tau = 1`` returns ``P`` unchanged."""
    tau = check_positive(temperature, "temperature")
    if tau == 1.0:
        return np.asarray(outputs, dtype=float)
    with np.errstate(divide="ignore"):  # log 0 = -inf is the right limit; softmax maps it to 0
        logp = np.log(outputs)
    return np.exp(log_softmax(logp / tau))


def self_distill(
    labels,
    n_classes,
    lam,
    rounds,
    *,
    features=None,
    gram=None,
    factor: ProbeFactor | None = None,
    temperature: float = 1.0,
    tol: float = 1e-9,
) -> DistillResult:
    """Teacher on one-hot ``labels`` then ``rounds`` self-distillation rounds, all exact.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Given (noisy) labels in ``[0, n_classes)``.
    n_classes : int
        ``K >= 2``.
    lam : float
        Regularisation ``lam > 0`` (the same in every round).
    rounds : int
        ``R >= 0`` student rounds.
    features, gram, factor
        Exactly one: features (N, p), Gram matrix (N, N) or a :class:`ProbeFactor`.
    temperature : float
        Temperature applied to each round's outputs before they become targets.
    tol : float
        Fixed-point residual required of every round.

    Returns
    -------
    DistillResult
    """
    k = check_int(n_classes, "n_classes", 2)
    r = check_int(rounds, "rounds", 0)
    lab = check_labels(labels, k)
    lam = check_positive(lam, "lam")
    if sum(v is not None for v in (features, gram, factor)) != 1:
        raise ValueError("pass exactly one of features (N, p), gram (N, N) or factor")
    if factor is None:
        factor = factorize(features=features, gram=gram)
    if lab.size != factor.n_samples:
        raise ValueError(f"labels has {lab.size} entries but there are {factor.n_samples} samples")
    targets = one_hot(lab, k)
    solutions: list[ProbeSolution] = []
    prev = None
    for _ in range(r + 1):
        sol = solve_probe(targets, lam, factor=factor, init=prev, tol=tol)
        solutions.append(sol)
        targets = soften(sol.outputs, temperature)
        prev = sol
    outputs = np.stack([s.outputs for s in solutions])
    return DistillResult(outputs, solutions, lab, k, lam, float(temperature))


def train_pll(
    teacher: ProbeSolution,
    lam,
    *,
    features=None,
    gram=None,
    factor: ProbeFactor | None = None,
    tol: float = 1e-9,
) -> ProbeSolution:
    """The PLL student: one exact round on the teacher's top-2 labels (weight 1/2 each).

    ``factor`` defaults to the teacher's own factorisation when no data is passed.
    """
    if sum(v is not None for v in (features, gram, factor)) > 1:
        raise ValueError("pass at most one of features, gram or factor")
    if features is None and gram is None and factor is None:
        factor = teacher.factor
    targets = top2_targets(teacher.outputs)
    init = teacher if factor is teacher.factor else None
    return solve_probe(
        targets, lam, features=features, gram=gram, factor=factor, init=init, tol=tol
    )
