r"""The finite-``p`` theory of :mod:`theory.finite` for count matrices with a class symmetry.

When the count matrix is invariant under a transitive group of class relabellings
(:mod:`theory.class_symmetry`: ``'exchangeable'`` -- symmetric noise with exact counts -- or
``'cyclic'`` -- any circulant count matrix, e.g. pair noise), two facts cut the cost of
:func:`theory.finite.predict_finite` from ``O(m^2 K^4)`` per round to
``O(m^2 K^2 + orbits (m^2 K + m K log K))`` (derivation: ``docs/finite_symmetry.md``):

1. *Orbits.* The prediction is equivariant under those relabellings, so only one group per orbit
   (``(0, 0)`` and ``(0, 1)`` for exchangeable counts) and one class are computed; every other
   group is the representative with its output coordinates relabelled.
2. *Circulant algebra.* The class-level matrices of the deterministic equivalents (``Yc J``,
   ``Yc Yc^T``, ``E V^T V``, the mean coordinates ``M`` and everything built from them at a contour
   point: ``A = (I + s T)^{-1}``, ``E[Yc Q V]``, ``E[Yc Q Yc^T]``) are circulant, hence
   simultaneously diagonalised by the discrete Fourier transform: products are products of
   ``K`` eigenvalues, a transpose reverses their order (``lambda_j -> lambda_{-j}``), a trace is
   their sum, and a matrix-vector product is an FFT. The group- and class-level terms are such
   circulant matrices plus a few rank-one terms along the group's own label and mean
   (``B_f = s (Chat M + y M_k) A``: a circulant plus ``y r^T``), which are expanded so that no
   ``K x K`` matrix is formed per contour point.

The contour weights enter only through a scalar per contour point, so every contour-point term
is computed once and each round costs contractions with that round's weights.

The result is the same :class:`theory.finite.FinitePrediction` (tested against the general path
to ``1e-10``); its ``group_means``, ``group_covs`` and ``population_covs`` are
:class:`~theory.orbit_array.OrbitArray` (:mod:`theory.orbit_array`, re-exported here), which
store one entry per orbit and round and relabel on indexing (the full ``group_covs`` would be
``(R + 1) K^4`` numbers).
"""

from __future__ import annotations

import math

import numpy as np

from theory.class_symmetry import ClassSymmetry
from theory.orbit_array import MATERIALISE_LIMIT, OrbitArray
from theory.orthant import win_probability

__all__ = ["MATERIALISE_LIMIT", "OrbitArray", "predict_finite_symmetric"]


# --------------------------------------------------------------------------------------------
# circulant matrices as DFT eigenvalues (X[i, j] = x[(i - j) mod K], eigenvalues fft(x))


def _eig(mat):
    """Eigenvalues (..., K) of circulant matrices (..., K, K) (DFT of the first column)."""
    return np.fft.fft(mat[..., :, 0], axis=-1)


def _rev(lam):
    """Eigenvalues of the transposes: ``lambda_j -> lambda_{-j mod K}``."""
    return np.roll(lam[..., ::-1], 1, axis=-1)


def _dense(lam):
    """The circulant matrices (..., K, K) with eigenvalues ``lam`` (..., K)."""
    k = lam.shape[-1]
    col = np.fft.ifft(lam, axis=-1)
    i = np.arange(k)
    return col[..., (i[:, None] - i[None, :]) % k]


def _apply(lam, vec):
    """Circulant times vector, ``X v``, broadcasting (..., K) eigenvalues against (..., K)."""
    return np.fft.ifft(lam * np.fft.fft(vec, axis=-1), axis=-1)


# --------------------------------------------------------------------------------------------
# contour-point terms


class _Points:
    """Class-level deterministic equivalents on one contour, as eigenvalues (docs §11.3-11.5).

    Mirrors ``theory.finite.moments.resolvent`` and ``_second_order`` with every ``K x K`` matrix
    replaced by its ``K`` DFT eigenvalues (arrays ``(m, K)`` over the contour points).
    """

    def __init__(self, model, base, cont, light=False):
        from theory.finite import bulk_stieltjes, bulk_variance_kernel

        big_n, n, s2 = model.n_samples, model.per_class, model.noise_var
        self.z, self.identity = cont.z, cont.identity
        # contour_weights places its points symmetrically about the real axis (angles
        # 2 pi (j + 1/2)/m): point m - 1 - j is the conjugate of point j.
        self.paired = cont.z.size % 2 == 0 and bool(
            np.allclose(cont.z[::-1], np.conj(cont.z), rtol=1e-13, atol=0.0)
        )
        s, _ = bulk_stieltjes(cont.z, model)
        self.s = s
        self.var = bulk_variance_kernel(s[:, None], s[None, :], model)
        l_yy, l_cm, l_tt, l_mu = base["yy"], base["cm"], base["tt"], base["mu"]
        sc = s[:, None]
        a = 1.0 / (1.0 + sc * l_tt[None])  # A = (I + s T)^{-1}
        self.a = a
        # _second_order, term by term (commuting circulants: m2 A + A m2 = 2 m2 A).
        tr_a = a.sum(axis=1)[:, None]
        v = np.diagonal(self.var)[:, None]
        alpha = big_n * v / ((big_n + 2) * (big_n - 1))
        beta = -2.0 * alpha / big_n
        l_cmt = _rev(l_cm)
        m2 = _rev(l_mu) * l_mu
        x_bar = sc * l_cm
        tr_at = (a * l_tt).sum(axis=1)[:, None]
        cac = l_cm * a * l_cmt
        exax = sc * sc * s2 * tr_a * l_yy + alpha * (cac + l_yy * tr_at) + beta * cac
        exay = sc * sc * s2 * (l_cm * a * a + tr_a * l_cm * a)
        exay = exay + alpha * (l_cm * a * l_tt + l_cm * tr_at) + beta * (l_cm * a * l_tt)
        tr_m2a = (m2 * a).sum(axis=1)[:, None]
        edt = s2 * n * (2.0 * m2 * a + m2 * tr_a + tr_m2a) + big_n * s2 * s2 * (a + tr_a)
        tat = l_tt * a * l_tt
        eyay = sc * sc * edt + alpha * (tat + l_tt * tr_at) + beta * tat
        x_bar_t = _rev(x_bar)
        ncal = (
            sc * l_yy
            - x_bar * a * x_bar_t
            - exax
            + exay * a * x_bar_t
            + x_bar * a * _rev(exay)
            - x_bar * a * eyay * a * x_bar_t
        )
        self.ncal = 0.5 * (ncal + _rev(ncal))
        if light:
            return
        self.mcal = x_bar * a - exay * a + x_bar * a * eyay * a
        self.c = sc * l_cm[None] * a  # G_a = s Chat M A (gmat), the circulant part of B_f
        self.c_t = _rev(self.c)
        self.alpha = big_n * self.var / ((big_n + 2) * (big_n - 1))
        self.beta = -2.0 * self.alpha / big_n


class _GroupTerms:
    """Contour-point terms of one group ``(k, l)`` (``theory.finite.moments.training_moments``).

    With ``y = e_l - 1/K``, ``m_k`` the row ``k`` of ``M`` and, at contour point ``a``,
    ``B_f,a = C_a + y r_a^T`` (``C_a = s_a Chat M A_a`` circulant, ``r_a = s_a A_a^T m_k``),
    ``p_a = C_a m_k``, ``rho_a = r_a . m_k``, ``c_a = (1 - rho_a) y - p_a`` (the ``eps``
    coefficient).
    """

    def __init__(self, pts: _Points, base, true_class, label, model):
        kk = model.n_classes
        big_n, s2 = model.n_samples, model.noise_var
        mu = base["mu_dense"]
        s = pts.s
        self.y = np.eye(kk)[label] - 1.0 / kk
        self.mk = mu[true_class]
        h = _apply(pts.a, self.mk)  # A m_k
        m_a_m = h @ self.mk
        tr_a = pts.a.sum(axis=1)
        tr_at = (pts.a * base["tt"]).sum(axis=1)
        v_diag = np.diagonal(pts.var)
        tr_at_minus = tr_at - m_a_m - s2 * tr_a
        ebb = (s * s + 2 * v_diag / (big_n + 2)) * (m_a_m + s2 * tr_a)
        ebb = ebb + (v_diag / (big_n - 1)) * tr_at_minus
        self.own = s - ebb + s * s * m_a_m
        self.class_part = s[:, None] * _apply(pts.mcal, self.mk)  # s E[Yc Q V] m_k
        self.r = s[:, None] * _apply(_rev(pts.a), self.mk)
        self.p = _apply(pts.c, self.mk)
        self.rho = self.r @ self.mk
        self.cvec = (1.0 - self.rho)[:, None] * self.y[None] - self.p
        self.t_r = _apply(base["tt"] - s2, self.r)  # T' r_a, T' = E V^T V - sigma^2 I


def _training_moments(pts: _Points, base, grp: _GroupTerms, nu, shared, model):
    """Mean (K,) and covariance (K, K) of one group's outputs at one round (weights ``nu``).

    ``shared``: the round's group-independent circulant terms (:func:`_shared_terms`).
    """
    big_n, s2 = model.n_samples, model.noise_var
    y, mk = grp.y, grp.mk
    w2 = np.outer(nu, nu) * pts.var
    mean = y * (pts.identity - grp.own @ nu) + nu @ grp.class_part
    cov = (2.0 / (big_n + 2)) * (grp.cvec.T @ (w2 @ grp.cvec))
    wsum = w2.sum()
    ub = w2.sum(axis=0)
    # t_yy = sum w2 * Gam_-,YY; Gam_- without the point: Yc Yc^T - y y^T.
    t_yy = wsum * (base["yy_dense"] - np.outer(y, y))
    # t_yv = (Chat M - y m_k^T)(C_u + y r_u^T)^T, C_u = sum_b u_b C_b.
    l_cu = ub @ pts.c
    r_u = ub @ grp.r
    t_yv = (
        _dense(base["cm"] * _rev(l_cu))
        + np.outer(base["cm_dense"] @ r_u, y)
        - np.outer(y, _apply(l_cu, mk))
        - (mk @ r_u) * np.outer(y, y)
    )
    # t_vv = sum_ab w2_ab B_a (T' - m_k m_k^T) B_b^T, B_a = C_a + y r_a^T.
    q = w2 @ grp.r  # sum_b w2_ab r_b
    vec = np.fft.ifft(
        ((base["tt"] - s2) * (pts.c * np.fft.fft(q, axis=-1))).sum(axis=0)
    ) - grp.p.T @ (w2 @ grp.rho)
    scal = np.sum(grp.r * (w2 @ grp.t_r)) - grp.rho @ (w2 @ grp.rho)
    t_vv = (
        shared["ctc"]
        - grp.p.T @ (w2 @ grp.p)
        + np.outer(vec, y)
        + np.outer(y, vec)
        + scal * np.outer(y, y)
    )
    cov = cov + (t_yy - t_yv - t_yv.T + t_vv) / (big_n - 1)
    # z_1i part: sigma^2 (Z + y zeta^T)(Z + y zeta^T)^T, Z = sum nu s C, zeta = sum nu s r.
    ns = nu * pts.s
    zeta = ns @ grp.r
    z_zeta = _apply(shared["l_z"], zeta)
    cov = cov + s2 * (
        shared["zz"] + np.outer(z_zeta, y) + np.outer(y, z_zeta) + (zeta @ zeta) * np.outer(y, y)
    )
    cov = cov.real
    return mean.real, 0.5 * (cov + cov.T)


def _shared_terms(pts: _Points, base, nu, model):
    """Group-independent circulant terms of one round: ``sum w2 C_a T' C_b^T`` and ``Z Z^T``."""
    s2 = model.noise_var
    w2 = np.outer(nu, nu) * pts.var
    ctc = (base["tt"] - s2) * np.sum(pts.c * (w2 @ pts.c_t), axis=0)
    l_z = (nu * pts.s) @ pts.c
    return {"ctc": _dense(ctc), "l_z": l_z, "zz": _dense(l_z * _rev(l_z))}


class _ClassTerms:
    """Contour-point terms of the training-set covariance of one class ``c`` (docs §11.5).

    Mirrors ``theory.finite.moments.global_covariance`` for a single class, with
    ``g_a = A_a M_c^T``, ``x_a = Chat M g_a``, ``t_a = E[V^T V] g_a`` and the circulant ``C_a``
    (``gmat``); the terms indexed by two contour points, ``C_a t_b``, ``C_a M^T h_b``
    (``h = M g``) and ``C_a g_b``, are stored as ``(m, m, K)`` arrays.
    """

    def __init__(self, pts: _Points, base, c, model):
        g = _apply(pts.a, base["mu_dense"][c])  # (m, K)
        self.g = g
        fg = np.fft.fft(g, axis=-1)
        t = np.fft.ifft(base["tt"] * fg, axis=-1)
        self.t = t
        self.bgb = g @ t.T  # g_a^T T g_b
        self.x = np.fft.ifft(base["cm"] * fg, axis=-1)
        ft = np.fft.fft(t, axis=-1)
        self.ct = np.fft.ifft(pts.c[:, None, :] * ft[None, :, :], axis=-1)  # [a, b] = C_a t_b
        self.self_term = self.x - np.einsum("aak->ak", self.ct)  # A_a Gam B_a
        h = np.fft.ifft(base["mu"] * fg, axis=-1)  # M g (M symmetric)
        self.l_p = pts.c * _rev(base["mu"])  # C_a M^T
        fh = np.fft.fft(h, axis=-1)
        ph = np.fft.ifft(self.l_p[:, None, :] * fh[None, :, :], axis=-1)  # [a, b] P_a h_b
        self.cg = np.fft.ifft(pts.c[:, None, :] * fg[None, :, :], axis=-1)  # [a, b] C_a g_b
        # The Z_1 part's two outer sums share their right factor C_b g_a and their weights:
        # s2 n (E + E^T) + N s2^2 CS2 with E = sum P_a h_b (x) C_b g_a, CS2 = sum C_a g_b (x)
        # C_b g_a (symmetric) has the symmetric part of sum (2 s2 n P_a h_b + N s2^2 C_a g_b)
        # (x) C_b g_a, and only the symmetric part of the covariance is kept.
        n, big_n, s2 = model.per_class, model.n_samples, model.noise_var
        self.mix = 2.0 * s2 * n * ph + big_n * s2 * s2 * self.cg
        self.gg = g @ g.T
        self.hh = h @ h.T
        self.chat_h = h @ base["chat_dense"].T  # Chat h_a


def _outer_sum(weight, left, right, paired):
    """``sum_ab weight_ab left[a, b] right[b, a]^T`` for (m, m) weights and (m, m, K) terms.

    ``paired``: the contour points come in conjugate pairs ``z_{m-1-a} = conj(z_a)`` and every
    factor is the matching conjugate, so the terms of ``(m-1-a, m-1-b)`` are the conjugates of
    those of ``(a, b)``; the real part of the sum is then twice the real part of the sum over
    ``a < m/2`` (returned with an imaginary part that is not that of the full sum: callers keep
    only the real part).
    """
    m, _, k = left.shape
    h = m // 2 if paired else m
    lw = (weight[:h, :, None] * left[:h]).reshape(h * m, k)
    out = lw.T @ right[:, :h].transpose(1, 0, 2).reshape(h * m, k)
    return 2.0 * out if paired else out


def _global_covariance(pts: _Points, base, cls: _ClassTerms, u, model):
    """Training-set covariance (K, K) of ``sum_j u_j E[Yc Q V](z_j) M_c^T`` for one class ``c``."""
    n, big_n, s2 = model.per_class, model.n_samples, model.noise_var
    u = np.asarray(u) * pts.s
    uu = np.outer(u, u)
    w_alpha, w_beta = uu * pts.alpha, uu * pts.beta
    # Haar part. hv1 = sum_ab W_ab A_a Gam A_b^T, W = w_alpha g_a^T T g_b, A_a = [I, -C_a]:
    wgt = w_alpha * cls.bgb
    lam = (
        wgt.sum() * base["yy"]
        - (wgt.sum(axis=1) @ pts.c) * _rev(base["cm"])
        - base["cm"] * (wgt.sum(axis=0) @ pts.c_t)
        + base["tt"] * np.sum(pts.c * (wgt @ pts.c_t), axis=0)
    )
    # hv2 = sum_ab w_ab (x_b - C_a t_b)(x_a - C_b t_a)^T (A_a Gam B_b = x_b - C_a t_b).
    x = cls.x
    ct_w = np.fft.ifft(pts.c * np.fft.fft(w_alpha @ cls.t, axis=-1), axis=-1)
    m1 = x.T @ ct_w  # sum_b x_b (C_b sum_a w_ab t_a)^T
    outer = _outer_sum(w_alpha, cls.ct, cls.ct, pts.paired)
    hv = _dense(lam) + x.T @ (w_alpha @ x) - m1 - m1.T + outer
    hv = hv + cls.self_term.T @ (w_beta @ cls.self_term)
    if s2 > 0:
        # Z_1 part (coefficients of Yc Z_1, J^T Z_1, Z_1^T Z_1 - N sigma^2 I), with
        # P_a = u_a C_a M^T, Q_a = u_a C_a: cj = -sum_a (P_a (x) g_a + Q_a (x) h_a),
        # cs = -sum_a Q_a (x) g_a.
        cy = u @ cls.g
        lam_jj = np.sum(cls.l_p * ((uu * cls.gg) @ _rev(cls.l_p)), axis=0) + np.sum(
            pts.c * ((uu * cls.hh) @ pts.c_t), axis=0
        )
        cs1 = _dense(np.sum(pts.c * ((uu * cls.gg) @ pts.c_t), axis=0))
        lam_pc = (u * (cls.g @ cy)) @ cls.l_p
        cross = _dense(base["chat"] * _rev(lam_pc))
        cross = cross + (u[:, None] * cls.chat_h).T @ _apply(pts.c, cy)
        cross = -s2 * cross
        zc = s2 * base["yy_dense"] * (cy @ cy) + cross + cross.T + s2 * n * _dense(lam_jj)
        zc = zc + big_n * s2 * s2 * cs1 + _outer_sum(uu, cls.mix, cls.cg, pts.paired)
        hv = hv + zc
    out = hv.real
    return 0.5 * (out + out.T)


# --------------------------------------------------------------------------------------------
# the prediction


def _base_terms(model, cnt):
    """Class-level circulant matrices (dense) and their eigenvalues."""
    from theory.finite import label_grams

    k, n, big_n = model.n_classes, model.per_class, model.n_samples
    mu = model.means()
    chat, yy = label_grams(cnt, k, n)
    tt = n * mu.T @ mu + big_n * model.noise_var * np.eye(k)
    cm = chat @ mu
    return {
        "mu_dense": mu,
        "chat_dense": chat,
        "yy_dense": yy,
        "cm_dense": cm,
        "mu": _eig(mu),
        "chat": _eig(chat),
        "yy": _eig(yy),
        "tt": _eig(tt),
        "cm": _eig(chat) * _eig(mu),
    }


def predict_finite_symmetric(model, cnt, lam, r, abs_tol, sym: ClassSymmetry, first_points):
    """:func:`theory.finite.predict_finite` by orbits (inputs validated by the caller)."""
    from theory.finite import FinitePrediction, clean_covariance, contour_weights, spectrum_top

    k, big_n = model.n_classes, model.n_samples
    kappa = k * lam * big_n
    top = spectrum_top(model)
    base = _base_terms(model, cnt)
    cont = contour_weights(kappa, r, top)
    pts = _Points(model, base, cont)
    cont_cov = contour_weights(kappa, 2 * r + 1, top)
    pts_cov = _Points(model, base, cont_cov, light=True)
    reps = sym.group_reps
    groups = [_GroupTerms(pts, base, int(a), int(b), model) for a, b in reps]
    cls = _ClassTerms(pts, base, 0, model)
    n_rep = reps.shape[0]
    rep_means = np.empty((r + 1, n_rep, k))
    rep_covs = np.empty((r + 1, n_rep, k, k))
    p_means = np.empty((r + 1, k, k))
    p_cov0 = np.empty((r + 1, k, k))
    for t in range(r + 1):
        wt = cont.weights[t]
        nu = wt * pts.z
        shared = _shared_terms(pts, base, nu, model)
        glob = _global_covariance(pts, base, cls, nu * pts.s, model)
        for g, grp in enumerate(groups):
            mean, cov = _training_moments(pts, base, grp, nu, shared, model)
            rep_means[t, g], rep_covs[t, g] = mean, cov + glob
        # population: mean logits of every class, fresh-noise covariance, class 0's orthant
        l_mcal = wt @ pts.mcal
        p_means[t] = _dense(base["mu"] * _rev(l_mcal)).real
        if model.noise_var == 0.0:
            pc = np.zeros((k, k))
        else:
            pc = model.noise_var * _dense(cont_cov.weights[2 * t + 1] @ pts_cov.ncal).real
            pc = 0.5 * (pc + pc.T)
        p_cov0[t] = pc + _global_covariance(pts, base, cls, wt, model)
    # Cleaned in two stacked calls (eigh loops over the stack: the same numbers as one call per
    # covariance, without ~100 calls' overhead at K = 10).
    rep_covs = clean_covariance(rep_covs)
    p_cov0 = clean_covariance(p_cov0)
    rep_acc, pop, qerr = _orthant_all_rounds(
        rep_means, rep_covs, reps[:, 0], p_means[:, 0], p_cov0, abs_tol, first_points
    )
    return _assemble(
        FinitePrediction,
        model,
        cnt,
        lam,
        sym,
        rep_means,
        rep_covs,
        rep_acc,
        p_means,
        p_cov0,
        pop,
        qerr,
        cont.identity - np.real(cont.weights @ (pts.z * pts.s)),
    )


#: Largest number of covariance entries (items x K^2) per :func:`theory.orthant.win_probability`
#: call of :func:`_orthant_all_rounds`: its work space is a few arrays of this size (2^19
#: entries, 4 MiB each), within the ``2^22`` numbers :func:`symmetric_cost` counts for it.
ORTHANT_BATCH_ENTRIES = 2**19


def _orthant_all_rounds(rep_means, rep_covs, rep_true, p_mean0, p_cov0, abs_tol, first_points):
    """Training and population orthant probabilities of every round in batched calls.

    ``rep_means`` (R + 1, G, K), ``rep_covs`` (R + 1, G, K, K) with winning classes ``rep_true``
    (G,); ``p_mean0`` (R + 1, K), ``p_cov0`` (R + 1, K, K) with class 0 winning. Returns
    ``(rep_acc (R + 1, G), pop (R + 1,), max error)``.

    One :func:`theory.orthant.win_probability` call per batch of items of all rounds instead of
    two per round: the orthant rule is vectorised over its batch, and at the explorer's sizes
    (K = 10-20, R = 8) its per-call overhead was about half its cost. Every item is computed as
    alone (its own reduction, ordering and adaptive refinement); only the QMC sums may be split
    into chunks differently (the chunk length depends on the batch size), which moves a
    probability by round-off (measured <= 3e-16; tested against per-round calls to 1e-12).
    """
    r1, n_rep, k = rep_means.shape
    means = np.concatenate([rep_means.reshape(r1 * n_rep, k), p_mean0])
    covs = np.concatenate([rep_covs.reshape(r1 * n_rep, k, k), p_cov0])
    true = np.concatenate([np.tile(np.asarray(rep_true, dtype=np.int64), r1), np.zeros(r1, int)])
    prob = np.empty(means.shape[0])
    err = np.empty(means.shape[0])
    step = max(1, ORTHANT_BATCH_ENTRIES // (k * k))
    for i in range(0, means.shape[0], step):
        sl = slice(i, i + step)
        res = win_probability(
            means[sl], covs[sl], true[sl], abs_tol=abs_tol, first_points=first_points
        )
        prob[sl], err[sl] = res.prob, res.err
    n_tr = r1 * n_rep
    return prob[:n_tr].reshape(r1, n_rep), prob[n_tr:], float(np.max(err))


def _assemble(
    cls, model, cnt, lam, sym, rep_means, rep_covs, rep_acc, p_means, p_cov0, pop, qerr, bulk
):
    """The :class:`FinitePrediction` from the representatives (orbit-stored arrays)."""
    k = model.n_classes
    orbit = sym.group_orbit
    g_acc = np.where(orbit >= 0, rep_acc[:, np.maximum(orbit, 0)], np.nan)  # (R + 1, K, K)
    w = cnt.astype(float)
    clean = np.eye(k, dtype=bool)
    train = np.empty((rep_acc.shape[0], 3))
    for t in range(rep_acc.shape[0]):
        acc = np.nan_to_num(g_acc[t])
        for j, mask in enumerate((np.ones_like(clean), clean, ~clean)):
            tot = w[mask].sum()
            train[t, j] = float((acc * w)[mask].sum() / tot) if tot > 0 else math.nan
    return cls(
        train_acc=train[:, 0],
        train_acc_clean=train[:, 1],
        train_acc_mislabeled=train[:, 2],
        population_acc=pop,
        group_means=OrbitArray(rep_means, sym, "group"),
        group_covs=OrbitArray(rep_covs, sym, "group"),
        group_acc=g_acc,
        population_means=p_means,
        population_covs=OrbitArray(p_cov0, sym, "class"),
        quadrature_err=qerr,
        bulk_weights=bulk,
        counts=cnt,
        lam=float(lam),
        model=model,
        symmetry=sym.kind,
    )


def symmetric_cost(n_classes: int, rounds: int, orbits: int, m: int, m_cov: int):
    """``(numbers, flops)`` of :func:`predict_finite_symmetric` (float64 numbers held at the peak).

    ``m``, ``m_cov``: contour points of the rounds' and the population covariance's contours.
    Memory: the ``(m, m, K)`` complex two-point terms of one class (three stored, three
    transient), ``~24`` complex ``(m, K)`` arrays per contour, ``~8`` per orbit, the stored
    representatives ``(R + 1)(G K^2 + K^2)`` and the orthant rule's work space (``2^22``
    numbers). Time, per round: two training-set covariances, each two outer sums of ``m^2/2``
    rank-one ``K x K`` terms (``4 m^2 K^2`` flops each) and ``~60 m^2 K`` of FFTs and
    contractions; per orbit ``~120 m^2 K``; ``G + 1`` orthant probabilities of dimension ``K``
    (``~4 10^4 K^2`` each, measured).
    """
    k, r1, g = int(n_classes), int(rounds) + 1, int(orbits)
    numbers = 12 * m * m * k + 48 * m * k + 32 * m_cov * k + 6 * m * m + 16 * m * k * g
    numbers += r1 * (g * k * k + g * k + 3 * k * k) + 6 * g * k * k + 30 * k * k + 2**22
    per_round = 2 * (8.0 * m * m * k * k + 60.0 * m * m * k) + g * 120.0 * m * m * k
    per_round += (g + 1) * 4e4 * k * k
    flops = r1 * per_round + 20.0 * m * m * k * max(1.0, math.log2(k))
    return int(numbers), float(flops)
