"""Scale-free solver behaviour: outputs within 1e-13 (or 1e-300) of 1/K keep their gaps.

At large ``lam`` (or after many self-distillation rounds) every output approaches ``1/K``; the
solver carries deviations ``P - 1/K`` and logits, certifies relative to ``max|P - 1/K|``, and
decisions are taken from logits. Several tests check decisions through
``theory.metrics.correct_and_tied``, whose tie tolerance is relative to the scores' spread
(issue 11, item 3, theory side; checked first, below).
"""

import math

import mpmath
import numpy as np
import pytest

from simulations.distill import self_distill
from simulations.features import exact_block_features
from simulations.pipelines import TrialConfig, run_trial
from simulations.solver import SoftTargets, solve_probe
from simulations.solver.kernels import LineObjective
from tests.tolerances import SOLVER_TOL
from theory.gram import block_gram
from theory.metrics import correct_and_tied
from theory.validation import one_hot


def test_metric_resolves_gaps_relative_to_the_spread():
    """A gap of half the spread is a decision, not a tie, even at spread 2e-20."""
    correct, tied = correct_and_tied(np.array([[2e-20], [1e-20], [0.0]]), np.array([0]))
    assert correct[0] and not tied[0]


LAM1 = dict(n_classes=4, per_class=50, c=0.4, d=0.1, eta=0.3, noise="sym", lam=1.0, rounds=10)


def _gaps(logits, labels):
    """Own-class logit minus the best other logit, per column."""
    cols = np.arange(logits.shape[1])
    own = logits[labels, cols]
    other = logits.copy()
    other[labels, cols] = -np.inf
    return own - other.max(axis=0)


def _linear_map(gram, k, lam):
    """One linearised round on deviations: D_P = D_T A, A = G (G + K lam N I)^-1 (D rows =
    classes); applied to exact deviations, so no 1/K is ever subtracted from a probability."""
    n = gram.shape[0]
    return gram @ np.linalg.inv(gram + k * lam * n * np.eye(n))


def test_lambda1_rounds_keep_positive_gaps_and_match_linear_theory():
    """The issue's lam = 1 example: exact-block features, 10 rounds.

    By round 10 every deviation is ~1e-19 (P - 1/K formed by subtraction would be exactly 0);
    the solver's logits still separate the classes, and each round's deviations agree with one
    linearised round applied to its own (exact) target deviations. The linearisation error is
    second order, <= ~K |Z|^2 per entry, i.e. relative to the deviations (~|Z| / K) at most
    ~K^2 |Z|: we allow 10 K^2 max|Z| + 1e-9 (the solver tolerance).
    """
    cfg = TrialConfig(features="exact-block", **LAM1)
    res = run_trial(cfg, 0)
    x = exact_block_features(4, 50, 0.4, 0.1)
    a = _linear_map(x @ x.T, 4, 1.0)
    sd = self_distill(res.noisy_labels, 4, 1.0, 10, features=x)
    targets = one_hot(res.noisy_labels, 4) - 0.25
    for t in range(11):
        gaps = _gaps(res.logits[t], res.true_labels)
        assert np.all(gaps > 0), f"round {t}: a true class does not win"
        cert = sd.certificates[t]
        assert cert.converged and cert.relative_residual <= SOLVER_TOL
        dev = sd.deviations[t]
        scale = np.abs(dev).max()
        zmax = np.abs(sd.logits[t]).max()
        rel = np.abs(dev - targets @ a).max() / scale
        assert rel <= 10 * 16 * zmax + 1e-9, f"round {t}: relative error {rel:.2e}"
        targets = dev
    assert np.abs(sd.deviations[10]).max() < 1e-17  # genuinely below eps / K


def test_lambda1_reads_100_percent_every_round():
    cfg = TrialConfig(features="exact-block", **LAM1)
    rows = run_trial(cfg, 0).rows
    assert [r["train_acc"] for r in rows] == [1.0] * 11
    assert all(r["train_ties"] == 0 for r in rows)


def _near_uniform_problem(lam):
    """Clean labels on the block Gram matrix: by symmetry every sample's own class wins by the
    same positive gap (exact arithmetic), whatever lam is."""
    k, n = 3, 4
    g = block_gram(k, n, 0.5, 0.1)
    labels = np.repeat(np.arange(k), n)
    return g, labels, solve_probe(one_hot(labels, k), lam, gram=g)


def test_positive_gaps_near_uniform_are_resolved():
    """All outputs within 1e-13 of 1/K (lam = 1e12): the logits still give the exact symmetric
    structure -- equal positive gaps for every sample (to 1e-9 relative, the solver tolerance)."""
    g, labels, sol = _near_uniform_problem(1e12)
    assert np.abs(sol.deviations).max() < 1e-13
    assert np.all(np.abs(sol.outputs - 1 / 3) < 1e-13)
    gaps = _gaps(sol.logits, labels)
    assert np.all(gaps > 0)
    assert np.ptp(gaps) <= 1e-9 * gaps.max()
    # Deviations: two distinct values per column, -1/2 of each other (zero column sums).
    dev = sol.deviations
    own = dev[labels, np.arange(labels.size)]
    np.testing.assert_allclose(own, own[0], rtol=1e-9)


def test_positive_gaps_near_uniform_never_ties():
    for lam in (1e10, 1e12, 1e250):
        _, labels, sol = _near_uniform_problem(lam)
        correct, tied = correct_and_tied(sol.logits, labels)
        assert correct.all() and not tied.any(), f"lam={lam:g}"


def test_relative_certificate_at_tiny_deviations():
    """At lam = 1e250 the deviations are ~1e-252: the certificate is relative to them."""
    _, _, sol = _near_uniform_problem(1e250)
    cert = sol.certificate
    assert 0 < cert.scale < 1e-250
    assert cert.converged and cert.target <= SOLVER_TOL * cert.scale
    assert cert.relative_residual <= SOLVER_TOL


def test_line_objective_vs_mpmath_near_uniform():
    """J(C + alpha S) - J(C) at logits ~1e-12, where evaluating J in float64 and subtracting
    loses every digit (J ~ log K). Reference: the same objective in 80-digit arithmetic."""
    rng = np.random.default_rng(0)
    n, k, p = 5, 3, 2
    x = rng.standard_normal((n, p))
    coef = 1e-12 * rng.standard_normal((p, k))
    step = 1e-12 * rng.standard_normal((p, k))
    dev_t = 1e-12 * (rng.standard_normal((n, k)))
    dev_t -= dev_t.mean(axis=1, keepdims=True)
    lam = 0.3
    from simulations.softmax import softmax_with_deviation

    z = x @ coef
    probs, dev_p = softmax_with_deviation(z)
    y = x @ step

    def objective(c, dps=80):
        with mpmath.workdps(dps):
            total = mpmath.mpf(0)
            for i in range(n):
                zi = [sum(mpmath.mpf(float(x[i, a])) * c[a][j] for a in range(p)) for j in range(k)]
                lse = mpmath.log(sum(mpmath.exp(v) for v in zi))
                ti = [mpmath.mpf(1) / k + mpmath.mpf(float(dev_t[i, j])) for j in range(k)]
                total += lse - sum(ti[j] * zi[j] for j in range(k))
            reg = sum(c[a][j] ** 2 for a in range(p) for j in range(k))
            return total / n + mpmath.mpf(lam) / 2 * reg

    line = LineObjective(probs, dev_p, dev_t, y, coef, step, lam)
    for alpha in (1.0, 0.25):
        with mpmath.workdps(80):
            c0 = [[mpmath.mpf(float(coef[a, j])) for j in range(k)] for a in range(p)]
            c1 = [
                [c0[a][j] + mpmath.mpf(alpha) * mpmath.mpf(float(step[a, j])) for j in range(k)]
                for a in range(p)
            ]
            ref = float(objective(c1) - objective(c0))
        change, magnitude = line(alpha)
        assert abs(change - ref) <= 1e-12 * magnitude, f"alpha={alpha}: {change!r} vs {ref!r}"
        assert abs(ref) > 1e-26  # the change is ~1e-24, far below eps * log K ~ 2.4e-16


def test_soft_targets_round_trip_and_validation():
    t = np.array([[0.7, 0.2], [0.2, 0.5], [0.1, 0.3]])
    st = SoftTargets.from_probabilities(t)
    np.testing.assert_allclose(st.probabilities, t, atol=1e-16)
    z = np.array([[1e-200, 0.0], [0.0, 3.0], [-1e-200, -1.0]])
    dev = SoftTargets.from_logits(z).deviations
    np.testing.assert_allclose(dev[:, 0], [1e-200 / 3, 0.0, -1e-200 / 3], rtol=1e-14)
    with pytest.raises(ValueError, match="sum to 0"):
        SoftTargets(np.array([[0.1, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="negative probabilities"):
        SoftTargets(np.array([[-0.6, 0.0], [0.6, 0.0]]))
    with pytest.raises(ValueError, match="K >= 2"):
        SoftTargets(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="temperature"):
        SoftTargets.from_logits(z, temperature=0.0)


def test_soft_targets_equal_probability_targets():
    """Deviation targets and probability targets describe the same problem."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 5)) / math.sqrt(5)
    t = rng.dirichlet(np.ones(3), size=40).T
    a = solve_probe(t, 1e-2, features=x)
    b = solve_probe(SoftTargets.from_probabilities(t), 1e-2, features=x)
    np.testing.assert_allclose(a.outputs, b.outputs, atol=1e-14)


def test_uniform_targets_from_a_warm_start_certify_the_zero_solution():
    """K = 2 PLL: the top-2 target is uniform, the optimum is W = 0 exactly; warm-starting from
    the teacher must not leave round-off the relative certificate can never accept."""
    from simulations.distill import train_pll
    from theory.noise import exact_counts, transition_matrix

    counts = exact_counts(transition_matrix("sym", 2, 0.3), 50)
    labels = np.concatenate([np.repeat(np.arange(2), r) for r in counts])
    sd = self_distill(labels, 2, 1e-3, 0, gram=block_gram(2, 50, 0.5, 0.1))
    student = train_pll(sd.solutions[0], 1e-3)
    assert student.certificate.converged
    assert np.all(student.deviations == 0.0)
