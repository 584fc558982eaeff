r"""Class symmetry of a count matrix: which groups must be integrated, and how to expand the rest.

The state equations of :mod:`theory.finite_exact.state` are equivariant under relabelling the
classes by a permutation ``pi`` that maps the count matrix to itself
(``C[pi(k), pi(l)] = C[k, l]``): the class-mean Gram ``Gamma = (c - d) I + d 1 1^T`` is invariant
under every permutation, so the unique solution is equivariant too --
``b_{pi(k)} = P b_k``, ``Q = P Q P^T``, ``V = P V P^T`` blockwise, with ``P`` the permutation
matrix acting on the logit coordinates.

Two cases are used:

``'cyclic'``
    ``C[k, l] = C[0, (l - k) mod K]`` (a circulant: symmetric noise and pair noise with exact
    counts, :func:`theory.noise.exact_counts`). The cyclic shift ``k -> k + 1`` maps group
    ``(k, l)`` to ``(k + 1, l + 1)``, so only class 0's groups are integrated and class ``k``'s
    statistics are class 0's rolled by ``k`` (vectors: ``np.roll(v, k)``; matrices: both axes).
``'none'``
    Every class is integrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.class_symmetry import class_symmetry as detect_symmetry

__all__ = ["ClassSymmetry", "class_symmetry"]


@dataclass(frozen=True)
class ClassSymmetry:
    """How the classes' statistics are obtained.

    Attributes
    ----------
    kind : {'cyclic', 'none'}
    simulated : ndarray of int
        Classes whose groups are integrated (``[0]`` for ``'cyclic'``, all for ``'none'``).
    n_classes : int
    """

    kind: str
    simulated: np.ndarray
    n_classes: int

    def expand_vectors(self, per_class: np.ndarray) -> np.ndarray:
        """(K, ...) array with rows for the simulated classes filled in for every class.

        ``per_class[k]`` is a class-``k`` vector quantity indexed by logit coordinate on its
        first trailing axis (shape (K, K)); for ``'cyclic'`` row ``k`` is row 0 rolled by ``k``.
        """
        if self.kind == "none":
            return per_class
        out = np.empty_like(per_class)
        for k in range(self.n_classes):
            out[k] = np.roll(per_class[0], k, axis=0)
        return out

    def expand_matrices(self, per_class: np.ndarray) -> np.ndarray:
        """Like :meth:`expand_vectors` for (K, ..., K, K) arrays whose last two axes are logit
        coordinates (both rolled)."""
        if self.kind == "none":
            return per_class
        out = np.empty_like(per_class)
        for k in range(self.n_classes):
            out[k] = np.roll(per_class[0], (k, k), axis=(-2, -1))
        return out


def class_symmetry(counts: np.ndarray, *, allow: bool = True) -> ClassSymmetry:
    """How to integrate ``counts``: ``'cyclic'`` when :func:`theory.class_symmetry.class_symmetry`
    finds an exchangeable or circulant count matrix (an exchangeable one is circulant too), else
    ``'none'``.

    Parameters
    ----------
    counts : ndarray of int, shape (K, K)
    allow : bool
        ``False`` forces ``'none'`` (every class integrated; used by tests of the reduction).
    """
    k = counts.shape[0]
    if allow and detect_symmetry(counts) is not None:
        return ClassSymmetry("cyclic", np.array([0]), k)
    return ClassSymmetry("none", np.arange(k), k)
