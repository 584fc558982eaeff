r"""One spec and one result type for the theory and the Monte Carlo (issue 23, item 2).

A :class:`Spec` names one experiment: the model (``K, n, c, d``), the noise (a noise model and
rate, or an explicit count matrix), ``lam``, the last round ``R``, the dimension (``p`` or
``inf`` for the block limit) and the method (``'sd'`` or a PLL student ``'pll-<loss>'``).
:func:`predict` turns it into a :class:`Result` from the theory; the Monte Carlo counterpart is
:func:`simulations.monte_carlo.simulate`, which returns the same type with a mean, a standard error
and a 95% interval per round and metric. Analytic and sampled numbers therefore sit behind one
interface (as in neural-tangents' ``predict`` / ``empirical`` pair)::

    from theory.spec import Spec, predict
    from simulations.monte_carlo import simulate

    spec = Spec(n_classes=4, per_class=25, lam=1e-3, rounds=3, eta=0.5, dim=200)
    theory = predict(spec)             # exact finite-ratio theory (docs/theory.md §16)
    mc = simulate(spec, trials=8)      # certified exact SD, 8 trials
    theory.value("pop_acc"), mc.value("pop_acc"), mc.stderr("pop_acc")

Theories (``source``)
---------------------
=================  ==========  ===========================================================
source             dimension   what
=================  ==========  ===========================================================
``'exact'``        ``inf``     exact cross-entropy SD in the block limit (§4–§5)
``'linear'``       ``inf``     the label-averaging closed form (§2)
``'finite_exact'`` finite      exact finite-ratio theory, cross-entropy, every round (§16)
``'finite'``       finite      linearised finite-p theory (§11)
=================  ==========  ===========================================================

``source='auto'`` picks the exact theory of the spec's dimension. PLL students (``R = 1``: round
0 is the teacher, round 1 the student) exist in the block limit for the losses of
:data:`theory.names.THEORY_LOSSES`, and at finite ``p`` for ``'pll-ce'`` (``'finite_exact'``
only). Anything else raises a ``ValueError`` that names the valid choices.

The result type lives in :mod:`theory.result` (re-exported here). Metrics use the simulations'
spelling (:data:`METRICS`: ``pop_acc``, not ``population_acc``;
:data:`theory.names.THEORY_FIELDS` is the map). Pure: no RNG, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from theory.gram import check_block_params, check_mixture_params
from theory.names import (
    DEFAULT_Q,
    METHOD_LOSS,
    METHODS,
    MODEL_DEFAULTS,
    THEORY_FIELDS,
    THEORY_LOSSES,
)
from theory.noise import (
    NOISE_KINDS,
    check_eta,
    check_groups,
    check_transition,
    exact_counts,
    transition_matrix,
)
from theory.partial_labels import check_pll_classes
from theory.result import METRICS, Result
from theory.validation import check_int, check_lam, check_positive, is_real_number

__all__ = ["METRICS", "SAMPLINGS", "SOURCES", "Result", "Spec", "predict"]

#: Theories :func:`predict` can use; ``'monte_carlo'``, ``'linearised_monte_carlo'`` and
#: ``'kernel_monte_carlo'`` are the sources of :func:`simulations.monte_carlo.simulate`.
SOURCES = ("exact", "linear", "finite_exact", "finite")
#: Noise models (superclass noise needs ``groups``, or ``n_groups`` found per trial).
THEORY_NOISE = NOISE_KINDS
#: How noisy labels are drawn (:func:`simulations.noise.sample_noisy_labels`): exact counts
#: realise ``exact_counts(T, n)`` in every trial; random draws give a count matrix per trial.
SAMPLINGS = ("exact-count", "random")


def _matrix(value, name: str, k: int, dtype=None) -> np.ndarray:
    """``value`` as an array; a ragged or non-numeric one is a ``ValueError`` naming ``name``."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a ({k}, {k}) matrix of numbers, got {value!r}") from None
    if arr.dtype == object:
        raise ValueError(f"{name} must be a ({k}, {k}) matrix of numbers, got {value!r}")
    return arr


@dataclass(frozen=True)
class Spec:
    """One experiment, for :func:`predict` and :func:`simulations.monte_carlo.simulate`.

    Attributes
    ----------
    n_classes, per_class : int
        ``K >= 2`` classes of ``n >= 1`` training points.
    c, d : float
        Within- and across-class inner products of the block model (``c``, ``d`` of the
        Gaussian mixture at finite ``p``).
    lam : float
        Regularisation in ``[1e-12, 1e12]``.
    rounds : int
        Last SD round ``R >= 0`` (normalised to 1 for a PLL student: round 0 is the teacher).
    noise : {'sym', 'pair', 'asym', 'superclass'}
        Noise model; the count matrix is ``exact_counts(transition_matrix(noise, K, eta), n)``,
        which the Monte Carlo reproduces with ``sampling='exact-count'``. Superclass noise needs
        ``groups`` or ``n_groups``.
    eta : float
        Noise rate in ``[0, 1]``.
    counts : tuple of tuples of int, optional
        An explicit count matrix ``C[k, l]`` (rows sum to ``n``); overrides ``noise``/``eta``
        (theory only: the Monte Carlo samples labels from a noise model).
    transition : tuple of tuples of float, optional
        An arbitrary row-stochastic ``(K, K)`` matrix ``T[k, l]`` (validated by
        :func:`theory.noise.check_transition`); overrides ``noise``/``eta`` for the theory
        (``counts = exact_counts(T, n)``) and for the Monte Carlo's label sampling. Exclusive
        with ``counts``.
    sampling : {'exact-count', 'random'}
        How the Monte Carlo draws noisy labels. ``'random'`` draws a count matrix per trial, so
        the spec has no fixed count matrix (:attr:`fixed_counts` is False): the theory is then
        asked per realised matrix, ``predict(replace(spec, counts=C))``.
    groups : tuple of tuples of int, optional
        Superclass partition of ``range(K)`` (``noise='superclass'`` only).
    n_groups : int, optional
        Superclass noise with ``n_groups`` groups in ``[1, K]`` found by clustering each trial's
        sampled class means (finite ``dim``; the Monte Carlo's exact backend only): no fixed
        count matrix. Exclusive with ``groups``.
    dim : float
        Feature dimension ``p >= K`` of the Gaussian mixture (whose class means need
        ``0 <= c`` and ``c + (K - 1) d >= 0``; the finite-p theories need ``p > K``), or
        ``math.inf`` (default) for the block limit.
    method : str
        ``'sd'`` or a PLL student of :data:`theory.names.METHODS`.
    q : float
        GCE exponent in ``(0, 1]`` (``'pll-gce'`` only).
    """

    n_classes: int = MODEL_DEFAULTS["n_classes"]
    per_class: int = MODEL_DEFAULTS["per_class"]
    c: float = MODEL_DEFAULTS["c"]
    d: float = MODEL_DEFAULTS["d"]
    lam: float = MODEL_DEFAULTS["lam"]
    rounds: int = MODEL_DEFAULTS["rounds"]
    noise: str = MODEL_DEFAULTS["noise"]
    eta: float = MODEL_DEFAULTS["eta"]
    counts: tuple | None = None
    dim: float = math.inf
    method: str = "sd"
    q: float = DEFAULT_Q
    transition: tuple | None = None
    sampling: str = "exact-count"
    groups: tuple | None = None
    n_groups: int | None = None

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise once
        # Numbers only: a bool or a string is refused, not converted (eta=True is not 1.0).
        for name in ("c", "d", "eta", "dim", "q"):
            value = getattr(self, name)
            if not is_real_number(value):
                what = "a real number"
                if name == "dim":
                    what = "an integer or math.inf (the block limit)"
                raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
        # K >= 2, n >= 1, N <= 2^53, finite c <= 1, d, and a PSD block Gram matrix
        k, n, c, d = check_block_params(self.n_classes, self.per_class, self.c, self.d)
        set_(self, "n_classes", k)
        set_(self, "per_class", n)
        set_(self, "c", c)
        set_(self, "d", d)
        set_(self, "lam", check_lam(self.lam, "lam"))
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method != "sd":
            check_pll_classes(self.method, k)  # top-2 candidates need K >= 3
        rounds = check_int(self.rounds, "rounds", 0)
        set_(self, "rounds", 1 if self.method != "sd" else rounds)
        if self.noise not in THEORY_NOISE:
            raise ValueError(f"noise must be one of {THEORY_NOISE}, got {self.noise!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        set_(self, "eta", check_eta(self.eta))
        if self.counts is not None:
            cnt = _matrix(self.counts, "counts", k)
            if cnt.shape != (k, k) or not np.issubdtype(cnt.dtype, np.integer):
                raise ValueError(f"counts must be a ({k}, {k}) matrix of integers")
            if np.any(cnt < 0) or np.any(cnt.sum(axis=1) != n):
                raise ValueError(f"counts must be >= 0 with every row summing to per_class={n}")
            set_(self, "counts", tuple(tuple(int(v) for v in row) for row in cnt))
        if self.transition is not None:
            if self.counts is not None:
                raise ValueError("pass counts or transition, not both (counts are exact)")
            tr = check_transition(_matrix(self.transition, "transition", k, float), "transition")
            if tr.shape != (k, k):
                raise ValueError(f"transition must be a ({k}, {k}) matrix, got shape {tr.shape}")
            set_(self, "transition", tuple(tuple(float(v) for v in row) for row in tr))
        dim = float(self.dim)
        if not (math.isinf(dim) and dim > 0):
            # p = K is a valid mixture to simulate; the finite-p theories need p > K and say so
            if not math.isfinite(dim) or dim != int(dim) or dim < k:
                raise ValueError(
                    f"dim must be an integer >= n_classes={k}, or math.inf, got {self.dim!r}"
                )
            dim = int(dim)
            check_mixture_params(k, dim, c, d)  # a mixture needs class means: 0 <= c, ...
        set_(self, "dim", dim)
        self._check_groups(k)
        q = check_positive(self.q, "q")
        if q > 1:
            raise ValueError(f"q must lie in (0, 1], got {self.q!r}")
        set_(self, "q", q)

    def _check_groups(self, k: int) -> None:
        set_ = object.__setattr__
        if self.noise != "superclass":
            if self.groups is not None or self.n_groups is not None:
                raise ValueError("groups / n_groups are only used with noise='superclass'")
            return
        if self.groups is not None and self.n_groups is not None:
            raise ValueError("pass either groups or n_groups for superclass noise, not both")
        if self.groups is not None:
            set_(self, "groups", tuple(tuple(g) for g in check_groups(self.groups, k)))
        elif self.n_groups is not None:
            g = check_int(self.n_groups, "n_groups", 1)
            if g > k:
                raise ValueError(f"n_groups must lie in [1, n_classes={k}], got {g}")
            if not self.finite:
                raise ValueError(
                    "n_groups clusters sampled class means: it needs a finite dim; pass groups"
                )
            set_(self, "n_groups", g)
        elif self.counts is None and self.transition is None:
            raise ValueError(
                "superclass noise needs groups (a partition) or n_groups (or counts / transition)"
            )

    @property
    def fixed_counts(self) -> bool:
        """Whether every trial realises one count matrix, :meth:`count_matrix`: explicit
        ``counts``, or exact-count sampling of a fixed transition matrix (not ``n_groups``)."""
        if self.counts is not None:
            return True
        return self.sampling == "exact-count" and (self.transition is not None or not self.n_groups)

    @property
    def finite(self) -> bool:
        """Whether the dimension is finite (``p < inf``)."""
        return not math.isinf(self.dim)

    def count_matrix(self) -> np.ndarray:
        """``C[k, l]``: training points of true class ``k`` with given label ``l``, shape (K, K)."""
        if self.counts is not None:
            return np.array(self.counts, dtype=np.int64)
        if not self.fixed_counts:
            why = "sampling='random'" if self.sampling == "random" else "n_groups clustering"
            raise ValueError(
                f"this spec has no fixed count matrix ({why} draws one per trial): pass "
                "counts=C, e.g. a trial's realised matrix simulate(spec, ..., "
                "keep_trials=True).counts[i]"
            )
        return exact_counts(self.transition_matrix(), self.per_class)

    def transition_matrix(self) -> np.ndarray:
        """``T[k, l]``, shape (K, K): ``transition`` if given, else the noise model's matrix."""
        if self.transition is not None:
            return np.array(self.transition, dtype=float)
        if self.noise == "superclass" and self.groups is None:
            raise ValueError(
                "superclass noise without groups has no fixed transition matrix (n_groups: "
                "the groups are found per trial; counts: pass transition or groups)"
            )
        return transition_matrix(self.noise, self.n_classes, self.eta, groups=self.groups)

    def to_dict(self) -> dict:
        """JSON-compatible dict (``dim`` is ``None`` for the block limit)."""
        out = asdict(self)
        out["dim"] = None if not self.finite else int(self.dim)
        for name in ("counts", "transition", "groups"):
            if getattr(self, name) is not None:
                out[name] = [list(row) for row in getattr(self, name)]
        return out

    @classmethod
    def from_dict(cls, params: dict) -> Spec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"unknown spec parameter(s) {unknown}; valid: {sorted(names)}")
        params = dict(params)
        if params.get("dim") is None:
            params["dim"] = math.inf
        for name in ("counts", "transition", "groups"):
            if params.get(name) is not None:
                params[name] = tuple(tuple(row) for row in params[name])
        return cls(**params)


def _table(pred, rows=None) -> np.ndarray:
    """``(R + 1, len(METRICS))`` from a prediction object's accuracy arrays."""
    cols = [np.asarray(getattr(pred, THEORY_FIELDS[m]), dtype=float) for m in METRICS]
    table = np.column_stack(cols)
    return table if rows is None else table[rows]


def _auto_source(spec: Spec, source: str) -> str:
    if source == "auto":
        return "finite_exact" if spec.finite else "exact"
    if source not in SOURCES:
        raise ValueError(f"source must be 'auto' or one of {SOURCES}, got {source!r}")
    finite_sources = ("finite_exact", "finite")
    if spec.finite != (source in finite_sources):
        where = "a finite dim" if spec.finite else "dim = inf (the block limit)"
        valid = finite_sources if spec.finite else ("exact", "linear")
        raise ValueError(f"source {source!r} does not apply to {where}; use one of {valid}")
    return source


def _check_teacher(spec, source, counts, teacher) -> None:
    """``teacher`` is an SD result of ``spec``'s model, counts and ``lam`` from ``source``."""
    if spec.method == "sd" or spec.finite:
        raise ValueError("teacher applies to a PLL spec in the block limit (dim = inf) only")
    if not isinstance(teacher, Result) or teacher.source != source:
        raise ValueError(f"teacher must be a Result of source {source!r}")
    t = teacher.spec
    same = (t.n_classes, t.per_class, t.c, t.d, t.lam, t.dim) == (
        spec.n_classes,
        spec.per_class,
        spec.c,
        spec.d,
        spec.lam,
        spec.dim,
    )
    if t.method != "sd" or not same or not np.array_equal(t.count_matrix(), counts):
        raise ValueError(
            "teacher must be the 'sd' result of the same n_classes, per_class, c, d, lam, dim "
            "and count matrix as spec"
        )
    if source == "exact" and getattr(teacher.prediction, "teacher", None) is None:
        raise ValueError("teacher must carry its prediction (predict(..., 'exact') of the SD spec)")


def predict(
    spec: Spec,
    source: str = "auto",
    *,
    points: int | None = None,
    allow_unconverged: bool = False,
    allow_refused: bool = False,
    progress=None,
    teacher: Result | None = None,
) -> Result:
    r"""The theory's accuracies for ``spec``, rounds ``0..R``.

    Parameters
    ----------
    spec : Spec
    source : {'auto', 'exact', 'linear', 'finite_exact', 'finite'}
        Which theory (module docstring); ``'auto'``: ``'exact'`` for ``dim = inf``,
        ``'finite_exact'`` otherwise.
    points : int, optional
        Quadrature points per shift of the exact finite-ratio theory (its default if omitted).
    allow_unconverged : bool, optional
        ``'exact'``: return rounds (and a PLL student's teacher) that missed their certificate
        instead of raising :class:`theory.groups.GroupConvergenceError`; ``prediction.converged``
        and ``prediction.residuals`` say which (a partial result, e.g. at ``lam <= 1e-7``). An
        exact PLL student is always returned, with a note where it is not certified.
    allow_refused : bool, optional
        ``'finite'``: compute the linearised finite-p theory even where its random-matrix part
        is known to fail (docs/theory.md §11.9); the reason is then the first note and
        ``extra['refused']``, and the values are not to be trusted (``theory predict`` prints
        none). Default: raise ``ValueError`` with the reason.
    progress : callable, optional
        Passed on to the theory: ``progress(t, solution)`` after every exact round
        (:func:`theory.groups.predict_exact`, ``'exact'``), ``progress(t)`` after every round of
        :func:`theory.finite_exact.predict_finite_exact` (``'finite_exact'``); unused otherwise.
    teacher : Result, optional
        PLL spec in the block limit: the self-distillation result of the same model, counts and
        ``lam`` from the same ``source`` (``method='sd'``, any ``rounds``), whose round 0 is the
        teacher (its row 0 and, for ``'exact'``, ``prediction.teacher``, the solution the
        student starts from): several students share one teacher solve. Every result carries
        the theory's own object in ``prediction`` (:class:`Result`).

    Returns
    -------
    Result
        ``values[t, j]`` = metric ``METRICS[j]`` after round ``t`` (``se``, ``ci95`` ``None``).
        ``notes`` carry the fixed point's convergence for ``'finite_exact'``, the measured
        validity of the linearised finite-p theory for ``'finite'`` (docs/theory.md §11.9,
        §16.7), and for a non-convex PLL student whether the group engine stopped at a saddle
        (the values are then the local minimum reached from it).

    Raises
    ------
    ValueError
        A source that does not apply to the spec (dimension, PLL loss), with the valid choices;
        a ``teacher`` that is not the spec's; ``'finite_exact'`` at ``c = d`` (coinciding class
        means) or ``dim > 1e7 N``.
    theory.groups.GroupConvergenceError
        ``'exact'`` rounds that miss their certificate (unless ``allow_unconverged``).
    theory.finite_exact.FixedPointNotConverged, theory.finite_exact.prox.ProxNotConverged
        ``'finite_exact'`` where its fixed point or a cavity prox does not converge (both
        ``RuntimeError``; measured at the bottom of the ``lam`` range: the PLL student at
        ``lam = 1e-12``, whose self-responses ~1e10 saturate every softmax).
    """
    if not isinstance(spec, Spec):
        raise ValueError(f"spec must be a theory.spec.Spec, got {type(spec).__name__}")
    source = _auto_source(spec, source)
    counts = spec.count_matrix()
    loss = METHOD_LOSS.get(spec.method)
    if teacher is not None:
        _check_teacher(spec, source, counts, teacher)
    if spec.finite:
        return _predict_finite(spec, source, counts, loss, points, allow_refused, progress)
    from theory.groups import BlockModel, predict_exact, predict_linear

    model = BlockModel(spec.n_classes, spec.per_class, spec.c, spec.d)

    def run(rounds):
        if source == "linear":
            return predict_linear(model, counts, spec.lam, rounds)
        return predict_exact(
            model, counts, spec.lam, rounds, allow_unconverged=allow_unconverged, progress=progress
        )

    if loss is None:
        pred = run(spec.rounds)
        return Result(spec, source, _table(pred), prediction=pred)
    if loss not in THEORY_LOSSES:
        raise ValueError(
            f"method {spec.method!r} has no group-level theory; theory covers the losses "
            f"{THEORY_LOSSES} (simulate it with simulations.monte_carlo.simulate)"
        )
    from theory.pll import predict_pll

    if teacher is None:
        pred = run(0)
        row0, solution = _table(pred), getattr(pred, "teacher", None)
    else:
        row0, solution = teacher.values[:1], getattr(teacher.prediction, "teacher", None)
    # The exact student starts from the exact teacher's solution (predict_exact solves round 0
    # with predict_pll's own call: the same floats, one teacher solve instead of two).
    student = predict_pll(
        model,
        counts,
        spec.lam,
        method=source,
        loss=loss,
        q=spec.q,
        allow_unconverged=True,
        teacher=solution,
    )
    notes = ()
    converged = getattr(student, "converged", None)  # None: the linear student has no solve
    if converged is not None and not bool(np.all(converged)):
        notes = ("the exact PLL student was not certified (see theory.pll.predict_pll)",)
    saddle = _saddle_note(student, loss)
    if saddle is not None:
        notes += (saddle,)
    values = np.vstack([row0, _table(student)])
    return Result(spec, source, values, notes=notes, prediction=student)


def _saddle_note(student, loss: str) -> str | None:
    """A note when the exact non-convex student's engine solve stopped at a saddle.

    The values then show the local minimum reached from the saddle
    (:func:`theory.group_descent.descend_to_minimum`), or nothing (NaN) if none was reached;
    a saddle's accuracies are never shown as the prediction.
    """
    descent = getattr(student, "descent", None)
    if descent is None or (not descent.saddles and not descent.status.startswith("saddle")):
        return None

    def accs(point):
        return f"train {point.label[0]:.3f}, pop {point.label[3]:.3f}"

    first = descent.saddles[0] if descent.saddles else descent.end
    head = f"exact theory for loss {loss}: the group engine stopped at a saddle ({accs(first)})"
    if descent.status.startswith("saddle"):
        return f"{head}; no local minimum reached ({descent.status}): not predicted"
    extra = " (ambiguous: the two sides of the saddle differ)" if descent.ambiguous else ""
    return f"{head}; shown is the local minimum reached from it ({accs(descent.end)}){extra}"


def _predict_finite(spec, source, counts, loss, points, allow_refused=False, progress=None):
    from theory.finite import MixtureModel

    model = MixtureModel(spec.n_classes, spec.per_class, spec.dim, spec.c, spec.d)
    ratio = spec.n_classes * spec.per_class / spec.dim
    if source == "finite_exact":
        from theory.finite_exact import predict_finite_exact
        from theory.finite_exact.report import exact_regime_notes

        if loss not in (None, "ce"):
            raise ValueError(
                f"method {spec.method!r}: the exact finite-ratio theory covers 'sd' and 'pll-ce' "
                "only (the candidate-set losses' per-point problem is not convex; docs §16.6)"
            )
        kw = {} if points is None else {"points": check_int(points, "points", 1)}
        # student='pll' returns rows [teacher, student] for R = 1 (spec.rounds is 1 for PLL)
        student = "sd" if loss is None else "pll"
        pred = predict_finite_exact(
            model, counts, spec.lam, spec.rounds, student=student, progress=progress, **kw
        )
        values = _table(pred)
        res = float(np.max(pred.residuals))
        notes = (
            f"fixed point converged={bool(pred.converged)} (max residual {res:.1e})",
            "quadrature error (train / population) "
            f"{float(np.max(pred.train_quadrature_err)):.1e} / "
            f"{float(np.max(pred.population_quadrature_err)):.1e}",
        ) + exact_regime_notes(spec.n_classes, spec.per_class, model.ratio)
        # pred.points counts the cavity-field samples per group (2 x 8 shifts x ``points``)
        extra = {
            "converged": bool(pred.converged),
            "max_residual": res,
            "samples_per_group": pred.points,
        }
        return Result(spec, source, values, notes=notes, extra=extra, prediction=pred)
    if loss is not None:
        raise ValueError(
            f"method {spec.method!r}: the linearised finite-p theory covers 'sd' only; use "
            "source='finite_exact' for 'pll-ce'"
        )
    from theory.finite import predict_finite
    from theory.finite_exact.report import linearised_regime, random_matrix_failure

    refused = random_matrix_failure(spec.lam, ratio)
    if refused is not None and not allow_refused:
        raise ValueError(refused)
    ok, why = linearised_regime(spec.n_classes, spec.lam, ratio)
    pred = predict_finite(model, counts, spec.lam, spec.rounds)
    notes, extra = (why,), {"validated_regime": ok}
    if refused is not None:
        notes, extra = (refused, why), extra | {"refused": refused}
    return Result(spec, source, _table(pred), notes=notes, extra=extra, prediction=pred)
