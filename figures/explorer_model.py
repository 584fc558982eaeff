r"""Pure computation behind the interactive regime explorer (matplotlib app and notebook).

Everything the explorer panels show is computed here from one parameter dict, so the matplotlib
window (:mod:`figures.explorer`) and the notebook (``notebooks/explore.ipynb``) share every line of
logic and differ only in their widgets.

Parameters, their defaults, presets and validation: :mod:`figures.explorer_params`
(re-exported here); the Monte Carlo: :mod:`figures.explorer_mc`, the phase diagram and its cache:
:mod:`figures.explorer_phase`, the exact finite-ratio theory's background job:
:mod:`figures.explorer_job` (likewise).

Model of the explorer (assumptions, named)
------------------------------------------
* Label noise is the *exact-count* realisation ``C = theory.noise.exact_counts(T, n)`` of the
  transition matrix ``T = theory.noise.transition_matrix(noise, K, eta)`` (largest-remainder rule),
  i.e. the theory is evaluated at the count matrix nearest to ``n T``.
* ``'superclass'`` noise uses the fixed partition of :func:`superclass_groups`: consecutive pairs
  ``{0, 1}, {2, 3}, ...`` (a trailing singleton keeps its labels when K is odd).
* The explorer requires ``c > d`` (classes more similar within than across). ``c <= d`` is a valid
  PSD Gram matrix for some ``n`` but has no class structure to average towards; it is reported as
  an invalid combination rather than plotted.
* Theory curves: linearised (:func:`theory.groups.predict_linear`) and exact
  (:func:`theory.groups.predict_exact`) group-level predictions; the PLL student
  (:func:`theory.pll.predict_pll`, both methods); eigen-weights
  ``a_j(t) = (mu_j / (mu_j + K lam N))^(t+1)`` (:func:`theory.averaging.eigen_weights`) for the
  three distinct block eigenvalues.
* Finite dimension (the ``N/p`` slider, ``n_over_p``; 0 = ``p = inf``, the block model): for
  ``n_over_p > 0`` the linearised curves (training accuracy of all and of the mislabeled points,
  population accuracy per round) are the finite-``p`` theory :func:`theory.finite.predict_finite`
  at ``p = round(N / n_over_p)`` (deterministic equivalents of the linearised dynamics on the
  Gaussian mixture's random Gram matrix), and the eigen-weight panel adds the Marchenko-Pastur
  bulk average (:attr:`theory.finite.FinitePrediction.bulk_weights`). The exact-softmax theory and
  the PLL student exist only for ``p = inf``: they stay, labelled ``p→∞``. The phase diagram stays
  the block model's. The finite theory (orbit path, explorer tolerance) costs ~15 ms at K = 3,
  ~50 ms at K = 10 and ~130 ms at K = 20 (R = 8, quiet 2-core machine), so it is computed only
  for ``K <= FINITE_MAX_CLASSES`` (a note in the window
  otherwise, and the block curves are shown) and cached per point (:func:`finite_prediction`).
  Points the mixture cannot realise (``p < K``, ``c + (K-1) d < 0``) give a note, not an error.
* Exact finite-ratio theory (``n_over_p > 0``): :func:`theory.finite_exact.predict_finite_exact`
  predicts exact self-distillation -- what the Monte Carlo simulates -- at ``p = round(N /
  n_over_p)``. It takes seconds (:data:`EXACT_POINTS` lattice points per shift, quadrature error
  ~1e-2), far above an update's budget, so :func:`compute_state` never computes it: it takes it
  from the shared cache of :mod:`figures.finite_theories` when there (keyed by every parameter),
  and otherwise says ``exact_status = 'pending'`` with the up-front estimate
  (:func:`theory.finite_exact.exact_resource_estimate`); the window computes it in the background
  (:class:`ExactFiniteJob`) and redraws when it is done. It is skipped, with a note saying why,
  for ``K > EXACT_MAX_CLASSES``, for ``p <= K`` (the theory needs ``p > K``) and when the
  estimate exceeds :data:`EXACT_MAX_SECONDS` (e.g. many rounds at ``K = 10``). When it is there,
  the solid ("exact") curves are the exact finite-ratio theory at ``p`` instead of the block
  model's ``p = inf`` curves.
* Where the linearised finite-p theory is flagged (:mod:`figures.finite_theories`): refused where
  its random-matrix part fails (:func:`theory.finite_exact.report.random_matrix_failure`; then the
  block model's linearised curves are shown, labelled ``p→∞``, with a note); a value more than
  ``LINEARISED_TOL = 0.03`` from the exact finite-ratio theory is flagged per round
  (``linear_off``); without the exact theory the measured regime map
  (:func:`theory.finite_exact.report.linearised_regime`: validated for ``lam >= 1e-2, K <= 4,
  N/p <= 1``)
  flags every round of a point outside it.
* Phase diagram: linearised training accuracy (w.r.t. the true labels) on :data:`PHASE_POINTS`
  values of ``eta`` (evenly spaced over the ``eta`` slider range) times rounds ``0..R``: the
  numbers of :func:`theory.groups.predict_linear` for every distinct count matrix on that grid,
  computed in one vectorised pass (:func:`theory.groups.linear_accuracy_grid`).
  It does not depend on the current ``eta`` and is cached (:class:`PhaseCache`), so dragging the
  ``eta`` slider never recomputes it; fewer rounds are a slice of a longer cached diagram.
* Monte Carlo: :class:`~figures.explorer_mc.MonteCarloRun`.

Small dense linear algebra (K^2 x K^2 systems) is run with single-threaded BLAS
(:func:`single_thread_blas`): multi-threaded OpenBLAS on a busy machine made a 100 x 100 solve
~1000x slower in measurements on the development machine (89 ms vs 0.08 ms).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np

from figures import finite_theories as ft
from figures.explorer_job import EXACT_POINTS, ExactFiniteJob, exact_inputs, job_key
from figures.explorer_mc import MonteCarloRun, MonteCarloSummary
from figures.explorer_params import (
    DEFAULT_PARAMS,
    MC_DEFAULTS,
    PARAM_SPECS,
    PRESETS,
    ParamSpec,
    normalise_params,
    superclass_groups,
    theory_dim,
)
from figures.explorer_phase import (
    PHASE_POINTS,
    PhaseCache,
    PhaseDiagram,
    compute_phase,
    noise_counts,
    phase_counts,
    truncate_phase,
)
from theory.averaging import eigen_weights
from theory.blas import single_thread_blas
from theory.conditions import eigen_ratio_rho, plurality_condition, window_linear
from theory.finite import FINITE_MAX_ROUNDS, MixtureModel, predict_finite
from theory.groups import (
    BlockModel,
    GroupConvergenceError,
    predict_exact,
    predict_linear,
)
from theory.pll import pll_condition, predict_pll

__all__ = [
    "DEFAULT_PARAMS",
    "EXACT_MAX_CLASSES",
    "EXACT_MAX_SECONDS",
    "EXACT_POINTS",
    "ExactFiniteJob",
    "FINITE_MAX_CLASSES",
    "MC_DEFAULTS",
    "PARAM_SPECS",
    "PHASE_POINTS",
    "PRESETS",
    "ExplorerState",
    "MonteCarloRun",
    "MonteCarloSummary",
    "ParamSpec",
    "PhaseCache",
    "PhaseDiagram",
    "compute_phase",
    "attach_finite_exact",
    "compute_state",
    "exact_inputs",
    "job_key",
    "describe",
    "finite_prediction",
    "noise_counts",
    "normalise_params",
    "phase_counts",
    "reliable_bulk_weights",
    "superclass_groups",
    "theory_dim",
    "truncate_phase",
]


#: Largest K for which the finite-p theory is computed on a slider move: a whole update then takes
#: ~0.15 s at K = 10 and ~0.3 s at K = 20, R = 8 (2-core machine under load; docs/explorer.md).
FINITE_MAX_CLASSES = 20
#: Largest K for which the exact finite-ratio theory is computed (its cost grows like K^3).
EXACT_MAX_CLASSES = 10
#: Largest up-front estimate (seconds, theory.finite_exact.exact_resource_estimate) for which the
#: window computes the exact finite-ratio theory in the background: K = 10 with R = 8 at 32
#: points is ~20 s on the 2-core development machine; beyond 60 s a slider position is rarely
#: kept that long.
EXACT_MAX_SECONDS = 60.0


#: Orthant quadrature target of the explorer's finite-p curves. The figures use the theory's
#: default (2e-3); on screen 1e-2 is invisible (the curves are drawn at ~1/300 of the axis) and
#: the orthant probabilities dominate a K = 20 update (measured: 1.6 of 2.1 s at 2e-3).
EXPLORER_ORTHANT_TOL = 1e-2


@functools.lru_cache(maxsize=32)
def _finite_cached(k, n, dim, c, d, counts, lam, rounds):
    counts = np.frombuffer(counts, dtype=np.int64).reshape(k, k)
    model = MixtureModel(k, n, dim, c, d)
    return predict_finite(model, counts, lam, rounds, abs_tol=EXPLORER_ORTHANT_TOL)


def finite_prediction(params: dict, counts):
    """:func:`theory.finite.predict_finite` at the explorer point (cached, LRU of 32 points).

    ``params`` normalised with ``n_over_p > 0``; ``ValueError`` if the mixture cannot realise the
    point (``p < K``, ``c + (K-1) d < 0``, ...).
    """
    dim = theory_dim(params)
    if dim is None:
        raise ValueError("n_over_p = 0 is the block model (p = inf): no finite-p theory")
    if dim == params["n_classes"]:
        # theory.finite divides by the bulk's p - K degrees of freedom (ZeroDivisionError at
        # p = K): refuse here with the reason, as for p < K.
        raise ValueError(f"p = K = {dim} leaves the bulk no dimension (p - K = 0); need p > K")
    key = np.ascontiguousarray(counts, dtype=np.int64).tobytes()
    return _finite_cached(
        params["n_classes"],
        params["per_class"],
        dim,
        params["c"],
        params["d"],
        key,
        params["lam"],
        params["rounds"],
    )


#: Relative round-off floor of :func:`theory.finite.bulk_eigen_weights`: its contour rule targets
#: a relative error of 1e-7 of the largest weight (:func:`theory.finite.contour_weights`), so
#: smaller weights are round-off (they even come out negative, e.g. K = 3, N/p = 0.25,
#: lam = 0.1 from round 12 on).
BULK_REL_FLOOR = 1e-7


def reliable_bulk_weights(weights) -> np.ndarray:
    """Bulk eigen-weights with the values below the round-off floor set to NaN (not drawn).

    A value is kept if it exceeds ``BULK_REL_FLOOR * max(weights)``; from the first one that
    does not, the weights of later rounds (which only decrease) are NaN too.
    """
    w = np.asarray(weights, dtype=float).copy()
    if w.size == 0:
        return w
    top = float(np.nanmax(np.abs(w)))
    bad = ~(w > BULK_REL_FLOOR * top)
    if bad.any():
        w[int(np.argmax(bad)) :] = np.nan
    return w


# --------------------------------------------------------------------------------------------
# the state shown by the panels


@dataclass
class ExplorerState:
    """Everything the explorer panels show at one parameter point.

    If ``error`` is set (invalid parameters) every other computed field is ``None``.

    Attributes
    ----------
    params : dict
        The (normalised, when valid) parameters.
    error : str or None
        Message for an invalid combination.
    notes : list of str
        Non-fatal problems (e.g. the exact theory did not converge) shown in the window.
    rounds : ndarray of int, shape (R + 1,)
    transition, counts : ndarray, shape (K, K)
    linear, exact : GroupPrediction
        Rounds ``0..R``; ``exact`` is ``None`` if its Newton solve failed (see ``notes``).
    pll_linear, pll_exact : GroupPrediction
        The PLL student (one row).
    eigenvalues : ndarray, shape (3,)
        ``(mu_1, mu_2, mu_3)``; multiplicities ``(1, K-1, N-K)`` in ``multiplicities``.
    weights : ndarray, shape (R + 1, 3)
        Eigen-weights ``a_j(t)``.
    finite : FinitePrediction or None
        The finite-``p`` theory (:func:`theory.finite.predict_finite`, rounds ``0..R``) at
        ``p = finite_dim``; ``None`` for ``n_over_p = 0`` or when unavailable (see ``notes``).
    finite_dim : int or None
        Its dimension (``None``: ``p = inf``).
    finite_refused : str or None
        Why the linearised finite-p theory is refused at this point (then ``finite`` is ``None``).
    finite_exact : figures.finite_theories.ExactAccuracies or None
        The exact finite-ratio theory at ``p = finite_dim`` (rounds ``0..R``), when computed.
    exact_status : str or None
        ``None`` (``p = inf``), ``'done'``, ``'pending'`` (affordable, not computed yet),
        ``'skipped'`` (too costly or ``K`` too large) or ``'unavailable'`` (the theory refuses
        the point, e.g. ``p <= K``, or its fixed point failed).
    exact_message : str
        What the window says about the exact finite-ratio theory (empty for ``p = inf``).
    exact_note : str
        The same, short (the note in the population panel; empty when it is drawn).
    exact_seconds : float
        Up-front estimate of its cost (0 when cached).
    linear_off : dict or None
        ``{'train', 'mis', 'pop'}`` -> bool array (R + 1,): linearised finite-p values flagged
        (more than 0.03 from the exact theory; without it, every round of a point outside the
        measured regime map).
    linear_off_reason : str
        ``'exact'`` (distance to the exact theory) or ``'regime'`` (the regime map).
    phase : PhaseDiagram
    conditions : dict
        ``rho``, ``plurality``, ``plurality_margin``, ``min_rounds`` (first round of 100%
        linearised training accuracy, None: never), ``window`` (``(first, last)`` rounds of 100%,
        ``last=None``: for ever; :func:`theory.conditions.window_linear`), ``pll_holds``,
        ``pll_sufficient``, ``pll_tied_classes`` (:func:`theory.pll.pll_condition`).
    seconds : float
        Wall time of :func:`compute_state`.
    """

    params: dict
    error: str | None = None
    notes: list = field(default_factory=list)
    rounds: np.ndarray | None = None
    transition: np.ndarray | None = None
    counts: np.ndarray | None = None
    linear: object = None
    exact: object = None
    pll_linear: object = None
    pll_exact: object = None
    eigenvalues: np.ndarray | None = None
    multiplicities: tuple | None = None
    weights: np.ndarray | None = None
    finite: object = None
    finite_dim: int | None = None
    finite_refused: str | None = None
    finite_exact: object = None
    exact_status: str | None = None
    exact_message: str = ""
    exact_note: str = ""
    exact_seconds: float = 0.0
    linear_off: dict | None = None
    linear_off_reason: str = ""
    phase: PhaseDiagram | None = None
    conditions: dict | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _plan_finite_exact(state: ExplorerState) -> None:
    """Set the exact theory's status: from the cache, pending (with its estimate) or skipped."""
    p, dim = state.params, state.finite_dim
    k = p["n_classes"]
    where = f"exact finite-p theory at p = {dim}"
    if k > EXACT_MAX_CLASSES:
        state.exact_status = "skipped"
        state.exact_message = (
            f"{where}: not computed for K > {EXACT_MAX_CLASSES} (cost ~K^3); solid: p = inf"
        )
        state.exact_note = f"exact finite-p theory: not computed for K > {EXACT_MAX_CLASSES}"
    elif dim <= k:
        state.exact_status = "unavailable"
        state.exact_message = f"{where}: unavailable (it needs p > K = {k})"
        state.exact_note = f"exact finite-p theory: unavailable (needs p > K = {k})"
    else:
        try:
            model, counts, lam, rounds = exact_inputs(p, state.counts)
        except ValueError as exc:
            state.exact_status = "unavailable"
            state.exact_message = f"{where}: unavailable ({exc})"
            state.exact_note = "exact finite-p theory: unavailable (see below)"
        else:
            if ft.is_cached(model, counts, lam, rounds, points=EXACT_POINTS):
                acc = ft.exact_accuracies(model, counts, lam, rounds, points=EXACT_POINTS)
                attach_finite_exact(state, acc)
            else:
                est = ft.exact_estimate(model, counts, lam, rounds, points=EXACT_POINTS)
                state.exact_seconds = est
                if est > EXACT_MAX_SECONDS:
                    state.exact_status = "skipped"
                    state.exact_message = (
                        f"{where}: not computed, ~{est:.0f} s > {EXACT_MAX_SECONDS:.0f} s "
                        f"(fewer rounds bring it in reach); solid: p = inf"
                    )
                    state.exact_note = (
                        f"exact finite-p theory: not computed (~{est:.0f} s > "
                        f"{EXACT_MAX_SECONDS:.0f} s)"
                    )
                else:
                    state.exact_status = "pending"
                    state.exact_message = f"{where}: not computed yet (~{max(est, 1):.0f} s)"
                    state.exact_note = (
                        f"exact finite-p theory: not computed yet (~{max(est, 1):.0f} s)"
                    )
    _flag_linear(state)


def attach_finite_exact(state: ExplorerState, acc) -> ExplorerState:
    """Put a computed exact finite-ratio prediction into ``state`` (status, message, flags)."""
    state.finite_exact = acc
    state.exact_status = "done"
    state.exact_seconds = 0.0
    err = float(np.max(acc.quadrature_err)) if acc.quadrature_err.size else 0.0
    state.exact_message = (
        f"exact finite-p theory at p = {state.finite_dim} (solid; quadrature error ≤ {err:.3f})"
    )
    state.exact_note = ""
    _flag_linear(state)
    return state


def _flag_linear(state: ExplorerState) -> None:
    """Flag the linearised finite-p values: distance to the exact theory, else the regime map."""
    fin = state.finite
    state.linear_off, state.linear_off_reason = None, ""
    if fin is None:
        return
    pairs = {
        "train": "train_acc",
        "mis": "train_acc_mislabeled",
        "pop": "population_acc",
    }
    if state.finite_exact is not None:
        state.linear_off = {
            key: ft.linearised_off(getattr(fin, f), state.finite_exact.get(f))
            for key, f in pairs.items()
        }
        state.linear_off_reason = "exact"
        return
    p = state.params
    validated, _ = ft.linearised_regime(p["n_classes"], p["lam"], fin.model.ratio)
    if not validated:
        r1 = len(fin.train_acc)
        state.linear_off = {key: np.ones(r1, dtype=bool) for key in pairs}
        state.linear_off_reason = "regime"


def compute_state(params=None, *, cache: PhaseCache | None = None) -> ExplorerState:
    """Compute every panel's data at ``params``; invalid parameters give ``state.error``.

    Only ``ValueError`` (invalid input, raised by the explorer or theory validation) becomes an
    error message; a non-converging exact solve becomes a note and ``exact=None``. Anything else
    is a bug and propagates.
    """
    start = time.perf_counter()
    raw = dict(DEFAULT_PARAMS) | dict(params or {})
    try:
        p = normalise_params(raw)
        model = BlockModel(p["n_classes"], p["per_class"], p["c"], p["d"])
        transition, counts = noise_counts(p["n_classes"], p["per_class"], p["noise"], p["eta"])
    except ValueError as exc:
        return ExplorerState(params=raw, error=str(exc), seconds=time.perf_counter() - start)
    state = ExplorerState(params=p, transition=transition, counts=counts)
    lam, r = p["lam"], p["rounds"]
    with single_thread_blas():
        state.rounds = np.arange(r + 1)
        state.linear = predict_linear(model, counts, lam, r)
        state.pll_linear = predict_pll(model, counts, lam, method="linear")
        try:
            state.exact = predict_exact(model, counts, lam, r)
        except GroupConvergenceError as exc:
            state.notes.append(f"exact theory unavailable: {exc}")
        try:
            state.pll_exact = predict_pll(model, counts, lam, method="exact")
        except GroupConvergenceError as exc:
            state.notes.append(f"exact PLL student unavailable: {exc}")
        state.eigenvalues = model.eigenvalues
        state.multiplicities = model.multiplicities
        state.weights = eigen_weights(model.eigenvalues, model.n_classes, lam, model.n_samples, r)
        state.phase = (cache or PhaseCache()).get(p, model)
        state.finite_dim = theory_dim(p)
        if state.finite_dim is not None:
            ratio = p["n_classes"] * p["per_class"] / state.finite_dim
            state.finite_refused = ft.refusal(lam, ratio)
            if p["n_classes"] > FINITE_MAX_CLASSES or r > FINITE_MAX_ROUNDS:
                state.notes.append(
                    f"finite-p theory only for K <= {FINITE_MAX_CLASSES} and R <= "
                    f"{FINITE_MAX_ROUNDS} here (its cost grows like K^4 and steeply in R): "
                    "showing the block model (p = inf)"
                )
            elif state.finite_refused is not None:
                state.notes.append(
                    f"linearised finite-p theory refused at N/p = {ratio:.3g} "
                    f"({ft.refusal_rule(lam, ratio)}); dashed: p = inf"
                )
            else:
                try:
                    state.finite = finite_prediction(p, counts)
                except ValueError as exc:  # e.g. p < K: the mixture cannot realise the point
                    state.notes.append(
                        f"finite-p theory unavailable at p = {state.finite_dim}: {exc}"
                    )
            _plan_finite_exact(state)
        holds, margin = plurality_condition(counts)
        # One call for both numbers: min_rounds_linear is the first round of this window and
        # collapse_window_linear its clip to 0..R (each would recompute the window, ~40 ms at K=10).
        window = window_linear(model, counts, lam)
        pll = pll_condition(model, counts, lam)
        state.conditions = {
            "rho": eigen_ratio_rho(model, lam),
            "plurality": holds,
            "plurality_margin": margin,
            "min_rounds": None if window is None else window[0],
            "window": window,
            "pll_holds": pll.holds,
            "pll_sufficient": pll.sufficient,
            "pll_tied_classes": pll.tied_classes,
        }
    state.seconds = time.perf_counter() - start
    return state


def describe(state: ExplorerState) -> str:
    """One-paragraph text summary of a state (shown in the window and the notebook)."""
    if not state.ok:
        return f"Invalid parameters: {state.error}"
    p, cond = state.params, state.conditions
    n_mis = int(state.counts.sum() - np.trace(state.counts))
    win = cond["window"]
    if win is None:
        full = "never"
    else:
        full = f"rounds {win[0]}.." + ("∞" if win[1] is None else str(win[1]))
    tied = cond["pll_tied_classes"]
    lines = [
        f"N = {p['n_classes'] * p['per_class']}, mislabeled = {n_mis}, "
        f"plurality {'holds' if cond['plurality'] else 'FAILS'} "
        f"(margin {cond['plurality_margin']:.3f}), rho = a2/a3 = {cond['rho']:.4g}",
        f"linearised SD: 100% train acc. {full}; linearised PLL student: "
        + ("100%" if cond["pll_holds"] else "< 100%"),
    ]
    if tied:  # its own line: the summary column must stay left of the legend (~78 characters)
        which = (
            f"all {p['n_classes']} classes"
            if len(tied) == p["n_classes"]
            else f"classes {', '.join(map(str, tied))}"
        )
        lines.append(f"  (PLL: whole-class candidate ties in {which})")
    if state.finite_dim is not None:
        lines[1] = lines[1].replace("linearised SD:", "linearised SD (p=∞):", 1)
    if state.finite is not None:
        fin = state.finite
        flag = ""
        if state.linear_off_reason == "exact" and any(v.any() for v in state.linear_off.values()):
            flag = " (×: > 0.03 off exact)"
        elif state.linear_off_reason == "regime":
            flag = " (×: outside its regime)"
        # short enough to stay left of the legend (the window's summary column is ~78 characters)
        lines += [
            f"finite p = {state.finite_dim} (N/p = {fin.model.ratio:.3g}), linearised, rounds "
            f"0 -> {fin.rounds}{flag}:",
            f"  train acc. {fin.train_acc[0]:.3f} -> {fin.train_acc[-1]:.3f}, population acc. "
            f"{fin.population_acc[0]:.3f} -> {fin.population_acc[-1]:.3f}",
        ]
    if state.finite_exact is not None:
        ex = state.finite_exact
        lines += [
            f"exact finite-p theory: train acc. {ex.train_acc[0]:.3f} -> {ex.train_acc[-1]:.3f}, "
            f"pop. acc. {ex.population_acc[0]:.3f} -> {ex.population_acc[-1]:.3f}"
        ]
    elif state.exact_message:
        lines.append(state.exact_message)
    return "\n".join(lines + list(state.notes))
