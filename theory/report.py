"""The block-model prediction report: per-round accuracies, PLL students and conditions, as data.

:func:`predict_report` computes what ``python -m theory predict`` shows, for rounds ``0..R``: the
linearised and exact group-level accuracies (training w.r.t. the true labels: all / clean /
mislabeled points; population), the PLL student's (two-hot cross-entropy, and every candidate-set
loss of :mod:`theory.losses`), the conditions (plurality, margin, rho, closed-form minimum round,
100%-window) and, with ``dim``, the finite-p theories. It returns a JSON-able ``dict`` (no NaN or
inf: undefined values are ``None``); reading arguments, printing and the resource refusals are
the command line's (:mod:`selfdistill_cli.predict`), so this module does no I/O.

One model of a run (issue 23): the report takes a :class:`theory.spec.Spec` and every accuracy
in it is a value of a :class:`theory.spec.Result` of :func:`theory.spec.predict` (one per
source: ``linear``, ``exact``, each PLL student's, ``finite``, ``finite_exact``), so
``predict(Spec.from_dict(report["spec"]), source)`` reproduces its numbers bit for bit. What a
Result's values do not carry (ties, certificates, saddles, finite-p summaries) is read from its
``prediction`` (the theory's own object), never computed again.

:func:`resource_estimate`, :func:`worst_case_estimate` and :func:`estimated_seconds` estimate the
memory and time of a report from ``K`` and ``R`` (arithmetic only), before anything of size
``K x K`` is built; the command line and :mod:`simulations.runtime` check them against limits.

Partial results: an exact solve that misses its certificate (e.g. at ``lam <= 1e-7``) does not
drop the report. Its entry carries ``"converged": false`` and its residual, and the report lists
it under ``unconverged`` (entry, residual, target). A round trained on an uncertified round is
uncertified too.

Saddles: a non-convex PLL student is the local minimum training reaches. Where the group
engine stopped at a saddle, the entry reports the minimum reached from it
(:func:`theory.group_descent.descend_to_minimum`) and lists the saddle under ``saddles``. A
saddle's accuracies are never reported as the student's (``None`` accuracies and a ``saddle``
entry if no minimum is reached).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from theory.conditions import (
    eigen_ratio_rho,
    min_rounds_linear,
    plurality_condition,
    window_linear,
)
from theory.group_descent import descent_memory_bytes
from theory.group_engine import engine_memory_bytes
from theory.groups import BlockModel
from theory.losses import LOSSES
from theory.names import CONFIG_KEY, LOSS_METHOD, THEORY_FIELDS
from theory.partial_labels import PLL_MIN_CLASSES, pll_undefined_reason
from theory.pll import LinearisationUndefinedError
from theory.spec import METRICS, Result, Spec, predict

__all__ = [
    "ACC_KEYS",
    "FINITE_EXACT_POINTS",
    "FLOP_RATE",
    "ROUND_SECONDS",
    "FiniteExactFailed",
    "estimated_seconds",
    "group_prediction_bytes",
    "predict_report",
    "resource_estimate",
    "worst_case_estimate",
]

#: The accuracies of every entry of the report, in table order: training accuracy w.r.t. the
#: true labels (all / clean / mislabeled points) and population accuracy.
ACC_KEYS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")
#: The :data:`theory.spec.METRICS` column of each accuracy key (``population_acc`` is ``pop_acc``).
_ACC_METRIC = {THEORY_FIELDS[m]: m for m in METRICS}


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _row(res: Result, t: int) -> dict:
    """Round ``t`` of a :class:`theory.spec.Result`: the :data:`ACC_KEYS` accuracies."""
    return {key: _finite(res.value(_ACC_METRIC[key])[t]) for key in ACC_KEYS}


def _rows(res: Result) -> list[dict]:
    return [_row(res, t) for t in res.rounds]


def _accs(res: Result, t: int, i: int | None = None) -> dict:
    """Round ``t`` of ``res`` with the ties and the certificate of row ``i`` (default ``t``) of
    its native prediction (a PLL result's row 1, the student, is its prediction's row 0)."""
    pred, i = res.prediction, t if i is None else i
    out = _row(res, t) | {"ties": int(pred.ties[i])}
    pop_ties = getattr(pred, "population_ties", None)
    if pop_ties is not None:
        # Classes whose population point ties (counted as errors): an accuracy of 0 from ties
        # is not a teacher that learned nothing.
        out["population_ties"] = int(pop_ties[i])
    if pred.residuals is not None:
        out["residual"] = float(pred.residuals[i])
        out["converged"] = bool(pred.converged[i])
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
    out = {key: _finite(v) for key, v in zip(ACC_KEYS, point.label[:4], strict=True)}
    out |= {"ties": int(point.label[4]), "objective": float(point.objective)}
    if point.second_order is not None:
        out["second_order"] = _second_order(point.second_order)
    return out


def _student(res: Result) -> dict:
    """A PLL result's student (row 1) with its native prediction's diagnostics."""
    pred = res.prediction
    out = _accs(res, 1, 0) | {"candidate_ties": pred.candidate_ties}
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


def group_prediction_bytes(n_classes: int, n_groups: int, rounds: int, *, escape=False) -> int:
    """Peak bytes of the exact group-level prediction with ``G`` non-empty groups, rank-3 loss.

    The arithmetic of :func:`theory.groups.prediction_memory_bytes` (``rank=3``) from ``K``, ``G``
    and ``R`` alone, for estimates made before the ``K x K`` count matrix exists: ``R + 1`` stored
    (K, K, K) rounds and population arrays, one structured Newton step
    (:func:`theory.group_engine.engine_memory_bytes`), six (K, K, K) solution arrays and, with
    ``escape`` (a non-convex PLL student), the escape from a saddle point
    (:func:`theory.group_descent.descent_memory_bytes`).
    """
    k, g, r = int(n_classes), int(n_groups), int(rounds)
    stored = 8 * (r + 1) * (k**3 + k**2)
    extra = descent_memory_bytes(k, g) if escape else 0
    return stored + engine_memory_bytes(k, g, 3) + 8 * 6 * k**3 + extra


def _estimate(n_classes: int, n_groups: int, rounds: int) -> tuple[int, float]:
    """``(bytes, flops)`` of a report with ``G`` non-empty groups (arithmetic only)."""
    k, g, r = int(n_classes), int(n_groups), int(rounds)
    # The exact prediction, with the escape from a saddle of a non-convex PLL student.
    mem = group_prediction_bytes(k, g, r, escape=True)
    mem += 8 * (r + 1) * k**3  # the linear prediction
    mem += 8 * 3 * k * k  # the transition matrix, its scaled copy and the counts (--noise)
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


def _finite_report(spec: Spec, delta):
    """Linearised finite-p theory (``predict(spec, 'finite')``) on the spec's counts; JSON-able
    rows, summary and the reason it is refused (``None`` if it is not: docs §11.9)."""
    from theory.finite import population_rounds

    res = predict(spec, "finite", allow_refused=True)  # refused: numbers kept out by the caller
    pred = res.prediction
    summary = {
        "dim": int(spec.dim),
        "ratio": pred.model.ratio,
        "linearised": True,
        "quadrature_err": float(pred.quadrature_err),
        "bulk_eigen_weights": [float(x) for x in pred.bulk_weights],
        "conditions": population_rounds(pred, delta).to_json(),
    }
    return _rows(res), summary, res.extra.get("refused")


def _finite_unresolved(spec: Spec, delta):
    """:func:`_finite_report`'s shape where the linearised theory cannot be computed (its
    accuracies and conditions ``None``; the report then says why, under ``finite.refused``)."""
    from theory.finite import MixtureModel

    mix = MixtureModel(spec.n_classes, spec.per_class, spec.dim, spec.c, spec.d)
    per_round = [dict.fromkeys(ACC_KEYS) for _ in range(spec.rounds + 1)]
    keys = ("best_population_round", "best_population_acc", "population_gain")
    summary = {
        "dim": int(spec.dim),
        "ratio": mix.ratio,
        "linearised": True,
        "quadrature_err": None,
        "bulk_eigen_weights": None,
        "conditions": dict.fromkeys(keys) | {"first_round_population_above": None, "delta": delta},
    }
    return per_round, summary


#: Default lattice points per shift and group of the exact finite-ratio theory in the report.
FINITE_EXACT_POINTS = 64


class FiniteExactFailed(RuntimeError):
    """The exact finite-ratio theory's fixed point (or a proximal step of it) did not converge:
    no numbers are reported from it (one line on the command line, exit status 2)."""


def _finite_exact_report(spec: Spec, delta, points, log):
    """Exact finite-ratio theory (``predict(spec, 'finite_exact')``) and, with ``K >= 3``, its
    cross-entropy PLL student (row 1 of the ``'pll-ce'`` spec); JSON-able.

    Raises :class:`FiniteExactFailed` where it does not converge (e.g. ``lam <= 1e-11``).
    """
    from theory.finite_exact import FixedPointNotConverged
    from theory.finite_exact.prox import ProxNotConverged
    from theory.finite_exact.report import exact_summary

    try:
        res = predict(
            spec, "finite_exact", points=points, progress=lambda t: log(f"finite-exact round {t}")
        )
        student = None
        if spec.n_classes >= PLL_MIN_CLASSES:  # the student of the teacher's top-2 candidates
            pll = predict(replace(spec, method=LOSS_METHOD["ce"]), "finite_exact", points=points)
            student = _rows(pll)[1]
    except (FixedPointNotConverged, ProxNotConverged, np.linalg.LinAlgError) as exc:
        raise FiniteExactFailed(
            f"the exact finite-ratio theory did not converge ({' '.join(str(exc).split())}); "
            "pass --no-finite-exact for the other theories"
        ) from None
    return _rows(res), exact_summary(res.prediction, delta), student


def predict_report(
    spec: Spec,
    *,
    log=None,
    delta: float = 0.01,
    finite_exact: bool = True,
    points: int | None = None,
) -> dict:
    """The JSON-able report printed by ``python -m theory predict --json``.

    Every accuracy comes from :func:`theory.spec.predict` on ``spec`` (the block limit's
    ``'linear'`` and ``'exact'`` rounds; the PLL students, ``spec`` with ``method='pll-<loss>'``
    and the SD result as ``teacher``; with a finite ``spec.dim``, ``'finite'`` and
    ``'finite_exact'``), so the command line, its JSON and the Python API share one model of a
    run; ties, certificates, saddles and the finite-p summaries come from each
    :class:`theory.spec.Result`'s ``prediction``.

    Parameters
    ----------
    spec : Spec
        The run: model ``K, n, c, d``; counts (``counts``, or ``noise`` and ``eta``); ``lam``;
        the last round ``R`` (teacher = round 0, self-distillation rounds ``1..R``); ``q``, the
        GCE exponent of the ``gce`` student; ``dim``: ``inf`` for the block-model report, a
        finite ``p`` to add the finite-``p`` theories on the Gaussian mixture of that dimension
        with the same count matrix (docs/theory.md sections 11 and 16). ``method`` must be
        ``'sd'`` (the report covers every PLL student itself).
    log : callable, optional
        ``log(message)`` for progress lines (the command line passes one for long runs).
    delta : float, optional
        With a finite ``dim``: the first round with population accuracy ``>= 1 - delta`` is
        reported.
    finite_exact : bool, optional
        With a finite ``dim``: also the exact finite-ratio theory of cross-entropy SD.
    points : int, optional
        Lattice points per shift and group of the exact finite-ratio theory (default
        :data:`FINITE_EXACT_POINTS`).

    Returns
    -------
    dict
        ``config``, ``rounds`` (per round: ``linear`` and ``exact`` entries with the
        :data:`ACC_KEYS` accuracies), ``pll``, ``pll_losses``, ``conditions``,
        ``max_exact_residual``, ``unconverged`` and ``spec`` (:meth:`Spec.to_dict`:
        ``Spec.from_dict`` rebuilds the run). With ``dim``, every round also carries ``finite``
        (the finite-``p`` linearised theory) and the report a ``finite`` summary (the ratio
        ``N/p``, the bulk-averaged eigen-weights and the population-round conditions). With
        ``dim`` and ``finite_exact``, every round also carries ``finite_exact`` (docs §16) and
        the report a ``finite_exact`` summary (best round, gain, first round ``>= 1 - delta``,
        the fixed point's convergence); each linearised ``finite`` entry then carries
        ``error_indicator`` (its largest distance from the exact theory) and ``validated``
        (within 0.03), and ``finite`` says why where it is not.

    Raises
    ------
    ValueError
        ``spec`` is not an ``'sd'`` :class:`theory.spec.Spec`.
    FiniteExactFailed
        The exact finite-ratio theory's fixed point did not converge.
    theory.finite.FiniteResolutionError
        With ``dim`` and not ``finite_exact``: the linearised theory cannot resolve the
        parameters.

    Notes
    -----
    Exact solves are run with ``allow_unconverged=True``: uncertified entries are reported and
    listed under ``unconverged`` instead of raising (module docstring).
    """
    if not isinstance(spec, Spec) or spec.method != "sd":
        raise ValueError(f"spec must be a theory.spec.Spec with method='sd', got {spec!r}")
    say = log or (lambda _msg: None)
    rounds, lam = spec.rounds, spec.lam
    block = replace(spec, dim=math.inf)  # the block limit of the same model and counts
    lin = predict(block, "linear")
    say("linear rounds done")
    exa = predict(
        block,
        "exact",
        allow_unconverged=True,
        progress=lambda t, sol: say(
            f"exact round {t}/{rounds} (residual {sol.residual:.2g}, {sol.iterations} steps)"
        ),
    )
    rows = [
        {"round": t, "linear": _accs(lin, t), "exact": _accs(exa, t)} for t in range(rounds + 1)
    ]
    unconverged = [
        u for t in range(rounds + 1) for u in _unconverged(f"rounds[{t}].exact", exa.prediction, t)
    ]
    residuals = list(exa.prediction.residuals)
    # The linear students use the linear teacher's row 0 only: release its (R + 1) K^3 arrays.
    # The exact result stays until the students are solved (its round 0 is their teacher): the
    # peak stays that of the rounds (linear + exact + one solve, resource_estimate).
    lin_teacher = replace(lin, prediction=None)
    del lin
    losses: dict = {}
    for loss in LOSSES if spec.n_classes >= PLL_MIN_CLASSES else ():
        student = replace(block, method=LOSS_METHOD[loss])
        entry: dict = {}
        try:
            entry["linear"] = _student(predict(student, "linear", teacher=lin_teacher))
        except LinearisationUndefinedError as exc:
            entry["linear_undefined"] = str(exc)
        res = predict(student, "exact", teacher=exa)  # uncertified: kept, with a note
        entry["exact"] = _student(res)
        say(f"PLL student {loss} done")
        unconverged += _unconverged(f"pll_losses.{loss}.exact", res.prediction)
        residuals.append(float(res.prediction.residuals[0]))
        losses[loss] = entry
    exa = res = None  # release the exact rounds before the finite-p theories
    model = BlockModel(spec.n_classes, spec.per_class, spec.c, spec.d)
    counts = spec.count_matrix()
    holds, margin = plurality_condition(counts)
    window = window_linear(model, counts, lam)  # never clipped to ``rounds``
    finite = None
    if spec.finite:
        from theory.finite import FiniteResolutionError
        from theory.finite_exact.report import linearised_flags, linearised_regime

        try:
            per_round, finite, refused = _finite_report(spec, delta)
        except FiniteResolutionError as exc:  # e.g. very small lam: h1's one line, or refused
            if not finite_exact:
                raise  # nothing else to report at this --dim
            refused = f"linearised finite-p theory not available: {' '.join(str(exc).split())}"
            per_round, finite = _finite_unresolved(spec, delta)
        say("finite-p theory done")
        exact_rows = exact_sum = exact_pll = None
        if finite_exact:
            pts = FINITE_EXACT_POINTS if points is None else points
            exact_rows, exact_sum, exact_pll = _finite_exact_report(spec, delta, pts, say)
            say("finite-exact theory done")
        regime = linearised_regime(spec.n_classes, lam, finite["ratio"])
        flags = linearised_flags(per_round, exact_rows, regime)
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
            "n_classes": spec.n_classes,
            "per_class": spec.per_class,
            "c": spec.c,
            "d": spec.d,
            "lam": float(lam),
            "rounds": int(rounds),
            "q": float(spec.q),
            "counts": counts.tolist(),
        },
        "rounds": rows,
        # Today's PLL student (two-hot cross-entropy) = pll_losses.ce; with K = 2 the students
        # are undefined (theory.partial_labels.pll_undefined_reason) and say so instead.
        "pll": (
            {m: losses["ce"][m] for m in ("linear", "exact")}
            if losses
            else {"undefined": pll_undefined_reason(LOSS_METHOD["ce"], spec.n_classes)}
        ),
        "pll_losses": losses
        or {
            loss: {"undefined": pll_undefined_reason(LOSS_METHOD[loss], spec.n_classes)}
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
    rep["spec"] = spec.to_dict()  # added by issue 23: rebuild the run with Spec.from_dict
    return rep
