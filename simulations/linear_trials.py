r"""Monte Carlo of the *linearised* dynamics on sampled Gaussian-mixture features.

The finite-dimension theory (:mod:`theory.finite`) predicts the linearised dynamics
``P_t - 1/K = (Y - 1/K) f_t(G)``, ``f_t(x) = (x/(x + K lam N))^(t+1)``, on the mixture's random
Gram matrix. This module samples that matrix exactly in distribution
(:func:`simulations.features.mixture_gram`, any ``p``, cost ``O(N^3)``) together with the
training points' inner products with the class means, applies the closed form of
:mod:`theory.averaging` to it, and scores

* training accuracy (all / clean / mislabeled points) from the deviations ``P_t - 1/K``, which
  carry the gaps without cancellation (:func:`theory.metrics.correct_and_tied`);
* population accuracy exactly given the sample (:func:`theory.population.
  population_accuracy_from_moments`): a fresh class-``k`` point ``x = mu_k + z`` gets linearised
  logits ``z_t(x) = K Yc U diag(a^t/(mu + kappa)) U^T X x``, Gaussian with mean from
  ``X mu_k`` (the mean rows) and covariance ``sigma^2 K^2 Yc g_t(G) G g_t(G) Yc^T``.

One trial is a pure function of its parameters and a seed (``SeedSequence`` spawned into a
features and a labels stream), so trials can run in any order or process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.features import mixture_gram
from simulations.noise import sample_noisy_labels
from theory.blas import single_thread_blas
from theory.gram import check_mixture_params
from theory.metrics import correct_and_tied
from theory.population import population_accuracy_from_moments
from theory.validation import check_int, check_positive

__all__ = ["LinearTrial", "run_linear_many", "run_linear_trial", "run_linear_trials"]


@dataclass(frozen=True)
class LinearTrial:
    """Parameters of one linearised Monte Carlo trial.

    ``transition`` (K, K) row-stochastic, sampled with ``sampling`` (``'exact-count'`` or
    ``'random'``, :func:`simulations.noise.sample_noisy_labels`); ``rounds`` SD rounds after the
    teacher.
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


def run_linear_trial(spec: LinearTrial, seed) -> dict:
    """One trial; returns accuracies per round and the realised count matrix.

    Returns
    -------
    dict
        ``train_acc``, ``train_acc_clean``, ``train_acc_mislabeled``, ``pop_acc``: (R + 1,);
        ``pop_acc_err`` (R + 1,) quadrature error estimates; ``counts`` (K, K).
    """
    k, p, c, d = check_mixture_params(spec.n_classes, spec.dim, spec.c, spec.d)
    n = check_int(spec.per_class, "per_class", 1)
    lam = check_positive(spec.lam, "lam")
    rounds = check_int(spec.rounds, "rounds", 0)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    feat_ss, label_ss = ss.spawn(2)
    y = np.repeat(np.arange(k), n)
    with single_thread_blas():
        gram, mean_rows = mixture_gram(
            k, p, c, d, y, np.random.default_rng(feat_ss), with_mean_rows=True
        )
        noisy = sample_noisy_labels(
            y,
            np.asarray(spec.transition, dtype=float),
            np.random.default_rng(label_ss),
            mode=spec.sampling,
        )
        return _score(gram, mean_rows, y, noisy, k, lam, rounds, (1.0 - c) / p)


def _score(gram, mean_rows, y, noisy, k, lam, rounds, noise_var):
    big_n = y.size
    kappa = k * lam * big_n
    mu, u = np.linalg.eigh(gram)
    mu = np.clip(mu, 0.0, None)
    yc = np.eye(k)[noisy].T - 1.0 / k
    coords = yc @ u  # (K, N)
    ratio = mu / (mu + kappa)
    proj_means = mean_rows @ u  # (K classes, N): U^T X mu_k
    clean = noisy == y
    out = {key: np.empty(rounds + 1) for key in ("train", "clean", "mis", "pop", "pop_err")}
    for t in range(rounds + 1):
        dev = (coords * ratio ** (t + 1)) @ u.T  # P_t - 1/K, (K, N)
        correct, _ = correct_and_tied(dev, y)
        out["train"][t] = correct.mean()
        out["clean"][t] = correct[clean].mean() if clean.any() else np.nan
        out["mis"][t] = correct[~clean].mean() if (~clean).any() else np.nan
        # logits / K of a fresh point: Yc U diag(g) U^T X x with g = a^t/(mu + kappa)
        g = ratio**t / (mu + kappa)
        mean_logits = (coords * g) @ proj_means.T  # (K out, K classes)
        factor = coords * (g * np.sqrt(mu))  # cov = sigma^2 factor factor^T
        pop = population_accuracy_from_moments(
            mean_logits.T, cov_factor=np.sqrt(noise_var) * factor, abs_tol=1e-3
        )
        out["pop"][t], out["pop_err"][t] = pop.accuracy, pop.err
    counts = np.bincount(y * k + noisy, minlength=k * k).reshape(k, k)
    return {
        "train_acc": out["train"],
        "train_acc_clean": out["clean"],
        "train_acc_mislabeled": out["mis"],
        "pop_acc": out["pop"],
        "pop_acc_err": out["pop_err"],
        "counts": counts,
    }


def run_linear_trials(spec: LinearTrial, n_trials: int, base_seed: int = 0) -> dict:
    """``n_trials`` independent trials (seeds ``SeedSequence(base_seed).spawn``), stacked.

    Returns a dict of arrays with a leading trial axis (T, ...).
    """
    t = check_int(n_trials, "n_trials", 1)
    seeds = np.random.SeedSequence(check_int(base_seed, "base_seed", 0)).spawn(t)
    res = [run_linear_trial(spec, s) for s in seeds]
    return {key: np.stack([r[key] for r in res]) for key in res[0]}


def _linear_job(job) -> dict:
    spec, seed = job
    return run_linear_trial(spec, seed)


def run_linear_many(
    specs, n_trials: int, base_seed: int = 0, workers: int = 1, label=None
) -> list[dict]:
    """:func:`run_linear_trials` for several specs, optionally in ``workers`` processes.

    Trial ``i`` of every spec uses the ``i``-th child of ``SeedSequence(base_seed)`` (as
    :func:`run_linear_trials` does for one spec, and :func:`simulations.gram_trials.run_mc_many`
    for the exact trials); progress is logged with a ``label``
    (:func:`simulations.gram_trials.parallel_map`).

    Returns
    -------
    list of dict
        One stacked result per spec (leading trial axis), in the order of ``specs``.
    """
    from simulations.gram_trials import parallel_map

    t = check_int(n_trials, "n_trials", 1)
    base = check_int(base_seed, "base_seed", 0)
    specs = list(specs)
    # Fresh seed objects per spec: a trial spawns from its SeedSequence, which advances that
    # object's counter; shared objects would give later specs other streams in a serial run.
    jobs = [(s, seed) for s in specs for seed in np.random.SeedSequence(base).spawn(t)]
    results = parallel_map(_linear_job, jobs, workers, label)
    return [
        {key: np.stack([r[key] for r in results[i * t : (i + 1) * t]]) for key in results[0]}
        for i in range(len(specs))
    ]
