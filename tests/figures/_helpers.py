"""Shared assertions for the figure smoke tests."""

import csv
import dataclasses

import numpy as np


def assert_outputs(out_dir, name):
    """PNG, PDF and a non-empty CSV with a header were written."""
    for ext in ("png", "pdf", "csv"):
        path = out_dir / f"{name}.{ext}"
        assert path.exists() and path.stat().st_size > 0, path
    with open(out_dir / f"{name}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, "CSV has no data rows"
    return rows


def corrupted(pred):
    """A GroupPrediction whose accuracies are replaced by 1 - accuracy (a wrong theory)."""
    fields = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")
    return dataclasses.replace(pred, **{f: 1.0 - np.asarray(getattr(pred, f)) for f in fields})
