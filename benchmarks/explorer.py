"""Benchmark: per-update time of the regime explorer vs a full N x N computation of the same panels.

For K in {2, 5, 10} (n = 50 per class, c = 0.5, d = 0.1, symmetric noise, lam = 1e-3, R = 8 rounds)
this measures, as the median over ``--repeats`` updates with a different parameter value each time
(so no cache is hit unless stated):

* ``theory/eta``   :func:`figures.explorer_model.compute_state` when only ``eta`` moves (the phase
  diagram is cached: it does not depend on ``eta``);
* ``theory/lam``   the same when ``lam`` moves (phase diagram recomputed: 24 linear predictions);
* ``update``       one ``lam`` slider move of :class:`figures.explorer.ExplorerApp` with blitting
  (``blit=True``, rendered off screen under Agg): theory + setting every artist's data + the
  redraw (:meth:`~figures.explorer.ExplorerApp.refresh`: the data artists over the cached
  background, plus whatever static part changed -- a rescaled panel, a changed line of text --
  repainted into it) -- what a user waits for after moving a slider, from ``Slider.set_val`` to
  the blit;
* ``draw``         one full Agg ``canvas.draw()`` of the 15 x 9 inch window (what every update
  cost before blitting; now only when the shared legend's entries change);
* ``baseline``     the exact curves computed the N x N way, in this run: teacher + R
  self-distillation rounds + PLL student with :func:`simulations.distill.self_distill` /
  :func:`simulations.distill.train_pll` on the (N, N) block Gram matrix (one factorisation shared).

Finite-p curves (issue 24: at most 200 ms per update at K = 10 and 500 ms at K = 20): the same
``update`` with the ``N/p`` slider at 1 (``p = N``), where :func:`theory.finite.predict_finite`
is recomputed for every new ``lam``, at K = 10 and K = 20 (both within the window's
:data:`figures.explorer_model.FINITE_MAX_CLASSES`). Every ``lam`` value is new, so no cache
keyed on ``lam`` is hit; what does not depend on ``lam`` (the finite-p spectrum) is reused, as
in a drag. How each update redrew is counted (``finite_draw_kinds``: ``blit`` data only,
``axes`` some static part repainted, ``full`` the whole window), and how many updates repainted a
panel (``finite_panel_repaints``: a rescaled eigen-weight axis, the costly static part); the
slowest single update is printed next to the median, in wall time and in CPU time
(``time.process_time``, less sensitive to other work on a shared machine): a user dragging the
slider feels every move, not the median.

The exact finite-ratio theory (seconds per point) is never part of an update: the window looks
it up in its cache or takes its up-front estimate, and an interactive window computes it in a
background thread once the point stays put; under Agg (this benchmark) that thread never starts.

All timings use single-threaded BLAS (as the explorer does); ratios are ``baseline / update``.

Run from the repository root:
``python -m benchmarks.explorer [--quick] [--per-class N] [--repeats R] [--drag] [--json]``
(``python benchmarks/explorer.py`` would import ``benchmarks/theory.py`` as ``theory``).
``--json`` prints one object ``{"finite_update_ms": {"10": ..., "20": ...}, "update_ms": {K: ...},
"theory_ms": {...}, "full_draw_ms": {...}, "budget_ms": {...}, ...}`` (medians in ms), with the
slowest single finite-p update in ``"finite_update_max_ms"`` (wall) and
``"finite_update_cpu_max_ms"`` (CPU), beside the CPU medians ``"finite_update_cpu_ms"``,
``"finite_panel_update_cpu_ms"`` (updates that repainted a panel) and
``"finite_other_update_cpu_ms"``, and the count ``"finite_panel_repaints"``. ``--drag`` adds
``"finite_drag"``: a lam drag at K = 10 (:data:`DRAG_LAMS`, up and down in small steps, then the
slider's ends), every move timed -- its median and maximum, wall and CPU.
"""

from __future__ import annotations

import gc
import json
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from figures import explorer_model  # noqa: E402
from figures.explorer import ExplorerApp  # noqa: E402
from figures.explorer_model import PhaseCache, compute_state  # noqa: E402
from selfdistill_cli import ArgumentParser, int_in
from simulations.distill import self_distill, train_pll  # noqa: E402
from theory.blas import single_thread_blas  # noqa: E402
from theory.gram import block_gram  # noqa: E402
from theory.noise import exact_counts, transition_matrix  # noqa: E402

BUDGET_MS = 200.0
#: Issue 24's budgets for an update with the finite-p curves, per K.
FINITE_BUDGET_MS = {10: 200.0, 20: 500.0}


def _median_ms(fn, values):
    times = []
    for v in values:
        start = time.perf_counter()
        fn(v)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _round(x):
    return None if x is None else round(x, 1)


def _drag_summary(res) -> dict:
    """What ``--drag`` reports: per-move medians and maxima (ms), panel repaints."""
    return {
        "moves": sum(res["kinds"].values()),
        "update_ms": round(res["update"], 1),
        "update_max_ms": round(res["range"][1], 1),
        "cpu_ms": round(res["cpu"], 1),
        "cpu_max_ms": round(res["cpu_max"], 1),
        "panel_repaints": res["panel_repaints"],
        "panel_cpu_ms": _round(res["panel_cpu"]),
        "other_cpu_ms": _round(res["other_cpu"]),
        "draw_kinds": res["kinds"],
    }


def labels_from_counts(counts):
    """Class-major noisy labels realising the count matrix (class k: C[k, l] points labelled l)."""
    return np.concatenate([np.repeat(np.arange(counts.shape[0]), row) for row in counts])


def baseline_ms(params, repeats):
    k, n = params["n_classes"], params["per_class"]
    counts = exact_counts(transition_matrix("sym", k, params["eta"]), n)
    labels = labels_from_counts(counts)
    gram = block_gram(k, n, params["c"], params["d"])

    def run(lam):
        sd = self_distill(labels, k, lam, params["rounds"], gram=gram)
        train_pll(sd.solutions[0], lam)

    lams = params["lam"] * np.linspace(1.0, 1.2, repeats)
    with single_thread_blas():
        return _median_ms(run, lams)


def _params(k, per_class):
    return {"n_classes": k, "per_class": per_class, "c": 0.5, "d": 0.1, "noise": "sym",
            "eta": 0.3, "lam": 1e-3, "rounds": 8}  # fmt: skip


def app_update_ms(params, repeats, lams=None) -> dict:
    """``lam`` slider updates (theory + artists + partial redraw) and full draws, in ms.

    Wall and CPU time (``time.process_time``: what the update costs this process, less
    sensitive to other work on the machine) per update: median and maximum, the slowest
    single move being what a user dragging the slider feels. ``panel_repaints`` counts the
    updates that repainted a panel (one whose limits, title or legend changed: a rescaled
    eigen-weight axis; or a full draw) and ``panel_cpu`` / ``other_cpu`` the median CPU time
    of those and of the others. ``lams``: the slider's values in turn (default: ``repeats``
    new values from 1.02 to 2 times ``params['lam']``).
    """
    app = ExplorerApp(params, fig=plt.figure(figsize=(15, 9)), blit=True)
    try:
        app.refresh()  # the first full draw (background)
        # The earlier measurements' garbage (closed windows) would otherwise be collected
        # during one of these moves (a full collection: ~0.1 s after the K = 20 runs).
        gc.collect()
        slider = app.sliders["lam"]
        if lams is None:
            lams = params["lam"] * np.logspace(0.01, 0.3, repeats)
        theory, draws, kinds, times, cpu, panel = [], [], [], [], [], []

        def move(v):
            before = app.panels.axes_signatures()
            start, start_cpu = time.perf_counter(), time.process_time()
            slider.set_val(np.log10(v))
            cpu.append(1e3 * (time.process_time() - start_cpu))
            times.append(1e3 * (time.perf_counter() - start))
            theory.append(1e3 * app.state.seconds)
            draws.append(1e3 * app.last_draw_seconds)
            kinds.append(app.last_draw_kind)
            changed = app.panels.axes_signatures() != before
            panel.append(app.last_draw_kind == "full" or changed)

        for v in lams:
            move(v)
        full = _median_ms(lambda _v: app.fig.canvas.draw(), range(max(3, repeats // 2)))
        panel_cpu = [c for c, p in zip(cpu, panel, strict=True) if p]
        other_cpu = [c for c, p in zip(cpu, panel, strict=True) if not p]
        return {
            "update": statistics.median(times),
            "range": (min(times), max(times)),
            "cpu": statistics.median(cpu),
            "cpu_max": max(cpu),
            "panel_repaints": sum(panel),
            "panel_cpu": statistics.median(panel_cpu) if panel_cpu else None,
            "other_cpu": statistics.median(other_cpu) if other_cpu else None,
            "theory": statistics.median(theory),
            "redraw": statistics.median(draws),
            "kinds": {k: kinds.count(k) for k in ("blit", "axes", "full")},
            "draw": full,
            "finite": app.state.finite is not None,
        }
    finally:
        plt.close(app.fig)


def bench(k, per_class, repeats):
    params = _params(k, per_class)
    cache = PhaseCache()
    compute_state(params, cache=cache)  # warm imports
    etas = np.linspace(0.2, 0.4, repeats)
    lams = params["lam"] * np.logspace(0, 0.5, repeats)
    out = {
        "theory/eta": _median_ms(lambda e: compute_state(params | {"eta": e}, cache=cache), etas),
        "theory/lam": _median_ms(lambda v: compute_state(params | {"lam": v}, cache=cache), lams),
    }
    app = app_update_ms(params, repeats)
    out["update"], out["draw"], out["redraw"] = app["update"], app["draw"], app["redraw"]
    out["baseline"] = baseline_ms(params, max(3, repeats // 2))
    return out


def bench_finite(k, per_class, repeats) -> dict:
    """Update with the finite-p curves at ``p = N`` (the window's K limit lifted here only)."""
    saved = explorer_model.FINITE_MAX_CLASSES
    explorer_model.FINITE_MAX_CLASSES = max(saved, k)
    try:
        res = app_update_ms(_params(k, per_class) | {"n_over_p": 1.0}, repeats)
    finally:
        explorer_model.FINITE_MAX_CLASSES = saved
    if not res["finite"]:
        raise RuntimeError(f"the finite-p theory was not computed at K = {k}")
    return res


#: A lam drag at K = 10 (issue 24 follow-up: every single move, not the median): up from 1e-3 to
#: 1e-1 and back in steps of 10^0.05 (the eigen-weight axis rescales every few steps), then
#: jumps to the slider's ends and back.
DRAG_LAMS = np.concatenate(
    [10.0 ** np.arange(-3, -0.999, 0.05), 10.0 ** np.arange(-1.05, -3.001, -0.05)]
    + [np.array([1e-6, 1e-4, 10.0, 1.0, 1e-2])]
)


def bench_drag(k, per_class) -> dict:
    """:data:`DRAG_LAMS` moves with the finite-p curves at ``p = N`` (as :func:`bench_finite`)."""
    saved = explorer_model.FINITE_MAX_CLASSES
    explorer_model.FINITE_MAX_CLASSES = max(saved, k)
    try:
        params = _params(k, per_class) | {"n_over_p": 1.0}
        return app_update_ms(params, len(DRAG_LAMS), lams=DRAG_LAMS)
    finally:
        explorer_model.FINITE_MAX_CLASSES = saved


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K in {2, 5}, finite K = 10 only, 3 reps")
    ap.add_argument("--per-class", type=int_in(1, 10**5), default=50)
    ap.add_argument("--repeats", type=int_in(1, 1000), default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--drag",
        action="store_true",
        help="also a lam drag at K = 10 with the finite-p curves (DRAG_LAMS): every move's time",
    )
    args = ap.parse_args(argv)
    ks = (2, 5) if args.quick else (2, 5, 10)
    finite_ks = (10,) if args.quick else (10, 20)
    repeats = 3 if args.quick else args.repeats
    rows = {k: bench(k, args.per_class, repeats) for k in ks}
    finite = {k: bench_finite(k, args.per_class, repeats) for k in finite_ks}
    drag = bench_drag(10, args.per_class) if args.drag else None
    if args.json:
        out = {
            "finite_update_ms": {str(k): round(v["update"], 1) for k, v in finite.items()},
            "finite_theory_ms": {str(k): round(v["theory"], 1) for k, v in finite.items()},
            "finite_redraw_ms": {str(k): round(v["redraw"], 1) for k, v in finite.items()},
            "finite_update_range_ms": {
                str(k): [round(x, 1) for x in v["range"]] for k, v in finite.items()
            },
            "finite_draw_kinds": {str(k): v["kinds"] for k, v in finite.items()},
            "finite_update_max_ms": {str(k): round(v["range"][1], 1) for k, v in finite.items()},
            "finite_update_cpu_ms": {str(k): round(v["cpu"], 1) for k, v in finite.items()},
            "finite_update_cpu_max_ms": {str(k): round(v["cpu_max"], 1) for k, v in finite.items()},
            "finite_panel_repaints": {str(k): v["panel_repaints"] for k, v in finite.items()},
            "finite_panel_update_cpu_ms": {
                str(k): _round(v["panel_cpu"]) for k, v in finite.items()
            },
            "finite_other_update_cpu_ms": {
                str(k): _round(v["other_cpu"]) for k, v in finite.items()
            },
            "update_ms": {str(k): round(v["update"], 1) for k, v in rows.items()},
            "theory_ms": {str(k): round(v["theory/lam"], 1) for k, v in rows.items()},
            "redraw_ms": {str(k): round(v["redraw"], 1) for k, v in rows.items()},
            "full_draw_ms": {str(k): round(v["draw"], 1) for k, v in rows.items()},
            "baseline_ms": {str(k): round(v["baseline"], 1) for k, v in rows.items()},
            "budget_ms": {str(k): FINITE_BUDGET_MS[k] for k in finite_ks} | {"block": BUDGET_MS},
            "per_class": args.per_class,
            "repeats": repeats,
        }
        if drag is not None:
            out["finite_drag"] = {"10": _drag_summary(drag)}
        print(json.dumps(out, indent=1))
        return 0
    print(f"explorer update time, n = {args.per_class}, R = 8, median of {repeats} (ms)")
    header = f"{'K':>3} {'N':>5} {'theory/eta':>11} {'theory/lam':>11} {'update':>8} "
    header += (
        f"{'redraw':>7} {'full draw':>10} {'baseline':>9} {'baseline/update':>16} {'<200ms':>7}"
    )
    print(header)
    for k, r in rows.items():
        print(
            f"{k:>3} {k * args.per_class:>5} {r['theory/eta']:>11.1f} {r['theory/lam']:>11.1f} "
            f"{r['update']:>8.1f} {r['redraw']:>7.1f} {r['draw']:>10.1f} {r['baseline']:>9.1f} "
            f"{r['baseline'] / r['update']:>16.1f} {'yes' if r['update'] < BUDGET_MS else 'NO':>7}"
        )
    print("with the finite-p curves (N/p = 1), lam moves:")
    print(
        f"{'K':>3} {'update':>8} {'min..max':>13} {'cpu':>6} {'cpu max':>8} {'theory':>8} "
        f"{'redraw':>7} {'blit/axes/full':>15} {'panel':>6} {'budget':>7} {'met':>4}"
    )
    for k, r in finite.items():
        ok = "yes" if r["range"][1] <= FINITE_BUDGET_MS[k] else "NO"
        lo, hi = r["range"]
        kinds = "/".join(str(r["kinds"][x]) for x in ("blit", "axes", "full"))
        print(
            f"{k:>3} {r['update']:>8.1f} {f'{lo:.0f}..{hi:.0f}':>13} {r['cpu']:>6.1f} "
            f"{r['cpu_max']:>8.1f} {r['theory']:>8.1f} {r['redraw']:>7.1f} {kinds:>15} "
            f"{r['panel_repaints']:>6} {FINITE_BUDGET_MS[k]:>7.0f} {ok:>4}"
        )
    print("update = theory + artists + redraw (blit over the cached background; a changed panel")
    print("or text repainted into it); a full draw happens only when the shared legend changes;")
    print("cpu: CPU time of the update; panel: updates that repainted a panel (a rescaled axis);")
    print("met: the slowest single update within the budget")
    if drag is not None:
        d = _drag_summary(drag)
        print(
            f"lam drag at K = 10 ({d['moves']} moves, DRAG_LAMS): median {d['update_ms']} ms "
            f"(max {d['update_max_ms']}), CPU median {d['cpu_ms']} ms (max {d['cpu_max_ms']}); "
            f"{d['panel_repaints']} repainted a panel (CPU median {d['panel_cpu_ms']} ms, "
            f"others {d['other_cpu_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
