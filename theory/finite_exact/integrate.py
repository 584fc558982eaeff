r"""One group's points integrated at the current state of the finite-ratio state equations.

The per-point half of :mod:`theory.finite_exact.state` (notation in its docstring, docs/theory.md
§16): the Cholesky factor of a class's cavity covariance (:func:`noise_factor`), the prox solve of
one group's training logits on the quadrature points and their averages (:func:`group_pass`:
``psi``, ``d psi_t/d h_t``, second moments), the pathwise cross-round tangents kept per point
(forward mode, float32) for self-distillation, and the score-identity cross-round derivatives for
the PLL student (:func:`cross_derivatives`). Each round's fixed-point map in
:mod:`theory.finite_exact.state` calls these once per group and iteration.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from theory.finite_exact.prox import ce_prox, newton_matrix, softmax, sum_h_times
from theory.losses import softmax_deviation
from theory.partial_labels import top2_indices

__all__ = ["NotPSD", "cross_derivatives", "group_pass", "noise_factor"]

#: Numbers per batched (chunk, K, K) work array (2^21 doubles = 16 MB).
_CHUNK_NUMBERS = 2**21
#: Largest negative eigenvalue (relative to the largest variance) clipped in a cavity covariance
#: (quadrature-level inconsistency between rows estimated on different rules).
_PSD_CLIP = 1e-2


class NotPSD(np.linalg.LinAlgError):
    """An iterate's cavity covariance is not PSD (only possible for an extrapolated iterate)."""


def noise_factor(t, prob, st, basis, cls):
    """Zero-sum Cholesky factor ``Lt`` ((t+1)(K-1) square, lower) of a class-``cls`` point's
    cavity covariance over rounds ``0..t``, ``Sigma + C_cls`` with
    ``Sigma = Q + sigma^2 B Gamma^+ B^T``, and the embedded factor ``(I (x) E) Lt``."""
    k = prob.n_classes
    dim = (t + 1) * k
    bb = np.concatenate([st.b[s] for s in range(t + 1)], axis=0)  # ((t+1)K, K)
    sigma = st.q[:dim, :dim] + prob.sigma2 * bb @ np.linalg.pinv(prob.gamma) @ bb.T
    sigma = sigma + st.ceta[cls, :dim, :dim]
    ee = np.kron(np.eye(t + 1), basis)
    red = ee.T @ sigma @ ee
    red = 0.5 * (red + red.T)
    # Jacobi scaling: every coordinate's variance becomes 1, so the load and the clip below are
    # relative to each round's own variances. (Relative to the largest one, a load of 1e-13 of
    # round 0's variance swamped a late round's at large lam, whose variances shrink by ~1e-6
    # per round: chance accuracies at lam = 100.) ``red = D red_s D`` gives ``chol = D chol_s``.
    diag = np.diag(red)
    unit = np.sqrt(np.maximum(diag, 1e-300))  # a zero variance stays zero (and loaded)
    red = red / unit[:, None] / unit[None, :]
    scale = 1.0
    # A tiny diagonal load keeps the factor defined when Sigma is (numerically) singular, e.g.
    # rounds whose bulk noise vanishes; it perturbs each variance by 1e-13 of itself.
    for load in (1e-13, 1e-10, 1e-7):
        try:
            chol = np.linalg.cholesky(red + load * scale * np.eye(red.shape[0]))
            break
        except np.linalg.LinAlgError:
            continue
    else:
        # alpha V <psi psi^T> V^T is PSD for second moments of one point set. A row estimated on
        # the coarse rule beside earlier rows from the full one can be indefinite at the level of
        # the quadrature error (~1e-3 relative); an extrapolated (Anderson) iterate can be worse.
        # Clip the first kind to its PSD part, refuse the second.
        lam_, vec = np.linalg.eigh(red)
        if lam_.min() < -_PSD_CLIP * scale:
            raise NotPSD("cavity covariance is not positive semidefinite")
        lam_ = np.maximum(lam_, 1e-13 * scale)
        chol = np.linalg.cholesky((vec * lam_) @ vec.T)
    chol = unit[:, None] * chol
    return chol, ee @ chol


def _chunks(m: int, k: int):
    size = max(1, _CHUNK_NUMBERS // (k * k))
    return [slice(i, min(m, i + size)) for i in range(0, m, size)]


def _target(t, label, st, g, k, m, student="sd"):
    """Round ``t``'s targets: the one-hot label (t = 0), the previous round's outputs (SD) or,
    for the PLL student, weight 1/2 on each of the teacher's top-2 logits."""
    if t == 0:
        tau = np.zeros((m, k))
        tau[:, label] = 1.0
        return tau
    if student == "pll":
        # The toolkit's top-2 rule (theory.partial_labels): decided from the logits, exact ties
        # (the block limit's symmetric groups) broken towards the smaller class index.
        top2 = top2_indices(st.z[0, g].T)
        tau = np.zeros((m, k))
        rows = np.arange(m)
        tau[rows, top2[0]] = 0.5
        tau[rows, top2[1]] = 0.5
        return tau
    return softmax(st.z[t - 1, g])


def _response_row(t, st, cls, k, v0):
    """Block row ``t`` of ``R = V + U_cls + Omega`` ((t+1) blocks K x K).

    The diagonal block enters the prox ``z + R_tt softmax(z) = a``, which needs it symmetric
    positive definite. Only its action on zero-sum vectors matters (``R`` multiplies gradients
    ``psi``, which sum to zero; a component along ``1`` only shifts all logits of a round by one
    constant), so it is symmetrised and its ``1``-direction set to ``v0`` (as ``V``'s own):
    ``R_tt <- P R_tt P + v0 11^T/K``. Its zero-sum part must be positive definite; an
    extrapolated (Anderson) iterate that is not raises :class:`NotPSD` (restart).
    """
    rows = slice(t * k, (t + 1) * k)
    row = np.stack(
        [
            st.v[t, s] + st.u[cls, rows, s * k : (s + 1) * k] + st.omega[rows, s * k : (s + 1) * k]
            for s in range(t + 1)
        ]
    )
    proj = np.eye(k) - 1.0 / k
    diag = proj @ (0.5 * (row[t] + row[t].T)) @ proj
    if np.linalg.eigvalsh(diag)[1] <= 1e-12 * v0:  # [0] is the 1-direction (exactly 0)
        raise NotPSD("self-response is not positive definite")
    row[t] = diag + v0 / k
    return row


def group_pass(t, g, cls, label, prob, st, pts, noise_t, warm, m, store=False):
    """Solve round ``t``'s logits of group ``g`` on the first ``m`` points and return their
    averages (``noise_t`` already restricted to them).

    Returns ``(mean psi_t, mean d psi_t/d h_t, <psi_t psi_s^T> (s <= t), cross, score)``:
    ``cross`` (t, K, K) the pathwise means of ``d psi_t / d h_r`` (r < t) for self-distillation,
    ``score`` the score-identity moments ``<psi_t xi^T>`` for the PLL student (its target is
    discontinuous in ``z_0``: the distributional derivative is needed). With ``store`` (the pass
    at the converged state), the per-point tangents are kept for the next rounds.
    """
    k = prob.n_classes
    resp = _response_row(t, st, cls, k, prob.v0)
    r_tt = resp[t]
    # Cavity mean b_k - U_k psi-bar_g (the group's own expected share of its class means).
    shift = st.u[cls, t * k : (t + 1) * k, : (t + 1) * k] @ st.psi_mean[: t + 1, g].ravel()
    a = st.b[t][:, cls] - shift + noise_t
    for s in range(t):
        a = a + st.psi[s, g, :m] @ resp[s].T
    tau = _target(t, label, st, g, k, pts.size, prob.student)[:m]
    # In deviations from uniform throughout (R_tt 1 = v0 1, _response_row): z + R_tt (s - 1/K) =
    # a + R_tt (tau - 1/K), and psi_t = (tau - 1/K) - (s - 1/K). At large lam a late round's
    # outputs are 1/K + 1e-20 or less: from probabilities, the common shift v0/K and the
    # difference of two outputs near 1/K would round those differences away (docs §16.6).
    if t > 0 and prob.student == "sd":
        tau_dev = softmax_deviation(st.z[t - 1, g, :m])
    else:
        tau_dev = tau - 1.0 / k
    a = a + tau_dev @ r_tt.T
    z = ce_prox(a, r_tt, st.z[t, g, :m] if warm else None, deviations=True)
    st.z[t, g, :m] = z
    s_t = softmax(z)
    psi = tau_dev - softmax_deviation(z)
    st.psi[t, g, :m] = psi
    st.psi_mean[t, g] = psi.mean(axis=0)
    pathwise = prob.student == "sd" and t > 0 and prob.alpha > 0
    jac = np.zeros((k, k))
    cross = np.zeros((t, k, k))
    for sl in _chunks(m, k):
        # d psi_t / d h_t = -H (I + R H)^{-1}  (z = h + R psi: dz = (I + R H)^{-1} dh)
        inv = np.linalg.inv(newton_matrix(r_tt, s_t[sl]))
        jac -= sum_h_times(s_t[sl], inv)
        if pathwise:
            cross += _cross_tangents(t, g, resp, inv, s_t[sl], st, sl, store)
        if store and prob.student == "sd" and prob.alpha > 0:
            _store(st, g, t, t, sl, -_h_times(s_t[sl], inv), inv)
    jac /= m
    cross /= m
    pp = np.einsum("mi,smj->sij", psi, st.psi[: t + 1, g, :m]) / m
    score = None
    if prob.student == "pll" and pts.dim:
        score = psi.T @ pts.xi[:m, : (t + 1) * (k - 1)] / m
    return psi.mean(axis=0), 0.5 * (jac + jac.T), pp, cross, score


def _h_times(s, mats):
    """``H_b M_b`` per point (``H_b = diag(s_b) - s_b s_b^T``), shape (B, K, K)."""
    return s[:, :, None] * mats - s[:, :, None] * np.einsum("bi,bij->bj", s, mats)[:, None, :]


def _cross_tangents(t, g, resp, inv, s_t, st, sl, store):
    """Sum over the points ``sl`` of ``d psi_t / d h_r`` for ``r < t`` (pathwise, forward mode).

    With ``W_r = d tau_t / d h_r = H_{t-1} dz_{t-1}/dh_r`` and ``X_{s,r} = d psi_s / d h_r``
    (stored with rounds ``t-1`` and ``s``):
    ``dz_t/dh_r = (I + R_tt H_t)^{-1} (sum_{r <= s < t} R_ts X_{s,r} + R_tt W_r)`` and
    ``d psi_t/d h_r = W_r - H_t dz_t/dh_r``. Tangents are stored in float32 (relative error
    ~1e-7, far below the quadrature's).
    """
    k = s_t.shape[1]
    s_prev = softmax(st.z[t - 1, g][sl])
    out = np.zeros((t, k, k))
    for r in range(t):
        w_r = _h_times(s_prev, st.dz[(g, t - 1, r)][sl].astype(float))
        rhs = np.einsum("ij,bjk->bik", resp[t], w_r)
        for s in range(r, t):
            rhs += np.einsum("ij,bjk->bik", resp[s], st.dpsi[(g, s, r)][sl].astype(float))
        dz = inv @ rhs
        dpsi = w_r - _h_times(s_t, dz)
        out[r] = dpsi.sum(axis=0)
        if store:
            _store(st, g, t, r, sl, dpsi, dz)
    return out


def _store(st, g, t, r, sl, dpsi, dz):
    """Keep the per-point tangents of round ``t`` w.r.t. ``h_r`` (float32, full point set)."""
    for table, val in ((st.dpsi, dpsi), (st.dz, dz)):
        key = (g, t, r)
        if key not in table:
            table[key] = np.zeros((st.z.shape[2],) + val.shape[1:], dtype=np.float32)
        table[key][sl] = val


def cross_derivatives(t, jac_sum, score_sum, chol, basis, k):
    """Blocks ``sum E[d psi_t / d h_r]`` (r < t) from the score identity (module docstring).

    ``E[psi_t xi_j^T] = sum_{r >= j} D_r E Lt_{rj}`` with ``D_t`` known (pathwise), solved for
    ``D_j`` from ``j = t - 1`` down to 0 in zero-sum coordinates (``D_r = E Dt_r E^T``)."""
    km = k - 1
    dt = np.zeros((t + 1, km, km))
    dt[t] = basis.T @ jac_sum @ basis
    proj = basis.T @ score_sum  # (K-1, (t+1)(K-1))
    for j in range(t - 1, -1, -1):
        rhs = proj[:, j * km : (j + 1) * km].copy()
        for r in range(j + 1, t + 1):
            rhs -= dt[r] @ chol[r * km : (r + 1) * km, j * km : (j + 1) * km]
        ljj = chol[j * km : (j + 1) * km, j * km : (j + 1) * km]
        dt[j] = solve_triangular(ljj, rhs.T, trans="T", lower=True).T
    return np.stack([basis @ dt[r] @ basis.T for r in range(t)]) if t else np.zeros((0, k, k))
