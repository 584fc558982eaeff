"""The shared palette: one meaning per colour, ramps ordered by lightness, the paper rules."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from figures import palette, style


def _lightness(color):
    r, g, b = matplotlib.colors.to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_role_colours_are_distinct():
    roles = [palette.TEACHER, palette.PLL, palette.CLEAN, palette.MISLABELED, *palette.EIGEN[1:]]
    roles += list(palette.OUTCOME_COLORS)
    assert len(set(roles)) == len(roles)
    sd = [palette.sd_color(t, 5) for t in range(1, 6)]
    assert not set(sd) & set(roles)


@pytest.mark.parametrize("ramp", [palette.sd_color, palette.dim_color, palette.eta_color])
def test_ramps_darken_monotonically(ramp):
    if ramp is palette.sd_color:
        colors = [ramp(t, 6) for t in range(1, 7)]
    else:
        colors = [ramp(i, 6) for i in range(6)]
    light = [_lightness(c) for c in colors]
    assert all(a > b for a, b in zip(light, light[1:], strict=False))
    assert light[0] < 0.85  # the lightest end stays visible on white


def test_teacher_and_models():
    assert palette.sd_color(0, 4) == palette.TEACHER == palette.model_color("teacher")
    assert palette.model_color("pll") == palette.PLL
    assert palette.model_marker("sd", 0) == palette.MARKERS["teacher"]
    with pytest.raises(ValueError, match="kind"):
        palette.model_color("student")


def test_check_paper_rules_flags_small_fonts_wide_figures_and_fractional_rounds():
    fig, ax = plt.subplots(figsize=(9, 2))
    ax.plot([0, 2.5], [0, 1])
    ax.set_xlabel("round $t$")
    ax.set_xticks([0, 0.5, 1.0])
    ax.set_title("tiny", fontsize=6)
    problems = " ".join(style.check_paper_rules(fig))
    assert "wide" in problems and "6.0 pt" in problems and "non-integer" in problems
    plt.close(fig)
    fig, axes = style.figure(3, 1)
    axes[0].plot([0, 3], [0, 1])
    axes[0].set_xlabel("round $t$")
    style.integer_ticks(axes[0])
    assert style.check_paper_rules(fig) == []
    plt.close(fig)


def test_paper_preset_is_300_dpi():
    assert style.preset_dpi("paper") == 300
    assert style.preset_dpi("quick") < 300


def test_reference_line_is_labelled_on_the_axes():
    fig, ax = plt.subplots()
    style.reference_line(ax, 0.25, "1/K")
    style.reference_line(ax, 2.0, "p = N", axis="x")
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["1/K", "p = N"]
    assert np.isclose(ax.lines[0].get_ydata()[0], 0.25)
    plt.close(fig)


def test_preset_save_formats():
    """Quick writes a PNG preview only; the paper preset (and tiny, which exercises every
    writer) add the PDF."""
    assert style.preset_save("quick") == {"dpi": style.DEFAULT_DPI, "pdf": False}
    assert style.preset_save("paper") == {"dpi": 300, "pdf": True}
    assert style.preset_save("tiny")["pdf"] is True


def test_save_figure_png_only_and_pdf_keeps_png_layout(tmp_path):
    fig, ax = plt.subplots(layout="constrained")
    ax.plot([0, 1], [0, 1])
    assert style.save_figure(fig, tmp_path / "a", "f", pdf=False) == [tmp_path / "a" / "f.png"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.png"]
    fig, ax = plt.subplots(layout="constrained")
    ax.plot([0, 1], [0, 1])
    paths = style.save_figure(fig, tmp_path / "b", "f")
    assert [p.name for p in paths] == ["f.png", "f.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
