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
(``db_k`` is common to the class but independent of the point's own noise). The same operator
gives the point's own effect on its class means, ``U_k psi`` (the mean directions' part of its
self-response): at ``n ~ 10-50`` and small ``lam`` it is a sizeable fraction of the bulk response
``V`` (measured by leave-one-out on exact solves, docs §16.5), so both enter the state equations
(:mod:`theory.finite_exact.state`). The fluctuation is what makes late rounds collapse at finite
``p`` (docs §11.8): the deterministic class signal shrinks round after round, the random common
part does not.
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_mean_response", "fluctuation_bytes"]


def fluctuation_bytes(n_classes: int, rounds: int) -> float:
    """Memory of :func:`class_mean_response`: three dense ``(R+1) K^2`` square matrices."""
    n = (rounds + 1) * n_classes**2
    return 3 * 8.0 * n * n


def class_mean_response(prob, st, t: int, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Self-response ``U_k`` and fluctuation covariance ``Cov(db_k)`` of rounds ``0..t``.

    ``U_k`` ((t+1) K square, block lower triangular) is the response of class ``k``'s means to a
    change of its own class sums: a point's own ``psi`` moves ``b_k`` by ``U_k psi`` (the mean
    directions' part of its self-response). ``Cov(db_k)`` is the covariance of ``b_k`` over
    training sets (module docstring). Both only involve rounds ``<= t`` of the operator (it is
    block lower triangular), so earlier rounds' blocks never change when a round is added.

    Parameters
    ----------
    classes : sequence of int
        Classes whose blocks are returned.

    The point's own noise in the mean directions, ``zeta ~ N(0, sigma^2 I)`` projected on the
    means (``c = mu^T zeta ~ N(0, sigma^2 Gamma)``), acts like an injection with column weights
    ``c`` read out along ``Gamma^{-1} c``; averaged over ``zeta`` its self-response is
    ``Omega = sigma^2 sum_a [op^{-1} e_a]_a`` (the classes' own responses to a unit injection in
    their own column): the ``K`` mean directions' share of the noise response, screened by the
    class-sum equations (the bulk response ``V`` counts ``p - K`` directions).

    Returns
    -------
    u, cov : ndarray, shape (len(classes), (t+1) K, (t+1) K) each
    omega : ndarray, shape ((t+1) K, (t+1) K)
    """
    k = prob.n_classes
    r1 = t + 1
    lam_n = prob.lam * prob.n_samples
    gam = prob.gamma
    kk = k * k
    n = r1 * kk
    op = np.zeros((n, n))
    cov_r = np.zeros((n, n))
    eye_k = np.eye(k)
    for tt in range(r1):
        rt = slice(tt * kk, (tt + 1) * kk)
        for s in range(tt + 1):
            rs = slice(s * kk, (s + 1) * kk)
            # (l', i; l, j): delta_{l l'} A_ts[i, j] - Gamma[l, l'] J^(l)_ts[i, j] / (lam N)
            blk = np.einsum("ab,ij->aibj", eye_k, st.a[tt, s])
            blk -= np.einsum("ba,bij->aibj", gam, st.jac_class[:, tt, s]) / lam_n
            op[rt, rs] = blk.reshape(kk, kk)
            # (l', i; l'', j): sum_l G[l,l'] G[l,l''] C^(l)_ts + sigma^2 N G[l',l''] PP_ts
            cov = np.einsum("la,lb,lij->aibj", gam, gam, st.psi_cov_class[:, tt, s])
            cov += prob.sigma2 * prob.n_samples * np.einsum("ab,ij->aibj", gam, st.pp[tt, s])
            cov = cov.reshape(kk, kk) / lam_n**2
            cov_r[rt, rs] = cov
            cov_r[rs, rt] = cov.T
    # dB = op^{-1} r: Cov = op^{-1} Cov(r) op^{-T}.
    op_inv = np.linalg.inv(op)
    cov_db = op_inv @ cov_r @ op_inv.T
    idx = np.arange(r1)[:, None] * kk + np.arange(k)[None, :]  # (t, i) of class 0
    u = np.empty((len(classes), r1 * k, r1 * k))
    cov = np.empty((len(classes), r1 * k, r1 * k))
    omega = np.zeros((r1 * k, r1 * k))
    for a in range(k):
        rows = (idx + a * k).ravel()
        omega += op_inv[np.ix_(rows, rows)] / lam_n
    omega *= prob.sigma2
    for j, cls in enumerate(classes):
        rows = (idx + cls * k).ravel()
        blk = cov_db[np.ix_(rows, rows)]
        cov[j] = 0.5 * (blk + blk.T)
        # A unit change of class cls's sums enters r as Gamma[cls, l'] / (lam N) in column l'.
        inject = np.zeros((n, r1 * k))
        for lp in range(k):
            inject[(idx + lp * k).ravel(), np.arange(r1 * k)] = gam[cls, lp] / lam_n
        u[j] = op_inv[rows] @ inject
    return u, cov, omega
