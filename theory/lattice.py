"""Deterministic building blocks of the quasi-Monte Carlo rules (no generator state anywhere).

:mod:`theory.orthant` (Gaussian orthant probabilities) and :mod:`theory.finite_exact` (Gaussian
expectations of the exact finite-ratio theory) integrate with randomly-shifted Kronecker
(Richtmyer) lattices ``x_n = frac(n alpha + Delta_q)``, ``alpha_i = sqrt(prime_i)``. The shifts
``Delta_q`` must behave like independent uniform draws (the spread of the per-shift estimates is
the error estimate), yet the theory package is deterministic, so they are hashed from their
indices.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["hash_uniform", "kronecker_generator", "primes"]


def primes(count: int) -> np.ndarray:
    """The first ``count`` primes (simple sieve; count <= a few thousand)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    limit = max(16, int(count * (math.log(count + 1) + math.log(math.log(count + 3)) + 3)))
    while True:
        sieve = np.ones(limit + 1, dtype=bool)
        sieve[:2] = False
        for i in range(2, int(limit**0.5) + 1):
            if sieve[i]:
                sieve[i * i :: i] = False
        found = np.flatnonzero(sieve)
        if found.size >= count:
            return found[:count]
        limit *= 2


def hash_uniform(keys: np.ndarray) -> np.ndarray:
    """Fixed numbers in [0, 1) from integer keys: the SplitMix64 finaliser (a bijective integer
    hash with full avalanche), top 53 bits. Deterministic arithmetic, no generator state."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(float) * 2.0**-53


def kronecker_generator(dim: int, n_shifts: int, salt: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generator ``alpha`` (dim,) and ``n_shifts`` hashed shifts (n_shifts, dim).

    ``salt`` selects an independent family of shifts (different users of the lattice do not share
    their error patterns). Regular shifts (a Weyl sequence) were tried in :mod:`theory.orthant` and
    gave error estimates up to ~3x too small: their per-shift errors are correlated.
    """
    alpha = np.sqrt(primes(dim).astype(float)) % 1.0
    q, i = np.meshgrid(np.arange(n_shifts), np.arange(dim), indexing="ij")
    keys = (
        (np.uint64(salt) << np.uint64(48))
        + (q.astype(np.uint64) << np.uint64(32))
        + i.astype(np.uint64)
    )
    return alpha, hash_uniform(keys)
