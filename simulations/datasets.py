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

import itertools
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from selfdistill_cli.files import check_input_file
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
    "normalise_rows",
    "power_of_two_scale",
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
    if lab.dtype == bool or not (
        np.issubdtype(lab.dtype, np.integer) or np.issubdtype(lab.dtype, np.floating)
    ):
        raise ValueError(f"labels must be integer class indices, got dtype {lab.dtype}")
    if np.issubdtype(lab.dtype, np.floating):
        if not np.all(np.isfinite(lab)):
            raise ValueError("labels contains NaN or inf")
        if not np.all(lab == np.round(lab)):
            raise ValueError("labels must be integer class indices (found non-integer values)")
    # Range first, in the labels' own type: a label of 1e300 (or 2^63 as uint64) is reported as
    # it is, not wrapped by a cast to int64, and a label of 1e12 never sizes a bincount.
    low, high = lab.min(), lab.max()
    if low < 0:
        raise ValueError(f"labels must be >= 0 (class indices 0..K-1), got minimum {_num(low)}")
    if high >= n_samples:
        raise ValueError(
            f"labels must be class indices 0..K-1 with every class present, so at most "
            f"{n_samples - 1} for {n_samples} samples; got maximum {_num(high)}"
        )
    lab = lab.astype(np.int64)
    k = int(high) + 1
    if k < 2:
        raise ValueError("labels must contain at least 2 classes, got only class 0")
    counts = np.bincount(lab, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(
            f"labels must use every class 0..{k - 1}; classes {empty.tolist()[:10]} have no "
            "samples (remap with np.unique(labels, return_inverse=True))"
        )
    return lab, k


def _num(value) -> str:
    """A label value for messages: integers as integers, other numbers in ``%g`` form."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 2**63 else f"{v:g}"


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


#: Longest line of a CSV file read (a row of ~4 million numbers); a longer one (e.g. a file of
#: NUL bytes with no newline) is refused instead of being read into memory whole.
MAX_CSV_LINE = 64 * 2**20
#: Fewest bytes a number takes in a CSV file (one digit and a separator): a file of S bytes holds
#: at most S / 2 numbers, 4 S bytes once parsed into float64.
_CSV_BYTES_PER_NUMBER = 2


def _memory_limit(max_memory) -> float | None:
    """The byte budget for loading: ``max_memory`` if given, else the memory available now."""
    if max_memory is not None:
        return float(max_memory)
    from selfdistill_cli import available_bytes

    return available_bytes()[0]


def _check_load(nbytes: float, what: str, max_memory) -> None:
    """Refuse (one line, with the estimate and the override) a load above the memory limit."""
    limit = _memory_limit(max_memory)
    if limit is not None and nbytes > limit:
        raise ValueError(
            f"{what} needs about {nbytes / 1e9:.3g} GB to load but the limit is "
            f"{limit / 1e9:.3g} GB; use a smaller file or pass --max-memory GB to override"
        )


def _array_header(fh, what: str):
    """``(shape, dtype)`` of the ``.npy`` data in ``fh`` from its header alone (nothing loaded)."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{what} is not a .npy array ({' '.join(str(exc).split())})") from None
    return tuple(int(x) for x in shape), np.dtype(dtype)


def _check_header(shape, dtype, what: str, ndim: int) -> int:
    """Check a stored array's shape and type before it is loaded; return its element count."""
    if len(shape) != ndim:
        raise ValueError(f"{what} must be a {ndim}-D array, got shape {shape}")
    if dtype.kind == "c":
        raise ValueError(f"{what} must hold real numbers, got complex dtype {dtype}")
    if dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers, got dtype {dtype}")
    return int(np.prod(shape, dtype=object))


def load_npz(path, *, max_memory=None) -> Dataset:
    """Load ``features``, ``labels`` and optional split indices from an ``.npz`` archive.

    Every member's shape and type are read from its header and checked against the memory limit
    (``max_memory`` bytes, default the memory available now) before any array is loaded.
    """
    name = os.path.basename(str(path))
    check_input_file(path, "features file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a zip archive"
        raise ValueError(f"{path}: not a valid .npz archive ({detail})") from None
    with archive:
        members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
        missing = {"features", "labels"} - set(members)
        if missing:
            raise ValueError(
                f"{path}: .npz must contain arrays 'features' and 'labels'; missing "
                f"{sorted(missing)} (found {sorted(members)})"
            )
        present = [k for k in SPLIT_KEYS if k in members]
        if present and len(present) != len(SPLIT_KEYS):
            raise ValueError(
                f"{path}: give all of {list(SPLIT_KEYS)} or none; found only {present}"
            )
        keys = ["features", "labels", *present]
        total = 0
        for key in keys:
            with archive.open(members[key]) as fh:
                shape, dtype = _array_header(fh, f"{path}: {key}")
            size = _check_header(shape, dtype, f"{path}: {key}", 2 if key == "features" else 1)
            total += size * (dtype.itemsize + 8)  # as stored, and as float64 / int64
        _check_load(total, f"{path}", max_memory)
        try:
            arrays = {}
            for key in keys:
                with archive.open(members[key]) as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: cannot read the archive ({exc})") from None
    splits = {k: arrays[k] for k in SPLIT_KEYS} if present else None
    return validate_dataset(arrays["features"], arrays["labels"], name=name, splits=splits)


def _load_npy(path, what: str, ndim: int, max_memory) -> np.ndarray:
    check_input_file(path, what)
    try:
        with open(path, "rb") as fh:
            shape, dtype = _array_header(fh, f"{what} {str(path)!r}")
            size = _check_header(shape, dtype, f"{what} {str(path)!r}", ndim)
            _check_load(size * (dtype.itemsize + 8), f"{what} {str(path)!r}", max_memory)
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def load_npy_pair(features_path, labels_path, *, max_memory=None) -> Dataset:
    """Load features (N, p) and labels (N,) from two ``.npy`` files (headers checked first)."""
    x = _load_npy(features_path, "features file", 2, max_memory)
    y = _load_npy(labels_path, "labels file", 1, max_memory)
    return validate_dataset(x, y, name=os.path.basename(str(features_path)))


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _csv_lines(fh, path):
    """Non-blank lines of ``fh`` (stripped), each read with the :data:`MAX_CSV_LINE` cap."""
    lineno = 0
    while True:
        line = fh.readline(MAX_CSV_LINE + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_CSV_LINE:
            raise ValueError(
                f"{path}: line {lineno} is longer than {MAX_CSV_LINE // 2**20} MB (no line break); "
                "store very wide data as .npy or .npz"
            )
        line = line.strip()
        if line:
            yield lineno, line


def load_csv(path, *, max_memory=None) -> Dataset:
    """Load a CSV file: feature columns then the integer label in the last column (see module).

    Read twice, line by line: the first pass checks every row's width and counts the rows, the
    second fills one preallocated float64 array, so memory is the array itself. The file size is
    checked against the memory limit first (a file of S bytes parses to at most 4 S bytes).
    """
    size = check_input_file(path, "features file")
    _check_load(8 * size / _CSV_BYTES_PER_NUMBER, f"CSV file {str(path)!r}", max_memory)
    try:
        with open(path, encoding="utf-8", errors="strict") as fh:
            lines = _csv_lines(fh, path)
            first = next(lines, None)
            if first is None:
                raise ValueError(f"{path}: CSV file is empty")
            header = not all(_is_number(f.strip()) for f in first[1].split(","))
            width, rows = None, 0
            for _, line in itertools.chain([] if header else [first], lines):
                n_fields = line.count(",") + 1
                width = n_fields if width is None else width
                rows += 1
                if n_fields != width:
                    raise ValueError(
                        f"{path}: data row {rows} has {n_fields} columns, expected {width}"
                    )
            if rows == 0:
                raise ValueError(f"{path}: CSV file has a header but no data rows")
            if width < 2:
                raise ValueError(
                    f"{path}: CSV needs at least 2 columns (features then label), got {width}"
                )
            _check_load(8.0 * rows * width, f"CSV file {str(path)!r}", max_memory)
            arr = np.empty((rows, width))
            fh.seek(0)
            data = _csv_lines(fh, path)
            if header:
                next(data)
            for i, (_, line) in enumerate(data):
                try:
                    arr[i] = [float(f) for f in line.split(",")]
                except ValueError:
                    raise ValueError(f"{path}: data row {i + 1} has a non-numeric field") from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save it as UTF-8 CSV"
        ) from None
    except OSError as exc:
        raise ValueError(f"features file {str(path)!r} cannot be read: {exc.strerror}") from None
    return validate_dataset(arr[:, :-1], arr[:, -1], name=os.path.basename(str(path)))


def load_digits_dataset() -> Dataset:
    """scikit-learn's bundled digits (N = 1797, p = 64, K = 10); no network access."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return validate_dataset(bunch.data.astype(float), bunch.target, name="digits")


def load_dataset(features_path=None, labels_path=None, *, max_memory=None) -> Dataset:
    """Dispatch on the file extension; ``None`` gives the embedded digits default.

    ``.npz`` and ``.csv`` are self-contained; ``.npy`` requires ``labels_path`` (another ``.npy``).
    Every file is checked before it is read (:func:`selfdistill_cli.files.check_input_file`: a
    directory, ``/dev/zero`` or another device, a FIFO, a missing or unreadable file is refused
    with one line) and loaded only if its arrays fit in ``max_memory`` bytes (default: the memory
    available now).
    """
    if features_path is None:
        if labels_path is not None:
            raise ValueError("labels given without features (--labels needs --features)")
        return load_digits_dataset()
    path = str(features_path)
    ext = os.path.splitext(path)[1].lower()
    check_input_file(path, "features file")
    if ext == ".npy":
        if labels_path is None:
            raise ValueError("a .npy features file needs a labels file (.npy) as well")
        return load_npy_pair(path, labels_path, max_memory=max_memory)
    if labels_path is not None:
        raise ValueError(f"labels_path is only used with .npy features, not {ext!r}")
    if ext == ".npz":
        return load_npz(path, max_memory=max_memory)
    if ext == ".csv":
        return load_csv(path, max_memory=max_memory)
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


def power_of_two_scale(values) -> float:
    """``2^e`` with ``max|values| <= 2^e < 2 max|values|`` (1.0 for all-zero ``values``).

    Dividing by a power of two is exact (no rounding) for normal numbers, so preprocessing on
    ``x / scale`` gives the same bits as on ``x`` scaled by any power of two: features times 1e200
    or 1e-300 are preprocessed like the unscaled ones instead of overflowing (squares above
    1.8e308) or underflowing (squares below 5e-324) in the row norms.
    """
    top = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if top == 0.0 or not np.isfinite(top):
        return 1.0
    return float(np.ldexp(1.0, int(np.frexp(top)[1])))


def normalise_rows(out: np.ndarray) -> int:
    """L2-normalise the rows of ``out`` in place without overflow or underflow; zero rows stay.

    Each row is first divided by its largest absolute entry (then every square lies in
    ``[0, 1]`` and their sum in ``[1, p]``), then by its Euclidean norm. Returns the number of
    rows that are exactly zero.
    """
    top = np.max(np.abs(out), axis=1) if out.shape[1] else np.zeros(out.shape[0])
    zero = top == 0
    out /= np.where(zero, 1.0, top)[:, None]
    norms = np.linalg.norm(out, axis=1)
    out /= np.where(zero, 1.0, norms)[:, None]
    return int(np.sum(zero))


def preprocess(features, train_idx, *, center=True, normalize=True) -> Preprocessed:
    """Centre with the training mean, then L2-normalise every row (module docstring).

    Scale-free: the features are divided by a power of two near their largest training entry
    (:func:`power_of_two_scale`, exact) before the mean and the norms are formed, and every row
    is normalised without overflow (:func:`normalise_rows`), so features times ``1e200`` or
    ``1e-300`` give the same result as the unscaled ones.

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
    scale = power_of_two_scale(x[idx]) if center or normalize else 1.0
    out = x / scale
    mean = out[idx].mean(axis=0) if center else np.zeros(x.shape[1])
    out -= mean
    zero_rows = 0
    if normalize:
        zero_rows = normalise_rows(out)
    else:
        out *= scale  # centring only: keep the features' units
    return Preprocessed(features=out, train_mean=mean * scale, zero_rows=zero_rows)
