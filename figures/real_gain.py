"""Distillation gain on real features in the paper's layout: SD rounds 1-4 and the PLL student.

The paper's real-data figures (its Figure 2; Figures 6-8 in its appendix, drawn by the public
reference code's ``plot.py``) show, per dataset, five bars per noise rate ``eta = 0.5 ... 0.9``:
the *distillation gain* -- **test** accuracy of the student minus that of the teacher, same seed --
of self-distillation rounds ``t = 1, 2, 3, 4`` and of the PLL student (the reference code's
per-candidate GCE, ``gce-reference``), averaged over **3 seeds** (0, 1, 2 in ``train.sh``), for
superclass noise (main text), symmetric and asymmetric noise (appendix C), and for a smaller and a
larger weight decay (appendix G.1: 0.4x and 2x the base value). This module draws the same layout
for one dataset: one column per noise family, one row per weight-decay regime, five bars per
``eta`` (more PLL bars with ``--pll-losses``), one y-range for every panel.

Each bar is the mean over seeds of the per-seed gain. Error bars: the 95% Student-t interval of
that mean (default, ``--error-bars ci95``; with 3 seeds it is ``+-2.48`` sample standard
deviations wide) or, as the reference ``plot.py`` draws them, ``+-1`` standard deviation of the
per-seed gains (``np.std``, ``ddof = 0``; ``--error-bars sd``). The figure states which and the
number of seeds. Each seed runs :func:`simulations.probe.run_probe`'s experiment (seeded stratified
split, training-mean centring + L2 normalisation, noisy training *and validation* labels, clean
test labels, exact teacher / SD rounds / certified PLL students started from the teacher).

Model selection. Rows with a fixed weight decay involve no selection. The row "selected" picks,
per seed and per model (teacher, each round, each PLL loss), the weight decay among the rows'
values with the best **validation** accuracy (noisy validation labels; ties to the smaller
value). ``--selection test`` picks the weight decay on the *test* accuracy instead: an optimistic
diagnostic, labelled as such in the figure and the CSV, and **not** what the reference code does.
The reference code never selects the weight decay on test: at a *fixed* weight decay it trains
each model for 200 SGD epochs, reports its best test accuracy over those epochs
(``best_test_acc``, i.e. early stopping on the test set) and uses that best-test-epoch checkpoint
(``best.ckpt``) as the teacher of the next round and of the PLL student. Here every model is the
exact optimum of its objective (there are no epochs to pick from), so the fixed-weight-decay rows
are the closest counterpart of the paper's bars; the early-stopping effect itself has no
counterpart.

Features and superclasses. Features are centred with the training mean and L2-normalised by
default (``--preprocess center-l2``), so that a weight decay means the same on every dataset; the
reference code (and so the paper) trains on the raw features, which ``--preprocess raw``
reproduces. Superclass groups follow the reference code's rule by default
(``--superclass-rule reference``: complete linkage on 1 - mean pairwise cosine similarity of the
class features, cut at 0.8 x the largest merge height;
:func:`simulations.noise.reference_superclass_groups`); ``--n-groups G`` clusters the class
means into ``G`` groups instead (``--superclass-rule correlation``).

Data: ``--features FILE`` (``.npz`` with ``features``, ``labels`` and optional
``train_idx/val_idx/test_idx``, or ``.csv``; ``.npy`` with ``--labels``), default scikit-learn's
bundled digits. ``--lam`` sets the base weight decay (the ``lam`` of ``(lam/2)||W||^2``, which is
SGD's weight decay). E.g. with CIFAR-100 ResNet features (base weight decay 5e-5 in the paper),
in the paper's protocol (raw features, the reference superclass rule)::

    python -m figures.real_gain --features cifar100_resnet34.npz --lam 5e-5 --preprocess raw \\
        --preset paper --out figs/

Outputs in ``--out``: ``real_gain.png``, ``real_gain.pdf`` (not in the quick preset) and
``real_gain.csv`` (one row per regime, noise, eta, method and round: mean gain, 95% half-width,
standard deviation, mean test accuracies of student and teacher, teacher top-2 coverage, the
weight decay(s) used, whether every
solve was certified, how many non-convex PLL solves were verified local minima).

Presets: ``quick`` (superclass and symmetric noise, eta 0.5/0.7/0.9, base weight decay, 3 seeds),
``paper`` (the paper's layout: three noise families, eta 0.5-0.9, three weight decays plus the
validation-selected row, 3 seeds), both with SD ``t = 1..4`` and the reference GCE PLL student;
``tiny`` (a 300-sample subset, one round, the reference GCE and the two-hot CE, for smoke tests).
"""

from __future__ import annotations

import contextlib

import numpy as np
from matplotlib.lines import Line2D

from figures import palette, style
from figures.common import log, mean_ci95, parse_args, prepare_output
from selfdistill_cli import add_deprecated_alias
from selfdistill_cli.memory import parse_max_memory
from simulations.cli_probe import SMALL_P
from simulations.datasets import load_dataset, validate_dataset
from simulations.probe import PLL_METHODS, ProbeConfig, run_probe
from theory.blas import single_thread_blas
from theory.names import LOSSES, METHOD_LABELS, PREPROCESSING, SUPERCLASS_RULES, method_of

NAME = "real_gain"

#: Weight-decay regimes as multiples of the base value (the paper's appendix G.1: 2e-5 and 1e-4
#: around 5e-5, and 2e-4 and 1e-3 around 5e-4).
REGIMES = {"smaller": 0.4, "base": 1.0, "larger": 2.0}

PRESETS = {
    "quick": {
        "noises": ("superclass", "sym"),
        "etas": (0.5, 0.7, 0.9),
        "seeds": 3,
        "rounds": 4,
        "regimes": ("base",),
        "selected_row": False,
        "pll_losses": ("gce-reference",),
        "per_class": None,
    },
    "paper": {
        "noises": ("superclass", "sym", "asym"),
        "etas": (0.5, 0.6, 0.7, 0.8, 0.9),
        "seeds": 3,
        "rounds": 4,
        "regimes": ("smaller", "base", "larger"),
        "selected_row": True,
        "pll_losses": ("gce-reference",),
        "per_class": None,
    },
    "tiny": {
        "noises": ("sym",),
        "etas": (0.5,),
        "seeds": 1,
        "rounds": 1,
        "regimes": ("base",),
        "selected_row": False,
        "pll_losses": ("gce-reference", "ce"),
        "per_class": 30,
    },
}

#: Bars: SD rounds on the SD ramp (light to dark, as the paper's greys), PLL students in the PLL
#: accent, told apart by hatching when several losses are drawn.
PLL_STYLE = {
    "gce-reference": (METHOD_LABELS[method_of("gce-reference")], ""),
    "ce": (METHOD_LABELS[method_of("ce")], "//"),
    "candidate": (METHOD_LABELS[method_of("candidate")], "\\\\"),
    "gce": (METHOD_LABELS[method_of("gce")], "xx"),
}
#: Error bars: 95% Student-t interval of the mean, or +-1 SD of the per-seed gains (ddof = 0,
#: the reference plot.py's np.std).
ERROR_BARS = {"ci95": "95% Student-t CI of the mean", "sd": "±1 SD over seeds (np.std)"}
NOISE_TITLES = {
    "superclass": "superclass",
    "sym": "symmetric",
    "asym": "asymmetric",
    "pair": "pair",
}


def _extra_args(parser) -> None:
    parser.add_argument("--features", default=None, help=".npz/.csv/.npy features (default digits)")
    parser.add_argument("--labels", default=None, help="labels .npy (with .npy features)")
    parser.add_argument("--lam", type=float, default=1e-4, help="base weight decay lam (> 0)")
    parser.add_argument(
        "--superclass-rule",
        choices=SUPERCLASS_RULES,
        default=None,
        help="superclass groups: the reference code's rule, or class-mean correlation into "
        "--n-groups groups (default: reference, or correlation when --n-groups is given)",
    )
    parser.add_argument(
        "--n-groups", type=int, default=None, help="superclass groups (correlation rule)"
    )
    add_deprecated_alias(parser, "--n-superclasses", "--n-groups", dest="n_groups", type=int)
    parser.add_argument(
        "--preprocess",
        choices=PREPROCESSING,
        default="center-l2",
        help="center-l2: centred + L2-normalised rows; raw: as given (the reference code's)",
    )
    parser.add_argument(
        "--selection",
        choices=("val", "test"),
        default="val",
        help="weight decay of the 'selected' row picked on validation, or on test (an optimistic "
        "bound; the reference code never picks the weight decay on test: it keeps each "
        "model's best test epoch at a fixed weight decay)",
    )
    parser.add_argument(
        "--error-bars",
        choices=tuple(ERROR_BARS),
        default="ci95",
        help="ci95: 95%% Student-t CI of the mean; sd: +-1 SD as the reference plot.py",
    )
    parser.add_argument(
        "--pll-losses",
        default=None,
        help=f"comma-separated PLL losses among {', '.join(LOSSES)} (default: the preset's)",
    )
    parser.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="refuse a features file estimated above this many GB to load (default: the "
        "memory available now)",
    )


def _dataset(path, labels, per_class, max_memory=None):
    ds = load_dataset(path, labels, max_memory=max_memory)
    if per_class is None:
        return ds
    idx = np.concatenate([np.flatnonzero(ds.labels == k)[:per_class] for k in range(ds.n_classes)])
    return validate_dataset(ds.features[idx], ds.labels[idx], name=f"{ds.name}[{idx.size}]")


def _series(preset):
    return [("sd", t, None) for t in range(1, preset["rounds"] + 1)] + [
        (PLL_METHODS[loss], 1, loss) for loss in preset["pll_losses"]
    ]


def _pick(rows, key):
    """Row with the largest ``key`` (ties: the first, i.e. the smaller lam)."""
    return rows[int(np.argmax([r[key] for r in rows]))]


def compute(
    ds,
    preset: dict,
    seed: int,
    lam: float,
    selection: str,
    n_groups=None,
    *,
    superclass_rule=None,
    preprocess="center-l2",
) -> list[dict]:
    """Per-seed gains for every (regime, noise, eta, series); tidy CSV rows of their summary."""
    lams = {name: lam * REGIMES[name] for name in preset["regimes"]}
    out = []
    for noise in preset["noises"]:
        for eta in preset["etas"]:
            cfg = ProbeConfig(
                noise=noise,
                eta=eta,
                rounds=preset["rounds"],
                trials=preset["seeds"],
                lams=tuple(sorted(lams.values())),
                seed=seed,
                theory=False,
                pll_losses=tuple(preset["pll_losses"]),
                n_groups=n_groups,
                superclass_rule=superclass_rule,
                preprocess=preprocess,
            )
            res = run_probe(ds, cfg, progress=None)
            log(f"[{NAME}] {noise} eta={eta:g} done ({res.elapsed_seconds:.1f}s)")
            trials = sorted({r["trial"] for r in res.rows})

            def rows_of(method, rnd, trial, rows=res.rows):
                return [
                    r
                    for r in rows
                    if r["method"] == method and r["round"] == rnd and r["trial"] == trial
                ]

            regimes = [(name, {"fixed": value}) for name, value in lams.items()]
            if preset["selected_row"]:
                regimes.append(("selected", {"select": f"{selection}_acc"}))
            for regime, how in regimes:
                for method, rnd, loss in _series(preset):
                    gains, tests, teachers, cover, used, certified = [], [], [], [], [], []
                    verified = 0
                    for trial in trials:
                        t_rows, s_rows = rows_of("sd", 0, trial), rows_of(method, rnd, trial)
                        if "fixed" in how:
                            t_row = next(r for r in t_rows if r["lam"] == how["fixed"])
                            s_row = next(r for r in s_rows if r["lam"] == how["fixed"])
                        else:
                            t_row = _pick(t_rows, how["select"])
                            s_row = _pick(s_rows, how["select"])
                        gains.append(s_row["test_acc"] - t_row["test_acc"])
                        tests.append(s_row["test_acc"])
                        teachers.append(t_row["test_acc"])
                        cover.append(t_row["coverage_test"])
                        used.append(s_row["lam"])
                        certified.append(bool(s_row["converged"]))
                        kind = s_row.get("stationary_point")
                        verified += kind in ("local minimum", "global minimum")
                    mean, half = mean_ci95(np.asarray(gains))
                    out.append(
                        {
                            "regime": regime,
                            "selection": "none" if "fixed" in how else selection,
                            "noise": noise,
                            "eta": float(eta),
                            "method": method,
                            "loss": loss or "",
                            "round": rnd,
                            "lam": how.get("fixed", float("nan")),
                            "lams_used": ";".join(f"{v:g}" for v in used),
                            "gain_mean": float(mean),
                            "gain_ci95": float(half),
                            "gain_std": float(np.std(gains, ddof=1)) if len(gains) > 1 else 0.0,
                            "gain_sd_ref": float(np.std(gains)),
                            "test_acc_mean": float(np.mean(tests)),
                            "teacher_test_acc_mean": float(np.mean(teachers)),
                            "teacher_top2_coverage_test": float(np.mean(cover)),
                            "all_certified": all(certified),
                            "verified_minima": int(verified),
                            "n_trials": len(gains),
                        }
                    )
    return out


def plot(rows: list[dict], preset: dict, dataset_name: str, selection: str, error_bars="ci95"):
    """Grid: rows = weight-decay regimes (+ selected), columns = noise families; grouped bars.

    Five bars per noise rate (SD ``t = 1..R`` and each PLL loss), one y-range for all panels;
    ``error_bars`` is ``'ci95'`` or ``'sd'`` (:data:`ERROR_BARS`).
    """
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    noises = list(dict.fromkeys(r["noise"] for r in rows))
    series = _series(preset)
    etas = np.asarray(preset["etas"], dtype=float)
    step = float(np.min(np.diff(etas))) if etas.size > 1 else 0.1
    width = 0.85 * step / len(series)
    err_key = "gain_ci95" if error_bars == "ci95" else "gain_sd_ref"
    fig, axes = style.figure(
        ncols=len(noises),
        nrows=len(regimes),
        width=3.5,
        height=2.8 if len(regimes) == 1 else 2.3,
        squeeze=False,
        sharey=True,
    )
    for i, regime in enumerate(regimes):
        for j, noise in enumerate(noises):
            ax = axes[i][j]
            sub = [r for r in rows if r["regime"] == regime and r["noise"] == noise]
            for b, (method, rnd, loss) in enumerate(series):
                pts = [r for r in sub if r["method"] == method and r["round"] == rnd]
                x = np.array([r["eta"] for r in pts]) + (b - (len(series) - 1) / 2) * width
                y = np.array([r["gain_mean"] for r in pts])
                e = np.array([r[err_key] for r in pts])
                if method == "sd":
                    label, hatch = f"SD t={rnd}", ""
                    color = palette.sd_color(rnd, preset["rounds"])
                else:
                    (label, hatch), color = PLL_STYLE[loss], palette.PLL
                ax.bar(
                    x,
                    y,
                    width,
                    color=color,
                    hatch=hatch,
                    edgecolor="white" if not hatch else "black",
                    linewidth=0.4,
                    label=label,
                    zorder=2,
                )
                ax.errorbar(x, y, yerr=e, fmt="none", ecolor="0.25", capsize=1.5, lw=0.8, zorder=3)
            ax.axhline(0.0, color=palette.THEORY, linewidth=0.8, zorder=1)
            ax.set_xticks(etas)
            ax.set_xticklabels([f"{100 * v:.0f}" for v in etas])
            if i == len(regimes) - 1:
                ax.set_xlabel("noise rate $\\eta$ (%)")
            if i == 0:
                ax.set_title(f"{NOISE_TITLES.get(noise, noise)} noise")
            if j == 0:
                if regime == "selected":
                    what = "validation" if selection == "val" else "TEST (optimistic)"
                    row = f"$\\lambda$ selected on {what}"
                else:
                    row = f"$\\lambda$={sub[0]['lam']:g} ({regime})"
                ax.set_ylabel(f"{row}\ngain in test accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(Line2D([], [], color=palette.THEORY, lw=0.8))
    labels.append("teacher (gain 0)")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3))
    n_trials = rows[0]["n_trials"] if rows else 0
    fig.suptitle(
        f"{dataset_name}: distillation gain = test accuracy of student − teacher (same seed)\n"
        f"bars: mean of {n_trials} seeds; error bars: {ERROR_BARS[error_bars]}"
    )
    return fig


def run(
    *,
    preset: str = "quick",
    out=None,
    seed: int = 0,
    workers: int = 1,
    features=None,
    labels=None,
    lam: float = 1e-4,
    superclass_rule: str | None = None,
    n_groups: int | None = None,
    preprocess: str = "center-l2",
    selection: str = "val",
    error_bars: str = "ci95",
    pll_losses: str | None = None,
    max_memory: float | None = None,
) -> int:
    """Compute the figure and write ``real_gain`` to ``out``.

    What ``python -m figures.real_gain`` does after reading its options (same names, same
    defaults), and what the runner (``python -m figures``) calls for this figure.

    Parameters
    ----------
    preset : {"quick", "paper", "tiny"}
        Problem sizes (:data:`PRESETS`).
    out : path-like, optional
        Output directory (default ``./selfdistill-figures``), checked for writability first.
    seed : int
        Base seed (>= 0) of every random stream.
    workers : int
        Unused (no Monte Carlo pool: the trials run in this process); accepted as by every
        figure.
    features : str, optional
        ``.npz``/``.csv``/``.npy`` features (default: the bundled digits).
    labels : str, optional
        Labels ``.npy`` (with ``.npy`` features).
    lam : float
        Base weight decay ``lam`` (> 0).
    superclass_rule : {"reference", "correlation"}, optional
        Superclass groups: the reference code's rule, or class-mean correlation into
        ``n_groups`` groups (default: reference, or correlation when ``n_groups`` is given).
    n_groups : int, optional
        Superclass groups of the correlation rule (>= 1).
    preprocess : {"center-l2", "raw"}
        Centred + L2-normalised rows, or the features as given (the reference code's).
    selection : {"val", "test"}
        Weight decay of the 'selected' row picked on validation, or on test (optimistic).
    error_bars : {"ci95", "sd"}
        95% Student-t CI of the mean, or +-1 SD as the reference plot.py.
    pll_losses : str, optional
        Comma-separated PLL losses among :data:`theory.names.LOSSES` (default: the preset's).
    max_memory : float, optional
        GB a features file may take to load (default: the memory available now); above it the
        load is refused with one line.

    Returns
    -------
    int
        Exit status: 0, or 2 after one line ``error: ...`` for an invalid value or data set.
    """
    out = prepare_output(out)
    sizes = dict(PRESETS[preset])
    try:
        if not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"--lam must be a finite number > 0, got {lam!r}")
        if n_groups is not None and n_groups < 1:
            raise ValueError(f"--n-groups must be an integer >= 1, got {n_groups}")
        if superclass_rule == "reference" and n_groups is not None:
            raise ValueError("--n-groups applies to --superclass-rule correlation")
        if pll_losses is not None:
            losses = tuple(x.strip() for x in pll_losses.split(",") if x.strip())
            bad = [x for x in losses if x not in LOSSES]
            if bad or not losses or len(set(losses)) != len(losses):
                raise ValueError(f"--pll-losses must be distinct names among {LOSSES}")
            sizes["pll_losses"] = losses
        limit = parse_max_memory(max_memory)
        ds = _dataset(features, labels, sizes["per_class"], limit)
    except ValueError as exc:
        log(f"error: {exc}")
        return 2
    if selection == "test":
        sizes["selected_row"] = True
        log(f"[{NAME}] --selection test: the 'selected' row picks lam on the TEST set (optimistic)")
    log(f"[{NAME}] {ds.name}: N={ds.n_samples}, p={ds.n_features}, K={ds.n_classes}")
    # Small p (digits: 64): multi-threaded BLAS only adds synchronisation overhead, and on a busy
    # machine its spinning threads slow the run down 10-20x. One thread is faster there; large
    # features (e.g. 512-d ResNet embeddings of 50k images) keep the default threads.
    with single_thread_blas() if ds.n_features <= SMALL_P else contextlib.nullcontext():
        rows = compute(
            ds,
            sizes,
            seed,
            lam,
            selection,
            n_groups,
            superclass_rule=superclass_rule,
            preprocess=preprocess,
        )
    style.write_csv(rows, out, NAME)
    fig = plot(rows, sizes, ds.name, selection, error_bars)
    paths = style.save_figure(fig, out, NAME, **style.preset_save(preset))
    log(f"[{NAME}] wrote {', '.join(str(p) for p in paths)} and {NAME}.csv")
    return 0


def main(argv=None) -> int:
    args = parse_args(
        argv, __doc__.splitlines()[0], PRESETS, extra=_extra_args, module=__spec__.name
    )
    return run(
        preset=args.preset,
        out=args.out,
        seed=args.seed,
        workers=args.workers,
        features=args.features,
        labels=args.labels,
        lam=args.lam,
        superclass_rule=args.superclass_rule,
        n_groups=args.n_groups,
        preprocess=args.preprocess,
        selection=args.selection,
        error_bars=args.error_bars,
        pll_losses=args.pll_losses,
        max_memory=args.max_memory,
    )


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
