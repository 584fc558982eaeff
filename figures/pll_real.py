"""Why two-hot CE loses and the candidate-set losses gain on real features (digits by default).

Evidence for docs/theory.md section 12, one panel each (2 x 2), panels 1-3 against the noise rate
``eta`` (symmetric noise, fixed ``lam``), mean and 95% Student-t interval over seeds (markers of
one noise rate dodged sideways); the PLL students share the PLL colour and differ by marker:

1. **Gain** -- test accuracy of the PLL student minus the teacher's (same seed), for the four
   losses of :mod:`simulations.pll_losses` (two-hot CE, ``-log s``, the candidate-set GCE and the
   reference code's per-candidate GCE, all from the teacher), with SD round 3 for scale.
2. **The teacher's candidates** -- top-2 coverage of the true label (train and test), and the
   *runner-up concentration*: for the training points whose top-2 contains the true class, the
   share of the single most frequent other candidate within each class, averaged over classes
   (``1/(K-1)`` if the runner-ups were spread evenly as in the block model's symmetric noise;
   ``1`` is a whole-class tie, docs/theory.md section 7).
3. **How the student splits the candidate mass** -- median over training points of
   ``min(p_a, p_b) / (p_a + p_b)``: ``1/2`` is the two-hot target, ``0`` a committed choice.
4. **Spectrum** of the training Gram matrix (eigenvalues ``mu_j`` in decreasing order) against the
   block model fitted to the same features (its three levels,
   :func:`theory.real_features.block_fit`) and the filter's half-point ``mu = K lam N``: with
   ``p < N`` there are only ``p`` nonzero eigenvalues, spread over decades, and none of the block
   model's ``N - K`` within-class directions that let a probe memorise individual labels.

The CSV also gives, for the two-hot CE student, the fraction of its new test errors (points the
teacher classifies correctly) that go to the teacher's runner-up class ("top-2 swaps").

Presets: ``quick`` (eta 0.3/0.5/0.7, 3 seeds), ``paper`` (eta 0.1-0.8, 10 seeds), ``tiny``
(a 300-sample subset, one eta, one seed). The non-convex solves report their stationarity
certificate; the second-order test (``hessian``) runs in the paper preset only, to keep the quick
preset fast. ``--features FILE`` and ``--lam`` as in :mod:`figures.real_gain`.
"""

from __future__ import annotations

import numpy as np

from figures import palette, style
from figures.common import log, mean_ci95, parse_args, prepare_output
from simulations.datasets import load_dataset, preprocess, validate_dataset
from simulations.distill import self_distill
from simulations.noise import sample_noisy_labels
from simulations.pll_losses import train_pll_student
from simulations.probe import stratified_split
from theory.blas import single_thread_blas
from theory.metrics import accuracy
from theory.names import LOSS_LABELS, LOSSES
from theory.noise import transition_matrix
from theory.partial_labels import top2_indices
from theory.real_features import block_fit, feature_spectrum

NAME = "pll_real"

PRESETS = {
    "quick": {"etas": (0.3, 0.5, 0.7), "seeds": 3, "per_class": None, "hessian": "none"},
    "paper": {
        "etas": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        "seeds": 10,
        "per_class": None,
        "hessian": "auto",
    },
    "tiny": {"etas": (0.5,), "seeds": 1, "per_class": 30, "hessian": "none"},
}
#: Round of self-distillation shown for scale.
SD_ROUND = 3
#: PLL students: all in the PLL accent, told apart by their marker.
STYLE = {
    "ce": (f"PLL, {LOSS_LABELS['ce']}", "s"),
    "candidate": (f"PLL, {LOSS_LABELS['candidate']}", "^"),
    "gce": (f"PLL, {LOSS_LABELS['gce']}", "v"),
    "gce-reference": (f"PLL, {LOSS_LABELS['gce-reference']}", "D"),
}


def _extra_args(parser) -> None:
    parser.add_argument("--features", default=None, help=".npz/.csv/.npy features (default digits)")
    parser.add_argument("--labels", default=None, help="labels .npy (with .npy features)")
    parser.add_argument("--lam", type=float, default=1e-4, help="lam of (lam/2)||W||^2 (> 0)")


def runner_up_concentration(cand, labels, n_classes) -> float:
    """Mean over classes of the largest share of one other class among the runner-up candidates
    of the points whose top-2 ``cand`` (2, N) contains their label (module docstring)."""
    covered = np.any(cand == labels, axis=0)
    other = np.where(cand[0] == labels, cand[1], cand[0])
    shares = []
    for c in range(n_classes):
        mask = covered & (labels == c)
        if mask.any():
            shares.append(np.bincount(other[mask], minlength=n_classes).max() / mask.sum())
    return float(np.mean(shares))


def candidate_split(outputs, cand) -> float:
    """Median over columns of ``min(p_a, p_b) / (p_a + p_b)`` for candidates ``cand`` (2, N)."""
    cols = np.arange(outputs.shape[1])
    pa, pb = outputs[cand[0], cols], outputs[cand[1], cols]
    return float(np.median(np.minimum(pa, pb) / (pa + pb)))


def _trial(ds, eta, lam, seq, hessian):
    split_seq, noise_seq = seq.spawn(2)
    k = ds.n_classes
    sp = stratified_split(ds.labels, k, 0.15, 0.3, np.random.default_rng(split_seq))
    tr, te = sp["train_idx"], sp["test_idx"]
    x = preprocess(ds.features, tr).features
    x_tr, x_te = x[tr], x[te]
    y_tr, y_te = ds.labels[tr], ds.labels[te]
    noisy = sample_noisy_labels(
        y_tr, transition_matrix("sym", k, eta), np.random.default_rng(noise_seq)
    )
    sd = self_distill(noisy, k, lam, SD_ROUND, features=x_tr)
    teacher = sd.solutions[0]
    cand = top2_indices(teacher.outputs)
    t_test = teacher.predict(features=x_te)
    t_acc = accuracy(t_test, y_te)
    t_cand_test = top2_indices(t_test)
    out = {
        "teacher_test_acc": t_acc,
        "sd_gain": accuracy(sd.solutions[SD_ROUND].predict(features=x_te), y_te) - t_acc,
        "coverage_train": float(np.mean(np.any(cand == y_tr, axis=0))),
        "coverage_test": float(np.mean(np.any(t_cand_test == y_te, axis=0))),
        "runner_up_concentration": runner_up_concentration(cand, y_tr, k),
    }
    certified, minima = True, 0
    for loss in LOSSES:
        st = train_pll_student(teacher, lam, loss=loss, candidates=cand, hessian=hessian)
        pred = st.predict(features=x_te)
        out[f"{loss}_gain"] = accuracy(pred, y_te) - t_acc
        out[f"{loss}_split"] = candidate_split(st.outputs, cand)
        certified &= st.certificate.converged
        minima += st.certificate.stationary_point in ("local minimum", "global minimum")
        if loss == "ce":
            new_err = (t_test.argmax(0) == y_te) & (pred.argmax(0) != y_te)
            swap = pred.argmax(0) == t_cand_test[1]
            out["ce_new_errors"] = int(new_err.sum())
            out["ce_swap_fraction"] = float(swap[new_err].mean()) if new_err.any() else np.nan
    out["all_certified"] = bool(certified)
    out["verified_minima"] = int(minima)
    return out, x_tr, y_tr


def compute(ds, preset, seed, lam):
    """Per-eta summaries (tidy rows) and the spectrum of the first trial's training features."""
    rows, spectrum = [], None
    for eta in preset["etas"]:
        seqs = np.random.SeedSequence([seed, int(round(1000 * eta))]).spawn(preset["seeds"])
        trials = []
        for seq in seqs:
            res, x_tr, y_tr = _trial(ds, eta, lam, seq, preset["hessian"])
            trials.append(res)
            if spectrum is None:
                spectrum = _spectrum(x_tr, y_tr, ds.n_classes, lam)
        log(f"[{NAME}] eta={eta:g}: {len(trials)} trial(s)")
        row = {"eta": float(eta), "lam": lam, "n_trials": len(trials)}
        for key in trials[0]:
            vals = np.array([t[key] for t in trials], dtype=float)
            if key in ("all_certified",):
                row[key] = bool(np.all(vals))
                continue
            if key in ("verified_minima", "ce_new_errors"):
                row[key] = int(np.sum(vals))
                continue
            mean, half = mean_ci95(vals)
            row[f"{key}_mean"] = float(mean)
            row[f"{key}_ci95"] = float(half)
        rows.append(row)
    return rows, spectrum


def _spectrum(x_tr, y_tr, k, lam):
    spec = feature_spectrum(x_tr)
    fit = block_fit(x_tr, y_tr, k)
    n = x_tr.shape[0]
    return {
        "eigenvalues": spec.eigenvalues,
        "block": fit.model.eigenvalues,
        "block_c": fit.model.c,
        "block_d": fit.model.d,
        "half_point": k * lam * n,
        "n_samples": n,
        "dim": x_tr.shape[1],
    }


def plot(rows, spectrum, name):
    """2 x 2 panels: (a) gain, (b) the teacher's candidates, (c) the split, (d) the spectrum."""
    fig, axes = style.figure(2, 2, width=3.6, height=2.45)
    axes = axes.ravel()
    etas = np.array([r["eta"] for r in rows])
    step = float(np.min(np.diff(etas))) if etas.size > 1 else 0.1

    def points(ax, key, label, color, marker, i, n, **kw):
        y = np.array([r[f"{key}_mean"] for r in rows])
        e = np.array([r[f"{key}_ci95"] for r in rows])
        x = etas + (i - (n - 1) / 2) * 0.09 * step  # dodged: the intervals stay apart
        kw.setdefault("markersize", 5.5)
        style.sim_errorbar(ax, x, y, e, color=color, marker=marker, label=label, **kw)

    ax = axes[0]
    n = len(STYLE) + 1
    for i, (loss, (label, marker)) in enumerate(STYLE.items()):
        points(ax, f"{loss}_gain", label, palette.PLL, marker, i, n)
    sd_col = palette.sd_color(SD_ROUND, SD_ROUND)
    points(ax, "sd_gain", f"SD round {SD_ROUND}", sd_col, "o", n - 1, n)
    ax.axhline(0.0, color=palette.THEORY, linewidth=0.8, zorder=1)
    ax.set_ylabel("gain in test accuracy")
    ax.set_title("(a) PLL student − teacher")

    ax = axes[1]
    points(ax, "coverage_train", "top-2 coverage, train", palette.TEACHER, "s", 0, 3)
    points(ax, "coverage_test", "top-2 coverage, test", palette.TEACHER, "P", 1, 3)
    points(ax, "runner_up_concentration", "runner-up concentration", palette.THEORY, "o", 2, 3)
    style.reference_line(ax, 1.0 / (spectrum["n_classes"] - 1), "even runner-ups 1/(K−1)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.set_title("(b) the teacher's candidates")
    ax.legend(loc="center left", borderaxespad=0.2, handletextpad=0.3)

    ax = axes[2]
    for i, (loss, (label, marker)) in enumerate(STYLE.items()):
        points(ax, f"{loss}_split", label, palette.PLL, marker, i, len(STYLE))
    style.reference_line(ax, 0.5, "two-hot target ½", pos=0.98)
    # Below 0: the splits of -log s and GCE-of-the-set are ~0.01, and their markers and lower
    # error bars would be cut by an axis at 0.
    ax.set_ylim(-0.03, 0.58)
    ax.set_ylabel("median min$(p_a,p_b)/(p_a+p_b)$")
    ax.set_title("(c) split of the candidate mass (train)")
    for ax in axes[:3]:
        ax.set_xlabel("noise rate $\\eta$ (symmetric)")
        ax.set_xticks(etas)

    ax = axes[3]
    # Eigenvalues below 1e-8 mu_max are round-off-level and carry no filter weight; leaving them
    # out keeps the log axis (and its tick layout) to a few decades.
    mu = spectrum["eigenvalues"]
    mu = mu[mu >= 1e-8 * mu[0]]
    ax.semilogy(
        np.arange(1, mu.size + 1),
        mu,
        "o",
        color=palette.THEORY,
        ms=2.2,
        ls="none",
        label=f"features (p={spectrum['dim']}, N={spectrum['n_samples']})",
    )
    levels = sorted(set(np.round(spectrum["block"], 12)), reverse=True)
    for j, val in enumerate(levels[:3]):
        if val > 0:
            head = "block model fit: " if j == 0 else ""
            ax.axhline(val, color=palette.EIGEN[j], lw=1.4, zorder=1, label=f"{head}μ{'₁₂₃'[j]}")
    style.reference_line(ax, spectrum["half_point"], "KλN (filter half-point)", pos=0.02)
    ax.set_xlabel("eigenvalue index $j$ (training Gram matrix)")
    ax.set_ylabel("eigenvalue $\\mu_j$")
    ax.set_title("(d) Gram spectrum (one seed)")
    ax.legend(loc="lower left", borderaxespad=0.2, handletextpad=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, handletextpad=0.3)
    n_trials = rows[0]["n_trials"] if rows else 0
    fig.suptitle(
        f"Why the PLL loss matters on real features ({name}, λ={rows[0]['lam']:g}): "
        f"mean of {n_trials} seeds ± 95% Student-t CI"
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
) -> int:
    """Compute the figure and write ``pll_real`` to ``out``.

    What ``python -m figures.pll_real`` does after reading its options (same names, same
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
        ``lam`` of ``(lam/2) ||W||^2`` (> 0).

    Returns
    -------
    int
        Exit status: 0, or 2 after one line ``error: ...`` for an invalid value or data set.
    """
    out = prepare_output(out)
    sizes = PRESETS[preset]
    try:
        if not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"--lam must be a finite number > 0, got {lam!r}")
        ds = load_dataset(features, labels)
    except ValueError as exc:
        log(f"error: {exc}")
        return 2
    if sizes["per_class"] is not None:
        idx = np.concatenate(
            [np.flatnonzero(ds.labels == c)[: sizes["per_class"]] for c in range(ds.n_classes)]
        )
        ds = validate_dataset(ds.features[idx], ds.labels[idx], name=f"{ds.name}[{idx.size}]")
    with single_thread_blas():
        rows, spectrum = compute(ds, sizes, seed, lam)
    spectrum["n_classes"] = ds.n_classes
    style.write_csv(rows, out, NAME)
    fig = plot(rows, spectrum, ds.name)
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
    )


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
