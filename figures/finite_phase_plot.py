r"""Drawing of the figure :mod:`figures.finite_phase` (its ``plot``), apart from the computation.

:func:`plot` takes the data of :func:`figures.finite_phase.compute` and returns the matplotlib
figure: top, the linearised finite-``p`` theory's population error over ``(N/p, t)`` per ``lam``
with its best rounds, and the best round against ``N/p``; bottom, the exact finite-ratio theory's
maps. What is drawn and why is in :mod:`figures.finite_phase`.
"""

from __future__ import annotations

import numpy as np

from figures import palette, style
from figures.finite_theories import fmt_lam, linearised_regime, refusal

__all__ = ["ERROR_FLOOR", "EXACT_FIELDS", "LAM_MARKERS", "plot", "population_rounds_from"]

#: Quantities of the exact maps: theory field -> (colour-bar label, kind).
EXACT_FIELDS = ("population_acc", "train_acc_mislabeled")
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


def _set_ratio_ticks(ax, ratios) -> None:
    """The rows' ticks and labels; when the block-limit row and the next labelled one are close
    (0 and 0.25 of a range of 2), their labels lean apart (top / bottom aligned) instead of
    touching."""
    labels = _ratio_labels(ratios)
    ax.set_yticks(ratios, labels)
    span = max(float(np.max(ratios) - np.min(ratios)), 1e-12)
    shown = [i for i, text in enumerate(labels) if text]
    if len(shown) >= 2 and ratios[shown[1]] - ratios[shown[0]] < 0.2 * span:
        ticks = ax.get_yticklabels()
        ticks[shown[0]].set_va("top")
        ticks[shown[1]].set_va("bottom")


def plot(data: dict):
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import offset_copy

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
        _set_ratio_ticks(ax, ratios)
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
                # Beside the marker in the first half; below-left of it in the second, where
                # the best-round line rises towards the top right through the marker's row.
                ax.annotate(
                    f"MC {mean:.2f}",
                    (t, ratio),
                    xytext=(7, 0) if right else (-3, -7),
                    textcoords="offset points",
                    ha="left" if right else "right",
                    va="center" if right else "top",
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
            # Offset in points, clear of the round's own marker beneath it.
            above = offset_copy(ax.transData, fig=fig, y=7, units="points")
            ax.plot(
                ratios[clipped],
                best[clipped],
                "^",
                transform=above,
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
        _set_ratio_ticks(ax, ratios)
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
