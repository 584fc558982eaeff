r"""Figure: SD's generalisation gain at finite dimension — accuracy per round at ``p = N/2, N, 4N``.

Gaussian mixture (``K`` classes of ``n`` points, ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``,
isotropic noise of total variance ``1 - c``) at three feature dimensions ``p`` comparable to
``N = K n``; symmetric label noise with exact counts. In the ``p → ∞`` block limit the population
accuracy is 100% at every round whenever plurality holds (docs/theory.md, Theorem 6.5: SD cannot
change it). At realistic ``p`` the teacher memorises its noisy labels through the spread-out
Marchenko-Pastur bulk, and self-distillation raises the population accuracy round by round (quick
preset: teacher ~0.63 → round 3 ~0.98 at ``p = N``) -- the paper's "improved generalization".

Per dimension (one colour each), rounds ``t = 0..R``:

* dashed line: the finite-``p`` theory (:func:`theory.finite.predict_finite`), deterministic
  equivalents of the *linearised* dynamics ``P_t - 1/K = (Y - 1/K) (G/(G + K lam N))^(t+1)`` on the
  mixture's random Gram matrix (:data:`CURVES` lists the theory curves; each is a function
  returning per-round accuracies);
* hollow markers: Monte Carlo of the same linearised dynamics on exactly sampled Gram matrices
  (:mod:`simulations.linear_trials`), mean and 95% CI over trials;
* filled markers: exact self-distillation (every round trained to a certificate,
  :mod:`simulations.gram_trials`), mean and 95% CI;
* thin black step line: the exact block theory (``p → ∞``, :func:`theory.groups.predict_exact`;
  rounds are integers, so it is drawn as steps).

(a) Population accuracy (exact conditional accuracy of each trained probe on the mixture,
:mod:`theory.population`); (b) accuracy on the mislabeled training points w.r.t. their true labels.

Check (fails loudly, :class:`figures.common.AgreementError`): every mean of the linearised Monte
Carlo agrees with the finite-``p`` theory within ``max(t s/sqrt(T), 0.03)``
(:func:`figures.common.check_mc_agreement` with ``theory_atol = FINITE_THEORY_ATOL``: ``T``
trials, Bonferroni over all rounds, dimensions and both panels; 0.03 is the accuracy the
deterministic equivalents claim at ``N ~ 100``, issue 10). The exact-SD markers are shown but not
checked: the theory is linearised, and at small ``lam`` softmax saturation moves the exact probe
(mostly in panel (b), where it delays the correction of mislabeled points); their largest distance
to the theory is printed and written to the CSV (``exact_minus_finite``).
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from figures import palette, style
from figures.common import (
    FINITE_THEORY_ATOL,
    check_mc_agreement,
    log,
    mean_ci95,
    parse_args,
)
from simulations.gram_trials import MixtureTrial, run_mc_many
from simulations.linear_trials import LinearTrial, run_linear_many
from theory.finite import MixtureModel, predict_finite
from theory.groups import BlockModel, predict_exact
from theory.names import THEORY_FIELDS
from theory.noise import exact_counts, transition_matrix

NAME = "sd_generalization"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=8,
        c=0.4,
        d=0.1,
        lam=1e-3,
        eta=0.4,
        rounds=2,
        ratios=(0.5, 1.0, 4.0),
        trials=2,
        trials_linear=4,
        n_test=5,
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lam=1e-3,
        eta=0.5,
        rounds=6,
        ratios=(0.5, 1.0, 4.0),
        trials=6,
        trials_linear=20,
        n_test=25,
    ),
    "paper": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lam=1e-3,
        eta=0.5,
        rounds=8,
        ratios=(0.5, 1.0, 4.0),
        trials=40,
        trials_linear=100,
        n_test=100,
    ),
}
METRICS = ("pop_acc", "train_acc_mislabeled")
_THEORY_KEY = THEORY_FIELDS  # simulation metric -> theory field (theory.names)


def dims_of(params) -> np.ndarray:
    """Feature dimensions ``p = ratio * N`` (rounded; ``p >= K``)."""
    big_n = params["n_classes"] * params["per_class"]
    return np.array([max(int(round(r * big_n)), params["n_classes"]) for r in params["ratios"]])


def finite_linear_curves(params, counts, dims) -> dict:
    """The finite-``p`` theory of the linearised dynamics: ``{metric: (P, R+1)}`` accuracies.

    A theory curve of this figure is a function ``(params, counts, dims) -> {metric: array of
    shape (len(dims), rounds + 1)}`` (``metric`` in :data:`METRICS`); :data:`CURVES` lists the
    ones drawn, each with its line style, so another theory at finite ``N/p`` is one more entry.
    """
    k, n, c, d = (params[x] for x in ("n_classes", "per_class", "c", "d"))
    preds = [
        predict_finite(MixtureModel(k, n, int(dim), c, d), counts, params["lam"], params["rounds"])
        for dim in dims
    ]
    return {m: np.array([getattr(x, _THEORY_KEY[m]) for x in preds]) for m in METRICS}


#: Theory curves at finite p: name -> (function, legend label, line style). ``compute`` stores
#: each under ``data["curves"][name]``; the agreement check uses ``"finite"`` (what the
#: linearised Monte Carlo simulates).
CURVES = {
    "finite": (finite_linear_curves, "finite-p theory (linearised)", "--"),
}


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    p = PRESETS[preset]
    k, n, c, d, lam, rounds = (p[x] for x in ("n_classes", "per_class", "c", "d", "lam", "rounds"))
    transition = transition_matrix("sym", k, p["eta"])
    tr = tuple(map(tuple, transition))
    counts = exact_counts(transition, n)
    dims = dims_of(p)
    # theory[metric]: (P, R+1) finite-p; limit[metric]: (R+1,) exact block theory (p -> inf).
    theory = finite_linear_curves(p, counts, dims)
    block = predict_exact(BlockModel(k, n, c, d), counts, lam, rounds)
    limit = {m: np.asarray(getattr(block, _THEORY_KEY[m]), dtype=float) for m in METRICS}
    lin_specs = [LinearTrial(k, n, int(dim), c, d, lam, rounds, tr) for dim in dims]
    lins = run_linear_many(lin_specs, p["trials_linear"], seed, workers, label=f"{NAME} linear")
    for res in lins:  # exact-count sampling: every trial realises the theory's count matrix
        if not (res["counts"] == counts).all():
            raise RuntimeError("exact-count sampling realised another count matrix (a bug)")
    specs = [
        MixtureTrial(k, n, int(dim), c, d, lam, rounds, tr, n_test=p["n_test"]) for dim in dims
    ]
    sims = run_mc_many(specs, p["trials"], seed, workers, label=NAME)
    # lin[metric], sim[metric]: (T, P, R+1)
    lin = {m: np.stack([res[m] for res in lins], axis=1) for m in METRICS}
    sim = {m: np.stack([res[m] for res in sims], axis=1) for m in METRICS}
    cols, th, names = [], [], []
    for m in METRICS:
        for i, dim in enumerate(dims):
            for t in range(rounds + 1):
                cols.append(lin[m][:, i, t])
                th.append(theory[m][i, t])
                names.append(f"{m} p={dim} t={t}")
    check = check_mc_agreement(
        np.column_stack(cols),
        np.array(th),
        labels=names,
        what="sd_generalization: linearised simulation vs finite-p theory",
        theory_atol=FINITE_THEORY_ATOL,
    )
    gap = max(float(np.nanmax(np.abs(np.nanmean(sim[m], axis=0) - theory[m]))) for m in METRICS)
    curves = {"finite": theory}
    curves |= {name: fn(p, counts, dims) for name, (fn, _, _) in CURVES.items() if name != "finite"}
    return dict(
        curves=curves,
        params=p,
        dims=dims,
        counts=counts,
        theory=theory,
        limit=limit,
        lin=lin,
        sim=sim,
        check=check,
        exact_gap=gap,
    )


def plot(data: dict):
    p = data["params"]
    dims = data["dims"]
    rounds = np.arange(p["rounds"] + 1)
    big_n = p["n_classes"] * p["per_class"]
    fig, axes = style.figure(2, 1, width=3.6, height=3.0)
    order = np.argsort(big_n / dims)  # colour ramp: light = small N/p (large p)
    colors = {int(i): palette.dim_color(r, len(dims)) for r, i in enumerate(order)}
    shift = 0.08  # horizontal offsets so that the CIs of the series stay apart
    for ax, m, title in zip(
        axes,
        METRICS,
        ("(a) population accuracy", "(b) mislabeled training points (true labels)"),
        strict=True,
    ):
        style.theory_line(
            ax, rounds, data["limit"][m], color=palette.THEORY, lw=1.0, drawstyle="steps-mid"
        )
        for i in range(len(dims)):
            col = colors[i]
            off = (i - (len(dims) - 1) / 2) * 2 * shift
            for name, (_, _, ls) in CURVES.items():
                ax.plot(rounds, data["curves"][name][m][i], color=col, ls=ls, lw=1.4, zorder=2)
            mean, half = mean_ci95(data["sim"][m][:, i])
            style.sim_errorbar(ax, rounds + off - shift / 2, mean, half, color=col, marker="o")
            mean, half = mean_ci95(data["lin"][m][:, i])
            style.sim_errorbar(
                ax, rounds + off + shift / 2, mean, half, color=col, marker="o", hollow=True
            )
        ax.set_xlabel("round $t$ (0 = teacher)")
        style.integer_ticks(ax)
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(title)
    axes[0].set_ylabel("accuracy")
    handles = [
        Line2D([], [], color=colors[i], lw=3, label=f"p = {dim} (N/p = {big_n / dim:.2g})")
        for i, dim in enumerate(dims)
    ]
    handles += [Line2D([], [], color="0.15", ls=ls, label=lab) for _, lab, ls in CURVES.values()]
    handles += [
        Line2D([], [], color=palette.THEORY, lw=1.0, label="p→∞ exact theory"),
        Line2D([], [], color="0.15", marker="o", ls="none", ms=5, label="exact sim. ± 95% CI"),
        Line2D(
            [],
            [],
            color="0.15",
            marker="o",
            ls="none",
            ms=5,
            **palette.hollow("0.15"),
            label="linearised sim. ± 95% CI (checked)",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, handlelength=1.8)
    fig.suptitle(
        f"SD's generalisation gain at finite p (mixture K={p['n_classes']}, n={p['per_class']}, "
        f"N={big_n}, c={p['c']}, d={p['d']}, λ={p['lam']:g}, sym. noise η={p['eta']})\n"
        f"exact {p['trials']} / linearised {p['trials_linear']} trials per p"
    )
    return fig


def table(data: dict) -> list[dict]:
    p = data["params"]
    rows = []
    for m in METRICS:
        for i, dim in enumerate(data["dims"]):
            lmean, lhalf = mean_ci95(data["lin"][m][:, i])
            smean, shalf = mean_ci95(data["sim"][m][:, i])
            for t in range(p["rounds"] + 1):
                rows.append(
                    dict(
                        metric=m,
                        dim=int(dim),
                        round=t,
                        finite_theory=data["theory"][m][i, t],
                        linear_mean=float(lmean[t]),
                        linear_ci95=float(lhalf[t]),
                        exact_mean=float(smean[t]),
                        exact_ci95=float(shalf[t]),
                        exact_minus_finite=float(smean[t]) - data["theory"][m][i, t],
                        theory_p_inf=data["limit"][m][t],
                        trials=p["trials"],
                        trials_linear=p["trials_linear"],
                    )
                )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv, "SD generalisation gain at finite dimension", PRESETS)
    data = compute(args.preset, args.seed, args.workers)
    pop = data["theory"]["pop_acc"]
    gains = ", ".join(
        f"p={dim}: {pop[i, 0]:.2f} -> {pop[i, -1]:.2f}" for i, dim in enumerate(data["dims"])
    )
    log(
        f"  {NAME}: linearised simulation agrees with the finite-p theory "
        f"({data['check']['n_comparisons']} comparisons); population accuracy teacher -> round "
        f"{data['params']['rounds']} (theory): {gains}; exact SD vs finite-p theory (not "
        f"checked): max |difference| {data['exact_gap']:.3f}"
    )
    style.save_figure(plot(data), args.out, NAME, dpi=style.preset_dpi(args.preset))
    style.write_csv(table(data), args.out, NAME)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
