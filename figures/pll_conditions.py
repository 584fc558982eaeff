r"""Figure: phase diagrams of 100% accuracy for the PLL students of each candidate-set loss.

Block model (``K`` classes of ``n`` points, ``c``, ``d``), exact label counts. Every cell is one
group-level computation (cost independent of ``n``): the teacher's top-2 candidates, then the
student of each loss (:mod:`theory.pll_conditions`, docs/theory.md Section 15):

* two-hot ``ce``: the unique exact student (:func:`theory.pll.predict_pll`);
* ``candidate`` and ``gce`` (``q``): the **gradient-flow student from the teacher**
  (:func:`theory.pll_conditions.flow_student`), the stationary point the small-step limit of
  gradient descent from the teacher's weights reaches (saddles are left on both sides);
* SD: the linearised minimum number of rounds ``t_min`` of multi-round self-distillation
  (:func:`theory.conditions.min_rounds_linear`; blank = never).

Rows 1-3 (noise ``sym``, ``pair``, ``asym``): noise rate ``eta`` x ``lam``. Row 4: noise-free data
(the teacher's runner-up is decided by the tie rule, so every class is a whole-class tie) over
``d`` x ``lam`` for the three losses, and ``gce`` under pair noise over ``q`` x ``lam``.
Colours: training and population accuracy both 100%, only one of them, neither, or a tie
(training points tied between their candidates: an error). Markers: ``x`` the flow's outcome
depended on the side a saddle was left on (ambiguous); ``o`` the Newton engine of
``theory predict`` (descent from the teacher with long steps) reports a different accuracy than
the flow (another stationary point). Lines: ``lam`` above which the set-loss student is unique
(Theorem 15.2a, dashed), above which the linearised student is guaranteed to exist (Theorem
15.2c, dotted), and where the tied point of the symmetric problems changes stability (closed form
of Proposition 15.5, solid; pair noise and ``d = 0``).

Check (fails loudly): at a few cells the student is compared with the ``N x N`` problem on exact
block features (:func:`simulations.features.exact_block_features`): the group student must be a
stationary point of the ``N x N`` objective (fixed-point residual with the explicit Gram matrix),
and where the student is unique (``ce``, or ``lam`` in the uniqueness regime) the ``N x N`` exact
student (:func:`simulations.pll_losses.train_pll_student`) must have the same outputs. Elsewhere
the ``N x N`` student (truncated Newton from the teacher) may reach another local minimum; its
accuracy is reported in the CSV (``pll_conditions_nxn.csv``) and the log, not enforced.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.patches import Patch

from figures import style
from figures.common import AgreementError, log, parse_args
from selfdistill_cli.progress import progress_bar
from simulations.features import exact_block_features
from simulations.pll_losses import train_pll_student
from simulations.solver import solve_probe
from theory.conditions import min_rounds_linear
from theory.groups import BlockModel, predict_exact
from theory.losses import make_loss, softmax_deviation
from theory.names import DEFAULT_Q, LOSS_LABELS, THEORY_LOSSES
from theory.noise import exact_counts, transition_matrix
from theory.pll import group_top2, predict_pll
from theory.pll_conditions import (
    flow_student,
    linear_defined_lam,
    tied_point,
    uniqueness_lam,
)

NAME = "pll_conditions"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=4,
        c=0.4,
        d=0.1,
        q=DEFAULT_Q,
        kinds=("sym", "pair"),
        etas=(0.3,),
        lams=(1e-3, 1e-1),
        ds=(0.0, 0.1),
        qs=(0.7,),
        q_eta=0.3,
        nxn=(("pair", 0.3, 0.1, 1e-3, "candidate"), ("sym", 0.3, 0.1, 0.3, "gce")),
    ),
    "quick": dict(
        n_classes=4,
        per_class=10,
        c=0.4,
        d=0.1,
        q=DEFAULT_Q,
        kinds=("sym", "pair", "asym"),
        etas=tuple(np.round(np.arange(0.0, 0.71, 0.1), 2)),
        lams=tuple(np.geomspace(1e-4, 1e-1, 6)),
        ds=tuple(np.round(np.linspace(-0.1, 0.2, 7), 3)),
        qs=(0.1, 0.3, 0.5, 0.7, 1.0),
        q_eta=0.3,
        nxn=(
            ("pair", 0.3, 0.1, 1e-3, "candidate"),
            ("sym", 0.3, 0.1, 1e-3, "gce"),
            ("asym", 0.4, 0.1, 1e-2, "candidate"),
            ("sym", 0.4, 0.1, 0.5, "gce"),
        ),
    ),
    "paper": dict(
        n_classes=4,
        per_class=10,
        c=0.4,
        d=0.1,
        q=DEFAULT_Q,
        kinds=("sym", "pair", "asym"),
        etas=tuple(np.round(np.arange(0.0, 0.751, 0.05), 2)),
        lams=tuple(np.geomspace(1e-4, 1e0, 13)),
        ds=tuple(np.round(np.linspace(-0.1, 0.2, 13), 3)),
        qs=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.85, 1.0),
        q_eta=0.3,
        nxn=(
            ("pair", 0.3, 0.1, 1e-3, "candidate"),
            ("pair", 0.3, 0.0, 1e-3, "gce"),
            ("sym", 0.3, 0.1, 1e-3, "gce"),
            ("sym", 0.0, 0.0, 1e-3, "candidate"),
            ("asym", 0.4, 0.1, 1e-2, "candidate"),
            ("sym", 0.4, 0.1, 0.5, "gce"),
        ),
    ),
}
LOSSES = THEORY_LOSSES  # the losses with a group-level theory (theory.names)
#: Outcome categories of a cell (colour index).
OUTCOMES = ("train & pop 100%", "train 100% only", "pop 100% only", "neither", "tie")
_COLORS = (
    style.OKABE_ITO["green"],
    style.OKABE_ITO["skyblue"],
    style.OKABE_ITO["yellow"],
    style.OKABE_ITO["vermillion"],
    "#BBBBBB",
)
#: Residual of the group student in the N x N fixed point: the group solve is certified to
#: ~1e-12 relative; evaluating it through an N x N product adds ~N eps |L| (N <= 100 here).
NXN_RESIDUAL_TOL = 1e-8
#: Output agreement with the N x N exact student where the student is unique: both are certified
#: stationary points of a strongly convex problem (residuals ~1e-9), so their outputs agree to
#: ~1e-9 / (curvature margin); 1e-6 leaves room for the weakest margin in the presets.
NXN_OUTPUT_TOL = 1e-6


def _outcome(train, pop, ties) -> int:
    if ties > 0:
        return 4
    return {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[
        (train == 1.0, pop == 1.0)
    ]


def _counts(kind, k, n, eta):
    return exact_counts(transition_matrix(kind, k, eta), n)


def _cell(model, counts, lam, loss, q, teacher):
    """Outcome of one loss at one cell: the reported student and the engine's answer."""
    if loss == "ce":
        pred = predict_pll(model, counts, lam, method="exact", loss="ce", teacher=teacher)
        return dict(
            train=float(pred.train_acc[0]),
            pop=float(pred.population_acc[0]),
            ties=int(pred.ties[0]),
            neg=0,
            ambiguous=False,
            engine_agrees=True,
            converged=bool(pred.converged[0]),
        )
    fs = flow_student(model, counts, lam, loss=loss, q=q, teacher=teacher)
    pred = fs.prediction
    eng = predict_pll(
        model, counts, lam, method="exact", loss=loss, q=q, teacher=teacher, allow_unconverged=True
    )
    same = (eng.train_acc[0], eng.population_acc[0], eng.ties[0]) == (
        pred.train_acc[0],
        pred.population_acc[0],
        pred.ties[0],
    )
    second = pred.second_order
    return dict(
        train=float(pred.train_acc[0]),
        pop=float(pred.population_acc[0]),
        ties=int(pred.ties[0]),
        neg=-1 if second is None else int(second[0] + second[1]),
        ambiguous=bool(fs.ambiguous),
        engine_agrees=bool(same),
        converged=bool(pred.converged[0]),
    )


def _tie_threshold(model, counts, loss, q, lo=1e-6, hi=10.0, steps=10):
    """``lam`` where the tied point's closed-form margin changes sign (bisection in log lam to
    ``16 / 2^steps``, 1.6% for 10 steps); ``None`` if the problem has no tied point (the two-hot
    student is not tied everywhere) or the sign does not change in ``[lo, hi]``."""

    def margin(lam):
        return tied_point(model, counts, lam, loss=loss, q=q).margin

    try:
        m_lo, m_hi = margin(lo), margin(hi)
    except ValueError:
        return None
    if m_lo > 0 or m_hi < 0:
        return None
    a, b = math.log(lo), math.log(hi)
    for _ in range(steps):
        mid = 0.5 * (a + b)
        if margin(math.exp(mid)) < 0:
            a = mid
        else:
            b = mid
    return math.exp(0.5 * (a + b))


def _nxn_check(p, spec):
    """Compare one cell with the N x N problem on exact block features (module docstring)."""
    kind, eta, d, lam, loss = spec
    k, n, c, q = p["n_classes"], p["per_class"], p["c"], p["q"]
    model = BlockModel(k, n, c, d)
    counts = _counts(kind, k, n, eta)
    fs = flow_student(model, counts, lam, loss=loss, q=q)
    pred = fs.prediction
    cnt = np.asarray(counts)
    given_ = np.concatenate([np.repeat(np.arange(k), row) for row in cnt])
    true = np.repeat(np.arange(k), n)
    # (1) the group student is a stationary point of the N x N objective: z = G f(z) / (lam N).
    teacher_g = predict_exact(model, counts, lam, 0).teacher
    top2, _ = group_top2(teacher_g.deviations, counts)
    cand = top2[true, given_]
    fn = make_loss(loss, k, candidates=cand, q=q)
    dev = pred.deviations[0][true, given_]
    z = np.log1p(k * dev)  # logits up to a per-point constant (softmax is shift invariant)
    z -= z.mean(axis=1, keepdims=True)
    gram = model.gram()
    z_map = gram @ fn.force(z) / (lam * k * n)
    resid = float(np.abs(softmax_deviation(z_map) - softmax_deviation(z)).max())
    if resid > NXN_RESIDUAL_TOL:
        raise AgreementError(
            f"{NAME}: group student {spec} is not an N x N stationary point (residual {resid:.3g})"
        )
    # (2) the N x N exact student from the N x N teacher.
    x = exact_block_features(k, n, c, d)
    teacher = solve_probe(np.eye(k)[:, given_], lam, features=x, tol=1e-12)
    student = train_pll_student(teacher, lam, loss=loss, q=q, features=x)
    # Accuracy of the N x N student with output gaps below its resolution (NXN_OUTPUT_TOL) counted
    # as ties (errors), as the group theory counts its exact ties.
    out = student.outputs
    own = out[true, np.arange(true.size)]
    rival = out.copy()
    rival[true, np.arange(true.size)] = -np.inf
    nxn_acc = float(np.mean(own - rival.max(axis=0) > NXN_OUTPUT_TOL))
    diff = float(np.abs(student.outputs.T - pred.outputs[0][true, given_]).max())
    unique = loss == "ce" or lam > uniqueness_lam(model, loss, q)
    if unique and diff > NXN_OUTPUT_TOL:
        raise AgreementError(
            f"{NAME}: unique student {spec} differs from the N x N exact student by {diff:.3g}"
        )
    return dict(
        noise=kind,
        eta=eta,
        d=d,
        lam=lam,
        loss=loss,
        group_train_acc=float(pred.train_acc[0]),
        nxn_train_acc=nxn_acc,
        max_output_diff=diff,
        nxn_residual=resid,
        unique=unique,
        stationary_point=student.certificate.stationary_point,
        same_minimum=diff <= NXN_OUTPUT_TOL,
    )


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    """All cells of the figure (``seed`` and ``workers`` are unused: no randomness)."""
    del seed, workers
    p = PRESETS[preset]
    k, n, c, d0, q = (p[x] for x in ("n_classes", "per_class", "c", "d", "q"))
    lams = np.asarray(p["lams"], dtype=float)
    etas = np.asarray(p["etas"], dtype=float)
    model = BlockModel(k, n, c, d0)
    rows = []
    grids = {}
    n_cells = lams.size * (
        len(LOSSES) * (len(p["kinds"]) * etas.size + len(p["ds"])) + len(p["qs"])
    )
    bar = progress_bar(total=n_cells, desc=NAME, unit="cell")  # stderr, terminals only
    for kind in p["kinds"]:
        for loss in LOSSES:
            grids[(kind, loss)] = np.zeros((lams.size, etas.size), dtype=int)
        grids[(kind, "sd")] = np.full((lams.size, etas.size), np.nan)
        for e, eta in enumerate(etas):
            counts = _counts(kind, k, n, eta)
            for i, lam in enumerate(lams):
                teacher = predict_exact(model, counts, lam, 0).teacher
                t_min = min_rounds_linear(model, counts, lam)
                grids[(kind, "sd")][i, e] = np.nan if t_min is None else t_min
                for loss in LOSSES:
                    cell = _cell(model, counts, lam, loss, q, teacher)
                    bar.update()
                    grids[(kind, loss)][i, e] = _outcome(cell["train"], cell["pop"], cell["ties"])
                    rows.append(
                        dict(
                            panel=kind,
                            noise=kind,
                            loss=loss,
                            eta=eta,
                            d=d0,
                            q=q,
                            lam=lam,
                            **cell,
                            t_min_linear=t_min,
                        )
                    )
        log(f"  {NAME}: {kind} noise done")
    # Noise-free data over (d, lam).
    ds = np.asarray(p["ds"], dtype=float)
    clean = _counts("sym", k, n, 0.0)
    for loss in LOSSES:
        grids[("clean", loss)] = np.zeros((lams.size, ds.size), dtype=int)
    for j, d in enumerate(ds):
        m = BlockModel(k, n, c, d)
        for i, lam in enumerate(lams):
            teacher = predict_exact(m, clean, lam, 0).teacher
            for loss in LOSSES:
                cell = _cell(m, clean, lam, loss, q, teacher)
                bar.update()
                grids[("clean", loss)][i, j] = _outcome(cell["train"], cell["pop"], cell["ties"])
                rows.append(
                    dict(panel="clean", noise="sym", loss=loss, eta=0.0, d=d, q=q, lam=lam, **cell)
                )
    log(f"  {NAME}: noise-free panels done")
    # gce under pair noise over (q, lam).
    qs = np.asarray(p["qs"], dtype=float)
    pair = _counts("pair", k, n, p["q_eta"])
    grids[("q", "gce")] = np.zeros((lams.size, qs.size), dtype=int)
    for j, qq in enumerate(qs):
        for i, lam in enumerate(lams):
            teacher = predict_exact(model, pair, lam, 0).teacher
            cell = _cell(model, pair, lam, "gce", qq, teacher)
            bar.update()
            grids[("q", "gce")][i, j] = _outcome(cell["train"], cell["pop"], cell["ties"])
            rows.append(
                dict(
                    panel="q", noise="pair", loss="gce", eta=p["q_eta"], d=d0, q=qq, lam=lam, **cell
                )
            )
    bar.close()
    # Lines: uniqueness / linearisation / tie stability.
    lines = {
        "unique": {loss: uniqueness_lam(model, loss, q) for loss in ("candidate", "gce")},
        "linear": {loss: linear_defined_lam(model, loss, q) for loss in ("candidate", "gce")},
        "tie_pair": {loss: _tie_threshold(model, pair, loss, q) for loss in ("candidate", "gce")},
        "tie_clean_d0": {
            loss: _tie_threshold(BlockModel(k, n, c, 0.0), clean, loss, q)
            for loss in ("candidate", "gce")
        },
        "tie_q": [_tie_threshold(model, pair, "gce", qq) for qq in qs],
        "unique_q": [uniqueness_lam(model, "gce", qq) for qq in qs],
    }
    nxn = [_nxn_check(p, spec) for spec in p["nxn"]]
    for r in nxn:
        log(
            f"  {NAME}: N x N check {r['noise']} eta={r['eta']:g} d={r['d']:g} lam={r['lam']:g} "
            f"{r['loss']}: group train acc {r['group_train_acc']:.3f}, N x N exact student "
            f"{r['nxn_train_acc']:.3f} ({r['stationary_point']}), same minimum: "
            f"{r['same_minimum']}"
        )
    return dict(
        params=p,
        lams=lams,
        etas=etas,
        ds=ds,
        qs=qs,
        grids=grids,
        rows=rows,
        lines=lines,
        nxn=nxn,
    )


def _grid_panel(ax, x, lams, grid, title, xlabel):
    cmap = ListedColormap(_COLORS)
    norm = BoundaryNorm(np.arange(-0.5, len(_COLORS) + 0.5), cmap.N)
    ax.pcolormesh(_edges(x, log=False), _edges(lams, log=True), grid, cmap=cmap, norm=norm)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.tick_params(labelsize=6)


def _edges(v, log):
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] * 0.5, v[0] * 2.0]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    w = np.log(v) if log else v
    mid = 0.5 * (w[1:] + w[:-1])
    e = np.concatenate([[2 * w[0] - mid[0]], mid, [2 * w[-1] - mid[-1]]])
    return np.exp(e) if log else e


def _marks(ax, rows, panel, loss, xkey, noise=None):
    for r in rows:
        if r["panel"] != panel or r["loss"] != loss or (noise and r["noise"] != noise):
            continue
        if r["ambiguous"]:
            ax.plot(r[xkey], r["lam"], "x", color="black", ms=3.5, mew=0.8)
        elif not r["engine_agrees"]:
            ax.plot(r[xkey], r["lam"], "o", mfc="none", color="black", ms=3.0, mew=0.6)


def _hline(ax, y, **kw):
    if y is not None and np.isfinite(y):
        ax.axhline(y, **kw)


UNIQUE_STYLE = dict(color="black", lw=0.9, ls="--")
LINEAR_STYLE = dict(color="black", lw=0.9, ls=":")
TIE_STYLE = dict(color=style.OKABE_ITO["blue"], lw=1.4, ls="-")


def plot(data: dict):
    p = data["params"]
    kinds = p["kinds"]
    lams, etas = data["lams"], data["etas"]
    nrows = len(kinds) + 1
    fig, axes = style.figure(4, nrows, width=2.0, height=1.75, squeeze=False)
    titles = {loss: LOSS_LABELS[loss] for loss in LOSSES} | {
        "gce": f"{LOSS_LABELS['gce']} q={p['q']:g}"
    }
    lines = data["lines"]
    for r, kind in enumerate(kinds):
        for j, loss in enumerate(LOSSES):
            ax = axes[r, j]
            _grid_panel(
                ax,
                etas,
                lams,
                data["grids"][(kind, loss)],
                f"{kind}: {titles[loss]}",
                "noise rate η",
            )
            _marks(ax, data["rows"], kind, loss, "eta")
            if loss != "ce":
                _hline(ax, lines["unique"][loss], **UNIQUE_STYLE)
                _hline(ax, lines["linear"][loss], **LINEAR_STYLE)
                if kind == "pair":
                    _hline(ax, lines["tie_pair"][loss], **TIE_STYLE)
        ax = axes[r, 3]
        sd = data["grids"][(kind, "sd")]
        mesh = ax.pcolormesh(
            _edges(etas, log=False),
            _edges(lams, log=True),
            np.ma.masked_invalid(sd + 1),
            cmap=style.CMAP,
            norm=LogNorm(vmin=1, vmax=max(2.0, np.nanmax(sd + 1))),
        )
        ax.set_yscale("log")
        ax.set_title(f"{kind}: SD t_min + 1 (linear)", fontsize=8)
        ax.set_xlabel("noise rate η", fontsize=7)
        ax.tick_params(labelsize=6)
        cb = fig.colorbar(mesh, ax=ax, pad=0.02)
        cb.ax.tick_params(labelsize=6)
    r = nrows - 1
    for j, loss in enumerate(LOSSES):
        ax = axes[r, j]
        _grid_panel(
            ax,
            data["ds"],
            lams,
            data["grids"][("clean", loss)],
            f"noise-free: {titles[loss]}",
            "d (between-class correlation)",
        )
        _marks(ax, data["rows"], "clean", loss, "d")
        ax.axvline(0.0, color="white", lw=0.6)
        if loss != "ce":
            y = lines["tie_clean_d0"][loss]
            if y is not None:
                ax.plot([0.0], [y], "_", color=TIE_STYLE["color"], ms=12, mew=2.0)
    ax = axes[r, 3]
    _grid_panel(
        ax,
        data["qs"],
        lams,
        data["grids"][("q", "gce")],
        f"pair η={p['q_eta']:g}: GCE over q",
        "GCE exponent q",
    )
    _marks(ax, data["rows"], "q", "gce", "q")
    ax.plot(data["qs"], lines["tie_q"], **TIE_STYLE)
    ax.plot(data["qs"], lines["unique_q"], **UNIQUE_STYLE)
    for ax in axes[:, 0]:
        ax.set_ylabel("λ", fontsize=7)
    handles = [Patch(color=col, label=lab) for col, lab in zip(_COLORS, OUTCOMES, strict=True)]
    handles += [
        style.plt.Line2D([], [], label="unique student above", **UNIQUE_STYLE),
        style.plt.Line2D([], [], label="linearised student exists above", **LINEAR_STYLE),
        style.plt.Line2D([], [], label="tied point stable above (closed form)", **TIE_STYLE),
        style.plt.Line2D(
            [], [], marker="x", ls="none", color="black", label="outcome depends on saddle side"
        ),
        style.plt.Line2D(
            [],
            [],
            marker="o",
            mfc="none",
            ls="none",
            color="black",
            label="Newton engine finds another point",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", fontsize=6.5, ncol=5)
    fig.suptitle(
        f"PLL students, 100% accuracy by loss: K={p['n_classes']}, n={p['per_class']}, "
        f"c={p['c']}, d={p['d']} (rows 1-{len(kinds)}); set losses: gradient flow from the teacher",
        fontsize=8.5,
    )
    return fig


def table(data: dict) -> list[dict]:
    return [dict(r) for r in data["rows"]]


def main(argv=None) -> int:
    args = parse_args(argv, "PLL conditions phase diagrams", PRESETS)
    data = compute(args.preset, args.seed, args.workers)
    disagree = sum(1 for r in data["rows"] if not r["engine_agrees"])
    ambiguous = sum(1 for r in data["rows"] if r["ambiguous"])
    log(
        f"  {NAME}: {len(data['rows'])} cells; Newton engine differs from the flow in {disagree},"
        f" saddle-side dependent in {ambiguous}; {len(data['nxn'])} N x N checks passed"
    )
    style.save_figure(plot(data), args.out, NAME)
    style.write_csv(table(data), args.out, NAME)
    style.write_csv(data["nxn"], args.out, f"{NAME}_nxn")
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
