r"""Symbolic (sympy) eigen-analysis of the block Gram matrix and of label averaging on it.

``G = (1-c) I + (c-d) B + d 11^T`` on ``N = K n`` points (``B`` block-diagonal all-ones). With the
orthogonal projectors ``Pi_1 = 11^T/N``, ``Pi_2 = B/n - 11^T/N``, ``Pi_3 = I - B/n`` (ranks
``1, K-1, N-K``; ``Pi_1 + Pi_2 + Pi_3 = I``) one has ``B = n (Pi_1 + Pi_2)`` and
``11^T = N Pi_1``, hence

.. math::  G = \mu_1 \Pi_1 + \mu_2 \Pi_2 + \mu_3 \Pi_3,\quad
    \mu_1 = 1-c+n(c-d)+Nd,\ \mu_2 = 1-c+n(c-d),\ \mu_3 = 1-c .

Everything below is derived from this operator algebra with symbols ``K, n, c, d, lam, t`` and then
lambdified for fast numeric use (the expressions are built once and cached).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

__all__ = [
    "SYMBOLS",
    "eigen_system",
    "label_averaging_decomposition",
    "min_round_expression",
    "numeric",
    "psd_region",
    "rho_expression",
    "round_weights",
]

K, n, c, d, lam, t, delta = sp.symbols("K n c d lambda t Delta", real=True)
#: The symbols used in every expression: K, n, c, d, lambda, t, Delta.
SYMBOLS = {"K": K, "n": n, "c": c, "d": d, "lam": lam, "t": t, "Delta": delta}
N = K * n


@lru_cache(maxsize=None)
def eigen_system():
    r"""The three eigenvalues, multiplicities and eigenvector families of ``G``.

    Each eigenvalue is obtained as ``(1 - c) + (c - d) beta + d omega`` where ``(beta, omega)`` are
    the eigenvalues of ``B`` and ``11^T`` on the family: ``(n, N)`` on the ones vector, ``(n, 0)``
    on class contrasts (constant within classes, summing to zero), ``(0, 0)`` on within-class
    contrasts (summing to zero within every class).

    Returns
    -------
    list of dict
        Keys ``name``, ``eigenvalue`` (sympy expr), ``multiplicity`` (sympy expr),
        ``eigenvectors`` (description), ``B_eig``, ``ones_eig``.
    """
    fams = [
        ("ones", n, N, sp.Integer(1), "the all-ones vector 1_N"),
        ("class contrasts", n, 0, K - 1, "v = sum_k alpha_k 1_{class k}, sum_k alpha_k = 0"),
        ("within-class contrasts", 0, 0, N - K, "v supported on one class, summing to 0 there"),
    ]
    out = []
    for name, b_eig, o_eig, mult, vecs in fams:
        mu = sp.expand((1 - c) + (c - d) * b_eig + d * o_eig)
        out.append(
            {
                "name": name,
                "eigenvalue": mu,
                "multiplicity": sp.expand(mult),
                "eigenvectors": vecs,
                "B_eig": b_eig,
                "ones_eig": o_eig,
            }
        )
    return out


def eigenvalues():
    """``(mu_1, mu_2, mu_3)`` as sympy expressions."""
    return tuple(e["eigenvalue"] for e in eigen_system())


@lru_cache(maxsize=None)
def psd_region():
    r"""Validity (PSD) region: ``mu_1, mu_2, mu_3 >= 0`` solved for ``d`` (``K >= 2, n >= 1``).

    ``c <= 1`` and ``-(1 + (n-1)c) / (n (K-1)) <= d <= (1 + (n-1)c) / n``.

    Returns
    -------
    dict
        ``condition`` (sympy ``And`` of the three eigenvalue inequalities),
        ``c_max``, ``d_min``, ``d_max`` (sympy exprs).
    """
    mu1, mu2, mu3 = eigenvalues()
    d_max = sp.solve(sp.Eq(mu2, 0), d)[0]
    d_min = sp.solve(sp.Eq(mu1, 0), d)[0]
    return {
        "condition": sp.And(mu1 >= 0, mu2 >= 0, mu3 >= 0),
        "c_max": sp.Integer(1),
        "d_min": sp.simplify(d_min),
        "d_max": sp.simplify(d_max),
    }


def round_weights():
    r"""``a_j(t) = (mu_j / (mu_j + K lam N))^(t+1)``, j = 1, 2, 3 (sympy exprs)."""
    return tuple((mu / (mu + K * lam * N)) ** (t + 1) for mu in eigenvalues())


@lru_cache(maxsize=None)
def label_averaging_decomposition():
    r"""Linearised round-``t`` output of a point of true class ``k`` with given label ``l``.

    From ``A^(t+1) = w_1 Pi_1 + w_2 Pi_2 + w_3 Pi_3`` and ``P - 1/K = (Y - 1/K) A^(t+1)``:

    .. math::  p = \underbrace{w_3\, e_l}_{\text{own label}}
        + \underbrace{(w_2 - w_3)\, h_k}_{\text{class histogram}}
        + \underbrace{(w_1 - w_2)\, h}_{\text{global histogram}}
        + \frac{1 - w_1}{K} \mathbf 1,

    ``h_k = C[k, :] / n``, ``h = 1^T C / N`` (both on the simplex); the four coefficients sum to 1.

    Returns
    -------
    dict of sympy exprs
        ``own`` (``w_3``), ``class`` (``w_2 - w_3``), ``global`` (``w_1 - w_2``) and ``uniform``
        (``1 - w_1``, the coefficient of ``1/K``).
    """
    w1, w2, w3 = round_weights()
    return {"own": w3, "class": w2 - w3, "global": w1 - w2, "uniform": 1 - w1}


def rho_expression():
    r"""``rho = a_2 / a_3 = mu_2 (mu_3 + K lam N) / (mu_3 (mu_2 + K lam N))``."""
    mu1, mu2, mu3 = eigenvalues()
    del mu1
    return sp.simplify((mu2 / (mu2 + K * lam * N)) / (mu3 / (mu3 + K * lam * N)))


def min_round_expression():
    r"""Closed-form minimum round (balanced histogram): ``floor(log(1 + 1/Delta) / log rho)``."""
    return sp.floor(sp.log(1 + 1 / delta) / sp.log(rho_expression()))


@lru_cache(maxsize=None)
def numeric():
    """Lambdified numpy functions (built once).

    Returns
    -------
    dict of callables
        ``eigenvalues(K, n, c, d) -> (mu1, mu2, mu3)``,
        ``multiplicities(K, n) -> (m1, m2, m3)``,
        ``weights(K, n, c, d, lam, t) -> (w1, w2, w3)``,
        ``decomposition(K, n, c, d, lam, t) -> (own, class, global, uniform)``,
        ``rho(K, n, c, d, lam)``, ``psd(K, n, c, d) -> bool``,
        ``d_range(K, n, c) -> (d_min, d_max)``, ``min_round(K, n, c, d, lam, Delta)``.
    """
    mus = eigenvalues()
    mults = tuple(e["multiplicity"] for e in eigen_system())
    dec = label_averaging_decomposition()
    reg = psd_region()
    args4 = (K, n, c, d)
    args5 = (K, n, c, d, lam)
    args6 = (K, n, c, d, lam, t)
    return {
        "eigenvalues": sp.lambdify(args4, mus, "numpy"),
        "multiplicities": sp.lambdify((K, n), mults, "numpy"),
        "weights": sp.lambdify(args6, round_weights(), "numpy"),
        "decomposition": sp.lambdify(
            args6, (dec["own"], dec["class"], dec["global"], dec["uniform"]), "numpy"
        ),
        "rho": sp.lambdify(args5, rho_expression(), "numpy"),
        "psd": sp.lambdify(args4, reg["condition"], "numpy"),
        "d_range": sp.lambdify((K, n, c), (reg["d_min"], reg["d_max"]), "numpy"),
        "min_round": sp.lambdify(args5 + (delta,), min_round_expression(), "numpy"),
    }
