r"""A deterministic standard-normal point set for the Gaussian expectations of the exact theory.

The order parameters of :mod:`theory.finite_exact` are expectations over a cavity field
``h ~ N(b, Sigma)`` in ``R^{(R+1) K}``. They are evaluated as averages over a fixed point set
``xi_1..xi_M`` in ``R^D`` (``D = (R+1)(K-1)``, the zero-sum coordinates of every round):

* ``S`` randomly-shifted Kronecker lattices ``u_n = frac(n alpha + Delta_q)``, mapped by
  ``Phi^{-1}`` (:func:`theory.lattice.kronecker_generator`; the shifts are hashed, so the set is
  deterministic);
* antithetic pairs ``(xi, -xi)``: odd moments vanish exactly, so a linear integrand is exact
  (stored shift by shift, so that the first ``s`` shifts form a coarser balanced rule);
* a lower-triangular (Cholesky) whitening ``xi <- xi L^{-T}`` with ``L L^T = (1/M) sum xi xi^T``:
  the second moments are exactly the identity, so the Stein / score identity
  ``E[f(h) xi^T] = E[grad f] L`` is exact for quadratic integrands. Lower-triangular whitening
  keeps the set *nested*: the first ``j`` coordinates only depend on the first ``j`` raw ones, so
  round ``t``'s points never change when later rounds are added.

The same points serve every fixed-point iteration (common random numbers), so the iteration map
is a smooth deterministic function of the order parameters. ``shift_of`` says which lattice each
point came from; the spread of per-shift averages is the quadrature error estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from theory.lattice import kronecker_generator
from theory.validation import check_int

__all__ = ["GaussPoints", "gauss_points"]

#: Salt of the shift family (independent of :mod:`theory.orthant`'s shifts).
_SALT = 20


@dataclass(frozen=True)
class GaussPoints:
    """Standard-normal points ``xi`` (M, D) with exact zero mean and identity second moment.

    Attributes
    ----------
    xi : ndarray, shape (M, D)
    shift_of : ndarray of int, shape (M,)
        Index ``q < n_shifts`` of the lattice that produced each point (both antithetic halves).
    n_shifts : int
    """

    xi: np.ndarray
    shift_of: np.ndarray
    n_shifts: int

    @property
    def size(self) -> int:
        return self.xi.shape[0]

    @property
    def dim(self) -> int:
        return self.xi.shape[1]


def gauss_points(dim: int, per_shift: int, n_shifts: int = 8) -> GaussPoints:
    """Build the point set: ``n_shifts`` lattices of ``per_shift`` points, doubled antithetically.

    Parameters
    ----------
    dim : int
        Dimension ``D >= 0`` (``0`` gives a single point at the origin).
    per_shift : int
        Lattice points per shift (``M = 2 n_shifts per_shift``; must exceed ``D`` so that the
        whitening is defined).
    n_shifts : int
        Number of shifted lattices (>= 2 for an error estimate).
    """
    dim = check_int(dim, "dim", 0)
    per_shift = check_int(per_shift, "per_shift", 1)
    n_shifts = check_int(n_shifts, "n_shifts", 1)
    if dim == 0:
        return GaussPoints(np.zeros((1, 0)), np.zeros(1, dtype=np.int64), 1)
    if 2 * per_shift * n_shifts <= 2 * dim:
        raise ValueError(
            f"per_shift * n_shifts must exceed dim={dim} for the whitening, "
            f"got {per_shift} * {n_shifts}"
        )
    alpha, shifts = kronecker_generator(dim, n_shifts, _SALT)
    n = np.arange(1, per_shift + 1, dtype=float)[:, None]
    blocks = []
    for q in range(n_shifts):
        u = (n * alpha + shifts[q]) % 1.0
        # u = 0 (probability zero for a hashed shift) would map to -inf; keep it inside (0, 1).
        u = np.clip(u, 0.5 / per_shift, 1.0 - 0.5 / per_shift)
        blocks.append(ndtri(u))
    # Shift by shift, each lattice followed by its antithetic image: any prefix of whole shifts is
    # itself a balanced (odd-moment-free) rule, used for the coarse phase of the fixed point.
    xi = np.concatenate([part for blk in blocks for part in (blk, -blk)])
    shift_of = np.repeat(np.arange(n_shifts), 2 * per_shift)
    second = xi.T @ xi / xi.shape[0]
    chol = np.linalg.cholesky(second)
    xi = np.linalg.solve(chol, xi.T).T  # xi L^{-T}: lower-triangular, nested
    return GaussPoints(np.ascontiguousarray(xi), shift_of, n_shifts)
