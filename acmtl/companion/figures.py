"""The paper's tables and figures, each drawn from the tables in ``results/`` (never from a notebook's memory).

One function per figure, ``name(results) -> Figure``, reading ``results/<table>.csv`` and its provenance;
:data:`FIGURES` names them all. A notebook writes its tables, then calls :func:`save`, so the figure in
``figures/`` is exactly what the committed CSVs give, and ``tests/test_figures.py`` draws every figure from
the committed CSVs to check that no two texts overlap and no legend covers data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from acmtl.companion import plots
from acmtl.companion.analysis import LEGAL_TYPE_GLOSSES
from acmtl.companion.claims import paper_robustness
from acmtl.companion.experiments import corpus_label
from acmtl.companion.publish import output_dirs, save_figure, target_dirs
from acmtl.companion.records import read_records
from acmtl.companion.tables import PAPER_MODELS, paper_table2_for

PAPER_ARCH = {name: arch for arch, name in PAPER_MODELS.items()}
PER_CHARACTERS = 1000  # panel 9(c): mentions per this many characters


def read(results: Path, table: str) -> tuple[pd.DataFrame, dict]:
    """``results/<table>.csv`` and its provenance record."""
    record = json.loads((results / f"{table}.provenance.json").read_text(encoding="utf-8"))
    return pd.read_csv(results / f"{table}.csv"), record


def _below_legend(fig: Figure, handles, labels, ncol: int) -> None:
    """A legend centred under the whole figure: it can cover nothing."""
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol)


# -- Table 2 ---------------------------------------------------------------------------------------


def table2_performance(results: Path) -> Figure:
    """F1 by subset size per corpus: the subset's test split (the paper's protocol, its Table 2 as hollow markers
    beside MSRA only) and the full official test set (published results in a column of their own); one 0-100
    scale."""
    table, record = read(results, "table2_performance")
    anchors, _ = read(results, "table2_anchors")
    measured = table[table["status"] == "measured"]
    archs = list(dict.fromkeys(measured["arch"]))
    corpora = list(dict.fromkeys(measured["corpus"]))
    fig, axes = plots.new_figure(len(corpora), 2, width=4.6, height=3.4)
    for row, corpus in zip(axes, corpora):
        part = measured[measured["corpus"] == corpus]
        plots.f1_by_size(row[0], part, metric="test_f1", paper=paper_table2_for(corpus), archs=archs)
        plots.f1_by_size(row[1], part, metric="full_test_f1", archs=archs)
        shown = anchors[(anchors["corpus"] == corpus.partition("=")[0])
                        & anchors["system"].str.startswith(("BiLSTM-CRF", "BERT + CRF", "Boundary Smoothing"))]
        plots.published_column(row[1], shown, x=part["size"].nunique())
        names = [f"{a.system}: {a.anchor_f1_text}" for a in shown.itertuples()]
        handles = [h for h, text in zip(*row[1].get_legend_handles_labels()) if text in names]
        if handles:
            row[1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7,
                          title="published (full training set)", title_fontsize=7)
        label = corpus_label(corpus)
        row[0].set_title(f"{label}\nsubset test split", fontsize=10)
        row[1].set_title(f"{label}\nfull official test set", fontsize=10)
        for ax in row:
            ax.set_ylim(0, 101)  # one scale for every panel: no axis starts above 0
    fig.suptitle(f"Table 2 reproduced ({record['encoder']}, profile {record['profile']})")
    fig.tight_layout()
    _below_legend(fig, *plots.legend_entries(*axes[:, 0]), ncol=3)
    return fig


# -- Figure 6 --------------------------------------------------------------------------------------

BASE_SIZE_COLORS = {"acmtl_bert_base": "acmtl", "encoder_crf_bert_base": "encoder_crf", "xlnet_crf_base": "xlnet_crf"}
PRECISION_MARKERS = ("o", "s", "^")  # speed per precision: a shape, not a colour (colour is the model)
PRECISION_PLACES = {1: ("",), 2: ("lower", "upper"), 3: ("lowest", "middle", "highest")}  # within a model's row
LABEL_WIDTH = 32  # characters per line of a model's tick label: a long one would run into the panel beside it


def figure6_speed_params(results: Path) -> Figure:
    """(a) parameters of every model, (b) characters per second of those measured here, both in the same order
    (by parameter count): each precision a point at the median of the timed passes, a bar across their range,
    set apart within the model's row; the paper's numbers hollow, on the rows of the same model at the paper's
    size."""
    table, record = read(results, "figure6_speed_params")
    precisions = record["extra"]["bench"]["protocol"]["precisions"]
    colour = lambda names: [plots.color(BASE_SIZE_COLORS.get(n, n)) for n in names]
    tick_labels = lambda rows: [plots.wrapped(text, LABEL_WIDTH) for text in rows["label"]]
    order = table.sort_values("params_total", kind="stable").reset_index(drop=True)
    fig, axes = plots.new_figure(1, 2, width=5.4, height=max(3.8, 0.5 * len(order)))  # room for two-line labels
    ax_params, ax_speed = axes[0]
    names = list(order["model"])
    ax_params.barh(range(len(order)), order["params_millions"], color=colour(names),
                   hatch=["//" if "base" in n else "" for n in names], edgecolor="white", alpha=0.55)
    for i, (name, value) in enumerate(zip(names, order["paper_params_millions"])):
        if pd.notna(value):
            plots.paper_marker(ax_params, value, i, BASE_SIZE_COLORS.get(name, name))
    ax_params.set_yticks(range(len(order)), tick_labels(order), fontsize=7.5)
    ax_params.set_xlabel("parameters (millions)")
    ax_params.set_title("(a) parameters (hatched: BERT-base size)")

    # points, not bars: speeds span two decades, so the axis is logarithmic and a bar's length would mean nothing
    speed = order[order["measured_on"] == "this machine"].reset_index(drop=True)  # (a)'s order
    shifts = plots.side_by_side(len(precisions), 0.36 / max(len(precisions) - 1, 1))
    for p, shift, marker in zip(precisions, shifts, PRECISION_MARKERS):
        rows = np.arange(len(speed)) + shift
        ax_speed.hlines(rows, speed[f"min_tokens_per_s_{p}"], speed[f"max_tokens_per_s_{p}"],
                        colors=colour(speed["model"]), linewidth=1.5, zorder=2)
        ax_speed.scatter(speed[f"tokens_per_s_{p}"], rows, marker=marker, c=colour(speed["model"]), s=36, zorder=3)
    for i, (name, value) in enumerate(zip(speed["model"], speed["paper_tokens_per_s"])):
        if pd.notna(value):
            plots.paper_marker(ax_speed, value, i, BASE_SIZE_COLORS.get(name, name))
    ax_speed.set_xscale("log")
    ax_speed.set_yticks(range(len(speed)), tick_labels(speed), fontsize=7.5)
    device = "GPU" if record["device"].get("gpu") else "CPU"
    paper_device = ", ".join(table["paper_device"].dropna().unique())
    ax_speed.set_xlabel(f"characters tagged per second (log scale)\nthis machine's {device}; the paper: {paper_device}")
    ax_speed.set_title("(b) inference speed")
    fig.suptitle(f"Figure 6 measured: {table['device'].dropna().iloc[0]}", fontsize=9)
    fig.tight_layout()
    # the precisions in grey: the model colours belong to the models
    places = PRECISION_PLACES[len(precisions)]
    shapes = [mpl.lines.Line2D([], [], marker=m, linestyle="none", color="0.35",
                               label=f"measured, {p}" + (f" ({place} in each row)" if place else ""))
              for p, m, place in zip(precisions, PRECISION_MARKERS, places)]
    passes = int(speed["timed_passes"].iloc[0])
    spread = mpl.lines.Line2D([], [], color="0.35", linewidth=1.5,
                              label=f"point: median of {passes} timed passes; line: their range")
    handles, labels = plots.legend_entries(ax_params, ax_speed)
    _below_legend(fig, [*shapes, spread, *handles], [*(h.get_label() for h in (*shapes, spread)), *labels], ncol=3)
    return fig


# -- Table 3 ---------------------------------------------------------------------------------------

SEED_ROW_OFFSET = 0.3  # Table 3: the seeds' ticks just under their mean, where no error bar hides them


def table3_ablation(results: Path) -> Figure:
    """F1 of each ablation variant as a dot plot: every seed (a tick) and their mean ± std, on the subset's test
    split and the full official test set, beside the paper's Table 3. Each panel is zoomed to its values over one
    common span of F1 points, so the 1-4-point differences the table is about are as long in every panel."""
    table, record = read(results, "table3_ablation")
    runs = pd.DataFrame(record["extra"]["runs"])
    order = list(table["arch"])
    rows = np.arange(len(order))[::-1]  # the table's first variant on top
    fig, axes = plots.new_figure(1, 3, width=3.3, height=0.5 + 0.42 * len(order), sharey=True)
    panels = [(axes[0][0], "test_f1", f"(a) subset test split\n({int(table['size'].iloc[0])}-sentence subset)"),
              (axes[0][1], "full_test_f1", "(b) full official test set\n(the same models)")]
    for ax, metric, title in panels:
        for row, arch, mean, std in zip(rows, order, table[f"{metric}_mean"], table[f"{metric}_std"]):
            seeds = 100 * runs.loc[runs["arch"] == arch, metric]
            ax.errorbar(100 * mean, row, xerr=100 * std, fmt="o", capsize=0, color=plots.color(arch), zorder=3)
            ax.plot(seeds, np.full(len(seeds), row - SEED_ROW_OFFSET), "|", color=plots.color(arch), markersize=9)
        ax.set_title(title)
    paper = axes[0][2]
    for row, arch, value in zip(rows, order, table["paper_f1"]):
        if pd.notna(value):
            plots.paper_marker(paper, value, row, arch)
    paper.set_title("(c) the paper's Table 3\n(its full training set)")
    plots.common_span(axes[0], pad=1.0)
    for ax in axes[0]:
        ax.set_xlabel("entity F1 (%)")
    axes[0][0].set_yticks(rows, [plots.label(a) for a in order])
    axes[0][0].set_ylim(rows.min() - 0.6, rows.max() + 0.5)
    seeds = ", ".join(map(str, record["seeds"]))
    fig.suptitle(f"Table 3 reproduced: {corpus_label(table['corpus'].iloc[0])} ({record['encoder']}, profile "
                 f"{record['profile']}, seeds {seeds})", fontsize=10)
    fig.tight_layout()
    # in grey: the rows name the models
    ours = [mpl.lines.Line2D([], [], marker="o", color="0.35", label="ours: mean ± std over seeds"),
            mpl.lines.Line2D([], [], marker="|", linestyle="none", markersize=9, color="0.35", label="ours: one seed")]
    handles, labels = plots.legend_entries(paper)
    _below_legend(fig, [*ours, *handles], [*(h.get_label() for h in ours), *labels], ncol=3)
    return fig


# -- Figure 7 --------------------------------------------------------------------------------------

TOKEN_GLOSSES = {"北京": "Beijing", "创新": "innovation"}  # the paper's English words, beside the characters
BAND_ABOVE = 2.0  # Figure 7: paper values above twice our highest score get a band of their own


def figure7_attention(results: Path) -> Figure:
    """Attention received by 北京 (a) and 创新 (b) per sentence and model, beside the uniform baseline. A panel whose
    paper values all lie above ``BAND_ABOVE`` times our highest gets them in a band of their own, over a cut in the
    axis, so that they do not squash our bars."""
    scores, record = read(results, "figure7_attention_scores")
    archs = list(dict.fromkeys(scores["arch"]))
    fig, grid = plots.new_figure(2, 2, width=5.0, height=2.1, gridspec_kw={"height_ratios": [1, 3]})
    for (panel, part), (band, ax) in zip(scores.groupby("panel", sort=True), grid.T):
        letters = list(dict.fromkeys(part["sentence"]))
        x = np.arange(len(letters))
        ours = max(part["attention_score"].max(), part["uniform_score"].max())
        stated = part["paper_attention_score"].dropna()
        if stated.empty or stated.min() <= BAND_ABOVE * ours:  # one axis: the paper's values fit our scale
            ax.set_subplotspec(band.get_subplotspec().get_gridspec()[:, list(grid[0]).index(band)])
            band.remove()
            band = ax
        width = 0.8 / len(archs)
        for arch, offset in zip(archs, plots.side_by_side(len(archs), width)):
            mine = part[part["arch"] == arch].set_index("sentence").loc[letters]
            ax.bar(x + offset, mine["attention_score"], width, label=plots.label(arch), color=plots.color(arch),
                   zorder=2)
            paper = mine["paper_attention_score"].dropna()
            if len(paper):
                plots.paper_marker(band, x[[letters.index(s) for s in paper.index]] + offset, paper, arch)
        uniform = part.drop_duplicates("sentence").set_index("sentence").loc[letters, "uniform_score"]
        ax.hlines(uniform, x - 0.45, x + 0.45, colors="black", linestyles="dotted", label="uniform attention",
                  zorder=3)
        ax.set_xticks(x, letters)  # each panel on its own scale: (b)'s longer sentences get lower scores
        if band is not ax:
            plots.cut_axis(band, ax, top=1.15 * ours)
        for bars in ax.containers:  # once the scale is final
            plots.small_bar_values(ax, bars)  # above the uniform line
        token = part["token"].iloc[0]
        gloss = f" ({TOKEN_GLOSSES[token]})" if token in TOKEN_GLOSSES else ""
        band.set_title(f"{panel}: attention received by {token}{gloss}")
        ax.set(xlabel="sentence", ylabel="attention received\n(mean over heads and queries)")
    fig.suptitle(f"Attention scores, {record['profile']} profile", fontsize=10)
    fig.tight_layout()
    _below_legend(fig, *plots.legend_entries(*fig.axes), ncol=3)
    return fig


# -- Figure 8 --------------------------------------------------------------------------------------


SELECTED_SIZE = 5  # Figure 8: the selected epoch's dot, small enough for two side by side an epoch apart


def _curves(ax, part: pd.DataFrame, paper: pd.DataFrame) -> None:
    """Test F1 per epoch, one curve per model (its dev curve, which picks the epoch, is in the table), the selected
    epoch filled (models that selected the same epoch side by side, a whole epoch apart: the dots must not touch);
    the paper's final F1s at "paper", no epoch tick close enough to overlap it."""
    for arch, run in part.groupby("arch", sort=False):
        ax.plot(run["epoch"], 100 * run["test_f1"], "-", color=plots.color(arch), label=plots.label(arch))
    for _, same in part[part["selected"]].groupby("epoch"):  # models that selected one epoch: side by side
        for best, shift in zip(same.itertuples(), plots.side_by_side(len(same), 1.0)):
            ax.plot(best.epoch + shift, 100 * best.test_f1, "o", color=plots.color(best.arch), mec="black",
                    markersize=SELECTED_SIZE)
    last = int(part["epoch"].max())
    step = 0.04 * (last + 1)  # side by side: the paper's F1s lie within 2-3 points of each other
    for row, shift in zip(paper.itertuples(), plots.side_by_side(len(paper), step)):
        plots.paper_marker(ax, last + 1 + shift, row.paper_final_f1, PAPER_ARCH.get(row.model, "reference"))
    every = max(1, last // 6)
    ticks = [t for t in range(1, last + 1, every) if last + 1 - t >= every]  # none too close to "paper"
    ax.set_xticks([*ticks, last + 1], [*map(str, ticks), "paper"])  # the paper's final F1s stand right of the curves
    ax.set(xlabel="epoch", ylabel="test F1 (%)", ylim=(0, 101), xlim=(0.5, last + 1 + step * (len(paper) + 1) / 2))


def figure8_robustness(results: Path) -> Figure:
    """(a) and (c): F1 per epoch on MSRA and the short-text corpus; (b): F1 of the selected models against the
    share of misspelt characters."""
    curves, record = read(results, "figure8_curves")
    noise, _ = read(results, "figure8_noise")
    paper = paper_robustness()
    corpora = list(dict.fromkeys(curves["corpus"]))
    fig, axes = plots.new_figure(1, 3, width=4.6, height=3.8)
    axes = axes[0]
    _curves(axes[0], curves[curves["corpus"] == corpora[0]], paper[paper["context"].str.startswith("8(a)")])
    axes[0].set_title(f"(a) {corpus_label(corpora[0])}, {int(curves['size'].iloc[0])}-sentence subset")
    seeds = noise.groupby("arch")["seed"].nunique().min() if "seed" in noise else 1
    for arch, part in noise.groupby("arch", sort=False):  # over seeds: the mean, and the seeds' range as a bar
        by_rate = part.groupby("rate")
        mean, low, high = (100 * by_rate["f1"].agg(how) for how in ("mean", "min", "max"))
        x = 100 * by_rate["realised_rate"].mean()
        axes[1].errorbar(x, mean, yerr=[mean - low, high - mean] if seeds > 1 else None, fmt="o-", capsize=3,
                         color=plots.color(arch))
    for row in paper[paper["context"].str.startswith("8(b)")].itertuples():  # named on the line, not in the legend
        colour = plots.color(PAPER_ARCH.get(row.model, "reference"))
        axes[1].axhline(row.paper_final_f1, color=colour, ls=":")
        axes[1].annotate(f"the paper, {row.model}: {row.paper_final_f1:.2f}\n(noise rate not stated)",
                         (1, row.paper_final_f1), xycoords=("axes fraction", "data"), xytext=(-2, -3),
                         textcoords="offset points", ha="right", va="top", fontsize=8, color=colour)
    split = record["extra"]["noise_split"]
    per_seeds = f"; mean of {seeds} seeds, bars: their range" if seeds > 1 else ""
    axes[1].set(title=f"(b) MSRA {split.replace('_', ' ')}, misspelt{per_seeds}", xlabel="characters replaced (%)",
                ylabel="entity F1 (%)", ylim=(0, 101))
    _curves(axes[2], curves[curves["corpus"] == corpora[-1]], paper[paper["context"].str.startswith("8(c)")])
    axes[2].set_title(f"(c) {corpus_label(corpora[-1])}")
    fig.suptitle(f"Robustness, {record['profile']} profile: (a), (c) test F1 per epoch, the paper's final F1 hollow at "
                 "'paper'; (b) the selected models on misspelt text", fontsize=10)
    fig.tight_layout()
    handles, labels = plots.legend_entries(*axes)
    selected = mpl.lines.Line2D([], [], marker="o", linestyle="none", color="0.4", mec="black",
                                markersize=SELECTED_SIZE, label="selected epoch (best dev F1)")
    _below_legend(fig, [*handles, selected], [*labels, selected.get_label()], ncol=3)
    return fig


def loss_weights(model: dict) -> dict[str, float]:
    """The weight of each part in an AC-MTL run's training loss, from its model settings (a run record's
    ``spec.model``): w·ner + (1 - w)/2·(boundary + type), plus λ·sharing under soft sharing (``ACMTLOutput``)."""
    w = model["main_task_weight"]
    weights = {"ner": w, "boundary": (1 - w) / 2, "type": (1 - w) / 2}
    if model["mtl"] == "soft":
        weights["sharing"] = model["soft_sharing_l2"]
    return weights


def figure8_loss_parts(results: Path) -> Figure:
    """The training loss of Figure 8's AC-MTL run (first corpus, first seed) per epoch, with its parts and the
    weights that add them up to the total, read from the run's record (``ACMTL.forward``'s output, kept in
    curve.json)."""
    curves, record = read(results, "figure8_curves")
    run = curves[(curves["arch"] == "acmtl") & (curves["corpus"] == curves["corpus"].iloc[0])]
    run = run[run["seed"] == run["seed"].min()]
    corpus, seed = run["corpus"].iloc[0], int(run["seed"].iloc[0])
    # the records beside the tables, or where the profile keeps them (an exercise run writes its tables elsewhere)
    folders = [Path(f).name for f in record["extra"]["runs"]]
    specs = [r["spec"] for home in (results, output_dirs(record["profile"])[0])
             for r in read_records(home, folders).values()]
    spec = next((s for s in specs if (s["arch"], s["corpus"], s["seed"]) == ("acmtl", corpus, seed)), None)
    fig, axes = plots.new_figure(1, 1, width=6.0, height=3.8)
    ax = axes[0][0]
    columns = [c for c in run.columns if c == "loss" or c.startswith("loss_")]
    rows = run[["epoch", *columns]].dropna(axis=1, how="all").to_dict("records")
    if "loss" in rows[0]:
        parts = [c.removeprefix("loss_") for c in columns if c != "loss" and c in rows[0]]
        plots.loss_parts(ax, rows, loss_weights(spec["model"]) if spec else dict.fromkeys(parts))
        ax.legend(fontsize=8)
    else:  # a table written before training recorded its loss
        ax.text(0.5, 0.5, "no loss recorded in this run's curve", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"AC-MTL training loss and its parts\n{corpus_label(corpus)}, {int(run['size'].iloc[0])}-sentence "
                 f"subset, seed {seed} ({record['profile']} profile)")
    fig.tight_layout()
    return fig


# -- Figure 9 --------------------------------------------------------------------------------------


def _type_labels(types: list[str]) -> list[str]:
    """Entity type names as the corpus writes them, in Chinese, with their English glosses."""
    return [f"{t} ({LEGAL_TYPE_GLOSSES[t]})" if t in LEGAL_TYPE_GLOSSES else t for t in types]


def figure9_legal_theme_river(results: Path) -> Figure:
    """Theme rivers of legal entity types, stacked from zero so the height is the number of mentions: (a) predicted
    and (b) gold on the held-out test part, (c) predicted on the unlabelled case texts, per 1,000 characters (a long
    text would otherwise be a spike)."""
    from acmtl.companion.analysis import smooth_counts

    streams, record = read(results, "figure9_test_streams")
    cases, _ = read(results, "figure9_case_stream")
    window, case_window = record["extra"]["window"], record["extra"]["case_window"]
    types = [c.removeprefix("true_") for c in streams.columns if c.startswith("true_")]
    predicted = streams[[f"predicted_{t}" for t in types]].set_axis(types, axis=1)
    true = streams[[f"true_{t}" for t in types]].set_axis(types, axis=1)
    rate = cases[types].div(cases["characters"], axis=0) * PER_CHARACTERS
    smoothed = [smooth_counts(predicted, window), smooth_counts(true, window), smooth_counts(rate, case_window)]
    labels = _type_labels(types)
    colors = mpl.colormaps["tab10"].colors  # one colour per entity type, the same in every panel
    fig, axes = plots.new_figure(3, 1, width=12, height=3.2)
    axes = axes[:, 0]
    titles = (f"(a) AC-MTL's predictions, legal test part ({len(streams)} documents)",
              "(b) gold annotation, same documents",
              f"(c) AC-MTL's predictions, {len(cases)} unlabelled LawBench case texts (no gold)")
    ylabels = (f"mentions per document\n(moving avg. of {window})", f"mentions per document\n(moving avg. of {window})",
               f"mentions per {PER_CHARACTERS:,} characters\n(moving avg. of {case_window})")
    for ax, stream, title, ylabel in zip(axes, smoothed, titles, ylabels):
        # baseline "zero", not a centred "wiggle": a centred stream puts negative counts on the axis
        ax.stackplot(stream.index, stream.T.to_numpy(), labels=labels, colors=colors, baseline="zero")
        ax.set(title=title, ylabel=ylabel, xlim=(stream.index.min(), stream.index.max()), ylim=(0, None),
               xlabel="document (in corpus order)")
    top = max(s.sum(axis=1).max() for s in smoothed[:2])
    for ax in axes[:2]:
        ax.set_ylim(0, 1.05 * top)  # the same scale for (a) and (b)
    handles, names = axes[0].get_legend_handles_labels()
    axes[0].legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                   title="entity type\n(top band first)")  # listed in the order the bands are stacked
    fig.suptitle(f"Theme rivers of legal entity types, {record['profile']} profile (streams stacked from zero)",
                 fontsize=10)
    fig.tight_layout()
    return fig


# -- Figure 10 -------------------------------------------------------------------------------------


TYPE_ERROR_COLORS = {"type confusion": "#CC6677", "boundary+type": "#DDAA33"}  # the categories with a type change


def figure10_error_analysis(results: Path) -> Figure:
    """Errors per category and the type changes (gold→predicted) among them, most frequent first; each type change
    split by the category it falls in (coloured as in the left panel), its counts written."""
    counts, record = read(results, "figure10_error_categories")
    pairs, _ = read(results, "figure10_error_type_pairs")
    extra = record["extra"]
    counts = counts.sort_values("errors", ascending=False, kind="stable")
    fig, axes = plots.new_figure(1, 2, width=6.0, height=4.2, gridspec_kw={"width_ratios": [3, 2]})
    left, right = axes[0]
    left.barh(counts["category"], counts["errors"], color=[TYPE_ERROR_COLORS.get(c, "C0") for c in counts["category"]])
    for y, (n, s) in enumerate(zip(counts["errors"], counts["sentences"])):
        left.annotate(f" {n} ({s} sentences)", (n, y), va="center", fontsize=8)
    left.invert_yaxis()  # the most frequent on top
    left.set_xlim(0, 1.45 * max(1, counts["errors"].max()))  # room for the labels
    left.set(xlabel="errors", title="Error categories")
    by_pair = pairs.pivot_table(index="type_pair", columns="category", values="errors", aggfunc="sum", fill_value=0)
    by_pair = by_pair.reindex(columns=list(TYPE_ERROR_COLORS), fill_value=0)
    by_pair = by_pair.loc[by_pair.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    start = np.zeros(len(by_pair))
    for category, colour in TYPE_ERROR_COLORS.items():
        right.barh(by_pair.index, by_pair[category], left=start, color=colour, label=category)
        start += by_pair[category].to_numpy()
    for y, (total, row) in enumerate(zip(start, by_pair.itertuples(index=False))):
        parts = [str(n) for n in row if n]
        right.annotate(f" {' + '.join(parts)} = {total:.0f}" if len(parts) > 1 else f" {total:.0f}", (total, y),
                       va="center", fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1.45 * max(1, start.max(initial=0)))  # a smoke run may have no type change at all
    right.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    right.set(xlabel="errors", title="Type changes (gold→predicted)")
    split = {"full_test": "official test set", "test": "subset test split"}.get(extra["split"], extra["split"])
    fig.suptitle(f"{plots.label(extra['arch'])} on the MSRA {split}: errors in {extra['misclassified']} "
                 f"misclassified sentences ({record['profile']} profile)", fontsize=10)
    fig.tight_layout()
    fig.legend(*plots.legend_entries(right), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               title="colour: the category of the error (left), the part of each type change in it (right)")
    return fig


# -- Tuning (notebook 08): one figure pair per study, from its trial table -------------------------------------

TRIAL_STATES = {"PRUNED": ("v", "0.45", "pruned (stopped early: no corpus-dev F1)"),
                "FAIL": ("x", "#CC3311", "failed (not in the budget); → the trial that ran its settings again")}


def _reruns(table: pd.DataFrame) -> dict[int, int]:
    """Each failed trial that a later trial ran again (its worker was lost; the storage retries its settings once):
    the failed trial's number -> the later one's."""
    settings = table.filter(like="params_").astype(str).agg("|".join, axis=1)
    reruns = {}
    for number in table.loc[table["state"] == "FAIL", "number"]:
        later = table.loc[(settings == settings[table["number"] == number].iloc[0]) & (table["number"] > number),
                          "number"]
        if len(later):
            reruns[int(number)] = int(later.min())
    return reruns


def tuning_history(table: pd.DataFrame, arch: str) -> Figure:
    """Corpus-dev F1 of each complete trial and the best so far, at the trial numbers of ``table``
    (``results/tuning_<study>.csv``); pruned and failed trials, which have no corpus-dev F1, in a strip below, each
    failed one pointing to the trial that ran its settings again. The title counts them: a study's budget counts
    its finished (complete or pruned) trials, so a failed trial adds a number beyond it."""
    table = table.sort_values("number").reset_index(drop=True)
    complete = table[table["state"] == "COMPLETE"]
    pruned, failed = (int((table["state"] == state).sum()) for state in TRIAL_STATES)
    reruns = _reruns(table)
    fig, axes = plots.new_figure(2, 1, width=6.0, height=1.9, sharex=True, gridspec_kw={"height_ratios": [5, 1]})
    ax, strip = axes[:, 0]
    ax.plot(complete["number"], 100 * complete["value"], "o", color=plots.color(arch), label="complete: corpus-dev F1")
    best = list(100 * complete["value"].cummax())
    ax.step([*complete["number"], table["number"].max()], [*best, best[-1]], where="post", color="0.4",
            label="best so far")  # on to the last trial
    for state, (marker, colour, text) in TRIAL_STATES.items():
        numbers = table.loc[table["state"] == state, "number"]
        if len(numbers):
            strip.plot(numbers, [0] * len(numbers), marker, color=colour, label=text)
    for number, again in reruns.items():
        strip.annotate(f"→{again}", (number, 0), xytext=(0, 5), textcoords="offset points", ha="center",
                       va="bottom", fontsize=7, color=TRIAL_STATES["FAIL"][1])  # above its ×: clear of the next
    strip.set(yticks=[], ylim=(-1, 2))
    strip.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    strip.set_xlabel("trial number (as in the study's table)")
    counts = f"{len(table)} trials: {len(complete) + pruned} finished ({len(complete)} complete, {pruned} pruned)"
    if failed:
        again = "each" if len(reruns) == failed else f"{len(reruns)} of them"
        counts += f" and {failed} failed, {again} run again later"
    ax.set(ylabel="corpus-dev F1 (%)", title=f"{plots.label(arch)}: corpus-dev F1 per trial\n{counts}")
    fig.tight_layout()
    _below_legend(fig, *plots.legend_entries(ax, strip), ncol=2)
    return fig


def tuning_importances(table: pd.DataFrame, arch: str) -> Figure:
    """fANOVA importance of each tuned setting for corpus-dev F1 over the complete trials of ``table``, the
    evaluator seeded so the same table always gives the same bars; the title states n, the complete trials they
    rest on (pruned trials have no corpus-dev F1), and calls fewer than two per setting a rough ranking."""
    import optuna

    from acmtl.companion import tune

    complete = int((table["state"] == "COMPLETE").sum())
    if table.loc[table["state"] == "COMPLETE", "value"].nunique() < 2:  # fANOVA has no variance to explain
        fig, axes = plots.new_figure(1, 1, width=6.0, height=1.2)
        ax = axes[0][0]
        ax.axis("off")
        ax.set_title(f"{plots.label(arch)}: parameter importances from n = {complete} complete trials")
        ax.text(0.5, 0.4, "every complete trial scored the same: no importance to attribute", ha="center",
                va="center", fontsize=9, transform=ax.transAxes)
        return fig
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=tune.SEED)
    importances = optuna.importance.get_param_importances(tune.study_from_table(table, arch), evaluator=evaluator)
    names, values = list(importances)[::-1], list(importances.values())[::-1]  # the most important on top
    fig, axes = plots.new_figure(1, 1, width=6.0, height=0.6 + 0.32 * len(names))
    ax = axes[0][0]
    bars = ax.barh(names, values, color=plots.color(arch))
    ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    ax.set_xlim(0, 1.15 * max(values))  # room for the values
    title = f"{plots.label(arch)}: parameter importances from n = {complete} complete trials"
    if complete < 2 * len(names):
        title += f"\n(fewer than two per setting for {len(names)} settings: a rough ranking)"
    ax.set(xlabel="importance for corpus-dev F1 (fANOVA; the values sum to 1)", title=title)
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable[[Path], Figure]] = {f.__name__: f for f in (
    table2_performance, figure6_speed_params, table3_ablation, figure7_attention, figure8_robustness,
    figure8_loss_parts, figure9_legal_theme_river, figure10_error_analysis)}


def save(name: str, profile: str) -> Figure:
    """Draw figure ``name`` from the tables this run wrote (:func:`acmtl.companion.publish.target_dirs`) and save it
    there as PNG and SVG; returns the figure (a notebook shows it)."""
    results, _ = target_dirs(profile)
    fig = FIGURES[name](results)
    save_figure(fig, name, profile)
    return fig
