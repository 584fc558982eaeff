"""Leaving saddle points of the PLL students' group objective (theory.group_descent, issue 20).

The group engine can stop at a saddle of a candidate-set student (pair noise, ``d > 0``: the
cyclically symmetric stationary point). The reported student must be what training reaches: it is
checked against the ``N x N`` truncated-Newton student on exact block features
(``simulations.pll_losses.train_pll_student``, which leaves saddles along its own Hessian's
negative eigenvector) and against the group-level gradient flow from the teacher
(``theory.pll_conditions.flow_student``), at the issue's example and at held-out settings
(other ``lam`` near the threshold, ``K = 3, 5``, symmetric noise). Two minima related by a
symmetry of the problem have the same objective (Proposition 15.6), so the comparison is the
objective value ``N J`` and the accuracies, not the outputs (which differ by a permutation).
"""

import json
import tracemalloc

import numpy as np
import pytest

import theory.group_descent as gd
from selfdistill_cli.predict import main as predict_main
from simulations.features import exact_block_features
from simulations.pll_losses import train_pll_student
from simulations.solver import solve_probe
from theory.blas import single_thread_blas
from theory.group_descent import (
    dense_hessians,
    dense_objective_hessian,
    group_objective,
    negative_curvature_direction,
    second_order,
)
from theory.group_engine import GroupCoupling, newton_inertia
from theory.groups import BlockModel, prediction_memory_bytes
from theory.losses import make_loss
from theory.noise import exact_counts, transition_matrix
from theory.pll import group_top2, predict_pll
from theory.pll_conditions import flow_student
from theory.pll_flow import student_problem

SET_LOSSES = ("candidate", "gce")
#: The issue's example: K = 4, pair noise 0.3, n = 10, c = 0.4, d = 0.1, lam = 4.64e-3.
EXAMPLE = (4, "pair", 0.3, 4.64e-3)
#: Held-out settings where the engine stops at a saddle (found by a scan over K = 3..5, pair /
#: sym / asym noise, d in {-0.05, 0, 0.1}, 7 lam per decade-and-a-half; none is the example).
HELD_OUT = [
    (4, "pair", 0.3, 4.0e-3),
    (4, "pair", 0.3, 5.0e-3),
    (4, "pair", 0.3, 1e-2),
    (4, "pair", 0.1, 1e-2),
    (3, "pair", 0.3, 1e-3),
    (3, "pair", 0.3, 3.16e-3),
    (5, "pair", 0.3, 1e-2),
    (4, "sym", 0.1, 1e-2),
    (3, "sym", 0.1, 1e-3),
]
#: N J of two certified stationary points of the same minimum: both residuals are <= 1e-9, and
#: the objective is stationary there, so they differ by O(residual^2) plus the round-off of
#: summing N terms of size ~1 (N eps ~ 1e-14); 1e-9 relative leaves room for the N x N solver's
#: conditioning.
OBJECTIVE_RTOL = 1e-9
#: Output-gap resolution of the N x N student (certified to 1e-9): smaller gaps count as ties.
NXN_GAP = 1e-6


def _setup(k, kind, eta, n=10, c=0.4, d=0.1):
    return BlockModel(k, n, c, d), exact_counts(transition_matrix(kind, k, eta), n)


def _accuracy(outputs, true):
    """Fraction of columns whose true class wins by more than NXN_GAP (ties are errors)."""
    own = outputs[true, np.arange(true.size)]
    rival = outputs.copy()
    rival[true, np.arange(true.size)] = -np.inf
    return float(np.mean(own - rival.max(axis=0) > NXN_GAP))


def _nxn_student(model, counts, lam, loss):
    """The N x N student from the N x N teacher on exact block features: accuracies and N J."""
    k, n = model.n_classes, model.per_class
    given = np.concatenate([np.repeat(np.arange(k), row) for row in counts])
    true = np.repeat(np.arange(k), n)
    x = exact_block_features(k, n, model.c, model.d)
    teacher = solve_probe(np.eye(k)[:, given], lam, features=x, tol=1e-12)
    student = train_pll_student(teacher, lam, loss=loss, features=x)
    assert student.certificate.converged
    pop = student.predict(kernel_rows=model.population_kernel_rows())
    return (
        _accuracy(student.outputs, true),
        _accuracy(pop, np.arange(k)),
        student.certificate.objective * model.n_samples,
        student.certificate.stationary_point,
    )


def _assert_started_at_saddle(pred):
    # The premise: the engine's own stationary point is a saddle with a group-level direction
    # (otherwise these tests would not exercise the escape).
    start = pred.descent.start
    assert start.second_order is not None and start.second_order[0] > 0
    assert pred.descent.saddles[0] is start


# --------------------------------------------------------------------------------------------
# the reported student vs the N x N student and the gradient flow


@pytest.mark.parametrize("loss", SET_LOSSES)
def test_descended_student_vs_nxn_student_issue_example(loss):
    k, kind, eta, lam = EXAMPLE
    model, counts = _setup(k, kind, eta)
    pred = predict_pll(model, counts, lam, method="exact", loss=loss)
    _assert_started_at_saddle(pred)
    # The saddle itself reaches 100% (what the engine used to print) ...
    assert pred.descent.start.label[0] == 1.0
    # ... but the reported student is a certified strict local minimum ...
    assert pred.local_minimum and pred.descent.status == "local minimum"
    assert pred.converged[0]
    # ... which is the N x N student: same accuracies and the same objective value.
    train, pop, obj, kind_nxn = _nxn_student(model, counts, lam, loss)
    assert kind_nxn == "local minimum"
    assert (pred.train_acc[0], pred.population_acc[0]) == (train, pop)
    assert pred.descent.end.objective == pytest.approx(obj, rel=OBJECTIVE_RTOL)
    assert pred.descent.end.objective < pred.descent.start.objective


@pytest.mark.slow
@pytest.mark.parametrize("k, kind, eta, lam", HELD_OUT)
@pytest.mark.parametrize("loss", SET_LOSSES)
def test_descended_student_vs_nxn_student_held_out(k, kind, eta, lam, loss):
    model, counts = _setup(k, kind, eta)
    pred = predict_pll(model, counts, lam, method="exact", loss=loss)
    _assert_started_at_saddle(pred)
    assert pred.local_minimum
    train, pop, obj, kind_nxn = _nxn_student(model, counts, lam, loss)
    assert kind_nxn == "local minimum"
    assert pred.descent.end.objective == pytest.approx(obj, rel=OBJECTIVE_RTOL)
    assert (pred.train_acc[0], pred.population_acc[0]) == (train, pop)


def _branch_labels(pred):
    """(train, population) accuracies of the end points on both sides of every saddle left."""
    return {(e.label[0], e.label[3]) for ends in pred.descent.branches for e in ends}


MIRROR_CASES = [("pair", 0.3, 8e-3), ("sym", 0.1, 1e-2)]


@pytest.mark.slow
@pytest.mark.parametrize("kind, eta, lam", MIRROR_CASES)
def test_descended_student_vs_nxn_student_mirror_minima(kind, eta, lam):
    """Mirror minima (Proposition 15.6): at K = 5 near the threshold the saddle the engine
    stops at is ambiguous (its two sides end in different minima) and the N x N truncated
    Newton reaches a minimum of the same depth as the reported one: a mirror image."""
    model, counts = _setup(5, kind, eta)
    pred = predict_pll(model, counts, lam, method="exact", loss="candidate")
    _assert_started_at_saddle(pred)
    assert pred.descent.ambiguous
    _, _, obj, kind_nxn = _nxn_student(model, counts, lam, "candidate")
    assert kind_nxn == "local minimum"
    assert pred.descent.end.objective == pytest.approx(obj, rel=OBJECTIVE_RTOL)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="mirror minima (Proposition 15.6): which of the equally deep minima (accuracies 0.4 "
    "and 0.6 at K = 5) the N x N truncated Newton reaches, and which the group descent "
    "reports, is decided by round-off at a symmetric saddle, so it depends on the machine's "
    "BLAS (on one machine they differed in both cases, on another only under pair noise); "
    "the test above checks what the problem decides",
)
@pytest.mark.parametrize("kind, eta, lam", MIRROR_CASES)
def test_descended_student_vs_nxn_student_mirror_minima_accuracies(kind, eta, lam):
    model, counts = _setup(5, kind, eta)
    pred = predict_pll(model, counts, lam, method="exact", loss="candidate")
    train, pop, _, _ = _nxn_student(model, counts, lam, "candidate")
    assert (pred.train_acc[0], pred.population_acc[0]) == (train, pop)


@pytest.mark.slow
@pytest.mark.parametrize("k, kind, eta, lam", [EXAMPLE, *HELD_OUT[::2]])
@pytest.mark.parametrize("loss", SET_LOSSES)
def test_descended_student_vs_gradient_flow(k, kind, eta, lam, loss):
    model, counts = _setup(k, kind, eta)
    pred = predict_pll(model, counts, lam, method="exact", loss=loss)
    flow = flow_student(model, counts, lam, loss=loss).prediction
    assert flow.local_minimum and pred.local_minimum
    if pred.descent.ambiguous:
        # Mirror minima (test above): the flow, leaving the saddle by round-off, reaches one of
        # the two sides, equally deep (the objective check below).
        assert (flow.train_acc[0], flow.population_acc[0]) in _branch_labels(pred)
    else:
        assert (pred.train_acc[0], pred.population_acc[0], pred.ties[0]) == (
            flow.train_acc[0],
            flow.population_acc[0],
            flow.ties[0],
        )
    # Objective of the flow's end point: r = f(z) at a stationary point (softmax is shift
    # invariant, so the logits log p give the same force).
    prob = student_problem(model, counts, lam, loss, 0.7, None, 1e-12)
    kk, ll = prob.rows
    z = np.log(flow.outputs[0][kk, ll])
    flow_obj = group_objective(prob.coupling, prob.loss, prob.loss.force(z))
    assert pred.descent.end.objective == pytest.approx(flow_obj, rel=OBJECTIVE_RTOL)


def test_minimum_from_the_engine_is_left_unchanged_vs_engine_solution():
    # Where the engine already stops at a strict local minimum, nothing is escaped and the
    # student is the engine's solution.
    model, counts = _setup(4, "pair", 0.3)
    pred = predict_pll(model, counts, 3.16e-3, method="exact", loss="candidate")
    assert pred.descent.saddles == () and pred.descent.start is pred.descent.end
    assert pred.local_minimum and pred.train_acc[0] == 1.0


# --------------------------------------------------------------------------------------------
# the escape direction and the second-order counts


def _example_saddle(loss="candidate"):
    k, kind, eta, lam = EXAMPLE
    model, counts = _setup(k, kind, eta)
    pred = predict_pll(model, counts, lam, method="exact", loss=loss)
    prob = student_problem(model, counts, lam, loss, 0.7, None, 1e-12)
    z = pred.descent.start.z
    return prob.coupling, prob.loss, z


def test_negative_curvature_direction_vs_newton_matrix_eigenvector():
    coupling, loss, z = _example_saddle()
    hess = loss.hessian(z)
    u, mu = negative_curvature_direction(coupling, hess)
    # Independent reference: the eigenvalues of the (non-symmetric, real-spectrum) dense I + H L.
    g, k = coupling.n_groups, coupling.k
    lg = gd.dense_coupling(coupling)
    ihl = np.eye(g * k) + np.einsum("gil,gh->gihl", dense_hessians(hess), lg).reshape(g * k, -1)
    vals, vecs = np.linalg.eig(ihl)
    j = int(np.argmin(vals.real))
    assert abs(vals[j].imag) < 1e-10 and mu == pytest.approx(vals[j].real, rel=1e-9)
    ref = vecs[:, j].real
    ref /= ref[np.argmax(np.abs(ref))]
    np.testing.assert_allclose(u.ravel(), ref, atol=1e-8)
    # The objective curves down along u: central second difference = u^T S (I + H L) u.
    r = loss.force(z)
    t = 1e-4
    second = (
        group_objective(coupling, loss, r + t * u)
        - 2 * group_objective(coupling, loss, r)
        + group_objective(coupling, loss, r - t * u)
    ) / t**2
    quad = float(u.ravel() @ dense_objective_hessian(coupling, hess) @ u.ravel())
    assert quad < 0 and second == pytest.approx(quad, rel=1e-4)  # O(t^2) truncation


@pytest.mark.parametrize("loss", SET_LOSSES)
def test_negative_curvature_direction_lanczos_vs_dense(loss):
    coupling, student_loss, z = _example_saddle(loss)
    hess = student_loss.hessian(z)
    u_dense, mu_dense = negative_curvature_direction(coupling, hess)
    u_lanczos, mu_lanczos = negative_curvature_direction(coupling, hess, dense_max=0)
    # Lanczos stops at a residual 1e-8 of the matrix's size: eigenvalue to ~1e-8 relative.
    assert mu_lanczos == pytest.approx(mu_dense, rel=1e-7)
    np.testing.assert_allclose(u_lanczos, u_dense, atol=1e-6)


def test_lanczos_direction_is_deterministic():
    # ARPACK's default start vector depends on its internal random state; the escape must not.
    coupling, loss, z = _example_saddle()
    hess = loss.hessian(z)
    u1, mu1 = negative_curvature_direction(coupling, hess, dense_max=0)
    negative_curvature_direction(coupling, hess, dense_max=0)
    u2, mu2 = negative_curvature_direction(coupling, hess, dense_max=0)
    assert mu1 == mu2 and np.array_equal(u1, u2)


def test_negative_curvature_direction_none_at_a_minimum_vs_inertia():
    model, counts = _setup(4, "pair", 0.3)
    pred = predict_pll(model, counts, 3.16e-3, method="exact", loss="candidate")
    prob = student_problem(model, counts, 3.16e-3, "candidate", 0.7, None, 1e-12)
    hess = prob.loss.hessian(pred.descent.end.z)
    assert newton_inertia(prob.coupling, hess) == (0, 0)
    assert negative_curvature_direction(prob.coupling, hess) is None
    assert negative_curvature_direction(prob.coupling, hess, dense_max=0) is None


@pytest.mark.parametrize("loss", SET_LOSSES)
def test_dense_second_order_vs_newton_inertia_at_random_logits(loss):
    # Random logits of size ~3 at small lam give group-level and within-group negative
    # directions, at large lam none; the dense count must equal the structured reduction's.
    rng = np.random.default_rng(20)
    model, counts = _setup(4, "sym", 0.3, n=6)
    seen = set()
    for lam in (1e-4, 3e-3, 3e-2):
        coupling = GroupCoupling(model, counts, lam)
        top2, _ = group_top2(rng.normal(size=(4, 4, 4)), counts)
        fn = make_loss(loss, 4, candidates=top2[coupling.kk, coupling.ll], q=0.7)
        for _ in range(10):
            hess = fn.hessian(3.0 * rng.normal(size=(coupling.n_groups, 4)))
            exact = newton_inertia(coupling, hess)
            assert gd.dense_second_order(coupling, hess) == exact
            seen.add(exact)
    # The draws cover minima, group-level and within-group negative directions.
    assert (0, 0) in seen
    assert any(s[0] > 0 for s in seen) and any(s[1] > 0 for s in seen)


def test_second_order_singular_gram_vs_newton_matrix_eigenvalues():
    # K = 3, n = 10, c = 0, d = -0.05: mu_1 = 0 (a singular Gram matrix), where the structured
    # reduction is decided by round-off (it used to report 3 negative directions at a minimum).
    model = BlockModel(3, 10, 0.0, -0.05)
    counts = exact_counts(transition_matrix("sym", 3, 0.1), 10)
    assert abs(model.eigenvalues[0]) < 1e-12
    lam = 3.16e-4
    pred = predict_pll(model, counts, lam, method="exact", loss="gce")
    prob = student_problem(model, counts, lam, "gce", 0.7, None, 1e-12)
    hess = prob.loss.hessian(pred.descent.end.z)
    assert newton_inertia(prob.coupling, hess) is None  # the reduction does not apply
    g, k = prob.coupling.n_groups, prob.coupling.k
    lg = gd.dense_coupling(prob.coupling)
    ilh = np.eye(g * k) + np.einsum("gh,hil->gihl", lg, dense_hessians(hess)).reshape(g * k, -1)
    assert np.linalg.eigvals(ilh).real.min() > 0  # I + L H positive: a strict local minimum
    assert second_order(prob.coupling, hess) == (0, 0) and pred.local_minimum


# --------------------------------------------------------------------------------------------
# no minimum within the group structure: no prediction


def test_within_group_saddle_is_not_reported_as_the_student(monkeypatch, capsys):
    # No setting with only within-group negative directions was found (scan in the test module
    # docstring, and c < 0); the branch is exercised by declaring the engine's minimum such a
    # saddle: its accuracies must not be reported as the student's.
    monkeypatch.setattr(gd, "second_order", lambda *a, **kw: (0, 1))
    model, counts = _setup(4, "pair", 0.3)
    pred = predict_pll(model, counts, 3.16e-3, method="exact", loss="candidate")
    assert pred.descent.status == "saddle: descent breaks the group symmetry"
    assert not pred.local_minimum
    assert np.isnan(pred.train_acc[0]) and np.isnan(pred.population_acc[0])
    assert pred.descent.end.label[0] == 1.0  # the saddle's accuracy, kept apart
    argv = ["predict", "-K", "4", "-n", "10", "--c", "0.4", "--d", "0.1", "--lam", "3.16e-3"]
    assert predict_main([*argv, "--noise", "pair", "--eta", "0.3", "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)["pll_losses"]["candidate"]["exact"]
    assert exact["train_acc"] is None and exact["population_acc"] is None
    assert exact["saddle"]["train_acc"] == 1.0 and "not predicted" in exact["note"]
    assert predict_main([*argv, "--noise", "pair", "--eta", "0.3"]) == 0
    table = capsys.readouterr().out
    assert "s candidate: stopped at a saddle" in table and "accuracies not predicted" in table


# --------------------------------------------------------------------------------------------
# interface


def test_predict_json_and_table_report_the_minimum_and_flag_the_saddle(capsys):
    k, kind, eta, lam = EXAMPLE
    argv = ["predict", "-K", "4", "-n", "10", "--c", "0.4", "--d", "0.1", "--lam", str(lam)]
    argv += ["--noise", kind, "--eta", str(eta), "--rounds", "1"]
    assert predict_main([*argv, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    model, counts = _setup(k, kind, eta)
    for loss in SET_LOSSES:
        exact = rep["pll_losses"][loss]["exact"]
        train, pop, obj, _ = _nxn_student(model, counts, lam, loss)
        assert (exact["train_acc"], exact["population_acc"]) == (train, pop)
        assert exact["second_order"]["local_minimum"] is True
        assert exact["stationary_point"] == "local minimum"
        (saddle,) = exact["saddles"]
        assert saddle["second_order"]["local_minimum"] is False
        assert saddle["train_acc"] == 1.0 and len(saddle["sides"]) == 2
        assert min(s["objective"] for s in saddle["sides"]) == pytest.approx(obj, rel=1e-9)
    assert predict_main(argv) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("PLL candidate"))
    assert row.endswith(" s") and "0.500" in row and "1.000" not in row.split("| exact")[1]
    assert "s candidate: saddle at train/pop 1.000 1.000" in table


def test_predict_pll_bad_max_escapes():
    model, counts = _setup(4, "pair", 0.3)
    with pytest.raises(ValueError, match="max_escapes"):
        predict_pll(model, counts, 1e-3, method="exact", loss="candidate", max_escapes=-1)


def test_prediction_memory_includes_the_escape():
    model = BlockModel(10, 10, 0.5, 0.1)
    full = np.ones((10, 10), dtype=int)
    # 100 groups x 10 classes = 1000 unknowns: the dense escape (6 matrices of 1000^2 floats).
    plain = prediction_memory_bytes(model, full, 0, rank=3)
    with_escape = prediction_memory_bytes(model, full, 0, rank=3, escape=True)
    assert with_escape - plain == gd.descent_memory_bytes(10, 100) == 8 * 6 * 1000**2


#: The estimate sums the arrays alive at the worst moment; numpy frees some earlier.
MEMORY_SLACK = 3.5


@pytest.mark.parametrize("k", [10, 11, 20])  # G K = 1000 (dense), 1210 and 4000 (Lanczos)
def test_descent_memory_bytes_vs_tracemalloc_peak(k):
    model, counts = _setup(k, "sym", 0.9)
    coupling = GroupCoupling(model, counts, 1e-3)
    rng = np.random.default_rng(k)
    top2, _ = group_top2(rng.normal(size=(k, k, k)), counts)
    fn = make_loss("candidate", k, candidates=top2[coupling.kk, coupling.ll])
    hess = fn.hessian(3.0 * rng.normal(size=(coupling.n_groups, k)))
    dense = coupling.n_groups * k <= gd.DENSE_MAX_UNKNOWNS
    tracemalloc.start()
    try:
        with single_thread_blas():
            negative_curvature_direction(coupling, hess)
            if dense:
                gd.dense_second_order(coupling, hess)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = gd.descent_memory_bytes(k, coupling.n_groups)
    assert peak <= est <= MEMORY_SLACK * peak, (peak, est)
