"""The README's Table 2 summary, findings and claims verdicts, rendered from ``results/``, never typed by hand.

``python -m acmtl report`` writes ``results/claims_verdict.csv`` (:mod:`acmtl.companion.verdicts`), rewrites the
blocks between their markers in README.md and writes the claims page, ``docs/claims.md`` beside the README (every
claim judged; the README shows the count per verdict and links to it); ``--check`` only says whether they match
``results/`` (a test runs it, so neither can drift from what ``./run_all.sh`` wrote). Three kinds of number stand
side by side, each labelled: what the paper claims (``acmtl.companion.claims``), what we measured, and published
results on the full corpora.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from acmtl.companion import fresh_clone, verdicts
from acmtl.companion.claims import ANCHOR_FOR, ANCHOR_SHORT, published_anchors, table2_applies_to
from acmtl.companion.verdicts import render_claims, write_claims_verdict
from acmtl.core.evaluate import is_missing
from acmtl.data.fetch import atomic_write_bytes

BEGIN = "<!-- table2-summary:begin (written by `python -m acmtl report` from results/; do not edit) -->"
END = "<!-- table2-summary:end -->"
CLAIMS_BEGIN = ("<!-- claims-verdict:begin (written by `python -m acmtl report` from results/claims_verdict.csv; "
                "do not edit) -->")
CLAIMS_END = "<!-- claims-verdict:end -->"
GLANCE_BEGIN = "<!-- findings:begin (written by `python -m acmtl report` from results/; do not edit) -->"
GLANCE_END = "<!-- findings:end -->"
LAB_BEGIN = ("<!-- lab:begin (written by `python -m acmtl report` from results/lab_fresh_clone.json; "
             "do not edit) -->")
LAB_END = "<!-- lab:end -->"
CLAIMS_PAGE = Path("docs") / "claims.md"  # beside the README
CLAIMS_INTRO = """\
# Every claim of the paper, judged

*Written by `python -m acmtl report` (run by `./run_all.sh`) from `results/claims_verdict.csv`; do not edit: a test
fails when this page and `results/` disagree.* [Back to the README](../README.md).

One row per claim: the paper's number or words (from `acmtl/companion/claims.py`, the one place they live), ours
(from `results/*.csv` and their provenance), the published anchor where one exists, the verdict and the rule that
decided it. Our models use a 4-layer encoder on a CPU, not bert-base-chinese on a V100: a value "not reproduced"
says what this setup gives. The rules, as `acmtl/companion/verdicts.py` states and applies them:
"""
TABLE2 = "table2_performance.csv"
HEAD_TO_HEAD = "table2_head_to_head.csv"


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
            ours, full = "not run: no Chinese XLNet weights on PyPI (docs/data.md)", "–"
        else:
            ours, full = f"{r.test_f1} ({int(r.seeds)})", _cell(r.full_test_f1)
        # The paper's Table 2 names no corpus (section 4.1 points to MSRA): its numbers go beside MSRA only.
        paper = _cell(r.paper_f1) if table2_applies_to(corpus) else "–"
        anchor = anchors.get((ANCHOR_FOR.get(r.arch, ""), corpus))
        anchor = f"{anchor} ({ANCHOR_SHORT[r.arch]})" if anchor is not None else "–"
        lines.append(f"| {r.corpus_label} | {int(r.size)} | {r.model} | {paper} | {ours} | {full} | {anchor} |")
    heads = results_dir / HEAD_TO_HEAD
    if heads.is_file():  # the verdict per size: notebook 01, acmtl.companion.comparison
        from acmtl.companion.comparison import verdict_sentence  # imports torch: only when there is a verdict to show

        lines += ["", "**AC-MTL against encoder+CRF on the same encoder, subsets and seeds** (paired, full official "
                  "test set; a 95 % interval over seeds and test sentences decides beats / ties / loses):", ""]
        lines += [f"* {verdict_sentence(row)}" for row in pd.read_csv(heads).itertuples()]
    return "\n".join(lines)


def render_block(results_dir: Path) -> str:
    """The README block, markers included; a note when Table 2 has not been generated yet."""
    if (results_dir / TABLE2).exists():
        body = table2_summary(results_dir)
    else:
        body = "*Not generated yet: `./run_all.sh` writes `results/table2_performance.csv`, then this table.*"
    return f"{BEGIN}\n{body}\n{END}"


def records_line(results_dir: Path) -> str:
    """How many run records (``results/runs/``) carry this code's digest, and how many tables were computed from
    records of this code alone (their provenance's ``records``): computed, never typed."""
    import json
    from collections import Counter

    from acmtl.companion.records import records_dir
    from acmtl.companion.runs import code_digest

    current = code_digest()
    digests = Counter(json.loads(f.read_text(encoding="utf-8"))["code_sha256"]
                      for f in records_dir(results_dir).glob("*.json"))
    tables = [json.loads(f.read_text(encoding="utf-8")).get("records") for f in results_dir.glob("*.provenance.json")]
    from_records = [t for t in tables if t and t["runs"]]
    at_code = sum(t["code_sha256"] == [current] for t in from_records)
    return (f"Run records: {digests[current]} of {sum(digests.values())} in `results/runs/` at this code "
            f"(run-defining code {current[:12]}); {at_code} of {len(from_records)} tables computed from run records "
            f"use only records of this code.")


def render_glance(results_dir: Path) -> str:
    """Markdown: one finding each for Table 3 and Figures 6-10, and how long each notebook took and its peak memory
    (:mod:`acmtl.companion.findings`, from the tables and their provenance)."""
    from acmtl.companion.findings import at_a_glance, resources_line, training_line
    from acmtl.companion.publish import duration, timings

    try:
        glance = at_a_glance(results_dir)
    except FileNotFoundError:  # a table a first line reads
        return "*Not generated yet: `./run_all.sh` writes the tables in `results/`, then these lines.*"
    times = timings(results_dir).fillna({"peak_memory": "not recorded"})
    rows = [f"| `{r.notebook}` | {r.wall} | {r.peak_memory} | {r.profile}, {r.date}, {r.machine} |"
            for r in times.itertuples()]
    peak = times["peak_memory_mib"].max()
    return "\n".join([glance, "", records_line(results_dir), "", training_line(results_dir), "",
                      "| notebook | wall time of its last run | peak memory (kernel and its workers) | profile, day, "
                      "machine |", "|---|---:|---:|---|", *rows,
                      f"| all | {duration(times['wall_seconds'].sum())} | {peak / 1024:.1f} GiB (largest) | |", "",
                      resources_line(results_dir)])


def _replace_block(text: str, begin: str, end: str, block: str, what: str, readme: Path) -> str:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"{readme}: no {what} block; add the two lines\n{begin}\n{end}")
    return text[:start] + block + text[stop + len(end):]


def verdict_rules() -> str:
    """The rule table of :mod:`acmtl.companion.verdicts`' docstring, as it stands: the page cannot drift from it."""
    lines = verdicts.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("====")]
    return "\n".join(["```text", *lines[rules[0]:rules[-1] + 1], "```"])


def claims_page(results_dir: Path) -> str:
    """The claims page: how a verdict is reached, the count per verdict and one row per claim."""
    return f"{CLAIMS_INTRO}\n{verdict_rules()}\n\n{render_claims(results_dir)}\n"


def claims_counts(results_dir: Path) -> str:
    """The README's claims block: the count per verdict (the first line of the page's table) and the link."""
    counts, link = render_claims(results_dir).partition("\n")[0], CLAIMS_PAGE.as_posix()
    return f"{counts}. Each claim, with the paper's value, ours and the rule that judged it: [{link}]({link})."


def update_readme(readme: Path, results_dir: Path, *, check: bool = False) -> bool:
    """Write ``results_dir/claims_verdict.csv``, rewrite the README blocks and write the claims page beside the
    README (unless ``check``); True when all of them already matched ``results_dir``."""
    claims_current = write_claims_verdict(results_dir, check=check)
    text = readme.read_text(encoding="utf-8")
    new = _replace_block(text, BEGIN, END, render_block(results_dir), "Table 2", readme)
    claims_block = f"{CLAIMS_BEGIN}\n{claims_counts(results_dir)}\n{CLAIMS_END}"
    new = _replace_block(new, CLAIMS_BEGIN, CLAIMS_END, claims_block, "claims verdict", readme)
    glance = f"{GLANCE_BEGIN}\n{render_glance(results_dir)}\n{GLANCE_END}"
    new = _replace_block(new, GLANCE_BEGIN, GLANCE_END, glance, "findings", readme)
    new = _replace_block(new, LAB_BEGIN, LAB_END, f"{LAB_BEGIN}\n{fresh_clone.line(results_dir)}\n{LAB_END}", "lab",
                         readme)
    page = readme.parent / CLAIMS_PAGE
    page_text = claims_page(results_dir)
    page_current = page.is_file() and page.read_text(encoding="utf-8") == page_text
    if not check:
        if new != text:
            atomic_write_bytes(readme, new.encode("utf-8"))
        if not page_current:
            page.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(page, page_text.encode("utf-8"))
    return claims_current and new == text and page_current
