r"""Exact solver for the L2-regularised linear softmax probe, with a KKT certificate.

Problem (soft targets ``T``, shape (K, N), columns on the simplex):

.. math::

    \min_W \; \frac1N \sum_{i=1}^N \mathrm{CE}\big(t_i, \mathrm{softmax}(W x_i)\big)
    + \frac{\lambda}{2} \lVert W \rVert_F^2 .

Stationarity gives ``W = (T - P) X / (lam N)`` (``X`` is (N, p), rows are samples), so the training
outputs are the unique fixed point

.. math::  P = \mathrm{softmax}\big((T - P)\, G / (\lambda N)\big), \qquad G = X X^\top.

Scale-free representation
-------------------------
Targets and outputs are carried as deviations from uniform, ``T = 1/K + D_T`` and
``P = 1/K + D_P`` (:class:`SoftTargets`, :mod:`simulations.softmax`). Everything the solver
computes -- gradients ``(D_P - D_T) X / N + lam W``, objective changes in the line search, the
fixed-point residual -- is formed from these deviations and the logits, never by subtracting
``1/K`` from a probability. At ``lam = 1`` after ten self-distillation rounds the deviations are
~1e-15 or smaller; they are still resolved to ~15 digits, and the certificate is *relative*: the
residual is certified against ``tol * max|D_P|``, the outputs' own distance from uniform.

Method
------
Internally samples are rows: logits ``Z = B C`` (N, K) for a data matrix ``B`` (N, q) and
coefficients ``C`` (q, K); the row-wise work (softmax, line search, certificate, the Jacobian part
of Hessian products) runs in row blocks of ~2 MB (``kernels.row_blocks``) on (N, K) work arrays
allocated once per solve. In float64 the products are formed in the orientation OpenBLAS runs
fastest (:func:`basis_times`, :func:`basis_t_times`; ``python -m benchmarks.blas_orientation``).
Three routes (:func:`factorize`):

``'spectral'``
    ``B = X``, plus the eigendecomposition ``X^T X = V diag(s) V^T`` for the preconditioner
    (O(N p^2 + p^3) once, p x p memory; ``F = X V`` is never formed). Reused by every round, lam
    value and the PLL student (:func:`simulations.distill.self_distill` factorises once).
``'direct'``
    ``B = X`` and no factorisation: the preconditioner uses ``diag(X^T X)``. The choice for a
    one-off solve with ``p >> K`` (at ``p = 2048, N = 50,000, K = 100`` the eigendecomposition
    costs as much as ~15 passes over the data).
``'dual'``
    ``B = U diag(sqrt(mu))`` from ``G = U diag(mu) U^T`` (O(N^3)), for a Gram matrix, or features
    with ``p > N``.

On any route we run a truncated Newton method with a scale-free Armijo line search
(``kernels.LineObjective``). Each step solves ``H S = -g`` by preconditioned conjugate gradients
with Hessian-vector products ``H[S] = B^T D_P[B S] / N + lam S`` (``D_P`` the per-sample softmax
Jacobians ``diag(p_i) - p_i p_i^T``), evaluated in float32 for large problems: the Newton direction
needs only a few digits. Until the gradient is within ``newton._SWITCH_RTOL`` of its own round-off
scale the whole iteration is float32 (the *float32 phase*: logits, softmax deviations (computed
with ``expm1``, relative to the outputs' spread, ``kernels.softmax32``), residuals, gradients, CG's
logit images and the Armijo line search (``kernels.LineObjective32``)); then the logits are
recomputed in float64 and the last Newton steps (and the certificate) are float64, so the certified
accuracy is unchanged. The float32 phase starts with nonlinear preconditioned CG steps
(:mod:`simulations.solver.ncg`: Polak-Ribiere+ with the same preconditioner, the step length from
the curvature along the direction, no pass of its own, checked by the same Armijo test): two passes
per step against ``2 m + 1`` for a Newton step with ``m`` CG iterations. Newton steps take over
when a step reduces the gradient by less than ``ncg.MAX_RATE`` (confident outputs, ill-conditioned
features). Near the optimum the quadratic model is trusted: below ``ncg.TRUST_RTOL`` a nonlinear
CG step whose predecessor passed the Armijo test at the model's length is taken without the test
(undone if it does not reduce the gradient), and the first float64 Newton step after a float32
phase that reached its switch point is taken whole.

The preconditioner (``pcg.KronPreconditioner``) replaces every Jacobian ``D_i`` by their mean
``Dbar``: ``(Dbar (x) diag(s) / N + lam I)^{-1}`` in the eigenbasis of ``B^T B`` (or with ``s =
diag(X^T X)`` on the direct route). It costs O(N K^2 + K^3) to build, O(q K^2) (plus two p x p
rotations on the spectral route) to apply, never allocates an N x K x K array, and is exact at
uniform outputs on the spectral and dual routes (the first Newton step of a teacher, and all of
them when ``lam`` is large). Cost of a solve is counted in *passes*, products of the (N, q) data
matrix with a (q, K) or (N, K) array (``Certificate.passes``).

All iterates keep ``sum_k C_jk = 0`` (the optimum does: ``sum_k (T - P)_k = 0``); on that subspace
the Hessian is positive definite for ``lam > 0``.

Certificate
-----------
The fixed-point residual ``max|D_P - dev(softmax((T - P) G / (lam N)))|`` is evaluated with the
*original* features or Gram matrix. Floating-point error of ``Z' = (T - P) G / (lam N)`` is bounded
by ``gamma (|T - P| |G|) / (lam N)`` entrywise (``gamma = 8 sqrt(max(N, p)) eps``, pairwise-summed
BLAS products), and softmax is 1/2-Lipschitz in the max-norm, so residuals below
``floor = 0.5 gamma max(|T - P| |G|) / (lam N) + 8 eps max|D_P|`` are not resolvable. On the
features routes of a single-precision solve, ``Z' = B W'`` with ``W' = C - grad / lam`` is formed
as ``Z - B (grad / lam)`` with a float32 product (the correction is ~1e-10 of ``W'`` there); its
error bound -- the float32 product's ``(8 sqrt(q) + 2) eps_32 |b_i| |grad_k| / lam``, the float64
logits' own (``Iterate.logit_error``) and the subtraction's -- is added to the floor, and the
float64 product is used instead when that bound exceeds a tenth of ``tol * max|D_P|``
(``newton._fixed_logits``). The solver
certifies ``residual <= target = max(tol * max|D_P|, floor)``. The floor is first bounded cheaply
with ``|G_ij| <= sqrt(G_ii G_jj)``; the exact ``|T - P| |X| |X|^T`` (in row blocks) is computed
only when that bound exceeds ``tol * max|D_P|`` (tiny ``lam``).

Layout
------
``types`` (:class:`SoftTargets`, :class:`Certificate`, :class:`ProbeSolution`,
:class:`ConvergenceError`), ``factorisation`` (:func:`factorize`, :class:`ProbeFactor`, the memory
guard), ``kernels`` (row-blocked softmax and line-search kernels, :func:`basis_times`,
:func:`basis_t_times`), ``pcg`` (:func:`pcg`, the Kronecker preconditioner), ``certify``
(:func:`fixed_point_residual`), ``state`` (the data and iterate of one solve, the gradient),
``ncg`` (the nonlinear CG steps of the float32 phase) and ``newton`` (:func:`solve_probe`: the
phases, Newton steps, certificate). Every public name is re-exported here.
"""

from __future__ import annotations

from simulations.solver.certify import fixed_point_residual
from simulations.solver.factorisation import (
    FACTOR_METHODS,
    ProbeFactor,
    available_memory,
    factorize,
)
from simulations.solver.kernels import basis_t_times, basis_times, log_softmax, softmax64
from simulations.solver.newton import solve_probe
from simulations.solver.pcg import pcg
from simulations.solver.types import (
    Certificate,
    ConvergenceError,
    ProbeSolution,
    SoftTargets,
    new_point_logits,
)

__all__ = [
    "FACTOR_METHODS",
    "Certificate",
    "ConvergenceError",
    "ProbeFactor",
    "ProbeSolution",
    "SoftTargets",
    "available_memory",
    "basis_t_times",
    "basis_times",
    "factorize",
    "fixed_point_residual",
    "new_point_logits",
    "log_softmax",
    "pcg",
    "softmax64",
    "solve_probe",
]
