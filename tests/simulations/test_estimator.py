"""Tests of the scikit-learn estimator (simulations/estimator.py).

Reference computations: the exact solver called directly (``self_distill``, ``train_pll``,
``train_pll_gce``) and scikit-learn's ``LogisticRegression`` (round 0 without preprocessing).
"""

from __future__ import annotations

import copy
import functools
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from simulations import SelfDistillationClassifier
from simulations.datasets import load_digits_dataset, preprocess
from simulations.distill import self_distill, train_pll
from simulations.estimator import PLL_LOSSES, validation_mask
from simulations.pll_losses import train_pll_student
from simulations.solver import log_softmax
from tests.tolerances import assert_close, solve_agreement_tol
from theory.metrics import accuracy
from theory.validation import one_hot

#: Checks of ``check_estimator`` that fit two-class data. The PLL methods refuse K = 2 by design
#: (the top-2 candidate set of a two-class problem is every class: the student learns nothing),
#: so these must fail for them, with our ValueError; xfail_strict makes an unexpected pass fail,
#: and :func:`_with_raises` makes a failure of another kind fail.
_BINARY_CHECKS = (
    "check_estimators_dtypes",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_decision_proba_consistency",
    "check_fit2d_1feature",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
)


def _expected_failures(est):
    if est.method == "sd":
        return {}
    reason = "PLL methods need K >= 3 classes; this check fits two-class data (ValueError)"
    return dict.fromkeys(_BINARY_CHECKS, reason)


#: The exception each expected failure raises: our ValueError, except where the check wants a
#: ValueError in scikit-learn's own words (about the one feature) and reports ours as an
#: AssertionError.
_EXPECTED_RAISES = {
    **dict.fromkeys(_BINARY_CHECKS, ValueError),
    "check_fit2d_1feature": AssertionError,
}


def _check_name(check) -> str:
    return (check.func if isinstance(check, functools.partial) else check).__name__


def _with_raises(parametrize):
    """``parametrize_with_checks``'s parametrization with ``raises=`` on every strict xfail.

    scikit-learn's xfail marks name no exception, so any crash would pass as the expected
    failure; each one gets the exception of :data:`_EXPECTED_RAISES` instead.
    """
    argnames, argvalues = parametrize.args
    params = []
    for param in argvalues:
        marks = getattr(param, "marks", ())
        if not marks:
            params.append(param)
            continue
        (mark,) = marks
        assert mark.name == "xfail" and mark.kwargs["strict"] is True, mark
        raises = _EXPECTED_RAISES[_check_name(param.values[1])]
        xfail = pytest.mark.xfail(reason=mark.kwargs["reason"], strict=True, raises=raises)
        params.append(pytest.param(*param.values, marks=xfail, id=param.id))
    return pytest.mark.parametrize(argnames, params, **parametrize.kwargs)


@pytest.mark.slow
@_with_raises(
    parametrize_with_checks(
        [
            SelfDistillationClassifier(),
            SelfDistillationClassifier(rounds=0, preprocess=None),
            SelfDistillationClassifier(rounds="auto"),
            SelfDistillationClassifier(rounds=3, store_outputs=True, warm_start=True),
            SelfDistillationClassifier(method="pll-ce", rounds="auto"),
            SelfDistillationClassifier(method="pll-gce"),
        ],
        expected_failed_checks=_expected_failures,
        xfail_strict=True,
    )
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    ds = load_digits_dataset()
    return ds.features, ds.labels


def _noisy(y, k, eta, seed):
    rng = np.random.default_rng(seed)
    flip = rng.random(y.size) < eta
    return np.where(flip, (y + rng.integers(1, k, y.size)) % k, y)


def _objective_gradient(w, x, y_idx, lam):
    """Gradient of (1/N) sum CE + (lam/2)||W||^2 at W (K, p), features x (N, p)."""
    p = np.exp(log_softmax(w @ x.T))
    return (p - one_hot(y_idx, w.shape[0])) @ x / x.shape[0] + lam * w


@pytest.mark.parametrize("classes", [(0, 1), (3, 5, 8), tuple(range(10))])
def test_rounds0_vs_logistic_regression(digits, classes):
    """rounds=0, preprocess=None is LogisticRegression(C=1/(lam N), fit_intercept=False).

    For K = 2 scikit-learn fits one weight vector ``w`` (binary logistic); our two rows satisfy
    ``w_0 = -w_1`` at the optimum, so ``w = w_1 - w_0`` carries the penalty
    ``(lam/2)(|w_0|^2 + |w_1|^2) = (lam/4)|w|^2``: the match is at ``C = 2/(lam N)``.

    Tolerance (derived): the objective is lam-strongly convex, so both solutions lie within
    ``||grad J||_F / lam`` of the optimum; with unit-norm rows and softmax 1/2-Lipschitz (max-norm),
    ``max|P_ours - P_sk| <= (||grad J(W_ours)|| + ||grad J(W_sk)||) / (2 lam)``, required <= 1e-6.
    """
    x_all, y_all = digits
    idx = np.flatnonzero(np.isin(y_all, classes))
    tr, te = idx[:300], idx[300:500]
    x = preprocess(x_all, tr).features  # unit-norm rows, the same features for both models
    lam, n, k = 1e-2, tr.size, len(classes)
    est = SelfDistillationClassifier(lam=lam, rounds=0, preprocess=None).fit(x[tr], y_all[tr])
    c = (2.0 if k == 2 else 1.0) / (lam * n)
    lr = LogisticRegression(C=c, fit_intercept=False, solver="lbfgs", tol=1e-14, max_iter=10**5)
    lr.fit(x[tr], y_all[tr])
    np.testing.assert_array_equal(est.classes_, lr.classes_)
    w_sk = lr.coef_ if k > 2 else np.vstack([-lr.coef_ / 2, lr.coef_ / 2])
    y_idx = np.searchsorted(est.classes_, y_all[tr])
    g_sk = np.linalg.norm(_objective_gradient(w_sk, x[tr], y_idx, lam))
    g_ours = np.linalg.norm(_objective_gradient(est.stage_weights_[0], x[tr], y_idx, lam))
    bound = (g_sk + g_ours) / (2 * lam)
    assert bound <= 1e-6, f"bound {bound:.3g} too loose for a 1e-6 comparison"
    diff = np.max(np.abs(est.predict_proba(x[te]) - lr.predict_proba(x[te])))
    assert diff <= bound, f"max|dP| = {diff:.3g} > strong-convexity bound {bound:.3g}"
    np.testing.assert_array_equal(est.predict(x[te]), lr.predict(x[te]))


def test_sd_fit_vs_self_distill(digits):
    """The estimator's rounds are self_distill on the centred, L2-normalised training features."""
    x_all, y_all = digits
    tr, te = np.arange(400), np.arange(400, 700)
    noisy = _noisy(y_all[tr], 10, 0.3, 0)
    est = SelfDistillationClassifier(lam=1e-3, rounds=3, store_outputs=True)
    est.fit(x_all[tr], noisy)
    pre = preprocess(x_all, tr)
    assert_close(est.mean_, pre.train_mean, what="training mean")
    ref = self_distill(noisy, 10, 1e-3, 3, features=pre.features[tr])
    assert est.n_rounds_ == 3 and len(est.certificates_) == 4
    assert est.converged_ and all(c.residual <= c.target for c in est.certificates_)
    staged = list(est.staged_predict_proba(x_all[te]))
    assert len(staged) == 4
    for t, sol in enumerate(ref.solutions):
        tol = solve_agreement_tol(sol, sol)  # the same solver run twice on the same input
        assert_close(est.outputs_[t], sol.outputs.T, atol=tol, what=f"round {t} outputs")
        assert_close(staged[t], sol.predict(features=pre.features[te]).T, atol=tol)
    assert_close(est.predict_proba(x_all[te]), staged[-1], rtol=0)
    np.testing.assert_array_equal(est.predict(x_all[te]), np.argmax(staged[-1], axis=1))
    logits = est.decision_function(x_all[te])
    assert_close(np.exp(log_softmax(logits.T)).T, staged[-1], atol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(PLL_LOSSES))
def test_pll_fit_vs_train_pll_student(digits, method):
    """Round 1 of a PLL method is train_pll_student from the self_distill teacher, same loss."""
    x_all, y_all = digits
    four = np.flatnonzero(y_all < 4)  # K = 4 keeps the student's second-order test cheap
    tr, te = four[:200], four[200:400]
    noisy = _noisy(y_all[tr], 4, 0.5, 1)
    est = SelfDistillationClassifier(lam=1e-3, method=method, q=0.6, store_outputs=True)
    est.fit(x_all[tr], noisy)
    pre = preprocess(x_all, tr)
    teacher = self_distill(noisy, 4, 1e-3, 0, features=pre.features[tr]).solutions[0]
    ref = train_pll_student(teacher, 1e-3, loss=PLL_LOSSES[method], q=0.6)
    assert est.n_rounds_ == 1 and est.stage_weights_.shape == (2, 4, 64)
    assert est.converged_ and est.certificates_[1].converged
    assert est.certificates_[1].stationary_point == ref.certificate.stationary_point
    # The same problem; the two teachers may come from different factorisation routes
    # (self_distill takes 'spectral' when rounds >= 1, 'auto' otherwise), so the students agree to
    # their certified fixed-point residual (tol = 1e-9 of the outputs' spread), not bit for bit.
    assert_close(est.outputs_[1], ref.outputs.T, rtol=0, atol=1e-9, what=f"{method} outputs")
    assert_close(est.predict_proba(x_all[te]), ref.predict(features=pre.features[te]).T, atol=1e-9)
    if method == "pll-ce":  # the theory's student, also reachable through distill.train_pll
        ce = train_pll(teacher, 1e-3)
        assert_close(est.outputs_[1], ce.outputs.T, atol=solve_agreement_tol(ce, ce))


def test_arbitrary_labels_give_the_same_model(digits):
    """Strings and non-contiguous integers: same fit as 0..K-1 under the order-preserving map."""
    x_all, y_all = digits
    x, y = x_all[:300], y_all[:300] % 4
    base = SelfDistillationClassifier(rounds=2).fit(x, y)
    names = np.array(["ant", "bee", "cat", "dog"])
    for labels in (names[y], 7 * y - 3):
        est = SelfDistillationClassifier(rounds=2).fit(x, labels)
        np.testing.assert_array_equal(est.classes_, np.unique(labels))
        assert_close(est.predict_proba(x_all[300:400]), base.predict_proba(x_all[300:400]))
        np.testing.assert_array_equal(
            est.predict(x_all[300:400]), est.classes_[base.predict(x_all[300:400])]
        )


def test_classes_parameter_keeps_absent_classes(digits):
    """classes= gives a row to a class missing from y, as one-hot over K classes does."""
    x_all, y_all = digits
    keep = np.flatnonzero(y_all[:400] % 4 != 2)
    x, y = x_all[keep], y_all[keep] % 4
    est = SelfDistillationClassifier(rounds=1, store_outputs=True, classes=[0, 1, 2, 3]).fit(x, y)
    assert est.stage_weights_.shape[1] == 4
    ref = self_distill(y, 4, est.lam, 1, features=preprocess(x, np.arange(y.size)).features)
    assert_close(est.outputs_[1], ref.outputs[1].T, atol=solve_agreement_tol(*ref.solutions))
    with pytest.raises(ValueError, match="classes must contain every label"):
        SelfDistillationClassifier(classes=[0, 1]).fit(x, y)


def test_binary_decision_function_is_log_odds(digits):
    x_all, y_all = digits
    m = np.flatnonzero(np.isin(y_all, (3, 8)))[:200]
    labels = np.where(y_all[m] == 3, "three", "eight")
    est = SelfDistillationClassifier().fit(x_all[m], labels)
    dec = est.decision_function(x_all[m])
    proba = est.predict_proba(x_all[m])
    assert dec.shape == (m.size,)
    assert_close(dec, np.log(proba[:, 1]) - np.log(proba[:, 0]), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(est.predict(x_all[m]), est.classes_[(dec > 0).astype(int)])


def test_validation_mask_is_stratified_and_keeps_a_training_sample():
    y = np.repeat(np.arange(4), [10, 20, 1, 2])
    mask = validation_mask(y, 4, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y[mask], minlength=4), [3, 6, 0, 1])
    assert np.all(np.bincount(y[~mask], minlength=4) >= 1)
    again = validation_mask(y, 4, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(mask, again)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sd", "pll-ce"])
def test_auto_rounds_select_on_validation_then_refit(digits, method):
    """'auto' = the best validation round of a fit on the inner split, then a refit on all data."""
    x_all, y_all = digits
    x, y = x_all[:500], _noisy(y_all[:500], 10, 0.4, 3)
    est = SelfDistillationClassifier(
        lam=1e-3, rounds="auto", method=method, max_rounds=4, random_state=7
    ).fit(x, y)
    mask = validation_mask(y, 10, est.val_fraction, np.random.default_rng(7))
    top = 4 if method == "sd" else 1
    inner = SelfDistillationClassifier(lam=1e-3, rounds=top, method=method).fit(x[~mask], y[~mask])
    scores = [accuracy(d.T, y[mask]) for d in inner.staged_decision_function(x[mask])]
    np.testing.assert_array_equal(est.validation_accuracy_, scores)
    assert est.n_rounds_ == int(np.argmax(scores))
    refit = SelfDistillationClassifier(lam=1e-3, rounds=est.n_rounds_, method=method).fit(x, y)
    assert_close(est.stage_weights_, refit.stage_weights_, rtol=0)


def test_auto_rounds_errors_without_validation_samples():
    x = np.random.default_rng(0).standard_normal((4, 3))
    est = SelfDistillationClassifier(rounds="auto", val_fraction=0.1)
    with pytest.raises(ValueError, match="validation split"):
        est.fit(x, [0, 0, 1, 1])


@pytest.mark.slow
def test_warm_start_reuses_work_and_matches_cold_fits(digits):
    x_all, y_all = digits
    x, y = x_all[:300], _noisy(y_all[:300], 10, 0.3, 4)
    warm = SelfDistillationClassifier(warm_start=True)
    sequence = [
        {"lam": 1e-3, "method": "sd", "rounds": 2},
        {"lam": 1e-3, "method": "pll-ce", "rounds": 1},
        {"lam": 1e-2, "method": "sd", "rounds": 1},
    ]
    factors = []
    for params in sequence:
        warm.set_params(**params).fit(x, y)
        factors.append(warm._warm_state["factor"])
        cold = SelfDistillationClassifier(**params).fit(x, y)
        assert_close(warm.stage_weights_, cold.stage_weights_, rtol=0, what=str(params))
    assert factors[0] is factors[1] is factors[2]
    # different data: not reused, and the answer is that of a cold fit on the new data
    warm.fit(x_all[300:600], y_all[300:600])
    assert warm._warm_state["factor"] is not factors[0]
    cold = SelfDistillationClassifier(**sequence[-1]).fit(x_all[300:600], y_all[300:600])
    assert_close(warm.stage_weights_, cold.stage_weights_, rtol=0)
    assert not hasattr(warm.set_params(warm_start=False).fit(x, y), "_warm_state")


@pytest.mark.slow
def test_pipeline_and_grid_search(digits):
    x_all, y_all = digits
    x, y = x_all[:300], _noisy(y_all[:300], 10, 0.3, 5)
    pipe = make_pipeline(StandardScaler(), SelfDistillationClassifier())
    search = GridSearchCV(
        pipe,
        {
            "selfdistillationclassifier__rounds": [0, 2],
            "selfdistillationclassifier__lam": [1e-3, 1e-2],
        },
        cv=3,
    )
    search.fit(x, y)
    assert set(search.best_params_) == {
        "selfdistillationclassifier__rounds",
        "selfdistillationclassifier__lam",
    }
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert 0.5 < search.score(x_all[300:600], y_all[300:600]) <= 1.0


def test_pickle_round_trip_pll(digits):
    """Pickling of the PLL methods (check_estimators_pickle runs binary data, xfailed above).

    The project never loads pickles, not even its own bytes: ``pickle.dumps`` checks that the
    fitted estimator serialises (what joblib needs to ship it to workers) and ``copy.deepcopy``
    rebuilds it through the same ``__reduce_ex__`` protocol that unpickling would use.
    """
    x_all, y_all = digits
    est = SelfDistillationClassifier(method="pll-ce").fit(x_all[:200], y_all[:200])
    assert len(pickle.dumps(est)) > 0
    again = copy.deepcopy(est)
    assert_close(again.predict_proba(x_all[200:300]), est.predict_proba(x_all[200:300]), rtol=0)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"lam": 0.0}, "lam"),
        ({"lam": "x"}, "lam"),
        ({"rounds": -1}, "rounds"),
        ({"rounds": 1.5}, "rounds"),
        ({"rounds": "many"}, "rounds"),
        ({"method": "pll-ce", "rounds": 2}, "rounds must be 0, 1 or 'auto'"),
        ({"method": "kd"}, "method"),
        ({"q": 1.5}, "q"),
        ({"preprocess": "zscore"}, "preprocess"),
        ({"random_state": None}, "random_state"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": "half"}, "val_fraction"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"tol": -1.0}, "tol"),
        ({"store_outputs": "yes"}, "store_outputs"),
        ({"classes": [1]}, "classes"),
    ],
)
def test_bad_parameters_raise_naming_them(params, match):
    x = np.random.default_rng(0).standard_normal((12, 3))
    y = np.arange(12) % 3
    with pytest.raises(ValueError, match=match):
        SelfDistillationClassifier(**params).fit(x, y)


def test_single_class_and_pll_binary_errors():
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="1 class"):
        SelfDistillationClassifier().fit(x, np.zeros(10))
    with pytest.raises(ValueError, match="at least 3 classes"):
        SelfDistillationClassifier(method="pll-gce").fit(x, np.arange(10) % 2)


def test_memory_is_checked_before_fitting(monkeypatch):
    import selfdistill_cli.memory

    monkeypatch.setattr(
        selfdistill_cli.memory, "available_bytes", lambda: (10_000, "available memory")
    )
    x = np.random.default_rng(0).standard_normal((50, 20))
    with pytest.raises(ValueError, match="GB"):
        SelfDistillationClassifier().fit(x, np.arange(50) % 2)


def test_import_simulations_does_not_import_sklearn():
    code = (
        "import sys, simulations, simulations.solver, simulations.distill; "
        "assert 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
