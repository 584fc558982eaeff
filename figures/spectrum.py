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
from matplotlib.ticker import MaxNLocator

from figures import style
from figures.common import AgreementError, check_close, log, parse_args
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
    p = data["params"]
    mu, mult = data["mu"], data["mult"]
    fig, axes = style.figure(3, 1, width=3.2, height=2.9)
    ax = axes[0]
    idx = np.arange(1, data["numeric"].size + 1)
    markers = ("o", "s", "^")
    colors = (style.OKABE_ITO["skyblue"], style.OKABE_ITO["orange"], style.OKABE_ITO["purple"])
    for (dim, ev), mk, col in zip(data["sampled"].items(), markers, colors, strict=False):
        ax.plot(
            np.arange(1, ev.size + 1),
            np.clip(ev, 1e-3, None),
            mk,
            ms=2.5,
            color=col,
            ls="none",
            label=f"simulation: mixture, p={style.fmt_count(dim)}",
            zorder=3,
        )
    style.theory_line(
        ax,
        idx,
        np.repeat(mu, mult),
        color="black",
        drawstyle="steps-mid",
        label="theory: block model",
    )
    names = ("μ₁ global", f"μ₂ class ×{mult[1]}", f"μ₃ within ×{mult[2]}")
    for m, name, x in zip(mu, names, (1.5, 1.5, idx.size * 0.35), strict=False):
        ax.annotate(name, (x, m), textcoords="offset points", xytext=(6, 3), fontsize=7.5)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("eigenvalue index $j$")
    ax.set_ylabel("eigenvalue $\\mu_j$ of $G$")
    ax.set_title("(a) three eigenvalue groups")
    ax.legend(loc="lower left")

    ax = axes[1]
    t = np.arange(p["rounds"] + 1)
    labels = ("μ₁ (global mean)", "μ₂ (class means)", "μ₃ (within class)")
    cols = (style.OKABE_ITO["black"], style.OKABE_ITO["blue"], style.OKABE_ITO["vermillion"])
    for i, (_lam, w) in enumerate(data["weights"].items()):
        for j in range(3):
            style.theory_line(
                ax,
                t,
                w[:, j],
                color=cols[j],
                linear=i > 0,
                label=f"{labels[j]}" if i == 0 else None,
            )
    ax.plot([], [], color="grey", ls="-", label=f"λ={p['lams'][0]:g}")
    ax.plot([], [], color="grey", ls="--", label=f"λ={p['lams'][1]:g}")
    ax.set_yscale("log")
    ax.set_xlabel("round $t$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("weight $(\\mu_j/(\\mu_j+K\\lambda N))^{t+1}$")
    ax.set_title("(b) eigen-weights per round")
    ax.legend(loc="lower left", ncol=1)

    ax = axes[2]
    rho = data["rho"]
    style.theory_line(ax, t, rho ** (t + 1), color="black", label="$\\rho^{t+1}$, $\\rho=a_2/a_3$")
    items = list(data["margins"].items())
    for i, ((eta, (dstar, t_min)), col) in enumerate(
        zip(items, style.ROUND_COLORS[1:], strict=False)
    ):
        thr = 1 + 1 / dstar
        ax.axhline(thr, color=col, ls="--", lw=1.2, label=f"$1+1/\\Delta^*$, η={eta:g}")
        if t_min is not None and t_min <= t[-1]:
            # Decreasing sizes keep coinciding minimum rounds visible (concentric markers).
            ax.plot(t_min, rho ** (t_min + 1), "o", color=col, ms=9 - 2 * i, zorder=4 + i)
    ax.set_yscale("log")
    ax.set_xlabel("round $t$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("own-label suppression $w_2/w_3$")
    ax.set_title(f"(c) when labels are fixed (λ={data['lam0']:g})")
    ax.legend(loc="upper left")
    fig.suptitle(
        f"Block Gram spectrum: K={p['n_classes']}, n={p['per_class']}, c={p['c']}, d={p['d']} "
        "(lines: theory; markers: sampled mixture Gram; ● minimum round)",
        fontsize=9,
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


def main(argv=None) -> int:
    args = parse_args(argv, "Gram spectrum and eigen-weights figure", PRESETS)
    data = compute(args.preset, args.seed)
    log(f"  {NAME}: spectrum, eigen-weights and min-round crossings checked")
    style.save_figure(plot(data), args.out, NAME)
    style.write_csv(table(data), args.out, NAME)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
