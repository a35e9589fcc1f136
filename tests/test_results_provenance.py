"""Every table in results/ agrees with its provenance record, and the notebooks print the tables' numbers.

A provenance record names the table's rows and columns, the seeds, and (for trained tables) one record per
run: the per-run records must reproduce the table's means and standard deviations, so a table cannot be
edited, or regenerated from other runs, without its record disagreeing. The committed notebook outputs must
show the numbers of the committed tables they wrote.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
TABLES = sorted(RESULTS.glob("*.csv"))
GROUP = ("corpus", "arch", "size")  # what identifies a row of a table summarised over seeds
# The tuning studies' trial tables may come from a dirty worktree (issue 30): a study appends trials while the code
# around it changes, and its trials are cached runs keyed on their own code. Every other table: a clean commit.
MAY_BE_DIRTY = re.compile(r"tuning_[a-z]+_\d+_\w+\.csv")


def _record(csv: Path) -> dict:
    return json.loads(csv.with_name(f"{csv.stem}.provenance.json").read_text(encoding="utf-8"))


def _in_history(commit: str) -> bool:
    """Whether ``commit`` is HEAD or one of its ancestors in this repository."""
    result = subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", commit, "HEAD"],
                            capture_output=True, timeout=30)
    return result.returncode == 0


def _git_problems(csv: Path, git: dict, committed: bool) -> list[str]:
    """The record must name a commit of this repository's history, and for a committed table a clean worktree
    unless it may be dirty (a table a test writes records the tree the test runs in, clean or not)."""
    commit = git.get("commit")
    if not (isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit) and _in_history(commit)):
        return [f"{csv.name}: the record names no commit of this history ({commit!r})"]
    if committed and git.get("dirty") is not False and not MAY_BE_DIRTY.fullmatch(csv.name):
        return [f"{csv.name}: written from a worktree that was not clean (dirty: {git.get('dirty')!r}, "
                f"{git.get('changed_files')})"]
    return []


def _mean_problems(table: pd.DataFrame, runs: pd.DataFrame, name: str) -> list[str]:
    """Each summarised row's seeds, means and sample standard deviations, recomputed from the per-run records."""
    problems = []
    metrics = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean") and c[:-5] in runs]
    summarised = table[table["seeds"].fillna(0) > 0] if "seeds" in table else table.iloc[0:0]
    for row in summarised.to_dict("records"):
        picked = runs
        for key in GROUP:
            picked = picked[picked[key].astype(str) == str(row[key])]
        where = f"{name} {'/'.join(str(row[k]) for k in GROUP)}"
        if len(picked) != row["seeds"]:
            problems.append(f"{where}: {len(picked)} runs recorded for {row['seeds']} seeds")
            continue
        for metric in metrics:
            std = picked[metric].std(ddof=1) if len(picked) > 1 else 0.0
            if abs(picked[metric].mean() - row[f"{metric}_mean"]) > 1e-9 or abs(std - row[f"{metric}_std"]) > 1e-9:
                problems.append(f"{where}: {metric} mean/std differ from the per-run records")
    return problems


def provenance_problems(csv: Path, *, committed: bool = True) -> list[str]:
    """What in ``csv``'s provenance record disagrees with the table (an empty list when nothing does); a
    ``committed`` table must also come from a clean worktree."""
    if not csv.with_name(f"{csv.stem}.provenance.json").is_file():
        return [f"{csv.name}: no provenance record"]
    record, table = _record(csv), pd.read_csv(csv)
    described = record.get("table", {})
    problems = [f"{csv.name}: provenance says {key} {described.get(key)!r}, the table has {actual!r}"
                for key, actual in (("file", csv.name), ("rows", len(table)), ("columns", list(table.columns)))
                if described.get(key) != actual]
    problems += _git_problems(csv, record.get("git", {}), committed)
    seeds = set(record.get("seeds", []))
    if "seed" in table and not set(table["seed"].dropna().astype(int)) <= seeds:
        problems.append(f"{csv.name}: seeds {sorted(set(table['seed']))} beyond the recorded {sorted(seeds)}")
    runs = pd.DataFrame(record.get("extra", {}).get("runs", []))
    if not runs.empty and "seed" in runs:
        if not set(runs["seed"]) <= seeds:
            problems.append(f"{csv.name}: per-run seeds {sorted(set(runs['seed']))} beyond {sorted(seeds)}")
        if set(GROUP) <= set(runs.columns) and set(GROUP) <= set(table.columns):
            problems += _mean_problems(table, runs, csv.name)
    return problems


@pytest.mark.parametrize("csv", TABLES, ids=lambda p: p.stem)
def test_every_table_agrees_with_its_provenance(csv: Path) -> None:
    assert provenance_problems(csv) == []


def test_a_tampered_table_or_run_record_is_caught(tmp_path: Path) -> None:
    """The check above fails on a dropped row, a run record that no longer gives the mean, a foreign seed, a commit
    outside this history or none, and a dirty worktree (except for a tuning study's trials)."""
    for suffix in (".csv", ".provenance.json"):
        shutil.copy(RESULTS / f"table2_performance{suffix}", tmp_path / f"table2_performance{suffix}")
    csv, record_path = tmp_path / "table2_performance.csv", tmp_path / "table2_performance.provenance.json"
    assert provenance_problems(csv) == []
    table, record = pd.read_csv(csv), json.loads(record_path.read_text(encoding="utf-8"))
    table.iloc[1:].to_csv(csv, index=False)
    assert any("rows" in p for p in provenance_problems(csv))
    table.to_csv(csv, index=False)
    record["extra"]["runs"][0]["test_f1"] += 0.01
    record["extra"]["runs"][1]["seed"] = 7
    record_path.write_text(json.dumps(record), encoding="utf-8")
    problems = provenance_problems(csv)
    assert any("test_f1 mean/std" in p for p in problems) and any("beyond" in p for p in problems)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    committed = record["git"]
    for git, caught in (({"commit": "0" * 40, "dirty": True}, "no commit of this history"),
                        ({"commit": None, "dirty": None}, "no commit of this history"),
                        ({**committed, "dirty": True}, "not clean")):
        record_path.write_text(json.dumps({**record, "git": git}), encoding="utf-8")
        assert any(caught in p for p in provenance_problems(csv)), git
        tuning = tmp_path / "tuning_msra_1000_acmtl.csv"  # a study's trials may be dirty, never from nowhere
        shutil.copy(csv, tuning)
        shutil.copy(record_path, tuning.with_name(f"{tuning.stem}.provenance.json"))
        assert any(caught in p for p in provenance_problems(tuning)) == (caught != "not clean"), git


def test_diagnosis_pairs_come_from_the_recorded_runs() -> None:
    """Each paired F1 of Table 3's diagnosis is the full-test F1 of the run recorded for that variant and seed."""
    csv = RESULTS / "table3_diagnosis_pairs.csv"
    pairs, runs = pd.read_csv(csv), pd.DataFrame(_record(csv)["extra"]["runs"])
    f1 = runs.set_index(["variant", "seed"])["full_test_f1"]
    for row in pairs.itertuples():
        assert row.f1 == pytest.approx(f1[(row.variant, row.seed)], abs=1e-12), row
        assert row.reference_f1 == pytest.approx(f1[(row.reference, row.seed)], abs=1e-12), row


def test_claims_verdict_was_computed_from_the_committed_results() -> None:
    """Its provenance hashes every file the verdicts read, each table's provenance record with it (the verdicts read
    the per-run records and the legal corpus' counts from there): a table or record changed since shows here."""
    inputs = _record(RESULTS / "claims_verdict.csv")["extra"]["inputs_sha256"]
    tables = {name.removesuffix(".csv") for name in inputs if name.endswith(".csv")}
    assert "table2_performance" in tables
    records = {f"{t}.provenance.json" for t in tables if (RESULTS / f"{t}.provenance.json").is_file()}
    assert records <= set(inputs), f"read without its record: {sorted(records - set(inputs))}"
    for name, digest in inputs.items():
        assert hashlib.sha256((RESULTS / name).read_bytes()).hexdigest() == digest, (
            f"results/{name} changed after results/claims_verdict.csv: run `python -m acmtl report`")


# -- the notebooks print the tables' numbers -------------------------------------------------------------


def _outputs(notebook: str) -> str:
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    texts = []
    for output in (o for cell in cells for o in cell.get("outputs", [])):
        texts.append("".join(output.get("text", [])))
        texts += ["".join(output.get("data", {}).get(mime, [])) for mime in ("text/plain", "text/markdown")]
    return "\n".join(texts)


@pytest.mark.parametrize("notebook, table, shown", [
    ("01_performance", "table2_performance", lambda df: df["test_f1"].dropna()),
    ("01_performance", "table2_performance", lambda df: df["full_test_f1"].dropna()),
    ("03_ablation", "table3_ablation", lambda df: df["test_f1"]),
    # in percent (acmtl.companion.lab.readable); as a fraction in outputs executed before the notebook showed percent
    ("05_robustness", "figure8_noise",
     lambda df: [re.compile(rf"(?<![\d.])({re.escape(f'{100 * f:.2f}')}|{re.escape(f'{f:.4f}')})(?!\d)")
                 for f in df["f1"]]),
    ("07_error_analysis", "figure10_error_categories",
     lambda df: [re.compile(rf"{re.escape(r.category)}\s+{r.errors}\s+{r.sentences}\s") for r in df.itertuples()]),
])
def test_notebook_output_shows_the_committed_table(notebook, table, shown) -> None:
    text = _outputs(notebook)
    values = list(shown(pd.read_csv(RESULTS / f"{table}.csv")))
    assert values
    missing = [v for v in values if not (v.search(text) if isinstance(v, re.Pattern) else str(v) in text)]
    assert not missing, f"notebooks/{notebook}.ipynb does not show these values of results/{table}.csv: {missing}"
