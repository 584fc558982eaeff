"""``python -m simulations probe``: SD and PLL on real (or the bundled digits) features.

Runs :func:`simulations.probe.run_probe` and prints, per ``lam``, the measured per-round accuracies
next to the theory evaluated on the same training features (:mod:`theory.real_features`): the
linearised label averaging on the real Gram matrix and the block model fitted to the features.
Every model is fitted through the scikit-learn estimator
:class:`simulations.estimator.SelfDistillationClassifier`.
The first line of the output is the verdict (:mod:`simulations.probe_verdict`): the best
configuration selected on validation with its test gain and 95% CI, and whether the block model
fits these features (with a ``warning:`` line and the numbers when it does not).
A progress bar goes to stderr on a terminal (not with ``--quiet``); ``--json`` prints the full
result as JSON on stdout instead of tables (with a ``verdict`` object);
``--out DIR`` writes ``probe.json`` and ``probe.csv`` atomically (:mod:`selfdistill_cli.files`).
``--out`` is checked for writability before any work; if writing still fails at the end, the
previous files are left intact, the results are printed anyway and the exit status is 2. The peak
memory and the time are estimated before the run (:func:`simulations.memory.probe_bytes`,
:func:`simulations.runtime.probe_seconds`) and a run above the limit (``--max-memory GB``, default
the memory available now; ``--max-time SECONDS``) is refused; so are PLL students with fewer than
three classes.

Examples
--------
``python -m simulations probe --noise sym --eta 0.4 --rounds 5 --trials 3``
``python -m simulations probe --features emb.npz --noise superclass --eta 0.3 --lam 1e-4 1e-3``
(superclass groups by the reference code's rule; ``--n-groups G`` clusters into ``G`` groups)
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from selfdistill_cli import ArgumentParser, add_deprecated_alias
from selfdistill_cli.limits import check_time, parse_max_time
from simulations.datasets import load_dataset
from simulations.estimator import check_raw_scale
from simulations.memory import check_memory, parse_max_memory, probe_bytes
from simulations.outdir import check_out_dir
from simulations.probe import ProbeConfig, check_probe_classes, run_probe, write_results
from simulations.runtime import DEFAULT_MAX_SECONDS, group_theory_seconds, probe_seconds
from simulations.solver import ConvergenceError
from theory.blas import blas_threads
from theory.names import (
    LOSSES,
    METHOD_LABELS,
    PREPROCESSING,
    PREPROCESSING_LABELS,
    ROUNDS_HELP,
    SUPERCLASS_RULE_LABELS,
    SUPERCLASS_RULES,
)
from theory.noise import NOISE_KINDS
from theory.validation import LAM_MAX, LAM_MIN

__all__ = ["build_parser", "format_report", "main"]

#: Up to this feature dimension BLAS calls are small (K x p times p x N) and a single thread is
#: faster than the library's thread pool (whose synchronisation dominates; far worse on a busy
#: machine).
SMALL_P = 256


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m simulations probe",
        description=(
            "Self-distillation and the PLL student (CE and GCE losses) on real features, with "
            "the label-averaging theory evaluated on the same features. Features: .npz "
            "(features, labels, optional train_idx/val_idx/test_idx), .npy (+ --labels), or .csv "
            "(feature columns then an integer label column; optional header). Default: "
            "scikit-learn's bundled digits."
        ),
    )
    d = ProbeConfig()
    p.add_argument(
        "--features", default=None, help="features file (.npz, .npy or .csv); default: digits"
    )
    p.add_argument("--labels", default=None, help="labels .npy file (only with .npy features)")
    p.add_argument("--noise", choices=NOISE_KINDS, default=d.noise, help="label-noise model")
    p.add_argument("--eta", type=float, default=d.eta, help="noise rate in [0, 1]")
    p.add_argument("--rounds", type=int, default=d.rounds, help=ROUNDS_HELP)
    p.add_argument("--trials", type=int, default=d.trials, help="number of seeded trials (>= 1)")
    add_deprecated_alias(p, "--seeds", "--trials", dest="trials", type=int)
    p.add_argument(
        "--lam",
        type=float,
        nargs="+",
        default=[1e-4],
        help=f"regularisation(s) lam in [{LAM_MIN:g}, {LAM_MAX:g}]; several values are selected "
        "on validation",
    )
    p.add_argument("--seed", type=int, default=0, help="root seed (>= 0)")
    p.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help="validation share per class"
    )
    p.add_argument(
        "--test-fraction", type=float, default=d.test_fraction, help="test share per class"
    )
    p.add_argument(
        "--superclass-rule",
        choices=SUPERCLASS_RULES,
        default=None,
        help="how superclass groups are found: 'reference' = the reference code's rule (complete "
        "linkage on 1 - mean pairwise cosine similarity, cut at 0.8 x the largest height); "
        "'correlation' = class-mean correlation into --n-groups groups (default: reference, "
        "or correlation when --n-groups is given)",
    )
    p.add_argument(
        "--n-groups",
        type=int,
        default=None,
        help="number of superclass groups (--superclass-rule correlation; default max(2, K // 3))",
    )
    add_deprecated_alias(p, "--n-superclasses", "--n-groups", dest="n_groups", type=int)
    p.add_argument("--q", type=float, default=d.q, help="GCE exponent in (0, 1]")
    p.add_argument(
        "--pll-losses",
        default=",".join(d.pll_losses),
        help=f"comma-separated PLL student losses among {', '.join(LOSSES)} "
        "(gce: (1 - s^q)/q on the candidate mass s; gce-reference: the reference code's mean of "
        "(1 - p_a^q)/q over the two candidates)",
    )
    p.add_argument("--clean-val", action="store_true", help="keep validation labels clean")
    p.add_argument("--no-theory", action="store_true", help="skip the theory on real features")
    p.add_argument(
        "--preprocess",
        choices=PREPROCESSING,
        default=d.preprocess,
        help="center-l2: centre with the training mean and L2-normalise rows; raw: the features "
        "as given (what the reference code trains on)",
    )
    add_deprecated_alias(p, "--no-preprocess", "--preprocess raw", dest="preprocess", const="raw")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="BLAS threads during the run (default: 1 if p <= 256, else the library default; "
        "small probes are faster single-threaded)",
    )
    p.add_argument("--out", default=None, help="directory for probe.json and probe.csv")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="refuse runs estimated above this many GB (default: the memory available now); "
        "also bounds the size of the features file",
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"refuse runs estimated to take longer (default {DEFAULT_MAX_SECONDS:g} s)",
    )
    return p


def _memory_estimate(dataset, config) -> int:
    if dataset.splits is not None:
        n_train = len(dataset.splits["train_idx"])
    else:  # stratified split: at least this share of every class is left for training
        n_train = math.ceil(dataset.n_samples * (1 - config.val_fraction - config.test_fraction))
    return probe_bytes(
        dataset.n_samples,
        dataset.n_features,
        dataset.n_classes,
        max(n_train, 1),
        config.rounds,
        config.theory,
    )


def _time_estimate(dataset, config) -> float:
    n_train = dataset.n_samples
    if dataset.splits is not None:
        n_train = len(dataset.splits["train_idx"])
    seconds = probe_seconds(
        dataset.n_samples,
        dataset.n_features,
        dataset.n_classes,
        n_train,
        config.rounds,
        config.trials,
        len(config.lams),
        len(config.pll_losses),
        config.theory,
    )
    if config.theory:  # the block model fitted to every trial and lam
        runs = config.trials * len(config.lams)
        seconds += runs * group_theory_seconds(dataset.n_classes, config.rounds)
    return seconds


def _fmt(stat, width=13) -> str:
    if stat is None:
        return "-".rjust(width)
    if isinstance(stat, dict):
        mean, std = stat["mean"], stat["std"]
        if mean is None:
            return "-".rjust(width)
        text = f"{mean:.3f}" if std is None else f"{mean:.3f}±{std:.3f}"
        return text.rjust(width)
    return f"{stat:.3f}".rjust(width)


def _theory_at(entry, key, index):
    if entry is None or key not in entry:
        return None
    val = entry[key]
    if isinstance(val, dict) and isinstance(val["mean"], list):
        m = val["mean"][index]
        s = None if val["std"] is None else val["std"][index]
        return None if m is None else {"mean": m, "std": s}
    return None


def _scalar(entry, key):
    if entry is None or key not in entry:
        return "-"
    val = entry[key]
    if isinstance(val, dict) and "mean" in val and not isinstance(val["mean"], list):
        # std below round-off of the mean (identical values in every trial) is not a spread
        spread = val["std"] is not None and val["std"] > 1e-9 * max(1.0, abs(val["mean"]))
        return f"{val['mean']:.4g}" + (f" ± {val['std']:.2g}" if spread else "")
    if isinstance(val, list):
        vals = [v for v in val if v is not None]
        if all(isinstance(v, bool) for v in vals) and vals:
            return f"{sum(vals)}/{len(vals)} trials"
        uniq = sorted({str(v) for v in val})
        return ", ".join(uniq)
    return str(val)


#: Columns of the per-lam table: (header, width). Every row (teacher, SD rounds, PLL students,
#: block-model PLL) fills the same columns, so they line up.
_COLUMNS = (
    ("method", 30),
    ("round", 5),
    ("train(meas)", 13),
    ("train(lin)", 13),
    ("train(blk-lin)", 14),
    ("train(blk-ex)", 13),
    ("val", 13),
    ("test", 13),
    ("test gain", 13),
)


def _row(cells) -> str:
    return " ".join(
        (str(c).ljust(w) if i == 0 else str(c).rjust(w))
        for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))
    )


def format_report(result) -> str:
    """Human-readable report: the verdict first, then per-lam tables with the theory alongside.

    Accuracies are mean±std over trials; ``train`` is measured against the true training labels,
    ``val`` against the (noisy by default) validation labels, ``test`` against clean test labels;
    ``test gain`` is test accuracy minus the teacher's at the same lam and trial.
    """
    cfg, ds, summ = result.config, result.dataset, result.summary
    lines = [result.verdict["text"]]
    if result.verdict.get("warning"):
        lines.append(f"warning: {result.verdict['warning']}")
    lines += [
        "",
        f"dataset {ds['name']}: N={ds['n_samples']}, p={ds['n_features']}, K={ds['n_classes']}"
        + (" (predefined split)" if ds["predefined_split"] else "")
        + f"; features {PREPROCESSING_LABELS[cfg['preprocess']]}",
        f"noise {cfg['noise']} eta={cfg['eta']:g}, rounds={cfg['rounds']}, trials={cfg['trials']}, "
        f"validation labels {'noisy' if cfg['noisy_val'] else 'clean'}; mean±std over trials",
    ]
    if result.groups is not None:
        lines.append(
            f"superclass groups ({SUPERCLASS_RULE_LABELS[cfg['superclass_rule']]}): {result.groups}"
        )
    theory = {e["lam"]: e for e in summ.get("theory", [])}
    for lam in cfg["lams"]:
        rows = [e for e in summ["per_config"] if e["lam"] == lam]
        th = theory.get(lam)
        lines.append("")
        lines.append(f"== lam = {lam:g} ==")
        if th is not None:
            lines.append(
                "theory on these features: Gram rank "
                f"{_scalar(th, 'rank')}, eigenvalues >= K lam N = {_scalar(th, 'threshold')}: "
                f"{_scalar(th, 'kept_round0')}"
            )
            top = th["real_top_eigenvalues"]["mean"][:12]
            lines.append("  top Gram eigenvalues: " + ", ".join(f"{v:.3g}" for v in top))
            blk = th["block_eigenvalues"]["mean"]
            lines.append(
                f"  block fit: c={_scalar(th, 'c')}, d={_scalar(th, 'd')} "
                f"(n={_scalar(th, 'per_class')}, scale={_scalar(th, 'scale')}, "
                f"d clamped: {_scalar(th, 'd_clamped')}); "
                f"block eigenvalues mu1={blk[0]:.3g}, mu2={blk[1]:.3g} (x K-1), "
                f"mu3={blk[2]:.3g} (x N-K)"
            )
            lines.append(
                f"  block min rounds to 100% train acc (linearised): {_scalar(th, 'min_rounds')}; "
                f"PLL condition holds: {_scalar(th, 'pll_condition_holds')}"
            )
            lines.append(
                "  train(lin): label averaging on these features' Gram matrix; train(blk-lin), "
                "train(blk-ex): the fitted block model, linearised and exact"
            )
        lines.append(_row([h for h, _ in _COLUMNS]))
        for e in rows:
            if e["method"] != "sd":
                continue
            t = e["round"]
            lines.append(
                _row(
                    [
                        "teacher" if t == 0 else "SD",
                        t,
                        _fmt(e["train_acc"]),
                        _fmt(_theory_at(th, "linearised_train_acc", t)),
                        _fmt(_theory_at(th, "block_linear_train_acc", t), 14),
                        _fmt(_theory_at(th, "block_exact_train_acc", t)),
                        _fmt(e["val_acc"]),
                        _fmt(e["test_acc"]),
                        _fmt(e["gain"]),
                    ]
                )
            )
        for e in rows:
            if e["method"] == "sd":
                continue
            name = METHOD_LABELS[e["method"]] + ("" if e["all_converged"] else " [uncertified]")
            blk = ("-", "-")
            if e["method"] == "pll-ce" and th is not None:  # the block theory's PLL student
                blk = tuple(
                    _fmt(v, w) if isinstance(v, dict) else "-"
                    for v, w in (
                        (th.get("pll_linear_train_acc"), 14),
                        (th.get("pll_exact_train_acc"), 13),
                    )
                )
            lines.append(
                _row(
                    [
                        name,
                        e["round"],
                        _fmt(e["train_acc"]),
                        "-",
                        blk[0],
                        blk[1],
                        _fmt(e["val_acc"]),
                        _fmt(e["test_acc"]),
                        _fmt(e["gain"]),
                    ]
                )
            )
        teacher = next(e for e in rows if e["method"] == "sd" and e["round"] == 0)
        cov_train, cov_test = (_fmt(teacher[k], 0) for k in ("coverage_train", "coverage_test"))
        lines.append(
            f"teacher top-2 coverage of the true label: train {cov_train}, test {cov_test}"
            + (f"; block model: {_scalar(th, 'pll_teacher_coverage')}" if th else "")
        )
    lines.append("")
    lines.append("selected on VALIDATION, per trial (test accuracy of the chosen configuration):")
    width = max(len(s["family"]) for s in summ["selected"])
    for s in summ["selected"]:
        choices = ", ".join(
            f"{m}{'' if r is None or m != 'sd' else f'@{r}'}/lam={lam:g}"
            for m, lam, r in s["choices"]
        )
        lines.append(f"  {s['family']:>{width}}: test {_fmt(s['test_acc'])}   [{choices}]")
    lines.append(f"elapsed {result.elapsed_seconds:.1f}s")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        max_memory = parse_max_memory(args.max_memory)
        max_time = parse_max_time(args.max_time) or DEFAULT_MAX_SECONDS
        dataset = load_dataset(args.features, args.labels, max_memory=max_memory)
        config = ProbeConfig(
            noise=args.noise,
            eta=args.eta,
            rounds=args.rounds,
            trials=args.trials,
            lams=tuple(args.lam),
            seed=args.seed,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            n_groups=args.n_groups,
            superclass_rule=args.superclass_rule,
            q=args.q,
            pll_losses=tuple(x.strip() for x in args.pll_losses.split(",") if x.strip()),
            noisy_val=not args.clean_val,
            theory=not args.no_theory,
            preprocess=args.preprocess,
        ).validated()
        check_probe_classes(config, dataset.n_classes)
        if config.preprocess == "raw":  # raw features: their scale moves lam (estimator's rule)
            for lam in config.lams:
                check_raw_scale(dataset.features, lam)
        threads = args.blas_threads
        if threads is None and dataset.n_features <= SMALL_P:
            threads = 1
        if threads is not None and threads < 1:
            raise ValueError(f"--blas-threads must be >= 1, got {threads}")
        check_memory(_memory_estimate(dataset, config), "this probe", max_memory)
        check_time(_time_estimate(dataset, config), "this probe", max_time)
        if args.out is not None:
            check_out_dir(args.out)  # before any work: results must not be lost at the end
        if not args.quiet:
            print(
                f"[probe] {dataset.name}: N={dataset.n_samples}, p={dataset.n_features}, "
                f"K={dataset.n_classes}; {config.trials} trial(s) x {len(config.lams)} lam",
                file=sys.stderr,
            )
        with blas_threads(threads):
            result = run_probe(dataset, config, quiet=args.quiet)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConvergenceError as exc:  # inputs the exact solver cannot certify: no partial rows
        print(
            f"error: {' '.join(str(exc).split())} (an uncertified solve is never reported; "
            "see docs/reliability.md)",
            file=sys.stderr,
        )
        return 2
    status = 0
    if args.out is not None:
        try:
            paths = write_results(result, args.out)
            print(f"[probe] wrote {paths['json']} and {paths['csv']}", file=sys.stderr)
        except OSError as exc:  # e.g. disk full: the previous files are intact; print instead
            print(f"error: {exc}; printing the results instead", file=sys.stderr)
            status = 2
    if args.json:
        print(json.dumps(result.to_json(), indent=1, allow_nan=False))
    else:
        print(format_report(result))
    return status


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
