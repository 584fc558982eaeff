"""The estimator and the data loaders on hostile input (issue 21): parameter types as scikit-learn
validates them, scale-free preprocessing, sizes refused before allocation, bounded file reads."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest

from simulations.datasets import load_csv, load_npz, preprocess, validate_dataset
from simulations.estimator import InvalidParameterError, SelfDistillationClassifier
from theory.partial_labels import pll_undefined_reason


def _data(k=3, n=20, p=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n)
    return rng.standard_normal((k * n, p)) + 0.7 * np.eye(k, p)[y], y


@pytest.mark.parametrize(
    "params, name",
    [
        ({"lam": "0.1"}, "lam"),
        ({"lam": True}, "lam"),
        ({"lam": None}, "lam"),
        ({"lam": 1e-300}, "lam"),
        ({"lam": 1e300}, "lam"),
        ({"q": "0.5"}, "q"),
        ({"tol": False}, "tol"),
        ({"rounds": True}, "rounds"),
        ({"rounds": 2.0}, "rounds"),
        ({"val_fraction": "0.2"}, "val_fraction"),
        ({"method": ["sd"]}, "method"),
    ],
)
def test_parameters_are_validated_like_scikit_learn(params, name):
    x, y = _data()
    with pytest.raises(InvalidParameterError) as exc:
        SelfDistillationClassifier(**params).fit(x, y)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, TypeError)
    assert str(exc.value).startswith(name)


def test_numpy_scalars_are_accepted():
    x, y = _data()
    est = SelfDistillationClassifier(lam=np.float32(0.01), rounds=np.int64(1)).fit(x, y)
    assert est.n_rounds_ == 1


def _never_called(*args, **kwargs):
    raise AssertionError("work started before the refusal")


def test_absurd_rounds_are_refused_before_any_work(monkeypatch):
    # Used to fail after ~27 s of rounds: no round may start (checked by the call, not a clock).
    x, y = _data()
    monkeypatch.setattr(SelfDistillationClassifier, "_fit_stages", _never_called)
    with pytest.raises(ValueError, match="MAX_FIT_SECONDS"):
        SelfDistillationClassifier(rounds=10**6).fit(x, y)


@pytest.mark.parametrize("factor", [1e200, 1e-300, 1e300])
def test_center_l2_is_scale_free(factor):
    """Features times 1e200 overflowed the row norms (a trivial fit, train accuracy 1/K) and
    times 1e-300 underflowed them silently; the fit must not see the scale at all."""
    x, y = _data()
    ref = SelfDistillationClassifier(lam=1e-2).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / underflow warning either
        est = SelfDistillationClassifier(lam=1e-2).fit(x * factor, y)
        assert est.score(x * factor, y) == ref.score(x, y)
    np.testing.assert_allclose(est.stage_weights_, ref.stage_weights_, rtol=1e-12, atol=1e-14)


def test_preprocess_is_scale_free_and_keeps_units_without_normalising():
    x, _ = _data()
    idx = np.arange(40)
    for factor in (1e200, 1e-300):
        a, b = preprocess(x, idx).features, preprocess(x * factor, idx).features
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15)
    centred = preprocess(x * 1e200, idx, normalize=False)
    np.testing.assert_allclose(centred.features, (x - x[idx].mean(axis=0)) * 1e200, rtol=1e-12)


def test_complex_features_are_refused():
    x, y = _data()
    with pytest.raises(ValueError, match="[Cc]omplex"):
        SelfDistillationClassifier().fit(x * (1 + 1j), y)
    with pytest.raises(ValueError, match="complex"):
        validate_dataset(x * 1j, y)


@pytest.mark.parametrize("method", ["pll-ce", "pll-candidate", "pll-gce", "pll-gce-ref"])
def test_pll_at_two_classes_uses_the_shared_words(method):
    x, y = _data(k=2)
    with pytest.raises(ValueError) as exc:
        SelfDistillationClassifier(method=method).fit(x, y)
    assert str(exc.value) == pll_undefined_reason(method, 2)


# ---------------------------------------------------------------------------------------------
# loaders


@pytest.mark.parametrize(
    "labels, words",
    [
        ([0, 1, 1e300], "maximum 1e+300"),
        ([0, 1, -1e300], "minimum -1e+300"),
        (np.array([0, 1, 2**63 + 5], dtype=np.uint64), "maximum 9223372036854775813"),
        ([0, 1, 10**12], "maximum 1000000000000"),
        ([True, False, True], "dtype bool"),
    ],
)
def test_label_values_are_checked_before_any_cast_or_bincount(labels, words):
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        validate_dataset(np.ones((3, 2)), np.asarray(labels))


def _npz_with_declared_shape(path, shape):
    """An .npz whose 'features' header declares ``shape`` but holds no data (nothing to load)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("features.npy", header.getvalue())
        buf = io.BytesIO()
        np.save(buf, np.zeros(3, dtype=np.int64))
        zf.writestr("labels.npy", buf.getvalue())


def test_npz_members_are_checked_by_shape_before_loading(tmp_path, monkeypatch):
    _npz_with_declared_shape(tmp_path / "huge.npz", (10**7, 10**6))  # 80 TB declared
    # Refused from the header: no member is read (checked by the call, not a clock).
    monkeypatch.setattr(np.lib.format, "read_array", _never_called)
    with pytest.raises(ValueError, match="GB to load.*--max-memory"):
        load_npz(tmp_path / "huge.npz")
    monkeypatch.undo()
    _npz_with_declared_shape(tmp_path / "cube.npz", (2, 2, 2))
    with pytest.raises(ValueError, match="2-D array"):
        load_npz(tmp_path / "cube.npz")


def test_csv_is_read_with_byte_and_line_caps(tmp_path, monkeypatch):
    from simulations import datasets

    path = tmp_path / "f.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 5},{i % 3}\n" for i in range(300)))
    assert load_csv(path).n_samples == 300
    with pytest.raises(ValueError, match="GB to load.*--max-memory"):
        load_csv(path, max_memory=1000)  # 4 bytes of float64 per byte of text, at most
    monkeypatch.setattr(datasets, "MAX_CSV_LINE", 8)
    with pytest.raises(ValueError, match="line 1 is longer than"):
        load_csv(path)


@pytest.mark.parametrize("factor", [1e200, 1e-300])
def test_raw_features_whose_scale_moves_lam_out_of_range_are_refused(factor):
    """Without preprocessing only lam / ||x||^2 matters: x 1e200 overflowed inside the solver
    (an UnboundLocalError traceback), x 1e-300 fitted a trivial model silently."""
    x, y = _data()
    with pytest.raises(ValueError, match="lam / max .*preprocess='center-l2'"):
        SelfDistillationClassifier(preprocess=None).fit(x * factor, y)


def test_raw_features_at_another_scale_with_lam_scaled_alike_fit_the_same():
    x, y = _data()
    ref = SelfDistillationClassifier(preprocess=None, lam=1e-2).fit(x, y)
    est = SelfDistillationClassifier(preprocess=None, lam=1e-2 * 1e6).fit(x * 1e3, y)
    # The same problem: both solves are certified to the default tol = 1e-9 relative residual
    # of outputs within 1 of 1/K, so they agree to ~1e-9.
    np.testing.assert_allclose(est.predict_proba(x * 1e3), ref.predict_proba(x), atol=1e-9)
