r"""Training-set fluctuations of the class means ``b`` (order ``1/sqrt(n)``; docs §16.5).

The state equations use the class sums' expectations, ``S_l = n_l E_l[psi]``. On one training set
they fluctuate: (i) ``S_l`` is a sum of ``n_l`` cavity samples, ``Xi_l = S_l - n_l E_l[psi]``
with ``Cov(Xi_{l,t}, Xi_{l,s}) = sum_{g in l} C_g Cov_g(psi_t, psi_s)`` (independent across
classes); (ii) the mean-subspace noise ``zeta_j ~ N(0, sigma^2 Gamma)`` of each
point enters the class-sum equation as ``E = sum_j psi_j zeta_j^T`` beyond its systematic (Stein)
part, with ``Cov(E_{t,:,k}, E_{s,:,k'}) = sigma^2 Gamma_{kk'} N <psi_t psi_s^T>``. Linearising
``A B = (S Gamma + E)/(lam N)`` around the solution, with ``dS_l = J_l db_l`` (``J_l`` the class
sums of ``d psi / d h``), the class means move by the Gaussian ``dB`` solving, round by round,

.. math::  \sum_{s \le t} A_{ts}\, \delta b_{l', s}
           - \frac{1}{\lambda N} \sum_l \Gamma_{l l'} \sum_{s \le t} J^{(l)}_{ts}\, \delta b_{l, s}
           = \frac{1}{\lambda N}\Big(\sum_l \Gamma_{l l'} \Xi_{l, t} + E_{t, :, l'}\Big).

Averaging over training sets, a class-``k`` point's cavity field is ``N(b_k, Sigma + Cov(db_k))``
(``db_k`` is common to the class but independent of the point's own noise), which is how the
accuracies include it. This is what makes late rounds collapse at finite ``p`` (docs §11.8): the
deterministic class signal shrinks round after round while the random common part does not.
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_mean_covariances", "fluctuation_bytes"]


def fluctuation_bytes(n_classes: int, rounds: int) -> float:
    """Memory of :func:`class_mean_covariances`: three dense ``(R+1) K^2`` square matrices."""
    n = (rounds + 1) * n_classes**2
    return 3 * 8.0 * n * n


def class_mean_covariances(prob, st) -> tuple[np.ndarray, np.ndarray]:
    """``Cov(db_k)`` over rounds for every class, and the self-response ``U_k``.

    ``U_k`` ((R+1) K square, block lower triangular) is the response of class ``k``'s means to a
    change of its own class sums: a point's own ``psi`` moves ``b_k`` by ``U_k psi`` (the mean
    directions' part of its self-response, ``O(1/n)``).

    Returns
    -------
    cov_db, u : ndarray, shape (K, (R+1) K, (R+1) K) each
        Index of a round-``t`` logit ``i`` of class ``l`` in the flattened ``dB``: ``(t, l, i)``.
    """
    k = prob.n_classes
    r1 = prob.rounds + 1
    lam_n = prob.lam * prob.n_samples
    gam = prob.gamma
    kk = k * k
    n = r1 * kk
    op = np.zeros((n, n))
    cov_r = np.zeros((n, n))
    eye_k = np.eye(k)
    for t in range(r1):
        rt = slice(t * kk, (t + 1) * kk)
        for s in range(t + 1):
            rs = slice(s * kk, (s + 1) * kk)
            # (l', i; l, j): delta_{l l'} A_ts[i, j] - Gamma[l, l'] J^(l)_ts[i, j] / (lam N)
            blk = np.einsum("ab,ij->aibj", eye_k, st.a[t, s])
            blk -= np.einsum("ba,bij->aibj", gam, st.jac_class[:, t, s]) / lam_n
            op[rt, rs] = blk.reshape(kk, kk)
            # (l', i; l'', j): sum_l G[l,l'] G[l,l''] C^(l)_ts + sigma^2 N G[l',l''] PP_ts
            cov = np.einsum("la,lb,lij->aibj", gam, gam, st.psi_cov_class[:, t, s])
            cov += prob.sigma2 * prob.n_samples * np.einsum("ab,ij->aibj", gam, st.pp[t, s])
            cov = cov.reshape(kk, kk) / lam_n**2
            cov_r[rt, rs] = cov
            cov_r[rs, rt] = cov.T
    # dB = op^{-1} r: Cov = op^{-1} Cov(r) op^{-T}.
    op_inv = np.linalg.inv(op)
    cov_db = op_inv @ cov_r @ op_inv.T
    cov_db = 0.5 * (cov_db + cov_db.T)
    out = np.empty((k, r1 * k, r1 * k))
    u = np.empty((k, r1 * k, r1 * k))
    idx = np.arange(r1)[:, None] * kk + np.arange(k)[None, :]  # (t, i) for class 0
    for cls in range(k):
        rows = (idx + cls * k).ravel()
        out[cls] = cov_db[np.ix_(rows, rows)]
        # A unit change u of class cls's sums enters r as Gamma[cls, l'] u_t/(lam N), column l'.
        inject = np.zeros((n, r1 * k))
        for lp in range(k):
            inject[(idx + lp * k).ravel(), np.arange(r1 * k)] = gam[cls, lp] / lam_n
        u[cls] = (op_inv @ inject)[rows]
    return out, u
