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
additionally count gaps below ``TIE_ATOL`` as ties (errors). The two differ only when a gap is
within ``TIE_ATOL`` of zero, which the tests detect and report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

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
    hist = cnt.sum(axis=0)
    mbar = model.d + (model.c - model.d) / k
    lam_n = lam * model.n_samples
    rows, idx = [], []
    for kk in range(k):
        for m in range(k):
            if m == kk:
                continue
            dh = float(hist[kk] - hist[m])
            dc = float(cnt[kk, kk] - cnt[kk, m])
            rows.append(
                (
                    (1 - a[0]) * mbar * dh / lam_n,
                    (1 - a[1]) * (model.c - model.d) * (dc - dh / k) / lam_n,
                )
            )
            idx.append((kk, m))
    return np.array(rows), np.array(idx, dtype=np.int64)


def _merge_terms(coefs, bases):
    """Sum coefficients of equal bases, drop zero bases (0^s = 0 for s >= 1) and zero terms."""
    terms: dict[float, float] = {}
    for c, b in zip(coefs, bases, strict=True):
        if b <= 0:
            continue
        terms[float(b)] = terms.get(float(b), 0.0) + float(c)
    items = sorted(((b, c) for b, c in terms.items() if c != 0.0), reverse=True)
    return [c for _, c in items], [b for b, _ in items]


def _normalised(coefs, bases, s):
    """``sum_j c_j (b_j / b_1)^s``: same sign as the gap, no overflow for large ``s``."""
    lead = math.log(bases[0])
    return sum(c * math.exp((math.log(b) - lead) * s) for c, b in zip(coefs, bases, strict=True))


def _sign_changes(coefs, bases, s_min):
    r"""All roots ``s > s_min`` of ``sum_j c_j b_j^s`` (at most ``len - 1`` by Descartes' rule).

    The normalised sum ``h(s) = sum_j c_j e^{-delta_j s}`` (``delta_j = log(b_1/b_j) >= 0``) with at
    most three terms has a derivative with at most one zero ``s_c``, so ``h`` is monotone on
    ``[s_min, s_c]`` and ``[s_c, inf)``; each piece is bracketed and solved with ``brentq``.
    """
    c, b = _merge_terms(coefs, bases)
    if len(c) <= 1:
        return []
    if len(c) > 3:
        raise ValueError("at most three exponential terms are supported")

    def h(s):
        return _normalised(c, b, s)

    deltas = [math.log(b[0] / bj) for bj in b]
    pieces = [s_min]
    if len(c) == 3 and c[1] * c[2] < 0:
        s_c = math.log(-c[2] * deltas[2] / (c[1] * deltas[1])) / (deltas[2] - deltas[1])
        if s_c > s_min:
            pieces.append(s_c)
    # h(inf) = c[0]; find a finite point beyond the last piece with that sign.
    hi = pieces[-1] + 1.0
    while np.sign(h(hi)) != np.sign(c[0]):
        hi = 2.0 * hi + 1.0
        if hi > 1e18:  # pragma: no cover - impossible for distinct bases and finite coefficients
            raise RuntimeError("failed to bracket the last sign change of an exponential sum")
    pieces.append(hi)
    roots = []
    for lo, up in zip(pieces[:-1], pieces[1:], strict=True):
        f_lo, f_up = h(lo), h(up)
        if f_lo == 0.0:
            roots.append(lo)
        elif f_lo * f_up < 0:
            roots.append(brentq(h, lo, up, xtol=1e-12, rtol=4 * np.finfo(float).eps))
    return roots


def _row_values(coefs, bases, s):
    """Row sums ``sum_j c_j b_j^s`` scaled by their largest term, and the scaled ``sum |terms|``.

    Scaling each row by its own largest term keeps the sign exact and avoids under/overflow for
    any round ``s`` (``b^s`` alone underflows for ``s log b < -745``). Rows that vanish identically
    get value and scale 0, i.e. "not positive" (a tie).
    """
    bases = np.asarray(bases, dtype=float)
    with np.errstate(divide="ignore"):
        log_b = np.log(bases) if s != 0 else np.zeros_like(bases)  # b^0 = 1, also for b = 0
        log_mag = np.log(np.abs(coefs)) + s * log_b[None, :]
    top = np.max(log_mag, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    terms = np.where(np.isfinite(log_mag), np.sign(coefs) * np.exp(log_mag - top), 0.0)
    return terms.sum(axis=1), np.abs(terms).sum(axis=1)


def _positive_round_intervals(coefs, bases, shift):
    """Integer rounds ``t >= 0`` where every gap ``sum_j coefs[i, j] bases[j]^(t+shift)`` is > 0.

    Returns a list of ``(first, last)`` intervals, ``last = None`` meaning "for ever".
    """
    coefs = np.asarray(coefs, dtype=float)
    if coefs.size == 0:
        return [(0, None)]
    coefs = np.unique(coefs, axis=0)  # many (group, rival) pairs share their gap function
    breaks = []
    for row in coefs:
        breaks += [s - shift for s in _sign_changes(row, bases, s_min=float(shift))]
    cand = {0}
    for br in breaks:
        f = math.floor(br)
        cand.update(v for v in range(f - 1, f + 3) if v >= 0)
    cand = sorted(cand)

    def all_positive(t):
        vals, scale = _row_values(coefs, bases, t + shift)
        return bool(np.all(vals > GAP_RTOL * scale))

    status = [all_positive(t) for t in cand]
    intervals: list[tuple[int, int | None]] = []
    for i, (t, ok) in enumerate(zip(cand, status, strict=True)):
        if not ok:
            continue
        end = cand[i + 1] - 1 if i + 1 < len(cand) else None
        if intervals and intervals[-1][1] is not None and intervals[-1][1] + 1 == t:
            intervals[-1] = (intervals[-1][0], end)
        else:
            intervals.append((t, end))
    return intervals


def correct_round_intervals_linear(model: BlockModel, counts, lam):
    """All rounds at which the linearised prediction classifies every training point correctly.

    Returns
    -------
    list of (first, last)
        Disjoint, increasing integer intervals; ``last = None`` means all later rounds too.
        Empty list if no round reaches 100%.
    """
    lam = check_positive(lam, "lam")
    coefs, _ = training_gap_coefficients(model, counts)
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
    flips = {}
    for row, (kk, m) in zip(coefs, pairs, strict=True):
        roots = _sign_changes(row, bases, s_min=0.0)
        if roots:
            flips[(int(kk), int(m))] = roots[0]
    return PopulationCondition(_positive_round_intervals(coefs, bases, shift=0), flips)
