"""The verdict of ``python -m simulations probe``: does self-distillation help, can theory tell?

A practitioner asks two questions of the probe: *which method and round should I use, and what
does it gain?* and *can I trust the theory's predictions (e.g. the rounds to 100%) on my
features?* :func:`probe_verdict` answers both from a finished
:class:`simulations.probe.ProbeResult`:

1. **Best configuration, selected on validation only.** Among every configuration the probe ran
   (``lam`` x (teacher, SD round ``t``, each PLL student)), the one with the highest *mean
   validation* accuracy over trials (ties to the earliest in the order lam, teacher, rounds, PLL
   losses: the simplest model wins a tie). Its *test* gain over the teacher at the same ``lam``
   (same trial, then averaged) is reported with a 95% Student-t interval over trials,
   ``t_{0.975, T-1} s / sqrt(T)`` (none for a single trial). Test accuracy is never used to
   select.
2. **Does the theory fit?** At round 0 (the teacher: no distillation dynamics to blame yet) the
   block model fitted to the features predicts the training accuracy (w.r.t. the true labels)
   that the exact teacher reaches (``block_exact_train_acc``). If the measured mean differs by
   more than :data:`FIT_TOLERANCE` (or by more than two standard errors of the measured mean,
   whichever is larger), the block model does not describe these features and its round
   predictions (``min rounds to 100%``, the 100%-window) should not be relied on: a warning
   gives both numbers, and what the linearised label averaging on the features' *own* Gram matrix
   predicts instead (``linearised_train_acc``, which needs no block assumption).

The verdict is a JSON-able dict (``ProbeResult.to_json()['verdict']``) with a one-line ``text``
(``verdict: ...``) and a ``warning`` (``None`` when the theory fits).
"""

from __future__ import annotations

import math

from scipy import stats

from theory.names import METHOD_LABELS

__all__ = ["FIT_TOLERANCE", "probe_verdict"]

#: Largest |predicted - measured| round-0 training accuracy for which the block model is said to
#: fit the features. The group-level block theory is exact for block-structured features; on
#: real features it is an idealisation read to a few points of accuracy (the real-Gram
#: linearisation typically agrees to ~0.01 at round 0). Five points is far outside that, and
#: far outside trial-to-trial spread at the probe's default sizes (std ~0.01 on digits).
FIT_TOLERANCE = 0.05


def _ci95(stat) -> float | None:
    """95% Student-t half-width of a mean from ``{'mean', 'std', 'n'}`` (None for one value)."""
    n, std = stat.get("n", 1), stat.get("std")
    if std is None or n < 2:
        return None
    return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def _name(entry) -> str:
    if entry["method"] == "sd":
        return "teacher (round 0)" if entry["round"] == 0 else f"SD round {entry['round']}"
    return METHOD_LABELS.get(entry["method"], entry["method"])


def _best(per_config):
    """The configuration with the highest mean validation accuracy (ties: the first)."""
    best = None
    for entry in per_config:
        if best is None or entry["val_acc"]["mean"] > best["val_acc"]["mean"]:
            best = entry
    return best


def _theory_fit(summary, lam) -> dict | None:
    """Predicted vs measured round-0 training accuracy at ``lam`` (None without theory)."""
    th = next((e for e in summary.get("theory", []) if e["lam"] == lam), None)
    if th is None or "block_exact_train_acc" not in th:
        return None
    teacher = next(
        e
        for e in summary["per_config"]
        if e["lam"] == lam and e["method"] == "sd" and e["round"] == 0
    )
    measured = teacher["train_acc"]
    predicted = th["block_exact_train_acc"]["mean"][0]
    linear = th.get("linearised_train_acc", {}).get("mean", [None])[0]
    min_rounds = th.get("min_rounds")
    if isinstance(min_rounds, dict):  # the same kind of value in every trial: its mean
        min_rounds = min_rounds.get("mean")
    elif isinstance(min_rounds, list):  # None in some trial: report only a common value
        values = set(min_rounds)
        min_rounds = values.pop() if len(values) == 1 else None
    n, std = measured.get("n", 1), measured.get("std")
    se = std / math.sqrt(n) if std is not None and n > 1 else 0.0
    tol = max(FIT_TOLERANCE, 2.0 * se)
    diff = measured["mean"] - predicted
    return {
        "model": "block model fitted to the features (exact group-level theory)",
        "lam": lam,
        "predicted_train_acc_round0": predicted,
        "measured_train_acc_round0": measured["mean"],
        "difference": diff,
        "tolerance": tol,
        "fits": bool(abs(diff) <= tol),
        "real_gram_linearised_train_acc_round0": linear,
        "block_min_rounds_linear": min_rounds,
    }


def probe_verdict(summary: dict, config: dict) -> dict:
    """The verdict (module docstring) from a probe's ``summary`` and ``config`` dicts."""
    best = _best(summary["per_config"])
    gain = best["gain"]
    half = _ci95(gain)
    n = gain.get("n", 1)
    name = _name(best)
    if half is None:
        gain_text = f"test gain {gain['mean']:+.3f} over the teacher ({n} trial: no CI)"
    else:
        gain_text = (
            f"test gain {gain['mean']:+.3f} over the teacher "
            f"(95% CI {gain['mean'] - half:+.3f} to {gain['mean'] + half:+.3f}, {n} trials)"
        )
    if best["method"] == "sd" and best["round"] == 0:
        head = f"no distillation: the teacher (lam={best['lam']:g}) is best on validation"
        others = [e for e in summary["per_config"] if not (e["method"] == "sd" and e["round"] == 0)]
        if others:
            runner = _best(others)
            head += (
                f" (runner-up {_name(runner)}, lam={runner['lam']:g}: test gain "
                f"{runner['gain']['mean']:+.3f})"
            )
    else:
        head = f"{name} (lam={best['lam']:g}) is best on validation, {gain_text}"
    fit = _theory_fit(summary, best["lam"]) if config.get("theory", True) else None
    warning = None
    if fit is None:
        tail = "theory not computed (--no-theory)"
    elif fit["fits"]:
        tail = (
            f"the block model fits these features (training accuracy at round 0: predicted "
            f"{fit['predicted_train_acc_round0']:.3f}, measured "
            f"{fit['measured_train_acc_round0']:.3f})"
        )
    else:
        tail = "the block model does NOT fit these features (see the warning)"
        rounds = fit["block_min_rounds_linear"]
        lin = fit["real_gram_linearised_train_acc_round0"]
        warning = (
            "the block model does not fit these features: it predicts training accuracy "
            f"{fit['predicted_train_acc_round0']:.3f} at round 0, measured "
            f"{fit['measured_train_acc_round0']:.3f} (|difference| "
            f"{abs(fit['difference']):.3f} > {fit['tolerance']:.3f}); its round predictions"
            + ("" if rounds is None else f" (min rounds to 100%: {rounds:g})")
            + " do not apply here"
            + (
                ""
                if lin is None
                else f"; label averaging on the features' own Gram matrix predicts {lin:.3f}"
            )
        )
    return {
        "method": best["method"],
        "round": best["round"],
        "lam": best["lam"],
        "selected_on": "validation",
        "val_acc": best["val_acc"]["mean"],
        "test_acc": best["test_acc"]["mean"],
        "test_gain": {"mean": gain["mean"], "ci95": half, "n": n},
        "theory_fit": fit,
        "warning": warning,
        "text": f"verdict: {head}; {tail}",
    }
