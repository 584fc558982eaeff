r"""Monte Carlo of a :class:`theory.spec.Spec`: one entry point, three backends (issue 23, item 2).

:func:`simulate` is the sampled counterpart of :func:`theory.spec.predict` and returns the same
:class:`theory.spec.Result`, with per round and metric the mean over trials, its standard error
``s / sqrt(m)`` and the half-width of the Student-t 95% interval
(:func:`simulations.stats.mean_ci`; ``m`` the trials where the metric is defined).
:func:`simulate_many` runs several specs with common random numbers in one process pool.

Signatures
----------
::

    simulate(spec, trials, *, seed=0, backend='exact', workers=1, n_test=100, tol=1e-9,
             exact_pop=True, pll=False, temperature=1.0, keep_trials=False, label=None,
             progress=None, first_trial=0, max_seconds=DEFAULT_MAX_SECONDS,
             max_memory=None, blas_threads=1) -> Result
    simulate_many(specs, trials, *, <the same keywords>) -> list[Result]
    BACKENDS = {'exact': 'monte_carlo', 'linearised': 'linearised_monte_carlo',
                'kernel': 'kernel_monte_carlo'}            # backend -> Result.source

Backends
--------
``'exact'`` (default)
    Certified exact self-distillation or PLL student on sampled features
    (:func:`simulations.pipelines.run_trial`): Gaussian-mixture features at finite ``dim``,
    the exact block Gram matrix at ``dim = inf``. Every method. Per-trial fields
    (``keep_trials``): every field of :data:`EXACT_ROW_FIELDS` (trials, R + 1), with the dtype
    of the trial's rows (ints, floats, bools, strings), so that
    :func:`simulations.sweep.run_config` writes its tidy rows from them;
    ``max_residual_ratio`` (trials,); ``groups`` (list of the trials' superclass partitions,
    ``None`` without superclass noise).
``'linearised'``
    The label-averaging closed form on each sampled Gram matrix
    (:func:`simulations.linear_trials.run_linear_trial`; SD at finite ``dim`` only), the
    reference of the linearised finite-p theory. Per-trial fields: ``pop_acc_err``
    (trials, R + 1).
``'kernel'``
    Certified exact SD on the directly sampled Gram matrix of the mixture
    (:func:`simulations.gram_trials.run_mixture_trial`, cost ``O(N'^3)`` whatever ``dim`` is;
    finite ``dim``, methods ``'sd'`` and ``'pll-ce'``). Its per-trial numbers are the very
    floats of :func:`simulations.gram_trials.run_mc` / ``run_mc_many`` for the same parameters
    (the figures' Monte Carlo). ``exact_pop=False`` skips the exact conditional population
    accuracy (``pop_acc`` is then NaN; the sampled one is in ``trial_data``). ``pll=True``
    (with ``method='sd'``) also trains the PLL student (cross-entropy on the teacher's top-2,
    ``'pll-ce'``) in the same trial, from the same teacher solve, and returns it as
    ``Result.pll``. Per-trial fields: ``pop_acc_sampled``, ``pop_acc_err`` (trials, R + 1),
    ``max_residual`` (trials,); with ``pll`` the student's own in ``Result.pll.trial_data``.

``keep_trials=True`` fills ``Result.samples`` (trials, R + 1, len(METRICS)), ``Result.counts``
(trials, K, K) and ``Result.trial_data``. Simulation-only knobs (``n_test``, ``tol``,
``exact_pop``, ``pll``) are keywords, not :class:`~theory.spec.Spec` fields: they change how a
trial is computed or what it reports, not the experiment the theory predicts.

Labels are sampled as ``spec.sampling`` says: with ``'exact-count'`` (the default) every
trial's count matrix is the theory's ``spec.count_matrix()``; with ``'random'`` (or superclass
``n_groups``, exact backend) each trial has its own, ``Result.counts[i]``, and the theory is asked
per matrix, ``predict(dataclasses.replace(spec, counts=C))`` (as ``simulations run`` does).
``spec.transition``, when set, replaces ``noise``/``eta`` (kernel and linearised backends).
A :class:`simulations.pipelines.TrialConfig` maps to its spec by :func:`run_spec` and back, with
the simulation-only knobs, by :func:`trial_config` (``trial_config(run_spec(c), n_test=c.n_test,
tol=c.tol, temperature=c.temperature) == c``): ``simulations run`` and ``simulations sweep`` run
their configs through :func:`simulate` this way.
Trial ``i`` uses :func:`simulations.pipelines.trial_seed` ``(seed, i)`` (the same stream as the
``i``-th child of ``SeedSequence(seed)``, :func:`simulations.gram_trials.trial_seeds`) for every
backend and every spec of :func:`simulate_many` (common random numbers), so its stream depends
neither on the number of trials nor on the workers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from selfdistill_cli.limits import check_time, parse_max_time
from simulations.gram_trials import MixtureTrial, parallel_map, run_mixture_trial
from simulations.linear_trials import LinearTrial, run_linear_trial
from simulations.memory import check_memory, parse_max_memory, trial_bytes
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from simulations.runtime import (
    DEFAULT_MAX_SECONDS,
    ORTHANT_SECONDS,
    TRIAL_SECONDS,
    factor_seconds,
    solve_seconds,
    trial_seconds,
)
from simulations.stats import mean_ci
from simulations.sweep_spec import ROW_FIELDS
from theory.blas import blas_threads as blas_threads_limit
from theory.spec import METRICS, Result, Spec
from theory.validation import check_int

__all__ = ["BACKENDS", "EXACT_ROW_FIELDS", "run_spec", "simulate", "simulate_many", "trial_config"]

#: Monte Carlo backends of :func:`simulate` -> the ``source`` of their :class:`Result`.
BACKENDS = {
    "exact": "monte_carlo",
    "linearised": "linearised_monte_carlo",
    "kernel": "kernel_monte_carlo",
}
#: Methods of the kernel backend (:func:`simulations.distill.train_pll` is the CE student).
KERNEL_METHODS = ("sd", "pll-ce")


#: Per-trial fields of the exact backend, one value per row (round) of
#: :func:`simulations.pipelines.run_trial`: every column of a sweep's tidy rows
#: (:data:`simulations.sweep_spec.ROW_FIELDS`), the metrics included.
EXACT_ROW_FIELDS = tuple(ROW_FIELDS)
#: Python types kept as such in a field's array (:func:`_row_array`).
_NATIVE_DTYPES = {bool: bool, int: np.int64, float: np.float64, str: np.str_}


def _row_array(values: list) -> np.ndarray:
    """The values of one field over the rows, with their type kept.

    One Python type among ``bool, int, float, str`` -> an array of that dtype, whose
    ``tolist()`` gives back the very values (a float64 holds a Python float exactly); anything
    else (``None``, mixed types) -> an object array of the values themselves. ``np.array`` alone
    would turn ``[1, 2.5]`` into floats and so change ``1`` into ``1.0`` in a CSV.
    """
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and (kind := kinds.pop()) in _NATIVE_DTYPES:
        return np.array(values, dtype=_NATIVE_DTYPES[kind])
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _exact_job(job) -> dict:
    """One exact trial -> ``values`` (R+1, M), ``counts``, ``uncertified`` solves, ``fields``."""
    config, seed = job
    res = run_trial(config, seed)
    values = np.array([[row[m] for m in METRICS] for row in res.rows], dtype=float)
    uncertified = sum(not row.get("converged", True) for row in res.rows)
    ratio = max(
        (row["residual"] / row["target"] for row in res.rows if row.get("target")), default=0.0
    )
    fields = {key: _row_array([row[key] for row in res.rows]) for key in EXACT_ROW_FIELDS}
    fields["max_residual_ratio"] = float(ratio)
    return {
        "values": values,
        "counts": res.counts,
        "uncertified": uncertified,
        "fields": fields,
        "groups": res.groups,
    }


def _linear_job(job) -> dict:
    trial, seed = job
    out = run_linear_trial(trial, seed)
    values = np.column_stack([out[m] for m in METRICS])
    return {
        "values": values,
        "counts": out["counts"],
        "fields": {"pop_acc_err": out["pop_acc_err"]},
    }


#: Per-trial fields of the kernel backend beside the metrics (``pll_``-prefixed for the student).
_KERNEL_FIELDS = ("pop_acc_sampled", "pop_acc_err")


def _kernel_job(job) -> dict:
    """One :func:`run_mixture_trial`; ``job = (MixtureTrial, seed, student_only)``.

    ``student_only`` (method ``'pll-ce'``): the trial ran with ``rounds=0, pll=True`` and the
    rows are [teacher, student]. Otherwise, with ``trial.pll``, the student's rows come back
    under ``'pll'``.
    """
    trial, seed, student_only = job
    out = run_mixture_trial((trial, seed))
    sd_values = np.column_stack([np.asarray(out[m], dtype=float) for m in METRICS])
    sd_fields = {k: np.asarray(out[k], dtype=float) for k in _KERNEL_FIELDS}
    res = {"counts": out["counts"], "fields": {"max_residual": float(out["max_residual"])}}
    if trial.pll:
        pll_values = np.vstack([sd_values[0], [out[f"pll_{m}"] for m in METRICS]])
        pll_fields = {k: np.array([sd_fields[k][0], out[f"pll_{k}"]]) for k in _KERNEL_FIELDS}
        if student_only:
            res["values"] = pll_values
            res["fields"].update(pll_fields)
            return res
        res["pll"] = {"values": pll_values, "fields": pll_fields}
    res["values"] = sd_values
    res["fields"].update(sd_fields)
    return res


def _check_backend(spec: Spec, backend: str, knobs: dict) -> None:
    """``ValueError`` naming the backend that covers what ``backend`` does not."""
    pll, temperature = knobs["pll"], knobs["temperature"]
    if not knobs["exact_pop"] and backend != "kernel":
        raise ValueError(
            f"exact_pop=False (skip the exact population accuracy) needs backend='kernel'; got "
            f"backend={backend!r}"
        )
    if backend != "exact":
        if spec.n_groups is not None:
            raise ValueError(
                f"backend {backend!r} samples labels from a fixed transition matrix: n_groups "
                "(groups clustered per trial) needs backend='exact'"
            )
        if temperature != 1.0:
            raise ValueError(
                f"temperature={temperature!r}: backend {backend!r} distils on raw outputs "
                "(temperature 1); use backend='exact'"
            )
    if backend == "linearised" and (spec.method != "sd" or not spec.finite):
        raise ValueError(
            "backend 'linearised' simulates SD at a finite dim only; got "
            f"method={spec.method!r}, dim={spec.dim!r} (use backend='exact')"
        )
    if backend == "kernel":
        if not spec.finite:
            raise ValueError(
                "backend 'kernel' samples the Gram matrix of a Gaussian mixture: dim must be "
                "finite (use backend='exact' for the block limit)"
            )
        if spec.method not in KERNEL_METHODS:
            raise ValueError(
                f"backend 'kernel' trains methods {KERNEL_METHODS}, got method={spec.method!r} "
                "(use backend='exact')"
            )
    if pll and (backend != "kernel" or spec.method != "sd"):
        raise ValueError(
            "pll=True (the PLL student from the same trial's teacher) needs backend='kernel' "
            f"and method='sd'; got backend={backend!r}, method={spec.method!r}"
        )


def _params(spec: Spec, backend: str, knobs: dict):
    """``(job function, one trial's parameters without the seed, extra job items)``."""
    if backend == "exact":
        config = trial_config(
            spec, n_test=knobs["n_test"], tol=knobs["tol"], temperature=knobs["temperature"]
        )
        return _exact_job, config, ()
    transition = tuple(map(tuple, spec.transition_matrix()))
    if backend == "linearised":
        trial = LinearTrial(
            spec.n_classes,
            spec.per_class,
            int(spec.dim),
            spec.c,
            spec.d,
            spec.lam,
            spec.rounds,
            transition,
            spec.sampling,
        )
        return _linear_job, trial, ()
    student_only = spec.method != "sd"
    trial = MixtureTrial(
        spec.n_classes,
        spec.per_class,
        int(spec.dim),
        spec.c,
        spec.d,
        spec.lam,
        0 if student_only else spec.rounds,
        transition,
        spec.sampling,
        pll=knobs["pll"] or student_only,
        n_test=knobs["n_test"],
        exact_pop=knobs["exact_pop"],
    )
    return _kernel_job, trial, (student_only,)


def run_spec(config: TrialConfig) -> Spec:
    """The :class:`theory.spec.Spec` of a trial config (``dim = inf`` for exact-block features).

    ``n_test``, ``temperature`` and ``tol`` are :func:`simulate` keywords, not spec fields: they
    change how trials are computed, not what the theory predicts. :func:`trial_config` is the
    inverse.
    """
    names = ("n_classes", "per_class", "c", "d", "lam", "rounds", "noise", "eta", "method", "q")
    fields = {name: getattr(config, name) for name in names}
    dim = config.dim if config.features == "mixture" else math.inf
    return Spec(
        **fields,
        sampling=config.sampling,
        dim=dim,
        groups=config.groups,
        n_groups=config.n_groups,
    )


def trial_config(
    spec: Spec, *, n_test: int = 100, tol: float = 1e-9, temperature: float = 1.0
) -> TrialConfig:
    """The :class:`simulations.pipelines.TrialConfig` of one exact-backend trial of ``spec``.

    Mixture features at finite ``spec.dim``, exact-block features (``dim`` 0) at ``dim = inf``;
    the simulation-only knobs as in :func:`simulate`. Inverse of :func:`run_spec`.

    Raises
    ------
    ValueError
        ``spec.transition`` is set (the exact backend samples labels from a noise model), or
        the config is invalid (:class:`TrialConfig`).
    """
    if spec.transition is not None:
        raise ValueError(
            "spec.transition is set: backend 'exact' samples labels from a noise model "
            "(use backend='kernel' for an arbitrary transition matrix)"
        )
    return TrialConfig(
        n_classes=spec.n_classes,
        per_class=spec.per_class,
        dim=int(spec.dim) if spec.finite else 0,
        c=spec.c,
        d=spec.d,
        eta=spec.eta,
        lam=spec.lam,
        rounds=spec.rounds,
        noise=spec.noise,
        sampling=spec.sampling,
        features="mixture" if spec.finite else "exact-block",
        method=spec.method,
        n_test=n_test,
        temperature=temperature,
        groups=spec.groups,
        n_groups=spec.n_groups,
        q=spec.q,
        tol=tol,
    )


def _cost(spec: Spec, backend: str, params, n_test: int) -> tuple[float, int]:
    """``(seconds, bytes)`` of one trial (:mod:`simulations.runtime`, :mod:`simulations.memory`).

    The linearised and kernel backends sample the Gram matrix of ``N'`` points directly
    (:func:`simulations.features.mixture_gram`): by the Bartlett decomposition when
    ``p - K >= N'`` (``O(N'^3)``, no ``N' x p`` array), else from explicit noise of shape
    ``(N', p - K)`` with ``p - K < N'``; so a trial costs about one factorisation of ``N'``
    points in ``min(p, N')`` dimensions and holds ~8 ``N' x N'`` float64 arrays, whatever ``p``.
    Linearised: ``N' = N``, then one eigendecomposition. Kernel: ``N' = N + K n_test`` (training
    and test points), then one solve and one ``K``-dimensional orthant integral per class and row.
    """
    if backend == "exact":
        return trial_seconds(params), trial_bytes(params)
    k = spec.n_classes
    n = k * spec.per_class
    big = n if backend == "linearised" else n + k * n_test
    sample = TRIAL_SECONDS + factor_seconds(big, min(int(spec.dim), big))
    nbytes = 8 * 8 * big * big
    if backend == "linearised":
        return sample + factor_seconds(n, n), nbytes
    rows = params.rounds + 1 + int(params.pll)
    per_row = solve_seconds(n, n, k) + (ORTHANT_SECONDS * k * k if params.exact_pop else 0.0)
    return sample + rows * per_row, nbytes


def _summarise(spec, source, out, keep_trials, extra_fn) -> Result:
    samples = np.stack([o["values"] for o in out])  # (trials, R + 1, M)
    mean, half, count = mean_ci(samples, axis=0)
    defined = ~np.isnan(samples)
    dev = np.where(defined, samples - np.where(np.isnan(mean), 0.0, mean), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # m <= 1: no variance estimate
        sd = np.sqrt((dev**2).sum(axis=0) / (count - 1))
        se = np.where(count > 1, sd / np.sqrt(np.maximum(count, 1)), np.nan)
    fields = {k: np.stack([np.asarray(o["fields"][k]) for o in out]) for k in out[0]["fields"]}
    notes, extra = extra_fn(fields)
    extra["defined_trials"] = count.astype(int).tolist()
    kept = {}
    if keep_trials:
        kept = dict(samples=samples, trial_data=fields)
    return Result(spec, source, mean, se, half, len(out), tuple(notes), extra, **kept)


def simulate_many(
    specs,
    trials: int,
    *,
    seed: int = 0,
    backend: str = "exact",
    workers: int = 1,
    n_test: int = 100,
    tol: float = 1e-9,
    exact_pop: bool = True,
    pll: bool = False,
    temperature: float = 1.0,
    keep_trials: bool = False,
    label: str | None = None,
    progress=None,
    first_trial: int = 0,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory: float | None = None,
    blas_threads: int | None = 1,
) -> list[Result]:
    r"""Monte Carlo of several specs with common random numbers, all trials in one pool.

    Trial ``i`` of every spec uses the seed ``trial_seed(seed, i)`` (fresh objects per spec):
    the same features and label draws wherever the specs share the shapes, which makes
    differences between specs less noisy. With ``backend='kernel'`` the per-trial numbers are
    those of :func:`simulations.gram_trials.run_mc_many` (same order of jobs in the pool).

    Parameters
    ----------
    specs : sequence of theory.spec.Spec
        Without ``counts`` (labels are sampled from ``noise``/``eta`` or ``transition``).
    trials, seed, backend, workers, n_test, tol, exact_pop, pll, temperature, keep_trials,
    label, progress, first_trial, max_seconds, max_memory, blas_threads
        As in :func:`simulate`; the time and memory limits apply to the whole batch.

    Returns
    -------
    list of theory.spec.Result
        One per spec, in order.
    """
    specs = list(specs)
    if not specs:
        raise ValueError("specs must hold at least one theory.spec.Spec")
    for spec in specs:
        if not isinstance(spec, Spec):
            raise ValueError(f"spec must be a theory.spec.Spec, got {type(spec).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
    t = check_int(trials, "trials", 1)
    base = check_int(seed, "seed", 0)
    first = check_int(first_trial, "first_trial", 0)
    if blas_threads is not None:
        check_int(blas_threads, "blas_threads", 1)
    n_test = check_int(n_test, "n_test", 1)
    knobs = dict(n_test=n_test, tol=tol, exact_pop=bool(exact_pop), pll=bool(pll))
    knobs["temperature"] = temperature
    for spec in specs:
        if spec.counts is not None:
            raise ValueError(
                "spec.counts is set: the Monte Carlo samples labels from spec.noise and spec.eta "
                "(exact-count sampling gives spec.count_matrix() without counts)"
            )
        _check_backend(spec, backend, knobs)
    plans = [_params(spec, backend, knobs) for spec in specs]
    costs = [_cost(spec, backend, plan[1], n_test) for spec, plan in zip(specs, plans, strict=True)]
    at_once = min(check_int(workers, "workers", 1), t * len(specs))
    limit = None if max_memory is None else parse_max_memory(max_memory, "max_memory")
    nbytes = max(c[1] for c in costs)
    check_memory(nbytes * at_once, f"{at_once} trial(s) at once", limit, option="max_memory")
    if max_seconds is not None:
        rounds = max(spec.rounds for spec in specs)
        k = max(spec.n_classes for spec in specs)
        what = f"{t * len(specs)} trial(s) of {rounds} round(s) at K={k}"
        limit = parse_max_time(max_seconds, "max_seconds")
        total = t * sum(c[0] for c in costs)
        check_time(total / at_once, what, limit, option="max_seconds")
    fn = plans[0][0]
    # Fresh seed objects per job: a trial spawns children from its SeedSequence, which advances
    # that object's spawn counter (simulations.gram_trials.run_mc_many).
    jobs = [(plan[1], trial_seed(base, first + i), *plan[2]) for plan in plans for i in range(t)]
    if progress is None:
        out = parallel_map(fn, jobs, workers, label, blas_threads)
    else:  # the caller's progress display, one process (e.g. selfdistill_cli.progress)
        with blas_threads_limit(blas_threads):
            out = [fn(jobs[i]) for i in progress(range(len(jobs)))]
    results = []
    for j, spec in enumerate(specs):
        chunk = out[j * t : (j + 1) * t]
        results.append(_result(spec, backend, chunk, keep_trials))
    return results


def _result(spec: Spec, backend: str, chunk: list, keep_trials: bool) -> Result:
    source = BACKENDS[backend]
    expected = spec.count_matrix() if spec.fixed_counts else None
    counts = np.stack([np.asarray(o["counts"]) for o in chunk])

    def describe(fields):
        notes, extra = [], {}
        uncertified = sum(o.get("uncertified", 0) for o in chunk)
        if uncertified:
            notes.append(f"{uncertified} solve(s) not certified: their trials are included")
        if expected is not None and any(not np.array_equal(c, expected) for c in counts):
            notes.append("a trial's count matrix differs from spec.count_matrix()")
        for key in ("max_residual_ratio", "max_residual"):
            if key in fields:
                extra[key] = float(np.max(fields[key]))
        return notes, extra

    res = _summarise(spec, source, chunk, keep_trials, describe)
    if keep_trials:
        res = dataclasses.replace(res, counts=counts)
        if "groups" in chunk[0]:  # the superclass partition of each trial (None otherwise)
            res.trial_data["groups"] = [o["groups"] for o in chunk]
    if "pll" in chunk[0]:
        student = dataclasses.replace(spec, method="pll-ce")
        sub = [{**o["pll"], "counts": o["counts"]} for o in chunk]
        pll_res = _summarise(student, source, sub, keep_trials, lambda f: ([], {}))
        if keep_trials:
            pll_res = dataclasses.replace(pll_res, counts=counts)
        res = dataclasses.replace(res, pll=pll_res)
    return res


def simulate(
    spec: Spec,
    trials: int,
    *,
    seed: int = 0,
    backend: str = "exact",
    workers: int = 1,
    n_test: int = 100,
    tol: float = 1e-9,
    exact_pop: bool = True,
    pll: bool = False,
    temperature: float = 1.0,
    keep_trials: bool = False,
    label: str | None = None,
    progress=None,
    first_trial: int = 0,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory: float | None = None,
    blas_threads: int | None = 1,
) -> Result:
    r"""Monte Carlo estimate of ``spec``'s accuracies, rounds ``0..R``.

    Parameters
    ----------
    spec : theory.spec.Spec
        Without ``counts`` (labels are sampled from ``spec.noise`` and ``spec.eta``, or from
        ``spec.transition`` when set; kernel and linearised backends).
    trials : int
        Independent trials ``>= 1`` (``>= 2`` for a standard error).
    seed : int
        Base seed ``>= 0``; trial ``i`` uses ``trial_seed(seed, i)``.
    backend : {'exact', 'linearised', 'kernel'}
        Module docstring.
    workers : int
        Processes (capped at the usable cores by :func:`simulations.gram_trials.parallel_map`).
    n_test : int
        Fresh test draws per class ``>= 1`` of the sampled population accuracy (exact and
        kernel backends; the reported ``pop_acc`` is the exact conditional one and does not
        depend on it).
    tol : float
        Certified fixed-point residual of every exact solve (exact backend; the kernel backend
        uses the solver's default, 1e-9).
    exact_pop : bool
        Kernel backend: compute the exact conditional ``pop_acc`` (else NaN, cheaper).
    pll : bool
        Kernel backend, ``method='sd'``: also train the PLL student (``'pll-ce'``) from each
        trial's teacher and return it as ``Result.pll``.
    temperature : float
        Exact backend: temperature of the soft targets between SD rounds, in
        :data:`simulations.pipelines.TEMPERATURE_RANGE` (the theory covers 1 only).
    keep_trials : bool
        Fill ``Result.samples``, ``Result.counts`` and ``Result.trial_data`` (module docstring).
    label : str, optional
        With a label, progress is logged to stderr every quarter of the trials.
    progress : callable, optional
        Wraps the iterable of job indices to display progress (e.g.
        ``functools.partial(selfdistill_cli.progress.progress_bar, desc="trials")``); the
        trials then run in this process, one after another, whatever ``workers``.
    first_trial : int
        Index ``>= 0`` of the first trial: trial ``i`` uses ``trial_seed(seed, first_trial + i)``,
        so a run can be continued (or advanced one trial at a time) with the same numbers.
    max_seconds : float or None
        Refuse up front (``ValueError``, one line with the estimate) a run whose estimated time
        (:mod:`simulations.runtime`) exceeds this many seconds; default one hour, ``None``: no
        limit.
    max_memory : float, optional
        Memory limit in GB for the trials running at once; default the available memory.
    blas_threads : int or None
        BLAS threads of the trials, in this process or in each worker (default 1: the solves are
        small and threads only contend); ``None`` leaves BLAS as the caller set it (a sweep
        sets its own limit around its serial runs and in its worker processes).

    Returns
    -------
    theory.spec.Result
        ``values`` the means, ``se`` the standard errors, ``ci95`` the 95% half-widths, all of
        shape ``(R + 1, len(METRICS))``; ``notes`` state uncertified solves, if any; ``extra``
        holds ``defined_trials`` per round and metric and ``max_residual_ratio`` (exact backend:
        largest residual / target over all solves, ``<= 1`` when certified) or
        ``max_residual`` (kernel backend).

    Raises
    ------
    ValueError
        Bad parameters (naming the parameter and its valid range), a backend that does not
        cover the spec, or a run refused by the time or memory limit.
    """
    return simulate_many(
        [spec],
        trials,
        seed=seed,
        backend=backend,
        workers=workers,
        n_test=n_test,
        tol=tol,
        exact_pop=exact_pop,
        pll=pll,
        temperature=temperature,
        keep_trials=keep_trials,
        label=label,
        progress=progress,
        first_trial=first_trial,
        max_seconds=max_seconds,
        max_memory=max_memory,
        blas_threads=blas_threads,
    )[0]
