"""Memory estimates (simulations.memory) against measured peaks, and the refusals they drive."""

import tracemalloc

import numpy as np
import pytest

from simulations.datasets import validate_dataset
from simulations.memory import (
    GB,
    OVERHEAD,
    MemoryLimitError,
    available_bytes,
    check_memory,
    group_theory_bytes,
    parse_max_memory,
    probe_bytes,
    trial_bytes,
)
from simulations.pipelines import TrialConfig, run_trial
from simulations.probe import ProbeConfig, run_probe
from theory.blas import single_thread_blas
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix
from theory.pll import predict_pll

#: An estimate may exceed the measured peak by at most this factor (it must never be below it):
#: it sums the arrays alive at the worst moment, some of which numpy frees earlier. The upper
#: bound applies to the arrays' part (the estimate without its fixed OVERHEAD).
SLACK = 3.5


def _peak(fn, *args, **kw) -> int:
    tracemalloc.start()
    try:
        with single_thread_blas():
            fn(*args, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    "params",
    [
        dict(n_classes=3, per_class=1000, dim=200),  # p <= N: primal factorisation
        dict(n_classes=4, per_class=40, dim=1500),  # p > N: Gram eigendecomposition
        dict(n_classes=3, per_class=100, dim=800, method="pll-ce", n_test=400),
        dict(n_classes=3, per_class=150, dim=300, method="pll-gce"),
        dict(n_classes=8, per_class=200, dim=64, rounds=4),
        dict(n_classes=3, per_class=120, features="exact-block"),
    ],
)
def test_trial_bytes_vs_tracemalloc_peak(params):
    cfg = TrialConfig(**params)
    peak = _peak(run_trial, cfg, 0)
    est = trial_bytes(cfg)
    assert peak <= est and est - OVERHEAD <= SLACK * peak, (peak, est)


def test_tiny_runs_stay_under_the_overhead_allowance():
    cfg = TrialConfig(n_classes=2, per_class=3, dim=4, n_test=1)
    assert _peak(run_trial, cfg, 0) <= trial_bytes(cfg)


@pytest.mark.parametrize("k", [12, 20])
def test_group_theory_bytes_vs_tracemalloc_peak(k):
    model = BlockModel(k, 10, 0.5, 0.1)
    counts = exact_counts(transition_matrix("sym", k, 0.3), 10)

    def run():
        predict_exact(model, counts, 1e-3, 3)
        predict_linear(model, counts, 1e-3, 3)
        predict_pll(model, counts, 1e-3, method="exact")

    peak = _peak(run)
    est = group_theory_bytes(k, 3)
    assert peak <= est and est - OVERHEAD <= SLACK * peak, (peak, est)


@pytest.mark.slow
@pytest.mark.parametrize("k, per, p, theory", [(10, 300, 64, True), (4, 120, 600, False)])
def test_probe_bytes_vs_tracemalloc_peak(k, per, p, theory):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(k), per)
    x = rng.standard_normal((k * per, p)) + 2.0 * np.eye(k, p)[labels]
    ds = validate_dataset(x, labels, name="synthetic")
    cfg = ProbeConfig(rounds=2, trials=1, theory=theory)
    peak = _peak(run_probe, ds, cfg, progress=None)
    n_train = round(k * per * (1 - cfg.val_fraction - cfg.test_fraction))
    est = probe_bytes(k * per, p, k, n_train, cfg.rounds, theory)
    assert peak <= est and est - OVERHEAD <= SLACK * peak, (peak, est)


def test_check_memory_message_and_override():
    with pytest.raises(
        MemoryLimitError, match=r"needs about 27 GB .* limit is 2 GB \(--max-memory\)"
    ):
        check_memory(27 * GB, "this run", limit=2 * GB)
    assert check_memory(1 * GB, "this run", limit=2 * GB) == 2 * GB
    avail, source = available_bytes()
    assert avail is None or (avail > 0 and source)
    assert parse_max_memory(None) is None and parse_max_memory("1.5") == 1.5 * GB
    for bad in ("0", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="--max-memory"):
            parse_max_memory(bad)


def test_estimate_grows_like_the_problem():
    small = trial_bytes(TrialConfig(per_class=100_000))
    assert trial_bytes(TrialConfig(per_class=1_000_000)) > 9 * small
    # the example: K=3, p=400, n=10^6 needs tens of GB
    assert trial_bytes(TrialConfig(per_class=1_000_000)) > 20 * GB


@pytest.mark.slow
@pytest.mark.parametrize("k, rounds", [(6, 3), (10, 3), (6, 20)])
def test_finite_theory_bytes_vs_tracemalloc_peak(k, rounds):
    """The general path (counts without a class symmetry: rows of different multinomials)."""
    from simulations.memory import finite_theory_bytes
    from theory.class_symmetry import class_symmetry
    from theory.finite import MixtureModel, predict_finite

    model = MixtureModel(k, 10, 4 * k * 10, 0.5, 0.1)
    counts = np.random.default_rng(k).multinomial(10, np.full(k, 1.0 / k), size=k)
    assert class_symmetry(counts) is None
    peak = _peak(predict_finite, model, counts, 1e-3, rounds)
    est = finite_theory_bytes(model, 1e-3, rounds, counts)
    assert est == finite_theory_bytes(model, 1e-3, rounds)  # unknown counts: the general path
    assert peak <= est and est - OVERHEAD <= SLACK * peak, (peak, est)


@pytest.mark.slow
@pytest.mark.parametrize("k, noise, rounds", [(60, "sym", 6)])
def test_finite_theory_bytes_symmetric_vs_tracemalloc_peak(k, noise, rounds):
    """The orbit path (theory.finite_symmetric). Its estimate includes the orthant rule's chunked
    work space (2^22 numbers), reached only when the quadrature doubles its points to the cap, so
    the SLACK bound is checked where the contour-point terms are comparable (K = 60; measured
    peak 18 MB against an estimate of 49 MB)."""
    from simulations.memory import finite_theory_bytes
    from theory.class_symmetry import class_symmetry
    from theory.finite import MixtureModel, predict_finite

    n = 2 * (k - 1)
    model = MixtureModel(k, n, 2 * k * n, 0.4, 0.1)
    counts = exact_counts(transition_matrix(noise, k, 0.5), n)
    assert class_symmetry(counts) is not None
    peak = _peak(predict_finite, model, counts, 1e-3, rounds)
    est = finite_theory_bytes(model, 1e-3, rounds, counts)
    assert peak <= est and est - OVERHEAD <= SLACK * peak, (peak, est)
