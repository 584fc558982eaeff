"""Moments of the outputs: deterministic equivalents of the resolvent on the contour (§11.3-11.5).

:func:`resolvent` evaluates, on every contour point, the ``K x K`` deterministic equivalents
(:class:`Resolvent`, second order in the fluctuations); from them :func:`training_moments`
(every group's mean and covariance), :func:`population_moments` (a fresh point's logits) and
:func:`global_covariance` (the training set's trial-to-trial fluctuation) for one round.
:func:`clean_covariance` removes round-off from the resulting covariances, or raises
:class:`FinitePrecisionError` when the contour rule cannot resolve them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.finite.contour import contour_weights
from theory.finite.model import MixtureModel
from theory.finite.spectrum import bulk_stieltjes, bulk_variance_kernel, spectrum_top

# --------------------------------------------------------------------------------------------
# resolvent-level deterministic equivalents


@dataclass
class Resolvent:
    """Everything that depends on the contour point ``z`` but not on a group (docs §11.3-11.5)."""

    model: MixtureModel
    kappa: float
    z: np.ndarray  # (m,)
    s: np.ndarray  # (m,)
    ds: np.ndarray
    var: np.ndarray  # (m, m) Haar kernel c(z_a, z_b)
    abar: np.ndarray  # (m, K, K) (I + s T)^-1
    mcal: np.ndarray  # (m, K, K) E[Yc Q V]
    ncal: np.ndarray  # (m, K, K) E[Yc Q Yc^T]
    gam: np.ndarray  # (2K, 2K) Gram of [Yc^T, V]
    chat: np.ndarray  # (K, K) centred counts, [output r, class k]
    cm: np.ndarray  # (K, K) Chat M = E[Yc V]
    yy: np.ndarray  # (K, K) Yc Yc^T
    tt: np.ndarray  # (K, K) E[V^T V]
    mu: np.ndarray  # (K, K) mean coordinates
    identity: float  # c_0 of the contour
    amu: np.ndarray = None  # (m, K, K) A_j M_c^T  [j, class c, :]
    gmat: np.ndarray = None  # (m, K, K) s Chat M A
    ag: np.ndarray = None  # (m, K, 2K) [I, -gmat] Gam
    aga: np.ndarray = None  # (m, m, K, K) A_a Gam A_b^T
    alpha: np.ndarray = None  # (m, m) Haar second-moment coefficients
    beta: np.ndarray = None


def label_grams(counts, n_classes, per_class):
    """``Chat = Yc J`` (K, K) and ``Yc Yc^T`` (K, K) from the count matrix (exact)."""
    k, n = n_classes, per_class
    cnt = np.asarray(counts, dtype=float)
    chat = cnt.T - n / k  # [r, k'] = sum over class k' of (y_r - 1/K)
    hist = cnt.sum(axis=0)
    ones = np.ones(k)
    yy = np.diag(hist) - (np.outer(hist, ones) + np.outer(ones, hist)) / k + k * n / k**2
    return chat, yy


def _second_order(rv: Resolvent, j: int):
    r"""``E[Yc Q V]`` and ``E[Yc Q Yc^T]`` at ``z_j`` to second order in the ``K x K`` fluctuations.

    ``Phi = [Yc; V^T] Q_W [Yc^T, V]`` fluctuates around ``s Gamma`` (Haar, covariance
    ``alpha (Gamma Gamma + Gamma Gamma) + beta Gamma Gamma``, ``alpha = N c/((N+2)(N-1))``,
    ``beta = -2 alpha/N``), and ``V = J M + Z_1`` around ``J M`` (Gaussian ``Z_1``). With
    ``X = Phi_YV``, ``Y = Phi_VV``, ``A = (I + E Y)^{-1}``:
    ``E[X (I+Y)^{-1}] ~ X A - E[dX A dY] A + X A E[dY A dY] A`` and
    ``E[Phi_YY - X (I+Y)^{-1} X^T] ~ s YY - X A X^T - E[dX A dX^T] + E[dX A dY] A X^T
    + X A E[dY A dX^T] - X A E[dY A dY] A X^T`` (docs §11.5).
    """
    model = rv.model
    k, n, big_n, s2 = model.n_classes, model.per_class, model.n_samples, model.noise_var
    a = rv.abar[j]
    s = rv.s[j]
    eye = np.eye(k)
    tr_a = np.trace(a)
    v = rv.var[j, j]
    alpha = big_n * v / ((big_n + 2) * (big_n - 1)) if big_n > 1 else 0.0
    beta = -2.0 * alpha / big_n
    cm, yy, tt, mu = rv.cm, rv.yy, rv.tt, rv.mu
    m2 = mu.T @ mu
    x_bar = s * cm
    tr_at = np.trace(a @ tt)
    # E[dX A dX^T]: Z_1 part s^2 sigma^2 tr(A) YY; Haar part.
    exax = s * s * s2 * tr_a * yy + alpha * (cm @ a @ cm.T + yy * tr_at) + beta * (cm @ a @ cm.T)
    # E[dX A dY]: Z_1 part s^2 sigma^2 (Chat M A A + tr(A) Chat M A); Haar part.
    exay = s * s * s2 * (cm @ a @ a + tr_a * (cm @ a))
    exay = exay + alpha * (cm @ a @ tt + cm * tr_at) + beta * (cm @ a @ tt)
    # E[dT A dT] for dT = M^T J^T Z_1 + Z_1^T J M + (Z_1^T Z_1 - N sigma^2 I).
    edt = s2 * n * (m2 @ a + a @ m2 + m2 * tr_a + eye * np.trace(m2 @ a))
    edt = edt + big_n * s2 * s2 * (a + eye * tr_a)
    eyay = s * s * edt + alpha * (tt @ a @ tt + tt * tr_at) + beta * (tt @ a @ tt)
    mcal = x_bar @ a - exay @ a + x_bar @ a @ eyay @ a
    ncal = (
        s * yy
        - x_bar @ a @ x_bar.T
        - exax
        + exay @ a @ x_bar.T
        + x_bar @ a @ exay.T
        - x_bar @ a @ eyay @ a @ x_bar.T
    )
    return mcal, 0.5 * (ncal + ncal.T)


def resolvent(
    model: MixtureModel, counts, lam, rounds, light=False
) -> tuple[Resolvent, np.ndarray]:
    """Deterministic equivalents on the contour for rounds ``0..rounds`` and the contour weights.

    ``light=True`` stops after ``E[Yc Q V]`` and ``E[Yc Q Yc^T]`` (enough for the population
    covariance, which uses its own contour for round ``2t + 1``).
    """
    k, n, big_n = model.n_classes, model.per_class, model.n_samples
    kappa = k * lam * big_n
    cont = contour_weights(kappa, rounds, spectrum_top(model))
    z, weights = cont.z, cont.weights
    s, ds = bulk_stieltjes(z, model)
    var = bulk_variance_kernel(s[:, None], s[None, :], model)
    mu = model.means()
    chat, yy = label_grams(counts, k, n)
    tt = n * mu.T @ mu + big_n * model.noise_var * np.eye(k)
    cm = chat @ mu
    abar = np.linalg.inv(np.eye(k)[None] + s[:, None, None] * tt[None])
    gam = np.block([[yy, cm], [cm.T, tt]])
    rv = Resolvent(
        model=model,
        kappa=kappa,
        z=z,
        s=s,
        ds=ds,
        var=var,
        abar=abar,
        mcal=None,
        ncal=None,
        gam=gam,
        chat=chat,
        cm=cm,
        yy=yy,
        tt=tt,
        mu=mu,
        identity=cont.identity,
    )
    pairs = [_second_order(rv, j) for j in range(z.size)]
    rv.mcal = np.array([p[0] for p in pairs])
    rv.ncal = np.array([p[1] for p in pairs])
    if light:  # only E[Yc Q Yc^T] is needed (the fresh-noise covariance of the population)
        return rv, weights
    rv.amu = np.einsum("mij,cj->mci", abar, mu)
    rv.gmat = s[:, None, None] * (cm[None] @ abar)
    amat = np.concatenate([np.broadcast_to(np.eye(k), rv.gmat.shape), -rv.gmat], axis=2)
    rv.ag = amat @ gam
    rv.aga = np.einsum("aiq,bjq->abij", rv.ag, amat, optimize=True)
    rv.alpha = big_n * var / ((big_n + 2) * (big_n - 1))
    rv.beta = -2.0 * rv.alpha / big_n
    return rv, weights


# --------------------------------------------------------------------------------------------
# fluctuations of the training set (common to all points of a trial)


def global_covariance(rv: Resolvent, weights):
    r"""Covariance over training sets of ``sum_j u_j E[Yc Q V](z_j) M^T`` for every class.

    First order in the Gaussian ``Z_1`` (exactly Gaussian: linear forms ``Yc Z_1``, ``J^T Z_1``
    and ``Z_1^T Z_1``) and in the Haar fluctuation of ``Phi`` (kernel :func:`bulk_variance_kernel`
    between contour points), docs §11.6. ``weights``: (m,) contour weights ``u_j``.

    Returns
    -------
    ndarray, shape (K, K, K)
        ``[class k, output r, output r']``.
    """
    model = rv.model
    k, n, big_n, s2 = model.n_classes, model.per_class, model.n_samples, model.noise_var
    s, mu = rv.s, rv.mu
    m = s.size
    u = np.asarray(weights) * s
    g = rv.amu  # (m, class c, K): A_j M_c^T
    gmat = rv.gmat  # (m, K, K): s Chat M A
    # Haar part: a_r^T dPhi b with A_j = [I, -G_j] (K x 2K) and B_jc = [0; g_jc] (2K).
    bvec = np.concatenate([np.zeros_like(g), g], axis=2)  # (m, C, 2K)
    bg = bvec @ rv.gam  # (m, C, 2K)
    w2 = np.outer(u, u)
    w_alpha, w_beta = w2 * rv.alpha, w2 * rv.beta
    bgb = np.einsum("acq,bcq->abc", bg, bvec, optimize=True)  # (m, m, C)
    hv = np.tensordot(w_alpha[:, :, None] * bgb, rv.aga, axes=([0, 1], [0, 1]))  # (C, K, K)
    agb = (rv.ag.reshape(m * k, 2 * k) @ bvec.reshape(m * k, 2 * k).T).reshape(m, k, m, k)
    agb = agb.transpose(0, 2, 3, 1)  # [a, b, c, i] = A_a Gam B_bc
    left = (w_alpha[:, :, None, None] * agb).reshape(m * m, k, k).transpose(1, 2, 0)  # [c, i, ab]
    right = agb.transpose(1, 0, 2, 3).reshape(m * m, k, k).transpose(1, 0, 2)  # [c, ab, j]
    hv = hv + left @ right
    agb_self = np.einsum("aiq,acq->aci", rv.ag, bvec, optimize=True)  # (m, C, K)
    yb = (w_beta @ agb_self.reshape(m, k * k)).reshape(m, k, k)
    hv = hv + np.einsum("aci,acj->cij", agb_self, yb, optimize=True)
    if s2 > 0:
        # Z_1 part: coefficients of Y1 = Yc Z_1, J1 = J^T Z_1, S1 = Z_1^T Z_1 - N sigma^2 I.
        ug = u[:, None, None] * gmat  # (m, K, K)
        cy = np.tensordot(u, g, axes=(0, 0))  # (C, K)
        gm_mu = ug @ mu.T  # (m, r, k)
        h2 = g @ mu.T  # (m, c, k)
        cj = -np.einsum("mrk,mca->crka", gm_mu, g, optimize=True)
        cj -= np.einsum("mra,mck->crka", ug, h2, optimize=True)
        cs = -np.einsum("mra,mcb->crab", ug, g, optimize=True)
        zc = s2 * rv.yy[None] * np.einsum("ca,ca->c", cy, cy)[:, None, None]
        cross = s2 * np.einsum("ca,qk,ctka->cqt", cy, rv.chat, cj, optimize=True)
        zc = zc + cross + cross.transpose(0, 2, 1)
        zc = zc + s2 * n * np.einsum("crka,ctka->crt", cj, cj, optimize=True)
        zc = zc + big_n * s2 * s2 * (
            np.einsum("crab,ctab->crt", cs, cs, optimize=True)
            + np.einsum("crab,ctba->crt", cs, cs, optimize=True)
        )
        hv = hv + zc
    out = hv.real
    return 0.5 * (out + out.transpose(0, 2, 1))


def training_moments(rv: Resolvent, weights, kk, ll, identity):
    r"""Mean (G, K) and covariance (G, K, K) of every non-empty group's outputs, one round.

    For a point ``i`` of class ``k`` with label ``l`` (``y = e_l - 1/K``), per contour point:
    ``E[Yc Q e_i] = own y - s E[Yc Q V] M_k^T`` with the own-label coefficient
    ``own = s - E[b^T A b] + s^2 M_k A M_k^T``, ``b = V^T Q_W e_i``; fluctuations
    ``eps c + xi_Y - B_f xi_V - s B_f z_1i`` (docs §11.4); ``P_t - 1/K = y - sum_j nu_j Yc Q e_i``,
    ``nu_j = omega_t(z_j) z_j``.
    """
    model = rv.model
    k, big_n, s2 = model.n_classes, model.n_samples, model.noise_var
    s, abar, mu, var = rv.s, rv.abar, rv.mu, rv.var
    nu = weights * rv.z
    eye = np.eye(k)
    y = eye[ll] - 1.0 / k  # (G, K)
    mk = mu[kk]  # (G, K)
    h = np.einsum("mij,gj->gmi", abar, mk)  # (G, m, K): A M_k^T
    m_a_m = np.einsum("gj,gmj->gm", mk, h)
    tr_a = np.trace(abar, axis1=1, axis2=2)
    tr_at = np.einsum("mij,ji->m", abar, rv.tt)
    v_diag = np.diagonal(var).copy()
    tr_at_minus = tr_at[None, :] - m_a_m - s2 * tr_a[None, :]
    ebb = (s * s + 2 * v_diag / (big_n + 2))[None, :] * (m_a_m + s2 * tr_a[None, :])
    ebb = ebb + (v_diag / (big_n - 1))[None, :] * tr_at_minus
    own = s[None, :] - ebb + (s * s)[None, :] * m_a_m  # (G, m)
    class_part = np.einsum("m,mij,gj->gmi", s, rv.mcal, mk)  # s E[Yc Q V] M_k^T  (G, m, K)
    mean = y * (identity - own @ nu)[:, None] + np.einsum("m,gmi->gi", nu, class_part)
    # fluctuations: B_f = s (Chat M + y M_k) A = s E[YcQV]/... first order coefficient
    bf = s[None, :, None, None] * (
        np.einsum("ij,mjl->mil", rv.cm, abar)[None]
        + np.einsum("gi,gmj->gmij", y, np.einsum("gj,mjl->gml", mk, abar))
    )  # (G, m, K, K)
    cvec = y[:, None, :] - np.einsum("gmij,gj->gmi", bf, mk)  # (G, m, K)
    w2 = np.outer(nu, nu) * var  # (m, m)
    g_n, m_n = bf.shape[0], bf.shape[1]
    cov = (2.0 / (big_n + 2)) * (cvec.transpose(0, 2, 1) @ (w2[None] @ cvec))
    # xi part: (1/(N-1)) sum_ab w2_ab L_a Gam_- L_b^T, L_a = [I, -B_f,a].
    gam = rv.gam
    gvec = np.concatenate([y, mk], axis=1)  # (G, 2K): the point's own row of [Yc^T, V]
    gm = gam[None] - gvec[:, :, None] * gvec[:, None, :]
    gm[:, k:, k:] -= s2 * eye
    wsum = w2.sum()
    ub = w2.sum(axis=0)  # (m,)
    bf_u = np.tensordot(bf, ub, axes=([1], [0]))  # (G, K, K): sum_b u_b B_f,b  [i, j]
    x_g = (w2[None] @ bf.reshape(g_n, m_n, k * k)).reshape(g_n, m_n, k, k)  # sum_b w2_ab B_f,b
    t_yy = wsum * gm[:, :k, :k]
    t_yv = gm[:, :k, k:] @ bf_u.transpose(0, 2, 1)
    bg = bf @ gm[:, None, k:, k:]  # (G, m, K, K): B_f,a Gam_VV
    left = bg.transpose(0, 2, 1, 3).reshape(g_n, k, m_n * k)  # [i, (a, j)]
    right = x_g.transpose(0, 1, 3, 2).reshape(g_n, m_n * k, k)  # [(a, j), l]
    t_vv = left @ right
    cov = cov + (t_yy - t_yv - t_yv.transpose(0, 2, 1) + t_vv) / (big_n - 1)
    # z_1i part: sigma^2 (sum nu s B_f)(...)^T
    zb = np.tensordot(bf, nu * s, axes=([1], [0]))  # (G, K, K)
    cov = cov + s2 * (zb @ zb.transpose(0, 2, 1))
    cov = cov.real
    return mean.real, 0.5 * (cov + cov.transpose(0, 2, 1))


def population_moments(rv: Resolvent, weights, rv_cov: Resolvent, weights_cov):
    r"""Mean logits (K, K) ``[class, output]`` and fresh-noise covariance (K, K), one round.

    The covariance ``sigma^2 Yc g_t(G) G g_t(G) Yc^T`` is a *single* spectral function:
    ``x g_t(x)^2 = x^{2t+1}/(x + kappa)^{2t+2} = g_{2t+1}(x)``, so it is
    ``sigma^2 sum_j omega_{2t+1}(z_j) E[Yc Q(z_j) Yc^T]`` on a contour built for round ``2t+1``
    (``rv_cov``, ``weights_cov``): no double sum, and the same relative precision as the means
    (a double sum of ``omega_t`` would lose it once ``g_t`` spans many orders of magnitude over the
    spectrum).
    """
    model = rv.model
    mean = np.einsum("m,mij,kj->ki", weights, rv.mcal, rv.mu)
    if model.noise_var == 0.0:
        return mean.real, np.zeros((model.n_classes, model.n_classes))
    cov = model.noise_var * np.einsum("m,mij->ij", weights_cov, rv_cov.ncal).real
    return mean.real, 0.5 * (cov + cov.T)


class FiniteResolutionError(ValueError):
    """The finite-p theory's contour sums cannot resolve a covariance at these parameters.

    Found at very small ``lam`` (``<= 1e-8``) or ``N/p`` (``<= 1e-6``), issue 21: the double
    contour sums lose the covariance's small eigenvalues to round-off. A ``ValueError``: the
    parameters lie outside what the theory computes, so every entry point reports one line.
    """


class FinitePrecisionError(FiniteResolutionError):
    """A covariance came out indefinite beyond round-off: the contour rule's resolution is spent
    (a :class:`FiniteResolutionError`: one line from every entry point).

    The contour sums of :func:`contour_weights` carry an absolute round-off that grows like
    ``eps q^(t+1)`` with the round, while the class-level outputs and covariances shrink like the
    class eigen-weights' ``(t+1)``-th power; with many rounds at large ``K`` (whose global spike
    sets the contour's scale) a round's covariance can fall below that round-off.
    """


def clean_covariance(cov):
    r"""Remove round-off from covariances (..., K, K) of outputs or logits.

    Deviations and logits sum to zero over the classes (``1^T Yc = 0``), so ``1`` is an exact null
    vector: project it out with ``P = I - 11^T/K`` (decisions depend on differences only), then
    clip eigenvalues that are negative at the round-off level of the contour sums. A covariance
    is a double contour sum, so its round-off is the square of the single sums' (relative
    ``<= 1e-7``, :func:`contour_weights`) times the dynamic range of the terms; directions below
    ``1e-3`` of the largest eigenvalue that come out negative are set to 0 (they are below the
    resolution of the rule; the orthant rule then treats them as deterministic), anything more
    negative raises :class:`FiniteResolutionError` (a ``ValueError``).
    """
    k = cov.shape[-1]
    proj = np.eye(k) - 1.0 / k
    c = proj @ cov @ proj
    c = 0.5 * (c + np.swapaxes(c, -1, -2))
    ev, vec = np.linalg.eigh(c)
    top = np.max(np.abs(ev), axis=-1, keepdims=True)
    if np.any(ev < -1e-3 * top - 1e-300):
        raise FinitePrecisionError(
            "the finite-p theory cannot resolve these parameters: its output covariance is not "
            f"positive semidefinite beyond round-off (eigenvalues down to {ev.min():.3g}, largest "
            f"{np.max(ev):.3g}; docs/theory.md §11.2): use fewer rounds, a larger lam or N/p, or "
            "the block limit p = inf"
        )
    ev = np.clip(ev, 0.0, None)
    return (vec * ev[..., None, :]) @ np.swapaxes(vec, -1, -2)
