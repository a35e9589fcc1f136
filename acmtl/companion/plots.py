"""Every figure in one style: colours per model, hollow markers for the paper's numbers, no timestamps.

Measured values are filled markers or bars; numbers the paper reports are hollow markers of the
same colour, each model's named in the legend, and published anchors are grey points and intervals,
so no figure can pass a claim off as ours.

Chinese is set in Noto Sans CJK SC from the pinned ``noto-cjk-sans-otc`` package (:func:`cjk_font`),
registered from the package's own file, so 北京 looks the same on every machine and never turns into boxes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from acmtl.companion.tables import ARCH_LABELS, PAPER_MODELS

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale by marker.
COLORS = {
    "acmtl": "#D55E00",
    "acmtl_soft": "#CC79A7",
    "encoder_crf": "#0072B2",
    "xlnet_crf": "#009E73",
    "bilstm_crf": "#999933",
    "bert_cnn": "#56B4E9",
    "bert_mhsa": "#E69F00",
    "bert_mhsa_cnn": "#009E73",
    "reference": "#555555",
}
MARKERS = {"acmtl": "o", "acmtl_soft": "P", "encoder_crf": "s", "xlnet_crf": "D", "bilstm_crf": "^",
           "bert_cnn": "v", "bert_mhsa": "<", "bert_mhsa_cnn": ">"}
CJK_FONT = "Noto Sans CJK SC"  # the Simplified Chinese face of the pinned package's collection
ANCHOR_MARKERS = ("P", "X", "*", "h")  # published anchors: grey, in shapes no model uses

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "0.9",
    "grid.linewidth": 0.8,
    "errorbar.capsize": 3,
    "lines.markersize": 6,
    "svg.hashsalt": "acmtl",  # stable element ids: the same figure gives the same SVG
    "svg.fonttype": "path",
}


@lru_cache(maxsize=1)
def cjk_font() -> str:
    """The family Chinese text is set in, registered with matplotlib from the file of the pinned
    ``noto-cjk-sans-otc`` package (never a system path: the figures must not depend on the machine)."""
    from noto_cjk_sans_otc import FONT_PATH

    mpl.font_manager.fontManager.addfont(str(FONT_PATH))
    return CJK_FONT


def apply_style() -> None:
    """Set acmtl's matplotlib style for everything drawn afterwards: Latin text in DejaVu Sans as before,
    Chinese characters (which it lacks) falling back to the CJK face."""
    mpl.rcParams.update(STYLE)
    mpl.rcParams["font.family"] = ["DejaVu Sans", cjk_font()]


def color(name: str) -> str:
    return COLORS.get(name, "#333333")


def label(name: str) -> str:
    return ARCH_LABELS.get(name, name)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.2, height: float = 3.2, **kwargs):
    """A figure in acmtl's style, ``width`` x ``height`` inches per panel; axes always a 2-D array."""
    apply_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)


def paper_marker(ax, x, y, name: str, *, label_text: str | None = None, **kwargs) -> None:
    """The paper's number: a hollow (white-filled, so it shows on a bar of its colour) marker in the model's colour
    and shape, named in the legend "the paper: <the paper's name for the model>" unless ``label_text`` says else."""
    ax.scatter(x, y, s=64, facecolors="white", edgecolors=color(name), linewidths=2.0,
               marker=MARKERS.get(name, "o"), label=label_text or f"the paper: {PAPER_MODELS.get(name, label(name))}",
               zorder=4, **kwargs)


def side_by_side(n: int, step: float) -> np.ndarray:
    """x offsets that set ``n`` items ``step`` apart, centred on 0 (one item: no offset)."""
    return step * (np.arange(n) - (n - 1) / 2)


def published_column(ax, anchors: pd.DataFrame, x: float, tick: str = "published") -> None:
    """Published results (rows with ``system``, ``anchor_f1_low``/``_high``, ``anchor_f1_text``) side by side in a
    column of their own at ``x``: a range as a grey interval, a value as a grey point, each in the legend. Side by
    side rather than bands across the panel: results 1-3 points apart would stack on one another and hide."""
    offsets = side_by_side(len(anchors), 0.6 / max(len(anchors) - 1, 1))
    for a, dx, marker in zip(anchors.itertuples(), offsets, ANCHOR_MARKERS):
        half = (a.anchor_f1_high - a.anchor_f1_low) / 2
        ax.errorbar(x + dx, a.anchor_f1_low + half, yerr=half or None, fmt=marker, color=COLORS["reference"],
                    markersize=7, label=f"{a.system}: {a.anchor_f1_text}", zorder=3)
    ticks, names = list(ax.get_xticks()), [t.get_text() for t in ax.get_xticklabels()]
    ax.set_xticks([*ticks, x], [*names, tick])
    ax.set_xlim(min(ticks) - 0.5, x + 0.5)
    ax.axvline(x - 0.5, color="0.6", linewidth=0.8)  # not a subset size: set apart


def f1_by_size(ax, summary: pd.DataFrame, *, metric: str = "test_f1", paper: pd.DataFrame | None = None,
               archs: Sequence[str] | None = None) -> None:
    """Mean ± std F1 (percent) against subset size, one line per architecture.

    ``summary``: :func:`acmtl.companion.tables.summarize` rows (``arch``, ``size``, ``{metric}_mean``/``_std``);
    ``paper``: rows with ``arch``, ``sample_size``, ``paper_f1`` (percent), drawn hollow where not NaN.
    """
    sizes = sorted(summary["size"].unique())
    position = {s: i for i, s in enumerate(sizes)}
    archs = list(archs or dict.fromkeys(summary["arch"]))
    offsets = side_by_side(len(archs), 0.4 / max(len(archs) - 1, 1))  # apart: two models may score alike
    for arch, offset in zip(archs, offsets):
        rows = summary[summary["arch"] == arch].sort_values("size")
        if rows.empty:
            continue
        x = [position[s] + offset for s in rows["size"]]
        ax.errorbar(x, 100 * rows[f"{metric}_mean"], yerr=100 * rows[f"{metric}_std"], color=color(arch),
                    marker=MARKERS.get(arch, "o"), label=label(arch), zorder=3)
        if paper is not None:
            # NaN: no claim for this corpus (acmtl.companion.tables.paper_table2_for), so no marker
            claims = paper[(paper["arch"] == arch) & paper["sample_size"].isin(position) & paper["paper_f1"].notna()]
            if not claims.empty:
                paper_marker(ax, [position[s] + offset for s in claims["sample_size"]], claims["paper_f1"], arch)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_xlabel("subset size (sentences)")
    ax.set_ylabel("entity F1 (%)")


def common_span(axes, pad: float, ceiling: float = 100.0) -> None:
    """Set each axes' x range around its own data, all of one width (the widest data's plus ``pad`` on each side), so
    a difference is as long in every panel wherever its values lie; no range passes ``ceiling`` (F1 in percent)."""
    span = max(ax.dataLim.width for ax in axes) + 2 * pad
    for ax in axes:
        high = min(ax.dataLim.x0 + (ax.dataLim.width + span) / 2, ceiling + pad)
        ax.set_xlim(high - span, high)


def cut_axis(band, ax, *, top: float, mark: float = 0.02) -> None:
    """Show ``band`` (the upper part of a panel, for values far above the rest, on a scale of its own) over ``ax``
    (from 0 to ``top``) as one y axis with a cut: the shared x range, and a diagonal stroke on the axis at each side
    of the cut."""
    ax.set_ylim(0, top)
    low, high = band.dataLim.intervaly
    pad = 0.3 * max(high - low, 0.1 * high)
    low, high = low - pad, high + pad
    band.set_ylim(low, high)
    # no tick label in the tenth of either part next to the cut, where the strokes are
    ticks = mpl.ticker.MaxNLocator(nbins=4).tick_values(low, high)  # a short axis: matplotlib's own give one or two
    band.set_yticks([t for t in ticks if low + 0.1 * (high - low) <= t <= high])
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 0.9 * top])
    band.set_xlim(ax.get_xlim())
    band.spines["bottom"].set_visible(False)
    band.tick_params(axis="x", bottom=False, labelbottom=False)
    for part, y in ((band, 0.0), (ax, 1.0)):
        aspect = mark * ax.get_position().height / part.get_position().height  # strokes of one slope
        part.plot([-mark, mark], [y - aspect, y + aspect], color="black", linewidth=1, clip_on=False,
                  transform=part.transAxes)


def small_bar_values(ax, bars, fraction: float = 0.03, fmt: str = "{:.2g}") -> None:
    """Write the value over each bar shorter than ``fraction`` of the axis' top, so a measured value near zero
    does not read as a missing bar. A horizontal reference line drawn across the bar before this call (``ax.hlines``)
    is stepped over: the label starts above it, so the line never runs through the label."""
    top = ax.get_ylim()[1]
    rules = [segment for lines in ax.collections if isinstance(lines, LineCollection)
             for segment in lines.get_segments() if len(segment) == 2 and segment[0][1] == segment[1][1]]
    for bar in bars:
        height, left, right = bar.get_height(), bar.get_x(), bar.get_x() + bar.get_width()
        if height >= fraction * top:
            continue
        across = [y for (x0, y), (x1, _) in rules if min(x0, x1) < right and max(x0, x1) > left]
        ax.annotate(fmt.format(height), ((left + right) / 2, max([height, *across])), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", rotation=90, fontsize=6.5)


def wrapped(text: str, width: int = 11) -> str:
    """``text`` on lines of about ``width`` characters, broken after a space or a '+' (for tick labels that would
    otherwise run into each other)."""
    lines = [""]
    for token in re.split(r"(?<=[ +])", text):
        if lines[-1] and len(lines[-1]) + len(token.rstrip()) > width:
            lines.append("")
        lines[-1] += token
    return "\n".join(line.strip() for line in lines)


def legend_entries(*axes) -> tuple[list, list[str]]:
    """The legend entries of every axes given, each label once (for ``fig.legend``): every series drawn, the
    paper's hollow markers included, comes with its own entry."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    ordered = sorted(entries.items(), key=lambda entry: entry[0].startswith("the paper"))  # ours first
    return [handle for _, handle in ordered], [text for text, _ in ordered]


LOSS_PARTS = {"ner": ("NER (CRF)", "#D55E00"), "boundary": ("boundary", "#0072B2"), "type": ("type", "#009E73"),
              "sharing": ("soft-sharing L2", "#CC79A7")}


def loss_parts(ax, curve: Sequence[dict], weights: dict[str, float | None]) -> None:
    """A run's training loss per epoch (``curve.json`` rows): one line per part that ``weights`` names (without the
    ``loss_`` prefix), unweighted, and the total they add up to with those weights, dashed, the weighting in its
    label. Log scale: the soft-sharing penalty is orders of magnitude above the task losses."""
    epochs = [row["epoch"] for row in curve]
    terms = []
    for part, weight in weights.items():
        name, colour = LOSS_PARTS.get(part, (part, None))
        ax.plot(epochs, [row[f"loss_{part}"] for row in curve], color=colour, marker="o", markersize=3, label=name)
        terms.append(name if weight is None else f"{weight:.3g}·{name}")
    weighting = " + ".join(terms) if None not in weights.values() else f"weighted sum of {', '.join(terms)} (no record)"
    ax.plot(epochs, [row["loss"] for row in curve], color="black", linestyle="--", label=f"total = {weighting}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over batches)")
