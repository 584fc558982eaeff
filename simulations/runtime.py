r"""Running-time estimates before any work: refuse up front what would run for days.

The command lines (``python -m simulations run | sweep | probe``) and the estimator estimate their
running time from the problem's sizes *before* they allocate or loop, and refuse with one line
(:class:`selfdistill_cli.limits.TimeLimitError`) a run estimated above the limit (``--max-time
SECONDS``; the estimator: :data:`simulations.estimator.MAX_FIT_SECONDS`). ``--seeds 10000000``
or ``--rounds 1000000`` used to start and run for days.

The estimates are operation counts at a deliberately slow rate plus a fixed cost per solve, so
that they err on the long side of what the 2-core development machine measured under load
(``N = K n`` training points, ``p`` features, ``m = min(N, p)``, ``R`` rounds):

* factorisation: the eigendecomposition of an ``m x m`` matrix formed from the features,
  ``2 N p m + 10 m^3`` operations;
* one exact solve: :data:`SOLVE_SECONDS` plus about 20 Newton-CG passes of ``2 N m K``
  operations; a trial solves ``R + 1`` rounds (a PLL method: teacher and student);
* the exact population accuracy of a mixture probe (orthant probabilities, one per class and
  round): :data:`ORTHANT_SECONDS` ``* K^2`` per round;
* everything at :data:`FLOP_RATE`.

Measured on that machine (seconds per trial, estimate in brackets): the default ``run`` config
(K = 3, n = 20, p = 400, R = 3) 0.10 (0.18); R = 10 0.18 (0.41); exact-block 0.04 (0.05);
K = 10, n = 50, p = 1000 2.0 (1.8); K = 20, n = 20, p = 800 4.0 (6.2).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_SWEEP_MAX_SECONDS",
    "FLOP_RATE",
    "ORTHANT_SECONDS",
    "SOLVE_SECONDS",
    "factor_seconds",
    "fit_seconds",
    "group_theory_seconds",
    "probe_seconds",
    "run_theory_seconds",
    "solve_seconds",
    "trial_seconds",
]

#: Floating-point operations per second of the dense work (a loaded 2-core machine's BLAS reaches
#: 2-5e10 on large products; small ones are dominated by the fixed costs below).
FLOP_RATE = 1e10
#: Fixed cost of one exact solve: Python, certificate and set-up (1.3 ms measured for small
#: problems; 5 ms with the per-round metrics of a trial).
SOLVE_SECONDS = 5e-3
#: Cost per class pair of the exact population accuracy of one mixture probe (orthant rule).
ORTHANT_SECONDS = 3e-3
#: Fixed cost of one trial (feature draw, noise, bookkeeping).
TRIAL_SECONDS = 0.02
#: Cost per class pair of the label noise (transition matrix, cumulative rows, sampling).
NOISE_SECONDS = 1e-7
#: Default ``--max-time`` of ``run`` and ``probe``: one hour.
DEFAULT_MAX_SECONDS = 3600.0
#: Default ``--max-time`` of ``sweep`` (wall time with its workers): one day; sweeps are meant
#: to be long, resumable and split with ``--limit``.
DEFAULT_SWEEP_MAX_SECONDS = 86400.0


def factor_seconds(n_samples: int, n_features: int) -> float:
    """Seconds of one factorisation of (N, p) features: ``(2 N p m + 10 m^3) / FLOP_RATE``."""
    n, p = int(n_samples), int(n_features)
    m = min(n, p)
    return (2.0 * n * p * m + 10.0 * m**3) / FLOP_RATE


def solve_seconds(n_samples: int, rank: int, n_classes: int) -> float:
    """Seconds of one exact solve: ``SOLVE_SECONDS + 20 * 2 N m K / FLOP_RATE``."""
    return SOLVE_SECONDS + 40.0 * int(n_samples) * int(rank) * int(n_classes) / FLOP_RATE


def fit_seconds(n_samples: int, n_features: int, n_classes: int, rounds: int) -> float:
    """A lower estimate of the seconds of one estimator ``fit``: the factorisation plus the fixed
    cost :data:`SOLVE_SECONDS` of ``rounds + 2`` solves (teacher, rounds, and a PLL student or the
    refit of ``rounds='auto'``). The solves' own work is left out (large fits use single-precision
    products whose speed varies most): what this refuses, e.g. ``rounds=10**6``, is too long
    whatever the data."""
    n, p = int(n_samples), int(n_features)
    del n_classes  # the fixed costs do not depend on K
    return factor_seconds(n, p) + (int(rounds) + 2) * SOLVE_SECONDS


def trial_seconds(config) -> float:
    """Seconds of one :func:`simulations.pipelines.run_trial` of ``config`` (module docstring).

    Parameters
    ----------
    config : simulations.pipelines.TrialConfig
    """
    k, n = int(config.n_classes), int(config.n_samples)
    p = int(config.dim) if config.features == "mixture" else k + n
    rows = int(config.rounds) + 2  # rounds 0..R, or teacher + student
    per_row = solve_seconds(n, min(n, p), k)
    if config.features == "mixture":
        per_row += ORTHANT_SECONDS * k * k
    noise = NOISE_SECONDS * k * k  # the K x K transition matrix and the label noise
    return TRIAL_SECONDS + noise + factor_seconds(n, p) + rows * per_row


def probe_seconds(
    n_samples: int,
    n_features: int,
    n_classes: int,
    n_train: int,
    rounds: int,
    seeds: int,
    n_lams: int,
    n_students: int,
    theory: bool,
) -> float:
    """Seconds of a probe run (:mod:`simulations.probe`): per trial one factorisation of the
    training split, per ``lam`` the teacher, ``R`` rounds and every PLL student, and the theory
    (a thin SVD of the training features and the group-level theory, about one more
    factorisation)."""
    n, p = int(n_train), int(n_features)
    per_lam = (int(rounds) + 1 + int(n_students)) * solve_seconds(n, min(n, p), n_classes)
    per_trial = factor_seconds(n, p) * (2 if theory else 1) + int(n_lams) * per_lam
    return int(seeds) * (TRIAL_SECONDS + per_trial)


def group_theory_seconds(n_classes: int, rounds: int) -> float:
    """Seconds of the group-level theory printed next to a run or probe (every group non-empty):
    :func:`theory.report.estimated_seconds` of :func:`theory.report.worst_case_estimate`."""
    from theory.report import estimated_seconds, worst_case_estimate

    _, flops = worst_case_estimate(int(n_classes), int(rounds))
    return estimated_seconds(flops, int(rounds))


def run_theory_seconds(config, seeds: int, finite: bool) -> float:
    """Seconds of the theory ``python -m simulations run`` prints: the group-level theory (and,
    with ``finite``, the finite-p theory, :func:`theory.finite.finite_resource_estimate`) once
    per distinct count matrix: once with exact counts, up to once per seed with random noise."""
    from theory.finite import finite_resource_estimate
    from theory.report import FLOP_RATE

    k, r = int(config.n_classes), int(config.rounds)
    per = group_theory_seconds(k, r)
    if finite:
        per += finite_resource_estimate(k, r)[1] / FLOP_RATE
    return per * (1 if config.sampling == "exact-count" else int(seeds))
