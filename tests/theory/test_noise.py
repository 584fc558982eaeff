"""Tests for theory.noise: transition families and the exact-count rounding rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.noise import (
    NOISE_KINDS,
    check_groups,
    check_transition,
    exact_counts,
    transition_matrix,
)


def _reference_by_loops(kind, k, eta, groups=None):
    """Entry-by-entry definition from the module docstring (independent of the vectorised code)."""
    t = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            if kind == "sym":
                t[a, b] = 1 - eta if a == b else eta / (k - 1)
            elif kind == "pair":
                t[a, b] = 1 - eta if a == b else (eta if b == (a + 1) % k else 0.0)
            elif kind == "asym":
                if a == b:
                    t[a, b] = 1 - eta
                else:
                    t[a, b] = eta / k + (eta / k if b == (a + 1) % k else 0.0)
            else:
                grp = next(g for g in groups if a in g)
                if len(grp) == 1:
                    t[a, b] = 1.0 if a == b else 0.0
                elif b in grp:
                    t[a, b] = 1 - eta if a == b else eta / (len(grp) - 1)
    return t


@pytest.mark.parametrize("kind", ["sym", "pair", "asym"])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("eta", [0.0, 0.2, 0.5, 1.0])
def test_transition_matrix_vs_loop_definition(kind, k, eta):
    t = transition_matrix(kind, k, eta)
    np.testing.assert_allclose(t, _reference_by_loops(kind, k, eta), atol=1e-15)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-14)
    assert t.min() >= 0


def test_superclass_vs_loop_definition_with_singleton():
    groups = [[0, 2, 4], [1, 3], [5]]
    t = transition_matrix("superclass", 6, 0.3, groups=groups)
    np.testing.assert_allclose(t, _reference_by_loops("superclass", 6, 0.3, groups), atol=1e-15)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-14)
    assert t[5, 5] == 1.0  # singleton keeps its label
    assert t[0, 1] == 0.0  # no flips across groups


def test_asym_diagonal_and_k2_coincide_with_sym_and_pair():
    t = transition_matrix("asym", 4, 0.4)
    np.testing.assert_allclose(np.diag(t), 0.6)
    assert t[0, 1] == pytest.approx(0.2) and t[0, 2] == pytest.approx(0.1)
    for kind in ("sym", "pair"):
        np.testing.assert_allclose(
            transition_matrix("asym", 2, 0.3), transition_matrix(kind, 2, 0.3)
        )


@pytest.mark.parametrize(
    "args, match",
    [
        (("sym", 3, 1.5), "eta"),
        (("sym", 3, -0.1), "eta"),
        (("sym", 3, float("nan")), "eta"),
        (("sym", 1, 0.1), "n_classes"),
        (("bogus", 3, 0.1), "kind"),
        (("superclass", 3, 0.1), "groups"),
    ],
)
def test_transition_matrix_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        transition_matrix(*args)


@pytest.mark.parametrize(
    "groups, match",
    [
        ([[0, 1], [1, 2]], "disjoint"),
        ([[0, 1]], "cover"),
        ([[0, 1], [2, 3]], r"\[0, 3\)"),
        ([[0, 1], [], [2]], "empty"),
    ],
)
def test_check_groups_bad(groups, match):
    with pytest.raises(ValueError, match=match):
        check_groups(groups, 3)


def test_groups_rejected_for_other_kinds():
    with pytest.raises(ValueError, match="groups"):
        transition_matrix("sym", 3, 0.1, groups=[[0, 1, 2]])


def test_check_transition_rejects_non_stochastic():
    with pytest.raises(ValueError, match="sum to 1"):
        check_transition(np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="negative"):
        check_transition(np.array([[1.5, -0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        check_transition(np.ones((2, 3)) / 3)
    ok = check_transition(transition_matrix("sym", 3, 0.2))
    np.testing.assert_allclose(ok.sum(axis=1), 1.0)


def test_exact_counts_vs_hand_computed_largest_remainder():
    # n T row 0 = [7, 1.5, 1.5] -> floors [7, 1, 1], 1 left, tied remainders at labels 1 and 2:
    # the cyclic offsets from class 0 are 1 and 2, so label 1 gets it. Row 1: labels 0 (offset 2)
    # and 2 (offset 1) tie -> label 2. The result is circulant.
    t = transition_matrix("sym", 3, 0.3)
    c = exact_counts(t, 10)
    np.testing.assert_array_equal(c, [[7, 2, 1], [1, 7, 2], [2, 1, 7]])
    # asym K=3, eta=0.3, n=5: 5 T[0] = [3.5, 1, 0.5] -> floors [3, 1, 0], tie between labels 0
    # (offset 0) and 2 (offset 2) -> own label: [4, 1, 0], and circulant rows.
    np.testing.assert_array_equal(
        exact_counts(transition_matrix("asym", 3, 0.3), 5), [[4, 1, 0], [0, 4, 1], [1, 0, 4]]
    )
    # 10 * 0.3 round-off must not change an exact integer count (pair flip, eta=0.3).
    np.testing.assert_array_equal(np.diag(exact_counts(transition_matrix("pair", 4, 0.3), 10)), 7)
    # asym K=4, eta=0.3, n=20: 20 T[0] = [14, 3, 1.5, 1.5] -> [14, 3, 2, 1]
    np.testing.assert_array_equal(
        exact_counts(transition_matrix("asym", 4, 0.3), 20)[0], [14, 3, 2, 1]
    )


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(2, 6),
    n=st.integers(1, 50),
    kind=st.sampled_from([x for x in NOISE_KINDS if x != "superclass"]),
    eta=st.floats(0, 1),
)
def test_exact_counts_properties(k, n, kind, eta):
    t = transition_matrix(kind, k, eta)
    c = exact_counts(t, n)
    assert c.dtype == np.int64
    np.testing.assert_array_equal(c.sum(axis=1), n)
    assert np.all(np.abs(c - n * t) < 1 + 1e-9)
    assert c.min() >= 0
    # Cyclically symmetric families give circulant count matrices (cyclic tie rule).
    for row in range(k):
        np.testing.assert_array_equal(np.roll(c[0], row), c[row])
    # Largest remainder minimises the max deviation per row among integer rows summing to n:
    # every entry that received a left-over has remainder >= every entry that did not.
    base = np.floor(n * t + 1e-9)
    frac = n * t - base
    for row in range(k):
        got = (c[row] - base[row]) == 1
        if got.any() and (~got).any():
            assert frac[row][got].min() >= frac[row][~got].max() - 1e-8


def test_exact_counts_bad_input():
    with pytest.raises(ValueError, match="per_class"):
        exact_counts(np.eye(3), 0)
    with pytest.raises(ValueError, match="sum to 1"):
        exact_counts(np.ones((3, 3)), 5)
