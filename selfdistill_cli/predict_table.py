"""The text table of ``python -m theory predict`` (without ``--json``): a report for people.

:func:`table` formats the report of :func:`theory.report.predict_report`: one row per round
(linearised, exact and, with ``--dim``, the finite-p theories), the PLL students, the
conditions and the notes. An exact entry that missed its certificate is marked ``*``; a PLL
student whose engine solve stopped at a saddle is marked ``s``, with the saddle on a line below;
a linearised finite-p row more than 0.03 from the exact finite-ratio theory is marked ``!``; a
round whose population points tie between classes (counted as errors) is marked ``t``.
"""

from __future__ import annotations

import numpy as np

from theory.names import CONFIG_KEY
from theory.report import ACC_KEYS

__all__ = ["table"]


def _fmt(x):
    return "   -  " if x is None else f"{x:6.3f}"


def _cells(entry):
    mark = "*" if entry.get("converged") is False else " "
    if entry.get("population_ties"):
        mark = "t" if mark == " " else mark + "t"
    return " ".join(_fmt(entry[k]) for k in ACC_KEYS) + mark


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


def table(rep: dict) -> str:
    """The report as text, one line per round, student and note.

    Parameters
    ----------
    rep : dict
        A report of :func:`theory.report.predict_report` (its ``config`` completed with the
        label source by the command line).

    Returns
    -------
    str
        The table, lines joined by newlines (no final newline).
    """
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
        lin = _cells(row["linear"]).rstrip()
        line = f"{row['round']:>5} | {lin:<31} | {_cells(row['exact'])}"
        if "finite_exact" in row:
            line += " | " + " ".join(_fmt(row["finite_exact"][k]) for k in ACC_KEYS)
        if "finite" in row:
            line += " | " + " ".join(_fmt(row["finite"][k]) for k in ACC_KEYS)
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
            + " ".join(_fmt(pll[k]) for k in ACC_KEYS)
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
    tied = [row[m] for row in rep["rounds"] for m in ("linear", "exact")]
    tied += [rep["pll"][m] for m in ("linear", "exact") if m in rep["pll"]]
    tied += [e[m] for e in rep["pll_losses"].values() for m in ("linear", "exact") if m in e]
    if any(entry.get("population_ties") for entry in tied):
        lines.append(
            "t: population points tied between classes (counted as errors; population_ties in "
            "--json)"
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
