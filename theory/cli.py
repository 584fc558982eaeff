"""``python -m theory predict``: block-model predictions from the command line.

Prints, for rounds ``0..R``, the linearised and exact group-level accuracies (training w.r.t. the
true labels: all / clean / mislabeled points; population), the PLL student's, and the conditions
(plurality, margin, rho, closed-form minimum round, 100%-window). Cost is independent of ``n``.

Invalid parameters print one line ``error: ...`` naming the parameter to stderr and exit with
code 2. JSON has no NaN/inf: undefined accuracies (e.g. no mislabeled points) and ``rho = inf``
(``c = 1``) are written as ``null``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from theory.cli_util import ArgumentParser
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
    predict_exact,
    predict_linear,
)
from theory.pll import predict_pll

__all__ = ["main", "parse_counts", "predict_report"]

_ACC_KEYS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")


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
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _accs(pred, t):
    return {key: _finite(getattr(pred, key)[t]) for key in _ACC_KEYS} | {"ties": int(pred.ties[t])}


def predict_report(model: BlockModel, counts, lam, rounds) -> dict:
    """The JSON-able report printed by ``python -m theory predict --json``."""
    lin = predict_linear(model, counts, lam, rounds)
    exa = predict_exact(model, counts, lam, rounds)
    pll = {m: predict_pll(model, counts, lam, method=m) for m in ("linear", "exact")}
    holds, margin = plurality_condition(counts)
    window = collapse_window_linear(model, counts, lam, rounds)
    return {
        "params": {
            "classes": model.n_classes,
            "per_class": model.per_class,
            "c": model.c,
            "d": model.d,
            "lam": float(lam),
            "rounds": int(rounds),
            "counts": np.asarray(counts).tolist(),
        },
        "rounds": [
            {"round": t, "linear": _accs(lin, t), "exact": _accs(exa, t)} for t in range(rounds + 1)
        ],
        "pll": {m: _accs(p, 0) | {"candidate_ties": p.candidate_ties} for m, p in pll.items()},
        "conditions": {
            "plurality": bool(holds),
            "margin": float(margin),
            "rho": _finite(eigen_ratio_rho(model, lam)),
            "t_min_linear": min_rounds_linear(model, counts, lam),
            "window_linear": None if window is None else list(window),
        },
        "max_exact_residual": float(max(exa.residuals.max(), pll["exact"].residuals.max())),
    }


def _fmt(x):
    return "   -  " if x is None else f"{x:6.3f}"


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
    for row in rep["rounds"]:
        cells = []
        for m in ("linear", "exact"):
            cells.append(" ".join(_fmt(row[m][k]) for k in _ACC_KEYS))
        lines.append(f"{row['round']:>5} | {cells[0]:<31} | {cells[1]}")
    for m in ("linear", "exact"):
        lines.append(f"PLL {m:<6}: " + " ".join(_fmt(rep["pll"][m][k]) for k in _ACC_KEYS))
    cond = rep["conditions"]
    lines.append(
        f"plurality={cond['plurality']} margin={cond['margin']:.4g} rho={_g(cond['rho'])} "
        f"t_min_linear={cond['t_min_linear']} window_linear={cond['window_linear']}"
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
    except (_UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        rep = predict_report(model, counts, args.lam, args.rounds)
    except GroupConvergenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(rep, indent=2) if args.json else _table(rep))
    return 0
