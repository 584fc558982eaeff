r"""Shared pieces of the figure scripts: command line, progress, agreement checks.

Monte Carlo trials live in :mod:`simulations` (:func:`simulate_figure` runs them); this module
compares them with the theory.

Agreement checks
----------------
A figure whose caption says "theory = simulation" calls :func:`check_mc_agreement`, which raises
:class:`AgreementError` if a simulated mean is further from the theory than Monte Carlo error
explains. For ``T`` independent trials with sample standard deviation ``s`` the mean has standard
error ``s / sqrt(T)``; a comparison fails when

.. math::  |\bar x - \theta| > t_{1 - \alpha / (2 m),\, T - 1}\; s / \sqrt{T} + \epsilon,

with ``m`` the number of comparisons in the figure (Bonferroni), family-wise false-alarm rate
``alpha = 1e-3`` and ``epsilon = 1e-12`` (float round-off of an average of accuracies). If all
trials agree (``s = 0``) the mean must equal the theory: a systematic offset is a real
disagreement, never absorbed by the tolerance.

Exact ties. The group-level theory counts a point whose true class ties (within ``TIE_ATOL``) with
another class as an error. In a simulation at finite ``p`` such a tie is broken by random
fluctuations, so a tied point may come out correct; the admissible values of the expected accuracy
are then the interval ``[theory, theory + tied fraction]`` (:func:`prediction_bounds`), and the
test above is applied to the distance from that interval. Near-ties (gaps far above ``TIE_ATOL``
but below the finite-``p`` fluctuation of the outputs) are not widened: figures comparing with the
``p -> inf`` theory use ``p = 1e8`` or more, where Gram fluctuations are ``~ 1e-4``.

Finite-dimension theory. :func:`theory.finite.predict_finite` is a deterministic equivalent (the
limit ``N, p -> inf`` at fixed ``N/p``) of the *linearised* dynamics; at ``N ~ 100`` it carries its
own error of about ``1e-2`` in accuracy (docs/theory.md §11). Figures that check the linearised
Monte Carlo (:mod:`simulations.linear_trials`) against it pass ``theory_atol =
FINITE_THEORY_ATOL``: a comparison then fails only when the distance exceeds
``max(t s / sqrt(T) + epsilon, FINITE_THEORY_ATOL)`` -- issue 10's acceptance rule ``max(3 SE,
0.03)`` with the Bonferroni quantile in place of 3. The exact-tie interval does not apply there:
the finite-``p`` theory has no exact ties (its outputs are Gaussian).

Exact finite-ratio theory. :func:`theory.finite_exact.predict_finite_exact` predicts *exact*
self-distillation at finite ``N/p`` (docs/theory.md §16); it too is a statement about the limit
``N, p -> inf``, with its own error of ~1e-2 at ``N ~ 100-200`` (the ``O(1/n^2)`` terms it drops)
and a quadrature error it reports (``train_quadrature_err``: 3 standard errors over its lattice
shifts). Figures that check exact-SD Monte Carlo against it pass ``theory_atol =
FINITE_EXACT_THEORY_ATOL + (largest reported quadrature error)``: issue 20's acceptance rule
``max(3 SE, 0.03)``, with the Bonferroni quantile in place of 3 and the theory's numerical error
added to its asymptotic one.

Deterministic comparisons (theory vs an exact solve of the same problem) use :func:`check_close`
with tolerances derived from the solver certificate.

One model of a run (issue 23). A figure names the experiment it draws as a
:class:`theory.spec.Spec` (:func:`figure_spec` builds it from a preset's parameters) and reads
the theory's per-round accuracies from :func:`theory.spec.predict`'s :class:`~theory.spec.Result`
(``Result.value(metric)``). Its Monte Carlo is :func:`simulations.monte_carlo.simulate_many` of
the same Specs (:func:`simulate_figure`), whose Results give the trials as the arrays the
agreement checks, plots and CSVs use (:func:`sample_columns`) and the mean with its 95% interval
(:func:`result_mean_ci95`). Where a
figure needs what a Result does not carry (group outputs and their exact ties for the admissible
range above, spectra, the cached exact finite-ratio theory of :mod:`figures.finite_theories` with
its own stopping rule) it calls the theory directly and says why at the call.

"""

from __future__ import annotations

import argparse
import inspect
import math
import time
from pathlib import Path

import numpy as np
from scipy import stats

from selfdistill_cli import ArgumentParser, nonempty_path
from selfdistill_cli.limits import cap_workers
from simulations.outdir import check_out_dir
from simulations.stats import mean_ci
from theory.metrics import correct_and_tied
from theory.spec import METRICS, Spec
from theory.validation import check_int

__all__ = [
    "ALPHA",
    "MC_WORKERS",
    "NO_MC_WORKERS",
    "DEFAULT_OUT_NAME",
    "FINITE_EXACT_THEORY_ATOL",
    "FINITE_THEORY_ATOL",
    "AgreementError",
    "check_close",
    "check_mc_agreement",
    "default_out",
    "figure_run",
    "figure_spec",
    "log",
    "mc_tolerance",
    "mean_ci95",
    "nan_mean",
    "parse_args",
    "prediction_bounds",
    "prepare_output",
    "result_mean_ci95",
    "sample_columns",
    "simulate_figure",
    "set_quiet",
    "tie_fractions",
]

#: Family-wise false-alarm probability of the Monte Carlo agreement checks of one figure.
ALPHA = 1e-3
#: Round-off allowance of a mean of at most ~1e4 accuracies in [0, 1].
MEAN_ATOL = 1e-12
#: Accuracy the finite-p theory claims for its expected accuracies at N = 100-200, p in [N/2, 20N]
#: (issue 10's acceptance bound, checked in tests/simulations/test_finite_vs_simulation.py; the
#: deterministic equivalents' own error there is ~1e-2, docs/theory.md §11).
FINITE_THEORY_ATOL = 0.03
#: Accuracy the exact finite-ratio theory claims at N ~ 100-200 (issue 20's acceptance rule
#: max(3 SE, 0.03), checked in tests/simulations/test_finite_exact_vs_simulation.py); figures add
#: the prediction's own quadrature error (module docs).
FINITE_EXACT_THEORY_ATOL = 0.03


class AgreementError(AssertionError):
    """Theory and simulation disagree beyond the stated tolerance."""


# ---------------------------------------------------------------------------------------------
# command line


#: Name of the default output folder. The hyphen makes it an invalid Python identifier, so it can
#: never be imported as (and shadow) a package: a ``./figures/output`` folder left in the working
#: directory used to hide an editable install's ``figures`` package from ``python -m figures``.
DEFAULT_OUT_NAME = "selfdistill-figures"


def default_out() -> Path:
    """``./selfdistill-figures`` relative to the current working directory."""
    return Path.cwd() / DEFAULT_OUT_NAME


def prepare_output(out=None) -> Path:
    """The output directory of a figure's ``run(...)``, ready for files; the ``Agg`` backend.

    Parameters
    ----------
    out : path-like, optional
        Output directory; ``None``: ``./selfdistill-figures`` (:func:`default_out`).

    Returns
    -------
    pathlib.Path
        ``out``, created if needed and checked for writability before any work (a figure must
        not be lost at the end).

    Raises
    ------
    ValueError
        One line naming ``--out`` and the problem (:func:`simulations.outdir.check_out_dir`).
    """
    out = default_out() if out is None else Path(out)
    check_out_dir(out)
    from figures.style import use_file_backend  # lazy: keep common.py free of matplotlib

    use_file_backend()  # figure scripts write files; never open windows
    return out


def parse_args(argv, description: str, presets, extra=None, module=None) -> argparse.Namespace:
    """Standard figure options: ``--out``, ``--seed``, ``--preset``, ``--workers``.

    ``extra(parser)``, if given, adds a figure's own options. ``module`` (the figure module's
    ``__spec__.name``) names the usage line ``python -m figures.NAME`` (argparse's default is the
    file name, ``real_gain.py``, which is not a command). Also selects the ``Agg`` backend
    (:func:`figures.style.use_file_backend`).
    """
    parser = ArgumentParser(
        description=description, prog=None if module is None else f"python -m {module}"
    )
    parser.add_argument(
        "--out",
        type=nonempty_path,
        default=None,
        help=f"output directory (default ./{DEFAULT_OUT_NAME})",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (>= 0)")
    parser.add_argument(
        "--preset",
        choices=list(presets),
        default="quick",
        help="quick: fast and readable; paper: publication quality (more trials, finer grids); "
        "tiny: the smallest problem, for smoke tests",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes for Monte Carlo trials (capped at the usable cores, with a note)",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    args.workers = cap_workers(args.workers, override=None)  # at most the usable cores
    if args.out is None:
        args.out = default_out()
    try:
        check_out_dir(args.out)  # before any work: a figure must not be lost at the end
    except ValueError as exc:
        parser.error(str(exc))
    from figures.style import use_file_backend  # lazy: keep common.py free of matplotlib

    use_file_backend()  # figure scripts write files; never open windows
    return args


#: ``workers`` of a figure with Monte Carlo trials (:func:`figure_run`).
MC_WORKERS = "Processes for the Monte Carlo trials (the runner caps them at the usable cores)."
#: ``workers`` of a figure without (:func:`figure_run`).
NO_MC_WORKERS = "Unused (this figure has no Monte Carlo trials); accepted as by every figure."

#: The docstring every figure's ``run`` shares (:func:`figure_run` fills ``name``, ``workers``).
RUN_DOC = """Compute the figure, check it, and write ``{name}`` to ``out``.

What ``python -m figures.{name}`` does after reading its options, and what the runner
(``python -m figures``) calls for this figure.

Parameters
----------
preset : {{"quick", "paper", "tiny"}}
    Problem sizes (:data:`figures.{name}.PRESETS`).
out : path-like, optional
    Output directory (default ``./selfdistill-figures``), checked for writability first.
seed : int
    Base seed (>= 0) of every random stream.
workers : int
    {workers}

Returns
-------
int
    Exit status, 0.

Raises
------
figures.common.AgreementError
    Theory and simulation (or two computations of the theory) disagree beyond tolerance.
"""


def figure_run(name: str, workers: str = MC_WORKERS):
    """Decorator giving a figure's ``run(*, preset, out, seed, workers)`` the shared docstring.

    The parameters of ``run`` are the same in every figure, so their description lives once, in
    :data:`RUN_DOC`; ``help(figures.<name>.run)`` shows it filled in with the figure's ``name``
    and the meaning of ``workers`` (:data:`MC_WORKERS` or :data:`NO_MC_WORKERS`). A docstring the
    function has of its own is kept after it, under "Notes".
    """

    def decorate(fn):
        own = fn.__doc__
        fn.__doc__ = RUN_DOC.format(name=name, workers=workers)
        if own:
            fn.__doc__ += "\nNotes\n-----\n" + inspect.cleandoc(own) + "\n"
        return fn

    return decorate


_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence :func:`log` (the runner's ``--quiet``); errors pass ``force=True``."""
    global _QUIET
    _QUIET = bool(quiet)


def log(msg: str, force: bool = False) -> None:
    """Progress message on stderr (drawn around any progress bar; silent after ``set_quiet``)."""
    if _QUIET and not force and not msg.startswith("error"):
        return
    from selfdistill_cli.progress import write

    write(msg)


# ---------------------------------------------------------------------------------------------
# agreement checks


def mean_ci95(samples, axis: int = 0):
    """Mean and 95% Student-t half-width along ``axis`` (NaNs ignored), for plotting.

    :func:`simulations.stats.mean_ci`, with the undefined half-width of fewer than two values
    drawn as no bar (0).

    Returns
    -------
    mean, half : ndarray
    """
    mean, half, _ = mean_ci(samples, axis=axis, level=0.95)
    return mean, np.nan_to_num(half, nan=0.0)


def nan_mean(samples, axis: int = 0) -> np.ndarray:
    """Mean over ``axis`` ignoring NaNs; NaN (silently) where every value is NaN."""
    x = np.asarray(samples, dtype=float)
    count = np.sum(~np.isnan(x), axis=axis)
    total = np.nansum(x, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 -> NaN is the intended result
        return np.where(count > 0, total / count, np.nan)


def mc_tolerance(samples, n_comparisons: int = 1, alpha: float = ALPHA):
    """Mean and agreement tolerance of Monte Carlo ``samples`` (T, M) per column (module docs).

    Returns
    -------
    mean, tol : ndarray, shape (M,)
        ``tol = t_{1 - alpha/(2m), T-1} s / sqrt(T) + MEAN_ATOL``; NaN-only columns give NaN.
    """
    x = np.atleast_2d(np.asarray(samples, dtype=float))
    if x.ndim != 2:
        raise ValueError(f"samples must be (T, M), got shape {x.shape}")
    m = check_int(n_comparisons, "n_comparisons", 1)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    count = np.sum(~np.isnan(x), axis=0)
    mean = np.full(x.shape[1], np.nan)
    tol = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        v = x[~np.isnan(x[:, j]), j]
        if v.size == 0:
            continue
        mean[j] = v.mean()
        if v.size == 1:
            tol[j] = MEAN_ATOL  # one trial: no variance estimate, so demand equality
            continue
        tq = stats.t.ppf(1.0 - alpha / (2 * m), v.size - 1)
        tol[j] = tq * v.std(ddof=1) / math.sqrt(v.size) + MEAN_ATOL
    del count
    return mean, tol


def check_mc_agreement(
    samples,
    theory,
    *,
    upper=None,
    labels=None,
    what="simulation vs theory",
    alpha=ALPHA,
    theory_atol: float = 0.0,
):
    """Raise :class:`AgreementError` unless every simulated mean is within MC tolerance of theory.

    Parameters
    ----------
    samples : array_like, shape (T, M)
        ``T`` independent trials of ``M`` quantities (NaN = undefined in that trial).
    theory : array_like, shape (M,)
        Predicted expectations. A NaN prediction must match an all-NaN column.
    upper : array_like, shape (M,), optional
        Upper end of an admissible interval ``[theory, upper]``. Used for accuracies when the
        theory has EXACT ties (counted as errors there): at finite ``p`` an exact tie is broken by
        random fluctuations, so each tied point may count as correct, and the expected accuracy
        lies between ``theory`` and ``theory + (tied fraction)`` (:func:`tie_fractions`).
    labels : list of str, optional
        Names of the ``M`` quantities for the error message.
    theory_atol : float
        Error the theory itself admits (``>= 0``; e.g. :data:`FINITE_THEORY_ATOL` for the
        finite-``p`` deterministic equivalents): a comparison fails only beyond
        ``max(tol, theory_atol)`` (module docs). 0 (default): the theory is exact.

    Returns
    -------
    dict
        ``n_comparisons``, ``max_excess`` (largest distance to the admissible interval minus
        ``tol``, <= 0 on success), ``mean`` and ``tol`` arrays.
    """
    x = np.atleast_2d(np.asarray(samples, dtype=float))
    th = np.asarray(theory, dtype=float).reshape(-1)
    hi = th if upper is None else np.asarray(upper, dtype=float).reshape(-1)
    if x.shape[1] != th.size or hi.size != th.size:
        raise ValueError(
            f"samples has {x.shape[1]} columns, theory {th.size} and upper {hi.size} entries"
        )
    if np.any(hi < th):
        raise ValueError("upper must be >= theory (an interval [theory, upper])")
    if not (math.isfinite(theory_atol) and 0.0 <= theory_atol < 1.0):
        raise ValueError(f"theory_atol must lie in [0, 1), got {theory_atol!r}")
    defined = ~np.isnan(th)
    m = max(int(defined.sum()), 1)
    mean, tol = mc_tolerance(x, m, alpha)
    tol = np.maximum(tol, theory_atol)  # NaN (no defined value) stays NaN
    with np.errstate(invalid="ignore"):
        dist = np.maximum(np.maximum(th - mean, mean - hi), 0.0)
    bad = []
    for j in range(th.size):
        name = labels[j] if labels is not None else f"#{j}"
        if not defined[j]:
            if not np.isnan(mean[j]):
                bad.append(f"{name}: theory undefined but simulation mean {mean[j]:.4g}")
            continue
        if np.isnan(mean[j]):
            bad.append(f"{name}: theory {th[j]:.4g} but no defined simulation value")
            continue
        if dist[j] > tol[j]:
            target = f"{th[j]:.4f}" if hi[j] == th[j] else f"[{th[j]:.4f}, {hi[j]:.4f}]"
            bad.append(
                f"{name}: simulation {mean[j]:.4f} vs theory {target} "
                f"(distance {dist[j]:.3g} > tol {tol[j]:.3g})"
            )
    excess = np.where(defined & ~np.isnan(mean), dist - tol, -np.inf)
    if bad:
        head = "; ".join(bad[:6]) + (f"; ... ({len(bad)} in all)" if len(bad) > 6 else "")
        raise AgreementError(
            f"{what}: {len(bad)} of {th.size} comparisons disagree beyond Monte Carlo error "
            f"(T = {x.shape[0]} trials, family-wise alpha = {alpha:g}): {head}"
        )
    return {
        "n_comparisons": m,
        "max_excess": float(excess.max()) if excess.size else -np.inf,
        "mean": mean,
        "tol": tol,
    }


def tie_fractions(outputs, counts) -> tuple[float, float, float]:
    """Fractions of exactly tied training points (all, clean, mislabeled) of a group prediction.

    Parameters
    ----------
    outputs : array_like, shape (K, K, K)
        Group outputs ``[true class, given label, output class]`` (NaN on empty groups).
    counts : array_like of int, shape (K, K)

    Returns
    -------
    all, clean, mislabeled : float
        Tied points (:func:`theory.metrics.correct_and_tied`) over the points of each subset;
        0 for an empty subset.
    """
    cnt = np.asarray(counts)
    kk, ll = np.nonzero(cnt > 0)
    _, tied = correct_and_tied(np.asarray(outputs, dtype=float)[kk, ll].T, kk)
    w = cnt[kk, ll].astype(float)
    clean = kk == ll

    def frac(mask):
        return float(w[mask & tied].sum() / w[mask].sum()) if w[mask].sum() > 0 else 0.0

    return frac(np.ones_like(clean)), frac(clean), frac(~clean)


def prediction_bounds(pred, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(theory, upper)`` per round for an accuracy field of a ``GroupPrediction``.

    ``key`` is one of ``train_acc``, ``train_acc_clean``, ``train_acc_mislabeled``,
    ``population_acc``; ``upper = theory + tied fraction`` (see :func:`check_mc_agreement`).
    """
    value = np.asarray(getattr(pred, key), dtype=float)
    if key == "population_acc":
        k = pred.population_outputs.shape[-1]
        return value, value + np.asarray(pred.population_ties, dtype=float) / k
    idx = {"train_acc": 0, "train_acc_clean": 1, "train_acc_mislabeled": 2}[key]
    extra = np.array([tie_fractions(o, pred.counts)[idx] for o in pred.outputs])
    return value, value + extra


def check_close(actual, expected, *, atol: float, what: str) -> float:
    """Raise :class:`AgreementError` if ``max |actual - expected| > atol`` (NaNs must coincide).

    Returns the max abs difference.
    """
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        raise AgreementError(f"{what}: shape {a.shape} != {e.shape}")
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        raise AgreementError(f"{what}: undefined (NaN) entries differ")
    ok = ~np.isnan(a)
    err = float(np.max(np.abs(a[ok] - e[ok]))) if ok.any() else 0.0
    if not err <= atol:
        raise AgreementError(f"{what}: max abs difference {err:.3g} > tolerance {atol:.3g}")
    return err


def timed(fn, *args, **kw):
    """``(fn(*args, **kw), seconds)``."""
    start = time.perf_counter()
    value = fn(*args, **kw)
    return value, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# one model of a run: Specs and Results (module docs)

#: Preset keys that are :class:`theory.spec.Spec` fields with the same meaning in every figure.
SPEC_KEYS = ("n_classes", "per_class", "c", "d", "lam", "eta", "rounds", "noise")


def figure_spec(params: dict, **changes) -> Spec:
    """The :class:`theory.spec.Spec` of a figure's preset ``params``, with ``changes`` applied.

    Takes the keys of :data:`SPEC_KEYS` that ``params`` has (a preset's ``dim`` is a
    simulation's, so the dimension, like anything else, is passed in ``changes``; the default is
    the block limit ``dim = inf``). Symmetric noise unless ``params`` or ``changes`` say otherwise.

    Raises
    ------
    ValueError
        From :class:`~theory.spec.Spec`: a parameter outside its range, named.
    """
    fields = {key: params[key] for key in SPEC_KEYS if key in params}
    return Spec(**(fields | changes))


def sample_columns(results, metrics) -> dict[str, np.ndarray]:
    """The per-trial values of Monte Carlo ``results`` as one array per metric.

    ``out[m][i, j, t]`` is trial ``i`` of ``results[j]`` at round ``t``: the layout
    :func:`check_mc_agreement` and :func:`mean_ci95` take (trials first), the very floats of
    ``Result.samples`` (no arithmetic).

    Parameters
    ----------
    results : sequence of theory.spec.Result
        Of :func:`simulations.monte_carlo.simulate_many` with ``keep_trials=True``, equal trials
        and rounds.
    metrics : sequence of str
        Metric names of :data:`theory.spec.METRICS`.

    Returns
    -------
    dict
        ``{metric: ndarray of shape (T, len(results), R + 1)}``.

    Raises
    ------
    ValueError
        No results, a Result without per-trial samples, unequal shapes or an unknown metric.
    """
    results = list(results)
    if not results:
        raise ValueError("results must hold at least one Result")
    if any(r.samples is None for r in results):
        raise ValueError("results must carry per-trial samples (simulate(..., keep_trials=True))")
    shapes = {r.samples.shape for r in results}
    if len(shapes) != 1:
        raise ValueError(f"results must have the same trials and rounds, got shapes {shapes}")
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {m!r}")
    return {
        m: np.stack([r.samples[:, :, METRICS.index(m)] for r in results], axis=1) for m in metrics
    }


def result_mean_ci95(result, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo mean and 95% half-width of ``metric`` per round, as :func:`mean_ci95` draws them.

    ``Result.values`` and ``Result.ci95`` of :func:`simulations.monte_carlo.simulate` are
    :func:`simulations.stats.mean_ci` of the trials, so these are :func:`mean_ci95`'s floats; an
    undefined half-width (fewer than two defined trials) is drawn as no bar (0).

    Returns
    -------
    mean, half : ndarray, shape (R + 1,)

    Raises
    ------
    ValueError
        A Result without a confidence interval (a theory), or an unknown metric.
    """
    if result.ci95 is None:
        raise ValueError(f"result must be a Monte Carlo Result, got source {result.source!r}")
    mean = result.value(metric)  # validates the metric
    return mean, np.nan_to_num(result.ci95[:, METRICS.index(metric)], nan=0.0)


def simulate_figure(specs, trials: int, seed: int, workers: int, label: str | None, **options):
    """The Monte Carlo of a figure: :func:`simulations.monte_carlo.simulate_many` of ``specs``.

    Kernel backend (certified exact SD on the mixture's directly sampled Gram matrix: the floats
    of :func:`simulations.gram_trials.run_mc_many`) unless ``options`` say ``backend``; per-trial
    samples kept (the agreement checks need them); no up-front time limit (the presets are sized
    by hand, and the runner reports their cost). ``label`` names the progress lines on stderr
    (``None``: none). ``options`` are further keywords of ``simulate_many`` (``n_test``,
    ``exact_pop``, ``pll``, ``backend``).

    Returns
    -------
    list of theory.spec.Result
        One per spec, with ``samples``, ``counts`` and ``trial_data``.

    Raises
    ------
    RuntimeError
        A trial realised another count matrix than ``spec.count_matrix()`` (exact-count sampling
        makes them equal: a bug, never drawn).
    """
    from simulations.monte_carlo import simulate_many  # lazy: figures.common stays light

    options = {"backend": "kernel", **options}
    results = simulate_many(
        specs,
        trials,
        seed=seed,
        workers=workers,
        label=label,
        keep_trials=True,
        max_seconds=None,
        **options,
    )
    for res in results:
        if not (res.counts == res.spec.count_matrix()).all():
            raise RuntimeError("exact-count sampling realised another count matrix (a bug)")
    return results
