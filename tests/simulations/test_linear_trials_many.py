"""simulations.linear_trials.run_linear_many: run_linear_trials per spec, in any pool."""

import numpy as np

from simulations.linear_trials import LinearTrial, run_linear_many, run_linear_trials
from theory.noise import transition_matrix


def test_run_linear_many_equals_run_linear_trials_per_spec_in_any_pool():
    tr = tuple(map(tuple, transition_matrix("sym", 3, 0.4)))
    specs = [LinearTrial(3, 5, p, 0.4, 0.1, 1e-2, 2, tr) for p in (8, 30)]
    one = run_linear_many(specs, 3, base_seed=4, workers=1)
    two = run_linear_many(specs, 3, base_seed=4, workers=2)
    for spec, a, b in zip(specs, one, two, strict=True):
        ref = run_linear_trials(spec, 3, base_seed=4)
        assert set(a) == set(ref)
        for key in ref:
            np.testing.assert_array_equal(a[key], ref[key])
            np.testing.assert_array_equal(b[key], ref[key])
    assert not np.array_equal(one[0]["pop_acc"], one[1]["pop_acc"])
