"""Tolerances and comparison helpers, kept in one place.

Each constant says where it comes from. A failing comparison reports the relative error and shows
both sides, so a disagreement can be read, not just detected.
"""

from __future__ import annotations

import numpy as np

#: Fixed-point residual every exact solve is certified to (solver default ``tol``).
SOLVER_TOL = 1e-9
#: Closed forms evaluated by a few dense BLAS calls in float64: relative error ~ N * eps.
FLOAT_RTOL = 1e-10


def solve_agreement_tol(*solutions) -> float:
    """Bound on ``max|P1 - P2|`` between solves of the same problem: the sum of their certified
    a-posteriori distances to the exact optimum (``Certificate.output_bound``, derived from strong
    convexity in ``simulations/solver/types.py``)."""
    return float(sum(s.certificate.output_bound for s in solutions))


def assert_close(actual, expected, *, atol: float = 0.0, rtol: float = FLOAT_RTOL, what="arrays"):
    """``np.testing.assert_allclose`` with a message giving the max abs and relative error."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    err = np.abs(a - e)
    scale = np.maximum(np.abs(e), np.finfo(float).tiny)
    if np.all(err <= atol + rtol * np.abs(e)):
        return
    worst = np.unravel_index(np.argmax(err - rtol * np.abs(e)), err.shape)
    raise AssertionError(
        f"{what} differ: max abs err {err.max():.3g}, max rel err {(err / scale).max():.3g} "
        f"(atol={atol:g}, rtol={rtol:g}); worst at {worst}: actual={a[worst]!r} "
        f"expected={e[worst]!r}"
    )
