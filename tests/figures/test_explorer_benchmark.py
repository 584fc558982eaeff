"""What ``benchmarks/explorer.py`` reports about single updates (issue 24 follow-up): the slowest
single move next to the median, CPU time, and the moves that repainted a panel.

No timing is asserted: only how the reported numbers relate to each other and to what the
window did (the updates themselves are timed by the benchmark, not here).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import explorer as bench  # selects the Agg backend


@pytest.mark.slow
def test_update_report_counts_the_moves_that_repainted_a_panel():
    """A lam jump by 10^3 rescales the eigen-weight axis (its smallest weight moves by far more
    than EIG_SLACK); a move back to the same lam changes no panel. Maximum >= median."""
    params = bench._params(3, 5) | {"n_over_p": 1.0}
    res = bench.app_update_ms(params, 3, lams=[1e-3, 1.0, 1.0])
    assert res["finite"]
    assert res["panel_repaints"] == 1  # the jump; the first move (same lam) and the last: none
    assert res["cpu_max"] >= res["cpu"] > 0 and res["range"][1] >= res["update"] >= res["range"][0]
    assert res["panel_cpu"] is not None and res["other_cpu"] is not None
    assert sum(res["kinds"].values()) == 3


def _fake(update, lo, hi, cpu, cpu_max, panel):
    return {"update": update, "range": (lo, hi), "cpu": cpu, "cpu_max": cpu_max,
            "panel_repaints": panel, "panel_cpu": cpu_max, "other_cpu": cpu, "theory": 1.0,
            "redraw": 1.0, "kinds": {"blit": 0, "axes": 5, "full": 0}, "draw": 2.0,
            "finite": True, "baseline": 3.0, "theory/eta": 1.0, "theory/lam": 1.0}  # fmt: skip


def test_json_reports_the_slowest_update_beside_the_median(monkeypatch, capsys):
    """``--json`` keeps its keys and adds the maxima; ``--drag`` adds the drag's summary."""
    monkeypatch.setattr(bench, "bench", lambda k, n, r: _fake(50.0, 40.0, 60.0, 45.0, 55.0, 0))
    monkeypatch.setattr(
        bench, "bench_finite", lambda k, n, r: _fake(150.0, 120.0, 190.0, 140.0, 180.0, 2)
    )
    monkeypatch.setattr(
        bench, "bench_drag", lambda k, n: _fake(110.0, 90.0, 170.0, 105.0, 165.0, 28)
    )
    assert bench.main(["--quick", "--json", "--drag"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["finite_update_ms"] == {"10": 150.0}  # unchanged key: the median
    assert out["finite_update_range_ms"] == {"10": [120.0, 190.0]}
    assert out["finite_update_max_ms"] == {"10": 190.0}
    assert out["finite_update_cpu_ms"] == {"10": 140.0}
    assert out["finite_update_cpu_max_ms"] == {"10": 180.0}
    assert out["finite_panel_repaints"] == {"10": 2}
    drag = out["finite_drag"]["10"]
    assert drag["update_max_ms"] == 170.0 and drag["cpu_max_ms"] == 165.0
    assert drag["panel_repaints"] == 28 and drag["moves"] == 5


def test_drag_goes_up_and_down_in_small_steps_then_to_the_ends():
    steps = np.diff(np.log10(bench.DRAG_LAMS[:-5]))
    assert np.all(np.abs(steps) <= 0.05 + 1e-9)  # small steps: as a drag, not jumps
    assert bench.DRAG_LAMS.min() == pytest.approx(1e-6) and bench.DRAG_LAMS.max() == 10.0
