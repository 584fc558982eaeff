r"""Figure: the finite-dimension phase diagram of self-distillation over ``(N/p, t)``.

Gaussian mixture (``K`` classes, ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``), symmetric label noise
with exact counts. Heat maps: population *error* ``1 - accuracy`` (log colour scale: the accuracy
is close to 1 almost everywhere, which a linear scale saturates) of the linearised round-``t``
probe predicted by the finite-``p`` theory (:func:`theory.finite.predict_finite`, docs/theory.md
§11) over the round ``t`` and the feature ratio ``N/p`` on its true scale (0 = the block limit
``p = inf``; each row spans halfway to its neighbours), for a small and a larger ``lam``. Lines:
the round of best population accuracy (:func:`theory.finite.population_rounds`, solid) and the
first round with accuracy ``>= 1 - delta`` (dotted). At small ``lam`` the rounds needed grow with
``N/p``; at the larger ``lam`` too many rounds collapse every prediction onto the top eigenvector
(the finite-``p`` collapse of §11.8). Right panel: the best round against ``N/p`` for several
``lam``; a best round equal to the last round computed (``R``) is clipped by the grid (the true
best may be later) and flagged with an upward triangle. Population errors below
:data:`ERROR_FLOOR` are drawn at the floor (the colour bar's triangle).

Check (fails loudly): at a few grid points the linearised Monte Carlo on exactly sampled Gram
matrices (:mod:`simulations.linear_trials`) agrees with the theory within
``max(t s/sqrt(T), 0.03)`` (:func:`figures.common.check_mc_agreement` with ``theory_atol =
FINITE_THEORY_ATOL``, the acceptance rule of the finite-``p`` theory used by ``finite_dimension``
and ``sd_generalization`` too: the deterministic equivalents carry their own error of ~1e-2 at
``N = 100``, docs/theory.md §11, so a pure Monte Carlo tolerance fails on a 2e-5 gap where every
trial reaches 100%, e.g. the paper preset at ``N/p = 1``, ``t = 20``); the markers on the heat
maps show where.
"""

from __future__ import annotations

import math

import numpy as np

from figures import palette, style
from figures.common import FINITE_THEORY_ATOL, check_mc_agreement, log, parse_args
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
        ratios=(0.0, 0.5, 1.0, 2.0),
        best_lams=(3e-4, 1e-3, 1e-2),
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
        # R = 20 as the quick preset: at R = 24-30, lam = 0.01, theory.finite.predict_finite
        # stops with "covariance is not positive semidefinite beyond round-off" (e.g. N/p = 0.25).
        rounds=20,
        ratios=(0.0, 0.0625, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
        best_lams=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
        checks=((0.5, 3), (1.0, 3), (2.0, 10), (0.5, 20), (1.0, 20)),
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
        theory_atol=FINITE_THEORY_ATOL,
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


#: Markers of the lambda values in the right panel (black lines: the theory has no role colour).
LAM_MARKERS = ("v", "^", "<", ">", "p", "h")
#: Smallest population error on the colour scale (below: drawn as this value, said on the bar).
ERROR_FLOOR = 1e-4


def _row_edges(ratios):
    """Cell edges of the ``N/p`` rows on the true scale (halfway to the neighbours)."""
    r = np.asarray(ratios, dtype=float)
    if r.size == 1:
        return np.array([r[0] - 0.5, r[0] + 0.5])
    mid = 0.5 * (r[1:] + r[:-1])
    return np.concatenate([[r[0] - (mid[0] - r[0])], mid, [r[-1] + (r[-1] - mid[-1])]])


def _ratio_labels(ratios):
    """Tick labels of the N/p rows; a row closer than 6% of the range to the last labelled one
    keeps its tick but no label (they would overlap)."""
    span = max(float(np.max(ratios) - np.min(ratios)), 1e-12)
    labels, last = [], -np.inf
    for r in ratios:
        if r - last >= 0.06 * span * 2:
            labels.append("0 (p=∞)" if r == 0 else f"{r:g}")
            last = r
        else:
            labels.append("")
    return labels


def plot(data: dict):
    from matplotlib import patheffects
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    p = data["params"]
    lams = p["lams"]
    fig, axes = style.figure(len(lams) + 1, 1, width=2.4, height=2.7)
    ratios = np.asarray(p["ratios"], dtype=float)
    edges = _row_edges(ratios)
    outline = [patheffects.withStroke(linewidth=2.6, foreground="black")]
    norm = LogNorm(vmin=ERROR_FLOOR, vmax=1.0)
    image = None
    for ax, lam in zip(axes[: len(lams)], lams, strict=True):
        acc = data["maps"][lam]["population_acc"]
        err = np.clip(1.0 - acc, ERROR_FLOOR, 1.0)
        image = ax.pcolormesh(
            np.arange(p["rounds"] + 2) - 0.5, edges, err, cmap=style.CMAP, norm=norm, shading="flat"
        )
        ax.grid(False)
        best = [population_rounds_from(acc[i], p["delta"]) for i in range(ratios.size)]
        ax.plot([b[0] for b in best], ratios, color="white", lw=1.4, path_effects=outline)
        first = [(b[1] if b[1] is not None else np.nan) for b in best]
        ax.plot(first, ratios, color="white", lw=1.4, ls=":", path_effects=outline)
        ax.set_yticks(ratios, _ratio_labels(ratios))
        ax.set_ylim(edges[0], edges[-1])
        ax.set_xlim(-0.5, p["rounds"] + 0.5)
        style.integer_ticks(ax)
        ax.set_xlabel("round $t$")
        ax.set_title(f"λ={lam:g}")
        if lam == lams[0]:
            for (ratio, t), mean in zip(data["checks"], data["mc_means"], strict=True):
                ax.plot(
                    t,
                    ratio,
                    "o",
                    mfc="none",
                    mec="white",
                    ms=7,
                    mew=1.3,
                    path_effects=outline,
                    clip_on=False,
                    zorder=5,
                )
                right = t <= p["rounds"] / 2
                ax.annotate(
                    f"MC {mean:.2f}",
                    (t, ratio),
                    xytext=(7 if right else -7, 0),
                    textcoords="offset points",
                    ha="left" if right else "right",
                    va="center",
                    color="white",
                    path_effects=outline,
                )
    axes[0].set_ylabel("$N/p$")
    for ax in axes[1 : len(lams)]:
        ax.set_yticklabels([])
    # extend="min": errors below the floor are drawn at the floor (the triangle says so).
    cb = fig.colorbar(image, ax=list(axes[: len(lams)]), shrink=0.9, pad=0.02, extend="min")
    cb.set_label("population error 1 − acc.")
    ax = axes[-1]
    for j, lam in enumerate(p["best_lams"]):
        rows = data["best"][lam]
        best = np.array([r[0] for r in rows], dtype=float)
        mk = LAM_MARKERS[j % len(LAM_MARKERS)]
        ax.plot(ratios, best, color=palette.THEORY, marker=mk, ms=4.5, lw=1.1, label=f"λ={lam:g}")
        clipped = best >= p["rounds"]
        if clipped.any():  # clipped by the grid: the best round may be later
            ax.plot(
                ratios[clipped],
                best[clipped] + 0.6,
                "^",
                color=palette.REFERENCE,
                ms=5,
                clip_on=False,
                zorder=4,
            )
    ax.axhline(
        p["rounds"], **palette.REFERENCE_STYLE, label=f"R = {p['rounds']}: last round computed"
    )
    ax.set_xlabel("$N/p$ (0 = block limit)")
    ax.set_ylabel("best round")
    style.integer_ticks(ax, "y")
    ax.set_ylim(-0.5, p["rounds"] + 1.5)
    ax.set_title("best round (theory)")
    handles = [
        Line2D([], [], color="white", lw=1.4, path_effects=outline, label="best round"),
        Line2D(
            [],
            [],
            color="white",
            lw=1.4,
            ls=":",
            path_effects=outline,
            label=f"first round with acc. ≥ {1 - p['delta']:g}",
        ),
        Line2D(
            [],
            [],
            color="white",
            marker="o",
            mfc="none",
            mec="white",
            ms=7,
            mew=1.3,
            ls="none",
            path_effects=outline,
            label=f"linearised Monte Carlo ({p['trials']} trials, checked)",
        ),
        Line2D(
            [],
            [],
            color=palette.REFERENCE,
            marker="^",
            ls="none",
            ms=5,
            label="best round clipped at R",
        ),
    ]
    lam_handles, lam_labels = ax.get_legend_handles_labels()  # the right panel's lambdas
    handles += lam_handles
    for h, lab in zip(lam_handles, lam_labels, strict=True):
        h.set_label(f"best round at {lab}" if lab.startswith("λ") else lab)
    fig.legend(handles=handles, loc="outside lower center", ncol=3, handlelength=2.0)
    fig.suptitle(
        f"Finite-p phase diagram, linearised theory (K={p['n_classes']}, n={p['per_class']}, "
        f"c={p['c']}, d={p['d']}, sym. noise η={p['eta']})"
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
    style.save_figure(plot(data), args.out, NAME, dpi=style.preset_dpi(args.preset))
    style.write_csv(table(data), args.out, NAME)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
