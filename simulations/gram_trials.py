"""Monte Carlo trials of self-distillation on Gaussian-mixture features, in kernel form.

:func:`run_mixture_trial` draws training and test points of the Gaussian mixture of
:mod:`simulations.features` (class means ``mu_k`` with ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``,
isotropic noise of variance ``(1 - c)/p`` per coordinate), flips labels with
:func:`simulations.noise.sample_noisy_labels`, and trains the teacher, the self-distillation
rounds and the PLL student *exactly* (:mod:`simulations.distill`) from the Gram matrix.

Only inner products enter the probe, so the Gram matrix of training and test points is sampled
directly (:func:`mixture_gram`): rotating coordinates so the means span the first ``K`` axes,
``X = [M_Y + Z_1, Z_2]`` with ``Z_1`` (N', K) and ``Z_2`` (N', p - K) independent Gaussian, hence
``G = (M_Y + Z_1)(M_Y + Z_1)^T + Z_2 Z_2^T`` where ``Z_2 Z_2^T / sigma^2`` is Wishart with
``p - K`` degrees of freedom. For ``p - K >= N'`` it is drawn by the Bartlett decomposition
``W = L L^T`` (``L`` lower triangular, ``L_ii^2 ~ chi^2_{p-K-i}`` for ``i = 0..N'-1``,
``L_ij ~ N(0, 1)`` below the diagonal), exact in distribution and costing ``O(N'^3)`` whatever
``p`` is; otherwise ``Z_2`` is drawn explicitly. (Rotation invariance of isotropic noise makes the
choice of the means' frame irrelevant for the Gram matrix.)

Trials are run by :func:`run_mc` / :func:`run_mc_many`, optionally in several processes (each
pinned to one BLAS thread, :mod:`theory.blas`); trial ``i`` gets the ``i``-th child of
``SeedSequence(base_seed)``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from selfdistill_cli.limits import usable_cores
from simulations.distill import self_distill, train_pll
from simulations.features import mixture_gram
from simulations.noise import sample_noisy_labels
from simulations.workers import worker_pool
from theory.blas import blas_threads as blas_threads_limit
from theory.metrics import correct_and_tied
from theory.population import mixture_population_accuracy_kernel
from theory.validation import check_int, check_positive

__all__ = [
    "MixtureTrial",
    "parallel_map",
    "run_mc",
    "run_mc_many",
    "run_mixture_trial",
    "trial_seeds",
]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def trial_seeds(base_seed: int, n_trials: int) -> list[np.random.SeedSequence]:
    """Independent per-trial seeds ``SeedSequence(base_seed).spawn(n_trials)``."""
    check_int(base_seed, "base_seed", 0)
    return np.random.SeedSequence(base_seed).spawn(check_int(n_trials, "n_trials", 1))


def parallel_map(
    fn, items, workers: int = 1, label: str | None = None, blas_threads: int | None = 1
) -> list:
    """``[fn(x) for x in items]``, in ``workers`` processes if ``workers > 1`` (order kept).

    With a ``label``, progress (every quarter of the items) is logged to stderr. BLAS is
    limited to ``blas_threads`` threads in this process (serial) or in each worker (default 1:
    the trials' solves are small, and threads only contend); ``None`` leaves the serial run's
    BLAS as the caller set it (e.g. inside a :func:`theory.blas.blas_threads` limit of its own).
    """
    items = list(items)
    workers = min(check_int(workers, "workers", 1), len(items), usable_cores())
    total = len(items)
    marks = {max(1, round(total * q)) for q in (0.25, 0.5, 0.75, 1.0)} if label else set()
    out = []

    def collect(results):
        for i, r in enumerate(results, 1):
            out.append(r)
            if i in marks:
                _log(f"    {label}: {i}/{total} trials")
        return out

    if workers <= 1:
        with blas_threads_limit(blas_threads):
            return collect(fn(x) for x in items)
    with worker_pool(workers, blas_threads) as pool:  # they end with this process
        return collect(pool.map(fn, items, chunksize=max(1, total // (8 * workers))))


@dataclass(frozen=True)
class MixtureTrial:
    """Parameters of one Gaussian-mixture Monte Carlo trial (validated on use).

    ``transition`` is a (K, K) row-stochastic matrix; ``sampling`` as in
    :func:`simulations.noise.sample_noisy_labels`; ``rounds`` SD rounds after the teacher;
    ``pll`` adds the PLL student; ``n_test`` fresh points per class for the sampled population
    accuracy (``pop_acc_sampled``; ``pop_acc`` is the exact conditional one, computed only with
    ``exact_pop``: figures that do not use it skip its cost and get NaN).
    """

    n_classes: int
    per_class: int
    dim: int
    c: float
    d: float
    lam: float
    rounds: int
    transition: tuple
    sampling: str = "exact-count"
    pll: bool = False
    n_test: int = 20
    exact_pop: bool = True


def _accs(scores, truth, clean):
    correct, _ = correct_and_tied(scores, truth)
    mis = ~clean
    return (
        float(correct.mean()),
        float(correct[clean].mean()) if clean.any() else math.nan,
        float(correct[mis].mean()) if mis.any() else math.nan,
    )


def run_mixture_trial(job) -> dict:
    """One trial; ``job = (MixtureTrial, SeedSequence)``. Picklable for :func:`parallel_map`.

    Population accuracy: ``pop_acc`` is the exact conditional accuracy of each trained probe on
    the mixture (:func:`theory.population.mixture_population_accuracy_kernel`, from the
    training points' inner products with the class means, sampled jointly with the Gram matrix by
    :func:`simulations.features.mixture_gram`), with quadrature error estimate ``pop_acc_err``;
    ``pop_acc_sampled`` is the accuracy on the ``n_test`` fresh points per class. The seed streams
    are unchanged, so the sampled metric and everything else equal those of earlier versions.

    Returns
    -------
    dict of ndarray
        ``train_acc``, ``train_acc_clean``, ``train_acc_mislabeled``, ``pop_acc``,
        ``pop_acc_sampled``, ``pop_acc_err``: shape (R+1,) for rounds 0..R, and the same keys
        prefixed ``pll_`` (scalars) if ``pll``; ``counts`` (K, K) realised count matrix;
        ``max_residual`` of all certified solves.
    """
    spec, seed = job
    k = check_int(spec.n_classes, "n_classes", 2)
    n = check_int(spec.per_class, "per_class", 1)
    lam = check_positive(spec.lam, "lam")
    feat_ss, noise_ss = seed.spawn(2)
    y = np.repeat(np.arange(k), n)
    y_test = np.repeat(np.arange(k), check_int(spec.n_test, "n_test", 1))
    gram_all, mean_rows = mixture_gram(
        k,
        spec.dim,
        spec.c,
        spec.d,
        np.concatenate([y, y_test]),
        np.random.default_rng(feat_ss),
        with_mean_rows=True,
    )
    big_n = y.size
    gram, rows = gram_all[:big_n, :big_n], gram_all[big_n:, :big_n]
    mean_rows = mean_rows[:, :big_n]
    noise_var = (1.0 - spec.c) / spec.dim
    transition = np.asarray(spec.transition, dtype=float)
    noisy = sample_noisy_labels(y, transition, np.random.default_rng(noise_ss), mode=spec.sampling)
    clean = noisy == y
    sd = self_distill(noisy, k, lam, spec.rounds, gram=gram)
    spectral = sd.factor.spectral  # F F^T = G: the logit covariance in factor form

    def population(sol):
        sampled = float(correct_and_tied(sol.predict_logits(kernel_rows=rows), y_test)[0].mean())
        if not spec.exact_pop:
            return math.nan, sampled, math.nan
        exact = mixture_population_accuracy_kernel(
            sol.dual, mean_rows, None, noise_var, gram_factor=spectral
        )
        return exact.accuracy, sampled, exact.err

    keys = ("train_acc", "clean", "mis", "pop", "pop_sampled", "pop_err")
    out = {key: np.empty(spec.rounds + 1) for key in keys}
    for t, sol in enumerate(sd.solutions):  # decide from logits, not rounded outputs
        out["train_acc"][t], out["clean"][t], out["mis"][t] = _accs(sol.logits, y, clean)
        out["pop"][t], out["pop_sampled"][t], out["pop_err"][t] = population(sol)
    res = {
        "train_acc": out["train_acc"],
        "train_acc_clean": out["clean"],
        "train_acc_mislabeled": out["mis"],
        "pop_acc": out["pop"],
        "pop_acc_sampled": out["pop_sampled"],
        "pop_acc_err": out["pop_err"],
        "counts": np.bincount(y * k + noisy, minlength=k * k).reshape(k, k),
        "max_residual": max(c.residual for c in sd.certificates),
    }
    if spec.pll:
        student = train_pll(sd.solutions[0], lam)
        a, cl, mi = _accs(student.logits, y, clean)
        pop, pop_sampled, pop_err = population(student)
        res.update(
            pll_train_acc=a,
            pll_train_acc_clean=cl,
            pll_train_acc_mislabeled=mi,
            pll_pop_acc=pop,
            pll_pop_acc_sampled=pop_sampled,
            pll_pop_acc_err=pop_err,
        )
        res["max_residual"] = max(res["max_residual"], student.certificate.residual)
    return res


def run_mc(spec: MixtureTrial, n_trials: int, base_seed: int, workers: int = 1, label=None) -> dict:
    """``n_trials`` independent :func:`run_mixture_trial` runs of ``spec``, stacked.

    Returns
    -------
    dict of ndarray
        Every per-trial field stacked along a leading trial axis (T, ...).
    """
    jobs = [(spec, s) for s in trial_seeds(base_seed, n_trials)]
    results = parallel_map(run_mixture_trial, jobs, workers, label)
    return {key: np.stack([np.asarray(r[key]) for r in results]) for key in results[0]}


def run_mc_many(specs, n_trials: int, base_seed: int, workers: int = 1, label=None) -> list[dict]:
    """:func:`run_mc` for several specs, all trials sharing one process pool.

    Trial ``i`` of every spec uses the same seed (common random numbers: the same features and
    label-flip permutations across specs), which makes differences between specs less noisy.
    """
    # Fresh seed objects per spec: a trial spawns children from its SeedSequence, which advances
    # that object's spawn counter; shared objects gave spec 2, 3, ... other streams in a serial
    # run than in worker processes (which get pickled copies), i.e. results depended on workers.
    jobs = [(spec, s) for spec in specs for s in trial_seeds(base_seed, n_trials)]
    results = parallel_map(run_mixture_trial, jobs, workers, label)
    out = []
    for i in range(len(specs)):
        chunk = results[i * n_trials : (i + 1) * n_trials]
        out.append({key: np.stack([np.asarray(r[key]) for r in chunk]) for key in chunk[0]})
    return out
