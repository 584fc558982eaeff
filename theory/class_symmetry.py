r"""Relabelling symmetries of a count matrix: which groups and classes are copies of each other.

The Gaussian mixture of :mod:`theory.finite` has equal class sizes and the Gram matrix of its
class means is ``(c - d) I + d 1 1^T``, invariant under every relabelling of the classes. A
relabelling ``pi`` (permutation matrix ``P``) that also leaves the count matrix invariant,
``P C P^T = C``, therefore maps the whole problem to itself, and every deterministic prediction
is equivariant: the outputs of the group ``(pi(k), pi(l))`` (true class, given label) are those of
``(k, l)`` with their ``K`` output coordinates relabelled by ``pi``, and likewise for the
population of class ``pi(k)`` (``docs/finite_symmetry.md``). Two families are detected exactly
(integer comparisons, no tolerance):

``'exchangeable'``
    ``C[k, k] = a`` and ``C[k, l] = b`` for all ``l != k`` (symmetric noise with exact counts):
    ``C`` is invariant under all ``K!`` relabellings. Two orbits of groups (clean ``(k, k)``,
    mislabeled ``(k, l)``), one orbit of classes.
``'cyclic'``
    ``C[k, l] = C[0, (l - k) mod K]`` (a circulant matrix: pair noise, the ``'asym'`` noise, any
    cyclically symmetric transition matrix with the cyclic tie rule of :mod:`theory.noise`): ``C``
    is invariant under the shifts ``i -> i + 1 mod K``. One orbit of groups per non-zero entry
    of the first row, one orbit of classes.

Relabellings are stored as index maps ``sigma`` with ``sigma[i]`` the coordinate of the
representative that coordinate ``i`` of the group is a copy of:
``value[k, l][i] = value[rep][sigma_kl[i]]`` and ``cov[k, l][i, j] = cov[rep][sigma_kl[i],
sigma_kl[j]]``, with ``sigma_kl(k) = k_rep``, ``sigma_kl(l) = l_rep``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClassSymmetry", "class_symmetry"]


@dataclass(frozen=True)
class ClassSymmetry:
    """A relabelling symmetry of a count matrix (:func:`class_symmetry`).

    Attributes
    ----------
    kind : {'exchangeable', 'cyclic'}
    n_classes : int
    group_reps : ndarray of int, shape (G, 2)
        One non-empty group ``(k, l)`` per orbit of non-empty groups; every representative has
        ``k = 0``.
    group_orbit : ndarray of int, shape (K, K)
        Row of ``group_reps`` of the orbit of ``(k, l)``; ``-1`` for empty groups.
    """

    kind: str
    n_classes: int
    group_reps: np.ndarray
    group_orbit: np.ndarray

    def group_relabel(self, kk, ll) -> np.ndarray:
        """``sigma_kl`` for groups ``(kk, ll)`` (int arrays of one shape S): shape ``S + (K,)``.

        ``sigma_kl`` maps ``k`` to 0 and ``l`` to the representative's label; it is a permutation
        that leaves ``C`` invariant (so the representative's moments, relabelled, are the group's).
        """
        kk, ll = np.broadcast_arrays(np.asarray(kk, dtype=np.int64), np.asarray(ll, dtype=np.int64))
        k = self.n_classes
        i = np.arange(k)
        if self.kind == "cyclic":
            return (i - kk[..., None]) % k
        # The transposition (0 k) followed by (1 l'), l' the image of l after the first one.
        kc = kk[..., None]
        sig = np.where(i == kc, 0, np.where(i == 0, kc, i))
        l1 = np.where(ll == kk, -1, np.where(ll == 0, kk, ll))[..., None]  # -1: clean, no swap
        return np.where(sig == l1, 1, np.where((sig == 1) & (l1 >= 0), l1, sig))

    def class_relabel(self, kk) -> np.ndarray:
        """``sigma_k`` for classes ``kk`` (int array of shape S): shape ``S + (K,)``, ``k -> 0``."""
        kk = np.asarray(kk, dtype=np.int64)
        i = np.arange(self.n_classes)
        if self.kind == "cyclic":
            return (i - kk[..., None]) % self.n_classes
        kc = kk[..., None]
        return np.where(i == kc, 0, np.where(i == 0, kc, i))


def class_symmetry(counts) -> ClassSymmetry | None:
    """The relabelling symmetry of a validated (K, K) integer count matrix, or ``None``.

    ``'exchangeable'`` is tested first (it implies ``'cyclic'`` and has fewer orbits). The tests
    are exact integer comparisons.
    """
    cnt = np.asarray(counts)
    k = cnt.shape[0]
    i = np.arange(k)
    diag = np.diagonal(cnt)
    off = cnt[~np.eye(k, dtype=bool)]
    if np.all(diag == diag[0]) and np.all(off == off[0]):
        reps, orbit = [], np.full((k, k), -1, dtype=np.int64)
        if diag[0] > 0:
            orbit[np.eye(k, dtype=bool)] = len(reps)
            reps.append((0, 0))
        if off[0] > 0:
            orbit[~np.eye(k, dtype=bool)] = len(reps)
            reps.append((0, 1))
        return ClassSymmetry("exchangeable", k, np.array(reps, dtype=np.int64), orbit)
    shift = (i[None, :] - i[:, None]) % k  # [k, l] -> (l - k) mod K
    if np.array_equal(cnt, cnt[0][shift]):
        offsets = np.flatnonzero(cnt[0] > 0)
        slot = np.full(k, -1, dtype=np.int64)
        slot[offsets] = np.arange(offsets.size)
        reps = np.stack([np.zeros_like(offsets), offsets], axis=1).astype(np.int64)
        return ClassSymmetry("cyclic", k, reps, slot[shift])
    return None
