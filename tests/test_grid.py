"""The training grid behind every notebook: missing runs trained side by side by worker processes, then reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from acmtl.companion import experiments as ex
from acmtl.companion import plan as plans
from acmtl.companion import publish


def test_workers_train_each_missing_run_once_then_reuse_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(publish.OUTPUT_ROOT_ENV, str(tmp_path))
    first = ex.train_grid("smoke", "msra", ["encoder_crf"], [60], [0, 1], progress=False, workers=2)
    assert first["trained_now"].all() and first["seed"].tolist() == [0, 1]
    assert first["run_dir"].nunique() == 2 and (first["test_f1"] >= 0).all()
    ends = [(Path(d) / "metrics.json").stat().st_mtime for d in first["run_dir"]]
    (start_a, end_a), (start_b, end_b) = [(end - s, end) for end, s in zip(ends, first["train_seconds"])]
    assert start_a < end_b and start_b < end_a, "the two runs trained one after the other, not side by side"
    again = ex.train_grid("smoke", "msra", ["encoder_crf"], [60], [0, 1], progress=False, workers=1)  # one process
    assert not again["trained_now"].any() and again["run_dir"].tolist() == first["run_dir"].tolist()


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_workers_setting_is_checked(monkeypatch, value) -> None:
    monkeypatch.setenv(ex.WORKERS_ENV, value)
    with pytest.raises(ValueError, match="ACMTL_WORKERS"):
        ex.training_workers()


def test_a_worker_stops_when_the_pool_that_started_it_is_killed() -> None:
    """``kill`` of ``acmtl runs --train`` (not Ctrl-C, which reaches the workers too) must not leave a worker
    training on: it would hold a core and its run's lock until its run ends."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import multiprocessing, os, time
        from concurrent.futures import ProcessPoolExecutor
        from acmtl.companion.experiments import _die_with_parent
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_die_with_parent, initargs=(os.getpid(),))
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 120)  # a long run
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    time.sleep(1)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"worker {worker} outlived the pool's process by 20 s")


def test_only_figure8s_runs_score_their_test_split_each_epoch() -> None:
    """Table 2's models at the profile's ``curves`` size and seed, and those alone, pay for per-epoch test scoring;
    they are the runs notebook 05 asks for with its committed parameters, so it reuses them."""
    from acmtl.companion.config import get_profile

    size, seed = get_profile("default").curves
    committed = publish.committed_parameters("05_robustness")
    assert (committed["size"], committed["seed"]) == (size, seed)
    assert all(ex.run_spec("default", "msra", arch, size, seed).train.test_curve for arch in ex.TABLE2_ARCHS)
    assert not any(ex.run_spec("default", "msra", "acmtl", s, k).train.test_curve
                   for s, k in ((size, seed + 1), (200, seed), (3000, seed)))
    assert not ex.run_spec("default", "msra", "bert_mhsa_cnn", size, seed).train.test_curve  # Table 3: not plotted
    plan = plans.planned_runs("default")
    assert sum(spec.train.test_curve for spec in plan.values()) == 2 * len(ex.TABLE2_ARCHS)  # MSRA and Resume


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_early_stopping_is_protocol_the_same_for_every_run(profile) -> None:
    """One patience and one epoch cap for every model at every size and in every table of a profile, and never a
    tuned knob: no search space holds them."""
    from acmtl.companion.tune import search_space

    specs = [*plans.planned_runs(profile).values(),
             *(ex.run_spec(profile, "msra", arch, size, seed)
               for arch in ex.TABLE2_ARCHS for size in (200, 1000, 3000) for seed in (0, 1))]
    assert len({(spec.train.patience, spec.train.epochs) for spec in specs}) == 1
    assert not any({"patience", "epochs"} & set(search_space(arch)) for arch in ex.TABLE2_ARCHS)


@pytest.mark.parametrize(("cores", "memory_gib", "workers"), [(2, 24, 2), (16, 128, 16), (16, 24, 4), (1, 64, 1),
                                                              (4, 2, 1)])
def test_workers_default_to_the_cores_memory_allows(monkeypatch, cores, memory_gib, workers) -> None:
    """One 1-thread worker per core, as many as memory holds; ACMTL_WORKERS overrides it."""
    assert ex.default_workers(cores, memory_gib) == workers
    monkeypatch.delenv(ex.WORKERS_ENV, raising=False)
    monkeypatch.setattr(ex, "default_workers", lambda: workers)
    assert ex.training_workers() == workers
    monkeypatch.setenv(ex.WORKERS_ENV, "3")
    assert ex.training_workers() == 3


def _finished_run(run_dir: Path, f1: dict[str, float]) -> Path:
    import json

    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({split: {"entity_f1": v} for split, v in f1.items()}))
    return run_dir


def test_an_analysis_says_when_its_model_is_not_the_recorded_run(tmp_path) -> None:
    """A model trained again on another machine kind scores differently from its record; the notebooks that analyse
    it (04, 06, 07) must say so rather than print the record's F1 beside another model's analysis."""
    import pandas as pd

    record = {"scores": {"test": {"f1": 0.70}, "full_test": {"f1": 0.7227}}}
    same = ex.model_scores(_finished_run(tmp_path / "same", {"test": 0.70, "full_test": 0.7227}), record)
    again = ex.model_scores(_finished_run(tmp_path / "again", {"test": 0.70, "full_test": 0.7315}), record)
    assert same["model_is_recorded"] and not again["model_is_recorded"]
    assert again["model_full_test_f1"] == 0.7315

    row = {"arch": "acmtl", "seed": 0, "folder": "again", "test_f1": 0.70, "full_test_f1": 0.7227}
    models = ex.analysed_models(pd.DataFrame([{**row, **again}]))
    assert models == [{"arch": "acmtl", "seed": 0, "folder": "again", "split": "full_test", "model_f1": 0.7315,
                       "record_f1": 0.7227, "is_recorded": False}]
    line = ex.describe_models(models)
    assert "trained again" in line and "73.2" in line and "72.3" in line
    recorded = ex.describe_models(ex.analysed_models(pd.DataFrame([{**row, **same}])))
    assert "the recorded run" in recorded and "trained again" not in recorded
