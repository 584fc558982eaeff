"""Benchmark: Gaussian win probabilities (theory.orthant) — time, accuracy, error calibration.

For K in {3, 5, 10, 50} and ``--cases`` random problems each (mean ``0.6 N(0, I)``, covariance
``a a^T / K`` with Gaussian ``a``; class 0 must win, so the probabilities are moderate, the hard
case for the quadrature), this measures in the same run:

* ``ours``: :func:`theory.orthant.win_probability` at the default ``abs_tol = 1e-4``: median
  time, median and max reported error estimate, max actual error against the reference;
* ``scipy``: the baseline ``scipy.stats.multivariate_normal.cdf`` on the ``K - 1`` differences
  with ``abseps = 1e-4`` (Genz's randomised lattice rule with random shifts, seeded here); time and
  max actual error. Ratio = scipy time / our time;
* reference: scipy at ``abseps = 1e-6`` (``2e-5`` for K = 50); for K = 3 our closed form is exact,
  so the reference there is ours.

Calibration: the fraction of cases where ``|ours - reference| <= err + reference tolerance``
(the estimate aims at ~99%).

Also: a whole population accuracy (K win probabilities in one batched call) for SD probes trained
on the mixture (K = 4 and 10, p = N), the way the simulations call it.

All timings use single-threaded BLAS. Run from the repository root:
``python -m benchmarks.orthant [--quick] [--cases C]``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from scipy.stats import multivariate_normal

from selfdistill_cli import ArgumentParser, int_in
from simulations.distill import self_distill
from simulations.features import GaussianMixture
from theory.blas import single_thread_blas
from theory.orthant import win_probability
from theory.population import mixture_population_accuracy


def _problem(rng, k):
    a = rng.standard_normal((k, k))
    return 0.6 * rng.standard_normal(k), a @ a.T / k


def _scipy_win(mean, cov, abseps, seed):
    k = mean.size
    lmat = np.eye(k)[0][None, :] - np.delete(np.eye(k), 0, axis=0)
    return float(
        multivariate_normal.cdf(
            lmat @ mean,
            mean=np.zeros(k - 1),
            cov=lmat @ cov @ lmat.T,
            abseps=abseps,
            releps=0.0,
            maxpts=10**8,
            rng=np.random.default_rng(seed),
        )
    )


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_win(ks, cases):
    print(
        f"{'K':>3} {'cases':>5} {'ours ms':>9} {'scipy ms':>9} {'ratio':>7} {'err est med':>11} "
        f"{'err est max':>11} {'|err| max':>10} {'scipy |err|':>11} {'calibrated':>10}"
    )
    for k in ks:
        rng = np.random.default_rng(1000 + k)
        t_ours, t_scipy, est, act, act_s, ok = [], [], [], [], [], 0
        ref_tol = 2e-5 if k >= 50 else 1e-6
        for c in range(cases):
            mean, cov = _problem(rng, k)
            ours, dt = _timed(lambda mean=mean, cov=cov: win_probability(mean, cov, 0))
            base, dt_s = _timed(lambda mean=mean, cov=cov, c=c: _scipy_win(mean, cov, 1e-4, c))
            if k == 3:
                ref = ours.prob  # closed form (Owen's T), exact to ~1e-15
                ref_tol = 1e-14
            else:
                ref = _scipy_win(mean, cov, ref_tol, 10_000 + c)
            t_ours.append(dt)
            t_scipy.append(dt_s)
            est.append(ours.err)
            act.append(abs(ours.prob - ref))
            act_s.append(abs(base - ref))
            ok += abs(ours.prob - ref) <= ours.err + ref_tol
        mo, ms = statistics.median(t_ours), statistics.median(t_scipy)
        print(
            f"{k:>3} {cases:>5} {1e3 * mo:>9.2f} {1e3 * ms:>9.2f} {ms / mo:>7.2f} "
            f"{statistics.median(est):>11.2e} {max(est):>11.2e} {max(act):>10.2e} "
            f"{max(act_s):>11.2e} {ok:>6}/{cases}"
        )


def bench_population(per_class):
    print(f"\npopulation accuracy of SD probes (4 rounds), n = {per_class}, p = N, eta = 0.4")
    print(f"{'K':>3} {'ms/probe':>9} {'accuracy':>30} {'err est max':>11}")
    for k in (4, 10):
        rng = np.random.default_rng(k)
        p = k * per_class
        mix = GaussianMixture.create(k, p, 0.4, 0.1, rng=rng)
        draw = mix.sample(per_class, rng)
        noisy = draw.labels.copy()
        flip = rng.random(noisy.size) < 0.4
        noisy[flip] = rng.integers(0, k, int(flip.sum()))
        sd = self_distill(noisy, k, 1e-3, 3, features=draw.features)
        times, accs, errs = [], [], []
        for sol in sd.solutions:
            res, dt = _timed(
                lambda w=sol.weights, mu=mix.means, s2=0.6 / p: mixture_population_accuracy(
                    w, mu, s2
                )
            )
            times.append(dt)
            accs.append(res.accuracy)
            errs.append(res.err)
        print(
            f"{k:>3} {1e3 * statistics.median(times):>9.1f} "
            f"{' '.join(f'{a:.4f}' for a in accs):>30} {max(errs):>11.2e}"
        )


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K in {3, 5, 10}, 5 cases")
    parser.add_argument("--cases", type=int_in(1, 10**5), default=None, help="problems per K")
    args = parser.parse_args(argv)
    cases = args.cases if args.cases is not None else (5 if args.quick else 20)
    if cases < 1:
        parser.error("--cases must be >= 1")
    ks = (3, 5, 10) if args.quick else (3, 5, 10, 50)
    with single_thread_blas():
        bench_win(ks, cases)
        bench_population(25)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
