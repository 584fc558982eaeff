r"""Figure: finite feature dimension — accuracy against ``p`` converging to the ``p → ∞`` theory.

Gaussian mixture (``K`` classes, ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``, isotropic noise of total
variance ``1 - c``) whose Gram matrix tends to the block model as ``p → ∞``; symmetric label noise
with exact counts. Markers: Monte Carlo simulation (mean and 95% CI over trials, every model
trained exactly; :mod:`figures.common` samples the Gram matrix exactly for any ``p``). Horizontal
lines: the exact group-level theory of the block model (the ``p → ∞`` limit) for the teacher, the
SD round ``t*`` and the PLL student.

(a) Population accuracy (the exact conditional accuracy of each trained probe on the mixture,
:mod:`theory.population`; sampled fresh points are kept as ``pop_acc_sampled``); (b) accuracy on
the mislabeled training points (w.r.t. the true labels). At small ``p`` (``p`` comparable to
``N``) the within-class eigenvalues spread out (Marchenko-Pastur), the own-label part is no longer
filtered uniformly and test points carry ``O(1/sqrt(p))`` kernel noise; as ``p`` grows the
simulation converges to the theory.

Check (fails loudly): at the largest ``p`` every simulated mean agrees with the theory within
Monte Carlo error (:func:`figures.common.check_mc_agreement`; exact ties in the theory widen the
admissible range by the tied fraction, shaded). Smaller ``p`` are not checked: the theory does not
claim them.
"""

from __future__ import annotations

import numpy as np

from figures import style
from figures.common import (
    check_mc_agreement,
    log,
    mean_ci95,
    parse_args,
    prediction_bounds,
)
from simulations.gram_trials import MixtureTrial, run_mc_many
from theory.groups import BlockModel, predict_exact
from theory.noise import exact_counts, transition_matrix
from theory.pll import predict_pll

NAME = "finite_dimension"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=8,
        c=0.4,
        d=0.1,
        lam=1e-3,
        eta=0.4,
        sd_round=2,
        dims=(12, 10**5),
        trials=2,
        n_test=5,
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lam=1e-3,
        eta=0.5,
        sd_round=3,
        dims=(6, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10**4, 10**5, 10**6, 10**8),
        trials=10,
        n_test=25,
    ),
    "paper": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lam=1e-3,
        eta=0.5,
        sd_round=3,
        dims=(
            6,
            10,
            20,
            30,
            50,
            100,
            200,
            300,
            500,
            1000,
            2000,
            3000,
            5000,
            10**4,
            3 * 10**4,
            10**5,
            10**6,
            10**7,
            10**8,
            10**9,
        ),
        trials=40,
        n_test=100,
    ),
}
METRICS = ("pop_acc", "train_acc_mislabeled")
_THEORY_KEY = {"pop_acc": "population_acc", "train_acc_mislabeled": "train_acc_mislabeled"}


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    p = PRESETS[preset]
    k, n, c, d, lam, t_sd = (p[x] for x in ("n_classes", "per_class", "c", "d", "lam", "sd_round"))
    model = BlockModel(k, n, c, d)
    transition = transition_matrix("sym", k, p["eta"])
    counts = exact_counts(transition, n)
    sd = predict_exact(model, counts, lam, t_sd)
    pll = predict_pll(model, counts, lam, method="exact")
    models = ("teacher", f"SD round {t_sd}", "PLL student")
    theory, upper = {}, {}
    for m in METRICS:
        (sd_lo, sd_hi), (pll_lo, pll_hi) = (prediction_bounds(x, _THEORY_KEY[m]) for x in (sd, pll))
        theory[m] = np.array([sd_lo[0], sd_lo[t_sd], pll_lo[0]])
        upper[m] = np.array([sd_hi[0], sd_hi[t_sd], pll_hi[0]])
    dims = [int(x) for x in p["dims"]]
    specs = [
        MixtureTrial(
            k, n, dim, c, d, lam, t_sd, tuple(map(tuple, transition)), pll=True, n_test=p["n_test"]
        )
        for dim in dims
    ]
    sims = run_mc_many(specs, p["trials"], seed, workers, label=NAME)
    # sim[metric]: (T, P, 3) for teacher, SD round t*, PLL.
    sim = {
        m: np.stack(
            [np.column_stack([s[m][:, 0], s[m][:, t_sd], s[f"pll_{m}"]]) for s in sims], axis=1
        )
        for m in METRICS
    }
    cols = np.hstack([sim[m][:, -1, :] for m in METRICS])
    th = np.concatenate([theory[m] for m in METRICS])
    hi = np.concatenate([upper[m] for m in METRICS])
    names = [f"{m} {name} p={dims[-1]}" for m in METRICS for name in models]
    check = check_mc_agreement(
        cols,
        th,
        upper=hi,
        labels=names,
        what="finite_dimension: simulation at the largest p vs theory",
    )
    return dict(
        params=p,
        dims=np.array(dims),
        models=models,
        theory=theory,
        upper=upper,
        sim=sim,
        check=check,
        candidate_ties=pll.candidate_ties,
    )


def plot(data: dict):
    p = data["params"]
    dims = data["dims"]
    big_n = p["n_classes"] * p["per_class"]
    fig, axes = style.figure(2, 1, width=3.6, height=3.0)
    colors = (style.OKABE_ITO["black"], style.OKABE_ITO["blue"], style.OKABE_ITO["purple"])
    markers = ("o", "s", "D")
    offsets = (0.94, 1.0, 1.06)  # small horizontal offsets on the log axis keep CIs readable
    for ax, m, title in zip(
        axes,
        METRICS,
        ("(a) population accuracy", "(b) accuracy on mislabeled training points"),
        strict=False,
    ):
        for j, (name, col, mk, off) in enumerate(
            zip(data["models"], colors, markers, offsets, strict=False)
        ):
            mean, half = mean_ci95(data["sim"][m][:, :, j])
            style.sim_errorbar(
                ax, dims * off, mean, half, color=col, marker=mk, label=f"{name}: simulation"
            )
            ax.axhline(
                data["theory"][m][j],
                color=col,
                lw=1.3,
                ls=("-", "--", ":")[j],
                label=f"{name}: theory (p→∞)",
            )
            if data["upper"][m][j] > data["theory"][m][j]:  # exact ties: admissible range
                ax.axhspan(data["theory"][m][j], data["upper"][m][j], color=col, alpha=0.12)
        ax.axvline(big_n, color="grey", lw=0.8, ls=":")
        ax.text(big_n * 1.1, 0.03, "p = N", color="grey", fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("feature dimension $p$")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(title)
    axes[1].legend(loc="center right", fontsize=6.5)
    fig.suptitle(
        f"Finite dimension: mixture K={p['n_classes']}, n={p['per_class']}, c={p['c']}, "
        f"d={p['d']}, λ={p['lam']:g}, sym. noise η={p['eta']}; {p['trials']} trials, 95% CI",
        fontsize=9,
    )
    return fig


def table(data: dict) -> list[dict]:
    p = data["params"]
    rows = []
    for m in METRICS:
        for j, name in enumerate(data["models"]):
            for i, dim in enumerate(data["dims"]):
                mean, half = mean_ci95(data["sim"][m][:, i, j])
                rows.append(
                    dict(
                        metric=m,
                        model=name,
                        dim=int(dim),
                        sim_mean=float(mean),
                        sim_ci95=float(half),
                        theory_p_inf=data["theory"][m][j],
                        trials=p["trials"],
                    )
                )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv, "Finite-dimension convergence figure", PRESETS)
    data = compute(args.preset, args.seed, args.workers)
    log(
        f"  {NAME}: largest p = {data['dims'][-1]:,} agrees with the p→∞ theory "
        f"({data['check']['n_comparisons']} comparisons)"
    )
    style.save_figure(plot(data), args.out, NAME)
    style.write_csv(table(data), args.out, NAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
