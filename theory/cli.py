"""``python -m theory predict``: block-model predictions from the command line.

Prints, for rounds ``0..R``, the linearised and exact group-level accuracies (training w.r.t. the
true labels: all / clean / mislabeled points; population), the PLL student's (two-hot
cross-entropy, and every candidate-set loss of :mod:`theory.losses`), and the conditions
(plurality, margin, rho, closed-form minimum round, 100%-window). Cost is independent of ``n``.

Invalid parameters print one line ``error: ...`` naming the parameter to stderr and exit with
code 2; so does a problem whose estimated memory exceeds the memory available (the message gives
the memory and time estimates). JSON has no NaN/inf: undefined accuracies (e.g. no mislabeled
points) and ``rho = inf`` (``c = 1``) are written as ``null``.

Partial results: an exact solve that misses its certificate (e.g. at ``lam <= 1e-7``) does not
drop the report. Its entry carries ``"converged": false`` and its residual, the JSON lists it under
``unconverged`` (entry, residual, target), the table marks it with ``*``, and one warning line
goes to stderr; the exit code stays 0. A round trained on an uncertified round is uncertified too.
Long runs (estimated above ``PROGRESS_FLOPS``) print ``progress: ...`` lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from selfdistill_cli import ArgumentParser, available_bytes
from theory.conditions import (
    collapse_window_linear,
    eigen_ratio_rho,
    min_rounds_linear,
    plurality_condition,
)
from theory.groups import (
    BlockModel,
    GroupConvergenceError,
    check_counts,
    newton_build_flops,
    predict_exact,
    predict_linear,
    prediction_memory_bytes,
)
from theory.losses import LOSSES
from theory.pll import LinearisationUndefinedError, predict_pll

__all__ = [
    "check_finite_resources",
    "check_resources",
    "main",
    "parse_counts",
    "predict_report",
    "resource_estimate",
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


def parse_counts(text: str) -> np.ndarray:
    """Parse ``"r1;r2;..."`` (rows = true class, comma-separated given-label counts)."""
    try:
        rows = [[int(v) for v in row.split(",")] for row in text.strip().strip(";").split(";")]
    except ValueError:
        raise ValueError(
            f"counts must be rows of comma-separated integers separated by ';', got {text!r}"
        ) from None
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"counts rows must all have the same length, got {text!r}")
    return np.array(rows, dtype=np.int64)


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m theory", description="Block-model self-distillation theory.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    q = sub.add_parser("predict", help="per-round predictions, PLL student and conditions")
    q.add_argument("--classes", type=int, required=True, help="K >= 2")
    q.add_argument("--per-class", type=int, required=True, help="n >= 1 points per class")
    q.add_argument("--c", type=float, required=True, help="within-class correlation, d < c <= 1")
    q.add_argument("--d", type=float, required=True, help="across-class correlation, d < c")
    q.add_argument("--lam", type=float, required=True, help="regularisation lam > 0")
    q.add_argument("--rounds", type=int, default=10, help="last round R >= 0 (default 10)")
    q.add_argument(
        "--counts", help='count matrix "r1;r2;...": row k = given-label counts of class k'
    )
    q.add_argument(
        "--noise",
        choices=("sym", "asym", "pair"),
        help="build exact counts from theory.noise (largest-remainder rounding per row)",
    )
    q.add_argument("--eta", type=float, help="noise rate in [0, 1] (with --noise)")
    q.add_argument(
        "--q", type=float, default=0.7, help="GCE exponent in (0, 1] for the gce student (0.7)"
    )
    q.add_argument(
        "--dim",
        type=int,
        help="feature dimension p >= K: add the finite-p theory of the linearised dynamics on "
        "the Gaussian mixture (docs/theory.md section 11)",
    )
    q.add_argument(
        "--delta",
        type=float,
        default=0.01,
        help="with --dim: report the first round with population accuracy >= 1 - delta (0.01)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
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


def _student(pred):
    out = _accs(pred, 0) | {"candidate_ties": pred.candidate_ties}
    if pred.second_order is not None:
        out["second_order"] = {
            "negative_eigenvalues": pred.second_order[0],
            "groups_with_negative_within_group_curvature": pred.second_order[1],
            "local_minimum": pred.second_order == (0, 0),
        }
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


def resource_estimate(model: BlockModel, counts, rounds) -> tuple[int, float]:
    """``(bytes, flops)`` estimated for :func:`predict_report` (before anything is allocated).

    Memory: the linear and the exact predictions of ``R + 1`` rounds (kept together) plus the
    working set of one rank-3 (GCE) structured Newton solve. Time: about ``R + 12`` structured
    inverse builds (one or two per exact solve; the preconditioner is shared between rounds).
    """
    rounds = int(rounds)
    mem = prediction_memory_bytes(model, counts, rounds, rank=3)
    mem += 8 * (rounds + 1) * model.n_classes**3  # the linear prediction
    flops = (rounds + 12) * newton_build_flops(model, counts, rank=3)
    return int(mem), float(flops)


def _available_memory() -> int | None:
    """Bytes of memory available now (:func:`selfdistill_cli.available_bytes`), None if unknown."""
    return available_bytes()[0]


#: Operations above which the finite-p theory is refused (minutes on a laptop core).
FINITE_MAX_FLOPS = 2e11


def check_finite_resources(n_classes, rounds, available=None, counts=None) -> None:
    """Refuse (one-line ``ValueError`` with the estimates) a finite-p theory that cannot run.

    ``counts``: the count matrix; with a class symmetry (equal diagonal and equal off-diagonal
    counts, or a circulant matrix) the theory's orbit path is estimated instead of the general
    one (:func:`theory.finite.finite_resource_estimate`).
    """
    from theory.finite import finite_resource_estimate

    mem, flops = finite_resource_estimate(n_classes, rounds, counts)
    avail = _available_memory() if available is None else available
    if (avail is not None and mem > avail) or flops > FINITE_MAX_FLOPS:
        raise ValueError(
            f"the finite-p theory at K={n_classes} with {rounds} rounds needs an estimated "
            f"{mem / 1e9:.3g} GB and about {flops:.2g} floating-point operations (limit "
            f"{FINITE_MAX_FLOPS:.0e}); it is meant for K up to about 25 with general counts and "
            "a few hundred with symmetric or circulant counts: reduce --classes or --rounds, or "
            "drop --dim"
        )


def check_resources(model: BlockModel, counts, rounds, available=None) -> None:
    """Raise ``ValueError`` (one line, with both estimates) if the report cannot fit in memory."""
    mem, flops = resource_estimate(model, counts, rounds)
    avail = _available_memory() if available is None else available
    if avail is not None and mem > avail:
        raise ValueError(
            f"K={model.n_classes} with {rounds} rounds needs an estimated {mem / 1e9:.3g} GB "
            f"(> {avail / 1e9:.3g} GB available) and about {flops:.2g} floating-point "
            "operations; reduce --classes or --rounds"
        )


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


def predict_report(
    model: BlockModel,
    counts,
    lam,
    rounds,
    *,
    q: float = 0.7,
    log=None,
    dim: int | None = None,
    delta: float = 0.01,
) -> dict:
    """The JSON-able report printed by ``python -m theory predict --json``.

    With ``dim``, every round also carries ``finite`` (the finite-``p`` linearised theory on the
    Gaussian mixture of that dimension, same count matrix) and the report a ``finite`` summary
    (the ratio ``N/p``, the bulk-averaged eigen-weights and the population-round conditions).

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
    for loss in LOSSES:
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
    window = collapse_window_linear(model, counts, lam, rounds)
    finite = None
    if dim is not None:
        per_round, finite = _finite_report(model, counts, lam, rounds, dim, delta)
        for row, entry in zip(rows, per_round, strict=True):
            row["finite"] = entry
        say("finite-p theory done")
    rep = {
        "params": {
            "classes": model.n_classes,
            "per_class": model.per_class,
            "c": model.c,
            "d": model.d,
            "lam": float(lam),
            "rounds": int(rounds),
            "q": float(q),
            "counts": np.asarray(counts).tolist(),
        },
        "rounds": rows,
        # Today's PLL student (two-hot cross-entropy) = pll_losses.ce.
        "pll": {m: losses["ce"][m] for m in ("linear", "exact")},
        "pll_losses": losses,
        "conditions": {
            "plurality": bool(holds),
            "margin": float(margin),
            "rho": _finite(eigen_ratio_rho(model, lam)),
            "t_min_linear": min_rounds_linear(model, counts, lam),
            "window_linear": None if window is None else list(window),
        },
        "max_exact_residual": float(max(residuals)),
        "unconverged": unconverged,
    }
    if finite is not None:
        rep["finite"] = finite
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


def _table(rep: dict) -> str:
    p = rep["params"]
    lines = [
        f"K={p['classes']} n={p['per_class']} c={p['c']} d={p['d']} lam={p['lam']:g}",
        *_counts_lines(p["counts"]),
        "accuracy: train = w.r.t. true labels (all / clean / mislabeled); pop = population",
        f"{'round':>5} | {'linear: train clean  mis    pop':<31} | exact: train clean  mis    pop",
    ]
    if "finite" in rep:
        lines[-1] += f" | finite p={rep['finite']['dim']}: train clean mis  pop"
    for row in rep["rounds"]:
        lin = " ".join(_fmt(row["linear"][k]) for k in _ACC_KEYS)
        line = f"{row['round']:>5} | {lin:<31} | {_cells(row['exact'])}"
        if "finite" in row:
            line += " | " + " ".join(_fmt(row["finite"][k]) for k in _ACC_KEYS)
        lines.append(line)
    for m in ("linear", "exact"):
        lines.append(f"PLL {m:<6}: " + _cells(rep["pll"][m]))
    for loss, entry in rep["pll_losses"].items():
        lin = _cells(entry["linear"]) if "linear" in entry else f"{'(linearisation undefined)':<28}"
        name = f"{loss} (q={p['q']:g})" if loss == "gce" else loss
        lines.append(f"PLL {name:<11} linear {lin}| exact {_cells(entry['exact'])}")
    cond = rep["conditions"]
    lines.append(
        f"plurality={cond['plurality']} margin={cond['margin']:.4g} rho={_g(cond['rho'])} "
        f"t_min_linear={cond['t_min_linear']} window_linear={cond['window_linear']}"
    )
    if "finite" in rep:
        fc = rep["finite"]["conditions"]
        first = fc["first_round_population_above"]
        lines.append(
            f"finite p={rep['finite']['dim']} (N/p={rep['finite']['ratio']:.3g}, linearised): "
            f"best population round {fc['best_population_round']} "
            f"({fc['best_population_acc']:.3f}, gain {fc['population_gain']:+.3f}); "
            f"first round >= {1 - fc['delta']:g}: {'none' if first is None else first}"
        )
    if rep["unconverged"]:
        lines.append(
            "* not converged: "
            + ", ".join(f"{u['entry']} (residual {u['residual']:.2g})" for u in rep["unconverged"])
        )
    return "\n".join(lines)


def _model_and_counts(args):
    if args.lam is None or not math.isfinite(args.lam) or args.lam <= 0:
        raise ValueError(f"lam must be a finite number > 0, got {args.lam}")
    if args.classes < 2:
        raise ValueError(f"classes (K) must be >= 2, got {args.classes}")
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
    if args.dim is not None:
        from theory.finite import MixtureModel

        if args.dim < args.classes:
            raise ValueError(f"dim (p) must be an integer >= K = {args.classes}, got {args.dim}")
        MixtureModel(args.classes, args.per_class, args.dim, args.c, args.d)  # mixture exists
    model = BlockModel(args.classes, args.per_class, args.c, args.d)
    if (args.counts is None) == (args.noise is None):
        raise ValueError("pass exactly one of --counts or --noise (with --eta)")
    if args.counts is not None:
        counts = parse_counts(args.counts)
    else:
        if args.eta is None:
            raise ValueError("eta is required with --noise (a rate in [0, 1])")
        from theory.noise import exact_counts, transition_matrix

        counts = exact_counts(transition_matrix(args.noise, args.classes, args.eta), args.per_class)
    return model, check_counts(counts, model)


def main(argv=None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        model, counts = _model_and_counts(args)
        check_resources(model, counts, args.rounds)
        if args.dim is not None:
            check_finite_resources(model.n_classes, args.rounds, counts=counts)
    except (_UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from theory.finite import FinitePrecisionError

    log = None
    _, flops = resource_estimate(model, counts, args.rounds)
    if flops > PROGRESS_FLOPS:  # long run (about K >= 150): progress lines on stderr

        def log(msg):
            print(f"progress: {msg}", file=sys.stderr, flush=True)

    try:
        rep = predict_report(
            model, counts, args.lam, args.rounds, q=args.q, log=log, dim=args.dim, delta=args.delta
        )
    except GroupConvergenceError as exc:  # pragma: no cover - every solve allows partial results
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FinitePrecisionError as exc:  # --dim: many rounds at large K (theory.finite)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(rep, indent=2) if args.json else _table(rep))
    if rep["unconverged"]:
        print(
            f"warning: {len(rep['unconverged'])} exact entries did not reach their certificate "
            "(marked *; JSON 'unconverged')",
            file=sys.stderr,
        )
    return 0
