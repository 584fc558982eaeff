"""Smoke test of figures/real_gain.py under Agg with the tiny preset."""

from __future__ import annotations

import csv

from figures import real_gain


def test_real_gain_tiny_preset_writes_png_pdf_csv(tmp_path):
    assert real_gain.main(["--out", str(tmp_path), "--preset", "tiny", "--seed", "1"]) == 0
    for ext in ("png", "pdf", "csv"):
        path = tmp_path / f"real_gain.{ext}"
        assert path.exists() and path.stat().st_size > 0
    with open(tmp_path / "real_gain.csv") as fh:
        rows = list(csv.DictReader(fh))
    preset = real_gain.PRESETS["tiny"]
    # one row per (noise, eta) x (SD rounds + 2 PLL losses)
    assert len(rows) == len(preset["noises"]) * len(preset["etas"]) * (preset["rounds"] + 2)
    assert {r["method"] for r in rows} == {"sd", "pll_ce", "pll_gce"}
    for r in rows:
        gain, test, teacher = (
            float(r[k]) for k in ("gain_mean", "test_acc_mean", "teacher_test_acc_mean")
        )
        assert abs(gain - (test - teacher)) < 1e-12  # gain is the paired difference of means
