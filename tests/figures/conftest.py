"""Figure tests run headless: select the Agg backend before any figure module is imported.

Every figure a test saves through :func:`figures.style.save_figure` is first checked against the
paper rules (:func:`figures.style.check_paper_rules`: printed width, fonts >= 8 pt, integer round
ticks, labelled legend entries), so each smoke test also guards the figure's layout.
"""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _paper_rules(monkeypatch):
    from figures import style

    real = style.save_figure

    def checked(fig, *args, **kwargs):
        problems = style.check_paper_rules(fig)
        assert not problems, "figure breaks the paper rules: " + "; ".join(problems)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(style, "save_figure", checked)
