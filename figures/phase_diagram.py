r"""Figure: phase diagram of self-distillation — noise rate η × round t.

Colour: simulated accuracy (w.r.t. the true labels) of the MISLABELED training points, mean over
Monte Carlo trials on Gaussian-mixture features of dimension ``p`` (:mod:`figures.common`), every
round trained exactly, in three bins (none, some, all mislabeled points corrected: the values are 0
or 1 except at the edges; a bin that never occurs is left out of the colour bar). Rounds are on a
``log(t + 2)`` axis so that the early boundary of the symmetric noise (rounds 0-3) and the late
collapse of the sink (up to ~30) are both legible. A hatched column is a noise rate whose exact
counts flip no label at all (e.g. symmetric noise at ``eta = 0.025`` with ``n = 25``: ``n eta =
0.625`` flips per class, spread over ``K - 1`` classes, round to none), so there is no mislabeled
point to measure. Lines: the theory's window of rounds with 100% training accuracy in the block
model -- its lower edge is the minimum number of rounds, its upper edge the collapse round -- from
the exact group-level theory (:func:`theory.groups.predict_exact`, solid white) and from the
linearised theory (:func:`theory.conditions.window_linear`, dashed black on top, so that coinciding
edges show as a white line with black dashes).

Noise types (exact counts): ``'sym'`` (uniform flips; the global label histogram is balanced, so the
window never closes) and one asymmetric type, ``'sink'``: every class ``k != 0`` flips to class 0
with probability η (class 0 keeps its labels). The sink unbalances the global label histogram; with
``d > 0`` its part ``(w_1 - w_2)(h - 1/K)`` decays slowest, so after enough rounds predictions
collapse onto the over-represented label and the window closes. The ``'paper'`` preset adds pair
flips (``'pair'``, :func:`theory.noise.transition_matrix`).

Check (fails loudly): every cell's simulated mean agrees with the exact group theory's mislabeled
accuracy within Monte Carlo error (:func:`figures.common.check_mc_agreement`; where the theory has
exact ties, the admissible interval extends by the tied fraction).

Why ``p = 10^8`` (paper preset ``10^9``): the theory drawn here (the exact group theory's mislabeled
accuracy and its window of rounds) exists only in the block limit (the finite-``p`` theory,
:mod:`theory.finite`, is linearised), so the simulation samples that limit on random mixture
features; the Gram fluctuations are ``~ 1e-4``. The agreement checks at realistic ``p`` (``N/2 .. 20
N``) against the finite-``p`` theory are in the figures ``finite_dimension`` and
``sd_generalization``.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib import patheffects

from figures import style
from figures.common import (
    check_mc_agreement,
    figure_run,
    figure_spec,
    log,
    nan_mean,
    parse_args,
    prediction_bounds,
    prepare_output,
    sample_columns,
    simulate_figure,
)
from theory.conditions import window_linear
from theory.groups import BlockModel, predict_exact
from theory.noise import exact_counts, transition_matrix

NAME = "phase_diagram"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=8,
        c=0.4,
        d=0.1,
        lam=3e-3,
        rounds=6,
        etas=(0.1, 0.3),
        kinds=("sym", "sink"),
        dim=10**8,
        trials=2,
        n_test=2,
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lam=3e-3,
        rounds=30,
        etas=tuple(np.round(np.arange(0.05, 0.76, 0.1), 3)),
        kinds=("sym", "sink"),
        dim=10**8,
        trials=3,
        n_test=2,
    ),
    "paper": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lam=3e-3,
        rounds=40,
        etas=tuple(np.round(np.arange(0.025, 0.776, 0.025), 3)),
        kinds=("sym", "pair", "sink"),
        dim=10**9,
        trials=20,
        n_test=2,
    ),
}
KIND_TITLES = {
    "sym": "symmetric noise",
    "pair": "pair flips k→k+1",
    "sink": "asymmetric 'sink': k→0",
}


def noise_transition(kind: str, n_classes: int, eta: float) -> np.ndarray:
    """Transition matrix of ``kind``: the library's families, or ``'sink'`` (module docstring)."""
    if kind != "sink":
        return transition_matrix(kind, n_classes, eta)
    transition_matrix("sym", n_classes, eta)  # validates eta in [0, 1]
    t = np.eye(n_classes) * (1.0 - eta)
    t[:, 0] += eta
    t[0, 0] = 1.0
    return t


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    p = PRESETS[preset]
    k, n, c, d, lam, rounds = (p[x] for x in ("n_classes", "per_class", "c", "d", "lam", "rounds"))
    model = BlockModel(k, n, c, d)
    etas = np.asarray(p["etas"], dtype=float)
    panels = {}
    samples, theory_all, theory_hi, names = [], [], [], []
    for kind in p["kinds"]:
        trans = [noise_transition(kind, k, eta) for eta in etas]
        counts = [exact_counts(tr, n) for tr in trans]
        # Directly, not theory.spec.predict: the check's admissible range needs the group outputs
        # and exact ties (figures.common.prediction_bounds), which a Result does not carry.
        preds = [predict_exact(model, cn, lam, rounds) for cn in counts]
        bounds = [prediction_bounds(pr, "train_acc_mislabeled") for pr in preds]
        exact = np.array([b[0] for b in bounds])  # (E, R+1)
        exact_hi = np.array([b[1] for b in bounds])
        windows = [window_linear(model, cn, lam) for cn in counts]
        sims = simulate_figure(
            [
                figure_spec(p, eta=eta, transition=tuple(map(tuple, tr)), dim=p["dim"])
                for eta, tr in zip(etas, trans, strict=True)
            ],
            p["trials"],
            seed,
            workers,
            f"{NAME} ({kind})",
            n_test=p["n_test"],
            exact_pop=False,  # only training accuracies are drawn: skip the exact pop. metric
        )
        sim = sample_columns(sims, ["train_acc_mislabeled"])["train_acc_mislabeled"]  # (T, E, R+1)
        panels[kind] = dict(exact=exact, windows=windows, sim=sim)
        samples.append(sim.reshape(sim.shape[0], -1))
        theory_all.append(exact.reshape(-1))
        theory_hi.append(exact_hi.reshape(-1))
        names += [f"{kind} eta={eta:g} t={t}" for eta in etas for t in range(rounds + 1)]
    check = check_mc_agreement(
        np.hstack(samples),
        np.concatenate(theory_all),
        upper=np.concatenate(theory_hi),
        labels=names,
        what="phase_diagram: simulation vs exact group theory",
    )
    return dict(params=p, etas=etas, panels=panels, check=check)


def _exact_window(acc_row):
    ok = np.flatnonzero(acc_row >= 1.0)
    return (int(ok.min()), int(ok.max())) if ok.size else None


def _edges(etas):
    mid = (etas[1:] + etas[:-1]) / 2
    first = etas[0] - (mid[0] - etas[0]) if etas.size > 1 else etas[0] - 0.05
    last = etas[-1] + (etas[-1] - mid[-1]) if etas.size > 1 else etas[0] + 0.05
    return np.concatenate([[first], mid, [last]])


def _boundary(ax, edges, windows, rounds, **kw):
    """Step lines at the window edges (t_first - 1/2 and t_last + 1/2) per eta cell."""
    lo, hi = [], []
    for w in windows:
        if w is None:
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        lo.append(w[0] - 0.5)
        hi.append(np.nan if w[1] is None or w[1] >= rounds else w[1] + 0.5)
    for vals in (lo, hi):
        v = np.asarray(vals, dtype=float)
        ax.stairs(v, edges, baseline=None, **kw)
        kw = dict(kw, label=None)


def _hatch_empty_columns(ax, edges, mean, rounds) -> None:
    """Hatch the noise rates without any mislabeled point (every round undefined, NaN)."""
    from matplotlib.patches import Rectangle

    for e in np.flatnonzero(np.all(np.isnan(mean), axis=1)):
        ax.add_patch(
            Rectangle(
                (edges[e], -0.5),
                edges[e + 1] - edges[e],
                rounds + 1,
                facecolor="0.85",
                edgecolor="0.45",
                hatch="////",
                lw=0,
                label="no mislabeled point (exact counts)",
            )
        )


#: Colour bins of the mislabeled-point accuracy: none, some, all corrected.
BIN_LABELS = ("0% (none)", "some", "100% (all)")
#: Their shades of the accuracy colour map (dark = none, light = all).
BIN_SHADES = (0.0, 0.45, 1.0)


def _bins(values):
    """Boundaries, colours and labels of the bins that occur in ``values`` (in [0, 1])."""
    v = np.asarray(values, dtype=float)
    present = [bool(np.any(v <= 0.0)), bool(np.any((v > 0.0) & (v < 1.0))), bool(np.any(v >= 1.0))]
    keep = [i for i in range(3) if present[i]] or [0]
    # Boundaries between kept bins; 0 and 1 are exact values (a mean of 0/1 accuracies).
    cuts = {(0, 1): 1e-9, (1, 2): 1.0 - 1e-9, (0, 2): 0.5}
    bounds = [0.0] + [cuts[a, b] for a, b in zip(keep[:-1], keep[1:], strict=True)] + [1.0]
    if len(keep) == 1:
        bounds = [0.0, 1.0]
    base = mpl.colormaps[style.CMAP]
    return bounds, [base(BIN_SHADES[i]) for i in keep], [BIN_LABELS[i] for i in keep]


def _forward(t):
    return np.log(np.maximum(np.asarray(t, dtype=float) + 2.0, 1e-12))


def _inverse(u):
    return np.exp(np.asarray(u, dtype=float)) - 2.0


def _round_axis(ax, rounds: int) -> None:
    """``log(t + 2)`` round axis with integer ticks (module docstring)."""
    ax.set_yscale("function", functions=(_forward, _inverse))
    ticks = [t for t in (0, 1, 2, 3, 5, 10, 20, 30, 50, 100) if t <= rounds]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.set_ylim(-0.5, rounds + 0.5)


def plot(data: dict):
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    p = data["params"]
    etas, rounds = data["etas"], p["rounds"]
    edges = _edges(etas)
    kinds = list(data["panels"])
    fig, axes = style.figure(len(kinds), 1, width=3.1, height=2.7, squeeze=False)
    axes = axes[0]
    means = [nan_mean(data["panels"][kind]["sim"], axis=0) for kind in kinds]
    values = np.concatenate([m[np.isfinite(m)] for m in means])
    bounds, colors, bin_labels = _bins(values)
    cmap = ListedColormap(colors)
    norm = BoundaryNorm(bounds, cmap.N)
    outline = [patheffects.withStroke(linewidth=3.4, foreground="black")]
    for ax, kind in zip(axes, kinds, strict=False):
        panel = data["panels"][kind]
        mean = nan_mean(panel["sim"], axis=0)  # (E, R+1)
        im = ax.pcolormesh(
            edges, np.arange(rounds + 2) - 0.5, mean.T, cmap=cmap, norm=norm, shading="flat"
        )
        ax.grid(False)
        _boundary(
            ax,
            edges,
            [_exact_window(r) for r in panel["exact"]],
            rounds,
            color="white",
            lw=2.0,
            path_effects=outline,
        )
        _boundary(ax, edges, panel["windows"], rounds, color="black", lw=1.1, linestyle=(0, (3, 2)))
        never = [e for e, w in zip(etas, panel["windows"], strict=False) if w is None]
        if never:
            ax.plot(
                never,
                np.full(len(never), rounds * 0.8),
                "x",
                color="white",
                ms=5,
                mew=1.5,
                path_effects=outline,
                ls="none",
                label="linearised theory: never 100%",
            )
        _hatch_empty_columns(ax, edges, mean, rounds)
        _round_axis(ax, rounds)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("noise rate η")
        ax.set_title(KIND_TITLES.get(kind, kind))
    axes[0].set_ylabel("round $t$ (0 = teacher)")
    handles = [
        Line2D([], [], color="white", lw=2.0, path_effects=outline, label="exact theory"),
        Line2D([], [], color="black", lw=1.1, ls=(0, (3, 2)), label="linearised theory"),
    ]
    labels = [h.get_label() for h in handles]
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=len(handles),
        title="edges of the window of 100% training accuracy",
        handlelength=1.8,
    )
    cb = fig.colorbar(im, ax=list(axes), shrink=0.9, pad=0.02)
    centres = [0.5 * (a + b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    cb.set_ticks(centres, labels=bin_labels)
    cb.ax.tick_params(length=0)
    cb.set_label("mislabeled points corrected (sim.)")
    fig.suptitle(
        f"Phase diagram of SD (K={p['n_classes']}, n={p['per_class']}, c={p['c']}, d={p['d']}, "
        f"λ={p['lam']:g}); simulation: p={style.fmt_count(p['dim'])}, {p['trials']} trials"
    )
    return fig


def table(data: dict) -> list[dict]:
    rows = []
    p = data["params"]
    for kind, panel in data["panels"].items():
        mean = nan_mean(panel["sim"], axis=0)
        for e, eta in enumerate(data["etas"]):
            w = panel["windows"][e]
            for t in range(p["rounds"] + 1):
                rows.append(
                    dict(
                        noise=kind,
                        eta=eta,
                        round=t,
                        sim_mislabeled_acc=mean[e, t],
                        exact_theory_mislabeled_acc=panel["exact"][e, t],
                        linear_min_round=None if w is None else w[0],
                        linear_collapse_round=None if w is None or w[1] is None else w[1] + 1,
                        trials=p["trials"],
                        dim=p["dim"],
                        lam=p["lam"],
                    )
                )
    return rows


@figure_run(NAME)
def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    out = prepare_output(out)
    data = compute(preset, seed, workers)
    log(f"  {NAME}: {data['check']['n_comparisons']} cells agree with the exact theory")
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv, "Phase diagram of self-distillation", PRESETS, module=__spec__.name)
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
