"""The reference code's numerical experiment at its defaults, with our certified solver beside it.

Reproduces ``numerical_solving.py`` of the public reference code (``Hyeonsu-Jeong/SelfPLL``) at its
defaults: K=4, n=500 (N=2000), c=0.4, d=0.1, lam=1e-5, eta=0.5 (each point independently flipped
to a uniformly random other class), 10 solves in all (``max_dist = 10``: the teacher on the
noisy labels, then 9 distillation rounds; ``--rounds`` counts the rounds after the teacher,
default 9), each solved by
:func:`simulations.reference_loop.reference_loop` (Adam from a random start, squared-Frobenius
early stop 1e-5 or 100,000 iterations, clamp 1e-6, float32), each round's output the next round's
target. Beside it, every round is solved by :func:`simulations.solver.solve_probe` (certified
max-abs residual <= 1e-9) on the same chain of its own outputs.

Part 1 (rounds): per round, training accuracy w.r.t. the true labels on clean / mislabeled points,
the residual reached (max-abs, float64, for both; the reference's own loss too) and the time.
With ``--epsilon 0`` (default) both solve the same equation on the exact block Gram matrix. With
``--epsilon E > 0`` the reference runs on its own perturbed "correlation" matrix (block + U(-E, E)
entries, unit diagonal: not symmetric, not PSD; its default is 0.05) and our solver on the
symmetric PSD counterpart (:func:`counterpart_gram`): same mean and same entrywise spread, but the
Gram matrix of actual features.

Part 2 (t_min vs epsilon): the first round at which the *linearised* dynamics
``P_t - 1/K = (Y - 1/K) A^(t+1)``, ``A = C (C + K lam N I)^(-1)``, classify every training point
correctly, for the reference's matrix and for its PSD counterpart, with the block model's closed
form at epsilon = 0; plus the asymmetry and the smallest eigenvalue (real part) of each matrix.

``--quick``: n=100 (N=400), 1 round after the teacher, epsilons (0, 0.02, 0.05, 0.1): two
reference solves of up to 100,000 iterations, about a minute on an idle 2-core machine.
``--out DIR`` writes ``rounds.csv`` after every finished round and ``tmin.csv`` after every
epsilon, so an interrupted run keeps what it finished. Run:
``python -m benchmarks.reference_protocol [--quick] [--epsilon E] [--rounds R] [--out DIR]``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time

import numpy as np

from selfdistill_cli import ArgumentParser, float_in, int_in, nonempty_path
from selfdistill_cli.files import atomic_write_text, check_writable_dir
from simulations.features import exact_block_features
from simulations.reference_loop import (
    REFERENCE_DEFAULTS,
    counterpart_gram,
    linear_first_round,
    reference_correlation,
    reference_loop,
    reference_noisy_labels,
)
from simulations.solver import factorize, fixed_point_residual, solve_probe
from theory.blas import single_thread_blas
from theory.conditions import min_rounds_linear
from theory.gram import block_gram
from theory.groups import BlockModel
from theory.metrics import accuracy
from theory.validation import one_hot


def clean_mislabeled(outputs, truth, noisy):
    """Training accuracy w.r.t. the true labels on all, clean and mislabeled points."""
    clean = noisy == truth
    acc_clean = accuracy(outputs[:, clean], truth[clean]) if clean.any() else math.nan
    acc_mis = accuracy(outputs[:, ~clean], truth[~clean]) if (~clean).any() else math.nan
    return accuracy(outputs, truth), acc_clean, acc_mis


def within_class_share(outputs, truth) -> float:
    """``||within-class part|| / ||class-mean part||`` of ``outputs - 1/K`` (Frobenius norms).

    The class-mean part lies in the span of the large Gram eigenvalues (class indicators); the
    within-class part in the ``N - K`` directions of ``mu_3 = 1 - c`` that carry individual labels.
    """
    d = outputs - 1.0 / outputs.shape[0]
    means = np.zeros_like(d)
    for c in np.unique(truth):
        means[:, truth == c] = d[:, truth == c].mean(axis=1, keepdims=True)
    return float(np.linalg.norm(d - means) / np.linalg.norm(means))


def _write_csv(rows, path):
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())  # atomic, link-safe (selfdistill_cli.files)


def _fmt(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def part_rounds(cfg, out) -> list[dict]:
    k, n, c, d, lam, eps = (cfg[key] for key in ("k", "n", "c", "d", "lam", "epsilon"))
    rng = np.random.default_rng(cfg["seed"])
    truth = np.repeat(np.arange(k), n)
    noisy = reference_noisy_labels(k, n, cfg["eta"], rng)
    y = one_hot(noisy, k)
    if eps == 0:
        corr = block_gram(k, n, c, d)
        ours_gram = corr
    else:
        corr = reference_correlation(k, n, c, d, eps, rng)
        ours_gram = counterpart_gram(k, n, c, d, eps, rng)
    t0 = time.perf_counter()
    factor = factorize(gram=ours_gram)
    t_factor = time.perf_counter() - t0
    ref_corr_f64 = corr.astype(float)
    print(
        f"Part 1: K={k} n={n} N={k * n} c={c} d={d} lam={lam:g} eta={cfg['eta']} "
        f"({int(np.sum(noisy != truth))} mislabeled), epsilon={eps:g}, {cfg['rounds']} rounds, "
        f"reference budget {cfg['max_iter']:,} iterations; our factorisation {t_factor:.2f} s"
    )
    if eps:
        print(
            "  the reference runs on its perturbed matrix; ours on the PSD counterpart "
            "(same mean and entrywise spread)"
        )
    print(
        f"{'round':>5} | {'ours all/c/m':>17} {'residual':>9} {'within':>6} {'s':>6} | "
        f"{'reference all/c/m':>17} {'iters':>7} {'stop':>4} {'own loss':>9} {'residual':>9} "
        f"{'within':>6} {'s':>7}"
    )
    rows = []
    ref_t, ours_t, prev = y, y, None
    for r in range(cfg["rounds"] + 1):
        t0 = time.perf_counter()
        sol = solve_probe(ours_t, lam, factor=factor, init=prev)
        t_ours = time.perf_counter() - t0
        ref = reference_loop(
            ref_t,
            corr,
            lam,
            rng,
            max_iter=cfg["max_iter"],
            progress=lambda it, loss, r=r: print(
                f"  [round {r}] reference loop: iteration {it:,}, loss {loss:.3g}",
                file=sys.stderr,
                flush=True,
            ),
        )
        # The reference's residual against its own equation (its matrix, its targets), float64.
        z = (ref_t - ref.outputs) @ ref_corr_f64 / (lam * k * n)
        e = np.exp(z - z.max(axis=0))
        ref_res = float(np.max(np.abs(ref.outputs - e / e.sum(axis=0))))
        ours_acc = clean_mislabeled(sol.outputs, truth, noisy)
        ref_acc = clean_mislabeled(ref.outputs, truth, noisy)
        row = {
            "round": r,
            "epsilon": eps,
            "ours_acc": ours_acc[0],
            "ours_acc_clean": ours_acc[1],
            "ours_acc_mislabeled": ours_acc[2],
            "ours_residual": sol.certificate.residual,
            "ours_within_share": within_class_share(sol.outputs, truth),
            "ours_seconds": t_ours,
            "ref_acc": ref_acc[0],
            "ref_acc_clean": ref_acc[1],
            "ref_acc_mislabeled": ref_acc[2],
            "ref_iterations": ref.iterations,
            "ref_stopped": ref.stopped,
            "ref_loss": ref.loss,
            "ref_residual": ref_res,
            "ref_within_share": within_class_share(ref.outputs, truth),
            "ref_seconds": ref.seconds,
            "ref_backend": ref.backend,
        }
        rows.append(row)
        if out is not None:
            _write_csv(rows, out / "rounds.csv")
        print(
            f"{r:5d} | {'/'.join(f'{100 * a:5.1f}' for a in ours_acc)} "
            f"{sol.certificate.residual:9.1e} {row['ours_within_share']:6.2f} {t_ours:6.2f} | "
            f"{'/'.join(f'{100 * a:5.1f}' for a in ref_acc)} {ref.iterations:7d} "
            f"{'yes' if ref.stopped else 'no':>4} {ref.loss:9.2e} {ref_res:9.2e} "
            f"{row['ref_within_share']:6.2f} {ref.seconds:7.1f}",
            flush=True,
        )
        ref_t, ours_t, prev = ref.outputs, sol.outputs, sol
        if eps == 0 and r == 0:
            # Sanity check of the comparison: the exact teacher's residual is certified on the
            # same matrix the reference uses.
            assert fixed_point_residual(sol.outputs, y, lam, factor=factor)[0] <= 1e-9
            if cfg["sklearn"]:
                _sklearn_check(sol.outputs, noisy, k, n, c, d, lam)
    print(
        "accuracies in % (all / clean / mislabeled points, true labels); residual = max-abs "
        "fixed-point residual in float64 against each solver's own targets; 'own loss' = the "
        "reference's squared Frobenius residual; 'stop' = its early stop fired; 'within' = "
        "norm of the within-class part of P - 1/K over that of its class-mean part."
    )
    return rows


def _sklearn_check(outputs, noisy, k, n, c, d, lam) -> None:
    """Independent check of the teacher: scikit-learn's multinomial logistic regression (lbfgs,
    tol 1e-12, no intercept, ``C = 1/(lam N)``) on features realising the exact block Gram
    matrix (:func:`simulations.features.exact_block_features`)."""
    from sklearn.linear_model import LogisticRegression

    x = exact_block_features(k, n, c, d)
    t0 = time.perf_counter()
    lr = LogisticRegression(C=1.0 / (lam * k * n), fit_intercept=False, tol=1e-12, max_iter=100_000)
    lr.fit(x, noisy)
    gap = float(np.max(np.abs(lr.predict_proba(x).T - outputs)))
    print(
        f"  scikit-learn LogisticRegression teacher: max|P_sklearn - P_ours| = {gap:.1e} "
        f"({lr.n_iter_[0]} lbfgs iterations, {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )


def part_tmin(cfg, out) -> list[dict]:
    k, n, c, d, lam = (cfg[key] for key in ("k", "n", "c", "d", "lam"))
    rng = np.random.default_rng(cfg["seed"] + 1)
    truth = np.repeat(np.arange(k), n)
    noisy = reference_noisy_labels(k, n, cfg["eta"], rng)
    y = one_hot(noisy, k)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (truth, noisy), 1)
    block_tmin = min_rounds_linear(BlockModel(k, n, c, d), counts, lam)
    max_rounds = cfg["max_rounds"]
    print(
        f"\nPart 2: linearised t_min (first round of 100% training accuracy, rounds <= "
        f"{max_rounds}) vs epsilon; K={k} n={n} c={c} d={d} lam={lam:g} eta={cfg['eta']}; "
        f"block-model closed form (epsilon = 0): t_min = {block_tmin}"
    )
    print(
        f"{'epsilon':>8} | {'reference: t_min':>16} {'max|C-C^T|':>11} {'min Re eig':>11} | "
        f"{'PSD counterpart: t_min':>22} {'min eig':>9}"
    )
    rows = []
    for eps in cfg["epsilons"]:
        ref_c = reference_correlation(k, n, c, d, eps, rng).astype(float)
        psd = counterpart_gram(k, n, c, d, eps, rng)
        row = {
            "epsilon": eps,
            "block_tmin": block_tmin,
            "ref_tmin": linear_first_round(ref_c, y, truth, lam, max_rounds),
            "ref_asymmetry": float(np.max(np.abs(ref_c - ref_c.T))),
            "ref_min_real_eig": float(np.min(np.linalg.eigvals(ref_c).real)),
            "psd_tmin": linear_first_round(psd, y, truth, lam, max_rounds),
            "psd_min_eig": float(np.linalg.eigvalsh(psd)[0]),
        }
        rows.append(row)
        if out is not None:
            _write_csv(rows, out / "tmin.csv")
        never = f"> {max_rounds}"
        ref_t = never if row["ref_tmin"] is None else str(row["ref_tmin"])
        psd_t = never if row["psd_tmin"] is None else str(row["psd_tmin"])
        print(
            f"{eps:8.3f} | {ref_t:>16} "
            f"{row['ref_asymmetry']:11.3g} {row['ref_min_real_eig']:11.3g} | "
            f"{psd_t:>22} "
            f"{row['psd_min_eig']:9.3g}",
            flush=True,
        )
    print(f"(K lam N = {k * lam * k * n:g}: a real eigenvalue of C near -K lam N makes A blow up)")
    return rows


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=400, 1 round, 4 epsilons")
    parser.add_argument(
        "--epsilon", type=float_in(0.0, 1.0), default=0.0, help="perturbation for part 1"
    )
    parser.add_argument(
        "--rounds",
        type=int_in(0, 1000),
        default=None,
        help="rounds after the teacher (default 9: the reference's 10 solves; 1 with --quick)",
    )
    parser.add_argument("--max-iter", type=int_in(1, 10**7), default=REFERENCE_DEFAULTS["max_iter"])
    parser.add_argument(
        "--max-rounds", type=int_in(0, 10**4), default=200, help="t_min search limit"
    )
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    parser.add_argument(
        "--out", type=nonempty_path, default=None, help="write rounds.csv and tmin.csv"
    )
    parser.add_argument("--skip-rounds", action="store_true", help="only part 2 (t_min)")
    parser.add_argument(
        "--sklearn", action="store_true", help="also check the teacher with scikit-learn (eps=0)"
    )
    args = parser.parse_args(argv)
    # numerical_solving.py: dist = 1..max_dist (10) solves, the first on the noisy labels
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 9)
    bad = []
    if not (0 <= args.epsilon <= 1):
        bad.append("--epsilon must lie in [0, 1]")
    if rounds < 0 or args.max_iter < 1 or args.max_rounds < 0 or args.seed < 0:
        bad.append("--rounds, --max-rounds, --seed must be >= 0 and --max-iter >= 1")
    if bad:
        print(f"error: {'; '.join(bad)}", file=sys.stderr)
        return 2
    d = REFERENCE_DEFAULTS
    cfg = {
        "k": d["n_classes"],
        "n": 100 if args.quick else d["per_class"],
        "c": d["c"],
        "d": d["d"],
        "lam": d["lam"],
        "eta": d["eta"],
        "epsilon": args.epsilon,
        "rounds": rounds,
        "max_iter": args.max_iter,
        "max_rounds": args.max_rounds,
        "seed": args.seed,
        "sklearn": args.sklearn,
        "epsilons": (0.0, 0.02, 0.05, 0.1) if args.quick else (0.0, 0.005, 0.01, 0.02, 0.05, 0.1),
    }
    if args.out is not None:
        try:  # before any work: the results must not be lost at the end
            check_writable_dir(args.out)
        except ValueError as exc:
            parser.error(str(exc))
    with single_thread_blas():
        if not args.skip_rounds:
            part_rounds(cfg, args.out)
        part_tmin(cfg, args.out)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
