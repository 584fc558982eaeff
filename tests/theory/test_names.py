"""The registry of names (theory.names) is complete, consistent and the only copy."""

import re
from pathlib import Path

import numpy as np
import pytest

from theory import names
from theory.groups import BlockModel, predict_linear
from theory.losses import make_loss
from theory.noise import transition_matrix

ROOT = Path(__file__).resolve().parents[2]


def test_method_loss_maps_are_inverse_and_cover_every_loss():
    assert set(names.METHOD_LOSS.values()) == set(names.LOSSES)
    assert {names.method_of(loss) for loss in names.LOSSES} == set(names.PLL_METHODS)
    for method in names.PLL_METHODS:
        assert names.method_of(names.loss_of(method)) == method
    assert names.METHODS == ("sd", *names.PLL_METHODS)
    assert set(names.THEORY_LOSSES) < set(names.LOSSES)


def test_every_name_has_a_label():
    assert set(names.LOSS_LABELS) == set(names.LOSSES)
    assert set(names.METHOD_LABELS) == set(names.METHODS)
    assert set(names.NOISE_LABELS) == set(names.NOISE_KINDS)
    assert set(names.METRICS) <= set(names.METRIC_LABELS)
    assert set(names.SUPERCLASS_RULE_LABELS) == set(names.SUPERCLASS_RULES)
    assert set(names.PREPROCESSING_LABELS) == set(names.PREPROCESSING)
    labels = list(names.METHOD_LABELS.values())
    assert len(set(labels)) == len(labels)  # two methods never share a label


def test_old_method_spellings_map_to_the_registry():
    assert names.canonical_method("pll_gce_ref") == "pll-gce-ref"
    assert names.check_method("pll_ce") == "pll-ce"
    assert names.check_method("sd") == "sd"
    with pytest.raises(ValueError, match="method must be one of"):
        names.check_method("pll-foo")


def test_theory_losses_and_noise_kinds_are_accepted_by_the_theory():
    for loss in names.THEORY_LOSSES:
        kwargs = {"target_deviation": np.zeros((2, 3))} if loss == "ce" else {}
        make_loss(loss, 3, candidates=np.array([[0, 1], [1, 2]]), **kwargs)
    for kind in names.NOISE_KINDS:
        groups = [[0, 1], [2]] if kind == "superclass" else None
        assert transition_matrix(kind, 3, 0.2, groups=groups).shape == (3, 3)


def test_theory_fields_exist_on_predictions():
    pred = predict_linear(BlockModel(3, 4, 0.5, 0.1), np.diag([4, 4, 4]), 1e-2, 1)
    for field in names.THEORY_FIELDS.values():
        assert np.asarray(getattr(pred, field)).shape == (2,)


def test_simulation_rows_carry_every_metric():
    from simulations.pipelines import TrialConfig, run_trial

    row = run_trial(TrialConfig(n_classes=3, per_class=4, dim=24, rounds=0), 0).rows[0]
    assert set(names.METRICS) <= set(row)


#: Literal tuples that used to be copied across modules (issue 23): only theory/names.py spells
#: them out now.
_COPIES = [
    r'\(\s*"ce",\s*"candidate",\s*"gce"',
    r'"pll-ce":\s*"ce"',
    r'"ce":\s*"pll_ce"',
    r'"pop_acc":\s*"population_acc"',
    r"DEFAULT_Q\s*=\s*0\.7",
    r'\(\s*"sym",\s*"pair",\s*"asym",\s*"superclass"\s*\)',
]


@pytest.mark.parametrize("pattern", _COPIES)
def test_no_second_copy_of_a_registry_name(pattern):
    found = []
    for folder in ("theory", "simulations", "figures", "selfdistill_cli", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "names.py" and path.parent.name == "theory":
                continue
            if re.search(pattern, path.read_text(encoding="utf-8")):
                found.append(str(path.relative_to(ROOT)))
    assert not found, f"{pattern!r} is defined outside theory/names.py in {found}"
