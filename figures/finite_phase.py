r"""Figure: the finite-dimension phase diagram of self-distillation over ``(N/p, t)``.

Gaussian mixture (``K`` classes, ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``), symmetric label noise
with exact counts. Heat maps: population accuracy of the linearised round-``t`` probe predicted by
the finite-``p`` theory (:func:`theory.finite.predict_finite`, docs/theory.md §11) over
the feature ratio ``N/p`` (0 = the block limit ``p = inf``) and the round ``t``, for a small and a
larger ``lam``; white line: the round of best population accuracy
(:func:`theory.finite.population_rounds`), dashed: the first round with accuracy ``>= 1 - delta``.
At small ``lam`` the rounds needed grow with ``N/p``; at the larger ``lam`` too many rounds collapse
every prediction onto the top eigenvector (the finite-``p`` collapse of §11.8). Right panel: the
best round against ``N/p`` for several ``lam``.

Check (fails loudly): at a few grid points the linearised Monte Carlo on exactly sampled Gram
matrices (:mod:`simulations.linear_trials`) agrees with the theory within Monte Carlo error
(:func:`figures.common.check_mc_agreement`); the markers on the heat maps show where.
"""

from __future__ import annotations

import math

import numpy as np

from figures import style
from figures.common import check_mc_agreement, log, parse_args
from simulations.linear_trials import LinearTrial, run_linear_trials
from theory.finite import MixtureModel, population_rounds, predict_finite
from theory.noise import exact_counts, transition_matrix

NAME = "finite_phase"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=10,
        c=0.4,
        d=0.1,
        eta=0.4,
        lams=(1e-3, 1e-2),
        rounds=4,
        ratios=(0.0, 0.5, 1.0),
        best_lams=(1e-3, 1e-2),
        checks=((1.0, 1),),
        trials=4,
        delta=0.01,
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        eta=0.5,
        lams=(1e-3, 1e-2),
        rounds=20,
        ratios=(0.0, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
        best_lams=(3e-4, 1e-3, 3e-3, 1e-2),
        checks=((1.0, 3), (2.0, 10), (0.5, 20)),
        trials=12,
        delta=0.01,
    ),
    "paper": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        eta=0.5,
        lams=(1e-3, 1e-2),
        rounds=30,
        ratios=(0.0, 0.0625, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
        best_lams=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
        checks=((0.5, 3), (1.0, 3), (2.0, 10), (0.5, 20), (1.0, 30)),
        trials=40,
        delta=0.01,
    ),
}


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    p = PRESETS[preset]
    k, n, c, d, rounds = (p[x] for x in ("n_classes", "per_class", "c", "d", "rounds"))
    big_n = k * n
    transition = transition_matrix("sym", k, p["eta"])
    counts = exact_counts(transition, n)
    preds = {}  # one prediction per (lam, N/p), shared by the heat maps and the best rounds
    for lam in sorted(set(p["lams"]) | set(p["best_lams"])):
        for ratio in p["ratios"]:
            dim = math.inf if ratio == 0 else max(k, int(round(big_n / ratio)))
            preds[lam, ratio] = predict_finite(MixtureModel(k, n, dim, c, d), counts, lam, rounds)
    maps = {}
    for lam in p["lams"]:
        rows = [preds[lam, ratio] for ratio in p["ratios"]]
        maps[lam] = {
            "ratios": np.asarray(p["ratios"], dtype=float),
            "dims": np.array([r.model.dim for r in rows], dtype=float),
            "population_acc": np.array([r.population_acc for r in rows]),
            "train_acc_mislabeled": np.array([r.train_acc_mislabeled for r in rows]),
        }
    best = {}
    for lam in p["best_lams"]:
        rows = [population_rounds(preds[lam, ratio], p["delta"]) for ratio in p["ratios"]]
        best[lam] = [(r.best_round, r.first_round_above, r.gain) for r in rows]
    # Monte Carlo check at a few (N/p, t) points of the first heat map
    lam = p["lams"][0]
    samples, theory, labels = [], [], []
    for ratio, t in p["checks"]:
        dim = int(round(big_n / ratio))
        spec = LinearTrial(k, n, dim, c, d, lam, rounds, tuple(map(tuple, transition)))
        mc = run_linear_trials(spec, p["trials"], base_seed=seed)
        samples.append(mc["pop_acc"][:, t])
        i = list(p["ratios"]).index(ratio)
        theory.append(maps[lam]["population_acc"][i, t])
        labels.append(f"pop_acc N/p={ratio:g} t={t} lam={lam:g}")
    check = check_mc_agreement(
        np.column_stack(samples),
        np.array(theory),
        labels=labels,
        what="finite_phase: linearised Monte Carlo vs finite-p theory",
    )
    return dict(
        params=p,
        maps=maps,
        best=best,
        check=check,
        checks=p["checks"],
        mc_means=check["mean"],
        big_n=big_n,
    )


def plot(data: dict):
    p = data["params"]
    lams = p["lams"]
    fig, axes = style.figure(len(lams) + 1, 1, width=3.3, height=3.0)
    rounds = np.arange(p["rounds"] + 1)
    ratios = np.asarray(p["ratios"])
    ypos = np.arange(ratios.size)
    image = None
    for ax, lam in zip(axes[: len(lams)], lams, strict=True):
        acc = data["maps"][lam]["population_acc"]
        image = ax.imshow(
            acc,
            origin="lower",
            aspect="auto",
            vmin=0.0,
            vmax=1.0,
            cmap="viridis",
            extent=(-0.5, rounds[-1] + 0.5, -0.5, ratios.size - 0.5),
        )
        best = [population_rounds_from(acc[i], p["delta"]) for i in range(ratios.size)]
        ax.plot([b[0] for b in best], ypos, color="white", lw=1.4, label="best round")
        first = [(b[1] if b[1] is not None else np.nan) for b in best]
        ax.plot(first, ypos, color="white", lw=1.2, ls="--", label=f"first ≥ {1 - p['delta']:g}")
        ax.set_yticks(ypos, ["p=∞" if r == 0 else f"{r:g}" for r in ratios])
        ax.set_xlabel("round $t$")
        ax.set_ylabel("$N/p$")
        ax.set_title(f"population accuracy, λ={lam:g}")
        if lam == lams[0]:
            for (ratio, t), mean in zip(data["checks"], data["mc_means"], strict=True):
                i = list(ratios).index(ratio)
                ax.plot(t, i, marker="o", mfc="none", mec="red", ms=7)
                ax.annotate(
                    f"MC {mean:.2f}",
                    (t, i),
                    textcoords="offset points",
                    xytext=(4, 4),
                    color="red",
                    fontsize=6,
                )
        ax.legend(loc="upper right", fontsize=6, framealpha=0.6)
    fig.colorbar(image, ax=axes[: len(lams)], shrink=0.8, label="accuracy")
    ax = axes[-1]
    x = np.asarray(ratios)
    for j, lam in enumerate(p["best_lams"]):
        rows = data["best"][lam]
        col = style.ROUND_COLORS[j % len(style.ROUND_COLORS)]
        ax.plot(x, [r[0] for r in rows], color=col, marker="o", ms=3, label=f"best, λ={lam:g}")
        ax.plot(x, [np.nan if r[1] is None else r[1] for r in rows], color=col, ls="--", lw=1)
    ax.set_xlabel("$N/p$ (0 = block limit)")
    ax.set_ylabel("round")
    ax.set_title(f"best (solid), first ≥ {1 - p['delta']:g} (dashed)")
    ax.legend(fontsize=6)
    fig.suptitle(
        f"Finite-p phase diagram (linearised theory, §11): K={p['n_classes']}, n={p['per_class']}, "
        f"c={p['c']}, d={p['d']}, sym. noise η={p['eta']}",
        fontsize=9,
    )
    return fig


def population_rounds_from(acc, delta):
    """(best round, first round >= 1 - delta or None) of one accuracy row."""
    acc = np.asarray(acc)
    above = np.flatnonzero(acc >= 1.0 - delta)
    return int(np.argmax(acc)), (int(above[0]) if above.size else None)


def table(data: dict) -> list[dict]:
    """Heat-map cells (kind "map") and best rounds (kind "best"); NaN where not applicable."""
    p = data["params"]
    nan = math.nan
    rows = []
    for lam, m in data["maps"].items():
        for i, ratio in enumerate(m["ratios"]):
            for t in range(p["rounds"] + 1):
                rows.append(
                    dict(
                        kind="map",
                        lam=float(lam),
                        ratio=float(ratio),
                        dim=float(m["dims"][i]),
                        round=t,
                        population_acc=float(m["population_acc"][i, t]),
                        mislabeled_acc=float(m["train_acc_mislabeled"][i, t]),
                        best_round=nan,
                        first_round_above=nan,
                        gain=nan,
                    )
                )
    for lam, best in data["best"].items():
        for ratio, (b, first, gain) in zip(p["ratios"], best, strict=True):
            rows.append(
                dict(
                    kind="best",
                    lam=float(lam),
                    ratio=float(ratio),
                    dim=nan,
                    round=nan,
                    population_acc=nan,
                    mislabeled_acc=nan,
                    best_round=float(b),
                    first_round_above=nan if first is None else float(first),
                    gain=float(gain),
                )
            )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv, "Finite-p phase diagram over (N/p, t)", PRESETS)
    data = compute(args.preset, args.seed, args.workers)
    log(
        f"  {NAME}: linearised Monte Carlo agrees with the finite-p theory "
        f"({data['check']['n_comparisons']} comparisons)"
    )
    style.save_figure(plot(data), args.out, NAME)
    style.write_csv(table(data), args.out, NAME)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
