r"""Multi-round self-distillation and the one-round PLL student, by exact training.

Round 0 (the teacher) is trained on the one-hot noisy labels ``Y``; round ``t >= 1`` is trained on
round ``t-1``'s softmax outputs (optionally sharpened or smoothed by a temperature ``tau``:
``T_t = softmax(Z_{t-1} / tau)`` from the logits ``Z_{t-1}``, ``tau = 1`` reproduces the paper's
setting). Every round is solved to a certified KKT fixed point by
:func:`simulations.solver.solve_probe`, reusing one factorisation of the features / Gram matrix
and warm-starting from the previous round.

Targets pass between rounds as deviations from uniform (:class:`simulations.solver.SoftTargets`,
computed from the logits without cancellation): at large ``lam`` the outputs approach ``1/K``
geometrically, round after round, and ``P - 1/K`` formed by subtraction would lose every digit
after a few rounds (at ``lam = 1``, ``K = 4``, ``n = 50`` the deviations fall below ``1e-17`` by
round 10).

The PLL student (paper, Section 5) is trained once on the teacher's top-2 labels with weight 1/2
each (:func:`theory.partial_labels.top2_targets` of the teacher's *logits*, ties to the smaller
class index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.solver import (
    Certificate,
    ProbeFactor,
    ProbeSolution,
    SoftTargets,
    factorize,
    log_softmax,
    solve_probe,
)
from theory.partial_labels import top2_targets
from theory.validation import check_int, check_labels, check_positive, check_solver_lam, one_hot

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

    @property
    def logits(self) -> np.ndarray:
        """Training logits of every round, shape (R + 1, K, N) (decide from these)."""
        return np.stack([s.logits for s in self.solutions])

    @property
    def deviations(self) -> np.ndarray:
        """``P - 1/K`` of every round without cancellation, shape (R + 1, K, N)."""
        return np.stack([s.deviations for s in self.solutions])

    def _check_round(self, round) -> int:
        if not 0 <= int(round) <= self.rounds:
            raise ValueError(f"round must be in [0, {self.rounds}], got {round}")
        return int(round)

    def predict(self, round: int, *, features=None, kernel_rows=None) -> np.ndarray:
        """Round-``round`` outputs (K, M) for new points (features (M, p) or kernel rows (M, N))."""
        sol = self.solutions[self._check_round(round)]
        return sol.predict(features=features, kernel_rows=kernel_rows)

    def predict_logits(self, round: int, *, features=None, kernel_rows=None) -> np.ndarray:
        """Round-``round`` logits (K, M) for new points (decide from these)."""
        sol = self.solutions[self._check_round(round)]
        return sol.predict_logits(features=features, kernel_rows=kernel_rows)


def soften(outputs, temperature: float) -> np.ndarray:
    """Targets ``softmax(log P / tau)`` column-wise; ``tau = 1`` returns ``P`` unchanged.

    (The rounds themselves soften logits, ``ProbeSolution.soft_targets(tau)``; this helper is for
    probabilities from elsewhere.)
    """
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
        Regularisation ``>= LAM_MIN = 1e-12`` (the same in every round;
        :func:`theory.validation.check_solver_lam`: below it the solver's arithmetic breaks
        down).
    rounds : int
        ``R >= 0`` student rounds.
    features, gram, factor
        Exactly one: features (N, p), Gram matrix (N, N) or a :class:`ProbeFactor`. Features are
        factorised with ``method='spectral'`` when ``rounds >= 1`` (one eigendecomposition of
        ``X^T X`` serves every round) and ``'auto'`` for a teacher alone.
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
    lam = check_solver_lam(lam)
    if sum(v is not None for v in (features, gram, factor)) != 1:
        raise ValueError("pass exactly one of features (N, p), gram (N, N) or factor")
    if factor is None:
        method = "spectral" if r >= 1 else "auto"
        factor = factorize(features=features, gram=gram, method=method, n_classes=k)
    if lab.size != factor.n_samples:
        raise ValueError(f"labels has {lab.size} entries but there are {factor.n_samples} samples")
    tau = check_positive(temperature, "temperature")
    targets = SoftTargets.from_probabilities(one_hot(lab, k))
    solutions: list[ProbeSolution] = []
    prev = None
    for _ in range(r + 1):
        sol = solve_probe(targets, lam, factor=factor, init=prev, tol=tol)
        solutions.append(sol)
        targets = sol.soft_targets(tau)  # deviations from the logits: exact near 1/K
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
    targets = top2_targets(teacher.logits)  # decide from logits, not rounded outputs
    init = teacher if factor is teacher.factor else None
    return solve_probe(
        targets, lam, features=features, gram=gram, factor=factor, init=init, tol=tol
    )
