"""Smoke tests of the figure and explorer benchmarks (no timings are asserted: only that they run
and report what the README quotes)."""

import json

import pytest


@pytest.mark.slow
def test_figures_benchmark_reports_cpu_and_wall_per_figure(capsys):
    from benchmarks import figures as bench

    assert bench.main(["--preset", "tiny", "--only", "label_averaging", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fig = out["figures"]["label_averaging"]
    assert fig["cpu_s"] > 0 and fig["wall_s"] > 0
    assert out["total"]["cpu_s"] >= fig["cpu_s"] and out["preset"] == "tiny"


def test_figures_benchmark_rejects_unknown_figure():
    from benchmarks import figures as bench

    with pytest.raises(SystemExit):
        bench.main(["--preset", "tiny", "--only", "nope"])


@pytest.mark.slow
def test_explorer_benchmark_measures_a_blitted_update():
    import matplotlib

    matplotlib.use("Agg")
    from benchmarks import explorer as bench

    res = bench.app_update_ms(bench._params(3, 5) | {"n_over_p": 1.0}, repeats=1)
    assert res["finite"] and res["update"] > 0 and res["redraw"] > 0
    assert sum(res["kinds"].values()) == 1 and res["range"][0] <= res["update"] <= res["range"][1]
