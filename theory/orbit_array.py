r"""Arrays of a class-symmetric finite-``p`` prediction, stored once per orbit.

:func:`theory.finite_symmetric.predict_finite_symmetric` computes one group per orbit of the count
matrix's class symmetry (:mod:`theory.class_symmetry`); the full ``group_covs`` would be
``(R + 1) K^4`` numbers. An :class:`OrbitArray` keeps the representatives and relabels their
output coordinates on indexing, so it reads like the full ndarray, and refuses a selection of more
than :data:`MATERIALISE_LIMIT` entries.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from theory.class_symmetry import ClassSymmetry

__all__ = ["MATERIALISE_LIMIT", "OrbitArray"]

#: Largest number of float64 entries an :class:`OrbitArray` index or conversion may
#: produce (2^27 = 1 GiB); beyond it a ``ValueError`` asks for a smaller selection.
MATERIALISE_LIMIT = 2**27


class OrbitArray(NDArrayOperatorsMixin):
    """A per-group or per-class array of a symmetric prediction, stored once per orbit.

    ``lead='group'``: shape ``(R + 1, K, K) + (K,) * q`` (``group_means``: q = 1, ``group_covs``:
    q = 2), stored as ``reps`` of shape ``(R + 1, G) + (K,) * q`` (one entry per orbit of
    groups, :attr:`theory.class_symmetry.ClassSymmetry.group_reps`); ``NaN`` for empty groups.
    ``lead='class'``: shape ``(R + 1, K) + (K,) * q`` (``population_covs``: q = 2), stored as
    class 0's ``reps`` of shape ``(R + 1,) + (K,) * q``. Entry ``[t, k, l][i, j]`` is the
    representative's ``[sigma(i), sigma(j)]`` with the relabelling ``sigma`` of
    :class:`theory.class_symmetry.ClassSymmetry`.

    Indexing returns ndarrays exactly as indexing the full array would; ``np.asarray`` and
    arithmetic materialise the whole array. A selection of more than :data:`MATERIALISE_LIMIT`
    entries is refused with a ``ValueError`` (``group_covs`` is ``(R + 1) K^4`` numbers, 8.8 GB at
    ``K = 100``, ``R = 10``): index by round and group instead, e.g. ``group_covs[t, k, l]``.
    """

    def __init__(self, reps: np.ndarray, symmetry: ClassSymmetry, lead: str):
        if lead not in ("group", "class"):
            raise ValueError(f"lead must be 'group' or 'class', got {lead!r}")
        k = symmetry.n_classes
        self._reps, self._sym, self._lead = reps, symmetry, lead
        self._n_lead = 3 if lead == "group" else 2
        self._n_trail = reps.ndim - (2 if lead == "group" else 1)
        self.shape = (reps.shape[0],) + (k,) * (self._n_lead - 1 + self._n_trail)
        self.ndim = len(self.shape)
        self.dtype = reps.dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"OrbitArray(shape={self.shape}, symmetry={self._sym.kind!r}, "
            f"stored={self._reps.shape})"
        )

    def _gather(self, head):
        """The entries selected by ``head``, an index into the leading (round, class[, label])."""
        lead = self.shape[: self._n_lead]
        k, q = self._sym.n_classes, self._n_trail
        count = np.broadcast_to(np.zeros((), dtype=np.uint8), lead)[head].size * k**q
        if count > MATERIALISE_LIMIT:
            raise ValueError(
                f"selecting {count} entries ({8 * count / 1e9:.3g} GB) of an orbit-stored "
                f"array of shape {self.shape} exceeds {MATERIALISE_LIMIT} entries; index it by "
                "round and group (e.g. group_covs[t, k, l]) instead"
            )
        idx = []
        for axis, size in enumerate(lead):
            shape = [1] * len(lead)
            shape[axis] = size
            idx.append(np.asarray(np.broadcast_to(np.arange(size).reshape(shape), lead)[head]))
        grow = (Ellipsis,) + (None,) * q
        if self._lead == "group":
            tt, kk, ll = idx
            orbit = self._sym.group_orbit[kk, ll]
            sig = self._sym.group_relabel(kk, ll)
            rows = (tt[grow], np.maximum(orbit, 0)[grow])
        else:
            tt, kk = idx
            orbit = None
            sig = self._sym.class_relabel(kk)
            rows = (tt[grow],)
        cols = (sig,) if q == 1 else (sig[..., :, None], sig[..., None, :])
        out = self._reps[rows + cols]
        if orbit is not None and np.any(orbit < 0):
            out = np.where((orbit >= 0)[grow], out, np.nan)
        return out

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        n_ell = sum(x is Ellipsis for x in key)
        if any(x is None for x in key) or n_ell > 1:
            return np.asarray(self)[key]
        if n_ell:
            at = next(i for i, x in enumerate(key) if x is Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for an array of dimension {self.ndim}: {len(key)}")
        key = key + (slice(None),) * (self.ndim - len(key))
        head, tail = key[: self._n_lead], key[self._n_lead :]

        def basic(x):
            return isinstance(x, (slice, int, np.integer))

        if not all(basic(x) for x in tail) or (
            not all(basic(x) for x in head) and not all(isinstance(x, slice) for x in tail)
        ):
            # advanced indices among the trailing axes: numpy's rules on the materialised array
            return np.asarray(self)[key]
        out = self._gather(head)[(Ellipsis, *tail)]
        return out[()] if out.ndim == 0 else out

    def __array__(self, dtype=None, copy=None):
        out = self._gather((slice(None),) * self._n_lead)
        return out if dtype is None else out.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(np.asarray(x) if isinstance(x, OrbitArray) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)
