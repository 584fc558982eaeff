"""theory.spec.predict's options for callers that need more than a Result's values (issue 23,
item 2: ``theory predict`` reads its report from them): ``Result.prediction``,
``allow_unconverged``, ``allow_refused``, ``progress`` and a shared PLL ``teacher``.

(A separate file from test_spec.py, which tests the Spec and the sources themselves.)
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import theory.groups as groups
from theory.finite import MixtureModel, predict_finite
from theory.finite_exact.report import random_matrix_failure
from theory.groups import BlockModel, GroupConvergenceError, predict_exact
from theory.spec import Spec, predict

BLOCK = dict(n_classes=3, per_class=10, c=0.4, d=0.1, lam=1e-2, rounds=2, noise="pair", eta=0.3)


def test_prediction_is_the_native_object_and_not_serialised():
    spec = Spec(**BLOCK)
    res = predict(spec, "exact")
    direct = predict_exact(BlockModel(3, 10, 0.4, 0.1), spec.count_matrix(), 1e-2, 2)
    # what the values do not carry: ties and certificates, as the theory computed them
    np.testing.assert_array_equal(res.prediction.ties, direct.ties)
    np.testing.assert_array_equal(res.prediction.residuals, direct.residuals)
    assert res.prediction.teacher is not None  # round 0's solution, for PLL students
    out = res.to_dict()
    assert "prediction" not in out and "prediction" not in repr(res)
    json.dumps(out)  # still JSON
    assert predict(spec, "linear").prediction.method == "linear"


@pytest.mark.parametrize("method", ["pll-ce", "pll-candidate", "pll-gce"])
def test_pll_shared_teacher_vs_own_teacher_solve(method, monkeypatch):
    spec = Spec(**BLOCK)
    pll = replace(spec, method=method)
    own = predict(pll, "exact")
    sd = predict(spec, "exact")

    def solved_again(*args, **kwargs):
        raise AssertionError("the shared teacher must not be solved again")

    monkeypatch.setattr(groups, "predict_exact", solved_again)
    shared = predict(pll, "exact", teacher=sd)
    # The same teacher solution (round 0 of predict_exact is predict_pll's own solve): the
    # same floats, row 0 the SD teacher's.
    np.testing.assert_array_equal(shared.values, own.values)
    np.testing.assert_array_equal(shared.values[0], sd.values[0])
    assert shared.prediction.candidate_ties == own.prediction.candidate_ties


def test_pll_linear_teacher_row_from_the_sd_result():
    spec = Spec(**BLOCK)
    pll = replace(spec, method="pll-ce")
    sd = predict(spec, "linear")
    shared = predict(pll, "linear", teacher=replace(sd, prediction=None))  # row 0 is enough
    np.testing.assert_array_equal(shared.values, predict(pll, "linear").values)


@pytest.mark.parametrize(
    "spec_kw, teacher_kw, source, match",
    [
        ({}, {"lam": 2e-2}, "exact", "same n_classes"),
        ({}, {"counts": ((7, 3, 0), (0, 10, 0), (3, 0, 7))}, "exact", "count matrix"),
        ({"method": "sd"}, {}, "exact", "PLL spec"),
        ({}, {}, "linear", "source 'linear'"),
    ],
)
def test_teacher_must_be_the_specs_sd_result(spec_kw, teacher_kw, source, match):
    sd_spec = Spec(**BLOCK)
    teacher = predict(replace(sd_spec, **teacher_kw), "exact")
    spec = replace(sd_spec, **({"method": "pll-ce"} | spec_kw))
    with pytest.raises(ValueError, match=match):
        predict(spec, source, teacher=teacher)


def test_exact_teacher_must_carry_its_prediction():
    spec = Spec(**BLOCK)
    bare = replace(predict(spec, "exact"), prediction=None)
    with pytest.raises(ValueError, match="carry its prediction"):
        predict(replace(spec, method="pll-ce"), "exact", teacher=bare)


def test_allow_unconverged_returns_the_partial_result(monkeypatch):
    # Every group solve stops after one Newton step (as in the command line's partial-result
    # test): by default the first uncertified round raises, with the option it is reported.
    real = groups.solve_loss_groups

    def one_step(*args, **kwargs):
        return real(*args, **kwargs | {"max_iter": 1})

    monkeypatch.setattr(groups, "solve_loss_groups", one_step)
    spec = Spec(**BLOCK | {"lam": 1e-4})
    with pytest.raises(GroupConvergenceError):
        predict(spec, "exact")
    res = predict(spec, "exact", allow_unconverged=True)
    pred = res.prediction
    # round 0 misses its certificate; the later rounds are trained on it, so uncertified too
    assert pred.residuals[0] > pred.residual_targets[0] and not pred.converged.any()
    assert res.values.shape == (3, 4)


def test_allow_refused_computes_the_linearised_theory_with_the_reason():
    spec = Spec(n_classes=3, per_class=20, c=0.4, d=0.1, lam=1e-4, rounds=1, eta=0.3, dim=30)
    why = random_matrix_failure(1e-4, 2.0)
    assert why is not None  # premise: N/p = 2 at lam = 1e-4 is refused
    with pytest.raises(ValueError, match="random-matrix part fails"):
        predict(spec, "finite")
    res = predict(spec, "finite", allow_refused=True)
    direct = predict_finite(MixtureModel(3, 20, 30, 0.4, 0.1), spec.count_matrix(), 1e-4, 1)
    np.testing.assert_array_equal(res.values[:, 0], direct.train_acc)
    np.testing.assert_array_equal(res.values[:, 3], direct.population_acc)
    assert res.notes[0] == why == res.extra["refused"] and res.extra["validated_regime"] is False
    # where it is not refused, nothing changes
    ok = predict(replace(spec, lam=1e-2), "finite", allow_refused=True)
    assert "refused" not in ok.extra and len(ok.notes) == 1


def test_progress_is_passed_on_to_the_theory():
    calls = []
    predict(Spec(**BLOCK), "exact", progress=lambda t, sol: calls.append((t, sol.converged)))
    assert calls == [(0, True), (1, True), (2, True)]
    rounds = []
    spec = Spec(n_classes=3, per_class=20, c=0.4, d=0.1, lam=1e-2, rounds=1, eta=0.3, dim=120)
    predict(spec, "finite_exact", points=16, progress=rounds.append)
    assert rounds and set(rounds) <= {0, 1}
