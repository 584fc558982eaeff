r"""Monte Carlo of a :class:`theory.spec.Spec`: one entry point, two backends (issue 23, item 2).

:func:`simulate` is the sampled counterpart of :func:`theory.spec.predict` and returns the same
:class:`theory.spec.Result`, with per round and metric the mean over trials, its standard error
``s / sqrt(m)`` and the half-width of the Student-t 95% interval
(:func:`simulations.stats.mean_ci`; ``m`` the trials where the metric is defined).

Backends
--------
``'exact'`` (default)
    Certified exact self-distillation or PLL student on sampled features
    (:func:`simulations.pipelines.run_trial`): Gaussian-mixture features at finite ``dim``,
    the exact block Gram matrix at ``dim = inf``. Source ``'monte_carlo'``.
``'linearised'``
    The label-averaging closed form on each sampled Gram matrix
    (:func:`simulations.linear_trials.run_linear_trial`; SD at finite ``dim`` only), the
    reference of the linearised finite-p theory. Source ``'linearised_monte_carlo'``.

Labels are sampled with ``sampling='exact-count'``, so every trial's count matrix is the
theory's ``spec.count_matrix()``. Trial ``i`` uses
:func:`simulations.pipelines.trial_seed` ``(seed, i)`` for both backends, so its stream does not
depend on the number of trials or workers.
"""

from __future__ import annotations

import numpy as np

from selfdistill_cli.limits import check_time, parse_max_time
from simulations.gram_trials import parallel_map
from simulations.linear_trials import LinearTrial, run_linear_trial
from simulations.memory import check_memory, parse_max_memory, trial_bytes
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from simulations.runtime import DEFAULT_MAX_SECONDS, TRIAL_SECONDS, factor_seconds, trial_seconds
from simulations.stats import mean_ci
from theory.noise import transition_matrix
from theory.spec import METRICS, Result, Spec
from theory.validation import check_int

__all__ = ["BACKENDS", "simulate"]

#: Monte Carlo backends of :func:`simulate` -> the ``source`` of their :class:`Result`.
BACKENDS = {"exact": "monte_carlo", "linearised": "linearised_monte_carlo"}


def _exact_job(job) -> tuple[np.ndarray, np.ndarray, int, float]:
    """One exact trial -> (values (R+1, M), counts, uncertified solves, max residual/target)."""
    config, seed = job
    res = run_trial(config, seed)
    values = np.array([[row[m] for m in METRICS] for row in res.rows], dtype=float)
    uncertified = sum(not row.get("converged", True) for row in res.rows)
    ratio = max(
        (row["residual"] / row["target"] for row in res.rows if row.get("target")), default=0.0
    )
    return values, res.counts, uncertified, float(ratio)


def _linear_job(job) -> tuple[np.ndarray, np.ndarray, int, float]:
    trial, seed = job
    out = run_linear_trial(trial, seed)
    values = np.column_stack([out[m] for m in METRICS])
    return values, out["counts"], 0, 0.0


def _cost(spec: Spec, backend: str, config) -> tuple[float, int]:
    """``(seconds, bytes)`` of one trial (:mod:`simulations.runtime`, :mod:`simulations.memory`).

    Linearised backend: sampling the ``N x N`` Gram matrix and its eigendecomposition,
    ``factor_seconds(N, p)``, with ~6 ``N x N`` and 2 ``N x p`` float64 arrays alive.
    """
    if backend == "exact":
        return trial_seconds(config), trial_bytes(config)
    n = spec.n_classes * spec.per_class
    return TRIAL_SECONDS + factor_seconds(n, int(spec.dim)), 8 * (6 * n * n + 2 * n * spec.dim)


def _jobs(spec: Spec, backend: str, trials: int, seed: int, n_test: int, tol: float):
    """``(job function, one trial's parameters, seeds)``; the seeds are made lazily."""
    seeds = (trial_seed(seed, i) for i in range(trials))
    if backend == "exact":
        features = "mixture" if spec.finite else "exact-block"
        config = TrialConfig(
            n_classes=spec.n_classes,
            per_class=spec.per_class,
            dim=int(spec.dim) if spec.finite else 0,
            c=spec.c,
            d=spec.d,
            eta=spec.eta,
            lam=spec.lam,
            rounds=spec.rounds,
            noise=spec.noise,
            sampling="exact-count",
            features=features,
            method=spec.method,
            n_test=n_test,
            q=spec.q,
            tol=tol,
        )
        return _exact_job, config, seeds
    if spec.method != "sd" or not spec.finite:
        raise ValueError(
            "backend 'linearised' simulates SD at a finite dim only; got "
            f"method={spec.method!r}, dim={spec.dim!r} (use backend='exact')"
        )
    transition = transition_matrix(spec.noise, spec.n_classes, spec.eta)
    trial = LinearTrial(
        spec.n_classes,
        spec.per_class,
        int(spec.dim),
        spec.c,
        spec.d,
        spec.lam,
        spec.rounds,
        tuple(map(tuple, transition)),
        "exact-count",
    )
    return _linear_job, trial, seeds


def simulate(
    spec: Spec,
    trials: int,
    *,
    seed: int = 0,
    backend: str = "exact",
    workers: int = 1,
    n_test: int = 100,
    tol: float = 1e-9,
    label: str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory: float | None = None,
) -> Result:
    r"""Monte Carlo estimate of ``spec``'s accuracies, rounds ``0..R``.

    Parameters
    ----------
    spec : theory.spec.Spec
        Without ``counts`` (labels are sampled from ``spec.noise`` and ``spec.eta``).
    trials : int
        Independent trials ``>= 1`` (``>= 2`` for a standard error).
    seed : int
        Base seed ``>= 0``; trial ``i`` uses ``trial_seed(seed, i)``.
    backend : {'exact', 'linearised'}
        Module docstring.
    workers : int
        Processes (capped at the usable cores by :func:`simulations.gram_trials.parallel_map`).
    n_test : int
        Fresh test draws per class of the sampled population accuracy (exact backend; the
        reported ``pop_acc`` is the exact conditional one and does not depend on it).
    tol : float
        Certified fixed-point residual of every exact solve.
    label : str, optional
        With a label, progress is logged to stderr every quarter of the trials.
    max_seconds : float or None
        Refuse up front (``ValueError``, one line with the estimate) a run whose estimated time
        (:mod:`simulations.runtime`) exceeds this many seconds; default one hour, ``None``: no
        limit.
    max_memory : float, optional
        Memory limit in GB for the trials running at once; default the available memory.

    Returns
    -------
    theory.spec.Result
        ``values`` the means, ``se`` the standard errors, ``ci95`` the 95% half-widths, all of
        shape ``(R + 1, len(METRICS))``; ``notes`` state uncertified solves, if any; ``extra``
        holds ``max_residual_ratio`` (largest residual / target over all solves, ``<= 1`` when
        certified) and ``defined_trials`` per round and metric.
    """
    if not isinstance(spec, Spec):
        raise ValueError(f"spec must be a theory.spec.Spec, got {type(spec).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
    if spec.counts is not None:
        raise ValueError(
            "spec.counts is set: the Monte Carlo samples labels from spec.noise and spec.eta "
            "(exact-count sampling gives spec.count_matrix() without counts)"
        )
    t = check_int(trials, "trials", 1)
    base = check_int(seed, "seed", 0)
    fn, params, seeds = _jobs(spec, backend, t, base, n_test, tol)
    seconds, nbytes = _cost(spec, backend, params)
    at_once = min(check_int(workers, "workers", 1), t)
    limit = None if max_memory is None else parse_max_memory(max_memory, "max_memory")
    check_memory(nbytes * at_once, f"{at_once} trial(s) at once", limit, option="max_memory")
    if max_seconds is not None:
        what = f"{t} trial(s) of {spec.rounds} round(s) at K={spec.n_classes}"
        limit = parse_max_time(max_seconds, "max_seconds")
        check_time(t * seconds / at_once, what, limit, option="max_seconds")
    out = parallel_map(fn, [(params, s) for s in seeds], workers, label)
    samples = np.stack([o[0] for o in out])  # (trials, R + 1, M)
    mean, half, count = mean_ci(samples, axis=0)
    defined = ~np.isnan(samples)
    dev = np.where(defined, samples - np.where(np.isnan(mean), 0.0, mean), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # m <= 1: no variance estimate
        sd = np.sqrt((dev**2).sum(axis=0) / (count - 1))
        se = np.where(count > 1, sd / np.sqrt(np.maximum(count, 1)), np.nan)
    uncertified = sum(o[2] for o in out)
    expected = spec.count_matrix()
    notes = []
    if uncertified:
        notes.append(f"{uncertified} solve(s) not certified: their trials are included")
    if any(not np.array_equal(o[1], expected) for o in out):
        notes.append("a trial's count matrix differs from spec.count_matrix()")
    extra = {
        "max_residual_ratio": max(o[3] for o in out),
        "defined_trials": count.astype(int).tolist(),
    }
    return Result(spec, BACKENDS[backend], mean, se, half, t, tuple(notes), extra)
