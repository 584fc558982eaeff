r"""scikit-learn estimator: self-distillation and the PLL student on your own features.

:class:`SelfDistillationClassifier` wraps the exact probe solver (:mod:`simulations.solver`,
:func:`simulations.distill.self_distill`) in the ``fit`` / ``predict`` interface, so that the
method can be grid-searched, cross-validated and put in a ``Pipeline``.

Model
-----
A linear softmax probe ``p(x) = softmax(W x)`` with ``W`` of shape (K, p) and no intercept, on
features ``x`` that are optionally centred with the training mean and L2-normalised
(``preprocess='center-l2'``). With one-hot targets ``Y`` (K, N) of the labels, the **teacher**
(round 0) minimises

.. math::  \frac1N \sum_i \mathrm{CE}\big(y_i, \mathrm{softmax}(W x_i)\big)
           + \frac{\lambda}{2} \lVert W \rVert_F^2 ,

exactly (certified KKT fixed point ``P = softmax((T - P) G / (lam N))``). Then

* ``method='sd'``: ``rounds`` self-distillation rounds, round ``t`` trained on the training outputs
  of round ``t - 1``; prediction uses the last round.
* ``method='pll-*'``: one PLL student trained on the teacher's top-2 candidate set ``S`` with the
  loss (:mod:`simulations.pll_losses`) ``'pll-ce'``: cross-entropy on the two-hot target (the
  theory's student, strongly convex); ``'pll-candidate'``: ``-log sum_{j in S} p_j``;
  ``'pll-gce'``: generalised cross-entropy of the set, ``(1 - (sum_{j in S} p_j)^q) / q``;
  ``'pll-gce-ref'``: the public reference code's form, the mean over the two candidates of
  ``(1 - p_j^q) / q``. The last three are not convex: the student starts from the teacher (as the
  reference code does) and its certificate says which stationary point was found. ``rounds`` is
  then 1 (predict with the student), 0 (the teacher alone) or ``'auto'``.

With ``rounds=0`` and ``preprocess=None`` the estimator is multinomial logistic regression without
intercept at ``C = 1 / (lam N)`` (for K = 2, scikit-learn's binary parametrisation with one weight
vector ``w = w_1 - w_0`` matches at ``C = 2 / (lam N)``: our optimum has ``w_0 = -w_1``, so
``(lam/2)(|w_0|^2 + |w_1|^2) = (lam/4)|w|^2``).

``rounds='auto'``
-----------------
The training data are split, per class and seeded by ``random_state``, into an inner training part
and a validation part holding ``round(val_fraction * n_k)`` samples of class ``k`` (at most
``n_k - 1``: every class keeps a training sample, so a class with a single sample is not
validated). The candidate rounds (``0..max_rounds`` for ``'sd'``; 0 = teacher and 1 = student for
``'pll-*'``) are fitted on the inner part and scored by validation accuracy, decided from logits
(a near-tie within ``theory.metrics.TIE_ATOL`` counts as an error). The best round (ties to fewer
rounds) is stored in ``n_rounds_`` with the scores in ``validation_accuracy_``, and the final model
is refit on **all** the training data with that number of rounds.

Cost: one eigendecomposition of ``X^T X`` (O(N p^2), or of ``X X^T`` when ``p > N``), then one
Newton-CG solve per round (O(N p K) per Hessian product); memory O(N p + min(N, p)^2), estimated
before allocating (:func:`simulations.memory.fit_memory_bytes`, checked by
:func:`selfdistill_cli.memory.check_memory`).

Layout (issue 23): the checks of the hyper-parameters and of raw features, and the
``'center-l2'`` map of new features, are :mod:`simulations.estimator_inputs` (re-exported here).
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from selfdistill_cli.limits import format_seconds
from simulations.datasets import preprocess
from simulations.distill import self_distill
from simulations.estimator_inputs import (
    InvalidParameterError,
    as_invalid_parameter,
    center_l2,
    check_raw_scale,
    check_real,
)
from simulations.features import as_generator
from simulations.memory import check_memory, fit_memory_bytes
from simulations.runtime import fit_seconds
from simulations.solver import factorize, log_softmax
from theory.metrics import accuracy
from theory.names import DEFAULT_Q, METHOD_LOSS
from theory.names import METHODS as NAMED_METHODS
from theory.partial_labels import check_pll_classes
from theory.validation import check_int, check_lam, check_positive

__all__ = [
    "METHODS",
    "PLL_LOSSES",
    "PREPROCESS",
    "SelfDistillationClassifier",
    "InvalidParameterError",
    "MAX_FIT_SECONDS",
    "fit_memory_bytes",
    "check_raw_scale",
    "fit_seconds",
    "validation_mask",
]

#: PLL method -> loss of :func:`simulations.pll_losses.train_pll_student` (module docstring;
#: :data:`theory.names.METHOD_LOSS`).
PLL_LOSSES = METHOD_LOSS
#: Accepted values of ``method`` (:data:`theory.names.METHODS`).
METHODS = NAMED_METHODS
#: Accepted values of ``preprocess``.
PREPROCESS = ("center-l2", "raw", None)


#: Longest estimated fit (seconds, :func:`simulations.runtime.fit_seconds`) that ``fit`` starts;
#: a longer one (e.g. ``rounds=10**6``) is refused at once instead of failing minutes later.
#: Raise it (module attribute) to allow longer fits.
MAX_FIT_SECONDS = 600.0


@dataclass(frozen=True, eq=False)
class _Stage:
    """One fitted model of the chain: weights (K, p), training outputs (K, N), certificate."""

    weights: np.ndarray
    outputs: np.ndarray
    certificate: object


def _train_pll_student(method: str, teacher, lam: float, *, q: float, tol: float) -> _Stage:
    """The PLL student of ``method`` (a key of :data:`PLL_LOSSES`) from the teacher.

    The only place that knows the PLL student API: :func:`simulations.pll_losses.train_pll_student`
    on the teacher's own factorisation and top-2 candidates, started from the teacher, certified
    (it raises :class:`simulations.solver.ConvergenceError` rather than return a point short of
    ``tol``; the certificate also says which kind of stationary point was found).
    """
    from simulations.pll_losses import train_pll_student

    student = train_pll_student(teacher, lam, loss=PLL_LOSSES[method], q=q, tol=tol)
    return _Stage(student.weights, student.outputs, student.certificate)


def validation_mask(labels, n_classes, val_fraction, rng) -> np.ndarray:
    """Stratified validation split of ``rounds='auto'``: a boolean mask of shape (N,).

    For class ``k`` with ``n_k`` samples, ``min(round(val_fraction n_k), n_k - 1)`` of them, drawn
    by ``rng.permutation``, are marked; every class keeps at least one unmarked sample.
    """
    y = np.asarray(labels)
    mask = np.zeros(y.size, dtype=bool)
    for cls in range(n_classes):
        members = rng.permutation(np.flatnonzero(y == cls))
        n_val = max(0, min(int(round(val_fraction * members.size)), members.size - 1))
        mask[members[:n_val]] = True
    return mask


class SelfDistillationClassifier(ClassifierMixin, BaseEstimator):
    r"""Linear softmax probe with exact self-distillation or a PLL student (module docstring).

    Parameters
    ----------
    lam : float, default=1e-3
        Regularisation in ``[1e-12, 1e12]`` (:func:`theory.validation.check_lam`, the range the
        solvers support) of ``(lam / 2) ||W||_F^2`` (the loss is the *mean* cross-entropy), the
        same in every round. ``C = 1 / (lam N)`` in ``LogisticRegression``. Like every
        hyper-parameter it must have the documented type: ``lam='0.1'`` or ``lam=True`` raise
        :class:`InvalidParameterError` (a ``ValueError`` and a ``TypeError``).
    rounds : int or 'auto', default=1
        ``method='sd'``: number of self-distillation rounds after the teacher (``>= 0``; 0 is the
        teacher alone; a fit estimated above :data:`MAX_FIT_SECONDS` or the available memory is
        refused before it starts). ``method='pll-*'``: 1 (the PLL student) or 0 (the teacher alone).
        ``'auto'``: chosen on an internal stratified validation split (module docstring).
    method : {'sd', 'pll-ce', 'pll-candidate', 'pll-gce', 'pll-gce-ref'}, default='sd'
        Self-distillation, or one PLL student on the teacher's top-2 labels with the given loss
        (module docstring).
        The PLL methods need ``K >= 3`` classes (with two classes the top-2 set is every class
        and the student learns nothing).
    q : float, default=0.7
        GCE exponent in ``(0, 1]`` (used by ``'pll-gce'`` and ``'pll-gce-ref'``; validated always).
    preprocess : {'center-l2', 'raw', None}, default='center-l2'
        ``'center-l2'``: subtract the mean of the training features (learnt in ``fit``, stored in
        ``mean_``) and L2-normalise every row, in ``fit`` and in every prediction; rows equal to
        the mean stay zero. ``'raw'`` or ``None``: use the features as given (what the reference
        code trains on).
    random_state : int >= 0, numpy Generator or SeedSequence, default=0
        Seeds the validation split of ``rounds='auto'`` (the only randomness; fits with integer
        rounds are deterministic). ``None`` is rejected: every draw is explicitly seeded.
    val_fraction : float, default=0.2
        Fraction in ``(0, 1)`` of each class held out for validation when ``rounds='auto'``.
    max_rounds : int, default=10
        Largest number of SD rounds considered by ``rounds='auto'`` (``>= 1``).
    store_outputs : bool, default=False
        Keep the training outputs of every round in ``outputs_``.
    warm_start : bool, default=False
        Keep the eigendecomposition of the preprocessed training features and the last teacher,
        and reuse them in the next ``fit`` when the preprocessed data are identical (compared
        exactly) and, for the teacher, ``lam``, ``tol`` and the labels too: refitting one
        instance with other ``lam``, ``rounds`` or ``method`` then skips repeated work. The
        fitted estimator then holds a copy of the training features.
    tol : float, default=1e-9
        Fixed-point residual certified by every exact solve
        (:func:`simulations.solver.solve_probe`).
    verbose : bool, default=False
        Print one line per fitted round to stderr.
    classes : array_like, optional
        All class labels (like ``OneHotEncoder(categories=...)``); default: the sorted distinct
        labels of ``y``. A class absent from ``y`` still gets a weight row, trained towards zero
        probability, exactly as one-hot targets over ``K`` classes in
        :func:`simulations.distill.self_distill` (e.g. when label noise has removed every label
        of a class). Every label of ``y`` must be listed.

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
        Class labels (any sortable labels: strings, non-contiguous integers).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Present when ``X`` had string column names.
    n_rounds_ : int
        Rounds after the teacher in the predicting model (the selection when ``rounds='auto'``);
        for PLL methods 1 means the student.
    stage_weights_ : ndarray, shape (n_rounds_ + 1, K, p)
        Weights of the teacher (index 0) and of every later round, on preprocessed features;
        rows follow ``classes_``.
    certificates_ : list, length n_rounds_ + 1
        Per round: the :class:`simulations.solver.Certificate` of the exact solve (KKT residual,
        gradient norm, bound on the distance to the optimum), or for a PLL student its
        :class:`simulations.pll_losses.PLLCertificate` (residual, second-order test,
        ``stationary_point``).
    converged_ : bool
        Every round reached its tolerance. The solvers raise
        :class:`simulations.solver.ConvergenceError` instead of returning an uncertified point, so
        this is True after a successful fit; a False value would also emit a
        ``ConvergenceWarning``.
    mean_ : ndarray, shape (p,)
        Training mean subtracted by ``preprocess='center-l2'``.
    outputs_ : ndarray, shape (n_rounds_ + 1, N, K)
        Training outputs of every round (only with ``store_outputs=True``).
    validation_accuracy_ : ndarray
        Validation accuracy of each candidate round (only with ``rounds='auto'``).

    Notes
    -----
    ``sample_weight`` is not supported (the solver and the theory use uniform weights), so ``fit``
    does not accept it. Sparse input is not supported (the solver is dense).
    """

    def __init__(
        self,
        *,
        lam=1e-3,
        rounds=1,
        method="sd",
        q=DEFAULT_Q,
        preprocess="center-l2",
        random_state=0,
        val_fraction=0.2,
        max_rounds=10,
        store_outputs=False,
        warm_start=False,
        tol=1e-9,
        verbose=False,
        classes=None,
    ):
        self.lam = lam
        self.rounds = rounds
        self.method = method
        self.q = q
        self.preprocess = preprocess
        self.random_state = random_state
        self.val_fraction = val_fraction
        self.max_rounds = max_rounds
        self.store_outputs = store_outputs
        self.warm_start = warm_start
        self.tol = tol
        self.verbose = verbose
        self.classes = classes

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # dense solver
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_label = False
        tags.classifier_tags.poor_score = False
        tags.target_tags.required = True
        tags.non_deterministic = False  # integer rounds: no randomness; 'auto': seeded
        return tags

    # ------------------------------------------------------------------ validation
    def _checked_params(self) -> dict:
        """All hyper-parameters validated; ``ValueError`` naming the parameter and its range."""
        if not (isinstance(self.method, str) and self.method in METHODS):
            raise InvalidParameterError(f"method must be one of {METHODS}, got {self.method!r}")
        if not (
            self.preprocess is None
            or (isinstance(self.preprocess, str) and self.preprocess in PREPROCESS)
        ):
            raise InvalidParameterError(
                f"preprocess must be 'center-l2', 'raw' or None, got {self.preprocess!r}"
            )
        lam = as_invalid_parameter(lambda: check_lam(check_real(self.lam, "lam"), "lam"))
        q = as_invalid_parameter(lambda: check_positive(check_real(self.q, "q"), "q"))
        if q > 1:
            raise InvalidParameterError(f"q must lie in (0, 1] (GCE exponent), got {self.q!r}")
        tol = as_invalid_parameter(lambda: check_positive(check_real(self.tol, "tol"), "tol"))
        pll = self.method != "sd"
        if isinstance(self.rounds, str):
            if self.rounds != "auto":
                raise InvalidParameterError(
                    f"rounds must be an integer >= 0 or 'auto', got {self.rounds!r}"
                )
            rounds = "auto"
        else:
            rounds = as_invalid_parameter(lambda: check_int(self.rounds, "rounds", 0))
            if pll and rounds > 1:
                raise InvalidParameterError(
                    f"rounds must be 0, 1 or 'auto' for method={self.method!r} (the teacher, then "
                    f"one PLL student), got {rounds}"
                )
        val_fraction = as_invalid_parameter(lambda: check_real(self.val_fraction, "val_fraction"))
        if not (0.0 < val_fraction < 1.0):
            raise InvalidParameterError(
                f"val_fraction must lie in (0, 1), got {self.val_fraction!r}"
            )
        max_rounds = as_invalid_parameter(lambda: check_int(self.max_rounds, "max_rounds", 1))
        for name in ("store_outputs", "warm_start", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidParameterError(
                    f"{name} must be True or False, got {getattr(self, name)!r}"
                )
        as_invalid_parameter(lambda: as_generator(self.random_state, "random_state"))
        return {
            "lam": lam,
            "q": q,
            "tol": tol,
            "rounds": rounds,
            "val_fraction": val_fraction,
            "max_rounds": max_rounds,
        }

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Fit the teacher and the requested rounds (or select them with ``rounds='auto'``).

        Parameters
        ----------
        X : array_like, shape (N, p)
            Training features (dense, finite).
        y : array_like, shape (N,)
            Class labels; at least two distinct classes (three for the PLL methods).

        Returns
        -------
        self
        """
        params = self._checked_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, y_idx = self._encode(y)
        k = classes.size
        if self.method != "sd":
            check_pll_classes(self.method, k)
        if self.preprocess in (None, "raw"):
            check_raw_scale(X, params["lam"])
        n, p = X.shape
        rounds = params["max_rounds"] if params["rounds"] == "auto" else params["rounds"]
        need = fit_memory_bytes(n, p, k, rounds, store_outputs=bool(self.store_outputs))
        check_memory(
            need,
            "the exact fit",
            message=lambda est, avail: (
                f"X of shape ({n}, {p}) with K={k} classes and {rounds} round(s) needs about "
                f"{est / 1e9:.1f} GB for the exact fit, more than the {avail / 1e9:.1f} GB of "
                "memory available; use fewer samples or rounds, or reduce the feature dimension"
            ),
        )
        seconds = fit_seconds(n, p, k, 2 * rounds if params["rounds"] == "auto" else rounds)
        if seconds > MAX_FIT_SECONDS:
            raise ValueError(
                f"X of shape ({n}, {p}) with K={k} classes and {rounds} round(s) would take "
                f"about {format_seconds(seconds)} to fit (estimate), above the limit of "
                f"{format_seconds(MAX_FIT_SECONDS)}; use fewer rounds, or raise "
                "simulations.estimator.MAX_FIT_SECONDS"
            )
        self.classes_ = classes
        for name in ("validation_accuracy_", "outputs_", "mean_"):
            if hasattr(self, name):
                delattr(self, name)
        if params["rounds"] == "auto":
            n_rounds, scores = self._select_rounds(X, y, y_idx, params)
            self.validation_accuracy_ = scores
        else:
            n_rounds = params["rounds"]
        stages = self._fit_stages(X, y_idx, k, n_rounds, params)
        self.n_rounds_ = n_rounds
        self.stage_weights_ = np.stack([s.weights for s in stages])
        self.certificates_ = [s.certificate for s in stages]
        self.converged_ = bool(all(c.converged for c in self.certificates_))
        if not self.converged_:
            warnings.warn(
                f"{self.method} student did not reach its tolerance (see certificates_); "
                "the fitted weights are a non-stationary point",
                ConvergenceWarning,
                stacklevel=2,
            )
        if self.store_outputs:
            self.outputs_ = np.stack([s.outputs.T for s in stages])
        return self

    def _encode(self, y):
        """Sorted classes (K,) and the index of every label of ``y`` among them (N,)."""
        if self.classes is None:
            classes, y_idx = np.unique(y, return_inverse=True)
            if classes.size < 2:
                raise ValueError(
                    f"y has 1 class ({classes[0]!r}); a classifier needs at least 2 classes "
                    "(one class present, nothing to learn)"
                )
            return classes, y_idx
        classes = np.unique(np.asarray(self.classes))
        if classes.ndim != 1 or classes.size < 2:
            raise ValueError(f"classes must list at least 2 distinct labels, got {self.classes!r}")
        try:
            y_idx = np.searchsorted(classes, y)
        except TypeError:
            raise ValueError("classes and y must hold labels of the same kind") from None
        pos = np.minimum(y_idx, classes.size - 1)
        missing = classes[pos] != y
        if np.any(missing):
            raise ValueError(
                f"classes must contain every label of y; missing {np.unique(y[missing])[:5]!r}"
            )
        return classes, y_idx

    def _preprocess_fit(self, X):
        if self.preprocess in (None, "raw"):
            return X
        pre = preprocess(X, np.arange(X.shape[0]))
        self.mean_ = pre.train_mean
        return pre.features

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"[SelfDistillationClassifier] {msg}", file=sys.stderr, flush=True)

    def _factor_and_teacher(self, x, y_idx, k, params):
        """Factorisation of ``x`` and the cached teacher, reused under ``warm_start`` only."""
        state = getattr(self, "_warm_state", None)
        if not self.warm_start:
            if state is not None:
                del self._warm_state
            return factorize(features=x), None
        same_x = (
            state is not None
            and state["factor"].features.shape == x.shape
            and np.array_equal(state["factor"].features, x)
        )
        if not same_x:
            state = {"factor": factorize(features=x), "teacher": None, "key": None}
            self._warm_state = state
        key = (params["lam"], params["tol"], k, y_idx.tobytes())
        teacher = state["teacher"] if state["key"] == key else None
        return state["factor"], teacher

    def _remember_teacher(self, teacher, y_idx, k, params):
        if self.warm_start:
            self._warm_state["teacher"] = teacher
            self._warm_state["key"] = (params["lam"], params["tol"], k, y_idx.tobytes())

    def _fit_stages(self, X, y_idx, k, n_rounds, params) -> list:
        """Teacher and ``n_rounds`` later rounds on (N, p) features ``X``; list of ``_Stage``."""
        start = time.perf_counter()
        x = self._preprocess_fit(X)
        factor, teacher = self._factor_and_teacher(x, y_idx, k, params)
        lam, tol = params["lam"], params["tol"]
        if self.method == "sd" and n_rounds > 0:
            sd = self_distill(y_idx, k, lam, n_rounds, factor=factor, tol=tol)
            sols = sd.solutions
            self._remember_teacher(sols[0], y_idx, k, params)
        else:
            if teacher is None:
                teacher = self_distill(y_idx, k, lam, 0, factor=factor, tol=tol).solutions[0]
                self._remember_teacher(teacher, y_idx, k, params)
            sols = [teacher]
        stages = [_Stage(s.weights, s.outputs, s.certificate) for s in sols]
        if self.method != "sd" and n_rounds == 1:
            stages.append(_train_pll_student(self.method, teacher, lam, q=params["q"], tol=tol))
        self._log(
            f"fitted {self.method} with {n_rounds} round(s) after the teacher on N={x.shape[0]}, "
            f"p={x.shape[1]}, K={k}, lam={lam:g} in {time.perf_counter() - start:.2f}s"
        )
        return stages

    def _select_rounds(self, X, y, y_idx, params):
        """Validation accuracy of every candidate round on a stratified split; best round."""
        rng = as_generator(self.random_state, "random_state")
        val_mask = validation_mask(y_idx, self.classes_.size, params["val_fraction"], rng)
        if not val_mask.any():
            counts = np.bincount(y_idx)
            raise ValueError(
                f"rounds='auto' needs a validation split, but val_fraction="
                f"{params['val_fraction']:g} of classes with {counts.min()}..{counts.max()} "
                "samples leaves it empty; use a larger val_fraction, more samples or an integer "
                "rounds"
            )
        top = params["max_rounds"] if self.method == "sd" else 1
        inner = clone(self).set_params(
            rounds=top, warm_start=False, store_outputs=False, verbose=self.verbose
        )
        inner.fit(X[~val_mask], y[~val_mask])
        y_val = y_idx[val_mask]
        scores = np.array(
            [accuracy(z, y_val) for z in inner._stage_logits(X[val_mask], check=False)]
        )
        best = int(np.argmax(scores))  # first maximum: ties go to fewer rounds
        self._log(f"rounds='auto': validation accuracy {np.round(scores, 4)}, chose {best}")
        return best, scores

    # ------------------------------------------------------------------ prediction
    def _transform(self, X, check=True):
        if check:
            check_is_fitted(self)
            X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.preprocess in (None, "raw"):
            return X
        return center_l2(X, self.mean_)

    def _stage_logits(self, X, check=True):
        """Logits (K, M) of every stage, teacher first (a generator)."""
        x = self._transform(X, check)
        for w in self.stage_weights_:
            yield w @ x.T

    def _logits(self, X):
        x = self._transform(X)
        return self.stage_weights_[-1] @ x.T

    @staticmethod
    def _decision(logits):
        """(M, K) logits, or the log-odds ``z_1 - z_0`` (M,) for two classes."""
        if logits.shape[0] == 2:
            return logits[1] - logits[0]
        return logits.T

    def decision_function(self, X):
        """Logits ``W x`` of the predicting model, shape (M, K); (M,) log-odds for K = 2."""
        return self._decision(self._logits(X))

    def predict_proba(self, X):
        """``softmax(W x)``, shape (M, K), columns in ``classes_`` order."""
        return np.exp(log_softmax(self._logits(X))).T

    def predict_log_proba(self, X):
        """``log softmax(W x)``, shape (M, K)."""
        return log_softmax(self._logits(X)).T

    def predict(self, X):
        """The class with the largest logit (ties to the first in ``classes_``), shape (M,)."""
        logits = self._logits(X)  # checks fitted-ness before classes_ is touched
        return self.classes_[np.argmax(logits, axis=0)]

    def logits(self, X):
        """Logits ``W x`` of the predicting model in the probe's layout, shape (K, M).

        Unlike :meth:`decision_function` also (K, M) for K = 2: decisions taken from these keep
        every digit of the gaps (outputs near ``1/K`` do not).
        """
        return self._logits(X)

    def staged_logits(self, X):
        """:meth:`logits` of the teacher and of every later round (a generator of (K, M))."""
        yield from self._stage_logits(X)

    def staged_decision_function(self, X):
        """Decision function of the teacher and of every later round (a generator)."""
        for z in self._stage_logits(X):
            yield self._decision(z)

    def staged_predict_proba(self, X):
        """``predict_proba`` of the teacher and of every later round (a generator of (M, K))."""
        for z in self._stage_logits(X):
            yield np.exp(log_softmax(z)).T

    def staged_predict(self, X):
        """``predict`` of the teacher and of every later round (a generator of (M,))."""
        for z in self._stage_logits(X):
            yield self.classes_[np.argmax(z, axis=0)]
