r"""Figure: Gram spectrum of the block model and the label-averaging eigen-weights.

(a) The block Gram matrix ``G = (1-c) I + (c-d) B + d 11^T`` has three eigenvalues:
``mu_1 = 1 - c + n(c - d) + N d`` (global mean, multiplicity 1), ``mu_2 = 1 - c + n(c - d)``
(class contrasts, ``K - 1``) and ``mu_3 = 1 - c`` (within-class contrasts, ``N - K``). Lines:
theory; markers: the spectrum of one sampled Gaussian-mixture Gram matrix at finite ``p`` (the
bulk spreads around ``1 - c`` like a Marchenko-Pastur law of ratio ``N/p``, tightening as ``p``
grows).

(b) Round ``t`` keeps eigen-direction ``j`` with weight ``(mu_j/(mu_j + K lam N))^(t+1)``: the
within-class directions (the memorised, possibly wrong own labels) fade geometrically faster than
the class directions, which fade faster than the global mean.

(c) Hence the own-label part shrinks relative to the class-histogram part by
``rho^(t+1)``, ``rho = a_2/a_3``; all mislabeled points are corrected once
``rho^(t+1) > 1 + 1/Delta*`` (``Delta*`` = smallest class-wise margin of the true label over a wrong
label, :mod:`theory.conditions`), marked for several noise rates.

Checks (fail loudly): the numerical spectrum of the explicit block matrix equals the three
closed-form eigenvalues with their multiplicities; :func:`theory.averaging.eigen_weights` equals
the block model's filter ratios; the crossing rounds in (c) equal
:func:`theory.conditions.min_rounds_linear`.
"""

from __future__ import annotations

import numpy as np

from figures import palette, style
from figures.common import (
    NO_MC_WORKERS,
    AgreementError,
    check_close,
    figure_run,
    log,
    parse_args,
    prepare_output,
)
from simulations.features import mixture_gram
from theory.averaging import eigen_weights, gram_spectrum
from theory.conditions import eigen_ratio_rho, min_rounds_linear, mislabeled_margin
from theory.groups import BlockModel
from theory.noise import exact_counts, transition_matrix

NAME = "spectrum"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=6,
        c=0.4,
        d=0.1,
        lams=(1e-3, 1e-2),
        dims=(20, 400),
        rounds=8,
        etas=(0.3, 0.5),
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        lams=(1e-3, 1e-2),
        dims=(200, 20000),
        rounds=12,
        etas=(0.3, 0.5, 0.6),
    ),
    "paper": dict(
        n_classes=4,
        per_class=50,
        c=0.4,
        d=0.1,
        lams=(1e-3, 1e-2),
        dims=(400, 4000, 400000),
        rounds=15,
        etas=(0.3, 0.5, 0.6, 0.7),
    ),
}


def compute(preset: str = "quick", seed: int = 0) -> dict:
    p = PRESETS[preset]
    k, n, c, d = p["n_classes"], p["per_class"], p["c"], p["d"]
    model = BlockModel(k, n, c, d)
    big_n = model.n_samples
    mu = model.eigenvalues
    expected = np.repeat(mu, model.multiplicities)
    numeric = gram_spectrum(gram=model.gram()).eigenvalues
    # eigh is backward stable: eigenvalue errors <= ~N eps ||G||_2 = N eps mu_1.
    check_close(
        numeric,
        expected[: numeric.size],
        atol=big_n * np.finfo(float).eps * mu.max() * 10,
        what="spectrum: numerical eigenvalues of the block matrix vs closed form",
    )
    t = np.arange(p["rounds"] + 1)
    weights = {}
    for lam in p["lams"]:
        w = eigen_weights(mu, k, lam, big_n, p["rounds"])
        check_close(
            w,
            model.filter_ratios(lam)[None, :] ** (t[:, None] + 1),
            atol=1e-14,
            what="spectrum: eigen_weights vs block filter ratios",
        )
        weights[lam] = w
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n)
    sampled = {
        dim: np.linalg.eigvalsh(mixture_gram(k, dim, c, d, labels, rng))[::-1] for dim in p["dims"]
    }
    lam0 = p["lams"][0]
    rho = eigen_ratio_rho(model, lam0)
    margins = {}
    for eta in p["etas"]:
        counts = exact_counts(transition_matrix("sym", k, eta), n)
        dstar = mislabeled_margin(counts)
        t_min = min_rounds_linear(model, counts, lam0)
        # First t with rho^(t+1) > 1 + 1/Delta*, computed here independently of theory.conditions.
        crossing = next(int(s) for s in range(10_000) if rho ** (s + 1) - 1 > 1 / dstar)
        if t_min != crossing:
            raise AgreementError(
                f"spectrum: min_rounds_linear={t_min} but rho^(t+1) crosses 1+1/Delta* at "
                f"t={crossing} (eta={eta})"
            )
        margins[eta] = (dstar, t_min)
    return dict(
        params=p,
        mu=mu,
        mult=model.multiplicities,
        numeric=numeric,
        weights=weights,
        sampled=sampled,
        rho=rho,
        margins=margins,
        lam0=lam0,
    )


def plot(data: dict):
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D

    p = data["params"]
    mu, mult = data["mu"], data["mult"]
    big_n = p["n_classes"] * p["per_class"]
    fig, axes = style.figure(3, 1, width=2.4, height=2.6)
    ax = axes[0]
    dims = sorted(data["sampled"], reverse=True)  # small N/p first (light)
    handles = []
    for i, dim in enumerate(dims):
        ev = data["sampled"][dim]
        # The darker (smaller p) markers are hollow and on top: at the spikes both sets sit on
        # the same eigenvalues, and filled markers hid the lighter ones there.
        hollow = i > 0
        (line,) = ax.plot(
            np.arange(1, ev.size + 1),
            np.clip(ev, 1e-3, None),
            "o",
            ms=2.6 if hollow else 2.2,
            color=palette.dim_color(i, len(dims)),
            mfc="none" if hollow else None,
            mew=0.8,
            ls="none",
            label=f"sampled, p={style.fmt_count(dim)}",
            zorder=3 + i,
        )
        handles.append(line)
    # Theory: one horizontal segment per eigenvalue group, in its colour (the key for (b)).
    edges = np.concatenate([[0.75], np.cumsum(mult) + 0.5])
    ax.vlines(edges[1:-1], mu[1:], mu[:-1], color=palette.THEORY, lw=0.8, zorder=2)
    names = ("μ₁", f"μ₂ ×{mult[1]}", f"μ₃ ×{mult[2]}")
    for j in range(3):
        ax.hlines(mu[j], edges[j], edges[j + 1], color=palette.EIGEN[j], lw=2.2, zorder=2)
        x = edges[j] if j < 2 else edges[j] * 1.3
        ax.annotate(
            names[j],
            (x, mu[j]),
            xytext=(1, -3),
            textcoords="offset points",
            va="top",
            color=palette.EIGEN[j],
        )
    # The theory's key: its three segments' colours (the legend of (b) names the groups).
    theory_key = tuple(Line2D([], [], color=palette.EIGEN[j], lw=2.2) for j in range(3))
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("eigenvalue index $j$")
    ax.set_ylabel("eigenvalue $\\mu_j$ of $G$")
    ax.set_title("(a) three eigenvalue groups")
    ax.legend(
        handles=[*handles, theory_key],
        labels=[h.get_label() for h in handles] + ["theory"],
        handler_map={tuple: HandlerTuple(ndivide=None, pad=0.0)},
        loc="lower left",
        handletextpad=0.5,
        borderaxespad=0.1,
        labelspacing=0.25,
    )

    ax = axes[1]
    t = np.arange(p["rounds"] + 1)
    widths = (1.8, 0.9)
    for i, (_lam, w) in enumerate(data["weights"].items()):
        for j in range(3):
            style.theory_line(ax, t, w[:, j], color=palette.EIGEN[j], lw=widths[i])
    for i, lam in enumerate(p["lams"][:2]):
        ax.plot([], [], color="0.4", lw=widths[i], label=f"λ={lam:g}")
    for j, name in enumerate(("μ₁ global", "μ₂ class", "μ₃ within")):
        ax.plot([], [], color=palette.EIGEN[j], lw=1.8, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("round $t$")
    style.integer_ticks(ax)
    ax.set_ylabel("eigen-weight $a_j^{t+1}$")
    ax.set_title("(b) weights per round")
    ax.legend(loc="lower left", ncol=1, handlelength=1.4, borderaxespad=0.1, labelspacing=0.25)

    ax = axes[2]
    rho = data["rho"]
    style.theory_line(ax, t, rho ** (t + 1), color=palette.THEORY, label="$\\rho^{t+1}$")
    items = list(data["margins"].items())
    for i, (eta, (dstar, t_min)) in enumerate(items):
        col = palette.eta_color(i, len(items))
        thr = 1 + 1 / dstar
        ax.axhline(thr, color=col, ls="-", lw=1.0, zorder=1)
        ax.plot([], [], color=col, marker="o", ms=4, label=f"η={eta:g}: $t_{{min}}$={t_min}")
        if t_min is not None and t_min <= t[-1]:
            # The minimum round, marked on its own threshold: markers of equal rounds stay apart.
            ax.plot(t_min, thr, "o", color=col, ms=5, mec="black", mew=0.5, zorder=4)
            ax.vlines(t_min, thr, rho ** (t_min + 1), color=col, lw=0.8, ls=":", zorder=2)
    ax.set_yscale("log")
    ax.set_xlabel("round $t$")
    style.integer_ticks(ax)
    ax.set_ylabel("own-label suppression $\\rho^{t+1}$")
    ax.set_title(f"(c) labels fixed (λ={data['lam0']:g})")
    ax.legend(
        loc="upper left",
        title="lines: 1 + 1/Δ*",
        handlelength=1.2,
        borderaxespad=0.2,
        alignment="left",
    )
    fig.suptitle(
        f"Block Gram spectrum (K={p['n_classes']}, n={p['per_class']}, N={big_n}, c={p['c']}, "
        f"d={p['d']}): $a_j = \\mu_j/(\\mu_j+K\\lambda N)$, $\\rho = a_2/a_3$,\n"
        "Δ* = smallest class-wise margin of the true label over a wrong label"
    )
    return fig


def table(data: dict) -> list[dict]:
    rows = []
    for j, (m, mlt) in enumerate(zip(data["mu"], data["mult"], strict=False), 1):
        rows.append(dict(kind="block_eigenvalue", group=j, value=m, multiplicity=mlt))
    for dim, ev in data["sampled"].items():
        for j, v in enumerate(ev, 1):
            rows.append(dict(kind="mixture_eigenvalue", dim=dim, index=j, value=v))
    for lam, w in data["weights"].items():
        for t in range(w.shape[0]):
            for j in range(3):
                rows.append(dict(kind="eigen_weight", lam=lam, round=t, group=j + 1, value=w[t, j]))
    for eta, (dstar, t_min) in data["margins"].items():
        rows.append(
            dict(
                kind="min_round",
                lam=data["lam0"],
                eta=eta,
                delta_star=dstar,
                value=t_min,
                rho=data["rho"],
            )
        )
    return rows


@figure_run(NAME, NO_MC_WORKERS)
def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    out = prepare_output(out)
    data = compute(preset, seed)
    log(f"  {NAME}: spectrum, eigen-weights and min-round crossings checked")
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv, "Gram spectrum and eigen-weights figure", PRESETS, module=__spec__.name)
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
