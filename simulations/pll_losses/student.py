"""The PLL student's training loop: :func:`train_pll_student` (package docstring,
:mod:`simulations.pll_losses`)."""

from __future__ import annotations

import math

import numpy as np

from simulations.pll_losses.losses import (
    CandidateSetLoss,
    check_candidates,
    check_loss,
    check_q,
)
from simulations.pll_losses.objective import Objective, initial_coef, orthogonal_coordinates
from simulations.pll_losses.results import PLLCertificate, PLLStudent
from simulations.pll_losses.stationarity import (
    check_hessian_size,
    classify_stationary_point,
    eig_tolerance,
    kernel_residuals,
    second_order,
)
from simulations.solver import (
    ConvergenceError,
    ProbeFactor,
    ProbeSolution,
    factorize,
    log_softmax,
    solve_probe,
)
from theory.names import DEFAULT_Q
from theory.partial_labels import top2_indices
from theory.validation import CERTIFICATE_RTOL_CAP, check_int, check_positive

__all__ = ["train_pll_student"]


_EPS = np.finfo(float).eps


def _block_preconditioner(f_sq, probs, weight, lam, n):
    """Inverses of ``sum_i F_ij^2 w_i D_{p_i} / N + lam I`` (r, K, K): PD for any loss."""
    k = probs.shape[0]
    wp = probs * weight
    diag = wp @ f_sq / n
    outer = (np.einsum("ki,li->kli", wp, probs).reshape(k * k, -1) @ f_sq) / n
    blocks = -outer.reshape(k, k, -1).transpose(2, 0, 1)
    idx = np.arange(k)
    blocks[:, idx, idx] += diag.T + lam
    return np.linalg.inv(blocks)


def _truncated_cg(apply_h, grad, precond_inv, rtol, maxiter):
    """Preconditioned CG on ``H s = -g`` stopped at negative curvature (Steihaug, no radius).

    Returns ``(step, iterations, negative_curvature)``; the step is a descent direction.
    """

    def prec(v):
        return np.einsum("jkl,lj->kj", precond_inv, v)

    x = np.zeros_like(grad)
    r = -grad
    z = prec(r)
    d = z.copy()
    rz = float(np.sum(r * z))
    stop = rtol * float(np.linalg.norm(grad))
    for it in range(1, maxiter + 1):
        hd = apply_h(d)
        curv = float(np.sum(d * hd))
        if curv <= 1e-14 * float(np.sum(d * d)):
            # Negative (or zero) curvature: the current iterate is a descent direction (CG
            # iterates decrease the quadratic model monotonically); on the first step use the
            # preconditioned steepest-descent direction.
            return (x if it > 1 else z), it, True
        alpha = rz / curv
        x += alpha * d
        r -= alpha * hd
        if np.linalg.norm(r) <= stop:
            return x, it, False
        z = prec(r)
        rz_new = float(np.sum(r * z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x, maxiter, False


def _solve_nonconvex(loss, factor, lam, theta, tol, max_iter, hessian, max_escapes=5):
    problem = Objective(loss, factor, lam)
    f = problem.f
    f_sq = f**2
    k, r = theta.shape
    z, st, obj = problem.evaluate(theta)
    obj0 = obj
    it = cg_total = escapes = 0
    best_res, stalls = np.inf, 0
    while True:
        grad = problem.gradient(theta, st)
        gnorm = float(np.linalg.norm(grad))
        res, logit_res, floor = kernel_residuals(loss, st, z, lam, factor)
        # The round-off floor raises the target, never above CERTIFICATE_RTOL_CAP (outputs are
        # O(1) from uniform here): a residual round-off does not resolve is not certified.
        target = max(tol, min(floor, CERTIFICATE_RTOL_CAP))
        if res <= target:
            min_eig, how, vec = second_order(problem, st, (k, r), hessian)
            kind = classify_stationary_point(min_eig, how, eig_tolerance(problem))
            if kind != "saddle point" or vec is None or escapes >= max_escapes:
                break
            # Leave the saddle along the negative-curvature eigenvector: J(theta + t v) ~
            # J + t^2 min_eig / 2 for either sign; take the sign and length that decrease J.
            escapes += 1
            moved = False
            for t in (1.0, 0.3, 0.1, 0.03, 0.01):
                for sign in (1.0, -1.0):
                    cand = theta + sign * t * vec * max(1.0, float(np.linalg.norm(theta)))
                    z_c, st_c, obj_c = problem.evaluate(cand)
                    if obj_c < obj - 16 * _EPS * max(1.0, abs(obj)):
                        theta, z, st, obj, moved = cand, z_c, st_c, obj_c, True
                        break
                if moved:
                    break
            if not moved:
                break
            best_res, stalls = np.inf, 0
            continue
        if res < 0.5 * best_res:
            stalls = 0
        best_res = min(best_res, res)
        if it >= max_iter or stalls >= 5:
            raise ConvergenceError(
                f"PLL student ({loss.name}) did not converge: residual {res:.3g} > target "
                f"{target:.3g} after {it} Newton steps (gradient norm {gnorm:.3g}, lam={lam:g})"
            )
        it += 1
        rtol = min(0.1, math.sqrt(gnorm)) if gnorm > 0 else 0.1
        precond = _block_preconditioner(f_sq, st.probs, st.weight, lam, problem.n)
        step, n_cg, _ = _truncated_cg(
            lambda s, st_=st: problem.hvp(st_, s),
            grad,
            precond,
            max(rtol, 1e-14),
            maxiter=max(50, 5 * r * k),
        )
        cg_total += n_cg
        slope = float(np.sum(grad * step))
        if slope >= 0:  # cannot happen in exact arithmetic (descent direction); be safe
            step, slope = -grad, -(gnorm**2)
        alpha = 1.0
        slack = 16 * _EPS * max(1.0, abs(obj))
        while True:
            z_new, st_new, obj_new = problem.evaluate(theta + alpha * step)
            if obj_new <= obj + 1e-4 * alpha * slope + slack:
                break
            alpha *= 0.5
            if alpha < 1e-12:
                raise ConvergenceError(
                    f"PLL student ({loss.name}): line search failed at residual {res:.3g} "
                    f"(lam={lam:g})"
                )
        theta = theta + alpha * step
        progressed = obj_new < obj - slack
        z, st, obj = z_new, st_new, obj_new
        stalls = 0 if progressed else stalls + 1

    cert = PLLCertificate(
        residual=res,
        logit_residual=logit_res,
        gradient_norm=gnorm,
        converged=bool(res <= target),
        method=f"truncated newton-cg ({factor.route})",
        target=target,
        floor=floor,
        iterations=it,
        cg_iterations=cg_total,
        objective=obj,
        initial_objective=obj0,
        min_hessian_eigenvalue=min_eig,
        hessian_method=how,
        stationary_point=kind,
        escapes=escapes,
    )
    return theta, z, st, cert


def train_pll_student(
    teacher: ProbeSolution,
    lam,
    *,
    loss: str = "ce",
    q: float = DEFAULT_Q,
    candidates=None,
    features=None,
    gram=None,
    factor: ProbeFactor | None = None,
    tol: float = 1e-9,
    max_iter: int = 200,
    hessian: str = "auto",
) -> PLLStudent:
    r"""Train the PLL student with a candidate-set loss, exactly, from the teacher.

    Parameters
    ----------
    teacher : ProbeSolution
        The round-0 probe (e.g. ``self_distill(...).solutions[0]``); the start of the solve and,
        by default, the source of the candidates and of the features.
    lam : float
        ``lam > 0`` of the penalty ``(lam/2) ||W||^2``.
    loss : {'ce', 'candidate', 'gce', 'gce-reference'}
        Module docstring. ``'ce'`` is the theory's student (strongly convex).
    q : float, default 0.7
        GCE exponent in ``(0, 1]``; ignored by ``'ce'`` and ``'candidate'``.
    candidates : array_like of int, shape (2, N), optional
        Two distinct classes per sample; default the teacher's top-2
        (:func:`theory.partial_labels.top2_indices` of its outputs, shared tie rule).
    features, gram, factor
        At most one: the training features (N, p), Gram matrix (N, N) or a
        :func:`simulations.solver.factorize` output; default the teacher's own factorisation.
    tol : float
        Fixed-point residual to certify (raised to the round-off floor where that is larger).
    max_iter : int
        Newton steps before :class:`simulations.solver.ConvergenceError`.
    hessian : {'auto', 'dense', 'lanczos', 'none'}
        Second-order test at the solution (module docstring); ``'auto'`` tries the cheap lower
        bound, then the dense Hessian if ``K r <= 3000`` (O(N K^2 r^2 + (K r)^3) time), else
        Lanczos (a few hundred to a few thousand Hessian-vector products of O(N K r) each).
        ``'dense'`` refuses ``K r > 3000``; ``'none'`` skips the test (``stationary_point`` is
        then ``'unknown'`` for the non-convex losses).

    Returns
    -------
    PLLStudent

    Raises
    ------
    ValueError
        Bad ``lam``, ``loss``, ``q``, candidates, or data that does not match the teacher.
    simulations.solver.ConvergenceError
        If the stationarity residual cannot be certified.
    """
    if not isinstance(teacher, ProbeSolution):
        raise ValueError("teacher must be a ProbeSolution (e.g. self_distill(...).solutions[0])")
    lam = check_positive(lam, "lam")
    loss = check_loss(loss)
    q = check_q(q)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    if hessian not in ("auto", "dense", "lanczos", "none"):
        raise ValueError(f"hessian must be 'auto', 'dense', 'lanczos' or 'none', got {hessian!r}")
    if sum(v is not None for v in (features, gram, factor)) > 1:
        raise ValueError("pass at most one of features (N, p), gram (N, N) or factor")
    if factor is None:
        factor = (
            teacher.factor
            if features is None and gram is None
            else factorize(features=features, gram=gram)
        )
    elif not isinstance(factor, ProbeFactor):
        raise ValueError("factor must be a ProbeFactor from simulations.solver.factorize")
    k, n = teacher.outputs.shape
    rank = orthogonal_coordinates(factor)[0].shape[1]
    check_hessian_size(hessian, k, rank)
    if factor.n_samples != n:
        raise ValueError(
            f"the teacher has {n} training samples but the features / gram have {factor.n_samples}"
        )
    if candidates is None:
        cand = top2_indices(teacher.logits)  # decide from logits (issue 11)
    else:
        cand = check_candidates(candidates, n, k)
    loss_fn = CandidateSetLoss(loss, cand, q, k)

    if loss == "ce":
        targets = 0.5 * loss_fn.mask.astype(float)
        init = teacher if teacher.factor is factor else None
        sol = solve_probe(targets, lam, factor=factor, init=init, tol=tol, max_iter=max_iter)
        problem = Objective(loss_fn, factor, lam)
        z = sol.logits
        inv = np.divide(
            1.0, problem.sq_norms, out=np.zeros_like(problem.sq_norms), where=problem.sq_norms > 0
        )
        theta = (z @ problem.f) * inv
        st = loss_fn.state(log_softmax(z))
        _, _, obj0 = problem.evaluate(initial_coef(teacher, factor, k))
        _, logit_res, _ = kernel_residuals(loss_fn, st, z, lam, factor)
        c = sol.certificate
        cert = PLLCertificate(
            residual=c.residual,
            logit_residual=logit_res,
            gradient_norm=c.gradient_norm,
            converged=bool(c.converged),
            method=c.method,
            target=c.target,
            floor=c.floor,
            iterations=c.iterations,
            cg_iterations=c.cg_iterations,
            objective=problem.evaluate(theta)[2],
            initial_objective=obj0,
            min_hessian_eigenvalue=lam,
            hessian_method="convex",
            stationary_point="global minimum",
        )
    else:
        theta0 = initial_coef(teacher, factor, k)
        theta, z, st, cert = _solve_nonconvex(loss_fn, factor, lam, theta0, tol, max_iter, hessian)

    dual = -st.grad / (lam * n)
    rotation = orthogonal_coordinates(factor)[2]
    if rotation is not None:
        weights = theta @ rotation.T
    elif factor.features is not None:
        weights = dual @ factor.features
    else:
        weights = None
    return PLLStudent(
        outputs=st.probs,
        logits=z,
        weights=weights,
        dual=dual,
        certificate=cert,
        loss=loss,
        q=q,
        candidates=cand,
        lam=lam,
        factor=factor,
        coef=theta,
    )
