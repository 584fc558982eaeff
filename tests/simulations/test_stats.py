import math

import numpy as np
import pytest
from scipy import stats

from simulations.stats import mean_ci


def test_mean_ci_vs_scipy_t_interval():
    x = np.array([0.2, 0.5, 0.4, 0.9, 0.7])
    mean, half, m = mean_ci(x)
    lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert m == 5
    assert mean == pytest.approx(x.mean(), abs=1e-15)
    assert half == pytest.approx((hi - lo) / 2, rel=1e-12)


def test_mean_ci_nan_aware_and_vectorised():
    x = np.array([[1.0, np.nan, 2.0], [3.0, np.nan, np.nan], [5.0, np.nan, 2.0]])
    mean, half, count = mean_ci(x, axis=0)
    assert count.tolist() == [3, 0, 2]
    assert mean[0] == 3.0 and math.isnan(mean[1]) and mean[2] == 2.0
    assert half[2] == 0.0  # equal values: zero spread
    assert math.isnan(half[1])
    assert math.isnan(mean_ci([1.0])[1])  # one value: no variance estimate
    with pytest.raises(ValueError, match="level"):
        mean_ci(x, level=1.5)
