"""The README's Table 2 summary, rendered from ``results/table2_performance.csv``, never typed by hand.

``python -m acmtl report`` rewrites the block between the two markers in README.md; ``--check``
only says whether the block matches ``results/`` (a test runs it, so the README cannot drift from
what ``./run_all.sh`` wrote). Three kinds of number stand side by side, each labelled: what the
paper claims (``acmtl.claims``), what we measured, and published results on the full corpora.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from acmtl.claims import published_anchors, table2_applies_to
from acmtl.data.fetch import atomic_write_bytes
from acmtl.evaluate import is_missing

BEGIN = "<!-- table2-summary:begin (written by `python -m acmtl report` from results/; do not edit) -->"
END = "<!-- table2-summary:end -->"
TABLE2 = "table2_performance.csv"

# Which published system each of our rows is read against (acmtl.claims.PUBLISHED_ANCHORS).
ANCHOR_FOR = {
    "bilstm_crf": "BiLSTM-CRF, char (Lattice LSTM paper baselines)",
    "encoder_crf": "BERT + CRF (re-runs)",
    "acmtl": "Boundary Smoothing (RoBERTa-large)",  # the best published result on each corpus
}
ANCHOR_SHORT = {"bilstm_crf": "BiLSTM-CRF", "encoder_crf": "BERT-CRF", "acmtl": "best published"}


def _cell(value) -> str:
    return "–" if is_missing(value) else str(value)


def table2_summary(results_dir: Path) -> str:
    """Markdown: one row per corpus, size and model, from ``results_dir/table2_performance.csv``."""
    df = pd.read_csv(results_dir / TABLE2)
    anchors = published_anchors().set_index(["system", "corpus"])["anchor_f1_text"]
    lines = [
        "| corpus | training sentences | model | paper F1 (its Table 2) | ours: subset test F1, mean ± std "
        "(seeds) | ours: full official test F1 | published F1, full training set |",
        "|---|---:|---|---:|---|---|---|",
    ]
    for r in df.itertuples():
        corpus = r.corpus.partition("=")[0]
        if r.status != "measured":
            ours, full = "not run: no Chinese XLNet weights on PyPI (see below)", "–"
        else:
            ours, full = f"{r.test_f1} ({int(r.seeds)})", _cell(r.full_test_f1)
        # The paper's Table 2 names no corpus (section 4.1 points to MSRA): its numbers go beside MSRA only.
        paper = _cell(r.paper_f1) if table2_applies_to(corpus) else "–"
        anchor = anchors.get((ANCHOR_FOR.get(r.arch, ""), corpus))
        anchor = f"{anchor} ({ANCHOR_SHORT[r.arch]})" if anchor is not None else "–"
        lines.append(f"| {r.corpus_label} | {int(r.size)} | {r.model} | {paper} | {ours} | {full} | {anchor} |")
    return "\n".join(lines)


def render_block(results_dir: Path) -> str:
    """The README block, markers included; a note when Table 2 has not been generated yet."""
    if (results_dir / TABLE2).exists():
        body = table2_summary(results_dir)
    else:
        body = "*Not generated yet: `./run_all.sh` writes `results/table2_performance.csv`, then this table.*"
    return f"{BEGIN}\n{body}\n{END}"


def update_readme(readme: Path, results_dir: Path, *, check: bool = False) -> bool:
    """Rewrite the block in ``readme`` (unless ``check``); True when it already matched ``results_dir``."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no Table 2 block; add the two lines\n{BEGIN}\n{END}")
    new = text[:start] + render_block(results_dir) + text[end + len(END):]
    if new != text and not check:
        atomic_write_bytes(readme, new.encode("utf-8"))
    return new == text
