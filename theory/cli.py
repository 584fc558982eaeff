"""``python -m theory predict``: block-model predictions from the command line.

Prints, for rounds ``0..R``, the linearised and exact group-level accuracies (training w.r.t. the
true labels: all / clean / mislabeled points; population), the PLL student's (two-hot
cross-entropy, and every candidate-set loss of :mod:`theory.losses`), and the conditions
(plurality, margin, rho, closed-form minimum round, 100%-window). Cost is independent of ``n``.

Invalid parameters print one line ``error: ...`` naming the parameter to stderr and exit with
code 2 (``lam`` must lie in ``[1e-12, 1e12]``, :func:`theory.validation.check_lam`; ``K n <= 2^53``;
``K < p <= 2^53``); so does a problem whose estimated memory exceeds the memory available
(``--max-memory GB`` overrides) or whose estimated time exceeds ``--max-time`` (default
:data:`DEFAULT_MAX_SECONDS`). Both are checked from ``K`` and ``R`` alone before anything of size
``K x K`` is built. With ``--dim`` the exact finite-ratio theory is estimated too
(:func:`check_finite_exact_resources`: 300 s alone by default, or within ``--max-time``), and a
fixed point of it that does not converge is one line (:class:`FiniteExactFailed`), never numbers;
where only the linearised theory cannot be resolved, ``finite.refused`` says why. With ``K = 2``
the PLL students are undefined and reported as such. JSON has no NaN/inf: undefined accuracies
(e.g. no mislabeled points) and ``rho = inf`` (``c = 1``) are written as ``null``.

Partial results: an exact solve that misses its certificate (e.g. at ``lam <= 1e-7``) does not
drop the report. Its entry carries ``"converged": false`` and its residual, the JSON lists it under
``unconverged`` (entry, residual, target), the table marks it with ``*``, and one warning line
goes to stderr; the exit code stays 0. A round trained on an uncertified round is uncertified too.
Long runs (estimated above ``PROGRESS_FLOPS``) print ``progress: ...`` lines on stderr.

Saddles: a non-convex PLL student is the local minimum training reaches. Where the group
engine stopped at a saddle, the entry reports the minimum reached from it
(:func:`theory.group_descent.descend_to_minimum`) and lists the saddle under ``saddles``; the
table marks the row ``s`` and prints the saddle on a line below. A saddle's accuracies are never
printed as the student's (``null`` accuracies and a ``saddle`` entry if no minimum is reached).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from selfdistill_cli import ArgumentParser, available_bytes
from selfdistill_cli.limits import check_time, parse_max_time
from theory.conditions import (
    eigen_ratio_rho,
    min_rounds_linear,
    plurality_condition,
    window_linear,
)
from theory.group_descent import descent_memory_bytes
from theory.group_engine import engine_memory_bytes
from theory.groups import (
    BlockModel,
    GroupConvergenceError,
    check_counts,
    predict_exact,
    predict_linear,
)
from theory.losses import LOSSES
from theory.names import (
    CONFIG_KEY,
    DEFAULT_Q,
    LOSS_METHOD,
    MODEL_DEFAULTS,
    NOISE_KINDS,
    ROUNDS_HELP,
)
from theory.partial_labels import PLL_MIN_CLASSES, pll_undefined_reason
from theory.pll import LinearisationUndefinedError, predict_pll
from theory.validation import LAM_MAX, LAM_MIN, MAX_SAMPLES, check_lam

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "FiniteExactFailed",
    "check_finite_exact_resources",
    "check_finite_resources",
    "check_resources",
    "estimated_seconds",
    "main",
    "parse_counts",
    "predict_report",
    "resource_estimate",
    "worst_case_estimate",
]

_ACC_KEYS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")


#: Estimated floating-point operations above which ``theory predict`` prints progress lines
#: (``progress: ...`` on stderr): about K >= 150 with 10 rounds, tens of seconds.
PROGRESS_FLOPS = 5e10


class _UsageError(Exception):
    pass


class _Parser(ArgumentParser):
    def error(self, message):  # one-line errors instead of usage + message
        raise _UsageError(message)


def parse_counts(text: str, n_classes: int | None = None) -> np.ndarray:
    """Parse ``"r1;r2;..."`` (rows = true class, comma-separated given-label counts).

    Every entry must be an integer in ``[0, 2^53]`` (:data:`theory.validation.MAX_SAMPLES`; larger
    numbers are refused before any array is built) and, with ``n_classes``, the matrix must be
    ``n_classes x n_classes``.
    """
    try:
        rows = [[int(v) for v in row.split(",")] for row in text.strip().strip(";").split(";")]
    except ValueError:
        raise ValueError(
            f"counts must be rows of comma-separated integers separated by ';', got {text!r}"
        ) from None
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"counts rows must all have the same length, got {text!r}")
    if n_classes is not None and (len(rows) != n_classes or len(rows[0]) != n_classes):
        raise ValueError(
            f"counts must be a {n_classes} x {n_classes} matrix (--classes {n_classes}), got "
            f"{len(rows)} x {len(rows[0])}"
        )
    for row in rows:
        for v in row:
            if not 0 <= v <= MAX_SAMPLES:
                raise ValueError(
                    f"counts entries must be integers in [0, 2^53] (points per group), got {v}"
                )
    return np.array(rows, dtype=np.int64)


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m theory", description="Block-model self-distillation theory.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    q = sub.add_parser(
        "predict",
        help="per-round predictions, PLL student and conditions",
        description="Block-model predictions per round, the PLL students and the conditions. "
        "The model defaults are those of 'python -m simulations run'; the labels come from "
        f"--noise (default {MODEL_DEFAULTS['noise']}, eta {MODEL_DEFAULTS['eta']:g}, exact "
        "counts) or from --counts.",
    )
    q.add_argument(
        "-K",
        "--classes",
        "--n-classes",
        dest="classes",
        type=int,
        default=MODEL_DEFAULTS["n_classes"],
        help="classes K >= 2",
    )
    q.add_argument(
        "-n",
        "--per-class",
        type=int,
        default=MODEL_DEFAULTS["per_class"],
        help="points per class n >= 1 (K n <= 2^53)",
    )
    q.add_argument(
        "--c",
        type=float,
        default=MODEL_DEFAULTS["c"],
        help="within-class correlation, d < c <= 1",
    )
    q.add_argument(
        "--d", type=float, default=MODEL_DEFAULTS["d"], help="across-class correlation, d < c"
    )
    q.add_argument(
        "--lam",
        type=float,
        default=MODEL_DEFAULTS["lam"],
        help=f"regularisation lam in [{LAM_MIN:g}, {LAM_MAX:g}], the range the solvers support "
        "(docs/reliability.md)",
    )
    q.add_argument("--rounds", type=int, default=MODEL_DEFAULTS["rounds"], help=ROUNDS_HELP)
    q.add_argument(
        "--counts",
        help='count matrix "r1;r2;...": row k = given-label counts of class k (instead of --noise)',
    )
    q.add_argument(
        "--noise",
        choices=NOISE_KINDS,
        help="build exact counts from theory.noise (largest-remainder rounding per row) "
        f"(default: {MODEL_DEFAULTS['noise']} unless --counts is given)",
    )
    q.add_argument(
        "--eta",
        type=float,
        help=f"noise rate in [0, 1] for --noise (default: {MODEL_DEFAULTS['eta']:g})",
    )
    q.add_argument(
        "--groups",
        help='superclass partition as JSON, e.g. "[[0,1],[2]]" (required by --noise superclass)',
    )
    q.add_argument(
        "--q", type=float, default=DEFAULT_Q, help="GCE exponent in (0, 1] for the gce student"
    )
    q.add_argument(
        "--dim",
        type=int,
        help="feature dimension p > K (up to 2^53): add the finite-p theories on the Gaussian "
        "mixture: the exact finite-ratio theory of cross-entropy SD (docs/theory.md section 16) "
        "and the linearised one (section 11), flagged where it departs from the exact one",
    )
    q.add_argument(
        "--delta",
        type=float,
        default=0.01,
        help="with --dim: report the first round with population accuracy >= 1 - delta",
    )
    q.add_argument(
        "--points",
        type=int,
        default=None,
        help="with --dim: lattice points per shift and group of the exact finite-ratio theory "
        "(default 64; 16 x this many cavity samples per group)",
    )
    q.add_argument(
        "--no-finite-exact",
        action="store_true",
        help="with --dim: skip the exact finite-ratio theory (docs/theory.md section 16)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="refuse reports estimated above this many GB (default: the memory available now)",
    )
    q.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"refuse reports estimated to take longer (default {DEFAULT_MAX_SECONDS:g} s); "
        "the estimate and this limit are checked before anything is computed",
    )
    return p


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _accs(pred, t):
    out = {key: _finite(getattr(pred, key)[t]) for key in _ACC_KEYS} | {"ties": int(pred.ties[t])}
    if pred.residuals is not None:
        out["residual"] = float(pred.residuals[t])
        out["converged"] = bool(pred.converged[t])
    return out


def _second_order(second):
    return {
        "negative_eigenvalues": second[0],
        "groups_with_negative_within_group_curvature": second[1],
        "local_minimum": second == (0, 0),
    }


def _point(point) -> dict:
    """A stationary point of the descent (:class:`theory.group_descent.StationaryPoint`): its
    accuracies (``label``: train all / clean / mislabeled, population, ties, population ties),
    objective and second-order test."""
    out = {key: _finite(v) for key, v in zip(_ACC_KEYS, point.label[:4], strict=True)}
    out |= {"ties": int(point.label[4]), "objective": float(point.objective)}
    if point.second_order is not None:
        out["second_order"] = _second_order(point.second_order)
    return out


def _student(pred):
    out = _accs(pred, 0) | {"candidate_ties": pred.candidate_ties}
    if pred.second_order is not None:
        out["second_order"] = _second_order(pred.second_order)
    descent = pred.descent
    if descent is None:
        return out
    # Non-convex exact student: which stationary point is reported, and the saddles left on the
    # way (never reported as the student: training leaves a saddle).
    out["stationary_point"] = descent.status
    out["saddles"] = [
        _point(s) | {"sides": [_point(e) for e in ends]}
        for s, ends in zip(descent.saddles, descent.branches, strict=True)
    ]
    out["ambiguous"] = bool(descent.ambiguous)
    if descent.status.startswith("saddle"):
        out["saddle"] = _point(descent.end)
        out["note"] = (
            f"no local minimum reached ({descent.status}): the accuracies are not predicted; "
            "'saddle' is the stationary point found"
        )
    elif descent.saddles:
        out["note"] = (
            f"the group engine stopped at a saddle ({len(descent.saddles)} left, in 'saddles'); "
            "reported: the local minimum reached by leaving it along its most negative "
            "curvature direction"
        )
    return out


def _unconverged(entry, pred, t=0):
    if pred.converged is None or pred.converged[t]:
        return []
    return [
        {
            "entry": entry,
            "residual": float(pred.residuals[t]),
            "target": float(pred.residual_targets[t]),
        }
    ]


def _estimate(n_classes: int, n_groups: int, rounds: int) -> tuple[int, float]:
    """``(bytes, flops)`` of a report with ``G`` non-empty groups (arithmetic only)."""
    k, g, r = int(n_classes), int(n_groups), int(rounds)
    stored = 8 * (r + 1) * (k**3 + k**2)  # theory.groups.prediction_memory_bytes, rank 3
    mem = stored + engine_memory_bytes(k, g, 3) + 8 * 6 * k**3
    mem += 8 * (r + 1) * k**3  # the linear prediction
    mem += 8 * 3 * k * k  # the transition matrix, its scaled copy and the counts (--noise)
    # The escape from a saddle of a non-convex PLL student (prediction_memory_bytes(escape=True)).
    mem += descent_memory_bytes(k, g)
    flops = (r + 12) * float(2 * 3 * k * k * g + 4 * k**4)  # newton_build_flops, rank 3
    return int(mem), float(flops)


def resource_estimate(model: BlockModel, counts, rounds) -> tuple[int, float]:
    """``(bytes, flops)`` estimated for :func:`predict_report` (before anything is allocated).

    Memory: the linear and the exact predictions of ``R + 1`` rounds (kept together) plus the
    working set of one rank-3 (GCE) structured Newton solve. Time: about ``R + 12`` structured
    inverse builds (one or two per exact solve; the preconditioner is shared between rounds).
    """
    g = int(np.count_nonzero(np.asarray(counts) > 0))
    return _estimate(model.n_classes, g, rounds)


def worst_case_estimate(n_classes: int, rounds: int) -> tuple[int, float]:
    """:func:`resource_estimate` with every group non-empty (``G = K^2``), from ``K`` and ``R``
    alone: checked before the count matrix (itself ``K x K``) is built."""
    return _estimate(n_classes, int(n_classes) ** 2, rounds)


#: Default limit of ``--max-time``: ``theory predict`` is a calculator (the README's K = 200
#: report takes ~20-50 s); a longer report is refused unless asked for.
DEFAULT_MAX_SECONDS = 120.0
#: Fixed cost of one round (Python, certificate, table row): measured 0.4 ms CPU and 1.1 ms wall
#: per round at K = 3 on the loaded 2-core development machine; 2 ms is the slow side.
ROUND_SECONDS = 2e-3
#: Floating-point rate of the structured Newton builds: K = 100 took 3.3 s and K = 200 21 s CPU
#: for ~2e10 and ~3.5e11 operations (README), i.e. 0.7-1.7e10 per second; 5e9 is the slow side.
FLOP_RATE = 5e9


def estimated_seconds(flops: float, rounds: int, finite_flops: float = 0.0) -> float:
    """Seconds of a report: its operations at :data:`FLOP_RATE` plus :data:`ROUND_SECONDS` per
    solve (``R + 12``: rounds, students and conditions)."""
    return (flops + finite_flops) / FLOP_RATE + (int(rounds) + 12) * ROUND_SECONDS


def _available_memory() -> int | None:
    """Bytes of memory available now (:func:`selfdistill_cli.available_bytes`), None if unknown."""
    return available_bytes()[0]


def check_finite_resources(n_classes, rounds, available=None, counts=None) -> None:
    """Refuse (one-line ``ValueError`` with the estimate) a finite-p theory that cannot fit in
    memory; its time counts in the report's estimate (:func:`estimated_seconds`).

    ``counts``: the count matrix; with a class symmetry (equal diagonal and equal off-diagonal
    counts, or a circulant matrix) the theory's orbit path is estimated instead of the general
    one (:func:`theory.finite.finite_resource_estimate`).
    """
    from theory.finite import finite_resource_estimate

    mem, flops = finite_resource_estimate(n_classes, rounds, counts)
    avail = _available_memory() if available is None else available
    if avail is not None and mem > avail:
        raise ValueError(
            f"the finite-p theory at K={n_classes} with {rounds} rounds needs an estimated "
            f"{mem / 1e9:.3g} GB (> {avail / 1e9:.3g} GB available) and about {flops:.2g} "
            "floating-point operations (general counts cost ~K^4, symmetric or circulant ones "
            "far less); reduce --classes or --rounds, drop --dim, or pass --max-memory GB to "
            "override"
        )


def check_resources(
    model: BlockModel, counts, rounds, available=None, max_seconds=None, finite_flops=0.0
) -> None:
    """Raise ``ValueError`` (one line, with the estimates) if the report cannot fit in memory or
    would take longer than ``max_seconds`` (default :data:`DEFAULT_MAX_SECONDS`)."""
    mem, flops = resource_estimate(model, counts, rounds)
    _check_estimates(model.n_classes, rounds, mem, flops, available, max_seconds, finite_flops)


def _check_estimates(k, rounds, mem, flops, available=None, max_seconds=None, finite_flops=0.0):
    avail = _available_memory() if available is None else available
    if avail is not None and mem > avail:
        raise ValueError(
            f"K={k} with {rounds} rounds needs an estimated {mem / 1e9:.3g} GB "
            f"(> {avail / 1e9:.3g} GB available) and about {flops:.2g} floating-point "
            "operations; reduce --classes or --rounds, or pass --max-memory GB to override"
        )
    limit = DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds
    seconds = estimated_seconds(flops, rounds, finite_flops)
    what = f"the report for K={k} with {rounds} rounds"
    if finite_flops > flops:
        what = f"the finite-p theory at K={k} with {rounds} rounds (--dim)"
    check_time(seconds, what, limit, "--max-time")


def _finite_report(model: BlockModel, counts, lam, rounds, dim, delta):
    """Finite-p theory (:func:`theory.finite.predict_finite`) on the same counts; JSON-able."""
    from theory.finite import MixtureModel, population_rounds, predict_finite

    mix = MixtureModel(model.n_classes, model.per_class, dim, model.c, model.d)
    pred = predict_finite(mix, counts, lam, rounds)
    per_round = [
        {key: _finite(getattr(pred, key)[t]) for key in _ACC_KEYS} for t in range(rounds + 1)
    ]
    cond = population_rounds(pred, delta)
    summary = {
        "dim": int(dim),
        "ratio": mix.ratio,
        "linearised": True,
        "quadrature_err": float(pred.quadrature_err),
        "bulk_eigen_weights": [float(x) for x in pred.bulk_weights],
        "conditions": {
            "best_population_round": cond.best_round,
            "best_population_acc": cond.best_accuracy,
            "population_gain": cond.gain,
            "first_round_population_above": cond.first_round_above,
            "delta": cond.delta,
        },
    }
    return per_round, summary


def _finite_unresolved(model: BlockModel, rounds, dim, delta):
    """:func:`_finite_report`'s shape where the linearised theory cannot be computed (its
    accuracies and conditions ``None``; the report then says why, under ``finite.refused``)."""
    from theory.finite import MixtureModel

    mix = MixtureModel(model.n_classes, model.per_class, dim, model.c, model.d)
    per_round = [dict.fromkeys(_ACC_KEYS) for _ in range(rounds + 1)]
    keys = ("best_population_round", "best_population_acc", "population_gain")
    summary = {
        "dim": int(dim),
        "ratio": mix.ratio,
        "linearised": True,
        "quadrature_err": None,
        "bulk_eigen_weights": None,
        "conditions": dict.fromkeys(keys) | {"first_round_population_above": None, "delta": delta},
    }
    return per_round, summary


#: Typical seconds above which the exact finite-ratio theory is refused up front (minutes).
FINITE_EXACT_SECONDS = 300.0
#: Default lattice points per shift and group of the exact finite-ratio theory in the CLI.
FINITE_EXACT_POINTS = 64


def check_finite_exact_resources(
    model: BlockModel,
    counts,
    rounds,
    dim,
    points,
    *,
    available=None,
    max_seconds=None,
    other_seconds=0.0,
) -> None:
    """Refuse (one-line ``ValueError`` with the estimates) an exact finite-ratio theory that would
    take minutes or not fit in memory.

    Limits: memory ``available`` (``--max-memory``; default the memory available now); time
    :data:`FINITE_EXACT_SECONDS` for the exact theory alone, or, with ``max_seconds``
    (``--max-time``), that many seconds for the whole report (``other_seconds``: the rest of it,
    :func:`estimated_seconds`).
    """
    from theory.finite import MixtureModel
    from theory.finite_exact import exact_resource_estimate

    mix = MixtureModel(model.n_classes, model.per_class, dim, model.c, model.d)
    est = exact_resource_estimate(mix, counts, rounds, points=points)
    avail = _available_memory() if available is None else available
    if max_seconds is None:
        too_slow = est["seconds"] > FINITE_EXACT_SECONDS
    else:
        too_slow = est["seconds"] + other_seconds > max_seconds
    if too_slow or (avail is not None and est["bytes"] > avail):
        raise ValueError(
            f"the exact finite-ratio theory at K={model.n_classes} with {rounds} rounds would "
            f"take about {est['seconds']:.3g} s and {est['bytes'] / 1e9:.3g} GB "
            f"({est['groups']} groups integrated, {est['points']} points each; count matrix "
            f"symmetry: {est['symmetry']}); pass --no-finite-exact, fewer --points or --rounds, "
            "or --max-time SECONDS / --max-memory GB to override"
        )


class FiniteExactFailed(RuntimeError):
    """The exact finite-ratio theory's fixed point (or a proximal step of it) did not converge:
    no numbers are reported from it (one line on the command line, exit status 2)."""


def _finite_exact_report(model: BlockModel, counts, lam, rounds, dim, delta, points, log):
    """Exact finite-ratio theory (:func:`theory.finite_exact.predict_finite_exact`); JSON-able.

    Raises :class:`FiniteExactFailed` where it does not converge (e.g. ``lam <= 1e-11``).
    """
    from theory.finite import MixtureModel
    from theory.finite_exact import FixedPointNotConverged, predict_finite_exact
    from theory.finite_exact.prox import ProxNotConverged
    from theory.finite_exact.report import exact_rows, exact_summary

    mix = MixtureModel(model.n_classes, model.per_class, dim, model.c, model.d)
    try:
        pred = predict_finite_exact(
            mix,
            counts,
            lam,
            rounds,
            points=points,
            progress=lambda t: log(f"finite-exact round {t}"),
        )
        student = None
        if model.n_classes >= 3:  # the cross-entropy PLL student (top-2 of the teacher)
            pll = predict_finite_exact(mix, counts, lam, 1, points=points, student="pll")
            student = exact_rows(pll)[1]
    except (FixedPointNotConverged, ProxNotConverged, np.linalg.LinAlgError) as exc:
        raise FiniteExactFailed(
            f"the exact finite-ratio theory did not converge ({' '.join(str(exc).split())}); "
            "pass --no-finite-exact for the other theories"
        ) from None
    return exact_rows(pred), exact_summary(pred, delta), student


def predict_report(
    model: BlockModel,
    counts,
    lam,
    rounds,
    *,
    q: float = DEFAULT_Q,
    log=None,
    dim: int | None = None,
    delta: float = 0.01,
    finite_exact: bool = True,
    points: int | None = None,
) -> dict:
    """The JSON-able report printed by ``python -m theory predict --json``.

    With ``dim``, every round also carries ``finite`` (the finite-``p`` linearised theory on the
    Gaussian mixture of that dimension, same count matrix) and the report a ``finite`` summary
    (the ratio ``N/p``, the bulk-averaged eigen-weights and the population-round conditions).
    With ``dim`` and ``finite_exact``, every round also carries ``finite_exact`` (the exact
    finite-ratio theory of cross-entropy SD, docs §16) and the report a ``finite_exact`` summary
    (best round, gain, first round ``>= 1 - delta``, the fixed point's convergence); each
    linearised ``finite`` entry then carries ``error_indicator`` (its largest distance from the
    exact theory) and ``validated`` (within 0.03), and ``finite`` says why where it is not.

    Exact solves are run with ``allow_unconverged=True``: uncertified entries are reported and
    listed under ``unconverged`` instead of raising (module docstring). ``log``: optional
    ``log(message)`` for progress lines (the CLI passes one for long runs).
    """
    say = log or (lambda _msg: None)
    lin = predict_linear(model, counts, lam, rounds)
    say("linear rounds done")
    exa = predict_exact(
        model,
        counts,
        lam,
        rounds,
        allow_unconverged=True,
        progress=lambda t, sol: say(
            f"exact round {t}/{rounds} (residual {sol.residual:.2g}, {sol.iterations} steps)"
        ),
    )
    rows = [
        {"round": t, "linear": _accs(lin, t), "exact": _accs(exa, t)} for t in range(rounds + 1)
    ]
    unconverged = [u for t in range(rounds + 1) for u in _unconverged(f"rounds[{t}].exact", exa, t)]
    residuals = list(exa.residuals)
    teacher = exa.teacher
    del lin, exa  # release the (R + 1) K^3 arrays before the students are solved
    losses: dict = {}
    for loss in LOSSES if model.n_classes >= PLL_MIN_CLASSES else ():
        entry: dict = {}
        try:
            entry["linear"] = _student(
                predict_pll(model, counts, lam, method="linear", loss=loss, q=q)
            )
        except LinearisationUndefinedError as exc:
            entry["linear_undefined"] = str(exc)
        pred = predict_pll(
            model,
            counts,
            lam,
            method="exact",
            loss=loss,
            q=q,
            teacher=teacher,
            allow_unconverged=True,
        )
        entry["exact"] = _student(pred)
        say(f"PLL student {loss} done")
        unconverged += _unconverged(f"pll_losses.{loss}.exact", pred)
        residuals.append(float(pred.residuals[0]))
        losses[loss] = entry
    holds, margin = plurality_condition(counts)
    window = window_linear(model, counts, lam)  # never clipped to ``rounds``
    finite = None
    if dim is not None:
        from theory.finite import FiniteResolutionError
        from theory.finite_exact.report import (
            linearised_flags,
            linearised_regime,
            random_matrix_failure,
        )

        unresolved = None
        try:
            per_round, finite = _finite_report(model, counts, lam, rounds, dim, delta)
        except FiniteResolutionError as exc:  # e.g. very small lam: h1's one line, or refused
            if not finite_exact:
                raise  # nothing else to report at this --dim
            unresolved = f"linearised finite-p theory not available: {' '.join(str(exc).split())}"
            per_round, finite = _finite_unresolved(model, rounds, dim, delta)
        say("finite-p theory done")
        exact_rows = exact_sum = exact_pll = None
        if finite_exact:
            pts = FINITE_EXACT_POINTS if points is None else points
            exact_rows, exact_sum, exact_pll = _finite_exact_report(
                model, counts, lam, rounds, dim, delta, pts, say
            )
            say("finite-exact theory done")
        regime = linearised_regime(model.n_classes, float(lam), finite["ratio"])
        flags = linearised_flags(per_round, exact_rows, regime)
        refused = unresolved or random_matrix_failure(float(lam), finite["ratio"])
        for t, (row, entry, flag) in enumerate(zip(rows, per_round, flags, strict=True)):
            row["finite"] = entry | flag
            if refused is not None:  # no numbers where the theory is known to fail
                row["finite"] = dict.fromkeys(entry) | {"error_indicator": None, "validated": False}
            if exact_rows is not None:
                row["finite_exact"] = exact_rows[t]
        finite["validated"] = refused is None and all(f["validated"] for f in flags)
        if refused is not None:
            finite["refused"] = refused
            finite["conditions"] = dict.fromkeys(finite["conditions"]) | {"delta": delta}
        finite["regime_note"] = (
            regime[1]
            if exact_rows is None
            else "rows marked ! are more than 0.03 from the exact finite-ratio theory "
            "(error_indicator: the largest distance per round)"
        )
    rep = {
        CONFIG_KEY: {
            "n_classes": model.n_classes,
            "per_class": model.per_class,
            "c": model.c,
            "d": model.d,
            "lam": float(lam),
            "rounds": int(rounds),
            "q": float(q),
            "counts": np.asarray(counts).tolist(),
        },
        "rounds": rows,
        # Today's PLL student (two-hot cross-entropy) = pll_losses.ce; with K = 2 the students
        # are undefined (theory.partial_labels.pll_undefined_reason) and say so instead.
        "pll": (
            {m: losses["ce"][m] for m in ("linear", "exact")}
            if losses
            else {"undefined": pll_undefined_reason(LOSS_METHOD["ce"], model.n_classes)}
        ),
        "pll_losses": losses
        or {
            loss: {"undefined": pll_undefined_reason(LOSS_METHOD[loss], model.n_classes)}
            for loss in LOSSES
        },
        "conditions": {
            "plurality": bool(holds),
            "margin": float(margin),
            "rho": _finite(eigen_ratio_rho(model, lam)),
            "t_min_linear": min_rounds_linear(model, counts, lam),
            # [first, last]; last = null with window_unbounded = true: 100% at every later round
            "window_linear": None if window is None else list(window),
            "window_unbounded": window is not None and window[1] is None,
        },
        "max_exact_residual": float(max(residuals)),
        "unconverged": unconverged,
    }
    if finite is not None:
        rep["finite"] = finite
        if exact_sum is not None:
            rep["finite_exact"] = exact_sum
            if exact_pll is not None:
                rep["pll"]["finite_exact"] = exact_pll
    return rep


def _fmt(x):
    return "   -  " if x is None else f"{x:6.3f}"


def _cells(entry):
    mark = "*" if entry.get("converged") is False else " "
    return " ".join(_fmt(entry[k]) for k in _ACC_KEYS) + mark


#: Up to this many classes the table prints the whole K x K count matrix (wider is unreadable).
_MAX_MATRIX_CLASSES = 12


def _counts_lines(counts) -> list[str]:
    """The count matrix for people: a labelled grid for small K, a summary otherwise."""
    c = np.asarray(counts)
    k = c.shape[0]
    clean = int(np.trace(c))
    head = f"counts: {k}x{k}, {clean} of {int(c.sum())} labels clean"
    if k > _MAX_MATRIX_CLASSES:
        off = c.sum(axis=1) - np.diag(c)
        return [
            head + f"; mislabeled per class {int(off.min())}..{int(off.max())} "
            "(--json prints the matrix)"
        ]
    width = max(len(str(int(c.max()))), len(str(k - 1)), 3)
    lines = [head + " (row = true class, column = given label):"]
    lines.append(" " * 8 + " ".join(f"{j:>{width}}" for j in range(k)))
    for i in range(k):
        lines.append(f"  {i:>4}  " + " ".join(f"{int(v):>{width}}" for v in c[i]))
    return lines


def _g(x) -> str:
    """4 significant digits; None (an infinite value in the JSON) reads as inf."""
    return "inf" if x is None else f"{x:.4g}"


def _window(cond) -> str:
    """The 100%-window for people: ``[1, 5]``, ``[1, ∞)`` when unbounded, ``none``."""
    w = cond["window_linear"]
    if w is None:
        return "none"
    return f"[{w[0]}, ∞)" if cond.get("window_unbounded") else f"[{w[0]}, {w[1]}]"


def _table(rep: dict) -> str:
    p = rep[CONFIG_KEY]
    lines = [
        f"K={p['n_classes']} n={p['per_class']} c={p['c']} d={p['d']} lam={p['lam']:g}",
        *_counts_lines(p["counts"]),
        "accuracy: train = w.r.t. true labels (all / clean / mislabeled); pop = population",
        f"{'round':>5} | {'linear: train clean  mis    pop':<31} | exact: train clean  mis    pop",
    ]
    if "finite_exact" in rep:
        lines[-1] += f" | finite-exact p={rep['finite_exact']['dim']}: train clean mis  pop"
    if "finite" in rep:
        lines[-1] += f" | finite-linearised p={rep['finite']['dim']}: train clean mis  pop"
    for row in rep["rounds"]:
        lin = " ".join(_fmt(row["linear"][k]) for k in _ACC_KEYS)
        line = f"{row['round']:>5} | {lin:<31} | {_cells(row['exact'])}"
        if "finite_exact" in row:
            line += " | " + " ".join(_fmt(row["finite_exact"][k]) for k in _ACC_KEYS)
        if "finite" in row:
            line += " | " + " ".join(_fmt(row["finite"][k]) for k in _ACC_KEYS)
            line += "" if row["finite"]["validated"] else " !"
        lines.append(line)
    if "undefined" in rep["pll"]:
        lines.append(f"PLL students: undefined: {rep['pll']['undefined']}")
    for m in ("linear", "exact") if "undefined" not in rep["pll"] else ():
        lines.append(f"PLL {m:<6}: " + _cells(rep["pll"][m]))
    if "finite_exact" in rep["pll"]:
        pll = rep["pll"]["finite_exact"]
        lines.append(
            f"PLL finite-exact p={rep['finite_exact']['dim']}: "
            + " ".join(_fmt(pll[k]) for k in _ACC_KEYS)
        )
    saddle_notes = []
    for loss, entry in rep["pll_losses"].items() if "undefined" not in rep["pll"] else ():
        lin = _cells(entry["linear"]) if "linear" in entry else f"{'(linearisation undefined)':<28}"
        name = f"{loss} (q={p['q']:g})" if loss == "gce" else loss
        exact = entry["exact"]
        mark = " s" if exact.get("saddles") or "saddle" in exact else ""
        lines.append(f"PLL {name:<11} linear {lin}| exact {_cells(exact)}{mark}")
        saddle_notes += _saddle_lines(loss, exact)
    lines += saddle_notes
    cond = rep["conditions"]
    lines.append(
        f"plurality={cond['plurality']} margin={cond['margin']:.4g} rho={_g(cond['rho'])} "
        f"t_min_linear={cond['t_min_linear']} window_linear={_window(cond)}"
    )
    if "finite" in rep and "refused" in rep["finite"]:
        lines.append(f"! {rep['finite']['refused']}")
    elif "finite" in rep:
        fc = rep["finite"]["conditions"]
        first = fc["first_round_population_above"]
        lines.append(
            f"finite p={rep['finite']['dim']} (N/p={rep['finite']['ratio']:.3g}, linearised): "
            f"best population round {fc['best_population_round']} "
            f"({fc['best_population_acc']:.3f}, gain {fc['population_gain']:+.3f}); "
            f"first round >= {1 - fc['delta']:g}: {'none' if first is None else first}"
        )
        if not rep["finite"]["validated"]:
            lines.append(f"! linearised finite-p theory: {rep['finite']['regime_note']}")
    if "finite_exact" in rep:
        fe = rep["finite_exact"]
        fc = fe["conditions"]
        first = fc["first_round_population_above"]
        lines.append(
            f"finite-exact p={fe['dim']} (N/p={fe['ratio']:.3g}, cross-entropy SD): "
            f"best population round {fc['best_population_round']} "
            f"({fc['best_population_acc']:.3f}, gain {fc['population_gain']:+.3f}); "
            f"first round >= {1 - fc['delta']:g}: {'none' if first is None else first}; "
            f"fixed point converged={fe['fixed_point']['converged']} "
            f"(max residual {fe['fixed_point']['max_residual']:.1g}), quadrature error train "
            f"{fe['quadrature_err']['train']:.1g} pop {fe['quadrature_err']['population']:.1g}"
        )
    if rep["unconverged"]:
        lines.append(
            "* not converged: "
            + ", ".join(f"{u['entry']} (residual {u['residual']:.2g})" for u in rep["unconverged"])
        )
    return "\n".join(lines)


def _saddle_lines(loss, exact) -> list[str]:
    """Table lines for a PLL student whose engine solve stopped at a saddle (marked ``s``)."""

    def accs(point):
        return " ".join(
            "-" if point[k] is None else f"{point[k]:.3f}" for k in ("train_acc", "population_acc")
        )

    def neg(point):
        so = point.get("second_order")
        return "" if so is None else f", {so['negative_eigenvalues']} negative directions"

    out = [
        f"s {loss}: saddle at train/pop {accs(saddle)}{neg(saddle)}; its two sides reach "
        + " and ".join(accs(e) for e in saddle["sides"])
        for saddle in exact.get("saddles", [])
    ]
    if "saddle" in exact:
        out.append(
            f"s {loss}: stopped at a saddle (train/pop {accs(exact['saddle'])}"
            f"{neg(exact['saddle'])}), no local minimum reached ({exact['stationary_point']}): "
            "accuracies not predicted"
        )
    elif out:
        out[-1] += " (ambiguous)" if exact.get("ambiguous") else ""
        out[-1] += "; shown: the local minimum"
    return out


def _parse_groups(text):
    """``--groups`` JSON (a list of lists of class indices) or None."""
    if text is None:
        return None
    try:
        groups = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"--groups must be JSON like [[0,1],[2]], got {text!r}") from None
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise ValueError(f"--groups must be a JSON list of lists, got {text!r}")
    return groups


def _check_args(args) -> None:
    """Validate every scalar option (nothing is allocated); ``ValueError`` naming the option."""
    check_lam(args.lam, "lam")
    if not 2 <= args.classes <= MAX_SAMPLES:
        raise ValueError(f"classes (K) must be an integer in [2, 2^53], got {args.classes}")
    if args.per_class < 1:
        raise ValueError(f"per_class (n) must be an integer >= 1, got {args.per_class}")
    if args.per_class > MAX_SAMPLES // args.classes:
        raise ValueError(
            f"per_class must be an integer in [1, {MAX_SAMPLES // args.classes}]"
            f" for K={args.classes} (N = K n at most 2^53, exactly representable in float64), "
            f"got {args.per_class}"
        )
    if not (math.isfinite(args.c) and math.isfinite(args.d)):
        raise ValueError("c and d must be finite")
    if args.c > 1:
        raise ValueError(f"c must be <= 1, got {args.c}")
    if args.c <= args.d:
        raise ValueError(
            f"c must be > d (within-class above across-class), got c={args.c}, d={args.d}"
        )
    if args.rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {args.rounds}")
    if not (math.isfinite(args.q) and 0 < args.q <= 1):
        raise ValueError(f"q (GCE exponent) must lie in (0, 1], got {args.q}")
    if not (math.isfinite(args.delta) and 0 < args.delta < 1):
        raise ValueError(f"delta must lie in (0, 1), got {args.delta}")
    if args.dim is not None and not args.classes < args.dim <= MAX_SAMPLES:
        raise ValueError(
            f"dim (p) must be an integer in (K, 2^53] = ({args.classes}, {MAX_SAMPLES}] (the "
            f"finite-p theory's noise bulk has p - K dimensions), got {args.dim}"
        )
    from theory.finite import FINITE_MAX_ROUNDS  # lazy: the finite-p theory is optional

    if args.dim is not None and args.rounds > FINITE_MAX_ROUNDS and args.max_time is None:
        raise ValueError(
            f"the finite-p theory (--dim) runs up to --rounds {FINITE_MAX_ROUNDS} by default: "
            f"beyond, its covariance contour grows to thousands of points and its time to minutes "
            f"or hours (theory.finite.FINITE_MAX_ROUNDS); got {args.rounds}: reduce --rounds, "
            "drop --dim, or pass --max-time SECONDS to allow it"
        )
    if args.points is not None and args.points < 16:
        raise ValueError(f"points must be an integer >= 16, got {args.points}")
    if args.counts is not None:
        if args.noise is not None or args.eta is not None or args.groups is not None:
            raise ValueError("pass either --counts or --noise/--eta/--groups, not both")


def _model_and_counts(args):
    """The block model and the validated count matrix (after :func:`_check_args`)."""
    if args.dim is not None:
        from theory.finite import MixtureModel

        MixtureModel(args.classes, args.per_class, args.dim, args.c, args.d)  # mixture exists
    model = BlockModel(args.classes, args.per_class, args.c, args.d)
    if args.counts is not None:
        counts = parse_counts(args.counts, args.classes)
        args.labels = {"noise": None, "eta": None, "groups": None}  # given by --counts
    else:
        from theory.noise import exact_counts, transition_matrix

        noise = MODEL_DEFAULTS["noise"] if args.noise is None else args.noise
        eta = MODEL_DEFAULTS["eta"] if args.eta is None else args.eta
        groups = _parse_groups(args.groups)
        if noise == "superclass" and groups is None:
            raise ValueError('--noise superclass needs --groups, e.g. "[[0,1],[2]]"')
        if noise != "superclass" and groups is not None:
            raise ValueError("--groups applies to --noise superclass only")
        trans = transition_matrix(noise, args.classes, eta, groups=groups)
        counts = exact_counts(trans, args.per_class)
        args.labels = {"noise": noise, "eta": float(eta), "groups": groups}
    return model, check_counts(counts, model)


def _max_memory(value) -> int | None:
    """``--max-memory GB`` in bytes (``None``: the memory available now)."""
    if value is None:
        return None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--max-memory must be a positive number of GB, got {value!r}")
    return int(value * 1e9)


def _finite_flops(args, counts=None) -> float:
    if args.dim is None:
        return 0.0
    from theory.finite import finite_resource_estimate

    return finite_resource_estimate(args.classes, args.rounds, counts)[1]


def main(argv=None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        max_seconds = parse_max_time(args.max_time)
        avail = _max_memory(args.max_memory)
        _check_args(args)
        # Before anything of size K x K is built (the count matrix of --noise at K = 100000 is
        # 80 GB): the worst case of every group non-empty, from K and R alone.
        mem, flops = worst_case_estimate(args.classes, args.rounds)
        if args.counts is None:  # --noise (the default): the count matrix is built from K
            _check_estimates(args.classes, args.rounds, mem, flops, avail, max_seconds)
        model, counts = _model_and_counts(args)
        # The finite-p theory's cost depends on the counts' class symmetry (theory.finite).
        finite_flops = _finite_flops(args, counts)
        if args.dim is not None:
            check_finite_resources(model.n_classes, args.rounds, avail, counts=counts)
        check_resources(model, counts, args.rounds, avail, max_seconds, finite_flops)
        if args.dim is not None and not args.no_finite_exact:
            report_seconds = estimated_seconds(
                resource_estimate(model, counts, args.rounds)[1], args.rounds, finite_flops
            )
            check_finite_exact_resources(
                model,
                counts,
                args.rounds,
                args.dim,
                args.points or FINITE_EXACT_POINTS,
                available=avail,
                max_seconds=max_seconds,
                other_seconds=report_seconds,
            )
    except (_UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = None
    _, flops = resource_estimate(model, counts, args.rounds)
    if flops > PROGRESS_FLOPS:  # long run (about K >= 150): progress lines on stderr

        def log(msg):
            print(f"progress: {msg}", file=sys.stderr, flush=True)

    try:
        rep = predict_report(
            model,
            counts,
            args.lam,
            args.rounds,
            q=args.q,
            log=log,
            dim=args.dim,
            delta=args.delta,
            finite_exact=not args.no_finite_exact,
            points=args.points,
        )
    except ValueError as exc:  # e.g. the finite-p theory cannot resolve these parameters
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except FiniteExactFailed as exc:  # never a number from an unconverged fixed point
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GroupConvergenceError as exc:  # pragma: no cover - every solve allows partial results
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rep[CONFIG_KEY].update(args.labels)  # where the counts came from, keyed as in `run`
    print(json.dumps(rep, indent=2) if args.json else _table(rep))
    if rep["unconverged"]:
        print(
            f"warning: {len(rep['unconverged'])} exact entries did not reach their certificate "
            "(marked *; JSON 'unconverged')",
            file=sys.stderr,
        )
    return 0
