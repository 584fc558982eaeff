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


def test_real_gain_series_have_distinct_colours():
    # paper preset: SD rounds 1..5 and both PLL students; no two series may share a colour
    # (SD round 5 and 'PLL, CE' were both vermillion).
    from matplotlib.colors import to_hex

    preset = real_gain.PRESETS["paper"]
    rows = [
        {"noise": "sym", "eta": 0.1, "method": m, "round": r, "gain_mean": 0.0, "gain_ci95": 0.0}
        for m, r in [("sd", t) for t in range(1, preset["rounds"] + 1)]
        + [("pll_ce", 1), ("pll_gce", 1)]
    ]
    fig = real_gain.plot(rows, {**preset, "etas": (0.1,)})
    handles, _ = fig.axes[0].get_legend_handles_labels()  # one errorbar container per series
    colours = [to_hex(h.lines[0].get_color()) for h in handles]
    assert len(colours) == preset["rounds"] + 2 and len(set(colours)) == len(colours)
