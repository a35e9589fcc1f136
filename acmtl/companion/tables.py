"""The tables of notebooks 01-03 and 05-06 built from their runs' rows, with the paper's numbers beside ours:
labels, Table 2's and Table 3's summaries, Figure 6's speed and size table, Figure 8's comparison with the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from acmtl.companion.claims import paper_table2, table2_applies_to
from acmtl.companion.experiments import METRICS, corpus_label
from acmtl.companion.publish import describe_device

# How tables and figures name our architectures, and which row of the paper each one answers.
ARCH_LABELS = {
    "acmtl": "AC-MTL",
    "encoder_crf": "RoBERTa-CRF (m3e-small)",
    "encoder_pinyin_crf": "RoBERTa+pinyin-CRF",  # beyond the paper: isolates the pinyin features
    "bilstm_crf": "BiLSTM-CRF",
    "xlnet_crf": "XLNet-CRF",
    "bert_cnn": "BERT+CNN",
    "bert_mhsa": "BERT+MHSA",
    "bert_mhsa_cnn": "BERT+MHSA+CNN",
    "acmtl_soft": "AC-MTL, soft sharing",  # beyond the paper
}
PAPER_MODELS = {  # arch -> the model name in acmtl.companion.claims (paper_table2 / paper_table3 / paper_speed_params)
    "acmtl": "AC-MTL", "encoder_crf": "RoBERTa", "bilstm_crf": "BiLSTM", "xlnet_crf": "XLNet",
    "bert_cnn": "BERT+CNN", "bert_mhsa": "BERT+MHSA", "bert_mhsa_cnn": "BERT+MHSA+CNN",
}


PAPER_TABLE2_COLUMNS = ("paper_precision", "paper_recall", "paper_f1", "paper_note")


def paper_table2_for(corpus: str) -> pd.DataFrame:
    """The paper's Table 2 with our ``arch`` for each model, its numbers beside ``corpus``: NaN unless the paper's
    Table 2 is read against that corpus (MSRA, :func:`acmtl.companion.claims.table2_applies_to`)."""
    paper = paper_table2().rename(columns={"note": "paper_note"})
    paper.insert(0, "arch", paper["model"].map({name: arch for arch, name in PAPER_MODELS.items()}))
    if not table2_applies_to(corpus):
        paper[list(PAPER_TABLE2_COLUMNS)] = float("nan")
    return paper


def with_paper_table2(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (columns corpus, arch, size) with the paper's Table 2 row for the same model and size as
    :data:`PAPER_TABLE2_COLUMNS`, NaN on every corpus but MSRA (shown as a dash)."""
    paper = pd.concat([paper_table2_for(c).assign(corpus=c) for c in table["corpus"].unique()], ignore_index=True)
    paper = paper.rename(columns={"sample_size": "size"})[["corpus", "arch", "size", *PAPER_TABLE2_COLUMNS]]
    return table.merge(paper, on=["corpus", "arch", "size"], how="left")


def summarize(df: pd.DataFrame, by: Sequence[str] = ("corpus", "arch", "size"),
              splits: Sequence[str] = ("test", "full_test")) -> pd.DataFrame:
    """Mean, sample std and seed count per group, plus a 'mean ± std' text column per split and metric (percent)."""
    from acmtl.core.evaluate import format_mean_std, summarize_seeds

    rows = []
    for key, group in df.groupby(list(by), sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(group)
        for split in splits:
            names = [f"{split}_{m}" for m in METRICS]
            if not set(names) <= set(group.columns):
                continue
            stats = summarize_seeds(group[names].to_dict("records"), keys=names)
            for name in names:
                row[f"{name}_mean"], row[f"{name}_std"] = stats[name]["mean"], stats[name]["std"]
                std = stats[name]["std"] if len(group) > 1 else None
                row[name] = format_mean_std(stats[name]["mean"], std)
        rows.append(row)
    return pd.DataFrame(rows)


def architecture_parameters(arch: str, types: Sequence[str], encoder_config: dict | None = None, *,
                            encoder: str | None = None) -> dict[str, int]:
    """Exact parameter counts (total, encoder, added) of ``arch`` for these entity types, built on torch's meta
    device: no memory, no weights. The encoder's size comes from ``encoder_config`` (e.g.
    ``bert_base_config().to_dict()``), else from the configuration of ``encoder`` (default: the embedded one)."""
    import torch
    from transformers import AutoConfig

    from acmtl.core.checkpoint import build_model
    from acmtl.core.encoders import DEFAULT_ENCODER, resolve_encoder
    from acmtl.core.model import ModelConfig, count_parameters
    from acmtl.core.train import tag_names

    if encoder_config is None:
        encoder_config = AutoConfig.from_pretrained(resolve_encoder(encoder or DEFAULT_ENCODER)).to_dict()
    cfg = ModelConfig.for_architecture(arch, tag_names(types), encoder_config=dict(encoder_config))
    with torch.device("meta"):
        model, _ = build_model(cfg, pretrained=False)
    return count_parameters(model)


# -- the tables of notebooks 01-03 and 05, built from their runs ---------------------------------------

XLNET_NOT_RUN = ("not run: no Chinese XLNet weights on any package registry; with a local copy run "
                 "`python -m acmtl train --model encoder_crf --encoder /path/to/chinese-xlnet-base --profile paper` "
                 "on a GPU (see README)")


def table2_table(per_run: pd.DataFrame, plan: Mapping[str, Mapping[int, Sequence[int]]]) -> pd.DataFrame:
    """Table 2: :func:`summarize` of ``per_run`` per corpus, model and size, a "not run" XLNet-CRF row for every
    corpus and size of ``plan``, and the paper's row for the same model and size beside MSRA only."""
    not_run = pd.DataFrame([{"corpus": corpus, "arch": "xlnet_crf", "size": size, "seeds": 0}
                            for corpus, grid in plan.items() for size in grid])
    table = pd.concat([summarize(per_run, by=("corpus", "arch", "size")), not_run], ignore_index=True)
    table.insert(1, "corpus_label", table["corpus"].map(corpus_label))
    table.insert(3, "model", table["arch"].map(ARCH_LABELS))
    table["status"] = table["arch"].map(lambda arch: XLNET_NOT_RUN if arch == "xlnet_crf" else "measured")
    return with_paper_table2(table)


# The Figure 6 rows counted at the paper's size (BERT-base / XLNet-base), and the paper's model each one answers.
BASE_SIZE_LABELS = {"encoder_crf_bert_base": "RoBERTa-CRF, BERT-base size (count only)",
                    "xlnet_crf_base": "XLNet-CRF, XLNet-base size (count only)"}
FIGURE6_PAPER_ROW = {"acmtl_bert_base": "AC-MTL", "encoder_crf_bert_base": "RoBERTa", "xlnet_crf_base": "XLNet",
                     "bilstm_crf": "BiLSTM"}
XLNET_BASE = {"vocab_size": 32000, "d_model": 768, "n_layer": 12, "n_head": 12, "d_inner": 3072}  # ymcui/Chinese-XLNet


def base_size_parameters(types: Sequence[str]) -> dict[str, dict[str, int]]:
    """Exact parameter counts at the paper's encoder size, on the meta device: AC-MTL and encoder-CRF on
    BERT-base, and XLNet-base with encoder-CRF's head (a 768-wide encoder's CRF head is the same)."""
    import torch
    from transformers import XLNetConfig, XLNetModel

    from acmtl.core.encoders import bert_base_config

    bert_base = bert_base_config().to_dict()
    encoder_crf = architecture_parameters("encoder_crf", types, bert_base)
    with torch.device("meta"):
        xlnet = sum(p.numel() for p in XLNetModel(XLNetConfig(**XLNET_BASE)).parameters())
    return {"acmtl_bert_base": architecture_parameters("acmtl", types, bert_base),
            "encoder_crf_bert_base": encoder_crf,
            "xlnet_crf_base": {"total": xlnet + encoder_crf["added"], "encoder": xlnet, "added": encoder_crf["added"]}}


def figure6_table(bench: dict, counted: Mapping[str, Mapping[str, int]], paper: pd.DataFrame) -> pd.DataFrame:
    """One row per model: what ``bench`` (:func:`bench.run_benchmark`) measured on this machine, then the
    ``counted`` models it did not run, with the paper's parameters and speed for the same model at its size.
    ``tokens_per_s_<precision>`` is the median of the ``timed_passes``; ``min_`` / ``max_tokens_per_s_<precision>``
    their range (the slowest and the fastest pass)."""
    precisions = bench["protocol"]["precisions"]
    rows = [{"model": name, "label": r["label"], "measured_on": "this machine",
             **{f"params_{k}": v for k, v in r["params"].items()}, "gflop_per_token": r["gflop_per_token"],
             "timed_passes": bench["protocol"]["repeats"],
             **{f"{column}_{p}": value for p in precisions for column, value in
                zip(("tokens_per_s", "min_tokens_per_s", "max_tokens_per_s"),
                    (r["tokens_per_s"][p], *r["tokens_per_s_range"][p]))}}
            for name, r in bench["models"].items()]
    rows += [{"model": name, "label": BASE_SIZE_LABELS[name], "measured_on": "count only (meta device, no weights)",
              **{f"params_{k}": v for k, v in counts.items()}} for name, counts in counted.items()
             if name not in bench["models"]]
    table = pd.DataFrame(rows)
    table["params_millions"] = table["params_total"] / 1e6
    device = describe_device(bench["machine"] | {"torch_threads": bench["machine"]["threads"]})
    table["device"] = table["measured_on"].map(lambda where: device if where == "this machine" else "")
    table["paper_model"] = table["model"].map(FIGURE6_PAPER_ROW)
    paper = paper[["model", "paper_params_millions", "paper_tokens_per_s", "paper_device"]]
    return table.merge(paper.rename(columns={"model": "paper_model"}), on="paper_model", how="left")


# Table 3's steps: (component, the variant with it, the variant without it).
ABLATION_STEPS = (("pinyin features", "encoder_pinyin_crf", "encoder_crf"),
                  ("attention (MHSA) on top of CNN", "bert_mhsa_cnn", "bert_cnn"),
                  ("CNN on top of attention", "bert_mhsa_cnn", "bert_mhsa"),
                  ("multi-task learning", "acmtl", "bert_mhsa_cnn"),
                  ("soft instead of shared layers", "acmtl_soft", "acmtl"))


def ablation_steps(per_run: pd.DataFrame, paper_f1: Mapping[str, float]) -> pd.DataFrame:
    """What each component adds, paired by seed: per step of :data:`ABLATION_STEPS` whose two variants ran, the
    mean and per-seed F1 difference (points) on the subset test split and the full test set, the full test's
    seed-aware 95 % interval (:func:`acmtl.companion.stats.compare`) and what it says (``effect``: raises, lowers,
    within the noise, or too few seeds to judge), and the same difference of the paper's F1 (``paper_f1``: arch ->
    F1 in percent)."""
    from acmtl.companion.comparison import record_counts
    from acmtl.companion.stats import compare_runs

    rows = []
    for step, with_, without in ABLATION_STEPS:
        if not {with_, without} <= set(per_run["arch"]):
            continue
        row = {"component": step, "with": ARCH_LABELS[with_], "without": ARCH_LABELS[without]}
        for split in ("test", "full_test"):
            result = compare_runs(per_run, with_, without, record_counts, split=split)
            row["seeds"] = result.seeds
            row[f"{split}_f1_difference"] = round(100 * result.diff, 2)
            row[f"{split}_f1_difference_per_seed"] = " ".join(f"{100 * d:+.2f}" for d in result.per_seed)
        row["full_test_ci_low"], row["full_test_ci_high"] = round(100 * result.low, 2), round(100 * result.high, 2)
        row["effect"] = EFFECT[result.side()]
        row["paper_difference"] = round(paper_f1.get(with_, float("nan")) - paper_f1.get(without, float("nan")), 2)
        rows.append(row)
    return pd.DataFrame(rows)


# What a paired difference's interval says a component does to F1 (stats.SeedComparison.side).
EFFECT = {1: "raises F1", -1: "lowers F1", 0: "within the noise", None: "too few seeds to judge"}


def figure8_vs_paper(curve_runs: Mapping[str, pd.DataFrame], noise: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Figure 8 beside the paper: per panel and model our F1 (percent) and the paper's final F1 for the same model.

    ``curve_runs``: panel ("8(a)", "8(c)") -> :func:`train_grid` rows; ``noise``: :func:`noise_counts.noise_scores`
    rows (panel 8(b), noisy rates only, means over seeds where it has several); ``paper``:
    :func:`claims.paper_robustness`. XLNet, which we cannot run, keeps its row with the paper's number only."""
    def claim(panel: str, model: str) -> float:
        row = paper[paper["context"].str.startswith(panel) & (paper["model"] == model)]
        return row["paper_final_f1"].iloc[0] if len(row) else float("nan")

    rows = [{"panel": panel, "data": f"{corpus_label(r.corpus)}, test split of the subset", "arch": r.arch,
             "model": ARCH_LABELS[r.arch], "f1": 100 * r.test_f1, "full_test_f1": 100 * r.full_test_f1,
             "paper_model": PAPER_MODELS.get(r.arch, ""), "paper_final_f1": claim(panel, PAPER_MODELS.get(r.arch, ""))}
            for panel, runs in curve_runs.items() for r in runs.itertuples()]
    seeds = noise.groupby("arch")["seed"].nunique().min() if "seed" in noise else 1
    noisy = (noise[noise["rate"] > 0].groupby(["split", "arch", "rate"], sort=False)[["realised_rate", "f1"]].mean()
             .reset_index())  # the mean over seeds
    rows += [{"panel": "8(b)", "data": f"MSRA {r.split}, noise rate {r.rate} (realised {r.realised_rate:.3f})"
              + (f", mean of {seeds} seeds" if seeds > 1 else ""),
              "arch": r.arch, "model": ARCH_LABELS[r.arch], "f1": 100 * r.f1, "full_test_f1": float("nan"),
              "paper_model": PAPER_MODELS.get(r.arch, ""),
              "paper_final_f1": claim("8(b)", PAPER_MODELS.get(r.arch, ""))}
             for r in noisy.itertuples()]
    rows += [{"panel": r.context[:4], "data": f"{r.context} (not run: needs Chinese XLNet weights, "
              "--encoder /path/to/chinese-xlnet-base)", "arch": "", "model": "XLNet", "f1": float("nan"),
              "full_test_f1": float("nan"), "paper_model": "XLNet", "paper_final_f1": r.paper_final_f1}
             for r in paper[paper["model"] == "XLNet"].itertuples()]
    return pd.DataFrame(rows)
