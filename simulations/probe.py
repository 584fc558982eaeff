r"""Self-distillation and PLL on real (frozen) features: the linear-probing experiment.

One *trial* (seed ``s``) does, with independent streams from ``SeedSequence(seed).spawn(trials)``:

1. **Split** (seeded, stratified): per class, a random ``test_fraction`` of the samples goes to
   test, ``val_fraction`` to validation and the rest to train (at least one training sample per
   class). A predefined split in the dataset (``.npz`` ``train_idx/val_idx/test_idx``) is used as
   is for every seed; only the noise then varies.
2. **Preprocessing** (``preprocess``, :data:`theory.names.PREPROCESSING`): ``'center-l2'``
   (default; :func:`simulations.datasets.preprocess`) centres with the *training* mean and
   L2-normalises every row; ``'raw'`` trains on the features as given, as the reference code does
   (it trains its linear probe on raw ResNet features).
3. **Noise**: training labels are replaced by draws from ``theory.noise.transition_matrix(noise,
   K, eta, groups=...)`` (:func:`simulations.noise.sample_noisy_labels`, mode ``'random'``).
   Validation labels get the same noise by default (``noisy_val=True``: a user's validation labels
   come from the same annotation process); test labels are always clean. ``'superclass'`` groups
   are found once per dataset (on the predefined training split if there is one, else on all
   samples: the groups define the noise model, not the learner) by ``superclass_rule``
   (:data:`theory.names.SUPERCLASS_RULES`): ``'reference'`` (the default unless ``n_groups`` is
   given) is the reference code's rule, :func:`simulations.noise.reference_superclass_groups`
   (complete linkage on 1 - mean pairwise cosine similarity, cut at 0.8 x the largest merge
   height: the number of groups follows from the data); ``'correlation'`` clusters the class
   means of the globally centred, L2-normalised features into ``n_groups`` groups (default
   ``max(2, K // 3)``; :func:`simulations.noise.class_mean_groups`, average linkage on
   1 - Pearson correlation).
4. For every ``lam`` in ``lams``, all through the scikit-learn estimator
   :class:`simulations.estimator.SelfDistillationClassifier` (one path from features to results;
   it does the preprocessing of step 2 with ``preprocess='center-l2'``, fitting the mean on the
   training rows): **teacher** (round 0) and **SD rounds** ``1..R`` by exact training
   (``method='sd'``, :func:`simulations.distill.self_distill`); the **PLL student** for every loss
   in ``pll_losses`` (``method='pll-*'``, :func:`simulations.pll_losses.train_pll_student`, started
   from the teacher, certified): by default two-hot cross-entropy (``'ce'``, method ``pll-ce``, the
   theory's loss) and the reference code's GCE, ``q = 0.7``, on each of the two candidates
   (``'gce-reference'``, method ``pll-gce-ref``); also available the candidate log-likelihood
   (``pll-candidate``) and the candidate-set GCE (``pll-gce``); the teacher's **top-2 coverage**
   (fraction of samples whose true label is among the teacher's two largest outputs) on train and
   test. One estimator per trial with ``warm_start=True`` factorises the training features once
   and trains each teacher once.
5. **Model selection on the validation split only**: for each family (teacher over ``lam``; SD over
   ``(lam, round)`` with round 0 included; each PLL method over ``lam``; and "best" over all of
   them) the configuration with the highest validation accuracy is chosen (ties to the earliest
   in the order lam, round) and its *test* accuracy reported. Test accuracy is never used to select.

Accuracies use :func:`theory.metrics.accuracy` (ties count as errors) on the logits, never on
rounded outputs (near ``1/K`` these lose their gaps); so do the top-2 candidates. Training accuracy
is measured against the *true* training labels (how much of the noise the model undoes), validation
against the validation labels used for selection, test against clean test labels.

Results (:class:`ProbeResult`) hold one row per (trial, lam, method, round) and a summary with mean
and sample standard deviation (``ddof = 1``; ``None`` for a single seed) over trials, written as
JSON and CSV by :func:`write_results`.

Layout (issue 23): the configuration, the split and the superclass groups (the experiment's
inputs) are :mod:`simulations.probe_setup`, re-exported here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from selfdistill_cli.files import atomic_write_many
from selfdistill_cli.progress import progress_bar
from simulations.datasets import Dataset, preprocess
from simulations.estimator import SelfDistillationClassifier
from simulations.noise import sample_noisy_labels
from simulations.probe_setup import (
    ProbeConfig,
    check_probe_classes,
    stratified_split,
    superclass_groups,
)
from simulations.probe_verdict import probe_verdict
from theory.metrics import accuracy
from theory.names import LOSS_METHOD
from theory.noise import transition_matrix
from theory.partial_labels import top2_indices

__all__ = [
    "ProbeConfig",
    "ProbeResult",
    "check_probe_classes",
    "run_probe",
    "stratified_split",
    "superclass_groups",
    "top2_coverage",
    "write_results",
]

#: PLL loss (:data:`simulations.pll_losses.LOSSES`) -> method name in the rows, which is the
#: ``method`` of :class:`simulations.estimator.SelfDistillationClassifier`
#: (:data:`theory.names.LOSS_METHOD`; before the registry the rows said ``pll_ce``...).
PLL_METHODS = LOSS_METHOD
#: Methods reported per lam; "sd" rows carry the round (0 = teacher).
METHODS = ("sd", *PLL_METHODS.values())
#: Families selected on validation (those of the PLL losses run, in this order).
SELECTIONS = ("teacher", "sd", *PLL_METHODS.values(), "best")


def top2_coverage(scores, true_labels) -> float:
    """Fraction of columns of ``scores`` (K, M; pass logits) whose true label is among the top-2."""
    cand = top2_indices(scores)
    return float(np.mean(np.any(cand == np.asarray(true_labels)[None, :], axis=0)))


@dataclass
class ProbeResult:
    """Rows, per-trial selections, theory and the summary of :func:`run_probe`."""

    config: dict
    dataset: dict
    rows: list = field(default_factory=list)
    selections: list = field(default_factory=list)
    theory: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    groups: list | None = None
    elapsed_seconds: float = 0.0
    verdict: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain-JSON view; NaN (e.g. an undefined accuracy) becomes ``None`` (JSON ``null``)."""
        return _json_safe(
            {
                "verdict": self.verdict,
                "config": self.config,
                "dataset": self.dataset,
                "groups": self.groups,
                "summary": self.summary,
                "selections": self.selections,
                "theory": self.theory,
                "rows": self.rows,
                "elapsed_seconds": self.elapsed_seconds,
            }
        )


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _mean_std(values) -> dict:
    v = np.asarray(values, dtype=float)
    std = float(np.std(v, ddof=1)) if v.size > 1 else None
    return {"mean": float(np.mean(v)), "std": std, "n": int(v.size)}


def _trial(dataset, config, groups, seq, trial_index, tick=None):
    """One seeded trial; returns (rows, selection records, theory records)."""
    split_seq, noise_seq = seq.spawn(2)
    k = dataset.n_classes
    if dataset.splits is not None:
        split = dataset.splits
    else:
        split = stratified_split(
            dataset.labels,
            k,
            config.val_fraction,
            config.test_fraction,
            np.random.default_rng(split_seq),
        )
    tr, va, te = split["train_idx"], split["val_idx"], split["test_idx"]
    x_tr, x_va, x_te = dataset.features[tr], dataset.features[va], dataset.features[te]
    y_tr, y_va, y_te = dataset.labels[tr], dataset.labels[va], dataset.labels[te]
    trans = transition_matrix(config.noise, k, config.eta, groups=groups)
    noise_rng = np.random.default_rng(noise_seq)
    noisy_tr = sample_noisy_labels(y_tr, trans, noise_rng)
    noisy_va = sample_noisy_labels(y_va, trans, noise_rng) if config.noisy_val else y_va
    base = {"trial": trial_index, "noise_rate_train": float(np.mean(noisy_tr != y_tr))}
    # One estimator per trial: warm_start reuses the factorisation of the (identical) training
    # features across lam and methods, and the teacher across the methods of one lam.
    # classes= keeps all K classes even if the noise removed every label of one of them.
    est = SelfDistillationClassifier(
        q=config.q,
        preprocess=config.preprocess,
        tol=config.tol,
        store_outputs=True,
        warm_start=True,
        classes=np.arange(k),
    )
    rows, theory_rows = [], []
    for lam in config.lams:
        lam = float(lam)
        est.set_params(lam=lam, method="sd", rounds=config.rounds).fit(x_tr, noisy_tr)
        # decisions from logits (K, M), never from rounded probabilities (issue 11)
        val_outs = list(est.staged_logits(x_va))
        test_outs = list(est.staged_logits(x_te))
        cov_tr = top2_coverage(next(iter(est.staged_logits(x_tr))), y_tr)
        cov_te = top2_coverage(test_outs[0], y_te)
        extra = {**base, "lam": lam, "coverage_train": cov_tr, "coverage_test": cov_te}

        def record(method, rnd, val_out, test_out, stationary_point, extra=extra):
            cert = est.certificates_[rnd]
            rows.append(
                {
                    **extra,
                    "method": method,
                    "round": rnd,
                    "train_acc": accuracy(est.outputs_[rnd].T, y_tr),
                    "val_acc": accuracy(val_out, noisy_va),
                    "test_acc": accuracy(test_out, y_te),
                    "residual": float(cert.residual),
                    "converged": bool(cert.converged),
                    "stationary_point": stationary_point,
                }
            )

        for t in range(config.rounds + 1):
            record("sd", t, val_outs[t], test_outs[t], "global minimum")  # strictly convex
        for loss in config.pll_losses:
            with warnings.catch_warnings():
                # a student short of its tolerance is recorded in the row ("converged")
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.set_params(method=PLL_METHODS[loss], rounds=1).fit(x_tr, noisy_tr)
            cert = est.certificates_[1]
            record(
                PLL_METHODS[loss],
                1,
                est.logits(x_va),
                est.logits(x_te),
                cert.stationary_point,
            )
        if config.theory:
            from theory.real_features import real_feature_theory

            on = config.preprocess == "center-l2"
            x_pre = preprocess(x_tr, np.arange(tr.size), center=on, normalize=on).features
            th = real_feature_theory(x_pre, y_tr, noisy_tr, k, lam, config.rounds)
            theory_rows.append({"trial": trial_index, "lam": lam, **th.to_dict()})
        if tick is not None:
            tick()
    return rows, _select(rows, trial_index), theory_rows


def _select(rows, trial_index):
    """Validation-only selection per family; ties go to the first candidate in row order."""
    families = {
        "teacher": lambda r: r["method"] == "sd" and r["round"] == 0,
        "sd": lambda r: r["method"] == "sd",
        "best": lambda r: True,
    }
    present = {r["method"] for r in rows}
    out = []
    for name in SELECTIONS:
        if name in PLL_METHODS.values() and name not in present:
            continue
        cands = [r for r in rows if families.get(name, lambda r, m=name: r["method"] == m)(r)]
        best = cands[int(np.argmax([r["val_acc"] for r in cands]))]
        out.append(
            {
                "trial": trial_index,
                "family": name,
                "method": best["method"],
                "lam": best["lam"],
                "round": best["round"],
                "val_acc": best["val_acc"],
                "test_acc": best["test_acc"],
            }
        )
    return out


def _summarise(rows, selections, theory_rows, config):
    summary = {"per_config": [], "selected": [], "theory": []}
    teacher_test = {
        (r["trial"], r["lam"]): r["test_acc"]
        for r in rows
        if r["method"] == "sd" and r["round"] == 0
    }
    keys = []
    for r in rows:
        key = (r["lam"], r["method"], r["round"])
        if key not in keys:
            keys.append(key)
    for lam, method, rnd in keys:
        grp = [r for r in rows if (r["lam"], r["method"], r["round"]) == (lam, method, rnd)]
        entry = {"lam": lam, "method": method, "round": rnd}
        for metric in ("train_acc", "val_acc", "test_acc", "coverage_train", "coverage_test"):
            entry[metric] = _mean_std([r[metric] for r in grp])
        entry["gain"] = _mean_std([r["test_acc"] - teacher_test[(r["trial"], lam)] for r in grp])
        entry["all_converged"] = bool(all(r["converged"] for r in grp))
        summary["per_config"].append(entry)
    for fam in SELECTIONS:
        grp = [s for s in selections if s["family"] == fam]
        if not grp:
            continue
        summary["selected"].append(
            {
                "family": fam,
                "test_acc": _mean_std([s["test_acc"] for s in grp]),
                "val_acc": _mean_std([s["val_acc"] for s in grp]),
                "choices": [(s["method"], s["lam"], s["round"]) for s in grp],
            }
        )
    for lam in config.lams:
        grp = [t for t in theory_rows if t["lam"] == float(lam)]
        if not grp:
            continue
        entry = {"lam": float(lam)}
        for key in grp[0]:
            if key in ("trial", "lam"):
                continue
            vals = [t[key] for t in grp]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                entry[key] = _mean_std(vals)
            elif all(isinstance(v, list) for v in vals) and len({len(v) for v in vals}) == 1:
                arr = np.asarray(vals, dtype=float)
                entry[key] = {
                    "mean": arr.mean(axis=0).tolist(),
                    "std": arr.std(axis=0, ddof=1).tolist() if len(vals) > 1 else None,
                    "n": len(vals),
                }
            else:
                entry[key] = vals
        summary["theory"].append(entry)
    return summary


def run_probe(
    dataset: Dataset, config: ProbeConfig, *, progress=None, quiet: bool = True
) -> ProbeResult:
    """Run ``config.trials`` trials of the experiment in the module docstring.

    Parameters
    ----------
    dataset : Dataset
        From :mod:`simulations.datasets` (raw, un-preprocessed features).
    config : ProbeConfig
    progress : callable(str) or None
        Receives one line per finished trial (e.g. ``print``; default: none).
    quiet : bool
        ``False``: a progress bar with an ETA over the ``trials x len(lams)`` fits on stderr
        (:mod:`selfdistill_cli.progress`: drawn only on a terminal).

    Returns
    -------
    ProbeResult
    """
    config = config.validated()
    check_probe_classes(config, dataset.n_classes)
    start = time.perf_counter()
    groups = None
    if config.noise == "superclass":
        if config.superclass_rule == "reference":
            groups = superclass_groups(dataset, rule="reference")
        else:
            n_groups = config.n_groups or max(2, dataset.n_classes // 3)
            if n_groups > dataset.n_classes:
                raise ValueError(
                    f"n_groups must be <= n_classes={dataset.n_classes}, got {n_groups}"
                )
            groups = superclass_groups(dataset, n_groups)
    result = ProbeResult(
        config={**asdict(config), "lams": [float(v) for v in config.lams]},
        dataset={
            "name": dataset.name,
            "n_samples": dataset.n_samples,
            "n_features": dataset.n_features,
            "n_classes": dataset.n_classes,
            "predefined_split": dataset.splits is not None,
        },
        groups=groups,
    )
    seqs = np.random.SeedSequence(config.seed).spawn(config.trials)
    bar = progress_bar(
        total=config.trials * len(config.lams), desc="probe (trial x lam)", unit="fit", quiet=quiet
    )
    for i, seq in enumerate(seqs):
        t0 = time.perf_counter()
        rows, sel, th = _trial(dataset, config, groups, seq, i, tick=bar.update)
        result.rows.extend(rows)
        result.selections.extend(sel)
        result.theory.extend(th)
        if progress is not None:
            best = next(s for s in sel if s["family"] == "best")
            progress(
                f"[probe] trial {i + 1}/{config.trials} done in {time.perf_counter() - t0:.1f}s "
                f"(val-selected: {best['method']} lam={best['lam']:g} round={best['round']}, "
                f"test acc {best['test_acc']:.3f})"
            )
    bar.close()
    result.summary = _summarise(result.rows, result.selections, result.theory, config)
    result.verdict = probe_verdict(result.summary, result.config)
    result.elapsed_seconds = time.perf_counter() - start
    return result


def write_results(result: ProbeResult, out_dir) -> dict:
    """Write ``probe.json`` (everything) and ``probe.csv`` (summary, one row per configuration).

    Both go through :func:`selfdistill_cli.files.atomic_write_many`: a failed write (a full disk)
    leaves *both* previous files as they were, and a symbolic link planted at either name is
    replaced, never followed. Returns a dict with the two paths.

    Raises
    ------
    selfdistill_cli.files.WriteError
        One line naming the file that could not be written.
    """
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "probe.json")
    csv_path = os.path.join(out_dir, "probe.csv")
    # Both texts are formed first: nothing is written unless both exist.
    json_text = json.dumps(result.to_json(), indent=1, allow_nan=False)
    fields = ["lam", "method", "round"]
    metrics = ("train_acc", "val_acc", "test_acc", "gain", "coverage_train", "coverage_test")
    for m in metrics:
        fields += [f"{m}_mean", f"{m}_std"]
    fields += ["n_trials", "all_converged"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for e in result.summary["per_config"]:
        row = {"lam": e["lam"], "method": e["method"], "round": e["round"]}
        for m in metrics:
            row[f"{m}_mean"] = e[m]["mean"]
            row[f"{m}_std"] = "" if e[m]["std"] is None else e[m]["std"]
        row["n_trials"] = e["test_acc"]["n"]
        row["all_converged"] = e["all_converged"]
        writer.writerow(row)
    for s in result.summary["selected"]:
        writer.writerow(
            {
                "lam": "",
                "method": f"selected:{s['family']}",
                "round": "",
                "test_acc_mean": s["test_acc"]["mean"],
                "test_acc_std": "" if s["test_acc"]["std"] is None else s["test_acc"]["std"],
                "val_acc_mean": s["val_acc"]["mean"],
                "val_acc_std": "" if s["val_acc"]["std"] is None else s["val_acc"]["std"],
                "n_trials": s["test_acc"]["n"],
            }
        )
    # Both on disk before either replaces its previous version: never a new probe.json beside
    # an old probe.csv.
    atomic_write_many({json_path: json_text.encode(), csv_path: buf.getvalue().encode()})
    return {"json": json_path, "csv": csv_path}
