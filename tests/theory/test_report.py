"""theory.report.predict_report: one Spec in, every accuracy from theory.spec.predict, each
exact problem solved once (issue 23, item 2). The command line's tests (JSON contract, table,
refusals) are in tests/selfdistill_cli/test_predict*.py."""

from __future__ import annotations

import pytest

import theory.groups as groups
import theory.pll as pll
from theory.report import predict_report
from theory.spec import Spec

COUNTS = ((4, 1, 0), (1, 3, 1), (0, 0, 5))
SPEC = Spec(n_classes=3, per_class=5, c=0.5, d=0.1, lam=1e-2, rounds=2, counts=COUNTS)


@pytest.mark.parametrize("spec", [Spec(method="pll-ce"), {"n_classes": 3}, None])
def test_predict_report_takes_an_sd_spec(spec):
    with pytest.raises(ValueError, match="method='sd'"):
        predict_report(spec)


def test_predict_report_solves_each_exact_problem_once(monkeypatch):
    """One exact SD solve of rounds 0..R; the three exact PLL students start from its round 0
    (no second teacher solve); one linear student per loss."""
    exact_calls, pll_calls = [], []
    real_exact, real_pll = groups.predict_exact, pll.predict_pll

    def count_exact(*args, **kwargs):
        exact_calls.append(args[3])  # rounds
        return real_exact(*args, **kwargs)

    def count_pll(*args, **kwargs):
        pll_calls.append((kwargs["method"], kwargs["loss"], kwargs.get("teacher")))
        return real_pll(*args, **kwargs)

    monkeypatch.setattr(groups, "predict_exact", count_exact)
    monkeypatch.setattr(pll, "predict_pll", count_pll)
    rep = predict_report(SPEC)
    assert exact_calls == [SPEC.rounds]
    exact = [teacher for method, _, teacher in pll_calls if method == "exact"]
    assert len(exact) == 3 and exact[0] is not None and all(t is exact[0] for t in exact)
    assert sorted(loss for method, loss, _ in pll_calls if method == "linear") == sorted(
        rep["pll_losses"]
    )
    assert rep["spec"] == SPEC.to_dict()
