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

__all__ = ["class_mean_response", "class_mean_response_cyclic", "fluctuation_bytes"]


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


def class_mean_response_cyclic(prob, st, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`class_mean_response` for class 0 of a circulant count matrix, by a Fourier transform.

    In class-relative logit coordinates (``j = i - l`` in class column ``l``) the operator and the
    source covariance are block circulant in the class index (every class-level quantity is class
    0's rolled), so the discrete Fourier transform over classes splits them into ``K`` blocks of
    size ``(t+1) K``: cost ``O(K ((t+1) K)^3)`` instead of ``O(((t+1) K^2)^3)``. With
    ``(M d)_{l'} = sum_m M_m d_{l'+m}`` and ``w = exp(2 pi i/K)``: ``M^_f = sum_m M_m w^{f m}``,
    products multiply, ``M^T`` has ``(M^_f)^H``, and ``M_0 = (1/K) sum_f M^_f``.

    Returns
    -------
    u, cov : ndarray, shape (1, (t+1) K, (t+1) K) -- class 0's blocks
    omega : ndarray, shape ((t+1) K, (t+1) K)
    """
    k = prob.n_classes
    r1 = t + 1
    nb = r1 * k
    lam_n = prob.lam * prob.n_samples
    cd, d = prob.c - prob.d, prob.d
    gam_m = np.full(k, d)
    gam_m[0] += cd  # Gamma[0, m] = Gamma[l, l + m]

    def full(arr, tt, s):  # round blocks of a symmetric (in rounds) quantity stored for s <= tt
        return arr[tt, s] if s <= tt else arr[s, tt].T

    b = np.zeros((k, nb, nb))
    y = np.zeros((k, nb, nb))
    j0 = st.jac_class[0]
    c0 = st.psi_cov_class[0]
    for tt in range(r1):
        rt = slice(tt * k, (tt + 1) * k)
        for s in range(r1):
            rs = slice(s * k, (s + 1) * k)
            cts = full(c0, tt, s)
            pts = full(st.pp, tt, s)
            # sum_l C0[(j - l), (j' + m - l)] for every m: roll rows by l, columns by l - m.
            rolled = np.stack([np.roll(cts, (cl, cl), axis=(0, 1)) for cl in range(k)])
            total = rolled.sum(axis=0)
            for m in range(k):
                if s <= tt:
                    blk = -gam_m[m] * np.roll(j0[tt, s], m, axis=0) / lam_n
                    if m == 0:
                        blk = blk + st.a[tt, s]
                    b[m, rt, rs] = blk
                # sum_l Gamma[l,0] Gamma[l,m] C0 rolled, Gamma = (c-d) I + d 1 1^T
                src = d * d * np.roll(total, -m, axis=1)
                src += cd * d * (np.roll(rolled[0], -m, axis=1) + np.roll(rolled[m], -m, axis=1))
                if m == 0:
                    src += cd * cd * rolled[0]
                src += prob.sigma2 * prob.n_samples * gam_m[m] * np.roll(pts, -m, axis=1)
                y[m, rt, rs] = src / lam_n**2
    b_hat = k * np.fft.ifft(b, axis=0)  # sum_m B_m w^{f m}
    y_hat = k * np.fft.ifft(y, axis=0)
    g_hat = np.linalg.inv(b_hat)
    g = np.real(np.fft.fft(g_hat, axis=0)) / k  # G_m = (1/K) sum_f G^_f w^{-f m}
    z_hat = g_hat @ y_hat @ np.conj(np.transpose(g_hat, (0, 2, 1)))
    cov0 = np.real(z_hat.sum(axis=0)) / k
    cov0 = 0.5 * (cov0 + cov0.T)
    # U_0 = (1/(lam N)) sum_m Gamma_m G_m P_m, (G_m P_m)[:, (s, i)] = G_m[:, (s, i - m)].
    u0 = np.zeros((nb, nb))
    for m in range(k):
        gp = np.roll(g[m].reshape(nb, r1, k), m, axis=2).reshape(nb, nb)
        u0 += gam_m[m] * gp
    u0 /= lam_n
    # Omega = sigma^2/(lam N) sum_a P_a^{-1} G_0 P_a: G_0 rolled by a in both logit indices.
    g0 = g[0].reshape(r1, k, r1, k)
    omega = sum(np.roll(g0, (a, a), axis=(1, 3)) for a in range(k)).reshape(nb, nb)
    omega *= prob.sigma2 / lam_n
    return u0[None], cov0[None], omega
