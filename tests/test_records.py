"""Run records: small, relative, and enough to recompute a run's scores and intervals without its weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acmtl.companion.records import build_record, pack_counts, read_record, unpack_counts, write_record
from acmtl.companion.runs import RunSpec, ensure_run, run_splits
from acmtl.core.train import TrainConfig


def test_counts_survive_packing():
    counts = np.array([[0, 0, 0], [2, 3, 2], [65535, 1, 7]])
    assert np.array_equal(unpack_counts(pack_counts(counts)), counts)
    with pytest.raises(ValueError, match="16 bits"):
        pack_counts(np.array([[1, 2, 70000]]))
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        pack_counts(np.array([1, 2, 3]))


@pytest.fixture(scope="module")
def finished_run(tiny_corpus_dir, tiny_encoder_dir, tmp_path_factory):
    spec = RunSpec(corpus=f"tiny={tiny_corpus_dir}", arch="encoder_crf", size=None, encoder=str(tiny_encoder_dir),
                   train=TrainConfig(epochs=2, patience=2))
    run_dir = ensure_run(spec, progress=False, root=tmp_path_factory.mktemp("runs"))
    return spec, run_dir


def test_a_record_recomputes_the_runs_scores_and_names_no_machine_path(finished_run, tmp_path, tiny_corpus_dir):
    from acmtl.core.evaluate import _resampled_f1

    spec, run_dir = finished_run
    splits = run_splits(spec.corpus, spec.size, spec.train.seed)[1]
    record = build_record(run_dir, {name: [s.tags for s in sents] for name, sents in splits.items()},
                          where={"cpu": "test"})
    path = write_record(tmp_path, record)
    assert path == tmp_path / "runs" / f"{run_dir.name}.json" and read_record(tmp_path, run_dir.name) == record
    text = path.read_text()
    assert str(run_dir.parent) not in text and str(tiny_corpus_dir) not in text  # relative only
    assert record["spec"]["corpus"] == "tiny" and record["where"]["threads"] >= 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("dev", "test", "full_test"):
        counts = unpack_counts(record["counts"][split])
        assert len(counts) == len(splits[split])
        everything = np.arange(len(counts))[None, :]  # one "resample": every sentence once
        assert _resampled_f1(counts, everything)[0] == pytest.approx(metrics[split]["entity_f1"])
        assert record["scores"][split]["f1"] == metrics[split]["entity_f1"]
        assert record["scores"][split]["token_accuracy"] == metrics[split]["token_accuracy"]  # its name kept whole
    assert len(record["curve"]) == record["times"]["epochs_run"] == 2
    assert len(path.read_bytes()) < 20_000  # a few KB, fit for git


def test_a_record_needs_the_gold_of_every_scored_split(finished_run):
    spec, run_dir = finished_run
    with pytest.raises(ValueError, match="full_test"):
        build_record(run_dir, {"dev": [], "test": []}, where={})


def test_records_are_not_ignored_by_git():
    """results/runs/ is committed (the run cache, runs/, is not): a record git ignored would never reach the next
    machine."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "results/runs/0123456789abcdef.json"])
    assert ignored.returncode == 1
    assert subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "runs/0123456789abcdef/model"]).returncode == 0
