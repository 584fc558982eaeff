r"""Figure: the finite-dimension phase diagram of self-distillation over ``(N/p, t)``.

Gaussian mixture (``K`` classes, ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``), symmetric label noise
with exact counts. Heat maps: population *error* ``1 - accuracy`` (log colour scale: the accuracy
is close to 1 almost everywhere, which a linear scale saturates) of the linearised round-``t``
probe predicted by the finite-``p`` theory (:func:`theory.finite.predict_finite`, docs/theory.md
§11) over the round ``t`` and the feature ratio ``N/p`` on its true scale (0 = the block limit
``p = inf``; each row spans halfway to its neighbours), for a small and a larger ``lam``. Lines:
the round of best population accuracy (:func:`theory.finite.population_rounds`, solid) and the
first round with accuracy ``>= 1 - delta`` (dotted). At small ``lam`` the rounds needed grow with
``N/p``; at the larger ``lam`` too many rounds collapse every prediction onto the top eigenvector
(the finite-``p`` collapse of §11.8). Right panel: the best round against ``N/p`` for several
``lam``; a best round equal to the last round computed (``R``) is clipped by the grid (the true
best may be later) and flagged with an upward triangle. Population errors below
:data:`figures.finite_phase_plot.ERROR_FLOOR` are drawn at the floor (the colour bar's triangle).

Bottom: the exact finite-ratio theory (:func:`theory.finite_exact.predict_finite_exact`, docs
§16: exact cross-entropy self-distillation at finite ``N/p``) over ``(N/p, t)``, population error
(same colour scale as the top row) and accuracy on the mislabeled training points (linear scale),
for the configurations of ``sd_generalization`` (quick: ``K = 4, lam = 1e-3``; paper: also ``K =
10, lam = 1e-4``, where the two theories part; the same predictions, computed once through
:mod:`figures.finite_theories`' cache and checked there against exact-SD Monte Carlo) and, in the
paper preset, ``K = 4, lam = 1e-2`` over 20 rounds: the finite-``p`` collapse of exact SD
(:func:`exact_map_configs`). A white cross marks a cell where the linearised finite-``p`` theory at
the same point is more than 0.03 (``LINEARISED_TOL``) from the exact theory, i.e. outside the
regime where it was validated; hatched rows are where the linearised theory is refused (its
random-matrix part fails, :func:`theory.finite_exact.report.random_matrix_failure`), so there is
nothing to compare. Row ``N/p = 0`` compares the block model's exact and linearised group theories.

Check (fails loudly): at a few grid points the linearised Monte Carlo on exactly sampled Gram
matrices (:mod:`simulations.linear_trials`) agrees with the theory within
``max(t s/sqrt(T), 0.03)`` (:func:`figures.common.check_mc_agreement` with ``theory_atol =
FINITE_THEORY_ATOL``, the acceptance rule of the finite-``p`` theory used by ``finite_dimension``
and ``sd_generalization`` too: the deterministic equivalents carry their own error of ~1e-2 at
``N = 100``, docs/theory.md §11, so a pure Monte Carlo tolerance fails on a 2e-5 gap where every
trial reaches 100%, e.g. the paper preset at ``N/p = 1``, ``t = 20``); the markers on the heat
maps show where.
"""

from __future__ import annotations

import math

import numpy as np

from figures import sd_generalization as sdg
from figures import style
from figures.common import (
    FINITE_THEORY_ATOL,
    check_mc_agreement,
    figure_run,
    figure_spec,
    log,
    parse_args,
    prepare_output,
    sample_columns,
    simulate_figure,
)
from figures.finite_phase_plot import EXACT_FIELDS, plot
from figures.finite_theories import (
    LINEARISED_TOL,
    exact_accuracies,
    linear_prediction,
    linearised_off,
    refusal,
)
from theory.finite import MixtureModel, population_rounds, predict_finite
from theory.noise import exact_counts, transition_matrix

NAME = "finite_phase"
PRESETS = {
    "tiny": dict(
        n_classes=3,
        per_class=10,
        c=0.4,
        d=0.1,
        eta=0.4,
        lams=(1e-3, 1e-2),
        rounds=4,
        ratios=(0.0, 0.5, 1.0),
        best_lams=(1e-3, 1e-2),
        checks=((1.0, 1),),
        trials=4,
        delta=0.01,
        exact_extra=(),
    ),
    "quick": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        eta=0.5,
        lams=(1e-3, 1e-2),
        rounds=20,
        ratios=(0.0, 0.5, 1.0, 2.0),
        # Two lambdas (were three): room for the exact finite-ratio theory within the quick
        # preset's 45 s budget (issue 24); the paper preset keeps six.
        best_lams=(1e-3, 1e-2),
        checks=((1.0, 3), (2.0, 10), (0.5, 20)),
        trials=12,
        delta=0.01,
        exact_extra=(),
    ),
    "paper": dict(
        n_classes=4,
        per_class=25,
        c=0.4,
        d=0.1,
        eta=0.5,
        lams=(1e-3, 1e-2),
        # R = 20 as the quick preset: at R = 24-30, lam = 0.01, theory.finite.predict_finite
        # stops with "covariance is not positive semidefinite beyond round-off" (e.g. N/p = 0.25).
        rounds=20,
        ratios=(0.0, 0.0625, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
        best_lams=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
        checks=((0.5, 3), (1.0, 3), (2.0, 10), (0.5, 20), (1.0, 20)),
        trials=40,
        delta=0.01,
        # The finite-p collapse of exact SD (issue 20, docs §16.5): lam = 1e-2 over 20 rounds,
        # ~10 s of CPU per dimension at 32 points (too slow for the quick preset).
        exact_extra=(
            dict(
                n_classes=4,
                per_class=25,
                c=0.4,
                d=0.1,
                eta=0.5,
                lam=1e-2,
                rounds=20,
                points=32,
                ratios=(0.0, 0.5, 1.0, 2.0),
            ),
        ),
    ),
}


def exact_map_configs(preset: str) -> list[dict]:
    """The exact maps' configurations: ``sd_generalization``'s rows, then ``exact_extra``.

    Each row of ``sd_generalization`` (``K, n, c, d, lam, eta, rounds, points``) becomes one map
    over ``N/p`` in ``{0} +`` its dimensions' ratios (``0``: the block limit), so both figures
    draw, and compute once, the same predictions; ``exact_extra`` adds maps of this figure only.
    """
    out = []
    for row in sdg.PRESETS[preset]["rows"]:
        dims = sdg.dims_of(row)
        big_n = row["n_classes"] * row["per_class"]
        out.append(row | {"ratios": tuple([0.0, *sorted(big_n / float(x) for x in dims)])})
    return out + [dict(cfg) for cfg in PRESETS[preset]["exact_extra"]]


def compute_exact_maps(preset: str) -> list[dict]:
    """Exact and linearised accuracies over ``(N/p, t)`` per configuration (module docs).

    Returns per configuration ``params``, ``ratios`` (R,), ``exact[field]`` and
    ``linear[field]`` (R, T+1), ``off[field]`` (bool, R x T+1: linearised > 0.03 from exact,
    False on refused rows) and ``refused`` (reason or None per ratio).
    """
    maps = []
    for cfg in exact_map_configs(preset):
        k, n, c, d = (cfg[x] for x in ("n_classes", "per_class", "c", "d"))
        lam, rounds = cfg["lam"], cfg["rounds"]
        counts = exact_counts(transition_matrix("sym", k, cfg["eta"]), n)
        exact, linear, refused = {f: [] for f in EXACT_FIELDS}, {f: [] for f in EXACT_FIELDS}, []
        for ratio in cfg["ratios"]:
            dim = math.inf if ratio == 0 else int(round(k * n / ratio))
            model = MixtureModel(k, n, dim, c, d)
            ex = exact_accuracies(model, counts, lam, rounds, points=cfg["points"])
            lin = linear_prediction(model, counts, lam, rounds)
            refused.append(refusal(lam, ratio))
            for f in EXACT_FIELDS:
                exact[f].append(ex.get(f))
                linear[f].append(np.asarray(getattr(lin, f), dtype=float))
        ok = np.array([r is None for r in refused])[:, None]
        exact = {f: np.array(v) for f, v in exact.items()}
        linear = {f: np.array(v) for f, v in linear.items()}
        maps.append(
            dict(
                params=cfg,
                ratios=np.asarray(cfg["ratios"], dtype=float),
                exact=exact,
                linear=linear,
                off={f: linearised_off(linear[f], exact[f]) & ok for f in EXACT_FIELDS},
                refused=refused,
            )
        )
    return maps


def compute(preset: str = "quick", seed: int = 0, workers: int = 1) -> dict:
    p = PRESETS[preset]
    k, n, c, d, rounds = (p[x] for x in ("n_classes", "per_class", "c", "d", "rounds"))
    big_n = k * n
    transition = transition_matrix("sym", k, p["eta"])
    counts = exact_counts(transition, n)
    preds = {}  # one prediction per (lam, N/p), shared by the heat maps and the best rounds
    for lam in sorted(set(p["lams"]) | set(p["best_lams"])):
        for ratio in p["ratios"]:
            dim = math.inf if ratio == 0 else max(k, int(round(big_n / ratio)))
            # Directly, not theory.spec.predict(spec, 'finite'): population_rounds needs the
            # prediction itself, and the maps keep the values where predict would refuse.
            preds[lam, ratio] = predict_finite(MixtureModel(k, n, dim, c, d), counts, lam, rounds)
    maps = {}
    for lam in p["lams"]:
        rows = [preds[lam, ratio] for ratio in p["ratios"]]
        maps[lam] = {
            "ratios": np.asarray(p["ratios"], dtype=float),
            "dims": np.array([r.model.dim for r in rows], dtype=float),
            "population_acc": np.array([r.population_acc for r in rows]),
            "train_acc_mislabeled": np.array([r.train_acc_mislabeled for r in rows]),
        }
    best = {}
    for lam in p["best_lams"]:
        best[lam] = []
        for ratio in p["ratios"]:
            if refusal(lam, ratio) is not None:  # the linearised theory is refused: no value
                best[lam].append((None, None, math.nan))
                continue
            r = population_rounds(preds[lam, ratio], p["delta"])
            best[lam].append((r.best_round, r.first_round_above, r.gain))
    # Monte Carlo check at a few (N/p, t) points of the first heat map
    lam = p["lams"][0]
    samples, theory, labels = [], [], []
    for ratio, t in p["checks"]:
        dim = int(round(big_n / ratio))
        # Rounds 0..t only: a trial's round-t values do not depend on later rounds (the closed
        # form per round on the same sampled Gram matrix and labels), so this is the same number
        # as a trial of R rounds, at a fraction of the cost.
        # In this process (workers=1): a few cheap trials per point.
        spec = figure_spec(p, lam=lam, rounds=t, dim=dim)
        mc = simulate_figure([spec], p["trials"], seed, 1, None, backend="linearised")
        samples.append(sample_columns(mc, ["pop_acc"])["pop_acc"][:, 0, t])
        i = list(p["ratios"]).index(ratio)
        theory.append(maps[lam]["population_acc"][i, t])
        labels.append(f"pop_acc N/p={ratio:g} t={t} lam={lam:g}")
    check = check_mc_agreement(
        np.column_stack(samples),
        np.array(theory),
        labels=labels,
        what="finite_phase: linearised Monte Carlo vs finite-p theory",
        theory_atol=FINITE_THEORY_ATOL,
    )
    return dict(
        params=p,
        maps=maps,
        best=best,
        check=check,
        checks=p["checks"],
        mc_means=check["mean"],
        big_n=big_n,
        exact_maps=compute_exact_maps(preset),
    )


def table(data: dict) -> list[dict]:
    """Heat-map cells of the linearised theory (kind "map"), best rounds (kind "best") and the
    exact maps' cells (kind "exact", with the linearised value at the same point, its flag and
    whether it is refused); NaN / empty where not applicable."""
    p = data["params"]
    nan = math.nan
    blank = dict(
        linear_population_acc=nan,
        linear_mislabeled_acc=nan,
        linearised_off_population=None,
        linearised_off_mislabeled=None,
        linearised_refused=None,
    )
    rows = []
    for lam, m in data["maps"].items():
        for i, ratio in enumerate(m["ratios"]):
            for t in range(p["rounds"] + 1):
                rows.append(
                    dict(
                        kind="map",
                        n_classes=p["n_classes"],
                        per_class=p["per_class"],
                        lam=float(lam),
                        ratio=float(ratio),
                        dim=float(m["dims"][i]),
                        round=t,
                        population_acc=float(m["population_acc"][i, t]),
                        mislabeled_acc=float(m["train_acc_mislabeled"][i, t]),
                        best_round=nan,
                        first_round_above=nan,
                        gain=nan,
                        **blank,
                    )
                )
    for lam, best in data["best"].items():
        for ratio, (b, first, gain) in zip(p["ratios"], best, strict=True):
            rows.append(
                dict(
                    kind="best",
                    n_classes=p["n_classes"],
                    per_class=p["per_class"],
                    lam=float(lam),
                    ratio=float(ratio),
                    dim=nan,
                    round=nan,
                    population_acc=nan,
                    mislabeled_acc=nan,
                    best_round=nan if b is None else float(b),
                    first_round_above=nan if first is None else float(first),
                    gain=float(gain),
                    **blank,
                )
            )
    for m in data["exact_maps"]:
        cfg = m["params"]
        big_n = cfg["n_classes"] * cfg["per_class"]
        pop, mis = EXACT_FIELDS
        for i, ratio in enumerate(m["ratios"]):
            for t in range(cfg["rounds"] + 1):
                rows.append(
                    dict(
                        kind="exact",
                        n_classes=cfg["n_classes"],
                        per_class=cfg["per_class"],
                        lam=float(cfg["lam"]),
                        ratio=float(ratio),
                        dim=math.inf if ratio == 0 else float(round(big_n / ratio)),
                        round=t,
                        population_acc=float(m["exact"][pop][i, t]),
                        mislabeled_acc=float(m["exact"][mis][i, t]),
                        best_round=nan,
                        first_round_above=nan,
                        gain=nan,
                        linear_population_acc=float(m["linear"][pop][i, t]),
                        linear_mislabeled_acc=float(m["linear"][mis][i, t]),
                        linearised_off_population=bool(m["off"][pop][i, t]),
                        linearised_off_mislabeled=bool(m["off"][mis][i, t]),
                        linearised_refused=m["refused"][i] is not None,
                    )
                )
    return rows


@figure_run(NAME)
def run(*, preset: str = "quick", out=None, seed: int = 0, workers: int = 1) -> int:
    out = prepare_output(out)
    data = compute(preset, seed, workers)
    flagged = [
        f"K={m['params']['n_classes']}, λ={m['params']['lam']:g}: "
        f"{int(sum(m['off'][f].sum() for f in EXACT_FIELDS))} of "
        f"{int(sum(m['off'][f].size for f in EXACT_FIELDS))}"
        for m in data["exact_maps"]
    ]
    log(
        f"  {NAME}: linearised Monte Carlo agrees with the finite-p theory "
        f"({data['check']['n_comparisons']} comparisons); exact-map cells where the linearised "
        f"theory is > {LINEARISED_TOL:g} from the exact one: {'; '.join(flagged)}"
    )
    style.save_figure(plot(data), out, NAME, **style.preset_save(preset))
    style.write_csv(table(data), out, NAME)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv, "Finite-p phase diagram over (N/p, t)", PRESETS, module=__spec__.name)
    return run(preset=args.preset, out=args.out, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
