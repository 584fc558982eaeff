r"""Conditions for 100% accuracy of multi-round self-distillation in the block model.

All statements are about the *linearised* (label-averaging) prediction of
:func:`theory.groups.predict_linear`; ``docs/theory.md`` (Sections 5-6) states them as theorems with
proofs, and the tests compare them with the linearised AND the exact group-level predictions.

Notation: ``C`` count matrix (K, K) with rows summing to ``n``; ``H = 1^T C`` the global label
histogram (column sums); ``a_j = mu_j / (mu_j + K lam N)``; round ``t`` keeps eigen-direction ``j``
with weight ``w_j = a_j^(t+1)``.

Training gaps. For a point of group ``(k, l)`` and a rival class ``m != k`` the linearised score gap
(true class minus rival) at round ``t`` is the exponential sum

.. math::  g(t) = \alpha a_1^{t+1} + \beta a_2^{t+1} + \gamma a_3^{t+1},

with ``alpha = (H_k - H_m)/N``, ``beta = (C_kk - C_km)/n - alpha`` and
``gamma = (delta_lk - delta_lm) - (C_kk - C_km)/n``. The point is correct iff ``g > 0`` for every
``m``. Such a sum of (at most) three exponentials changes sign at most twice, so the set of rounds
with 100% training accuracy is a finite union of integer intervals (the last possibly unbounded)
that is computed exactly here from the (at most two) roots of every gap -- no round horizon is
needed.

Here "correct" means a strictly positive gap in exact arithmetic; the numeric predictions
additionally count gaps below ``TIE_RTOL`` times the spread of the round's scores as ties
(errors, :mod:`theory.metrics`), and here a gap counts as zero when it is below ``GAP_RTOL``
times the sum of its absolute terms. Both are relative: gaps of a prediction whose outputs are
all within 1e-20 of ``1/K`` are resolved, only genuine (exact-arithmetic) zeros are ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.groups import BlockModel, check_counts
from theory.validation import check_int, check_positive

__all__ = [
    "PopulationCondition",
    "check_count_matrix",
    "collapse_round_linear",
    "collapse_window_linear",
    "correct_round_intervals_linear",
    "eigen_ratio_rho",
    "is_balanced",
    "min_rounds_closed_form",
    "min_rounds_linear",
    "mislabeled_margin",
    "plurality_condition",
    "population_condition_linear",
    "population_gap_coefficients",
    "training_gap_coefficients",
    "window_linear",
]

#: Gaps with ``|g| <= GAP_RTOL * sum|coefficients|`` are treated as zero (a tie, not correct):
#: exponential sums are evaluated with relative round-off ~1e-15, so a genuine zero crossing that
#: falls on an integer round cannot be resolved more finely than this.
GAP_RTOL = 1e-12


def check_count_matrix(counts) -> np.ndarray:
    """Validate a (K, K) non-negative integer matrix with equal, positive row sums ``n``."""
    arr = np.asarray(counts)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(f"counts must be a square (K, K) matrix with K >= 2, got {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError("counts must be a matrix of non-negative integers")
    if not np.all(np.isfinite(arr)) or not np.all(np.equal(np.mod(arr, 1), 0)) or arr.min() < 0:
        raise ValueError("counts must be a matrix of non-negative integers")
    arr = arr.astype(np.int64)
    rows = arr.sum(axis=1)
    if rows.min() != rows.max() or rows[0] < 1:
        raise ValueError(f"counts rows must all sum to the same per_class n >= 1, got {rows}")
    return arr


def plurality_condition(counts) -> tuple[bool, float]:
    r"""Label-corruption (plurality) condition and its margin.

    Holds iff in every class the true label strictly outnumbers every other given label,
    ``C[k, k] > C[k, m]`` for all ``m != k``. The margin is
    ``Delta = min_k min_{m != k} (C[k, k] - C[k, m]) / n`` in ``[-1, 1]``; the condition is
    ``Delta > 0``.

    Returns
    -------
    holds : bool
    margin : float
    """
    cnt = check_count_matrix(counts)
    n = cnt[0].sum()
    diag = np.diag(cnt)
    off = cnt + np.diag(np.full(cnt.shape[0], -np.iinfo(np.int64).max // 4))  # mask the diagonal
    margin = float((diag - off.max(axis=1)).min() / n)
    return margin > 0, margin


def mislabeled_margin(counts) -> float:
    r"""``Delta* = min (C[k,k] - C[k,l]) / n`` over the mislabeled groups present (``C[k,l] > 0``).

    ``inf`` if there are no mislabeled points. ``Delta* >= Delta`` (the plurality margin).
    """
    cnt = check_count_matrix(counts)
    n = cnt[0].sum()
    k_idx, l_idx = np.nonzero((cnt > 0) & ~np.eye(cnt.shape[0], dtype=bool))
    if k_idx.size == 0:
        return math.inf
    return float((cnt[k_idx, k_idx] - cnt[k_idx, l_idx]).min() / n)


def is_balanced(counts) -> bool:
    """Whether the global label histogram is balanced: every given label is used ``n`` times."""
    cnt = check_count_matrix(counts)
    return bool(np.all(cnt.sum(axis=0) == cnt[0].sum()))


def eigen_ratio_rho(model: BlockModel, lam) -> float:
    r"""``rho = a_2 / a_3 = mu_2 (mu_3 + K lam N) / (mu_3 (mu_2 + K lam N))``.

    ``rho >= 1`` with equality iff ``c = d``; ``inf`` if ``mu_3 = 0`` (``c = 1``: points of a class
    coincide and the own-label part is filtered out completely).
    """
    lam = check_positive(lam, "lam")
    _, mu2, mu3 = model.eigenvalues
    kln = model.n_classes * lam * model.n_samples
    if mu3 <= 0:
        return math.inf
    return float(mu2 * (mu3 + kln) / (mu3 * (mu2 + kln)))


# --------------------------------------------------------------------------------------------
# exponential-sum gaps


def training_gap_coefficients(model: BlockModel, counts):
    r"""Coefficients of every linearised training gap, shape (M, 3), and their point weights (M,).

    Row ``i`` is ``(alpha, beta, gamma)`` for one (non-empty group, rival class) pair:
    ``g(t) = alpha a_1^(t+1) + beta a_2^(t+1) + gamma a_3^(t+1)`` (module docstring).

    Returns
    -------
    coefs : ndarray, shape (M, 3)
    groups : ndarray of int, shape (M, 3)
        ``(k, l, m)`` for each row.
    """
    cnt = check_counts(counts, model)
    k = model.n_classes
    hist = cnt.sum(axis=0)
    kk, ll = np.nonzero(cnt > 0)
    kk, ll = np.repeat(kk, k), np.repeat(ll, k)
    m = np.tile(np.arange(k), kk.size // k)
    keep = m != kk
    kk, ll, m = kk[keep], ll[keep], m[keep]
    dc = (cnt[kk, kk] - cnt[kk, m]) / model.per_class
    alpha = (hist[kk] - hist[m]) / model.n_samples
    own = (ll == kk).astype(float) - (ll == m).astype(float)
    coefs = np.stack([alpha, dc - alpha, own - dc], axis=1)
    return coefs, np.stack([kk, ll, m], axis=1)


def _distinct_training_gaps(model: BlockModel, cnt) -> np.ndarray:
    r"""The distinct rows of :func:`training_gap_coefficients`, at most ``3 K (K - 1)`` of them.

    For a true class ``k`` and rival ``m`` the gap depends on the group's given label ``l`` only
    through ``delta = [l = k] - [l = m]`` in {1, -1, 0}: one row for the clean group (if
    ``C[k,k] > 0``), one for the group labelled ``m`` (if ``C[k,m] > 0``) and one shared by all
    other groups of class ``k`` (if any is non-empty). ``O(K^2)`` rows instead of ``O(K^3)``.
    """
    k, n = model.n_classes, model.per_class
    hist = cnt.sum(axis=0)
    kk, m = np.nonzero(~np.eye(k, dtype=bool))
    dc = (cnt[kk, kk] - cnt[kk, m]) / n
    alpha = (hist[kk] - hist[m]) / model.n_samples
    rows = []
    for own, present in (
        (1.0, cnt[kk, kk] > 0),
        (-1.0, cnt[kk, m] > 0),
        (0.0, n - cnt[kk, kk] - cnt[kk, m] > 0),
    ):
        sel = present
        rows.append(np.stack([alpha[sel], dc[sel] - alpha[sel], own - dc[sel]], axis=1))
    return np.concatenate(rows, axis=0)


def population_gap_coefficients(model: BlockModel, counts, lam):
    r"""Coefficients of every linearised population gap (class ``k`` vs ``m``), shape (K(K-1), 2).

    Population logits of the round-``t`` student (trained on ``T_t = 1/K + (Y - 1/K) A^t``) at the
    class-``k`` population point give the gap

    .. math::  g(t) = \frac{(1-a_1)\bar m (H_k - H_m)}{\lambda N} a_1^t
        + \frac{(1-a_2)(c-d)[(C_{kk}-C_{km}) - (H_k-H_m)/K]}{\lambda N} a_2^t,

    ``bar m = d + (c - d)/K``. Returns ``(coefs (M, 2), pairs (M, 2))`` for bases ``(a_1, a_2)``.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    a = model.filter_ratios(lam)
    k = model.n_classes
    hist = cnt.sum(axis=0).astype(float)
    mbar = model.d + (model.c - model.d) / k
    lam_n = lam * model.n_samples
    kk, m = np.nonzero(~np.eye(k, dtype=bool))  # all ordered pairs k != m, row-major
    dh = hist[kk] - hist[m]
    dc = (cnt[kk, kk] - cnt[kk, m]).astype(float)
    coefs = np.stack(
        [
            (1 - a[0]) * mbar * dh / lam_n,
            (1 - a[1]) * (model.c - model.d) * (dc - dh / k) / lam_n,
        ],
        axis=1,
    )
    return coefs, np.stack([kk, m], axis=1).astype(np.int64)


def _merge_bases(coefs, bases):
    """Sum the columns of equal bases and drop zero bases (``0^s = 0`` for ``s >= 1``).

    Returns ``(coefs (M, J), bases (J,))`` with distinct positive bases in decreasing order.
    """
    coefs = np.asarray(coefs, dtype=float)
    bases = np.asarray(bases, dtype=float)
    uniq = sorted({float(b) for b in bases if b > 0}, reverse=True)
    merged = np.zeros((coefs.shape[0], len(uniq)))
    for j, b in enumerate(bases):
        if b > 0:
            merged[:, uniq.index(float(b))] += coefs[:, j]
    return merged, np.array(uniq)


def _values(coefs, bases, s):
    """Row values ``sum_j c_j b_j^s`` scaled by their largest term, and the scaled sum of |terms|.

    ``s`` is a scalar or one exponent per row (M,). Scaling each row by its own largest term keeps
    the sign exact and avoids under/overflow for any ``s`` (``b^s`` alone underflows for
    ``s log b < -745``). Rows that vanish identically get value and scale 0 ("not positive": a
    tie). ``b = 0`` counts as ``0^0 = 1`` at ``s = 0``.
    """
    coefs = np.asarray(coefs, dtype=float)
    s = np.broadcast_to(np.asarray(s, dtype=float), (coefs.shape[0],))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_b = np.log(np.asarray(bases, dtype=float))
        expo = s[:, None] * log_b[None, :]
        expo = np.where((s[:, None] == 0) & np.isneginf(log_b[None, :]), 0.0, expo)
        log_mag = np.log(np.abs(coefs)) + expo
    top = np.max(log_mag, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    terms = np.where(np.isfinite(log_mag), np.sign(coefs) * np.exp(log_mag - top), 0.0)
    return terms.sum(axis=1), np.abs(terms).sum(axis=1)


def _exp_sum_roots(coefs, bases, s_min):
    r"""Sign changes ``s > s_min`` of ``g_i(s) = sum_j c_ij b_j^s``, vectorised over rows.

    Bases must be distinct, positive and decreasing (:func:`_merge_bases`), at most three. Each
    row is normalised by its leading nonzero term: ``h(s) = c_0 + c_1 e^{-d_1 s} + c_2 e^{-d_2 s}``
    (``0 < d_1 < d_2``), whose derivative vanishes at most once, at the explicit
    ``s_c = log(-c_2 d_2 / (c_1 d_1)) / (d_2 - d_1)`` (Lemma 6.1): ``h`` is monotone on
    ``[s_min, s_c]`` and ``[s_c, inf)``, and each piece holds at most one root, found by bisection
    (the last piece is closed at ``s_hi`` beyond which ``|c_0|`` dominates). Two-term rows have the
    closed-form root ``log(-c_1 / c_0) / d_1``.

    Returns
    -------
    ndarray, shape (M, 2)
        Roots in increasing order, ``NaN`` where absent.
    """
    c = np.asarray(coefs, dtype=float)
    m, j = c.shape
    roots = np.full((m, 2), np.nan)
    if j > 3:
        raise ValueError("at most three exponential terms are supported")
    if m == 0 or j <= 1:
        return roots
    deltas = np.log(bases[0] / np.asarray(bases, dtype=float))  # 0 = d_0 < d_1 < d_2
    nz = c != 0
    # Shift every row to its leading nonzero term: columns (lead, next, next-next).
    order = np.argsort(~nz, axis=1, kind="stable")  # nonzero columns first, in base order
    cs = np.take_along_axis(c, order, axis=1)
    ds = deltas[order]
    ds = ds - ds[:, :1]
    nterm = nz.sum(axis=1)

    two = nterm == 2
    with np.errstate(divide="ignore", invalid="ignore"):
        root2 = np.log(-cs[:, 1] / cs[:, 0]) / ds[:, 1]
    ok2 = two & (cs[:, 0] * cs[:, 1] < 0) & (root2 > s_min)
    roots[ok2, 0] = root2[ok2]

    three = np.flatnonzero(nterm == 3)
    if three.size:
        c3, d3 = cs[three], ds[three]

        def h(s):
            return c3[:, 0] + c3[:, 1] * np.exp(-d3[:, 1] * s) + c3[:, 2] * np.exp(-d3[:, 2] * s)

        with np.errstate(divide="ignore", invalid="ignore"):
            s_c = np.log(-c3[:, 2] * d3[:, 2] / (c3[:, 1] * d3[:, 1])) / (d3[:, 2] - d3[:, 1])
        has_c = (c3[:, 1] * c3[:, 2] < 0) & (s_c > s_min)
        s_c = np.where(has_c, s_c, s_min)
        # Beyond s_hi, |c_0| > (|c_1| + |c_2|) e^{-d_1 s}: the sign is that of c_0.
        ratio = (np.abs(c3[:, 1]) + np.abs(c3[:, 2])) / np.abs(c3[:, 0])
        s_hi = np.maximum(s_c, s_min) + np.maximum(np.log(ratio), 0.0) / d3[:, 1] + 1.0
        found = []
        for lo0, hi0 in ((np.full(three.size, float(s_min)), s_c), (s_c, s_hi)):
            f_lo = h(lo0)
            bracket = (f_lo * h(hi0) < 0) & (hi0 > lo0)
            lo, hi = lo0.copy(), hi0.copy()
            for _ in range(200):  # bisection: the bracket shrinks to adjacent floats
                mid = 0.5 * (lo + hi)
                left = np.sign(h(mid)) == np.sign(f_lo)
                lo = np.where(left, mid, lo)
                hi = np.where(left, hi, mid)
                if np.all((hi - lo) <= 4 * np.finfo(float).eps * np.maximum(np.abs(hi), 1.0)):
                    break
            at_lo = (f_lo == 0.0) & (lo0 > s_min)  # a root exactly at the critical point
            found.append(np.where(bracket, 0.5 * (lo + hi), np.where(at_lo, lo0, np.nan)))
        r3 = np.sort(np.stack(found, axis=1), axis=1)  # NaN sorts last
        roots[three] = r3
    return roots


def _positive_round_intervals(coefs, bases, shift):
    """Integer rounds ``t >= 0`` where every gap ``sum_j coefs[i, j] bases[j]^(t+shift)`` is > 0.

    A gap counts as positive when it exceeds ``GAP_RTOL`` times the sum of its absolute terms.
    Each row changes sign only at its (at most two) roots; its status is evaluated exactly at
    ``t = 0`` and at the integers ``floor(root) - 1 .. floor(root) + 2`` around every root, and
    is constant between consecutive evaluated integers. The bad rounds of all rows form a union of
    integer intervals, merged in ``O(M log M)``; the answer is its complement.

    Returns a list of ``(first, last)`` intervals, ``last = None`` meaning "for ever".
    """
    coefs = np.asarray(coefs, dtype=float)
    if coefs.size == 0:
        return [(0, None)]
    coefs, bases = _merge_bases(np.unique(coefs, axis=0), bases)
    m = coefs.shape[0]
    if bases.size == 0:  # every term vanishes for s >= 1: all gaps are 0, i.e. ties
        return [] if shift >= 1 else _positive_round_intervals_at_zero(coefs, shift)
    roots = _exp_sum_roots(coefs, bases, float(shift)) - shift  # in rounds t
    cand = [np.zeros((m, 1))]
    for i in range(2):
        f = np.floor(roots[:, i : i + 1])
        cand.append(f + np.arange(-1, 3)[None, :])
    cand = np.concatenate(cand, axis=1)  # (M, 9), NaN where no root
    cand = np.where(np.isfinite(cand) & (cand >= 0), cand, np.nan)
    cand = np.sort(cand, axis=1)  # NaN last
    rows = np.repeat(np.arange(m), cand.shape[1])
    ts = cand.ravel()
    keep = np.isfinite(ts)
    rows, ts = rows[keep], ts[keep]
    # unique (row, t) pairs, sorted by row then t
    key = np.unique(np.stack([rows, ts], axis=1), axis=0)
    rows, ts = key[:, 0].astype(np.int64), key[:, 1]
    vals, scale = _values(coefs[rows], bases, ts + shift)
    bad = ~(vals > GAP_RTOL * scale)
    nxt = np.append(ts[1:], np.inf)
    nxt[np.append(rows[1:] != rows[:-1], True)] = np.inf  # last evaluated integer of a row
    starts, ends = ts[bad], nxt[bad] - 1  # bad on [t, next - 1]
    if starts.size == 0:
        return [(0, None)]
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    run_end = np.maximum.accumulate(ends)
    # merged bad blocks: a new block starts where start > previous running end + 1
    new_block = np.append(True, starts[1:] > run_end[:-1] + 1)
    b_start = starts[new_block]
    b_end = run_end[np.append(np.flatnonzero(new_block)[1:] - 1, starts.size - 1)]
    intervals: list[tuple[int, int | None]] = []
    t = 0.0
    for s, e in zip(b_start, b_end, strict=True):
        if s > t:
            intervals.append((int(t), int(s - 1)))
        t = e + 1
        if not np.isfinite(t):
            break
    if np.isfinite(t):
        intervals.append((int(t), None))
    return intervals


def _positive_round_intervals_at_zero(coefs, shift):  # pragma: no cover - shift is 0 or 1
    vals, scale = _values(coefs, np.zeros(0), 0.0)
    return [(0, 0)] if np.all(vals > GAP_RTOL * scale) else []


def correct_round_intervals_linear(model: BlockModel, counts, lam):
    """All rounds at which the linearised prediction classifies every training point correctly.

    Returns
    -------
    list of (first, last)
        Disjoint, increasing integer intervals; ``last = None`` means all later rounds too.
        Empty list if no round reaches 100%.
    """
    lam = check_positive(lam, "lam")
    coefs = _distinct_training_gaps(model, check_counts(counts, model))
    return _positive_round_intervals(coefs, model.filter_ratios(lam), shift=1)


def window_linear(model: BlockModel, counts, lam):
    """``(first, last)`` round of 100% linearised training accuracy, ``last=None`` if unbounded.

    ``None`` if no round reaches 100%. (If the set of such rounds is not an interval --
    possible only with an unbalanced histogram -- this is its hull; see
    :func:`correct_round_intervals_linear`.)
    """
    iv = correct_round_intervals_linear(model, counts, lam)
    if not iv:
        return None
    return iv[0][0], iv[-1][1]


def collapse_round_linear(model: BlockModel, counts, lam):
    """First round after which the linearised prediction is never again 100% (``None`` if never).

    With ``d > 0`` and an unbalanced global histogram the global-histogram part
    ``(w_1 - w_2) h`` dominates for large ``t`` and predictions collapse onto the most frequent
    given labels. Returns ``None`` if 100% is never reached or is kept for ever.
    """
    w = window_linear(model, counts, lam)
    if w is None or w[1] is None:
        return None
    return w[1] + 1


def collapse_window_linear(model: BlockModel, counts, lam, max_rounds):
    """The 100%-accuracy window clipped to rounds ``0..max_rounds``: ``(first, last)`` or None."""
    r = check_int(max_rounds, "max_rounds", 0)
    w = window_linear(model, counts, lam)
    if w is None or w[0] > r:
        return None
    return w[0], r if w[1] is None else min(w[1], r)


def min_rounds_closed_form(model: BlockModel, counts, lam):
    r"""Closed-form minimum round for a BALANCED global histogram (or ``d = 0``).

    Under plurality (margin ``Delta > 0``), every point is correct at round ``t`` iff
    ``rho^(t+1) > 1 + 1/Delta*`` (``Delta*`` = :func:`mislabeled_margin`), so

    .. math::  t_{min} = \left\lfloor \frac{\log(1 + 1/\Delta^*)}{\log \rho} \right\rfloor ,

    ``0`` if there are no mislabeled points or ``rho = inf``; ``None`` if plurality fails or
    ``rho = 1`` (never 100%).

    Raises
    ------
    ValueError
        If the histogram is unbalanced and ``d != 0`` (use :func:`min_rounds_linear`).
    """
    cnt = check_counts(counts, model)
    if not (is_balanced(cnt) or model.d == 0.0):
        raise ValueError(
            "counts must have a balanced global label histogram (or d = 0) for the closed form"
        )
    holds, _ = plurality_condition(cnt)
    if not holds:
        return None
    dstar = mislabeled_margin(cnt)
    rho = eigen_ratio_rho(model, lam)
    if math.isinf(dstar) or math.isinf(rho):
        return 0
    if rho <= 1.0:
        return None
    x = math.log1p(1.0 / dstar) / math.log(rho)
    t = max(int(math.floor(x)), 0)
    # Guard the floor against round-off when x is (nearly) an integer: gap(t) = (rho^(t+1)-1) D - 1.
    a = model.filter_ratios(lam)

    def ok(s):
        return (a[1] / a[2]) ** s - 1.0 > 1.0 / dstar

    while t > 0 and ok(t):
        t -= 1
    while not ok(t + 1):
        t += 1
    return t


def min_rounds_linear(model: BlockModel, counts, lam):
    """First round at which the linearised prediction is 100% on the training set (None if never).

    Closed form (:func:`min_rounds_closed_form`) for a balanced histogram or ``d = 0``; otherwise
    the first round of :func:`correct_round_intervals_linear` (exact roots of exponential sums).
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    if is_balanced(cnt) or model.d == 0.0:
        return min_rounds_closed_form(model, cnt, lam)
    w = window_linear(model, cnt, lam)
    return None if w is None else w[0]


@dataclass(frozen=True)
class PopulationCondition:
    """Linearised population accuracy over rounds.

    Attributes
    ----------
    intervals : list of (first, last)
        Rounds with 100% population accuracy (``last=None``: for ever).
    flip_rounds : dict
        ``(k, m) -> t*``: the class-``k`` population point beats class ``m`` for ``t < t*`` and
        loses afterwards (or the reverse); each pairwise gap changes sign at most once.
    """

    intervals: list
    flip_rounds: dict


def population_condition_linear(model: BlockModel, counts, lam) -> PopulationCondition:
    r"""When the linearised population accuracy is 100%.

    Balanced histogram: the gap is ``(1-a_2)(c-d)(C_kk - C_km) a_2^t / (lam N)``, so population
    accuracy is 100% at every round iff plurality holds (``c > d``), and constant in ``t``.
    Unbalanced: each gap is a two-term exponential sum; its single possible sign change is at
    ``t* = log(-beta/alpha) / log(a_1/a_2)`` (``alpha, beta`` the ``a_1^t, a_2^t`` coefficients).
    """
    lam = check_positive(lam, "lam")
    coefs, pairs = population_gap_coefficients(model, counts, lam)
    a = model.filter_ratios(lam)
    bases = np.array([a[0], a[1]])
    merged, mbases = _merge_bases(coefs, bases)
    roots = _exp_sum_roots(merged, mbases, 0.0)[:, 0]
    has = np.isfinite(roots)
    flips = {(int(k), int(m)): float(t) for (k, m), t in zip(pairs[has], roots[has], strict=True)}
    return PopulationCondition(_positive_round_intervals(coefs, bases, shift=0), flips)
