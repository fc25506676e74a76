"""The report's figures: who gets a line, a point and a legend entry (drawn with matplotlib's
Agg backend and read back from the figure, not from pixels)."""

from __future__ import annotations

from harness.evaluation.plots import Curves, curves_figure, plane_figure


def test_the_curves_draw_one_bicubic_line_for_runs_on_the_same_images():
    """A model file in the report (no validation, no bicubic line) does not split the runs'
    shared bicubic line into one per run; runs validated on different images get one each."""
    history = {"val/psnr_y": [(0, 30.0), (100, 29.0)], "val/lpips": [(0, 0.2), (100, 0.15)]}
    runs = [
        Curves("base.keras", {}),
        Curves("ft-a", history, 28.4314),
        Curves("ft-b", history, 28.4314),
    ]
    fig = curves_figure(runs)
    import matplotlib.pyplot as plt  # loaded (with the Agg backend) by curves_figure

    labels = fig.axes[0].get_legend_handles_labels()[1]
    plt.close(fig)
    assert labels == ["ft-a", "bicubic", "ft-b"]
    fig = curves_figure([*runs[1:], Curves("ft-c", history, 26.1)])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    lpips_labels = fig.axes[1].get_legend_handles_labels()[1]
    plt.close(fig)
    assert labels.count("bicubic (ft-a)") == labels.count("bicubic (ft-c)") == 1
    assert lpips_labels == ["ft-a", "ft-b", "ft-c"]


def test_the_plane_has_one_legend_below_its_panels_with_each_entry_once():
    """Three sets drawn with the same rows and published points: one figure legend (no panel
    legend hides a point), each row, bicubic and the published marker once."""
    rows = {"bicubic": (26.0, 0.44), "base": (28.0, 0.31), "ft": (27.6, 0.24)}
    tables = {
        s: {row: {"psnr_y": x + i, "lpips": y} for row, (x, y) in rows.items()}
        for i, s in enumerate(("set5", "set14", "bsd100"))
    }
    references = {
        "SRGAN": {"set14": {"psnr_y": 26.17, "lpips": 0.1663}, "bsd100": {"psnr_y": 25.46}},
        "ESRGAN": {"set14": {"psnr_y": 26.28, "lpips": 0.1329}},
    }
    fig = plane_figure(tables, references)
    import matplotlib.pyplot as plt  # loaded (with the Agg backend) by plane_figure

    try:
        assert all(ax.get_legend() is None for ax in fig.axes)
        (legend,) = fig.legends
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels == ["bicubic", "base", "ft", "published (authors' protocols)"]
        # every panel draws its rows; a published point without LPIPS is a vertical line
        set14, bsd100 = fig.axes[1], fig.axes[2]
        assert len(set14.collections) == 3 + 2  # rows + SRGAN and ESRGAN
        assert len(bsd100.collections) == 3 and len(bsd100.lines) == 1
    finally:
        plt.close(fig)
