"""Every numbered notebook runs end to end under the smoke profile and writes its tables and figures.

The notebooks execute with papermill in a fresh kernel, with ``ACMTL_OUTPUT_ROOT`` pointing at a
temporary folder, so the committed results/ and figures/ are never touched. The folder is shared
by all notebooks of one session: later notebooks reuse the smoke runs of earlier ones, as they do
under ``run_all.sh``. This is the slowest test file (several minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WRITES_NOTHING = {"00_method_walkthrough"}  # a walkthrough of the model: it computes, it writes no results
# Notebooks whose output names are fixed; every other one must write at least one table and one figure.
EXPECTED = {
    "01_performance": (["table2_performance", "table2_anchors"], ["table2_performance"]),
    "02_speed_params": (["figure6_speed_params"], ["figure6_speed_params"]),
    "03_ablation": (["table3_ablation", "table3_ablation_steps", "table3_diagnosis", "table3_diagnosis_pairs"],
                    ["table3_ablation"]),
    "08_tuning": (["tuning_summary"], ["tuning_acmtl_history", "tuning_encoder_crf_importances"]),
}


@pytest.fixture(scope="session")
def output_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook_outputs")


def _files(folder: Path, suffix: str) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in folder.glob(f"*{suffix}")} if folder.is_dir() else {}


def _committed() -> dict[str, float]:
    return {str(p): p.stat().st_mtime for d in ("results", "figures") for p in (REPO / d).rglob("*") if p.is_file()}


def _new(before: dict[str, float], after: dict[str, float]) -> set[str]:
    return {name for name, mtime in after.items() if before.get(name) != mtime}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(notebook: Path, output_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(output_root))  # the kernel inherits it
    results, figures = output_root / "build" / "smoke" / "results", output_root / "build" / "smoke" / "figures"
    before = {s: _files(d, s) for d, s in ((results, ".csv"), (figures, ".png"))}
    committed = _committed()

    executed = output_root / "executed" / notebook.name
    executed.parent.mkdir(exist_ok=True)
    papermill.execute_notebook(str(notebook), str(executed), parameters={"profile": "smoke"}, kernel_name="python3",
                               cwd=str(notebook.parent), progress_bar=False)

    tables = sorted(_new(before[".csv"], _files(results, ".csv")))
    pngs = sorted(_new(before[".png"], _files(figures, ".png")))
    if notebook.stem not in WRITES_NOTHING:
        assert tables, f"{notebook.name} wrote no table to {results}"
        assert pngs, f"{notebook.name} wrote no figure to {figures}"
    for table in tables:
        provenance = results / table.replace(".csv", ".provenance.json")
        assert provenance.is_file(), f"{notebook.name}: {table} has no provenance file"
        record = json.loads(provenance.read_text())
        assert record["profile"] == "smoke" and {"commit", "dirty"} <= set(record["git"]), f"{provenance} is incomplete"
        assert record["device"] and record["acmtl_version"], f"{provenance} is incomplete"
    for png in pngs:
        assert (figures / png.replace(".png", ".svg")).is_file(), f"{notebook.name}: {png} has no SVG twin"
    wanted_tables, wanted_figures = EXPECTED.get(notebook.stem, ((), ()))
    missing = [f"{t}.csv" for t in wanted_tables if f"{t}.csv" not in tables]
    missing += [f"{f}.png" for f in wanted_figures if f"{f}.png" not in pngs]
    assert not missing, f"{notebook.name} did not write {missing}"
    assert _committed() == committed, f"{notebook.name} changed the committed results/ or figures/"


# -- the notebook infrastructure itself (fast) ---------------------------------------------------


def test_output_dirs_follow_profile_and_env(tmp_path, monkeypatch) -> None:
    from acmtl import experiments as ex

    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    assert ex.output_dirs("default") == (tmp_path / "results", tmp_path / "figures")
    smoke = tmp_path / "build" / "smoke"
    assert ex.output_dirs("smoke") == (smoke / "results", smoke / "figures")
    assert all(d.is_dir() for d in ex.output_dirs("smoke"))
    assert ex.runs_root("smoke") == smoke / "runs"
    monkeypatch.setenv("ACMTL_RUNS", "runs")
    assert ex.runs_root("default") == REPO / "runs"  # the CLI's run cache, wherever the notebook runs from
    with pytest.raises(ValueError, match="unknown profile"):
        ex.output_dirs("fast")


def test_write_table_and_figure_with_provenance(tmp_path, monkeypatch) -> None:
    import time

    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from acmtl import experiments as ex, plots

    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    started = time.time()
    path = ex.write_table(pd.DataFrame({"arch": ["acmtl"], "f1": [0.5]}), "t", "smoke", corpora=["resume"],
                          seeds=[0, 1], started=started, extra={"why": "test"})
    assert pd.read_csv(path).to_dict("records") == [{"arch": "acmtl", "f1": 0.5}]
    record = json.loads(path.with_suffix(".provenance.json").read_text())
    assert record["profile"] == "smoke" and record["seeds"] == [0, 1] and record["extra"] == {"why": "test"}
    corpus = record["corpora"][0]
    assert corpus["name"] == "resume" and all(len(h) == 64 for h in corpus["sources"].values())
    assert record["encoder"] == "m3e-small" and record["device"]["cpu_count"] >= 1
    fig, axes = plots.new_figure()
    axes[0][0].plot([0, 1], [0, 1])
    pngs = ex.save_figure(fig, "f", "smoke")
    assert [p.suffix for p in pngs] == [".png", ".svg"]
    first = pngs[1].read_bytes()
    ex.save_figure(fig, "f", "smoke")
    assert pngs[1].read_bytes() == first  # no timestamps, stable ids: a rerun does not change the SVG


def test_smoke_stand_in_corpus_is_small_and_stable(tmp_path, monkeypatch) -> None:
    from acmtl import experiments as ex
    from acmtl.data.corpora import load_corpus

    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    assert ex.corpus_spec("default", "resume") == "resume"
    spec = ex.corpus_spec("smoke", "resume")
    assert spec.startswith("resume-stand-in=") and ex.corpus_spec("smoke", spec) == spec
    corpus = load_corpus(spec)
    sizes = {split: len(part) for split, part in corpus.splits.items()}
    assert sum(sizes.values()) == 240 and sizes["test"] == 60, sizes
    assert set(corpus.types) <= set(load_corpus("resume").types)
    assert ex.corpus_spec("smoke", "resume") == spec  # the same folder, not rewritten


def test_summarize_mean_and_sample_std() -> None:
    import pandas as pd

    from acmtl import experiments as ex

    runs = pd.DataFrame({"corpus": "msra", "arch": "acmtl", "size": 200, "seed": [0, 1, 2],
                         "test_precision": [0.5, 0.6, 0.7], "test_recall": [0.5, 0.5, 0.5], "test_f1": [0.4, 0.5, 0.6]})
    row = ex.summarize(runs, splits=("test", "full_test")).iloc[0]
    assert row["seeds"] == 3 and row["test_f1_mean"] == pytest.approx(0.5) and row["test_f1_std"] == pytest.approx(0.1)
    assert row["test_f1"] == "50.00 ± 10.00" and "full_test_f1" not in row
    one = ex.summarize(runs.iloc[:1]).iloc[0]  # one seed: the mean alone, no "± 0.00"
    assert one["seeds"] == 1 and one["test_f1"] == "40.00" and one["test_f1_std"] == 0.0


def test_architecture_parameters_match_a_built_model() -> None:
    from acmtl import experiments as ex
    from acmtl.checkpoint import build_model
    from acmtl.encoders import bert_base_config
    from acmtl.model import ModelConfig, count_parameters
    from acmtl.train import tag_names

    types = ("LOC", "ORG", "PER")
    built, _ = build_model(ModelConfig.for_architecture("acmtl", tag_names(types)))
    assert ex.architecture_parameters("acmtl", types) == count_parameters(built)
    base = ex.architecture_parameters("encoder_crf", types, bert_base_config().to_dict())
    assert 100e6 < base["encoder"] < 103e6  # BERT-base without its pooler
