"""theory.spec: one spec, one result type; predict() against the prediction functions it wraps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from theory.finite import MixtureModel, predict_finite
from theory.finite_exact import predict_finite_exact
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.names import THEORY_FIELDS
from theory.noise import exact_counts, transition_matrix
from theory.pll import predict_pll
from theory.spec import METRICS, Result, Spec, predict


def _fields(pred):
    return np.column_stack([getattr(pred, THEORY_FIELDS[m]) for m in METRICS])


BLOCK = dict(n_classes=3, per_class=10, c=0.4, d=0.1, lam=1e-2, rounds=3, noise="pair", eta=0.3)


@pytest.mark.parametrize("source, fn", [("exact", predict_exact), ("linear", predict_linear)])
def test_predict_block_vs_direct_call(source, fn):
    spec = Spec(**BLOCK)
    counts = exact_counts(transition_matrix("pair", 3, 0.3), 10)
    direct = fn(BlockModel(3, 10, 0.4, 0.1), counts, 1e-2, 3)
    got = predict(spec, source)
    assert got.source == source and got.se is None and got.trials is None
    # the same function on the same inputs: identical floats
    np.testing.assert_array_equal(got.values, _fields(direct))


def test_predict_auto_source():
    assert predict(Spec(**BLOCK)).source == "exact"


def test_predict_pll_block_vs_direct_call():
    spec = Spec(**{**BLOCK, "method": "pll-gce", "q": 0.5})
    counts = spec.count_matrix()
    model = BlockModel(3, 10, 0.4, 0.1)
    teacher = predict_exact(model, counts, 1e-2, 0)
    student = predict_pll(model, counts, 1e-2, method="exact", loss="gce", q=0.5)
    got = predict(spec)
    assert got.values.shape == (2, len(METRICS))
    np.testing.assert_array_equal(got.values[0], _fields(teacher)[0])
    np.testing.assert_array_equal(got.values[1], _fields(student)[0])


@pytest.mark.parametrize("source", ["exact", "linear"])
def test_predict_pll_certified_student_has_no_note(source):
    # the linear student has no iterative solve (converged is None): no "not certified" note
    res = predict(Spec(**{**BLOCK, "method": "pll-ce"}), source)
    assert res.notes == ()


def test_predict_finite_vs_direct_calls():
    spec = Spec(n_classes=3, per_class=20, c=0.4, d=0.1, lam=1e-2, rounds=2, eta=0.3, dim=120)
    counts = spec.count_matrix()
    model = MixtureModel(3, 20, 120, 0.4, 0.1)
    lin = predict(spec, "finite")
    np.testing.assert_array_equal(lin.values, _fields(predict_finite(model, counts, 1e-2, 2)))
    assert lin.extra["validated_regime"] is True  # lam >= 1e-2, K <= 4, N/p = 0.5
    ex = predict(spec, points=16)
    direct = predict_finite_exact(model, counts, 1e-2, 2, points=16)
    np.testing.assert_array_equal(ex.values, _fields(direct))
    assert ex.source == "finite_exact" and ex.extra["converged"]
    assert any("converged=True" in note for note in ex.notes)


def test_predict_finite_refuses_where_random_matrix_part_fails():
    spec = Spec(n_classes=3, per_class=20, c=0.4, d=0.1, lam=1e-4, rounds=1, eta=0.3, dim=30)
    with pytest.raises(ValueError, match="random-matrix part fails"):
        predict(spec, "finite")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=2), "dim must be an integer >= n_classes"),
        (dict(dim=10.5), "dim must be an integer"),
        (dict(dim=float("nan")), "dim must be"),
        (dict(method="pll-foo"), "method must be one of"),
        (dict(noise="bogus"), "noise must be one of"),
        (dict(noise="superclass"), "superclass noise needs groups"),
        (dict(noise="superclass", groups=((0, 1),)), "missing"),
        (dict(noise="superclass", groups=((0, 1), (2,)), n_groups=2), "not both"),
        (dict(noise="superclass", n_groups=4, dim=60), r"n_groups must lie in \[1, n_classes=3\]"),
        (dict(noise="superclass", n_groups=2), "needs a finite dim"),
        (dict(groups=((0, 1), (2,))), "only used with noise='superclass'"),
        (dict(sampling="poisson"), "sampling must be one of"),
        (dict(per_class=2, dim=60, c=0.2, d=-0.15), r"c \+ \(K-1\) d >= 0"),  # no class means
        (dict(lam=0.0), "lam"),
        (dict(q=2.0), "q must lie in"),
        (dict(counts=((5, 5, 0), (0, 10, 0))), "counts must be a"),
        (dict(counts=((5, 4, 0), (0, 10, 0), (0, 0, 10))), "summing to per_class"),
        (dict(n_classes=2, method="pll-ce"), "at least 3 classes"),
        (dict(c="abc"), "c must be a real number"),
        (dict(d=True), "d must be a real number"),
        (dict(c=0.4, d=0.5), "non-PSD"),
        (dict(c=float("inf")), "finite"),
        # Numbers only: booleans and strings are refused, not converted.
        (dict(dim=None), r"dim must be an integer or math.inf"),
        (dict(dim="100"), r"dim must be an integer or math.inf"),
        (dict(eta=True), "eta must be a real number"),
        (dict(eta="0.3"), "eta must be a real number"),
        (dict(q=True), "q must be a real number"),
        (dict(counts=((10, 0), (0, 10, 0), (0, 0, 10))), r"counts must be a \(3, 3\) matrix"),
        (dict(transition=((1, 0), (0, 1, 0), (0, 0, 1))), r"transition must be a \(3, 3\)"),
        (dict(transition=((0.5, 0.5), (0.5, 0.5))), r"transition must be a \(3, 3\)"),
        (dict(transition=((0.5, 0.6, 0), (0, 1, 0), (0, 0, 1))), "rows must sum to 1"),
        (dict(transition=((1.5, -0.5, 0), (0, 1, 0), (0, 0, 1))), "transition"),
        (
            dict(transition=((1, 0, 0), (0, 1, 0), (0, 0, 1)), counts=((10, 0, 0),) * 3),
            "counts or transition, not both",
        ),
    ],
)
def test_spec_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Spec(**{**BLOCK, **kwargs})


@pytest.mark.parametrize(
    "spec, source, match",
    [
        (Spec(**BLOCK), "finite_exact", "does not apply"),
        (Spec(**{**BLOCK, "dim": 60}), "exact", "does not apply"),
        (Spec(**BLOCK), "nonsense", "source must be"),
        (Spec(**{**BLOCK, "method": "pll-gce-ref"}), "auto", "no group-level theory"),
        (Spec(**{**BLOCK, "method": "pll-gce", "dim": 60}), "auto", "covers 'sd' and 'pll-ce'"),
        (Spec(**{**BLOCK, "method": "pll-ce", "dim": 60}), "finite", "covers 'sd' only"),
    ],
)
def test_predict_rejects_inapplicable_source(spec, source, match):
    with pytest.raises(ValueError, match=match):
        predict(spec, source)


def test_spec_round_trip_and_counts():
    spec = Spec(**{**BLOCK, "dim": 90})
    assert Spec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    block = Spec(**BLOCK)
    assert block.to_dict()["dim"] is None and math.isinf(Spec.from_dict(block.to_dict()).dim)
    given = Spec(**{**BLOCK, "counts": ((8, 2, 0), (0, 9, 1), (1, 0, 9))})
    np.testing.assert_array_equal(given.count_matrix(), [[8, 2, 0], [0, 9, 1], [1, 0, 9]])
    assert Spec.from_dict(given.to_dict()) == given
    with pytest.raises(ValueError, match="unknown spec parameter"):
        Spec.from_dict({"n_classes": 3, "bogus": 1})
    # a PLL spec trains one student: R is normalised to 1
    assert Spec(**{**BLOCK, "method": "pll-ce", "rounds": 7}).rounds == 1


def test_spec_superclass_groups_vs_transition_matrix():
    groups = ((0, 1), (2,))
    spec = Spec(**{**BLOCK, "noise": "superclass", "groups": groups})
    tr = transition_matrix("superclass", 3, 0.3, groups=[[0, 1], [2]])
    np.testing.assert_array_equal(spec.count_matrix(), exact_counts(tr, 10))
    assert spec.fixed_counts and Spec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    "kwargs, why",
    [
        (dict(sampling="random"), "sampling='random'"),
        (dict(noise="superclass", n_groups=2, dim=60), "n_groups clustering"),
    ],
)
def test_predict_refuses_spec_without_fixed_count_matrix(kwargs, why):
    spec = Spec(**{**BLOCK, **kwargs})
    assert not spec.fixed_counts
    with pytest.raises(ValueError, match=f"no fixed count matrix \\({why}"):
        predict(spec)
    # asked per realised matrix, the theory answers
    counts = ((7, 3, 0), (0, 8, 2), (1, 0, 9))
    given = predict(Spec(**{**BLOCK, **kwargs, "counts": counts}))
    direct = predict(Spec(**{**BLOCK, "counts": counts, "dim": given.spec.dim}))
    np.testing.assert_array_equal(given.values, direct.values)
    assert Spec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_predict_finite_refuses_dim_equal_to_classes():
    # p = K is a mixture the Monte Carlo can sample, but the finite-p theory has no bulk
    spec = Spec(**{**BLOCK, "dim": 3})
    with pytest.raises(ValueError, match="must be > K"):
        predict(spec)


def test_spec_transition_vs_named_noise_model():
    # the named model's matrix given explicitly: the same counts, hence the same theory
    named = Spec(**BLOCK)
    tr = tuple(map(tuple, transition_matrix("pair", 3, 0.3)))
    given = Spec(**{**BLOCK, "transition": tr})
    np.testing.assert_array_equal(given.transition_matrix(), named.transition_matrix())
    np.testing.assert_array_equal(given.count_matrix(), named.count_matrix())
    np.testing.assert_array_equal(predict(given).values, predict(named).values)
    assert Spec.from_dict(json.loads(json.dumps(given.to_dict()))) == given


def test_spec_transition_any_row_stochastic_matrix():
    tr = ((0.7, 0.2, 0.1), (0.0, 0.9, 0.1), (0.25, 0.25, 0.5))
    spec = Spec(**{**BLOCK, "transition": tr})
    np.testing.assert_array_equal(spec.count_matrix(), exact_counts(np.array(tr), 10))


def test_result_rows_and_json():
    res = predict(Spec(**BLOCK))
    rows = res.to_rows()
    assert len(rows) == (BLOCK["rounds"] + 1) * len(METRICS)
    assert {r["metric"] for r in rows} == set(METRICS)
    blob = json.loads(json.dumps(res.to_dict()))
    assert blob["source"] == "exact" and blob["trials"] is None
    np.testing.assert_array_equal(res.value("pop_acc"), res.values[:, METRICS.index("pop_acc")])
    assert res.stderr("pop_acc") is None
    with pytest.raises(ValueError, match="metric must be one of"):
        res.value("population_acc")


def test_result_undefined_metric_is_none_in_rows():
    # noise-free: no mislabeled points, the metric is undefined (NaN -> None, never 0)
    res = predict(Spec(**{**BLOCK, "eta": 0.0}))
    mis = [r["value"] for r in res.to_rows() if r["metric"] == "train_acc_mislabeled"]
    assert mis == [None] * (BLOCK["rounds"] + 1)
    assert isinstance(res, Result)


def test_finite_exact_notes_say_when_outside_the_validated_grid():
    """Tiny n or N/p > 2 is outside what §16.7 validated: a note says so (it missed exact SD
    by ~0.1 at K = 3, n = 3, p = 4 with nothing flagged)."""
    base = dict(n_classes=3, lam=1e-3, rounds=1, eta=0.3, c=0.4, d=0.1)
    tiny = predict(Spec(per_class=3, dim=4, **base), points=16)
    assert any(
        "outside the grid" in n and "n = 3 < 10" in n and "N/p = 2.25" in n for n in tiny.notes
    )
    inside = predict(Spec(per_class=20, dim=60, **base), points=16)
    assert not any("outside the grid" in n for n in inside.notes)
