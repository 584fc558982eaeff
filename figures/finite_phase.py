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

Bottom: the exact finite-ratio theory (:func:`theory.finite_exact.predict_finite_exact`, docs
§16: exact cross-entropy self-distillation at finite ``N/p``) over ``(N/p, t)``, population error
(same colour scale as the top row) and accuracy on the mislabeled training points (linear scale),
for the configurations of ``sd_generalization`` (quick: ``K = 4, lam = 1e-3``; paper: also ``K =
10, lam = 1e-4``, where the two theories part; the same predictions, computed once through
:mod:`figures.finite_theories`' cache and checked there against exact-SD Monte Carlo) and, in the
paper preset, ``K = 4, lam = 1e-2`` over 20 rounds: the finite-``p`` collapse of exact SD
(:func:`exact_map_configs`). A white cross marks a cell where the linearised finite-``p`` theory at
the same point is more than 0.03 (``LINEARISED_TOL``) from the exact theory, i.e. outside the
regime where it was validated; hatched rows are where the linearised theory is refused (its
random-matrix part fails, :func:`theory.finite_exact.report.random_matrix_failure`), so there is
nothing to compare. Row ``N/p = 0`` compares the block model's exact and linearised group theories.

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
from figures import sd_generalization as sdg
from figures.common import FINITE_THEORY_ATOL, check_mc_agreement, log, parse_args, prepare_output
from figures.finite_theories import (
    LINEARISED_TOL,
    exact_accuracies,
    fmt_lam,
    linear_prediction,
    linearised_off,
    linearised_regime,
    refusal,
)
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
        exact_extra=(),
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
        # Two lambdas (were three): room for the exact finite-ratio theory within the quick
        # preset's 45 s budget (issue 24); the paper preset keeps six.
        best_lams=(1e-3, 1e-2),
        checks=((1.0, 3), (2.0, 10), (0.5, 20)),
        trials=12,
        delta=0.01,
        exact_extra=(),
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
        # The finite-p collapse of exact SD (issue 20, docs §16.5): lam = 1e-2 over 20 rounds,
        # ~10 s of CPU per dimension at 32 points (too slow for the quick preset).
        exact_extra=(
            dict(
                n_classes=4,
                per_class=25,
                c=0.4,
                d=0.1,
                eta=0.5,
                lam=1e-2,
                rounds=20,
                points=32,
                ratios=(0.0, 0.5, 1.0, 2.0),
            ),
        ),
    ),
}


#: Quantities of the exact maps: theory field -> (colour-bar label, kind).
EXACT_FIELDS = ("population_acc", "train_acc_mislabeled")


def exact_map_configs(preset: str) -> list[dict]:
    """The exact maps' configurations: ``sd_generalization``'s rows, then ``exact_extra``.

    Each row of ``sd_generalization`` (``K, n, c, d, lam, eta, rounds, points``) becomes one map
    over ``N/p`` in ``{0} +`` its dimensions' ratios (``0``: the block limit), so both figures
    draw, and compute once, the same predictions; ``exact_extra`` adds maps of this figure only.
    """
    out = []
    for row in sdg.PRESETS[preset]["rows"]:
        dims = sdg.dims_of(row)
        big_n = row["n_classes"] * row["per_class"]
        out.append(row | {"ratios": tuple([0.0, *sorted(big_n / float(x) for x in dims)])})
    return out + [dict(cfg) for cfg in PRESETS[preset]["exact_extra"]]


def compute_exact_maps(preset: str) -> list[dict]:
    """Exact and linearised accuracies over ``(N/p, t)`` per configuration (module docs).

    Returns per configuration ``params``, ``ratios`` (R,), ``exact[field]`` and
    ``linear[field]`` (R, T+1), ``off[field]`` (bool, R x T+1: linearised > 0.03 from exact,
    False on refused rows) and ``refused`` (reason or None per ratio).
    """
    maps = []
    for cfg in exact_map_configs(preset):
        k, n, c, d = (cfg[x] for x in ("n_classes", "per_class", "c", "d"))
        lam, rounds = cfg["lam"], cfg["rounds"]
        counts = exact_counts(transition_matrix("sym", k, cfg["eta"]), n)
        exact, linear, refused = {f: [] for f in EXACT_FIELDS}, {f: [] for f in EXACT_FIELDS}, []
        for ratio in cfg["ratios"]:
            dim = math.inf if ratio == 0 else int(round(k * n / ratio))
            model = MixtureModel(k, n, dim, c, d)
            ex = exact_accuracies(model, counts, lam, rounds, points=cfg["points"])
            lin = linear_prediction(model, counts, lam, rounds)
            refused.append(refusal(lam, ratio))
            for f in EXACT_FIELDS:
                exact[f].append(ex.get(f))
                linear[f].append(np.asarray(getattr(lin, f), dtype=float))
        ok = np.array([r is None for r in refused])[:, None]
        exact = {f: np.array(v) for f, v in exact.items()}
        linear = {f: np.array(v) for f, v in linear.items()}
        maps.append(
            dict(
                params=cfg,
                ratios=np.asarray(cfg["ratios"], dtype=float),
                exact=exact,
                linear=linear,
                off={f: linearised_off(linear[f], exact[f]) & ok for f in EXACT_FIELDS},
                refused=refused,
            )
        )
    return maps


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
        best[lam] = []
        for ratio in p["ratios"]:
            if refusal(lam, ratio) is not None:  # the linearised theory is refused: no value
                best[lam].append((None, None, math.nan))
                continue
            r = population_rounds(preds[lam, ratio], p["delta"])
            best[lam].append((r.best_round, r.first_round_above, r.gain))
    # Monte Carlo check at a few (N/p, t) points of the first heat map
    lam = p["lams"][0]
    samples, theory, labels = [], [], []
    for ratio, t in p["checks"]:
        dim = int(round(big_n / ratio))
        # Rounds 0..t only: a trial's round-t values do not depend on later rounds (the closed
        # form per round on the same sampled Gram matrix and labels), so this is the same number
        # as a trial of R rounds, at a fraction of the cost.
        spec = LinearTrial(k, n, dim, c, d, lam, t, tuple(map(tuple, transition)))
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
        exact_maps=compute_exact_maps(preset),
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
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    p = data["params"]
    lams = p["lams"]
    style.apply_style()
    n_exact = len(data["exact_maps"])
    bottom_height = 2.9 if n_exact == 1 else 4.6
    fig = plt.figure(figsize=(style.PAGE_WIDTH, 3.4 + bottom_height), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(2.9, bottom_height))
    axes = top.subplots(1, len(lams) + 1)
    ratios = np.asarray(p["ratios"], dtype=float)
    edges = _row_edges(ratios)
    outline = [patheffects.withStroke(linewidth=2.6, foreground="black")]
    norm = LogNorm(vmin=ERROR_FLOOR, vmax=1.0)
    image = None
    any_outside = any_refused = False
    for ax, lam in zip(axes[: len(lams)], lams, strict=True):
        acc = data["maps"][lam]["population_acc"].copy()
        refused = np.array([refusal(lam, r) is not None for r in ratios])
        acc[refused] = np.nan  # not drawn: the linearised theory is refused there
        err = np.clip(1.0 - acc, ERROR_FLOOR, 1.0)
        image = ax.pcolormesh(
            np.arange(p["rounds"] + 2) - 0.5, edges, err, cmap=style.CMAP, norm=norm, shading="flat"
        )
        ax.grid(False)
        for i in np.flatnonzero(refused):
            any_refused = True
            ax.add_patch(
                Rectangle(
                    (-0.5, edges[i]), p["rounds"] + 1, edges[i + 1] - edges[i], fill=False,
                    hatch=palette.REFUSED_HATCH, edgecolor=palette.REFERENCE, lw=0.0, zorder=3,
                )
            )  # fmt: skip
        best = [
            population_rounds_from(acc[i], p["delta"]) if not refused[i] else (np.nan, None)
            for i in range(ratios.size)
        ]
        ax.plot([b[0] for b in best], ratios, color="white", lw=1.4, path_effects=outline)
        first = [(b[1] if b[1] is not None else np.nan) for b in best]
        ax.plot(first, ratios, color="white", lw=1.4, ls=":", path_effects=outline)
        ax.set_yticks(ratios, _ratio_labels(ratios))
        ax.set_ylim(edges[0], edges[-1])
        ax.set_xlim(-0.5, p["rounds"] + 0.5)
        style.integer_ticks(ax)
        ax.set_xlabel("round $t$")
        outside = any(not linearised_regime(p["n_classes"], lam, r)[0] for r in ratios if r > 0)
        ax.set_title(f"({'abc'[lams.index(lam)]}) λ={fmt_lam(lam)}" + (" †" if outside else ""))
        any_outside = any_outside or outside
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
    cb = top.colorbar(image, ax=list(axes[: len(lams)]), shrink=0.9, pad=0.02, extend="min")
    cb.set_label("population error 1 − acc.")
    ax = axes[-1]
    for j, lam in enumerate(p["best_lams"]):
        rows = data["best"][lam]
        best = np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=float)
        mk = LAM_MARKERS[j % len(LAM_MARKERS)]
        refused = [f"{x:g}" for x, r in zip(ratios, rows, strict=True) if r[0] is None]
        label = f"λ={lam:g}" + (f" (refused at N/p = {', '.join(refused)})" if refused else "")
        ax.plot(ratios, best, color=palette.THEORY, marker=mk, ms=4.5, lw=1.1, label=label)
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
    ax.set_title(f"({'abc'[len(lams)]}) best round (theory)")
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
    handles += _plot_exact_maps(
        bottom, data["exact_maps"], norm, outline, p["eta"], hatch_handle=not any_refused
    )
    if any_refused:
        handles.append(_refused_handle())
    # † the measured regime map, where no exact value is at hand (docs §16.7)
    top.suptitle(
        f"linearised finite-p theory (K={p['n_classes']}, n={p['per_class']}): population error, "
        "best round"
        + (
            "\n† outside the regime where it was validated against exact SD "
            "(λ ≥ 10⁻², K ≤ 4, N/p ≤ 1)"
            if any_outside
            else ""
        )
    )
    fig.legend(handles=handles, loc="outside lower center", ncol=3, handlelength=2.0)
    fig.suptitle(
        f"Finite-p phase diagram over (N/p, t) (Gaussian mixture c={p['c']}, d={p['d']}, "
        f"sym. noise η={p['eta']})"
    )
    return fig


def _refused_handle():
    from matplotlib.patches import Patch

    return Patch(
        fill=False, hatch=palette.REFUSED_HATCH, edgecolor=palette.REFERENCE,
        label="linearised theory refused",
    )  # fmt: skip


def _plot_exact_maps(sub, maps, norm, outline, eta, hatch_handle=True) -> list:
    """The bottom row: exact population error and mislabeled accuracy per configuration, with
    crosses where the linearised theory is > 0.03 off and hatched refused rows; legend handles."""
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    n_maps = len(maps)
    # One configuration: its two maps side by side; several: one row per quantity.
    axes = sub.subplots(1, 2) if n_maps == 1 else sub.subplots(2, n_maps)
    axes = np.asarray(axes).reshape(2, n_maps)
    etas = sorted({m["params"]["eta"] for m in maps})
    sub.suptitle(
        "exact finite-ratio theory (exact SD at finite p)"
        + ("" if etas == [eta] else f", η = {' / '.join(f'{e:g}' for e in etas)}")
    )
    acc_norm = Normalize(vmin=0.0, vmax=1.0)
    letters = iter("defghijk")
    images = {}
    any_off = any_refused = False
    # Population error maps first (they share the top row's colour scale), then mislabeled.
    for (row, col), (field, m) in zip(
        [(r, c) for r in range(2) for c in range(n_maps)],
        [(f, m) for f in EXACT_FIELDS for m in maps],
        strict=True,
    ):
        ax = axes[row, col]
        cfg = m["params"]
        ratios = m["ratios"]
        edges = _row_edges(ratios)
        t_edges = np.arange(cfg["rounds"] + 2) - 0.5
        if field == "population_acc":
            values = np.clip(1.0 - m["exact"][field], ERROR_FLOOR, 1.0)
            images[field] = ax.pcolormesh(
                t_edges, edges, values, cmap=style.CMAP, norm=norm, shading="flat"
            )
            what = "population error"
        else:
            images[field] = ax.pcolormesh(
                t_edges, edges, m["exact"][field], cmap=style.CMAP, norm=acc_norm, shading="flat"
            )
            what = "mislabeled accuracy"
        ax.grid(False)
        rr, tt = np.nonzero(m["off"][field])
        if rr.size:
            any_off = True
            ax.plot(
                tt, ratios[rr], color="white", path_effects=outline, zorder=4,
                **palette.FLAG_MARKER,
            )  # fmt: skip
        for i, why in enumerate(m["refused"]):
            if why is not None:
                any_refused = True
                ax.add_patch(
                    Rectangle(
                        (t_edges[0], edges[i]), t_edges[-1] - t_edges[0], edges[i + 1] - edges[i],
                        fill=False, hatch=palette.REFUSED_HATCH, edgecolor=palette.REFERENCE,
                        lw=0.0, zorder=3,
                    )
                )  # fmt: skip
        ax.set_yticks(ratios, _ratio_labels(ratios))
        ax.set_ylim(edges[0], edges[-1])
        ax.set_xlim(t_edges[0], t_edges[-1])
        style.integer_ticks(ax)
        ax.set_xlabel("round $t$")
        ax.set_title(
            f"({next(letters)}) K={cfg['n_classes']}, n={cfg['per_class']}, "
            f"λ={fmt_lam(cfg['lam'])}\n{what}"
        )
        if col == 0 or n_maps == 1:
            ax.set_ylabel("$N/p$")
    cb = sub.colorbar(
        images["population_acc"], ax=list(axes[0]), shrink=0.9, pad=0.02, extend="min"
    )
    cb.set_label("population error")
    cb = sub.colorbar(images["train_acc_mislabeled"], ax=list(axes[1]), shrink=0.9, pad=0.02)
    cb.set_label("mislabeled accuracy")
    handles = []
    if any_off:
        handles.append(
            Line2D(
                [],
                [],
                color="white",
                path_effects=outline,
                label="linearised > 0.03 from exact theory",
                **palette.FLAG_MARKER,
            )
        )
    if any_refused and hatch_handle:
        handles.append(_refused_handle())
    return handles


def population_rounds_from(acc, delta):
    """(best round, first round >= 1 - delta or None) of one accuracy row."""
    acc = np.asarray(acc)
    above = np.flatnonzero(acc >= 1.0 - delta)
    return int(np.argmax(acc)), (int(above[0]) if above.size else None)


def table(data: dict) -> list[dict]:
    """Heat-map cells of the linearised theory (kind "map"), best rounds (kind "best") and the
    exact maps' cells (kind "exact", with the linearised value at the same point, its flag and
    whether it is refused); NaN / empty where not applicable."""
    p = data["params"]
    nan = math.nan
    blank = dict(
        linear_population_acc=nan,
        linear_mislabeled_acc=nan,
        linearised_off_population=None,
        linearised_off_mislabeled=None,
        linearised_refused=None,
    )
    rows = []
    for lam, m in data["maps"].items():
        for i, ratio in enumerate(m["ratios"]):
            for t in range(p["rounds"] + 1):
                rows.append(
                    dict(
                        kind="map",
                        n_classes=p["n_classes"],
                        per_class=p["per_class"],
                        lam=float(lam),
                        ratio=float(ratio),
                        dim=float(m["dims"][i]),
                        round=t,
                        population_acc=float(m["population_acc"][i, t]),
                        mislabeled_acc=float(m["train_acc_mislabeled"][i, t]),
                        best_round=nan,
                        first_round_above=nan,
                        gain=nan,
                        **blank,
                    )
                )
    for lam, best in data["best"].items():
        for ratio, (b, first, gain) in zip(p["ratios"], best, strict=True):
            rows.append(
                dict(
                    kind="best",
                    n_classes=p["n_classes"],
                    per_class=p["per_class"],
                    lam=float(lam),
                    ratio=float(ratio),
                    dim=nan,
                    round=nan,
                    population_acc=nan,
                    mislabeled_acc=nan,
                    best_round=nan if b is None else float(b),
                    first_round_above=nan if first is None else float(first),
                    gain=float(gain),
                    **blank,
                )
            )
    for m in data["exact_maps"]:
        cfg = m["params"]
        big_n = cfg["n_classes"] * cfg["per_class"]
        pop, mis = EXACT_FIELDS
        for i, ratio in enumerate(m["ratios"]):
            for t in range(cfg["rounds"] + 1):
                rows.append(
                    dict(
                        kind="exact",
                        n_classes=cfg["n_classes"],
                        per_class=cfg["per_class"],
                        lam=float(cfg["lam"]),
                        ratio=float(ratio),
                        dim=math.inf if ratio == 0 else float(round(big_n / ratio)),
                        round=t,
                        population_acc=float(m["exact"][pop][i, t]),
                        mislabeled_acc=float(m["exact"][mis][i, t]),
                        best_round=nan,
                        first_round_above=nan,
                        gain=nan,
                        linear_population_acc=float(m["linear"][pop][i, t]),
                        linear_mislabeled_acc=float(m["linear"][mis][i, t]),
                        linearised_off_population=bool(m["off"][pop][i, t]),
                        linearised_off_mislabeled=bool(m["off"][mis][i, t]),
                        linearised_refused=m["refused"][i] is not None,
                    )
                )
    return rows


def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    """Compute the figure, check it, and write ``finite_phase`` to ``out``.

    What ``python -m figures.finite_phase`` does after reading its options, and what the runner
    (``python -m figures``) calls for this figure.

    Parameters
    ----------
    preset : {"quick", "paper", "tiny"}
        Problem sizes (:data:`PRESETS`).
    out : path-like, optional
        Output directory (default ``./selfdistill-figures``), checked for writability first.
    seed : int
        Base seed (>= 0) of every random stream.
    workers : int
        Processes for the Monte Carlo trials (the runner caps them at the usable cores).

    Returns
    -------
    int
        Exit status, 0.

    Raises
    ------
    figures.common.AgreementError
        Theory and simulation (or two computations of the theory) disagree beyond tolerance.
    """
    out = prepare_output(out)
    data = compute(preset, seed, workers)
    flagged = [
        f"K={m['params']['n_classes']}, λ={m['params']['lam']:g}: "
        f"{int(sum(m['off'][f].sum() for f in EXACT_FIELDS))} of "
        f"{int(sum(m['off'][f].size for f in EXACT_FIELDS))}"
        for m in data["exact_maps"]
    ]
    log(
        f"  {NAME}: linearised Monte Carlo agrees with the finite-p theory "
        f"({data['check']['n_comparisons']} comparisons); exact-map cells where the linearised "
        f"theory is > {LINEARISED_TOL:g} from the exact one: {'; '.join(flagged)}"
    )
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv, "Finite-p phase diagram over (N/p, t)", PRESETS)
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
