"""Every figure in one style: colours per model, hollow markers for the paper's numbers, no timestamps.

Measured values are filled markers or bars; numbers the paper reports are hollow markers of the
same colour, and published anchors are grey bands or dotted lines, so no figure can pass a claim off as ours.

Chinese glyphs need a CJK font, which many machines (this one included) lack. :func:`cjk_font`
finds one if installed; without one :func:`char_labels` turns characters into pinyin
(``北京`` -> ``bei3 jing1``), so figures stay readable instead of showing empty boxes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from acmtl.experiments import ARCH_LABELS

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
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "AR PL UMing CN", "Droid Sans Fallback")

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
def cjk_font() -> str | None:
    """The name of an installed font with Chinese glyphs, or None."""
    installed = {f.name for f in mpl.font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def apply_style() -> None:
    """Set acmtl's matplotlib style for everything drawn afterwards (adds a CJK font when one exists)."""
    mpl.rcParams.update(STYLE)
    font = cjk_font()
    if font:
        mpl.rcParams["font.sans-serif"] = [font, *mpl.rcParams["font.sans-serif"]]


def char_labels(chars: Sequence[str]) -> list[str]:
    """Tick labels for characters: the characters with a CJK font, else their pinyin (others unchanged)."""
    if cjk_font():
        return list(chars)
    from acmtl.data.pinyin import pinyin_strings

    return [p or c for c, p in zip(chars, pinyin_strings(chars))]


def color(name: str) -> str:
    return COLORS.get(name, "#333333")


def label(name: str) -> str:
    return ARCH_LABELS.get(name, name)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.2, height: float = 3.2, **kwargs):
    """A figure in acmtl's style, ``width`` x ``height`` inches per panel; axes always a 2-D array."""
    apply_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)


def paper_marker(ax, x, y, name: str, *, label_text: str | None = None, **kwargs) -> None:
    """The paper's number: a hollow (white-filled, so it shows on a bar of its colour) marker in the model's colour."""
    ax.scatter(x, y, s=64, facecolors="white", edgecolors=color(name), linewidths=2.0,
               marker=MARKERS.get(name, "o"), label=label_text, zorder=4, **kwargs)


def anchor_band(ax, low: float, high: float, text: str, *, shade: float = 0.85) -> None:
    """A published result as a grey horizontal band (a range) or a dotted line (a value), named in the legend."""
    if high > low:
        ax.axhspan(low, high, color=str(shade), zorder=0, label=text)
    else:
        ax.axhline(low, color=str(min(shade, 0.6)), linewidth=1.2, linestyle=":", zorder=0, label=text)


def f1_by_size(ax, summary: pd.DataFrame, *, metric: str = "test_f1", paper: pd.DataFrame | None = None,
               archs: Sequence[str] | None = None) -> None:
    """Mean ± std F1 (percent) against subset size, one line per architecture.

    ``summary``: :func:`acmtl.experiments.summarize` rows (``arch``, ``size``, ``{metric}_mean``/``_std``);
    ``paper``: rows with ``arch``, ``sample_size``, ``paper_f1`` (percent), drawn hollow where not NaN.
    """
    sizes = sorted(summary["size"].unique())
    position = {s: i for i, s in enumerate(sizes)}
    archs = list(archs or dict.fromkeys(summary["arch"]))
    offsets = np.linspace(-0.12, 0.12, len(archs)) if len(archs) > 1 else [0.0]
    for arch, offset in zip(archs, offsets):
        rows = summary[summary["arch"] == arch].sort_values("size")
        if rows.empty:
            continue
        x = [position[s] + offset for s in rows["size"]]
        ax.errorbar(x, 100 * rows[f"{metric}_mean"], yerr=100 * rows[f"{metric}_std"], color=color(arch),
                    marker=MARKERS.get(arch, "o"), label=label(arch), zorder=3)
        if paper is not None:
            # NaN: no claim for this corpus (acmtl.experiments.paper_table2_for), so no marker
            claims = paper[(paper["arch"] == arch) & paper["sample_size"].isin(position) & paper["paper_f1"].notna()]
            if not claims.empty:
                paper_marker(ax, [position[s] + offset for s in claims["sample_size"]], claims["paper_f1"], arch)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_xlabel("subset size (sentences)")
    ax.set_ylabel("entity F1 (%)")


def grouped_bars(ax, names: Sequence[str], values: Sequence[float], errors: Sequence[float] | None = None, *,
                 paper: Sequence[float] | None = None, width: float = 0.6) -> None:
    """One bar per model in its colour (± error), the paper's value as a hollow marker on the same x."""
    x = np.arange(len(names))
    ax.bar(x, values, width, yerr=errors, color=[color(n) for n in names], zorder=2)
    if paper is not None:
        for xi, name, value in zip(x, names, paper):
            if value is not None and not np.isnan(value):
                paper_marker(ax, xi, value, name)
    ax.set_xticks(x, [wrapped(label(n)) for n in names], fontsize=8)


def wrapped(text: str, width: int = 11) -> str:
    """``text`` on lines of about ``width`` characters, broken after a space or a '+' (for tick labels that would
    otherwise run into each other)."""
    lines = [""]
    for token in re.split(r"(?<=[ +])", text):
        if lines[-1] and len(lines[-1]) + len(token.rstrip()) > width:
            lines.append("")
        lines[-1] += token
    return "\n".join(line.strip() for line in lines)


def paper_handles(ax) -> tuple[list, list[str]]:
    """The axes' legend entries plus one explaining hollow markers: for ``ax.legend`` or ``fig.legend``."""
    handles, labels = ax.get_legend_handles_labels()
    hollow = mpl.lines.Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor="0.3",
                              markeredgewidth=1.4, label="hollow: the paper's number")
    return [*handles, hollow], [*labels, hollow.get_label()]


def legend_with_paper(ax, **kwargs) -> None:
    """The axes' legend plus one entry explaining hollow markers."""
    ax.legend(*paper_handles(ax), **kwargs)


LOSS_PARTS = {"ner": ("NER (CRF)", "#D55E00"), "boundary": ("boundary", "#0072B2"), "type": ("type", "#009E73"),
              "sharing": ("soft-sharing L2", "#CC79A7")}


def loss_parts(ax, curve: Sequence[dict]) -> None:
    """A run's training loss per epoch (``curve.json`` rows): one line per recorded part, unweighted,
    and the total they weight to, dashed (AC-MTL: 0.7 · NER + 0.15 · (boundary + type)). Log scale:
    the soft-sharing penalty is orders of magnitude above the task losses."""
    epochs = [row["epoch"] for row in curve]
    for key in [k for k in curve[0] if k.startswith("loss_")]:
        name, colour = LOSS_PARTS.get(key.removeprefix("loss_"), (key, None))
        ax.plot(epochs, [row[key] for row in curve], color=colour, marker="o", markersize=3, label=name)
    ax.plot(epochs, [row["loss"] for row in curve], color="black", linestyle="--", label="total (weighted)")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over batches)")
