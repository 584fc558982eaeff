"""Monte Carlo summaries: means with Student-t confidence intervals, NaN-aware."""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["mean_ci"]


def mean_ci(samples, axis: int = 0, level: float = 0.95):
    """Mean, confidence half-width and count of the non-NaN samples along ``axis``.

    The half-width is ``t_{(1+level)/2, m-1} s / sqrt(m)`` with ``s`` the sample standard deviation
    of the ``m`` defined values: the interval for the mean of ``m`` independent trials. It is NaN
    when ``m < 2`` (no variance estimate) and the mean is NaN when ``m = 0``.

    Returns
    -------
    mean, half : ndarray (float for 1-D input)
    count : ndarray of int
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = np.moveaxis(np.asarray(samples, dtype=float), axis, 0)
    defined = ~np.isnan(x)
    count = defined.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # m = 0 or 1 become NaN below
        mean = np.where(defined, x, 0.0).sum(axis=0) / count
        dev = np.where(defined, x - mean, 0.0)
        sd = np.sqrt((dev**2).sum(axis=0) / (count - 1))
        tq = stats.t.ppf(0.5 + level / 2, np.maximum(count - 1, 1))
        half = np.where(count > 1, tq * sd / np.sqrt(np.maximum(count, 1)), np.nan)
    mean = np.where(count > 0, mean, np.nan)
    if np.ndim(mean) == 0:
        return float(mean), float(half), int(count)
    return mean, half, count
