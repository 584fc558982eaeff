r"""Figure: label averaging — exact vs linearised training outputs over self-distillation rounds.

A small block Gram matrix (``K`` classes of ``n`` points, 1 on the diagonal, ``c`` within and ``d``
across classes) with symmetric label noise (exact counts). For every training point and round
``t = 0..R`` the figure shows the output probability of the point's TRUE class, for

* the exact probe (every round solved to a KKT certificate by :mod:`simulations.distill`), and
* the linearised closed form ``P^(t) = 1/K + (Y - 1/K) A^(t+1)`` (:mod:`theory.averaging`),

drawn as (a) the exact outputs and (b) their difference to the linearised ones (the two maps
look alike), plus (c) the trajectories of mislabeled and clean points against their class average.
Mislabeled points start by memorising their wrong label (low probability of the true class) and are
pulled, round by round, to the class average: the own-label eigen-directions
(``mu_3 = 1 - c``) are filtered by ``(mu_3/(mu_3 + K lam N))^(t+1)`` much faster than the class
directions.

Checks (fail loudly): the full ``N x N`` exact solve equals the exact group-level theory
(:func:`theory.groups.predict_exact`) within the solver certificate, and the closed form equals the
group-level linearisation (:func:`theory.groups.predict_linear`) to float round-off.
"""

from __future__ import annotations

import numpy as np

from figures import palette, style
from figures.common import (
    NO_MC_WORKERS,
    check_close,
    figure_run,
    log,
    parse_args,
    prepare_output,
)
from simulations.distill import self_distill
from simulations.noise import sample_noisy_labels
from theory.averaging import linearised_outputs
from theory.gram import block_gram
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix
from theory.validation import one_hot

NAME = "label_averaging"
PRESETS = {
    "tiny": dict(n_classes=3, per_class=4, c=0.5, d=0.1, eta=0.25, lam=5e-3, rounds=3),
    "quick": dict(n_classes=3, per_class=8, c=0.5, d=0.1, eta=0.25, lam=5e-3, rounds=6),
    "paper": dict(n_classes=3, per_class=12, c=0.5, d=0.1, eta=0.25, lam=5e-3, rounds=8),
}
#: Residual every exact solve is certified to (solver default).
SOLVER_TOL = 1e-9
#: Float round-off allowance for two closed forms built from a few BLAS calls (N <= 100).
FLOAT_ATOL = 1e-10


def compute(preset: str = "quick", seed: int = 0) -> dict:
    """All data of the figure (see module docstring); runs the consistency checks."""
    p = PRESETS[preset]
    k, n, c, d, lam, rounds = (p[x] for x in ("n_classes", "per_class", "c", "d", "lam", "rounds"))
    model = BlockModel(k, n, c, d)
    gram = block_gram(k, n, c, d)
    y = np.repeat(np.arange(k), n)
    transition = transition_matrix("sym", k, p["eta"])
    noisy = sample_noisy_labels(y, transition, np.random.default_rng(seed), mode="exact-count")
    counts = exact_counts(transition, n)
    # Display order: class-major, clean points before mislabeled ones within a class.
    order = np.lexsort((noisy != y, y))
    y, noisy = y[order], noisy[order]
    gram = gram[np.ix_(order, order)]

    exact = self_distill(noisy, k, lam, rounds, gram=gram).outputs  # (R+1, K, N)
    linear = linearised_outputs(one_hot(noisy, k), lam, rounds, gram=gram)

    # Check 1: full exact solve == exact group-level theory. Two solves certified to residual r
    # differ by <= 2 r (1 + L), L = mu_max / (2 lam N) (softmax is 1/2-Lipschitz); the error of
    # round t's targets adds at most that much per round, hence the factor (R + 1).
    # The group theories directly, not theory.spec.predict: the checks compare group outputs,
    # which a Result (accuracies per round) does not carry.
    theory_exact = predict_exact(model, counts, lam, rounds)
    mu_max = model.eigenvalues.max()
    atol = (rounds + 1) * 2 * SOLVER_TOL * (1 + mu_max / (2 * lam * model.n_samples)) + 1e-12
    err_exact = check_close(
        exact,
        theory_exact.outputs[:, y, noisy, :].transpose(0, 2, 1),
        atol=atol,
        what="label averaging: N x N exact solve vs group-level exact theory",
    )
    # Check 2: eigendecomposition closed form == group-level linearisation.
    theory_linear = predict_linear(model, counts, lam, rounds)
    err_linear = check_close(
        linear,
        theory_linear.outputs[:, y, noisy, :].transpose(0, 2, 1),
        atol=FLOAT_ATOL,
        what="label averaging: spectral closed form vs group-level linearisation",
    )
    idx = np.arange(y.size)
    p_true_exact = exact[:, y, idx]  # (R+1, N)
    p_true_linear = linear[:, y, idx]
    return dict(
        params=p,
        y=y,
        noisy=noisy,
        p_true_exact=p_true_exact,
        p_true_linear=p_true_linear,
        max_gap=float(np.max(np.abs(exact - linear))),
        err_exact=err_exact,
        err_linear=err_linear,
        exact_acc_mis=theory_exact.train_acc_mislabeled,
        linear_acc_mis=theory_linear.train_acc_mislabeled,
    )


def plot(data: dict):
    """Build the figure from :func:`compute`'s data.

    (a) the exact probe's output probability of the true class per point and round; (b) its
    difference to the linearised closed form (the two maps look alike, so the difference is what
    is drawn); (c) the mean over clean and mislabeled points, exact (solid) and linearised
    (dashed), against the class average and the uniform output ``1/K``.
    """
    from matplotlib.colors import TwoSlopeNorm

    y, noisy = data["y"], data["noisy"]
    pe, pl = data["p_true_exact"], data["p_true_linear"]
    rounds = pe.shape[0] - 1
    k = int(y.max()) + 1
    fig, axes = style.figure(3, 1, width=2.4, height=2.5)
    mis = noisy != y
    diff = pe - pl
    span = max(float(np.max(np.abs(diff))), 1e-12)
    extent = (-0.5, rounds + 0.5, y.size - 0.5, -0.5)
    panels = (
        (axes[0], pe, "(a) exact probe", dict(cmap=style.CMAP, vmin=0, vmax=1)),
        (
            axes[1],
            diff,
            "(b) exact − linearised",
            dict(cmap="BrBG", norm=TwoSlopeNorm(0.0, -span, span)),
        ),
    )
    for ax, mat, title, kw in panels:
        im = ax.imshow(mat.T, aspect="auto", interpolation="nearest", extent=extent, **kw)
        ax.grid(False)
        ax.set_title(title)
        ax.set_xlabel("round $t$")
        ax.set_xticks(range(rounds + 1))
        for b in range(1, k):
            ax.axhline(b * (y.size // k) - 0.5, color="white", lw=1.2)
        cb = fig.colorbar(im, ax=ax, pad=0.03, fraction=0.08)
        cb.set_label("P(true class)" if ax is axes[0] else "difference in P(true class)")
        if ax is not axes[0]:
            continue
        rows = np.flatnonzero(mis)  # mislabeled rows, marked at the right edge
        ax.plot(
            np.full(rows.size, rounds + 0.5),
            rows,
            marker="<",
            ls="none",
            color=palette.MISLABELED,
            ms=4,
            clip_on=False,
        )
    axes[0].set_ylabel("training point (◀ mislabeled)")
    axes[1].set_yticklabels([])

    ax = axes[2]
    t = np.arange(rounds + 1)
    for mask, color, name in (
        (mis, palette.MISLABELED, "mislabeled"),
        (~mis, palette.CLEAN, "clean"),
    ):
        style.theory_line(ax, t, pe[:, mask].mean(axis=1), color=color, label=f"{name} points")
        style.theory_line(ax, t, pl[:, mask].mean(axis=1), color=color, linear=True)
    style.theory_line(
        ax, t, np.mean(pe, axis=1), color=palette.THEORY, lw=1.0, label="class average (exact)"
    )
    style.reference_line(ax, 1.0 / k, "1/K (uniform)", pos=0.98)
    ax.set_xlabel("round $t$")
    ax.set_ylabel("mean P(true class)")
    ax.set_title("(c) group means")
    ax.set_xticks(t)
    ax.set_ylim(0.0, 1.0)
    handles, labels = ax.get_legend_handles_labels()
    handles += style.encoding_handles(exact=True, linear=True, sim=False)
    labels += ["exact (certified solve)", "linearised closed form"]
    # Below the panels: inside the axes every free corner is crossed by a curve or the 1/K line.
    fig.legend(handles, labels, loc="outside lower center", ncol=3)
    p = data["params"]
    fig.suptitle(
        f"Label averaging (block Gram K={p['n_classes']}, n={p['per_class']}, c={p['c']}, "
        f"d={p['d']}; sym. noise η={p['eta']}; λ={p['lam']:g})"
    )
    return fig


def table(data: dict) -> list[dict]:
    """Tidy rows: one per (round, point)."""
    rows = []
    pe, pl = data["p_true_exact"], data["p_true_linear"]
    for t in range(pe.shape[0]):
        for i in range(pe.shape[1]):
            rows.append(
                dict(
                    round=t,
                    point=i,
                    true_class=int(data["y"][i]),
                    given_label=int(data["noisy"][i]),
                    p_true_exact=pe[t, i],
                    p_true_linear=pl[t, i],
                )
            )
    return rows


@figure_run(NAME, NO_MC_WORKERS)
def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    out = prepare_output(out)
    data = compute(preset, seed)
    log(
        f"  {NAME}: N x N exact vs group theory max diff {data['err_exact']:.2g}; closed form vs "
        f"group linearisation {data['err_linear']:.2g}; exact vs linearised {data['max_gap']:.3f}"
    )
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    return 0


def main(argv=None) -> int:
    args = parse_args(
        argv, "Label-averaging figure: exact vs linearised outputs", PRESETS, module=__spec__.name
    )
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
