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

Rows (one per noise kind of the preset: ``sym``, ``pair`` in the quick preset, plus ``asym`` in
the paper preset): noise rate ``eta`` x ``lam``. Last row: noise-free data (the teacher's
runner-up is decided by the tie rule, so every class is a whole-class tie) over ``d`` x ``lam``
for the three losses, and ``gce`` under pair noise over ``q`` x ``lam``. Colours (a legend entry
only for the categories that occur): training and population accuracy both 100%, only one of
them, neither, or a tie (training points tied between their candidates: an error); the SD column
has one shared colour bar of the minimum number of rounds, hatched where the linearised theory
never reaches 100%. Markers: ``x`` the flow's outcome depended on the side a saddle was left on
(ambiguous); ``o`` the Newton engine of ``theory predict`` (descent from the teacher with long
steps) reports a different accuracy than the flow (another stationary point). Lines: ``lam``
above which the set-loss student is unique (Theorem 15.2a, solid), above which the linearised
student is guaranteed to exist (Theorem 15.2c, dotted), and where the tied point of the symmetric
problems changes stability (closed form of Proposition 15.5, dash-dot; pair noise and ``d = 0``).

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

import matplotlib as mpl
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from figures import palette, style
from figures.common import AgreementError, figure_run, log, parse_args, prepare_output
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
    # Quick: the asymmetric row is left to the paper preset (at n = 10 its exact counts are those
    # of the symmetric noise up to rounding, so the row repeats the first); coarser grids.
    "quick": dict(
        n_classes=4,
        per_class=10,
        c=0.4,
        d=0.1,
        q=DEFAULT_Q,
        kinds=("sym", "pair"),
        etas=tuple(np.round(np.arange(0.0, 0.61, 0.1), 2)),
        lams=(1e-4, 1e-3, 1e-2, 1e-1),
        ds=(-0.1, 0.0, 0.1, 0.2),
        qs=(0.1, 0.7, 1.0),
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


def _cell(model, counts, lam, loss, q, teacher, cache=None):
    """Outcome of one loss at one cell: the reported student and the engine's answer.

    ``cache`` (a dict) memoises cells by ``(c, d, counts, lam, loss, q)``: the panels share some
    cells (the noise-free panel at the figure's ``d`` is the symmetric row at ``eta = 0``; the
    ``q`` panel at the figure's ``q`` is the pair row), and a cell is a pure function of these.
    """
    if cache is not None:
        key = (model.c, model.d, np.asarray(counts).tobytes(), float(lam), loss, float(q))
        if key not in cache:
            cache[key] = _cell(model, counts, lam, loss, q, teacher)
        return dict(cache[key])
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
    cache = {}  # shared cells (see _cell)
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
                    cell = _cell(model, counts, lam, loss, q, teacher, cache)
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
                cell = _cell(m, clean, lam, loss, q, teacher, cache)
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
    teachers = [predict_exact(model, pair, lam, 0).teacher for lam in lams]
    for j, qq in enumerate(qs):
        for i, lam in enumerate(lams):
            cell = _cell(model, pair, lam, "gce", qq, teachers[i], cache)
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


def _edges(v, log):
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] * 0.5, v[0] * 2.0]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    w = np.log(v) if log else v
    mid = 0.5 * (w[1:] + w[:-1])
    e = np.concatenate([[2 * w[0] - mid[0]], mid, [2 * w[-1] - mid[-1]]])
    return np.exp(e) if log else e


def _grid_panel(ax, x, lams, grid):
    """Outcome categories of one loss over ``x`` (columns) and ``lams`` (rows, log scale)."""
    cmap = ListedColormap(palette.OUTCOME_COLORS)
    norm = BoundaryNorm(np.arange(-0.5, len(OUTCOMES) + 0.5), cmap.N)
    ax.pcolormesh(_edges(x, log=False), _edges(lams, log=True), grid, cmap=cmap, norm=norm)
    ax.set_yscale("log")
    ax.grid(False)


def _marks(ax, rows, panel, loss, xkey, noise=None):
    """``x``: saddle-side dependent outcome; ``o``: the Newton engine finds another point."""
    seen = set()
    for r in rows:
        if r["panel"] != panel or r["loss"] != loss or (noise and r["noise"] != noise):
            continue
        if r["ambiguous"]:
            ax.plot(r[xkey], r["lam"], "x", color="black", ms=4, mew=0.9)
            seen.add("ambiguous")
        elif not r["engine_agrees"]:
            ax.plot(r[xkey], r["lam"], "o", mfc="none", color="black", ms=3.5, mew=0.7)
            seen.add("engine")
    return seen


def _hline(ax, y, **kw) -> bool:
    if y is not None and np.isfinite(y):
        ax.axhline(y, **kw)
        return True
    return False


UNIQUE_STYLE = dict(color="black", lw=1.0, ls="-")
LINEAR_STYLE = dict(color="black", lw=1.0, ls=":")
TIE_STYLE = dict(color="black", lw=1.2, ls="-.")
#: Bins of the SD column's minimum number of rounds (linearised theory).
SD_BINS = (0, 1, 2, 3, 5, 10, 20, 50, 1000)
SD_BIN_LABELS = ("0", "1", "2", "3-4", "5-9", "10-19", "20-49", "≥ 50")


def plot(data: dict):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    p = data["params"]
    kinds = p["kinds"]
    lams, etas = data["lams"], data["etas"]
    nrows = len(kinds) + 1
    fig, axes = style.figure(4, nrows, width=1.8, height=1.45, squeeze=False, sharey=True)
    titles = {loss: LOSS_LABELS[loss] for loss in LOSSES} | {
        "gce": f"{LOSS_LABELS['gce']}, q={p['q']:g}"
    }
    lines = data["lines"]
    used = {"outcomes": set(), "marks": set(), "lines": set(), "never": False}
    sd_cmap = mpl.colormaps[style.CMAP].resampled(len(SD_BINS) - 1)
    sd_norm = BoundaryNorm(SD_BINS, sd_cmap.N)
    sd_mesh = None
    for r, kind in enumerate(kinds):
        for j, loss in enumerate(LOSSES):
            ax = axes[r, j]
            grid = data["grids"][(kind, loss)]
            used["outcomes"] |= set(np.unique(grid).tolist())
            _grid_panel(ax, etas, lams, grid)
            used["marks"] |= _marks(ax, data["rows"], kind, loss, "eta")
            if loss != "ce":
                if _hline(ax, lines["unique"][loss], **UNIQUE_STYLE):
                    used["lines"].add("unique")
                if _hline(ax, lines["linear"][loss], **LINEAR_STYLE):
                    used["lines"].add("linear")
                if kind == "pair" and _hline(ax, lines["tie_pair"][loss], **TIE_STYLE):
                    used["lines"].add("tie")
        ax = axes[r, 3]
        sd = data["grids"][(kind, "sd")]
        # Hatched background: where the linearised theory never reaches 100% (masked cells).
        ax.add_patch(
            Rectangle(
                (0, 0),
                1,
                1,
                transform=ax.transAxes,
                facecolor="white",
                edgecolor="0.6",
                hatch="////",
                lw=0,
                zorder=0,
            )
        )
        used["never"] |= bool(np.isnan(sd).any())
        sd_mesh = ax.pcolormesh(
            _edges(etas, log=False),
            _edges(lams, log=True),
            np.ma.masked_invalid(sd),
            cmap=sd_cmap,
            norm=sd_norm,
            zorder=1,
        )
        ax.set_yscale("log")
        ax.grid(False)
        axes[r, 0].set_ylabel(f"{kind} noise\nλ")
        for ax in axes[r]:
            ax.set_xlabel("noise rate η" if r == len(kinds) - 1 else "")
            if r < len(kinds) - 1:
                ax.tick_params(labelbottom=False)
            ax.set_xticks([0.0, 0.3, 0.6] if etas.max() >= 0.6 else [etas.min(), etas.max()])
    for j, loss in enumerate(LOSSES):
        axes[0, j].set_title(titles[loss])
    axes[0, 3].set_title("SD, linearised $t_{min}$")
    r = nrows - 1
    for j, loss in enumerate(LOSSES):
        ax = axes[r, j]
        grid = data["grids"][("clean", loss)]
        used["outcomes"] |= set(np.unique(grid).tolist())
        _grid_panel(ax, data["ds"], lams, grid)
        used["marks"] |= _marks(ax, data["rows"], "clean", loss, "d")
        ax.set_xlabel("d (noise-free)")
        if loss != "ce":
            y = lines["tie_clean_d0"][loss]
            if y is not None:
                ax.plot([0.0], [y], "_", color="black", ms=10, mew=1.6)
                used["lines"].add("tie")
    axes[r, 0].set_ylabel("noise-free\nλ")
    ax = axes[r, 3]
    grid = data["grids"][("q", "gce")]
    used["outcomes"] |= set(np.unique(grid).tolist())
    _grid_panel(ax, data["qs"], lams, grid)
    used["marks"] |= _marks(ax, data["rows"], "q", "gce", "q")
    tie_q = np.array([np.nan if v is None else v for v in lines["tie_q"]], dtype=float)
    if np.isfinite(tie_q).any():
        ax.plot(data["qs"], tie_q, **TIE_STYLE)
        used["lines"].add("tie")
    ax.plot(data["qs"], lines["unique_q"], **UNIQUE_STYLE)
    used["lines"].add("unique")
    ax.set_xlabel("GCE exponent q")
    ax.set_title(f"GCE, pair noise η={p['q_eta']:g}")
    cb = fig.colorbar(sd_mesh, ax=axes[: len(kinds), 3], shrink=0.9, pad=0.04)
    centres = [0.5 * (a + b) for a, b in zip(SD_BINS[:-1], SD_BINS[1:], strict=True)]
    cb.set_ticks(centres, labels=SD_BIN_LABELS)
    cb.ax.tick_params(length=0)
    cb.set_label("SD: rounds to 100%")
    handles = [
        Patch(facecolor=palette.OUTCOME_COLORS[i], label=OUTCOMES[i])
        for i in range(len(OUTCOMES))
        if i in used["outcomes"]
    ]
    if used["never"]:
        handles.append(
            Patch(facecolor="white", edgecolor="0.6", hatch="////", label="SD: never 100%")
        )
    line_entries = (
        ("unique", UNIQUE_STYLE, "unique student above"),
        ("linear", LINEAR_STYLE, "linearised student exists above"),
        ("tie", TIE_STYLE, "tied point stable above"),
    )
    handles += [
        Line2D([], [], label=lab, **st) for key, st, lab in line_entries if key in used["lines"]
    ]
    if "ambiguous" in used["marks"]:
        handles.append(
            Line2D(
                [], [], marker="x", ls="none", color="black", label="flow: saddle-side dependent"
            )
        )
    if "engine" in used["marks"]:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                mfc="none",
                ls="none",
                color="black",
                label="Newton engine: another point",
            )
        )
    decades = np.arange(np.floor(np.log10(lams.min())), np.ceil(np.log10(lams.max())) + 1)
    axes[0, 0].set_yticks(10.0**decades)  # shared by every panel (sharey)
    axes[0, 0].yaxis.set_minor_locator(mpl.ticker.NullLocator())
    fig.legend(handles=handles, loc="outside lower center", ncol=3, handlelength=1.6)
    fig.suptitle(
        f"PLL students: 100% accuracy by loss (block model K={p['n_classes']}, "
        f"n={p['per_class']}, c={p['c']}, d={p['d']} in the noisy rows)\n"
        "set losses: the student gradient flow reaches from the teacher"
    )
    return fig


def table(data: dict) -> list[dict]:
    return [dict(r) for r in data["rows"]]


@figure_run(NAME)
def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    out = prepare_output(out)
    data = compute(preset, seed, workers)
    disagree = sum(1 for r in data["rows"] if not r["engine_agrees"])
    ambiguous = sum(1 for r in data["rows"] if r["ambiguous"])
    log(
        f"  {NAME}: {len(data['rows'])} cells; Newton engine differs from the flow in {disagree},"
        f" saddle-side dependent in {ambiguous}; {len(data['nxn'])} N x N checks passed"
    )
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    style.write_csv(data["nxn"], out, f"{NAME}_nxn")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv, "PLL conditions phase diagrams", PRESETS, module=__spec__.name)
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
