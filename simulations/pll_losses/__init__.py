r"""The PLL student with candidate-set losses: exact solves with first- and second-order reports.

The student sees, for every training point ``i``, a candidate set ``S_i = {a_i, b_i}`` (by default
the teacher's top-2 labels, :func:`theory.partial_labels.top2_indices`) and minimises, over the
weights of the linear softmax probe ``p_i = softmax(W x_i)``,

.. math::

    J(W) = \frac1N \sum_{i=1}^N \ell(z_i; S_i) + \frac{\lambda}{2} \lVert W \rVert_F^2,
    \qquad z_i = W x_i, \quad s_i = \sum_{j \in S_i} p_{ij},

with one of the losses (``loss=``):

``'ce'``
    cross-entropy on the two-hot target ``tau_i = (e_a + e_b)/2``: ``-(log p_a + log p_b)/2`` --
    the theory's PLL student (:func:`simulations.distill.train_pll`); strongly convex, solved by
    :func:`simulations.solver.solve_probe`.
``'candidate'``
    candidate log-likelihood ``-log s_i``.
``'gce'``
    generalised cross-entropy of the candidate *set*, ``(1 - s_i^q)/q``, ``q in (0, 1]``.
``'gce-reference'``
    the public reference code's form (``partial_loss`` in its ``util.py``): the mean over the two
    candidates of ``(1 - p_a^q)/q``. This is what the paper's experiments run; it is **not** the
    set loss ``'gce'``: at a fixed candidate mass ``s = p_a + p_b`` it is smallest for the even
    split ``p_a = p_b = s/2`` (``p^q`` is concave), like two-hot CE, while ``'gce'`` and
    ``'candidate'`` depend on ``s`` only and leave the split to the features. ``q -> 0`` turns
    ``'gce-reference'`` into ``'ce'`` and ``'gce'`` into ``'candidate'``
    (``(1 - s^q)/q -> -log s``).

Gradients and Hessians in the logits (``D_v = diag(v) - v v^T``; ``r_i = p_i 1_{S_i} / s_i`` the
model's own distribution restricted to the candidates):

=================  ==============================  ============================================
loss               ``g_i = d ell / d z_i``          ``H_i = d^2 ell / d z_i^2``
=================  ==============================  ============================================
``ce``             ``p - tau``                      ``D_p``
``candidate``      ``p - r``                        ``D_p - D_r``
``gce``            ``s^q (p - r)``                  ``s^q [D_p - D_r - q (p - r)(p - r)^T]``
``gce-reference``  ``sum_a p_a^q (p - e_a) / 2``    ``sum_a p_a^q [D_p - q u_a u_a^T] / 2``
=================  ==============================  ============================================

(``u_a = p - e_a``.)

``D_r = r_a r_b (e_a - e_b)(e_a - e_b)^T`` is rank one, so the candidate loss is a difference of two
log-sum-exp functions and not convex: at ``s = 0.9``, ``r = (1/2, 1/2)`` the curvature along
``e_a - e_b`` is ``s(1 - s) + 4 r_a r_b (s^2 - 1) = -0.1``. The ``'candidate'`` stationarity
``p = r`` on the candidates is that of cross-entropy with the *self-referential* target ``r``
(an EM fixed point).

Stationarity and certificate
----------------------------
With ``Gamma = [g_1, ..., g_N]`` (K, N) the gradient of ``J`` is ``Gamma X / N + lam W``, so every
stationary point satisfies ``W = -Gamma X / (lam N)``: the logits solve the kernel-form equation
``Z = -Gamma(Z) G / (lam N)`` with ``G = X X^T`` (``Gamma`` depends on ``Z`` only through ``P``).
The certificate reports, evaluated with the *original* features / Gram matrix as in
:mod:`simulations.solver`,

* ``residual = max |P - softmax(-Gamma(P) G / (lam N))|`` (the solver's fixed-point residual; for
  ``'ce'`` ``-Gamma = T - P`` and it is exactly :class:`simulations.solver.Certificate.residual`),
  certified ``<= max(tol, floor)`` with the solver's round-off ``floor``;
* ``gradient_norm``, the Frobenius norm of ``grad J`` in the orthogonal coordinates below;
* the **second-order test**: the smallest eigenvalue of the Hessian of ``J`` at the solution. If it
  is positive the point is a strict local minimum; for ``'ce'`` it is the global one
  (``H >= lam I``).
  Computed (``hessian=``) from a cheap rigorous lower bound first -- ``H_i >= c_i I`` with
  ``c_i = -2 r_a r_b`` (candidate), ``-s^q (2 r_a r_b + q ||p - r||^2)`` (gce),
  ``-sum_a p_a^q q ||p - e_a||^2 / 2`` (gce-reference), so ``lambda_min(H) >= lam +
  lambda_min(F^T diag(c) F) / N`` (an ``r x r`` eigenproblem) -- and, when that bound is not
  positive, exactly: the dense Hessian for ``K r <= 3000``, Lanczos (ARPACK) otherwise.

Method
------
The coordinates are those of :func:`simulations.solver.factorize`: orthogonal spectral features
``F`` (N, r), ``W = Theta V^T`` (primal route) and logits ``Z = Theta F^T``, with ``||W||_F =
||Theta||_F`` for the minimum-norm ``W``. Starting from the teacher (as the reference code does), a
line-search truncated Newton method: preconditioned conjugate gradients on ``H s = -g`` with
Hessian-vector products ``H[S] = (H_i (S F^T)_i)_i F / N + lam S``, stopped at negative curvature
(then the current CG iterate, or the preconditioned steepest-descent direction on the first CG step,
is used: always a descent direction), preconditioned by the exact ``K x K`` diagonal blocks of the
positive part ``w_i D_p`` of the Hessian (``w_i = 1``, ``s^q`` or ``mean_a p_a^q``), then Armijo
backtracking. If the stationary point found is a saddle (negative Hessian eigenvalue), the solver
steps along the negative-curvature eigenvector and continues (``escapes`` in the certificate).
It raises :class:`simulations.solver.ConvergenceError` rather than return an unconverged point.

Cost per Newton step: O(N K r) per Hessian-vector product, O(r K^3 + N K^2 r) for the
preconditioner; memory O(N K + N r).

Layout
------
``losses`` (the per-sample losses, :func:`candidate_set_loss`, the argument checks),
``objective`` (``J`` in the orthogonal coordinates), ``stationarity`` (residuals and the
second-order test), ``student`` (the Newton loop, :func:`train_pll_student`) and ``results``
(:class:`PLLCertificate`, :class:`PLLStudent`). Every public name is re-exported here.
"""

from __future__ import annotations

from simulations.pll_losses.losses import (
    LOSSES,
    candidate_set_loss,
    check_candidates,
    check_loss,
    check_q,
)
from simulations.pll_losses.results import PLLCertificate, PLLStudent
from simulations.pll_losses.stationarity import DENSE_HESSIAN_MAX, LANCZOS_MAX_RESTARTS
from simulations.pll_losses.student import train_pll_student
from theory.names import DEFAULT_Q

__all__ = [
    "DEFAULT_Q",
    "DENSE_HESSIAN_MAX",
    "LANCZOS_MAX_RESTARTS",
    "LOSSES",
    "PLLCertificate",
    "PLLStudent",
    "candidate_set_loss",
    "check_candidates",
    "check_loss",
    "check_q",
    "train_pll_student",
]
