"""``python -m theory predict`` (and ``selfdistill predict``): block-model predictions from the
command line.

Prints, for rounds ``0..R``, the linearised and exact group-level accuracies (training w.r.t. the
true labels: all / clean / mislabeled points; population), the PLL student's (two-hot
cross-entropy, and every candidate-set loss of :mod:`theory.losses`), and the conditions
(plurality, margin, rho, closed-form minimum round, 100%-window). Cost is independent of ``n``.
The numbers come from :func:`theory.report.predict_report` (pure computation, no I/O) on one
:class:`theory.spec.Spec` made from the arguments, i.e. from :func:`theory.spec.predict`; this
module reads the arguments, refuses what would not fit in memory or time, and prints the report
(as a table, :mod:`selfdistill_cli.predict_table`, or as JSON). The JSON's ``spec`` is that
Spec (:meth:`theory.spec.Spec.to_dict`): ``predict(Spec.from_dict(report["spec"]), source)``
gives its numbers again in Python.

Invalid parameters print one line ``error: ...`` naming the parameter to stderr and exit with
code 2 (``lam`` must lie in ``[1e-12, 1e12]``, :func:`theory.validation.check_lam`; ``K n <= 2^53``;
``K < p <= 1e7 K n``, :data:`theory.finite.model.MAX_DIM_RATIO`); so does a problem whose
estimated memory exceeds the memory available
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

from selfdistill_cli import ArgumentParser
from selfdistill_cli.limits import check_time, parse_max_time
from selfdistill_cli.memory import check_memory, parse_max_memory
from selfdistill_cli.predict_table import table
from theory.groups import BlockModel, GroupConvergenceError, check_counts
from theory.names import CONFIG_KEY, DEFAULT_Q, MODEL_DEFAULTS, NOISE_KINDS, ROUNDS_HELP
from theory.report import (
    FINITE_EXACT_POINTS,
    FiniteExactFailed,
    estimated_seconds,
    predict_report,
    resource_estimate,
    worst_case_estimate,
)
from theory.spec import Spec
from theory.validation import LAM_MAX, LAM_MIN, MAX_SAMPLES, check_lam

#: ``--delta``: the finite-p report's first round with population accuracy ``>= 1 - delta``.
DEFAULT_DELTA = 0.01

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "FINITE_EXACT_SECONDS",
    "PROGRESS_FLOPS",
    "build_parser",
    "check_finite_exact_resources",
    "check_finite_resources",
    "check_resources",
    "main",
    "parse_counts",
]


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


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m theory``: one sub-command, ``predict``, with the model options.

    Returns
    -------
    argparse.ArgumentParser
        Usage errors raise ``_UsageError`` (printed as one line by :func:`main`).
    """
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
        help="feature dimension p > K, up to 1e7 N: add the finite-p theories on the Gaussian "
        "mixture: the exact finite-ratio theory of cross-entropy SD (docs/theory.md section 16) "
        "and the linearised one (section 11), flagged where it departs from the exact one",
    )
    q.add_argument(
        "--delta",
        type=float,
        default=None,
        help="with --dim: report the first round with population accuracy >= 1 - delta "
        f"(default {DEFAULT_DELTA:g})",
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


#: Default limit of ``--max-time``: ``theory predict`` is a calculator (the README's K = 200
#: report takes ~20-50 s); a longer report is refused unless asked for.
DEFAULT_MAX_SECONDS = 120.0


def check_finite_resources(n_classes, rounds, available=None, counts=None) -> None:
    """Refuse (one-line ``ValueError`` with the estimate) a finite-p theory that cannot fit in
    memory; its time counts in the report's estimate (:func:`estimated_seconds`).

    ``counts``: the count matrix; with a class symmetry (equal diagonal and equal off-diagonal
    counts, or a circulant matrix) the theory's orbit path is estimated instead of the general
    one (:func:`theory.finite.finite_resource_estimate`).
    """
    from theory.finite import finite_resource_estimate

    mem, flops = finite_resource_estimate(n_classes, rounds, counts)
    check_memory(
        mem,
        "the finite-p theory",
        available,
        message=lambda mem, avail: (
            f"the finite-p theory at K={n_classes} with {rounds} rounds needs an estimated "
            f"{mem / 1e9:.3g} GB (> {avail / 1e9:.3g} GB available) and about {flops:.2g} "
            "floating-point operations (general counts cost ~K^4, symmetric or circulant ones "
            "far less); reduce --classes or --rounds, drop --dim, or pass --max-memory GB to "
            "override"
        ),
    )


def check_resources(
    model: BlockModel, counts, rounds, available=None, max_seconds=None, finite_flops=0.0
) -> None:
    """Raise ``ValueError`` (one line, with the estimates) if the report cannot fit in memory or
    would take longer than ``max_seconds`` (default :data:`DEFAULT_MAX_SECONDS`)."""
    mem, flops = resource_estimate(model, counts, rounds)
    _check_estimates(model.n_classes, rounds, mem, flops, available, max_seconds, finite_flops)


def _check_estimates(k, rounds, mem, flops, available=None, max_seconds=None, finite_flops=0.0):
    check_memory(
        mem,
        "the report",
        available,
        message=lambda mem, avail: (
            f"K={k} with {rounds} rounds needs an estimated {mem / 1e9:.3g} GB "
            f"(> {avail / 1e9:.3g} GB available) and about {flops:.2g} floating-point "
            "operations; reduce --classes or --rounds, or pass --max-memory GB to override"
        ),
    )
    limit = DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds
    seconds = estimated_seconds(flops, rounds, finite_flops)
    what = f"the report for K={k} with {rounds} rounds"
    if finite_flops > flops:
        what = f"the finite-p theory at K={k} with {rounds} rounds (--dim)"
    check_time(seconds, what, limit, "--max-time")


#: Typical seconds above which the exact finite-ratio theory is refused up front (minutes).
FINITE_EXACT_SECONDS = 300.0


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
    if max_seconds is None:
        too_slow = est["seconds"] > FINITE_EXACT_SECONDS
    else:
        too_slow = est["seconds"] + other_seconds > max_seconds
    refusal = (
        f"the exact finite-ratio theory at K={model.n_classes} with {rounds} rounds would "
        f"take about {est['seconds']:.3g} s and {est['bytes'] / 1e9:.3g} GB "
        f"({est['groups']} groups integrated, {est['points']} points each; count matrix "
        f"symmetry: {est['symmetry']}); pass --no-finite-exact, fewer --points or --rounds, "
        "or --max-time SECONDS / --max-memory GB to override"
    )
    if too_slow:
        raise ValueError(refusal)
    check_memory(
        est["bytes"], "the exact finite-ratio theory", available, message=lambda *_: refusal
    )


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
    if args.dim is None:
        given = [
            flag
            for flag, value in (
                ("--delta", args.delta),
                ("--points", args.points),
                ("--no-finite-exact", args.no_finite_exact or None),
            )
            if value is not None
        ]
        if given:  # they would be ignored silently
            raise ValueError(f"{', '.join(given)}: only with --dim (the finite-p theories)")
    if args.delta is None:
        args.delta = DEFAULT_DELTA
    if not (math.isfinite(args.delta) and 0 < args.delta < 1):
        raise ValueError(f"delta must lie in (0, 1), got {args.delta}")
    from theory.finite import FINITE_MAX_ROUNDS  # lazy: the finite-p theory is optional
    from theory.finite.model import MAX_DIM_RATIO

    top = min(MAX_SAMPLES, int(MAX_DIM_RATIO * args.classes * args.per_class))
    if args.dim is not None and not args.classes < args.dim <= top:
        raise ValueError(
            f"dim (p) must be an integer in (K, 1e7 N] = ({args.classes}, {top}] (the finite-p "
            f"theory's noise bulk has p - K dimensions; beyond 1e7 N its corrections to the "
            f"block limit are below its resolution: omit --dim), got {args.dim}"
        )

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


def _spec(args, counts) -> Spec:
    """The run as a :class:`theory.spec.Spec` (after the resource checks): the report computes
    every number from it, and ``--json`` prints it under ``spec`` (``Spec.from_dict``).

    ``--noise`` maps to ``noise``/``eta`` (and ``--groups`` to ``groups``: the spec builds the
    same exact counts with the same functions); ``--counts`` maps to ``counts``. ``--delta``,
    ``--points`` and ``--no-finite-exact`` are options of the report and of the theories, not of
    the run, and ``--max-memory``/``--max-time`` limits of this command: none is part of a Spec.
    """
    labels = args.labels
    if labels["noise"] is None:  # --counts
        noise = {"counts": counts}
    else:
        noise = {"noise": labels["noise"], "eta": labels["eta"]}
        if labels["groups"] is not None:
            noise["groups"] = labels["groups"]
    dim = math.inf if args.dim is None else args.dim
    return Spec(
        n_classes=args.classes,
        per_class=args.per_class,
        c=args.c,
        d=args.d,
        lam=args.lam,
        rounds=args.rounds,
        dim=dim,
        q=args.q,
        **noise,
    )


def _max_memory(value) -> int | None:
    """``--max-memory GB`` in whole bytes (``None``: the memory available now)."""
    limit = parse_max_memory(value)
    return None if limit is None else int(limit)


def _finite_flops(args, counts=None) -> float:
    if args.dim is None:
        return 0.0
    from theory.finite import finite_resource_estimate

    return finite_resource_estimate(args.classes, args.rounds, counts)[1]


def main(argv=None) -> int:
    parser = build_parser()
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
        spec = _spec(args, counts)
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
            spec,
            log=log,
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
    print(json.dumps(rep, indent=2) if args.json else table(rep))
    if rep["unconverged"]:
        print(
            f"warning: {len(rep['unconverged'])} exact entries did not reach their certificate "
            "(marked *; JSON 'unconverged')",
            file=sys.stderr,
        )
    return 0
