"""The README's blocks and the claims page are rendered from results/ and kept in step with it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from acmtl.companion.report import (
    BEGIN,
    CLAIMS_BEGIN,
    CLAIMS_END,
    CLAIMS_PAGE,
    END,
    GLANCE_BEGIN,
    GLANCE_END,
    LAB_BEGIN,
    LAB_END,
    render_block,
    table2_summary,
    update_readme,
)
from acmtl.companion.tables import PAPER_TABLE2_COLUMNS, paper_table2_for, with_paper_table2

ROOT = Path(__file__).resolve().parents[1]


def _table2(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    rows = [
        {"corpus": "msra", "corpus_label": "MSRA", "arch": "acmtl", "model": "AC-MTL", "size": 200, "seeds": 3,
         "test_f1": "61.00 ± 2.00", "full_test_f1": "58.00 ± 1.00", "status": "measured", "paper_f1": 98.36},
        {"corpus": "resume", "corpus_label": "Resume (stand-in)", "arch": "bilstm_crf", "model": "BiLSTM-CRF",
         "size": 200, "seeds": 1, "test_f1": "40.00", "full_test_f1": "39.00", "status": "measured",
         "paper_f1": 80.0},
        {"corpus": "msra", "corpus_label": "MSRA", "arch": "xlnet_crf", "model": "XLNet-CRF", "size": 200,
         "seeds": 0, "test_f1": None, "full_test_f1": None, "status": "not run: ...", "paper_f1": 90.0},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "table2_performance.csv", index=False)
    return tmp_path


def test_summary_puts_claim_measurement_and_anchor_side_by_side(tmp_path):
    lines = table2_summary(_table2(tmp_path)).splitlines()
    assert len(lines) == 2 + 3
    acmtl_row, resume_row, xlnet_row = lines[2:]
    assert "| 98.36 |" in acmtl_row and "61.00 ± 2.00 (3)" in acmtl_row and "58.00 ± 1.00" in acmtl_row
    assert "96.26 (best published)" in acmtl_row  # Boundary Smoothing on MSRA
    assert "| – |" in resume_row and "80.0" not in resume_row  # the paper's table is not about Resume
    assert "~93-94 (BiLSTM-CRF)" in resume_row and "| 40.00 (1) | 39.00 |" in resume_row
    assert "not run" in xlnet_row


def test_paper_numbers_stand_beside_msra_only(tmp_path):
    """The paper's Table 2 names no corpus (section 4.1 points to MSRA): Resume and Weibo rows get none of it."""
    corpora = ("msra", "resume", "weibo=/data/weibo")
    table = pd.DataFrame([{"corpus": c, "arch": a, "size": s} for c in corpora
                          for a in ("acmtl", "xlnet_crf", "encoder_pinyin_crf") for s in (200, 3000)])
    out = with_paper_table2(table)
    pd.testing.assert_frame_equal(out[["corpus", "arch", "size"]], table)  # same rows, same order
    msra = out[out["corpus"] == "msra"].set_index(["arch", "size"])
    assert msra.loc[("acmtl", 200), "paper_f1"] == 98.36 and msra.loc[("xlnet_crf", 3000), "paper_f1"] == 96.26
    assert pd.isna(msra.loc[("encoder_pinyin_crf", 200), "paper_f1"])  # beyond the paper: no row of its own
    assert out.loc[out["corpus"] != "msra", list(PAPER_TABLE2_COLUMNS)].isna().all().all()

    # the README block shows a dash there, and the paper's number beside MSRA
    rows = out[out["arch"] == "acmtl"].assign(corpus_label=lambda d: d["corpus"], model="AC-MTL", seeds=1,
                                              test_f1="60.00", full_test_f1="55.00", status="measured")
    rows.to_csv(tmp_path / "table2_performance.csv", index=False)
    lines = table2_summary(tmp_path).splitlines()[2:]
    assert [line.split(" | ")[3] for line in lines] == ["98.36", "98.79"] + ["–"] * 4


def test_figure_draws_the_papers_markers_on_msra_only():
    """... and one model alone stands on its sizes' ticks (several are set apart)."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    from acmtl.companion import plots

    summary = pd.DataFrame({"arch": "acmtl", "size": [200, 1000], "test_f1_mean": [0.6, 0.7], "test_f1_std": 0.01})
    for corpus, markers in (("msra", 2), ("resume", 0)):
        fig, ax = plt.subplots()
        plots.f1_by_size(ax, summary, paper=paper_table2_for(corpus), archs=["acmtl"])
        drawn = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
        assert list(ax.lines[0].get_xdata()) == [0, 1], corpus
        plt.close(fig)
        assert drawn == markers, corpus


def test_update_rewrites_only_the_blocks_and_check_detects_drift(tmp_path):
    results = _table2(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{BEGIN}\nold\n{END}\n\nmiddle\n\n{CLAIMS_BEGIN}\nold\n{CLAIMS_END}\n\n"
                      f"{GLANCE_BEGIN}\nold\n{GLANCE_END}\n\n{LAB_BEGIN}\nold\n{LAB_END}\n\nafter\n", encoding="utf-8")
    page = tmp_path / CLAIMS_PAGE
    assert update_readme(readme, results, check=True) is False
    assert "old" in readme.read_text(encoding="utf-8")  # check changes nothing
    assert not (results / "claims_verdict.csv").exists() and not page.exists()
    assert update_readme(readme, results) is False
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and render_block(results) in text
    assert "\n\nmiddle\n\n" in text and "old" not in text
    assert (results / "claims_verdict.csv").is_file() and (results / "claims_verdict.provenance.json").is_file()
    assert "| claim | source |" in page.read_text(encoding="utf-8") and f"]({CLAIMS_PAGE.as_posix()})" in text
    assert update_readme(readme, results, check=True) is True
    page.write_text(page.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")  # the page drifts
    assert update_readme(readme, results, check=True) is False
    assert update_readme(readme, results) is False and update_readme(readme, results, check=True) is True
    stale = pd.read_csv(results / "claims_verdict.csv").assign(verdict="reproduced")  # the CSV drifts: check says so
    stale.to_csv(results / "claims_verdict.csv", index=False)
    assert update_readme(readme, results, check=True) is False


def test_readme_without_markers_is_a_clear_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no Table 2 block"):
        update_readme(readme, tmp_path)


def test_the_claims_page_shows_every_row_of_the_csv_and_the_readme_its_counts():
    """Each claim of results/claims_verdict.csv is one line of docs/claims.md with its paper value, ours and verdict;
    the README counts the verdicts and links to the page."""
    page = (ROOT / CLAIMS_PAGE).read_text(encoding="utf-8")
    lines = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith("| claim |")]
    claims = pd.read_csv(ROOT / "results" / "claims_verdict.csv", dtype=str, keep_default_na=False)
    assert len(lines) == len(claims)
    for line, row in zip(lines, claims.itertuples()):
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert cells[0] == row.claim and cells[5] == f"**{row.verdict}**", line
        assert cells[2] == row.paper.replace("|", "\\|") and cells[3] == row.ours.replace("|", "\\|"), line
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index(CLAIMS_BEGIN):text.index(CLAIMS_END)]
    counts = claims["verdict"].value_counts()
    for where in (page, block):
        assert f"**not reproduced**: {counts.get('not reproduced', 0)}," in where
        assert f"(of {len(claims)} claims)" in where
    assert f"]({CLAIMS_PAGE.as_posix()})" in block


def test_the_repository_readme_matches_results():
    result = subprocess.run([sys.executable, "-m", "acmtl", "report", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_findings_at_a_glance_follow_the_results(tmp_path):
    """The README's findings are computed from results/: change a table and the line changes with it."""
    import shutil

    from acmtl.companion.publish import duration, timings
    from acmtl.companion.report import render_glance

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results)
    before = render_glance(results)
    counts = pd.read_csv(results / "figure10_error_categories.csv")
    missed = int(counts.loc[counts["category"] == "missed", "errors"].iloc[0])
    assert f"missed {missed} (" in before
    counts.loc[counts["category"] == "missed", "errors"] = missed + 1000  # planted: the README must follow
    counts.to_csv(results / "figure10_error_categories.csv", index=False)
    after = render_glance(results)
    assert f"missed {missed + 1000} (" in after and f"missed {missed} (" not in after
    times = timings(results)
    row = times.set_index("notebook").loc["02_speed_params"]
    assert f"| `02_speed_params` | {row['wall']} | {row['peak_memory']} |" in after  # each notebook's peak, shown
    assert [duration(s) for s in (6.2, 40, 372, 5195)] == ["6.2 s", "40 s", "6.2 min", "1 h 27 min"]
    (results / "figure7_attention_scores.csv").unlink()
    assert render_glance(results).startswith("*Not generated yet")


def test_the_head_to_head_verdicts_follow_their_csv(tmp_path):
    results = _table2(tmp_path / "results")
    assert "AC-MTL against encoder+CRF" not in table2_summary(results)  # no verdict before notebook 01 wrote one
    row = {"corpus": "msra", "corpus_label": "MSRA", "size": 1000, "a": "acmtl", "b": "encoder_crf",
           "split": "full_test", "seeds": 5, "f1_a_mean": 0.73, "f1_b_mean": 0.75, "diff": -0.02, "ci_low": -0.031,
           "ci_high": -0.009, "diff_per_seed": "", "verdict": "loses", "trained_on": "Intel, bf16 (10 runs)"}
    pd.DataFrame([row]).to_csv(results / "table2_head_to_head.csv", index=False)
    text = table2_summary(results)
    assert ("* MSRA, 1,000 training sentences: AC-MTL loses to encoder+CRF by 2.00 F1 points on the full test set "
            "(95 % CI [-3.10, -0.90] over 5 seeds and the test sentences; AC-MTL 73.00, encoder+CRF 75.00).") in text


def test_time_note_without_any_recorded_run(tmp_path):
    from acmtl.companion.publish import time_note

    # a fresh output root (a notebook test, a new clone's exercise folder) has no provenance to time
    assert time_note("01_performance", tmp_path) == "01_performance: no run recorded in results/ yet."


def test_resources_line_reads_the_provenance(tmp_path):
    import json

    from acmtl.companion.findings import resources_line
    from acmtl.companion.publish import resources

    assert resources_line(tmp_path).startswith("Memory and disk: not recorded yet")
    measured = resources("smoke")  # this process: some memory, folders that may be empty
    assert measured["peak_memory_mib"] > 10 and set(measured["disk_mib"]) == {"environment", "cache", "runs"}
    runs = (("table2_performance", 900.0, "2026-01-01"), ("figure6_speed_params", 2500.0, "2026-01-02"))
    for table, peak, day in runs:
        pd.DataFrame({"x": [1]}).to_csv(tmp_path / f"{table}.csv", index=False)
        # the later table from a notebook rerun alone on a fresh machine: its run cache holds one run
        disk = {"environment": 1946.0, "cache": 379.0, "runs": 10.0 if day.endswith("2") else 1843.2}
        record = {"timestamp": f"{day}T00:00:00+00:00", "resources": {"peak_memory_mib": peak, "disk_mib": disk}}
        (tmp_path / f"{table}.provenance.json").write_text(json.dumps(record))
    assert resources_line(tmp_path) == (
        "Memory and disk: a notebook process peaked at 2.4 GiB (`02_speed_params`); on disk, at most, the "
        "environment took 1.9 GiB, the corpora and encoder cache with its downloads 379 MiB and the run cache 1.8 GiB.")


def _build_up(per_seed: dict[str, list[float]]) -> str:
    """Table 3's first finding for full-test F1s (fractions) given per architecture and seed."""
    from acmtl.companion.findings import build_up

    runs = pd.DataFrame([{"arch": arch, "seed": seed, "full_test_f1": f1, "counts": np.array([[10_000 * f1, 10_000,
                                                                                                10_000]])}
                         for arch, values in per_seed.items() for seed, f1 in enumerate(values)])
    table = runs.groupby("arch", sort=False)["full_test_f1"].agg(full_test_f1_mean="mean", seeds="size")
    return build_up(table.reset_index().assign(size=1000), runs, lambda run, split: run.counts)


def test_the_build_up_finding_follows_table3():
    """Table 3's first finding walks encoder+CRF -> +MHSA -> +CNN -> AC-MTL on the full test and says "lowers" only
    where a step's paired interval over seeds lies below 0: a step whose seeds disagree lowers nothing, and two seeds
    judge nothing."""
    falling = {"encoder_crf": [0.75, 0.76, 0.74], "bert_mhsa": [0.74, 0.75, 0.73], "bert_mhsa_cnn": [0.72, 0.73, 0.71],
               "acmtl": [0.70, 0.71, 0.69], "bert_cnn": [0.60, 0.61, 0.62]}
    line = _build_up(falling)
    assert "every component added on top of the encoder lowers F1" in line
    assert line.endswith("RoBERTa-CRF (m3e-small) 75.00 → BERT+MHSA 74.00 (-1.00 [-1.00, -1.00], 3 seeds, lowers F1) "
                         "→ BERT+MHSA+CNN 72.00 (-2.00 [-2.00, -2.00], 3 seeds, lowers F1) → AC-MTL 70.00 (-2.00 "
                         "[-2.00, -2.00], 3 seeds, lowers F1).")
    assert "MSRA-1,000, 3 seeds" in line
    line = _build_up({"encoder_crf": [0.76, 0.77, 0.75], "bert_mhsa": [0.75, 0.76, 0.74],
                      "bert_mhsa_cnn": [0.72, 0.73, 0.71], "acmtl": [0.7218, 0.7228, 0.7162]})  # +0.18, -0.72, +0.62
    assert line.endswith("AC-MTL 72.03 (+0.03 [-1.67, +1.72], 3 seeds, within the noise).")
    assert "2 of the 3 components added on top of the encoder move F1 beyond the noise" in line
    line = _build_up({"encoder_crf": [0.76, 0.77], "bert_mhsa": [0.75, 0.76], "bert_mhsa_cnn": [0.72, 0.73],
                      "acmtl": [0.70, 0.71]})
    assert "0 of the 3 steps have enough seeds to judge" in line and "too few seeds to judge)" in line


def test_a_notebook_time_counts_every_table_it_writes(tmp_path):
    """A notebook's time in the README is the latest of its tables' clocks: a table left out of NOTEBOOK_TABLES
    (the diagnosis once was), or the earliest clock taken for the latest, makes the notebook look minutes faster than
    it ran. Only `acmtl report` and `acmtl tune` write tables of their own."""
    import json

    from acmtl.companion.publish import NOTEBOOK_TABLES, timings

    for notebook, tables in NOTEBOOK_TABLES.items():
        source = (ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8")
        assert set(re.findall(r'write_table\(\w+, \\"(\w+)\\"', source)) <= set(tables), notebook
    listed = {t for tables in NOTEBOOK_TABLES.values() for t in tables}
    written = {p.name.removesuffix(".provenance.json") for p in (ROOT / "results").glob("*.provenance.json")}
    by_commands = {"claims_verdict"} | {t for t in written if re.fullmatch(r"tuning_[a-z]+_\d+_\w+", t)}
    assert written - by_commands == listed  # every notebook table committed, none unlisted
    tables = NOTEBOOK_TABLES["03_ablation"]
    clocks = {table: 64.0 if table == tables[1] else 20.0 for table in tables}  # the latest neither first nor last
    for table, seconds in clocks.items():
        pd.DataFrame({"x": [1]}).to_csv(tmp_path / f"{table}.csv", index=False)
        record = {"profile": "default", "wall_seconds": seconds, "timestamp": "2026-01-01T00:00:00+00:00",
                  "device": {"cpu": "a CPU", "cpu_count": 2}}
        (tmp_path / f"{table}.provenance.json").write_text(json.dumps(record))
    assert timings(tmp_path).set_index("notebook").loc["03_ablation", "wall_seconds"] == 64.0


def test_training_line_sums_the_records_at_this_code_per_machine(tmp_path, monkeypatch):
    """The plan's cost, from the run records at this code (a stale record does not count), per machine that trained
    them, with the wall time that makes on that machine's workers (cores // threads at a time)."""
    import json

    from acmtl.companion.findings import training_line
    from acmtl.companion.publish import duration

    monkeypatch.setattr("acmtl.companion.runs.code_digest", lambda: "now")
    assert training_line(tmp_path).startswith("Training: no run records at this code yet")
    (tmp_path / "runs").mkdir()
    xeon = {"cpu": "Xeon", "cpu_count": 2, "threads": 1, "torch_threads": 1, "precision": "bf16"}
    epyc = {"cpu": "EPYC", "cpu_count": 4, "threads": 1, "torch_threads": 1, "precision": "fp32"}
    runs = [("a", "now", xeon, 3000.0), ("b", "now", xeon, 1000.0), ("c", "now", epyc, 2000.0), ("d", "old", xeon, 9e4)]
    for folder, digest, where, seconds in runs:
        record = {"folder": folder, "code_sha256": digest, "where": where,
                  "times": {"train_seconds": seconds, "score_seconds": seconds / 10}}
        (tmp_path / "runs" / f"{folder}.json").write_text(json.dumps(record))
    line = training_line(tmp_path)
    assert line.startswith(f"Training: the 3 runs recorded at this code took {duration(6600)} of worker time, "
                           f"{duration(6000)} in the training loop and {duration(600)} scoring")
    assert (f"2 on Xeon, 2 cores (CPU only), 1 torch thread, bf16 ({duration(4400)} of worker time, 2 at a time: "
            f"about {duration(2200)} of wall time); 1 on EPYC, 4 cores (CPU only), 1 torch thread, fp32 "
            f"({duration(2200)} of worker time, 4 at a time: about {duration(550)} of wall time)") in line
    assert line.endswith("The speed-up of training runs side by side is not measured yet (notebook 02 measures it).")
    assert duration(7199) == "2 h 0 min" and duration(5195) == "1 h 27 min"  # never "1 h 60 min"


def test_the_workers_speedup_is_read_from_its_table(tmp_path):
    import json

    from acmtl.companion.findings import workers_speedup

    pd.DataFrame({"workers": [1, 2], "threads_per_worker": [2, 1], "cores": [2, 2], "runs": [4, 4], "epochs": [6, 6],
                  "wall_seconds": [130.0, 100.0], "speedup": [1.0, 1.3]}).to_csv(tmp_path / "figure6_workers.csv")
    (tmp_path / "figure6_workers.provenance.json").write_text(json.dumps({"device": {"cpu": "Xeon"}}))
    assert workers_speedup(tmp_path) == ("2 worker processes with 1 torch thread each train the same 4 short runs "
                                         "1.30x as fast as one process with 2 (1.7 min against 2.2 min, start-up "
                                         "included, Xeon, 2 cores).")
    table = pd.read_csv(tmp_path / "figure6_workers.csv").assign(passes=5, min_speedup=[1.0, 1.21],
                                                                  max_speedup=[1.0, 1.42])
    table.to_csv(tmp_path / "figure6_workers.csv")  # measured over passes: their range is said
    assert "1.30x as fast as one process with 2 (range of 5 passes 1.21-1.42x; median 1.7 min against" \
        in workers_speedup(tmp_path)


def test_the_records_line_counts_records_and_tables_at_this_code(tmp_path, monkeypatch):
    """'N of M at this code' is computed from the records and the tables' provenance, never typed."""
    import json

    import acmtl.companion.runs
    from acmtl.companion.report import records_line

    monkeypatch.setattr(acmtl.companion.runs, "code_digest", lambda: "a" * 64)
    (tmp_path / "runs").mkdir()
    for name, digest in (("one", "a" * 64), ("two", "a" * 64), ("old", "b" * 64)):
        (tmp_path / "runs" / f"{name}.json").write_text(json.dumps({"code_sha256": digest}))
    for name, digests in (("fresh", ["a" * 64]), ("mixed", ["a" * 64, "b" * 64]), ("stale", ["b" * 64])):
        record = {"records": {"runs": 2, "at_this_code": 1, "code_sha256": digests}}
        (tmp_path / f"{name}.provenance.json").write_text(json.dumps(record))
    line = records_line(tmp_path)
    assert line.startswith("Run records: 2 of 3 in `results/runs/` at this code (run-defining code aaaaaaaaaaaa)")
    assert "1 of 3 tables computed from run records use only records of this code" in line


# Measured numbers in prose: a speed ratio (1.7x, 10-100 times), a duration (3 h 24 min, 32 min, 40 s), an F1 or a
# difference with two decimals (73.25, 0.02). Versions ("Python 3.11"), code spans and quoted claims are not
# measurements.
MEASUREMENT = re.compile(r"\b\d+(?:\.\d+)?x\b|\b\d+(?:\.\d+)?(?:[-–]\d+(?:\.\d+)?)? times\b"
                         r"|\b\d+ h(?: \d+ min)?\b|\b\d+(?:\.\d+)? (?:min|s)\b"
                         r"|(?<!Python )(?<![\w.])\d{1,3}\.\d{2}(?![\w.])")
# The README and the pages moved out of it (the claims page, which `acmtl report` writes whole, is all results)
PAGES = [ROOT / "README.md", *(ROOT / "docs" / f"{name}.md" for name in ("running", "using-a-model", "reproducibility",
                                                                        "data"))]


def measured_numbers_in_prose(text: str) -> list[str]:
    """The measurement-shaped numbers of a README outside the blocks `acmtl report` writes, code and quotes."""
    text = re.sub(r"<!-- ([\w-]+):begin.*?<!-- \1:end -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```|`[^`\n]*`|“[^”]*”|\"[^\"\n]*\"", "", text, flags=re.S)
    return [f"{line.strip()[:90]!r}: {m.group()}" for line in text.splitlines() for m in MEASUREMENT.finditer(line)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_measured_number_in_the_readme_is_written_from_results(page):
    """A number measured by a run belongs in a block `acmtl report` computes from results/ (or a page it writes),
    never typed in prose, where it would outlive the run that measured it."""
    assert measured_numbers_in_prose("in bf16 1.7x faster; 73.25 in bf16; took 3 h 24 min, then 32 min") == [
        "'in bf16 1.7x faster; 73.25 in bf16; took 3 h 24 min, then 32 min': " + n
        for n in ("1.7x", "73.25", "3 h 24 min", "32 min")]
    assert measured_numbers_in_prose("trained on 10-100 times more data, 3 times faster") == [
        "'trained on 10-100 times more data, 3 times faster': " + n for n in ("10-100 times", "3 times")]
    assert measured_numbers_in_prose("Python 3.11, `torch==2.13.0`, “by 2.05 points”") == []
    assert measured_numbers_in_prose(page.read_text(encoding="utf-8")) == []


def test_the_speed_finding_computes_the_bf16_ratio_from_the_benchmark(tmp_path):
    """Notebook 02's speed finding states bf16 against fp32 from the benchmark's own numbers, and only where the
    benchmark measured bf16."""
    from acmtl.companion.findings import figure6

    shutil.copytree(ROOT / "results", tmp_path, dirs_exist_ok=True)
    record = json.loads((tmp_path / "figure6_speed_params.provenance.json").read_text())
    speed = record["extra"]["bench"]["models"]["acmtl"]["tokens_per_s"]
    speed["bf16"] = 3 * speed["fp32"]  # planted: the finding must follow
    (tmp_path / "figure6_speed_params.provenance.json").write_text(json.dumps(record))
    assert "AC-MTL tags 3.00x as many characters per second as in fp32" in "\n".join(figure6(tmp_path))
    del speed["bf16"]
    (tmp_path / "figure6_speed_params.provenance.json").write_text(json.dumps(record))
    assert "bf16" not in "\n".join(figure6(tmp_path))
