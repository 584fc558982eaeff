r"""Figure: exact softmax vs the linearisation — training accuracy per round at two values of λ.

Block model (``K`` classes of ``n`` points, ``c``, ``d``), symmetric label noise with exact counts.
Lines: group-level theory, exact (:func:`theory.groups.predict_exact`, solid) and linearised
(:func:`theory.spec.predict` with ``source='linear'``, dashed), for clean and mislabeled training
points (accuracy w.r.t. the TRUE labels). Markers: Monte Carlo simulation — Gaussian-mixture
features of dimension ``p`` (:mod:`figures.common`), exact training of every round, mean and 95% CI
over trials.

At the larger λ the outputs stay close to uniform and the two theories coincide; at the smaller λ
the outputs are far from uniform, the first-order expansion of softmax is no longer accurate and the
exact probe needs MORE rounds than the linearisation predicts. Panel (c) shows why: the largest
output difference between exact and linearised grows with the output spread (second order).

Check (fails loudly): simulation means agree with the EXACT theory within Monte Carlo error
(:func:`figures.common.check_mc_agreement`; where the theory has exact ties the admissible range
extends by the tied fraction, drawn as a translucent bar).

Why ``p = 10^8`` (paper preset ``10^9``): the theory drawn here (the exact softmax group theory,
whose gap to the linearisation is the point of the figure) exists only in the block limit (the
finite-``p`` theory, :mod:`theory.finite`, is linearised), so the simulation samples that limit on
random mixture features; the Gram fluctuations are ``~ 1e-4``. The agreement checks at realistic
``p`` (``N/2 .. 20 N``) against the finite-``p`` theory are in the figures ``finite_dimension`` and
``sd_generalization``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from figures import palette, style
from figures.common import (
    check_mc_agreement,
    figure_run,
    figure_spec,
    log,
    parse_args,
    prediction_bounds,
    prepare_output,
    result_mean_ci95,
    sample_columns,
    simulate_figure,
)
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix
from theory.spec import predict

NAME = "exact_vs_linear"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=8,
        c=0.4,
        d=0.1,
        eta=0.4,
        lams=(3e-3, 3e-4),
        rounds=4,
        dim=10**8,
        trials=2,
        n_test=5,
        lam_grid=5,
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        eta=0.5,
        lams=(3e-3, 3e-4),
        rounds=12,
        dim=10**8,
        trials=6,
        n_test=10,
        lam_grid=19,
    ),
    "paper": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        eta=0.5,
        lams=(3e-3, 3e-4),
        rounds=14,
        dim=10**9,
        trials=30,
        n_test=50,
        lam_grid=25,
    ),
}
KEYS = ("train_acc_clean", "train_acc_mislabeled")


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    p = PRESETS[preset]
    k, n, c, d, rounds = p["n_classes"], p["per_class"], p["c"], p["d"], p["rounds"]
    model = BlockModel(k, n, c, d)
    transition = transition_matrix("sym", k, p["eta"])
    counts = exact_counts(transition, n)
    # The exact theory directly: the check's admissible range needs its group outputs and exact
    # ties (figures.common.prediction_bounds), which a Result does not carry. The linearised
    # curve is an accuracy per round of the spec: a Result.
    theory = {
        lam: (
            predict_exact(model, counts, lam, rounds),
            predict(figure_spec(p, lam=lam), source="linear"),
        )
        for lam in p["lams"]
    }
    # The same experiments simulated at p = dim (exact SD on the sampled Gram matrices).
    results = simulate_figure(
        [figure_spec(p, lam=lam, dim=p["dim"]) for lam in p["lams"]],
        p["trials"],
        seed,
        workers,
        NAME,
        n_test=p["n_test"],
        exact_pop=False,  # only training accuracies are drawn: skip the exact pop. metric
    )
    sims = dict(zip(p["lams"], results, strict=True))
    trials = sample_columns(results, KEYS)  # {key: (T, lams, R+1)}
    samples, lower, upper, names = [], [], [], []
    bounds = {}
    for i, lam in enumerate(p["lams"]):
        for key in KEYS:
            samples.append(trials[key][:, i])
            lo, hi = prediction_bounds(theory[lam][0], key)
            bounds[lam, key] = hi
            lower.append(lo)
            upper.append(hi)
            names += [f"lam={lam:g} {key} t={t}" for t in range(rounds + 1)]
    check = check_mc_agreement(
        np.hstack(samples),
        np.concatenate(lower),
        upper=np.concatenate(upper),
        labels=names,
        what="exact_vs_linear: simulation vs exact group theory",
    )
    # Panel (c): linearisation error vs output spread over a lambda grid (teacher round); the
    # group outputs are not in a Result, so the theory is called directly.
    grid = np.logspace(-4.5, 0, p["lam_grid"])
    err, spread = [], []
    for lam in grid:
        ex = predict_exact(model, counts, lam, 0).outputs[0]
        li = predict_linear(model, counts, lam, 0).outputs[0]
        err.append(np.nanmax(np.abs(ex - li)))
        spread.append(np.nanmax(np.abs(ex - 1.0 / k)))
    return dict(
        params=p,
        theory=theory,
        upper=bounds,
        sims=sims,
        check=check,
        grid=grid,
        err=np.array(err),
        spread=np.array(spread),
    )


def plot(data: dict):
    p = data["params"]
    t = np.arange(p["rounds"] + 1)
    fig, axes = style.figure(3, 1, width=2.4, height=2.4)
    colors = {"train_acc_clean": palette.CLEAN, "train_acc_mislabeled": palette.MISLABELED}
    names = {"train_acc_clean": "clean points", "train_acc_mislabeled": "mislabeled points"}
    dodge = {"train_acc_clean": -0.18, "train_acc_mislabeled": 0.18}  # markers side by side
    for ax, lam, tag in zip(axes[:2], p["lams"], ("(a) larger", "(b) smaller"), strict=False):
        exact, linear = data["theory"][lam]
        for key in KEYS:
            col = colors[key]
            style.theory_line(ax, t, getattr(exact, key), color=col, drawstyle="steps-mid")
            style.theory_line(
                ax, t, linear.value(key), color=col, linear=True, drawstyle="steps-mid"
            )
            style.tie_ranges(
                ax, t, getattr(exact, key), data["upper"][lam, key], color=col, offset=dodge[key]
            )
            mean, half = result_mean_ci95(data["sims"][lam], key)
            style.sim_errorbar(
                ax, t + dodge[key], mean, half, color=col, marker="o", markersize=3.8
            )
        same = all(
            np.array_equal(getattr(exact, key), linear.value(key), equal_nan=True) for key in KEYS
        )
        if same:
            ax.text(
                0.97,
                0.5,
                "exact = linearised\n(lines coincide)",
                transform=ax.transAxes,
                ha="right",
                va="center",
            )
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("round $t$ (0 = teacher)")
        style.integer_ticks(ax)
        ax.set_title(f"{tag} λ = {lam:g}")
    axes[0].set_ylabel("training accuracy (true labels)")
    ax = axes[2]
    style.theory_line(
        ax,
        data["grid"],
        data["err"],
        color=palette.THEORY,
        marker="o",
        ms=2.5,
        label="max |$P_{ex} - P_{lin}$|",
    )
    ax.plot(
        data["grid"],
        data["spread"] ** 2,
        **{**palette.REFERENCE_STYLE, "lw": 1.4},
        label="(max |$P_{ex}$ − 1/K|)²",
    )
    for lam, tag in zip(p["lams"], ("a", "b"), strict=False):
        style.reference_line(ax, lam, f"({tag})", axis="x", pos=0.98, rotate=False)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Head-room for the labels of the λ lines (top) and the legend (bottom).
    ax.set_ylim(np.nanmin(data["err"]) / 100, 10 * float(np.nanmax(data["spread"] ** 2)))
    ax.set_xlabel("regularisation λ")
    ax.set_ylabel("teacher's outputs $P$")
    ax.set_title("(c) 2nd-order error; λ of (a), (b)")
    # An opaque box: the λ lines of (a) and (b) run through the legend's row otherwise.
    leg = ax.legend(loc="lower left", borderaxespad=0.1, handlelength=1.5, frameon=True)
    leg.get_frame().set(facecolor="white", edgecolor="none", alpha=1.0)
    handles = [
        Line2D([], [], color=colors[key], marker="o", ms=4, label=names[key]) for key in KEYS
    ]
    handles += style.encoding_handles(exact=True, linear=True, sim=True)
    tied = any(
        np.any(data["upper"][lam, key] > getattr(data["theory"][lam][0], key))
        for lam in p["lams"]
        for key in KEYS
    )
    if tied:  # only when a tie range is drawn
        handles.append(
            Line2D([], [], color="0.3", **style.TIE_RANGE_STYLE, label="exact tie: range")
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=3, handlelength=1.6)
    fig.suptitle(
        f"Exact vs linearised (K={p['n_classes']}, n={p['per_class']}, c={p['c']}, d={p['d']}, "
        f"sym. noise η={p['eta']}); simulation: mixture p={style.fmt_count(p['dim'])}, "
        f"{p['trials']} trials"
    )
    return fig


def table(data: dict) -> list[dict]:
    p = data["params"]
    rows = []
    for lam in p["lams"]:
        exact, linear = data["theory"][lam]
        for key in KEYS:
            mean, half = result_mean_ci95(data["sims"][lam], key)
            for t in range(p["rounds"] + 1):
                rows.append(
                    dict(
                        panel="accuracy",
                        lam=lam,
                        metric=key,
                        round=t,
                        exact_theory=getattr(exact, key)[t],
                        linear_theory=linear.value(key)[t],
                        sim_mean=mean[t],
                        sim_ci95=half[t],
                        trials=p["trials"],
                        dim=p["dim"],
                    )
                )
    for lam, e, s in zip(data["grid"], data["err"], data["spread"], strict=False):
        rows.append(dict(panel="linearisation_error", lam=lam, max_abs_error=e, spread=s))
    return rows


@figure_run(NAME)
def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    out = prepare_output(out)
    data = compute(preset, seed, workers)
    log(
        f"  {NAME}: {data['check']['n_comparisons']} sim-vs-exact-theory comparisons agree "
        f"(max excess over tolerance {data['check']['max_excess']:.3g})"
    )
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    return 0


def main(argv=None) -> int:
    args = parse_args(
        argv, "Exact vs linearised training accuracy figure", PRESETS, module=__spec__.name
    )
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
