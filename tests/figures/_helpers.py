"""Shared assertions for the figure smoke tests."""

import csv
import dataclasses

import numpy as np

#: CSV columns that hold words (names of panels, metrics, models, ...); every other cell of a
#: figure's CSV is a number that float() reads, true/false, or empty (undefined).
LABEL_COLUMNS = {
    "panel",
    "metric",
    "model",
    "noise",
    "method",
    "kind",
    "regime",
    "selection",
    "loss",
    "stationary_point",
}
#: Columns holding several numbers joined by ";" (each must read back through float()).
LIST_COLUMNS = {"lams_used"}


def assert_csv_reads_back(path):
    """Every cell reads back through ``csv`` and ``float()`` (no numpy reprs like np.float64(x))."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, f"{path} has no data rows"
    for i, row in enumerate(rows):
        assert None not in row and None not in row.values(), f"{path} row {i}: wrong field count"
        for col, cell in row.items():
            if col in LABEL_COLUMNS or cell in ("", "true", "false"):
                continue
            if col in LIST_COLUMNS:
                for part in cell.split(";"):
                    float(part)
                continue
            try:
                float(cell)
            except ValueError:
                raise AssertionError(
                    f"{path} row {i} column {col!r}: {cell!r} is no number"
                ) from None
    return rows


def assert_outputs(out_dir, name):
    """PNG, PDF and a non-empty CSV with a header were written; the CSV reads back."""
    for ext in ("png", "pdf", "csv"):
        path = out_dir / f"{name}.{ext}"
        assert path.exists() and path.stat().st_size > 0, path
    return assert_csv_reads_back(out_dir / f"{name}.csv")


def corrupted(pred):
    """A GroupPrediction whose accuracies are replaced by 1 - accuracy (a wrong theory)."""
    fields = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")
    return dataclasses.replace(pred, **{f: 1.0 - np.asarray(getattr(pred, f)) for f in fields})
