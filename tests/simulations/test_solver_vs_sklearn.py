"""Independent cross-check: the exact probe solver equals scikit-learn's multinomial logistic
regression without intercept at the matching regularisation.

scikit-learn minimises ``C sum_i CE_i + ||W||^2 / 2``; dividing by ``C N`` gives
``(1/N) sum_i CE_i + ||W||^2 / (2 C N)``, i.e. our objective with ``lam = 1 / (C N)``. Both use the
full (K, p) parametrisation with an L2 penalty, so the optimum is the same unique point.

Tolerance (derived, not tuned). The objective ``J`` is ``lam``-strongly convex, so for any ``W``
``||W - W*||_F <= ||grad J(W)||_F / lam``. We evaluate ``grad J`` of *both* solutions directly
and require ``||W_ours - W_sklearn||_F <= (||grad J(W_ours)|| + ||grad J(W_sk)||) / lam``, and, so
that the test is not vacuous, that this bound is itself below 1e-5. For outputs, softmax is
1/2-Lipschitz from the max-norm of the logits to the max-norm of the probabilities and the rows of
X have unit norm, so ``max|P_ours - P_sk| <= ||W_ours - W_sk||_F / 2``.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from simulations.datasets import load_digits_dataset, preprocess
from simulations.solver import solve_probe
from theory.validation import one_hot


def _gradient(w, x, y, lam):
    z = w @ x.T
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    return (p - one_hot(y, w.shape[0])) @ x / x.shape[0] + lam * w


@pytest.mark.slow
@pytest.mark.parametrize("lam", [1e-2, 1e-3])
def test_solver_vs_sklearn(lam):
    ds = load_digits_dataset()
    n = 400
    x = preprocess(ds.features[:n], np.arange(n)).features
    y = ds.labels[:n]
    k = ds.n_classes
    clf = LogisticRegression(fit_intercept=False, C=1.0 / (lam * n), tol=1e-12, max_iter=10_000)
    clf.fit(x, y)
    assert list(clf.classes_) == list(range(k))
    sol = solve_probe(one_hot(y, k), lam, features=x)
    w_ours, w_sk = sol.weights, clf.coef_
    g_ours = np.linalg.norm(_gradient(w_ours, x, y, lam))
    g_sk = np.linalg.norm(_gradient(w_sk, x, y, lam))
    bound = (g_ours + g_sk) / lam
    assert bound < 1e-5, f"bound {bound:.3g} too loose to be a meaningful comparison"
    diff = np.linalg.norm(w_ours - w_sk)
    assert diff <= bound, f"||dW|| = {diff:.3g} > strong-convexity bound {bound:.3g}"
    p_diff = np.max(np.abs(sol.predict(features=x) - clf.predict_proba(x).T))
    assert p_diff <= bound / 2
    np.testing.assert_array_equal(np.argmax(sol.outputs, axis=0), clf.predict(x))
