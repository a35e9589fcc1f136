"""The README's Table 2 block is rendered from results/ and kept in step with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from acmtl.experiments import PAPER_TABLE2_COLUMNS, paper_table2_for, with_paper_table2
from acmtl.report import BEGIN, END, render_block, table2_summary, update_readme

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
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    from acmtl import plots

    summary = pd.DataFrame({"arch": "acmtl", "size": [200, 1000], "test_f1_mean": [0.6, 0.7], "test_f1_std": 0.01})
    for corpus, markers in (("msra", 2), ("resume", 0)):
        fig, ax = plt.subplots()
        plots.f1_by_size(ax, summary, paper=paper_table2_for(corpus), archs=["acmtl"])
        drawn = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
        plt.close(fig)
        assert drawn == markers, corpus


def test_update_rewrites_only_the_block_and_check_detects_drift(tmp_path):
    results = _table2(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{BEGIN}\nold\n{END}\n\nafter\n", encoding="utf-8")
    assert update_readme(readme, results, check=True) is False
    assert "old" in readme.read_text(encoding="utf-8")  # check changes nothing
    assert update_readme(readme, results) is False
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and render_block(results) in text
    assert update_readme(readme, results, check=True) is True


def test_readme_without_markers_is_a_clear_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no Table 2 block"):
        update_readme(readme, tmp_path)


def test_the_repository_readme_matches_results():
    result = subprocess.run([sys.executable, "-m", "acmtl", "report", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
