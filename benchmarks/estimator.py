"""Benchmark: ``SelfDistillationClassifier.fit`` against scikit-learn's ``LogisticRegression``.

Two workloads, measured in one run:

* **digits**: scikit-learn's bundled digits (N = 1,797, p = 64, K = 10), centred and
  L2-normalised once, symmetric label noise ``eta = 0.3``, ``lam = 1e-3``;
* **mixture**: the K = 10 Gaussian mixture of :mod:`benchmarks.probe` (rows L2-normalised),
  N = 50,000, p = 512, ``eta = 0.3``, ``lam = 1e-4``.

Both models get the same (already preprocessed) features, so the estimator runs with
``preprocess=None``. The baseline is ``LogisticRegression(C=1/(lam N), fit_intercept=False,
solver='lbfgs')`` — the same optimum as our teacher (``rounds=0``) — once at scikit-learn's default
``tol=1e-4`` (what a practitioner runs) and once at ``tol=1e-8`` (close to the optimum). Timed:

* ``rounds=0``: the exact teacher with its KKT certificate (residual <= 1e-9);
* ``rounds=1``: teacher + one self-distillation round;
* ``rounds='auto'`` (``max_rounds=3``, digits only by default): inner fit of 4 candidate rounds on
  80 % of the data, validation, refit.

Both run with the same BLAS thread limit (``--threads``, default 1: on a shared machine
multi-threaded BLAS timings of small problems vary by an order of magnitude). Printed per model:
fit seconds, CPU (``time.process_time``) and wall clock (median of ``--repeats`` runs), the
CPU-time ratio to the default-tolerance baseline (CPU time, because on a shared machine the wall
clock also counts the other processes), and ``max |P - P_ours(rounds=0)|`` of each baseline on
held-out points (how far from the optimum it stopped). Run from the repository root:
``python -m benchmarks.estimator`` (a few minutes), ``--quick`` for N = 10,000, p = 256 instead of
the large workload.
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmarks.probe import mixture_features, sym_noise
from selfdistill_cli import ArgumentParser, int_in
from simulations.datasets import load_digits_dataset, preprocess
from simulations.estimator import SelfDistillationClassifier
from theory.blas import blas_threads


def _timed(make, x, y, repeats):
    """Median CPU and wall seconds over ``repeats`` fresh fits; returns (cpu, wall, last model)."""
    cpu, wall, model = [], [], None
    for _ in range(repeats):
        model = make()
        c0, t0 = time.process_time(), time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return statistics.median(cpu), statistics.median(wall), model


def run_workload(name, x, y, x_test, lam, repeats, auto):
    n = x.shape[0]
    print(f"\n{name}: N={n}, p={x.shape[1]}, K={np.unique(y).size}, lam={lam:g}, C=1/(lam N)")
    lr_default_s, lr_default_wall, lr_default = _timed(
        lambda: LogisticRegression(C=1.0 / (lam * n), fit_intercept=False, max_iter=10_000),
        x,
        y,
        repeats,
    )
    lr_tight_s, lr_tight_wall, lr_tight = _timed(
        lambda: LogisticRegression(
            C=1.0 / (lam * n), fit_intercept=False, tol=1e-8, max_iter=10_000
        ),
        x,
        y,
        repeats,
    )
    ours = {}
    configs = [("rounds=0", 0), ("rounds=1", 1)] + ([("rounds='auto'", "auto")] if auto else [])
    for label, rounds in configs:
        ours[label] = _timed(
            lambda r=rounds: SelfDistillationClassifier(
                lam=lam, rounds=r, max_rounds=3, preprocess=None
            ),
            x,
            y,
            repeats,
        )
    teacher = ours["rounds=0"][2]
    p_ref = teacher.predict_proba(x_test)
    cert = teacher.certificates_[0]
    rows = [
        ("LogisticRegression tol=1e-4 (default)", lr_default_s, lr_default_wall, lr_default, True),
        ("LogisticRegression tol=1e-8", lr_tight_s, lr_tight_wall, lr_tight, False),
    ]
    for label, (sec, wall, model) in ours.items():
        rows.append((f"SelfDistillationClassifier {label}", sec, wall, model, False))
    print(f"  {'model':<42} {'CPU s':>8} {'wall s':>8}  {'CPU ratio':>9}")
    for label, sec, wall, model, baseline in rows:
        extra = ""
        if isinstance(model, LogisticRegression):
            dp = np.max(np.abs(model.predict_proba(x_test) - p_ref))
            extra = f"{int(np.max(model.n_iter_))} lbfgs it, max|P - P*| = {dp:.1e}"
        elif label.endswith("rounds=0"):
            extra = f"{cert.iterations} Newton it, certified residual {cert.residual:.1e}"
        elif label.endswith("'auto'"):
            extra = f"selected n_rounds_={model.n_rounds_}"
        ratio = "baseline" if baseline else f"{sec / lr_default_s:.2f}x"
        print(f"  {label:<42} {sec:8.3f} {wall:8.3f}  {ratio:>9}   {extra}")
    print(
        f"  CPU ratio to LogisticRegression tol=1e-8: teacher "
        f"{ours['rounds=0'][0] / lr_tight_s:.2f}x, teacher + 1 round "
        f"{ours['rounds=1'][0] / lr_tight_s:.2f}x"
    )


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10,000, p = 256 (seconds)")
    parser.add_argument(
        "--repeats", type=int_in(1, 1000), default=3, help="runs per timing on digits"
    )
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    parser.add_argument("--auto-large", action="store_true", help="also time 'auto' at large N")
    parser.add_argument(
        "--threads",
        type=int_in(0, 1024),
        default=1,
        help="BLAS threads for both models (default 1: stable timings on a shared machine; "
        "0 = the library default)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    with blas_threads(args.threads or None):
        return _run(args)


def _run(args) -> int:
    rng = np.random.default_rng(args.seed)
    print(
        f"estimator benchmark (fit seconds: CPU and wall clock, median of {args.repeats} "
        f"repeat(s) on digits, one run at large N; BLAS threads: "
        f"{args.threads or 'library default'}; ratios against LogisticRegression measured in "
        "this run)"
    )
    ds = load_digits_dataset()
    perm = rng.permutation(ds.n_samples)
    x = preprocess(ds.features, perm).features[perm]
    y = sym_noise(ds.labels[perm], ds.n_classes, 0.3, rng)
    # all N = 1,797 samples are fitted; the same points serve to compare outputs
    run_workload("digits", x, y, x, 1e-3, args.repeats, auto=True)
    n, p = (10_000, 256) if args.quick else (50_000, 512)
    xm, ym = mixture_features(n + 2_000, p, 10, rng)  # the last 2,000 points are held out
    noisy = sym_noise(ym[:n], 10, 0.3, rng)
    run_workload("mixture", xm[:n], noisy, xm[n:], 1e-4, 1, auto=args.auto_large)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
