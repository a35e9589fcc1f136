"""Every figure, drawn from the committed results/ by the functions the notebooks call, reads cleanly:
no two texts overlap and no legend covers data. The checks themselves are tested on planted faults."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from acmtl import figures

RESULTS = Path(__file__).resolve().parents[1] / "results"
SLACK = 1.0  # pixels two boxes may share (antialiasing), at the figure's own dpi


def _texts(fig) -> list[Text]:
    """Every visible, non-empty text the figure draws: titles, labels, tick labels, annotations, legends."""
    hidden = set()  # tick labels outside an axis' view: matplotlib does not draw them
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted((lo, hi))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    hidden.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of texts whose drawn boxes overlap."""
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1, 1).padded(-SLACK)) for t in _texts(fig)]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if box_a.width > 0 and box_b.width > 0 and box_a.overlaps(box_b)]


def _data_points(ax) -> np.ndarray:
    """Display coordinates of the data an axes draws as points: line points (and points along each segment),
    scatter offsets, error bars."""
    pts = []
    for line in ax.get_lines():
        xy = line.get_xydata()
        if len(xy):
            dense = [xy[i] + f * (xy[i + 1] - xy[i]) for i in range(len(xy) - 1) for f in np.linspace(0, 1, 9)]
            pts.append(line.get_transform().transform(np.asarray(dense or xy, dtype=float)))
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            pts.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float)))
        elif isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                pts.append(coll.get_transform().transform(np.asarray(seg, dtype=float)))
    pts = [p[np.isfinite(p).all(axis=1)] for p in pts]
    return np.concatenate(pts) if pts else np.empty((0, 2))


def legends_covering_data(fig) -> list[str]:
    """Legends (of an axes or of the figure) whose frame contains a data point of any axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    covered = []
    for legend in legends:
        box: Bbox = legend.get_window_extent(renderer)
        for ax in fig.axes:
            pts = _data_points(ax)
            inside = (box.x0 < pts[:, 0]) & (pts[:, 0] < box.x1) & (box.y0 < pts[:, 1]) & (pts[:, 1] < box.y1)
            bars = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, Rectangle)]  # bars, bands
            if inside.any() or any(bar.width and bar.height and bar.overlaps(box) for bar in bars):
                covered.append(f"legend '{legend.get_title().get_text() or legend.texts[0].get_text()}' covers data "
                               f"of '{ax.get_title()}'")
    return covered


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_figure_reads_cleanly(name):
    try:
        fig = figures.FIGURES[name](RESULTS)
    except KeyError as missing:  # a committed table older than the figure's code: regenerate it
        pytest.skip(f"results/ lacks {missing} for {name}: rerun its notebook (./run_all.sh) to regenerate")
    try:
        assert text_overlaps(fig) == [], f"{name}: overlapping texts"
        assert legends_covering_data(fig) == [], f"{name}: a legend covers data"
    finally:
        plt.close(fig)


def test_the_checks_catch_planted_faults():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="data")
    ax.set_title("a title")
    assert text_overlaps(fig) == [] and legends_covering_data(fig) == []
    ax.text(0.5, 1.02, "a text over the title", transform=ax.transAxes, ha="center")
    ax.title.set_position((0.5, 1.0))
    assert text_overlaps(fig), "a text drawn across the title"
    ax.legend(loc="center")  # the diagonal runs through the middle
    assert legends_covering_data(fig), "a legend across the line"
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([0, 1, 2], [1, 1, 1], label="bars")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))  # outside the axes: fine
    assert legends_covering_data(fig) == []
    ax.get_legend().set_bbox_to_anchor((0.3, 0.6), transform=ax.transAxes)  # now across the bars
    assert legends_covering_data(fig)
    plt.close(fig)


def test_every_figure_is_drawn_by_the_package_from_results():
    """The notebooks save figures only through acmtl.figures.save, so the figures in figures/ are the ones checked."""
    import json

    committed = {p.stem for p in (RESULTS.parent / "figures").glob("*.png") if not p.stem.startswith("tuning_")}
    assert committed <= set(figures.FIGURES), committed - set(figures.FIGURES)
    for notebook in sorted((RESULTS.parent / "notebooks").glob("0[1-7]_*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                       if c["cell_type"] == "code")
        assert "save_figure(" not in code and "figures.save(" in code, notebook.name
