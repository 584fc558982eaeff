"""Tests of loading, validation and preprocessing (simulations/datasets.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.datasets import (
    load_csv,
    load_dataset,
    load_digits_dataset,
    load_npz,
    preprocess,
    validate_dataset,
)


def _arrays(n=30, p=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)), np.arange(n) % k


def test_digits_default_is_bundled_and_valid():
    ds = load_dataset()
    assert ds.name == "digits"
    assert ds.features.shape == (1797, 64)
    assert ds.n_classes == 10
    assert ds.class_counts().sum() == 1797
    assert np.all(np.isfinite(ds.features))
    assert load_digits_dataset().labels.dtype == np.int64


def test_npz_roundtrip_with_splits(tmp_path):
    x, y = _arrays()
    idx = np.arange(30)
    path = tmp_path / "feat.npz"
    np.savez(path, features=x, labels=y, train_idx=idx[:20], val_idx=idx[20:25], test_idx=idx[25:])
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.features, x)
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.n_classes == 3
    np.testing.assert_array_equal(ds.splits["val_idx"], idx[20:25])


def test_npz_errors(tmp_path):
    x, y = _arrays()
    p1 = tmp_path / "a.npz"
    np.savez(p1, features=x)
    with pytest.raises(ValueError, match="labels"):
        load_npz(p1)
    p2 = tmp_path / "b.npz"
    np.savez(p2, features=x, labels=y, train_idx=np.arange(5))
    with pytest.raises(ValueError, match="all of"):
        load_npz(p2)
    p3 = tmp_path / "c.npz"
    np.savez(
        p3,
        features=x,
        labels=y,
        train_idx=np.arange(10),
        val_idx=np.arange(9, 12),
        test_idx=np.arange(20, 30),
    )
    with pytest.raises(ValueError, match="overlaps"):
        load_npz(p3)
    p4 = tmp_path / "d.npz"
    np.savez(
        p4,
        features=x,
        labels=y,
        train_idx=np.arange(10),
        val_idx=np.arange(10, 12),
        test_idx=np.array([20, 30]),
    )
    with pytest.raises(ValueError, match="test_idx"):
        load_npz(p4)


def test_npy_pair(tmp_path):
    x, y = _arrays()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    ds = load_dataset(tmp_path / "x.npy", tmp_path / "y.npy")
    np.testing.assert_array_equal(ds.labels, y)
    with pytest.raises(ValueError, match="labels file"):
        load_dataset(tmp_path / "x.npy")


def test_csv_with_and_without_header(tmp_path):
    x, y = _arrays(n=12, p=3)
    body = "\n".join(
        ",".join(f"{v:.17g}" for v in row) + f",{lab}" for row, lab in zip(x, y, strict=True)
    )
    p1 = tmp_path / "a.csv"
    p1.write_text("f0,f1,f2,label\n" + body + "\n\n")
    p2 = tmp_path / "b.csv"
    p2.write_text(body)
    for path in (p1, p2):
        ds = load_csv(path)
        np.testing.assert_array_equal(ds.features, x)  # %.17g round-trips float64 exactly
        np.testing.assert_array_equal(ds.labels, y)
    p3 = tmp_path / "c.csv"
    p3.write_text("1,2,0\n1,2\n")
    with pytest.raises(ValueError, match="columns"):
        load_csv(p3)
    p4 = tmp_path / "d.csv"
    p4.write_text("1,2,0\n1,x,1\n")
    with pytest.raises(ValueError, match="non-numeric"):
        load_csv(p4)


@pytest.mark.parametrize(
    "features, labels, match",
    [
        (np.ones((4, 2)), np.array([0, 1, 0]), "4 rows"),
        (np.ones(4), np.array([0, 1, 0, 1]), "2-D"),
        (np.array([[1.0], [np.nan], [1.0], [2.0]]), np.array([0, 1, 0, 1]), "NaN"),
        (np.ones((4, 2)), np.array([0, 1, -1, 1]), ">= 0"),
        (np.ones((4, 2)), np.array([0, 0, 0, 0]), "at least 2 classes"),
        (np.ones((4, 2)), np.array([0, 2, 0, 2]), "no samples"),
        (np.ones((4, 2)), np.array([0, 1.5, 0, 1]), "integer"),
        (np.ones((4, 2)), np.array([[0, 1, 0, 1]]), "1-D"),
        (np.ones((4, 2)), np.array(["a", "b", "a", "b"]), "dtype"),
    ],
)
def test_validation_errors(features, labels, match):
    with pytest.raises(ValueError, match=match):
        validate_dataset(features, labels)


def test_unsupported_extension_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_dataset(tmp_path / "nope.npz")
    p = tmp_path / "x.txt"
    p.write_text("1,0\n")
    with pytest.raises(ValueError, match="extension"):
        load_dataset(p)


def test_preprocess_uses_train_statistics_only():
    x, _ = _arrays(n=20, p=5, seed=1)
    train = np.arange(10)
    pre = preprocess(x, train)
    np.testing.assert_allclose(pre.train_mean, x[:10].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(pre.features, axis=1), 1.0, rtol=1e-14)
    # Changing a test row must not change any training row's preprocessing.
    x2 = x.copy()
    x2[15] += 100.0
    np.testing.assert_array_equal(preprocess(x2, train).features[:10], pre.features[:10])
    # The preprocessed row is the unit vector along x - train mean.
    expected = (x[12] - x[:10].mean(axis=0)) / np.linalg.norm(x[12] - x[:10].mean(axis=0))
    np.testing.assert_allclose(pre.features[12], expected, rtol=1e-13)


def test_preprocess_zero_row_kept_finite():
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    pre = preprocess(x, np.arange(3))
    assert pre.zero_rows == 1
    assert np.all(np.isfinite(pre.features))
    np.testing.assert_array_equal(pre.features[2], [0.0, 0.0])
