import numpy as np
import pytest

from figures import finite_phase as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs


def test_finite_phase_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path)]) == 0
    assert_outputs(tmp_path, fig.NAME)


def test_finite_phase_check_fails_on_wrong_theory(monkeypatch):
    import dataclasses

    real = fig.predict_finite

    def wrong(*args, **kwargs):
        out = real(*args, **kwargs)
        return dataclasses.replace(out, population_acc=np.zeros_like(out.population_acc))

    monkeypatch.setattr(fig, "predict_finite", wrong)
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        fig.compute("tiny", 0)
