"""``acmtl runs`` / :func:`runs.list_runs`: the run cache as a table, built here from hand-written folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import acmtl
from acmtl.companion.runs import RUN_COLUMNS, format_runs, list_runs


def write_run(root: Path, name: str, *, corpus: str = "msra", spec: str = "msra", size: int | None = 1000,
              arch: str = "acmtl", seed: int = 0, metrics: dict | None = None, mtime: float = 1.7e9) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    record = {"arch": arch, "model": {"encoder": "m3e-small"},
              "train": {"seed": seed, "encoder_lr": 2e-4, "head_lr": 1e-3, "epochs": 30},
              "corpus": {"spec": spec, "name": corpus, "size": size, "sentences": {"train": 700}}}
    (run_dir / "run.json").write_text(json.dumps(record))
    os.utime(run_dir / "run.json", (mtime, mtime))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        os.utime(run_dir / "metrics.json", (mtime + 60, mtime + 60))
    (root / f"{name}.lock").touch()  # what FileLock leaves beside each run
    return run_dir


@pytest.fixture
def cache(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_run(root, "aaaaaaaaaaaaaaaa", metrics={
        "best_epoch": 4, "epochs_run": 9, "train_seconds": 12.5,
        "dev": {"entity_f1": 0.75}, "test": {"entity_f1": 0.5}, "full_test": {"entity_f1": 0.625}}, mtime=1.7e9)
    write_run(root, "bbbbbbbbbbbbbbbb", corpus="tiny", spec="tiny=/data/tiny", size=None, arch="bilstm_crf",
              seed=1, mtime=1.6e9)  # unfinished: no metrics.json
    (root / "tuning").mkdir()  # not a run: no run.json
    (root / "tuning" / "optuna.db").write_bytes(b"")
    return root


def test_lists_every_run_oldest_first(cache, capsys):
    rows = list_runs(cache)
    assert [row["folder"] for row in rows] == [str(cache / "bbbbbbbbbbbbbbbb"), str(cache / "aaaaaaaaaaaaaaaa")]
    assert all(tuple(row) == RUN_COLUMNS for row in rows)
    unfinished, finished = rows
    assert finished == {**finished, "corpus": "msra", "size": 1000, "model": "acmtl", "seed": 0,
                        "encoder_lr": 2e-4, "head_lr": 1e-3, "epochs": 9, "dev_f1": 0.75, "test_f1": 0.5,
                        "full_test_f1": 0.625, "finished": True}
    assert unfinished == {**unfinished, "corpus": "tiny", "size": None, "model": "bilstm_crf", "seed": 1,
                          "epochs": 0, "dev_f1": None, "test_f1": None, "full_test_f1": None, "finished": False}
    assert capsys.readouterr().err == ""


def test_date_is_the_mtime_of_metrics_json_else_run_json(cache):
    import time

    rows = {Path(row["folder"]).name: row for row in list_runs(cache)}
    assert rows["aaaaaaaaaaaaaaaa"]["date"] == time.strftime("%Y-%m-%d %H:%M", time.localtime(1.7e9 + 60))
    assert rows["bbbbbbbbbbbbbbbb"]["date"] == time.strftime("%Y-%m-%d %H:%M", time.localtime(1.6e9))


@pytest.mark.parametrize("filters, expected", [
    ({"corpus": "msra"}, ["aaaaaaaaaaaaaaaa"]),
    ({"corpus": "tiny=/data/tiny"}, ["bbbbbbbbbbbbbbbb"]),  # the spec it was trained with
    ({"corpus": "msr"}, []),  # exact, not a prefix
    ({"model": "bilstm_crf"}, ["bbbbbbbbbbbbbbbb"]),
    ({"size": 1000}, ["aaaaaaaaaaaaaaaa"]),
    ({"size": 100}, []),
    ({"corpus": "msra", "model": "bilstm_crf"}, []),  # all filters at once
    ({"corpus": None, "model": None, "size": None}, ["bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"]),
])
def test_filters_are_exact_matches(cache, filters, expected):
    assert [Path(row["folder"]).name for row in list_runs(cache, **filters)] == expected


def test_unknown_filter_is_an_error(cache):
    with pytest.raises(ValueError, match="cannot filter runs on \\['colour'\\]"):
        list_runs(cache, colour="red")


def test_missing_root_has_no_runs(tmp_path):
    assert list_runs(tmp_path / "nowhere") == []


def test_corrupt_run_json_is_reported_and_skipped(cache, capsys):
    broken = cache / "cccccccccccccccc" / "run.json"
    broken.parent.mkdir()
    broken.write_text('{"arch": "acmtl", ')
    rows = list_runs(cache)
    assert "cccccccccccccccc" not in [Path(row["folder"]).name for row in rows] and len(rows) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "not valid JSON" in err and err.count("\n") == 1


def test_table_shows_blanks_and_yes_no(cache):
    lines = format_runs(list_runs(cache)).splitlines()
    assert lines[0].split() == list(RUN_COLUMNS)
    unfinished, finished = (line.split() for line in lines[1:])
    assert finished[:12] == [str(cache / "aaaaaaaaaaaaaaaa"), "msra", "1000", "acmtl", "0", "0.0002", "0.001",
                             "9", "0.7500", "0.5000", "0.6250", "yes"]
    # size (the corpus' own splits) and the three F1 are blank
    assert unfinished[:8] == [str(cache / "bbbbbbbbbbbbbbbb"), "tiny", "bilstm_crf", "1", "0.0002", "0.001", "0",
                              "no"]
    assert len(unfinished) == len(finished) - 4


def acmtl_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acmtl", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_json_output_and_filters(cache):
    result = acmtl_cli("runs", "--root", str(cache), "--json", "--model", "acmtl")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["folder"] for row in rows] == [str(cache / "aaaaaaaaaaaaaaaa")] and rows[0]["finished"] is True
    assert rows[0]["full_test_f1"] == 0.625

    result = acmtl_cli("runs", "--json", env={"ACMTL_RUNS": str(cache)})  # the run cache by default
    assert [(Path(row["folder"]).name, row["finished"]) for row in json.loads(result.stdout)] == [
        ("bbbbbbbbbbbbbbbb", False), ("aaaaaaaaaaaaaaaa", True)]


def test_cli_table_and_empty_result(cache):
    result = acmtl_cli("runs", "--root", str(cache), "--size", "1000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == list(RUN_COLUMNS) and len(result.stdout.splitlines()) == 2
    result = acmtl_cli("runs", "--root", str(cache), "--corpus", "weibo")
    assert result.returncode == 0 and result.stdout == "" and "no runs under" in result.stderr


def test_cli_version():
    result = acmtl_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"acmtl {acmtl.__version__}"


def test_cli_plan_options_are_checked():
    result = acmtl_cli("runs", "--train")
    assert result.returncode != 0 and "--plan" in result.stderr
    result = acmtl_cli("runs", "--plan", "smoke", "--size", "60")
    assert result.returncode != 0 and "--plan lists the profile's whole plan" in result.stderr
    result = acmtl_cli("runs", "--plan", "fast")
    assert result.returncode != 0 and "unknown profile" in result.stderr


def test_an_unfinished_run_counts_the_epochs_of_its_curve(cache):
    (cache / "bbbbbbbbbbbbbbbb" / "curve.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    assert [row["epochs"] for row in list_runs(cache)] == [2, 9]
