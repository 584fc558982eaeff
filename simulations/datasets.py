"""Loading, validating and preprocessing (features, labels) for linear probing on real features.

Accepted inputs
---------------
``.npz`` archive
    Arrays ``features`` (N, p) and ``labels`` (N,), optionally a predefined split given by *all
    three* integer index arrays ``train_idx``, ``val_idx``, ``test_idx`` (disjoint, each non-empty,
    indices into ``0..N-1``; they need not cover every sample). Other arrays are ignored. Archives
    are read with ``allow_pickle=False``.
Pair of ``.npy`` files
    ``features`` (N, p) and ``labels`` (N,), read with ``allow_pickle=False``.
``.csv`` file
    Comma-separated, one sample per row: the first ``p`` columns are the features, the **last**
    column is the integer class label. An optional single header row is skipped (detected when
    its fields are not all numbers). Blank lines are ignored; every row must have the same number
    of columns.
Embedded default
    scikit-learn's bundled handwritten digits (:func:`sklearn.datasets.load_digits`: N = 1797,
    p = 64 pixel intensities 0..16, K = 10), read from the installed package: no download.

Validation (every loader): ``features`` 2-D, non-empty and finite (NaN/inf rejected); ``labels``
1-D with one entry per row, integer-valued, in ``[0, K)`` with ``K = max(label) + 1``,
every class ``0..K-1`` present (an empty class is an error: remap with
``np.unique(labels, return_inverse=True)``), and ``K >= 2``. Errors are ``ValueError`` naming the
array.

Preprocessing (:func:`preprocess`), standard linear-probing practice:

1. centring: subtract the mean feature vector of the **training rows only** (no test statistics
   leak into training), ``x <- x - mean_{i in train} x_i``, applied to every row;
2. L2 row normalisation: ``x <- x / ||x||_2`` for every row, so that ``G_ii = 1`` as in the block
   model (paper, Section 4). A row that is exactly zero after centring is left at zero (its norm is
   zero; dividing would create NaN) and counted in the returned summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from theory.validation import check_finite_matrix

__all__ = [
    "Dataset",
    "Preprocessed",
    "SPLIT_KEYS",
    "load_csv",
    "load_dataset",
    "load_digits_dataset",
    "load_npy_pair",
    "load_npz",
    "preprocess",
    "validate_dataset",
]

#: Names of the optional split arrays in an ``.npz`` archive.
SPLIT_KEYS = ("train_idx", "val_idx", "test_idx")


@dataclass(frozen=True)
class Dataset:
    """Validated features and labels.

    Attributes
    ----------
    features : ndarray, shape (N, p), float64
    labels : ndarray, shape (N,), int64 in ``[0, K)``
    n_classes : int
        ``K >= 2``; every class occurs at least once.
    name : str
        Human-readable source (file name or ``'digits'``).
    splits : dict of str to ndarray or None
        Predefined ``{'train_idx', 'val_idx', 'test_idx'}`` index arrays, if given.
    """

    features: np.ndarray
    labels: np.ndarray
    n_classes: int
    name: str
    splits: dict | None = None

    @property
    def n_samples(self) -> int:
        return self.features.shape[0]

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    def class_counts(self) -> np.ndarray:
        """Samples per class, shape (K,)."""
        return np.bincount(self.labels, minlength=self.n_classes)


def _check_labels_array(labels, n_samples: int) -> tuple[np.ndarray, int]:
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {lab.shape}")
    if lab.shape[0] != n_samples:
        raise ValueError(
            f"labels has {lab.shape[0]} entries but features has {n_samples} rows; "
            "they must match (one label per sample)"
        )
    if not (np.issubdtype(lab.dtype, np.integer) or np.issubdtype(lab.dtype, np.floating)):
        raise ValueError(f"labels must be integer class indices, got dtype {lab.dtype}")
    if np.issubdtype(lab.dtype, np.floating):
        if not np.all(np.isfinite(lab)):
            raise ValueError("labels contains NaN or inf")
        if not np.all(lab == np.round(lab)):
            raise ValueError("labels must be integer class indices (found non-integer values)")
    lab = lab.astype(np.int64)
    if lab.min() < 0:
        raise ValueError(f"labels must be >= 0 (class indices 0..K-1), got minimum {lab.min()}")
    k = int(lab.max()) + 1
    if k < 2:
        raise ValueError("labels must contain at least 2 classes, got only class 0")
    counts = np.bincount(lab, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(
            f"labels must use every class 0..{k - 1}; classes {empty.tolist()} have no samples "
            "(remap with np.unique(labels, return_inverse=True))"
        )
    return lab, k


def _check_splits(splits, n_samples: int) -> dict:
    out = {}
    seen = np.zeros(n_samples, dtype=bool)
    for key in SPLIT_KEYS:
        idx = np.asarray(splits[key])
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"{key} must be a non-empty 1-D index array, got shape {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{key} must hold integer indices, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.min() < 0 or idx.max() >= n_samples:
            raise ValueError(
                f"{key} indices must lie in [0, {n_samples}), got [{idx.min()}, {idx.max()}]"
            )
        if np.unique(idx).size != idx.size:
            raise ValueError(f"{key} contains repeated indices")
        if np.any(seen[idx]):
            raise ValueError(f"{key} overlaps another split; train/val/test must be disjoint")
        seen[idx] = True
        out[key] = idx
    return out


def validate_dataset(features, labels, *, name="user data", splits=None) -> Dataset:
    """Validate raw arrays and return a :class:`Dataset` (rules in the module docstring).

    Parameters
    ----------
    features : array_like, shape (N, p)
    labels : array_like, shape (N,)
    name : str
    splits : mapping with keys ``train_idx``, ``val_idx``, ``test_idx``, optional

    Raises
    ------
    ValueError
        Wrong shapes, non-finite features, non-integer or negative labels, a class with no
        samples, fewer than 2 classes, or malformed / overlapping split indices.
    """
    x = check_finite_matrix(features, "features")
    lab, k = _check_labels_array(labels, x.shape[0])
    sp = None if splits is None else _check_splits(splits, x.shape[0])
    if sp is not None and np.unique(lab[sp["train_idx"]]).size < 2:
        raise ValueError("train_idx must contain samples of at least 2 classes")
    return Dataset(features=x, labels=lab, n_classes=k, name=str(name), splits=sp)


def load_npz(path) -> Dataset:
    """Load ``features``, ``labels`` and optional split indices from an ``.npz`` archive."""
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        missing = {"features", "labels"} - keys
        if missing:
            raise ValueError(
                f"{path}: .npz must contain arrays 'features' and 'labels'; missing "
                f"{sorted(missing)} (found {sorted(keys)})"
            )
        present = [k for k in SPLIT_KEYS if k in keys]
        if present and len(present) != len(SPLIT_KEYS):
            raise ValueError(
                f"{path}: give all of {list(SPLIT_KEYS)} or none; found only {present}"
            )
        splits = {k: data[k] for k in SPLIT_KEYS} if present else None
        return validate_dataset(
            data["features"], data["labels"], name=os.path.basename(str(path)), splits=splits
        )


def load_npy_pair(features_path, labels_path) -> Dataset:
    """Load features (N, p) and labels (N,) from two ``.npy`` files."""
    x = np.load(features_path, allow_pickle=False)
    y = np.load(labels_path, allow_pickle=False)
    return validate_dataset(x, y, name=os.path.basename(str(features_path)))


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def load_csv(path) -> Dataset:
    """Load a CSV file: feature columns then the integer label in the last column (see module)."""
    with open(path, encoding="utf-8") as fh:
        rows = [line.strip() for line in fh]
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError(f"{path}: CSV file is empty")
    first = [f.strip() for f in rows[0].split(",")]
    if not all(_is_number(f) for f in first):
        rows = rows[1:]  # header row
    if not rows:
        raise ValueError(f"{path}: CSV file has a header but no data rows")
    table = []
    width = None
    for lineno, row in enumerate(rows, start=1):
        fields = [f.strip() for f in row.split(",")]
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise ValueError(
                f"{path}: data row {lineno} has {len(fields)} columns, expected {width}"
            )
        try:
            table.append([float(f) for f in fields])
        except ValueError:
            raise ValueError(f"{path}: data row {lineno} has a non-numeric field") from None
    arr = np.asarray(table, dtype=float)
    if arr.shape[1] < 2:
        raise ValueError(
            f"{path}: CSV needs at least 2 columns (features then label), got {arr.shape[1]}"
        )
    return validate_dataset(arr[:, :-1], arr[:, -1], name=os.path.basename(str(path)))


def load_digits_dataset() -> Dataset:
    """scikit-learn's bundled digits (N = 1797, p = 64, K = 10); no network access."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return validate_dataset(bunch.data.astype(float), bunch.target, name="digits")


def load_dataset(features_path=None, labels_path=None) -> Dataset:
    """Dispatch on the file extension; ``None`` gives the embedded digits default.

    ``.npz`` and ``.csv`` are self-contained; ``.npy`` requires ``labels_path`` (another ``.npy``).
    """
    if features_path is None:
        if labels_path is not None:
            raise ValueError("labels_path given without features_path")
        return load_digits_dataset()
    path = str(features_path)
    ext = os.path.splitext(path)[1].lower()
    if not os.path.exists(path):
        raise ValueError(f"features file not found: {path}")
    if ext == ".npy":
        if labels_path is None:
            raise ValueError("a .npy features file needs a labels file (.npy) as well")
        return load_npy_pair(path, labels_path)
    if labels_path is not None:
        raise ValueError(f"labels_path is only used with .npy features, not {ext!r}")
    if ext == ".npz":
        return load_npz(path)
    if ext == ".csv":
        return load_csv(path)
    raise ValueError(f"unsupported features file extension {ext!r}; use .npz, .npy or .csv")


@dataclass(frozen=True)
class Preprocessed:
    """Preprocessed features and the statistics used.

    Attributes
    ----------
    features : ndarray, shape (N, p)
        Centred with the training mean, then L2-normalised row-wise.
    train_mean : ndarray, shape (p,)
    zero_rows : int
        Rows left at zero because they equalled the training mean.
    """

    features: np.ndarray
    train_mean: np.ndarray
    zero_rows: int


def preprocess(features, train_idx, *, center=True, normalize=True) -> Preprocessed:
    """Centre with the training mean, then L2-normalise every row (module docstring).

    Parameters
    ----------
    features : array_like, shape (N, p)
    train_idx : array_like of int, shape (N_train,)
        Rows whose mean is subtracted (training rows only).
    center, normalize : bool
        Switch either step off (e.g. for features that are already normalised).

    Returns
    -------
    Preprocessed
    """
    x = check_finite_matrix(features, "features")
    idx = np.asarray(train_idx)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("train_idx must be a non-empty 1-D integer index array")
    if idx.min() < 0 or idx.max() >= x.shape[0]:
        raise ValueError(f"train_idx must lie in [0, {x.shape[0]})")
    mean = x[idx].mean(axis=0) if center else np.zeros(x.shape[1])
    out = x - mean
    zero_rows = 0
    if normalize:
        norms = np.linalg.norm(out, axis=1)
        zero = norms == 0
        zero_rows = int(np.sum(zero))
        out /= np.where(zero, 1.0, norms)[:, None]
    return Preprocessed(features=out, train_mean=mean, zero_rows=zero_rows)
