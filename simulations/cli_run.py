"""``python -m simulations run ...`` — one configuration, per-round accuracies beside the theory.

Runs ``--trials`` Monte Carlo trials of one :class:`simulations.pipelines.TrialConfig`
(:func:`simulations.monte_carlo.simulate` of its :func:`simulations.monte_carlo.run_spec`,
exact backend) and prints, for
every round, the simulated accuracies (mean and 95% CI over trials) next to the theory,
:func:`theory.spec.predict` of ``Spec(counts=C)`` for each trial's *realised* count matrix ``C``
(once per distinct matrix), averaged over trials:

* ``exact``: :func:`theory.groups.predict_exact` (non-linearised fixed point, round by round);
* ``linear``: :func:`theory.groups.predict_linear` (label-averaging closed form);
* for the PLL methods, round 1 is the PLL student: :func:`theory.pll.predict_pll`
  (``method='exact'`` / ``'linear'``), with ``loss='candidate'`` / ``'gce'`` (and ``q``) for
  ``--method pll-candidate`` / ``pll-gce``; the reference GCE (``pll-gce-ref``) has no group
  theory, and a loss the theory rejects at these parameters (or a saddle of the non-convex
  engine) gives a note.

* ``finite`` (mixture features, ``--method sd`` only): :func:`theory.finite.predict_finite`, the
  deterministic-equivalent prediction of the *linearised* SD rounds on the mixture's random Gram
  matrix at the run's dimension ``--dim`` (docs/theory.md §11). It has no PLL student, so the PLL
  methods print a note instead; above :data:`FINITE_MAX_CLASSES` classes it is skipped with a
  note (its cost grows like ``K^4``). One evaluation per distinct count matrix (exact counts: one
  for all trials).

Before anything runs, the configuration is validated (``--lam`` in ``[1e-12, 1e12]``,
``--temperature`` in ``[1e-3, 1e3]``, PLL methods need ``K >= 3``) and the memory and time of all
trials are estimated and refused above ``--max-memory`` / ``--max-time`` (docs/reliability.md),
the theory printed alongside included (the exact finite-ratio theory per count matrix:
:func:`_finite_exact_budget`). A solve the exact solver cannot certify stops the run with one line
(exit 2); a theory that cannot be evaluated (e.g. its fixed point does not converge at
``lam = 1e-12``) becomes a note.

``pop_acc`` is the exact conditional population accuracy of each trained probe on the mixture
(``pop_acc_sampled``: on ``--n-test`` fresh points per class; see :mod:`simulations.pipelines`).
``exact`` and ``linear`` are the ``p -> inf`` limit (block Gram matrix exactly); for exact-block
features they should match to solver precision. ``finite`` is the finite-``p`` counterpart of
``linear``: at moderate ``lam`` the exact probe follows it, at small ``lam`` softmax saturation
moves the exact probe away from any linearised prediction. No theory is available for
``temperature != 1`` (the theory distils on raw outputs); the output says so.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys

import numpy as np

from selfdistill_cli import ArgumentParser, add_deprecated_alias
from selfdistill_cli.limits import check_time, parse_max_time
from selfdistill_cli.progress import progress_bar
from simulations.memory import (
    check_memory,
    finite_theory_bytes,
    group_theory_bytes,
    parse_max_memory,
    trial_bytes,
)
from simulations.monte_carlo import run_spec, simulate  # run_spec: re-exported (moved there)
from simulations.noise import SAMPLING_MODES
from simulations.pipelines import (
    FEATURE_MODELS,
    METHODS,
    PLL_LOSSES,
    TEMPERATURE_RANGE,
    TrialConfig,
)
from simulations.runtime import DEFAULT_MAX_SECONDS, run_theory_seconds, trial_seconds
from simulations.solver import ConvergenceError
from simulations.sweep import mean_ci
from theory.names import METRICS, NOISE_KINDS, ROUNDS_HELP, THEORY_LOSSES
from theory.spec import METRICS as SPEC_METRICS
from theory.spec import Result, Spec, predict
from theory.validation import LAM_MAX, LAM_MIN

__all__ = ["build_parser", "main", "run_with_theory"]

#: Typical seconds above which the exact finite-ratio theory is skipped (with a note) for one
#: count matrix; and its lattice points per shift and group (docs/theory.md §16.6).
FINITE_EXACT_SECONDS = 60.0
FINITE_EXACT_POINTS = 64

#: Largest K for which the finite-p theory is printed: one evaluation costs ~0.4 s at K = 10 and
#: ~1.4 s at K = 20 (R = 3, measured on the 2-core development machine), growing like K^4, once
#: per distinct count matrix (every seed with ``--sampling random``).
FINITE_MAX_CLASSES = 20


def build_parser() -> argparse.ArgumentParser:
    d = TrialConfig()
    p = ArgumentParser(
        prog="python -m simulations run",
        description="One configuration: simulated per-round accuracies with theory alongside.",
    )
    p.add_argument(
        "-K",
        "--classes",
        "--n-classes",
        dest="n_classes",
        type=int,
        default=d.n_classes,
        help="classes K",
    )
    p.add_argument("-n", "--per-class", type=int, default=d.per_class, help="points per class n")
    p.add_argument(
        "-p",
        "--dim",
        type=int,
        default=d.dim,
        help="feature dimension p of the mixture features (exact-block features are p = inf)",
    )
    p.add_argument("--c", type=float, default=d.c, help="within-class inner product, d < c <= 1")
    p.add_argument("--d", type=float, default=d.d, help="across-class inner product, d < c")
    p.add_argument("--eta", type=float, default=d.eta, help="noise rate in [0, 1]")
    p.add_argument(
        "--lam",
        type=float,
        default=d.lam,
        help=f"L2 regularisation in [{LAM_MIN:g}, {LAM_MAX:g}], the range the solvers support",
    )
    p.add_argument("--rounds", type=int, default=d.rounds, help=ROUNDS_HELP)
    p.add_argument("--noise", choices=NOISE_KINDS, default=d.noise, help="label-noise model")
    p.add_argument(
        "--sampling", choices=SAMPLING_MODES, default=d.sampling, help="how noisy labels are drawn"
    )
    p.add_argument(
        "--features", choices=FEATURE_MODELS, default=d.features, help="feature construction"
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=d.method,
        help="SD or a PLL student (the PLL methods need K >= 3)",
    )
    p.add_argument("--n-test", type=int, default=d.n_test, help="fresh test draws per class")
    p.add_argument(
        "--temperature",
        type=float,
        default=d.temperature,
        help=f"temperature of the SD targets, in [{TEMPERATURE_RANGE[0]:g}, "
        f"{TEMPERATURE_RANGE[1]:g}]",
    )
    p.add_argument(
        "--groups", default=None, help='superclass partition as JSON, e.g. "[[0,1],[2]]"'
    )
    p.add_argument(
        "--n-groups",
        type=int,
        default=None,
        help="number of superclass groups, found by clustering the class means (superclass noise)",
    )
    p.add_argument("--q", type=float, default=d.q, help="GCE exponent (pll-gce, pll-gce-ref)")
    p.add_argument("--seed", type=int, default=0, help="base seed (>= 0)")
    p.add_argument("--trials", type=int, default=1, help="number of Monte Carlo trials (>= 1)")
    add_deprecated_alias(p, "--seeds", "--trials", dest="trials", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="refuse runs estimated above this many GB (default: the memory available now)",
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"refuse runs estimated to take longer (default {DEFAULT_MAX_SECONDS:g} s); checked "
        "with the memory before anything runs",
    )
    return p


def _config_from_args(args) -> TrialConfig:
    groups = None
    if args.groups is not None:
        try:
            groups = json.loads(args.groups)
        except json.JSONDecodeError:
            raise ValueError(
                f"--groups must be JSON like [[0,1],[2]], got {args.groups!r}"
            ) from None
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            raise ValueError(f"--groups must be a JSON list of lists, got {args.groups!r}")
    return TrialConfig(
        n_classes=args.n_classes,
        per_class=args.per_class,
        dim=args.dim,
        c=args.c,
        d=args.d,
        eta=args.eta,
        lam=args.lam,
        rounds=args.rounds,
        noise=args.noise,
        sampling=args.sampling,
        features=args.features,
        method=args.method,
        n_test=args.n_test,
        temperature=args.temperature,
        groups=groups,
        n_groups=args.n_groups,
        q=args.q,
    )


def _finite_model(cfg: TrialConfig):
    """``(MixtureModel, None)`` if the finite-p theory applies to ``cfg``, else ``(None, note)``.

    ``(None, None)`` for exact-block features (the block limit itself: nothing finite to show).
    """
    if cfg.features != "mixture" or cfg.temperature != 1.0:
        return None, None  # exact-block: p = inf; temperature: covered by the general note
    if cfg.method != "sd":
        return None, "finite-p theory not available for the PLL student (linearised SD only)"
    if cfg.n_classes > FINITE_MAX_CLASSES:
        return None, (
            f"finite-p theory skipped: K = {cfg.n_classes} > {FINITE_MAX_CLASSES} (its cost grows "
            "like K^4)"
        )
    from theory.finite import FINITE_MAX_ROUNDS, MixtureModel

    if cfg.rounds > FINITE_MAX_ROUNDS:
        return None, (
            f"finite-p theory skipped: {cfg.rounds} rounds > {FINITE_MAX_ROUNDS} (its covariance "
            "contour grows to thousands of points beyond that)"
        )

    try:
        return MixtureModel(cfg.n_classes, cfg.per_class, cfg.dim, cfg.c, cfg.d), None
    except ValueError as exc:  # p = K: the simulation runs, the theory has no bulk to describe
        return None, f"finite-p theory not available: {exc}"


def _spec_fields(cfg: TrialConfig) -> dict:
    names = ("n_classes", "per_class", "c", "d", "lam", "rounds", "noise", "eta", "method", "q")
    return {name: getattr(cfg, name) for name in names} | {"sampling": cfg.sampling}


def _theory_spec(cfg: TrialConfig, counts, dim, method: str | None = None) -> Spec:
    """The theory's question for one realised count matrix (``method='sd'``: the teacher's
    rows ``0..R``, ``R = 0`` for a PLL run)."""
    fields = _spec_fields(cfg) | {"counts": tuple(map(tuple, np.asarray(counts).tolist()))}
    if method == "sd" and cfg.method != "sd":
        fields.update(method="sd", rounds=0)
    return Spec(**fields, dim=dim)


def _theory(cfg: TrialConfig, counts) -> tuple[dict, list[str]]:
    """Theory predictions ``{name: {round: {metric: value}}}`` for one realised count matrix,
    each from :func:`theory.spec.predict` on ``Spec(counts=counts)``."""
    notes = []
    if cfg.temperature != 1.0:
        return {}, ["theory not available: it distils on raw outputs (temperature = 1)"]
    block = _theory_spec(cfg, counts, math.inf, method="sd")
    preds = {name: predict(block, name) for name in ("exact", "linear")}
    mixture, note = _finite_model(cfg)
    if mixture is not None:
        from theory.finite_exact.report import LINEARISED_TOL, random_matrix_failure

        finite = _theory_spec(cfg, counts, cfg.dim)
        refused = random_matrix_failure(cfg.lam, mixture.ratio)
        if refused is None:
            try:
                preds["finite"] = predict(finite, "finite")
            except ValueError as exc:  # e.g. FiniteResolutionError at very small lam or N/p
                notes.append(f"finite-p theory not available: {' '.join(str(exc).split())}")
        else:
            notes.append(refused)
        exact_pred, exact_note = _finite_exact(finite, mixture)
        if exact_pred is not None:
            preds["finite_exact"] = exact_pred
        if exact_note is not None:
            notes.append(exact_note)
        if "finite" in preds:
            if exact_pred is not None:
                diff = np.abs(preds["finite"].values - exact_pred.values)
                gap = float(np.max(diff[~np.isnan(diff)], initial=-np.inf))  # NaN: undefined
                if gap > LINEARISED_TOL:
                    notes.append(
                        f"f-lin (linearised) differs from f-exact by up to {gap:.3f} "
                        f"(> {LINEARISED_TOL}): outside its validated regime"
                    )
            elif not preds["finite"].extra["validated_regime"]:
                notes.append(f"f-lin: {preds['finite'].notes[0]}")
    elif note is not None:
        notes.append(note)
    rounds = range(block.rounds + 1)
    out = {name: _by_round(pred, rounds) for name, pred in preds.items()}
    if cfg.method in PLL_LOSSES and cfg.features == "mixture":
        # The exact finite-ratio theory covers the cross-entropy PLL student (teacher + student).
        if cfg.method == "pll-ce" and cfg.n_classes >= 3:
            from theory.finite import MixtureModel

            try:
                mix = MixtureModel(cfg.n_classes, cfg.per_class, cfg.dim, cfg.c, cfg.d)
            except ValueError as exc:  # p = K: the simulation runs, the theory has no bulk
                mix, exact_note = None, f"finite-exact theory not available: {exc}"
            exact_pred = None
            if mix is not None:
                exact_pred, exact_note = _finite_exact(_theory_spec(cfg, counts, cfg.dim), mix)
            if exact_pred is not None:
                out["finite_exact"] = _by_round(exact_pred, [0, 1])
            if exact_note is not None:
                notes.append(exact_note)
        elif cfg.method != "pll-ce":
            notes.append(
                "finite-exact theory covers the cross-entropy PLL student only (the "
                "candidate-set losses are not convex per point)"
            )
    if cfg.method in PLL_LOSSES:
        student_spec = _theory_spec(cfg, counts, math.inf)
        for name in ("exact", "linear"):
            student, note = _pll_theory(student_spec, name)
            for n in [note] if student is None else student.notes:
                if n not in notes:
                    notes.append(n)
            if student is not None:  # rows [teacher, student]: the student is round 1
                out[name][1] = _by_round(student, [1])[1]
    return out, notes


def _finite_exact(spec: Spec, mixture):
    """``(Result, None)`` of the exact finite-ratio theory, or ``(None, note)`` when it does
    not apply (``p <= K``) or would exceed :data:`FINITE_EXACT_SECONDS` for this count matrix."""
    from theory.finite_exact import FixedPointNotConverged, exact_resource_estimate
    from theory.finite_exact.prox import ProxNotConverged

    if mixture.dim <= mixture.n_classes:
        return None, "finite-exact theory needs p > K (its bulk has p - K dimensions)"
    counts = spec.count_matrix()
    est = exact_resource_estimate(mixture, counts, spec.rounds, points=FINITE_EXACT_POINTS)
    if est["seconds"] > FINITE_EXACT_SECONDS:
        return None, (
            f"finite-exact theory skipped for a count matrix: about {est['seconds']:.3g} s "
            f"({est['groups']} groups integrated, symmetry {est['symmetry']}; exact-count "
            "sampling makes the count matrix circulant and cheap)"
        )
    try:
        return predict(spec, "finite_exact", points=FINITE_EXACT_POINTS), None
    except (FixedPointNotConverged, ProxNotConverged, np.linalg.LinAlgError, ValueError) as exc:
        # e.g. lam = 1e-12: a note, never numbers from an unconverged fixed point
        return None, f"finite-exact theory not available: {' '.join(str(exc).split())}"


def _finite_exact_budget(cfg: TrialConfig) -> tuple[float, float]:
    """``(seconds, bytes)`` of the exact finite-ratio theory for one count matrix, before any
    trial has drawn one (0 where :func:`_theory` does not compute it).

    The count matrix is estimated from the noise's transition matrix ``T``: with exact counts it
    is :func:`theory.noise.exact_counts` itself; with random sampling, group ``(k, l)`` is nonempty
    with probability ``1 - (1 - T[k, l])^n`` and the drawn matrices have no class symmetry, so
    :func:`theory.finite_exact.exact_resource_estimate` (linear in the number of groups) is scaled
    to the expected number of groups. A matrix estimated above :data:`FINITE_EXACT_SECONDS` is
    skipped by :func:`_finite_exact` and costs nothing. Superclass noise clustered per trial
    (``--n-groups``) is taken at its densest: every class in one group.
    """
    from theory.finite import MixtureModel
    from theory.finite.model import MAX_DIM_RATIO
    from theory.finite_exact import exact_resource_estimate
    from theory.noise import exact_counts, transition_matrix

    if cfg.temperature != 1.0 or cfg.features != "mixture":
        return 0.0, 0.0
    if cfg.method == "sd":
        if _finite_model(cfg)[0] is None:
            return 0.0, 0.0
        rounds = cfg.rounds
    elif cfg.method == "pll-ce" and cfg.n_classes >= 3:
        rounds = 1
    else:
        return 0.0, 0.0
    k, n = cfg.n_classes, cfg.per_class
    if cfg.dim <= k or cfg.dim > MAX_DIM_RATIO * k * n:  # no finite-p theory there
        return 0.0, 0.0
    groups = cfg.groups
    if cfg.noise == "superclass" and groups is None:
        groups = [list(range(k))]
    trans = transition_matrix(cfg.noise, k, cfg.eta, groups=groups)
    mixture = MixtureModel(k, n, cfg.dim, cfg.c, cfg.d)
    if cfg.sampling == "exact-count":
        est = exact_resource_estimate(
            mixture, exact_counts(trans, n), rounds, points=FINITE_EXACT_POINTS
        )
    else:
        # Every group nonempty, no symmetry (distinct entries), then scaled to the expected groups.
        dense = 1 + np.arange(k * k, dtype=np.int64).reshape(k, k)
        est = exact_resource_estimate(mixture, dense, rounds, points=FINITE_EXACT_POINTS)
        share = float(np.sum(1.0 - (1.0 - trans) ** n)) / (k * k)
        est = {"seconds": est["seconds"] * share, "bytes": est["bytes"] * share}
    if est["seconds"] > FINITE_EXACT_SECONDS:
        return 0.0, 0.0
    return float(est["seconds"]), float(est["bytes"])


def _pll_theory(spec: Spec, source: str):
    """``(Result, None)`` from :func:`theory.spec.predict` for a PLL spec, or ``(None, note)``
    when the group theory does not cover its loss or rejects it at these parameters."""
    loss = PLL_LOSSES[spec.method]
    if loss not in THEORY_LOSSES:  # the reference GCE: no group-level theory
        msg = f"loss must be one of {THEORY_LOSSES}, got {loss!r}"
        return None, f"{source} theory for loss {loss} not available: {msg}"
    try:
        return predict(spec, source), None
    except (ValueError, NotImplementedError) as exc:
        if loss not in str(exc) and source not in str(exc):
            raise  # a genuine input error, not an unsupported loss / method
        return None, f"{source} theory for loss {loss} not available: {exc}"


def _by_round(res: Result, rounds) -> dict:
    return {t: {m: float(res.values[t, j]) for j, m in enumerate(SPEC_METRICS)} for t in rounds}


def run_with_theory(
    cfg: TrialConfig, trials: int, base_seed: int, *, quiet: bool = True, max_memory=None
) -> dict:
    """Simulate ``trials`` trials and attach the theory; returns a JSON-compatible dict.

    The trials are :func:`simulations.monte_carlo.simulate` of
    :func:`simulations.monte_carlo.run_spec` (exact backend;
    the limits were checked by :func:`main`); the theory is :func:`_theory` per distinct realised
    count matrix. ``quiet=False`` draws a progress bar on stderr (:mod:`selfdistill_cli.progress`).
    """
    bar = functools.partial(progress_bar, desc="trials", unit="trial", quiet=quiet)
    res = simulate(
        run_spec(cfg),
        trials,
        seed=base_seed,
        n_test=cfg.n_test,
        tol=cfg.tol,
        temperature=cfg.temperature,
        keep_trials=True,
        progress=bar,
        max_seconds=None,
        max_memory=max_memory,
    )
    extra = {m: res.trial_data[m] for m in METRICS if m not in SPEC_METRICS}
    sims = {
        t: {
            m: res.samples[:, t, SPEC_METRICS.index(m)] if m in SPEC_METRICS else extra[m][:, t]
            for m in METRICS
        }
        for t in range(res.samples.shape[1])
    }
    theo: dict[str, dict[int, dict[str, list]]] = {}
    notes: list[str] = []
    cache: dict[bytes, tuple] = {}  # the theory is a pure function of the count matrix
    for counts in res.counts:
        key = np.asarray(counts, dtype=np.int64).tobytes()
        if key not in cache:
            cache[key] = _theory(cfg, counts)
        pred, trial_notes = cache[key]
        notes += [note for note in trial_notes if note not in notes]
        for name, rounds in pred.items():
            for t, vals in rounds.items():
                acc = theo.setdefault(name, {}).setdefault(t, {m: [] for m in SPEC_METRICS})
                for m, v in vals.items():
                    acc[m].append(v)
    rounds_out = []
    for t in sorted(sims):
        entry = {"round": t, "simulation": {}, "theory": {}}
        for m, values in sims[t].items():
            mean, half, count = mean_ci(values.tolist())
            entry["simulation"][m] = {"mean": _clean(mean), "ci95": _clean(half), "n": count}
        for name, rounds in theo.items():
            if t in rounds:
                entry["theory"][name] = {m: _clean(_nanmean(v)) for m, v in rounds[t].items()}
        rounds_out.append(entry)
    return {
        "config": cfg.to_dict(),
        "key": cfg.key(),
        "trials": trials,
        "base_seed": base_seed,
        "all_certified": bool(res.trial_data["converged"].all()),
        "rounds": rounds_out,
        "groups": res.trial_data["groups"] if cfg.noise == "superclass" else None,
        "notes": notes,
    }


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.mean(v[~np.isnan(v)])) if np.any(~np.isnan(v)) else math.nan


def _clean(x):
    """JSON has no NaN: report undefined values (e.g. no mislabeled points) as null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _fmt(x, width=7) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.3f}"


def _print_table(result: dict) -> None:
    cfg = result["config"]
    # Exact-block features are the p -> inf block Gram matrix (the config stores dim 0).
    dim = "inf" if cfg["features"] == "exact-block" else cfg["dim"]
    print(
        f"{cfg['method']} | K={cfg['n_classes']} n={cfg['per_class']} p={dim} "
        f"c={cfg['c']} d={cfg['d']} eta={cfg['eta']} ({cfg['noise']}, {cfg['sampling']}) "
        f"lam={cfg['lam']:g} features={cfg['features']} trials={result['trials']}"
    )
    names = ["exact", "linear"]
    labels = {"exact": "exact", "linear": "linear", "finite_exact": "f-exact", "finite": "f-lin"}
    if any("finite_exact" in entry["theory"] for entry in result["rounds"]):
        names.append("finite_exact")
        print(
            f"f-exact: exact finite-ratio theory of the trained probes (cross-entropy, every "
            f"round) at p={cfg['dim']} (theory.finite_exact)"
        )
    if any("finite" in entry["theory"] for entry in result["rounds"]):
        names.append("finite")
        print(f"f-lin: linearised finite-p theory at p={cfg['dim']} (theory.finite)")
    print("exact, linear: block limit p -> inf (theory.groups)")
    head = f"{'round':>5}  {'metric':<20}{'sim':>7} {'+-95%':>7}" + "".join(
        f" {labels[n]:>7}" for n in names
    )
    print(head)
    for entry in result["rounds"]:
        for m in METRICS:
            sim = entry["simulation"][m]
            cells = [entry["theory"].get(n, {}).get(m) for n in names]
            print(
                f"{entry['round']:>5}  {m:<20}{_fmt(sim['mean'])} {_fmt(sim['ci95'])}"
                + "".join(f" {_fmt(c)}" for c in cells)
            )
    if result["groups"] is not None:
        print(f"superclass groups per trial: {result['groups']}")
    print(f"all solves certified: {result['all_certified']}")
    for note in result["notes"]:
        print(f"note: {note}")


def main(argv=None) -> int:
    """Entry point; returns 0 on success, 2 on bad input."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help / usage errors; keep main() -> int
        return int(exc.code or 0)
    try:
        cfg = _config_from_args(args)
        if args.trials < 1:
            raise ValueError(f"--trials must be an integer >= 1, got {args.trials}")
        if args.seed < 0:
            raise ValueError(f"--seed must be an integer >= 0, got {args.seed}")
        # Before any allocation: one trial's arrays plus the group theory printed alongside,
        # and the time of all the trials.
        nonconvex = PLL_LOSSES.get(cfg.method) in ("candidate", "gce")
        need = trial_bytes(cfg) + group_theory_bytes(cfg.n_classes, cfg.rounds, escape=nonconvex)
        mixture, _ = _finite_model(cfg)
        if mixture is not None:
            need += finite_theory_bytes(mixture, cfg.lam, cfg.rounds)
        max_memory = parse_max_memory(args.max_memory)
        check_memory(need, "this run", max_memory)
        # After that check: the estimate builds K x K count matrices.
        exact_seconds, exact_bytes = _finite_exact_budget(cfg)
        if exact_bytes:
            check_memory(need + exact_bytes, "this run", max_memory)
        limit = parse_max_time(args.max_time) or DEFAULT_MAX_SECONDS
        what = f"{args.trials} trial(s) of {cfg.rounds} round(s) at K={cfg.n_classes}"
        seconds = args.trials * trial_seconds(cfg)
        seconds += run_theory_seconds(cfg, args.trials, mixture is not None)
        # The exact finite-ratio theory: once per distinct count matrix, as the theory above.
        seconds += exact_seconds * (1 if cfg.sampling == "exact-count" else args.trials)
        check_time(seconds, f"{what} with the theory alongside", limit)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_with_theory(
            cfg, args.trials, args.seed, quiet=args.quiet, max_memory=max_memory
        )
    except ConvergenceError as exc:  # inputs the exact solver cannot certify: no partial rows
        print(
            f"error: {' '.join(str(exc).split())} (an uncertified solve is never reported; "
            "see docs/reliability.md)",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(result, indent=1, allow_nan=False))
    else:
        _print_table(result)
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
