"""Multi-round driver and PLL student."""

import numpy as np
import pytest

from simulations.distill import self_distill, soften, train_pll
from simulations.solver import solve_probe
from tests.tolerances import assert_close, solve_agreement_tol
from theory.partial_labels import top2_targets
from theory.validation import one_hot


def _data(seed=0, n=40, p=6, k=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)) / np.sqrt(p), rng.integers(0, k, n)


def test_rounds_chain_targets_vs_manual():
    x, labels = _data()
    lam = 1e-2
    res = self_distill(labels, 3, lam, 3, features=x)
    assert res.outputs.shape == (4, 3, 40)
    targets = one_hot(labels, 3)
    for t in range(4):
        # Round t is trained on round t-1's outputs: solve that same problem independently.
        manual = solve_probe(targets, lam, features=x)
        tol = solve_agreement_tol(res.solutions[t], manual)
        assert_close(res.outputs[t], manual.outputs, atol=tol, rtol=0, what=f"round {t}")
        targets = res.outputs[t]
    assert all(c.converged for c in res.certificates)


def test_predict_matches_training_outputs():
    x, labels = _data(1)
    res = self_distill(labels, 3, 0.1, 2, features=x)
    assert_close(res.predict(2, features=x), res.outputs[2], atol=1e-9, rtol=0)
    res_g = self_distill(labels, 3, 0.1, 2, gram=x @ x.T)
    assert_close(res_g.predict(2, kernel_rows=x @ x.T), res.outputs[2], atol=1e-8, rtol=0)
    with pytest.raises(ValueError, match="round"):
        res.predict(3, features=x)


def test_temperature():
    p = np.array([[0.7, 0.2], [0.2, 0.5], [0.1, 0.3]])
    assert_close(soften(p, 1.0), p)
    sharp = soften(p, 0.5)
    assert_close(sharp[:, 0], p[:, 0] ** 2 / np.sum(p[:, 0] ** 2))
    with pytest.raises(ValueError, match="temperature"):
        soften(p, 0.0)


def test_pll_trains_on_top2():
    x, labels = _data(2)
    res = self_distill(labels, 3, 1e-2, 0, features=x)
    pll = train_pll(res.solutions[0], 1e-2)
    direct = solve_probe(top2_targets(res.outputs[0]), 1e-2, features=x)
    tol = solve_agreement_tol(pll, direct)
    assert_close(pll.outputs, direct.outputs, atol=tol, rtol=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_classes=1), "n_classes"),
        (dict(rounds=-1), "rounds"),
        (dict(lam=0), "lam"),
        (dict(lam=1e-20), "lam must be >= 1e-12"),  # was a ZeroDivisionError in CG
        (dict(lam=True), "lam must be a number"),
        (dict(labels=np.array([0, 5])), "labels"),
    ],
)
def test_bad_input(kwargs, match):
    x, labels = _data(3)
    args = dict(labels=labels, n_classes=3, lam=0.1, rounds=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        self_distill(
            args.pop("labels"),
            args.pop("n_classes"),
            args.pop("lam"),
            args.pop("rounds"),
            features=x,
        )


def test_labels_must_be_numbers():
    """String labels were a TypeError from isfinite; booleans are the classes 0 and 1."""
    x, _ = _data(3)
    n = x.shape[0]
    with pytest.raises(ValueError, match="labels must be integers"):
        self_distill(np.array(["a"] * n), 3, 0.1, 0, features=x)
    res = self_distill(np.arange(n) % 2 == 1, 2, 0.1, 0, features=x)
    assert res.outputs[0].shape == (2, n)
