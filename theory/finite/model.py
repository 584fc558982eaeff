"""The finite-``p`` model: a Gaussian mixture of ``K`` classes at dimension ``p`` (docs §11.1).

:class:`MixtureModel` holds ``K, n, p, c, d`` and what the other modules of :mod:`theory.finite`
derive from them (noise variance, the bulk's degrees of freedom, mean coordinates, the block model
of the ``p -> inf`` limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.gram import check_mixture_params, mean_coordinates
from theory.groups import BlockModel
from theory.validation import check_int

#: Largest ``p / N`` of a finite-``p`` model. Measured: at ``K = 10, N = 200`` the exact theory's
#: fixed points converge in their usual 9-10 iterations up to ``p / N = 1e7`` and crawl at ``1e9``
#: (~200 s, residuals near the stall limit); at ``K = 3, N = 30`` round 0 does not converge at
#: ``3e11``; the linearised theory's rounds contradict each other at ``p = 2^53``. At ``1e7`` the
#: finite-``p`` corrections (``O(N/p)``) are far below the quadrature's resolution (~1e-3):
#: ``dim = math.inf`` gives the same accuracies.
MAX_DIM_RATIO = 1e7


@dataclass(frozen=True)
class MixtureModel:
    """Gaussian mixture of dimension ``dim``: ``K = n_classes`` classes of ``n = per_class`` points.

    ``dim = math.inf`` is the block limit (Gram matrix exactly the block model). Validated with
    :func:`theory.gram.check_mixture_params` (``0 <= c <= 1``, ``d <= c``,
    ``c + (K - 1) d >= 0``), ``p > K`` (the theory's noise bulk has ``p - K`` dimensions; a
    simulation may use ``p = K``, the theory has nothing to describe there) and
    ``p <= MAX_DIM_RATIO N``.
    """

    n_classes: int
    per_class: int
    dim: float
    c: float
    d: float

    def __post_init__(self):
        dim = self.dim
        if isinstance(dim, float) and math.isinf(dim) and dim > 0:
            k, _, c, d = check_mixture_params(self.n_classes, self.n_classes, self.c, self.d)
        else:
            if isinstance(dim, float) and dim.is_integer():
                dim = int(dim)
            k, dim, c, d = check_mixture_params(self.n_classes, dim, self.c, self.d)
            if dim <= k:  # no noise outside the means' span: the bulk spectrum does not exist
                raise ValueError(
                    f"dim (p) must be > K = {k} for the finite-p theory (its noise bulk has p - K "
                    f"dimensions), got {dim}"
                )
        n = check_int(self.per_class, "per_class", 1)
        if not math.isinf(dim) and dim > MAX_DIM_RATIO * k * n:
            raise ValueError(
                f"dim (p) must be <= {MAX_DIM_RATIO:.0e} N = {MAX_DIM_RATIO * k * n:.3g} for the "
                f"finite-p theories (or math.inf, the block limit), got {dim}: their corrections "
                "to the block limit, O(N/p), are then below what their float64 state equations "
                "resolve"
            )
        for name, value in (("n_classes", k), ("per_class", n), ("dim", dim), ("c", c), ("d", d)):
            object.__setattr__(self, name, value)

    @property
    def n_samples(self) -> int:
        """``N = K n``."""
        return self.n_classes * self.per_class

    @property
    def infinite(self) -> bool:
        """Whether this is the ``p -> inf`` block limit."""
        return math.isinf(self.dim)

    @property
    def noise_var(self) -> float:
        """Per-coordinate noise variance ``sigma^2 = (1 - c)/p`` (0 in the block limit)."""
        return 0.0 if self.infinite else (1.0 - self.c) / self.dim

    @property
    def bulk_dof(self) -> float:
        """Degrees of freedom ``p - K`` of the Wishart part ``W = Z_2 Z_2^T``."""
        return math.inf if self.infinite else float(self.dim - self.n_classes)

    @property
    def bulk_scale(self) -> float:
        """``sigma^2 (p - K)``: ``E W = sigma^2 (p - K) I`` (``1 - c`` in the block limit)."""
        if self.infinite:
            return 1.0 - self.c
        return self.noise_var * self.bulk_dof

    @property
    def ratio(self) -> float:
        """``N / p`` (0 in the block limit)."""
        return 0.0 if self.infinite else self.n_samples / self.dim

    def means(self) -> np.ndarray:
        """Mean coordinates ``M`` (K, K), row ``k`` = ``mu_k`` in the means' span."""
        return mean_coordinates(self.n_classes, self.c, self.d)

    def block(self) -> BlockModel:
        """The block model with the same ``K, n, c, d`` (the ``p -> inf`` limit)."""
        return BlockModel(self.n_classes, self.per_class, self.c, self.d)
