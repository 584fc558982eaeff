"""Smoke test of figures/pll_real.py under Agg with the tiny preset, and its two statistics."""

from __future__ import annotations

import numpy as np
import pytest

from figures import pll_real
from tests.figures._helpers import assert_outputs


@pytest.mark.slow
def test_pll_real_tiny_preset_writes_png_pdf_csv(tmp_path):
    assert pll_real.main(["--out", str(tmp_path), "--preset", "tiny", "--seed", "2"]) == 0
    rows = assert_outputs(tmp_path, "pll_real")
    assert len(rows) == len(pll_real.PRESETS["tiny"]["etas"])
    row = rows[0]
    assert row["all_certified"] == "true"
    for key in ("coverage_train_mean", "runner_up_concentration_mean", "ce_split_mean"):
        assert 0.0 <= float(row[key]) <= 1.0
    assert float(row["ce_split_mean"]) <= 0.5


def test_runner_up_concentration_and_split_known_answers():
    labels = np.array([0, 0, 0, 1, 1, 1])
    # class 0: runner-ups 1, 1, 2 -> share 2/3; class 1: the third point's top-2 misses label 1,
    # the others have runner-ups 0 and 2 -> share 1/2.
    cand = np.array([[0, 1, 0, 1, 2, 0], [1, 0, 2, 0, 1, 2]])
    cand[:, 5] = [0, 2]
    assert pll_real.runner_up_concentration(cand, labels, 3) == pytest.approx((2 / 3 + 1 / 2) / 2)
    outputs = np.array([[0.5, 0.1, 0.3], [0.3, 0.8, 0.3], [0.2, 0.1, 0.4]])
    cand2 = np.array([[0, 1, 2], [1, 0, 0]])
    # splits: 0.3/0.8, 0.1/0.9, 0.3/0.7 -> median 0.3/0.8
    assert pll_real.candidate_split(outputs, cand2) == pytest.approx(0.375)


def test_pll_real_bad_lam_exits_2(tmp_path):
    assert pll_real.main(["--out", str(tmp_path), "--preset", "tiny", "--lam", "0"]) == 2
