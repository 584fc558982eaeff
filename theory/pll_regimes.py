r"""Closed-form conditions of the candidate-set PLL students: regimes and forced ties.

Part of the conditions of ``docs/theory.md`` Section 15 (:mod:`theory.pll_conditions` collects
them with the measured student):

* **Regimes** (Theorem 15.2). Every Hessian of a set loss is ``>= -h I`` with ``h = 1/2``
  (``candidate``) or :func:`curvature_bound` (``gce``). If ``lam N > mu_max h`` the training
  objective is strongly convex: one stationary point, whatever the start (:func:`uniqueness_lam`);
  if ``lam N > mu_3 h`` every training point's candidate order follows the population order of its
  class (:func:`order_lam`); the linearised student exists if ``lam N > mu_max w_0 (1/2 - 1/K)``
  (:func:`linear_defined_lam`). The tie margin ``w(pi) (1 - pi) max(mu_2, mu_3) < 2 lam N``
  (Proposition 15.5) is :func:`tie_margin`.
* **Forced ties** (Proposition 15.3). A permutation of classes and of outputs that maps the
  student's problem to itself, fixes class ``k`` and maps output ``k`` to ``m`` forces every
  class-``k`` point and the class-``k`` population point of the two-hot student (and of any student
  in the uniqueness regime) to tie between ``k`` and ``m`` (:func:`forced_ties`).

All functions are deterministic (no random numbers) and cost independent of ``n``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from theory.groups import BlockModel
from theory.names import DEFAULT_Q
from theory.pll import check_pll_loss
from theory.validation import check_positive

__all__ = [
    "SYMMETRY_EXHAUSTIVE_MAX_K",
    "curvature_bound",
    "find_tie_symmetry",
    "forced_ties",
    "is_student_symmetry",
    "linear_defined_lam",
    "order_lam",
    "pair_multisets",
    "tie_margin",
    "tie_weight",
    "uniqueness_lam",
]

#: Exhaustive search over output permutations in :func:`find_tie_symmetry` up to this many classes
#: (``(K - 1)!`` candidates); above it a documented family of permutations is tried.
SYMMETRY_EXHAUSTIVE_MAX_K = 8


# --------------------------------------------------------------------------------------------
# regimes (Theorem 15.2)


def curvature_bound(loss: str, q: float = DEFAULT_Q) -> float:
    r"""``h`` with ``grad^2 l(z) >= -h I`` for every logit vector ``z`` (Lemma 15.1).

    * ``ce``: ``0`` (convex).
    * ``candidate``: ``1/2``. The Hessian ``D_p - pt_a pt_b v v^T`` has ``D_p >= 0`` and the
      rank-one term has eigenvalue ``-2 pt_a pt_b >= -1/2``; the bound is the infimum (``pi -> 0``
      at ``pt = (1/2, 1/2)``, where the curvature along ``v / |v|`` is ``(pi - 1)/2``).
    * ``gce``: ``max_{pi in (0, 1]} pi^q (1/2 + 2 q (1 - pi)^2)``, since the Hessian
      ``pi^q [D_p - pt_a pt_b v v^T - q d d^T]`` has ``|d|^2 <= 2 (1 - pi)^2``. The maximum is at
      ``pi = 1`` or at a root of ``(2q + 4) pi^2 - (4q + 4) pi + (2q + 1/2) = 0`` (the stationarity
      of ``pi^q (1/2 + 2 q (1 - pi)^2)``); e.g. ``0.529`` at ``q = 0.7``, ``0.5`` as ``q -> 0``.
    """
    q = check_pll_loss(loss, q)
    if loss == "ce":
        return 0.0
    if loss == "candidate":
        return 0.5
    disc = math.sqrt(8.0 - 4.0 * q)  # > 0 for q <= 1
    roots = [((4 * q + 4) + s * disc) / (2 * (2 * q + 4)) for s in (-1.0, 1.0)]
    cands = [1.0] + [x for x in roots if 0.0 < x <= 1.0]
    return max(x**q * (0.5 + 2 * q * (1 - x) ** 2) for x in cands)


def uniqueness_lam(model: BlockModel, loss: str, q: float = DEFAULT_Q) -> float:
    r"""``mu_max h / N``: for ``lam`` above it the student's objective is strongly convex.

    ``(lam/2)|W|^2 + (1/N) sum_i l(W x_i)`` has Hessian ``>= (lam - h mu_max / N) I`` (Theorem
    15.2a), so it has exactly one stationary point (its global minimiser), which every descent
    method reaches from every start. ``0`` for ``ce``.
    """
    return float(model.eigenvalues.max()) * curvature_bound(loss, q) / model.n_samples


def order_lam(model: BlockModel, loss: str, q: float = DEFAULT_Q) -> float:
    r"""``mu_3 h / N``: for ``lam`` above it every training point's candidate order follows the
    population order of its class at every stationary point (Theorem 15.2b)."""
    return float(model.eigenvalues[2]) * curvature_bound(loss, q) / model.n_samples


def linear_defined_lam(model: BlockModel, loss: str, q: float = DEFAULT_Q) -> float:
    r"""``mu_max w_0 (1/2 - 1/K) / N``: for ``lam`` above it the linearised student exists.

    ``H(0) = w_0 [(I - 11^T/K)/K - v v^T/4 - q d d^T]`` (``w_0 = (2/K)^q``, ``q = 0`` for
    ``candidate``) has smallest eigenvalue ``w_0 (1/K - 1/2)`` (along ``v``; ``d`` has
    ``|d|^2 = 1/2 - 1/K``), so every eigenvalue of ``I + L H(0)`` is at least
    ``1 - w_0 (1/2 - 1/K) mu_max / (lam N)`` (Theorem 15.2c). A sufficient condition: the exact
    boundary is decided by the inertia (:func:`theory.pll.predict_pll`). ``0`` for ``ce``.
    """
    q = check_pll_loss(loss, q)
    if loss == "ce":
        return 0.0
    k = model.n_classes
    w0 = 1.0 if loss == "candidate" else (2.0 / k) ** q
    return float(model.eigenvalues.max()) * w0 * max(0.5 - 1.0 / k, 0.0) / model.n_samples


def tie_weight(pi, loss: str, q: float = DEFAULT_Q):
    """``w(pi) = -phi'(pi) pi``: ``1`` (``candidate``), ``pi^q`` (``gce``), as in the force
    ``w(pi) (pt - p)`` of the set losses. ``ce`` has no such factor (returns ``1``)."""
    q = check_pll_loss(loss, q)
    pi = np.asarray(pi, dtype=float)
    return pi**q if loss == "gce" else np.ones_like(pi)


def tie_margin(model: BlockModel, lam, pi, loss: str = "candidate", q: float = DEFAULT_Q) -> float:
    r"""Stability margin of a tied point along the class-wide pair direction (Proposition 15.5).

    ``2 lam N - w(pi) (1 - pi) max(mu_2, mu_3)`` with ``pi`` the candidate mass of the tied
    groups (the largest ``w (1 - pi)`` over groups if an array is given). Positive: the tied point
    is a strict local minimum along ``t (e_k - e_m)`` (every class-``k`` point moved together;
    ``d = 0``: along every pair direction); negative: it is a saddle. ``ce`` always returns
    ``2 lam N`` (convex).
    """
    lam = check_positive(lam, "lam")
    q = check_pll_loss(loss, q)
    pi = np.atleast_1d(np.asarray(pi, dtype=float))
    if np.any((pi <= 0) | (pi > 1)) or not np.all(np.isfinite(pi)):
        raise ValueError("pi (candidate mass) must lie in (0, 1]")
    n_lam = 2.0 * lam * model.n_samples
    if loss == "ce":
        return n_lam
    mu = model.eigenvalues
    return float(n_lam - np.max(tie_weight(pi, loss, q) * (1.0 - pi)) * max(mu[1], mu[2]))


# --------------------------------------------------------------------------------------------
# symmetries (Proposition 15.3)


def pair_multisets(top2, counts) -> tuple:
    """Per class, the multiset of candidate pairs: ``{(a, b): points}`` with ``a < b``.

    The student's problem depends on the labels only through these (the block Gram matrix is
    invariant under every permutation of points within a class and of whole classes).
    """
    cnt = np.asarray(counts)
    t2 = np.asarray(top2)
    out = []
    for k in range(cnt.shape[0]):
        m = {}
        for ell in np.flatnonzero(cnt[k] > 0):
            a, b = sorted((int(t2[k, ell, 0]), int(t2[k, ell, 1])))
            m[(a, b)] = m.get((a, b), 0) + int(cnt[k, ell])
        out.append(m)
    return tuple(out)


def _permute_multiset(mset, perm):
    out = {}
    for (a, b), c in mset.items():
        key = tuple(sorted((int(perm[a]), int(perm[b]))))
        out[key] = out.get(key, 0) + c
    return out


def _signature(mset):
    return tuple(sorted(mset.items()))


def is_student_symmetry(multisets, class_perm, output_perm) -> bool:
    """Does ``(rho, r)`` map the student's problem to itself?

    ``multisets`` from :func:`pair_multisets`; ``class_perm[j] = rho(j)``,
    ``output_perm[o] = r(o)``. Condition: class ``rho(j)`` has the pair multiset ``r(M_j)`` for
    every class ``j``.
    """
    k = len(multisets)
    rho = np.asarray(class_perm, dtype=int)
    r = np.asarray(output_perm, dtype=int)
    for perm in (rho, r):
        if perm.shape != (k,) or sorted(perm.tolist()) != list(range(k)):
            raise ValueError(f"permutations must be permutations of range({k})")
    return all(
        _signature(multisets[rho[j]]) == _signature(_permute_multiset(multisets[j], r))
        for j in range(k)
    )


def _class_perm_for(multisets, r, k_fixed):
    """A class permutation ``rho`` with ``rho(k_fixed) = k_fixed`` completing ``r``, or None."""
    k = len(multisets)
    images = [_signature(_permute_multiset(multisets[j], r)) for j in range(k)]
    own = [_signature(m) for m in multisets]
    if images[k_fixed] != own[k_fixed]:
        return None
    rho = np.full(k, -1)
    rho[k_fixed] = k_fixed
    free = {j for j in range(k) if j != k_fixed}
    for j in range(k):
        if j == k_fixed:
            continue
        match = next((i for i in sorted(free) if own[i] == images[j]), None)
        if match is None:
            return None
        rho[j] = match
        free.discard(match)
    return rho


def _family(k, a, m):
    """Output permutations with ``r(a) = m`` tried for ``K > SYMMETRY_EXHAUSTIVE_MAX_K``:
    the transposition ``(a m)``, the reflection ``o -> a + m - o`` and, if ``m - a = K/2``, the
    half-turn ``o -> o + K/2`` (all mod ``K``)."""
    base = np.arange(k)
    t = base.copy()
    t[a], t[m] = m, a
    fam = [t, (a + m - base) % k]
    if (2 * (m - a)) % k == 0:
        fam.append((base + (m - a)) % k)
    return fam


def find_tie_symmetry(multisets, k: int, m: int):
    """A symmetry ``(rho, r)`` of the student's problem with ``rho(k) = k`` and ``r(k) = m``.

    Exhaustive over the ``(K - 1)!`` output permutations with ``r(k) = m`` for
    ``K <= SYMMETRY_EXHAUSTIVE_MAX_K`` (``rho`` then follows by matching pair multisets), a
    documented family otherwise (:func:`_family`: transposition, reflection, half-turn).

    Returns
    -------
    (class_perm, output_perm) or None
    """
    nk = len(multisets)
    if not (0 <= k < nk and 0 <= m < nk and k != m):
        raise ValueError(f"k and m must be distinct classes in [0, {nk})")
    if nk <= SYMMETRY_EXHAUSTIVE_MAX_K:
        rest_src = [o for o in range(nk) if o != k]
        rest_dst = [o for o in range(nk) if o != m]
        candidates = (
            np.array([m if o == k else img[rest_src.index(o)] for o in range(nk)])
            for img in itertools.permutations(rest_dst)
        )
    else:
        candidates = iter(_family(nk, k, m))
    for r in candidates:
        rho = _class_perm_for(multisets, r, k)
        if rho is not None:
            return rho, r
    return None


def forced_ties(model: BlockModel, top2, counts) -> dict:
    r"""Classes whose two-hot student provably ties (Proposition 15.3), with the reason.

    A class ``k`` all of whose points have the same pair ``{k, m}`` (a *whole-class tie*) is forced
    to tie if ``d = 0`` (the classes decouple; swapping outputs ``k, m`` in class ``k`` alone is a
    symmetry) or if :func:`find_tie_symmetry` finds a symmetry fixing ``k`` with ``r(k) = m``.

    Returns
    -------
    dict
        ``{k: (m, class_perm, output_perm)}``; the permutations are ``None`` for the class-local
        symmetry of ``d = 0``.
    """
    mult = pair_multisets(top2, counts)
    out = {}
    for k, mset in enumerate(mult):
        if len(mset) != 1:
            continue
        (a, b), _ = next(iter(mset.items()))
        if k not in (a, b):
            continue
        m = b if a == k else a
        if model.d == 0.0:
            out[k] = (m, None, None)
            continue
        sym = find_tie_symmetry(mult, k, m)
        if sym is not None:
            out[k] = (m, sym[0], sym[1])
    return out
