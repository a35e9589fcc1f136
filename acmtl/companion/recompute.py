"""The tables computed from run records alone, recomputed without training anything.

Table 2's head-to-head, Table 3's steps and the diagnosis (notebooks 01 and 03) read only the per-sentence counts of
the runs their notebook lists in its tables' provenance. When the comparison that judges them changes
(:mod:`acmtl.companion.stats`), they are recomputed here from exactly those runs, with the functions the notebooks
call, and written with provenance of their own (this commit, this machine); the runs are not trained again, and a
table whose runs are missing from ``results/runs/`` stops with the name of the record::

    python -m acmtl.companion.recompute          # writes results/table2_head_to_head.csv, table3_*.csv
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from acmtl.companion import comparison, diagnosis, publish, tables
from acmtl.companion.claims import paper_table3


def listed_runs(results: Path, table: str) -> pd.DataFrame:
    """The per-run rows ``table``'s provenance lists (each with its record's path), their records checked."""
    runs = pd.DataFrame(json.loads((results / f"{table}.provenance.json").read_text(encoding="utf-8"))["extra"]["runs"])
    missing = [r for r in runs["record"] if not Path(r).is_file()]
    if missing:
        raise FileNotFoundError(f"results/{table}.provenance.json lists runs without a record: {missing[:3]}")
    return runs


def recompute(profile: str = "default") -> list[str]:
    """Write the record-only tables of ``profile`` again from the runs their provenance lists; their names."""
    results, _ = publish.target_dirs(profile)
    started = time.time()

    def write(df: pd.DataFrame, name: str, runs: pd.DataFrame) -> None:
        publish.write_table(df, name, profile, corpora=list(runs["corpus_spec"].unique()),
                            seeds=sorted(set(runs["seed"])), started=started, extra={"runs": runs.to_dict("records")})

    table2 = listed_runs(results, "table2_performance")
    write(comparison.head_to_head(table2), "table2_head_to_head", table2)
    ablation, paper = listed_runs(results, "table3_ablation"), paper_table3()
    paper["arch"] = paper["model"].map({name: arch for arch, name in tables.PAPER_MODELS.items()})
    write(tables.ablation_steps(ablation, paper.set_index("arch")["paper_f1"]), "table3_ablation_steps", ablation)
    record = json.loads((results / "table3_diagnosis_pairs.provenance.json").read_text(encoding="utf-8"))["extra"]
    grid = {variant: tuple(seeds) for variant, seeds in record["seeds"].items()}
    diagnosis.write_diagnosis(profile, listed_runs(results, "table3_diagnosis_pairs"), grid, record["size"],
                              started=started)
    return ["table2_head_to_head", "table3_ablation_steps", "table3_diagnosis_pairs", "table3_diagnosis"]


if __name__ == "__main__":
    print("recomputed from run records:", ", ".join(f"results/{name}.csv" for name in recompute()))
