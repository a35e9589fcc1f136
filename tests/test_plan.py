"""A regeneration that resumes anywhere: records written as runs finish, a time budget, a kill between runs,
two machines on one plan, and a Dask cluster. Runs are real (tiny): a 2-layer encoder on a tiny corpus."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from acmtl.companion import experiments as ex
from acmtl.companion import plan as plans
from acmtl.companion.config import get_profile
from acmtl.companion.runs import RunSpec
from acmtl.core.train import TrainConfig


def _specs(corpus_dir: Path, encoder_dir: Path, n: int = 3) -> list[RunSpec]:
    return [RunSpec(corpus=f"tiny={corpus_dir}", arch="encoder_crf", size=None, encoder=str(encoder_dir),
                    train=TrainConfig(epochs=1, patience=1, seed=seed)) for seed in range(n)]


def _records(results: Path) -> set[str]:
    return {p.stem for p in (results / "runs").glob("*.json")}


def _machine(specs_code: str, cache: Path, results: Path, log: Path) -> subprocess.Popen:
    """Another process (another machine: its own run cache) training the plan in turn, one run at a time, and
    logging each run it trains (not the ones it finds) to ``log``."""
    code = f"""
import acmtl.companion.runs as runs
from acmtl.companion import experiments as ex
from acmtl.companion.config import get_profile
from acmtl.companion.runs import RunSpec
from acmtl.core.train import TrainConfig
from pathlib import Path

real = runs.train
def logged(model_cfg, train_cfg, data, out_dir, **kwargs):
    with open({str(log)!r}, "a") as f:
        f.write(Path(out_dir).name + "\\n")
    return real(model_cfg, train_cfg, data, out_dir, **kwargs)
runs.train = logged
specs = {specs_code}
dirs = ex.run_dirs_of(specs, Path({str(cache)!r}))
ex.ensure_records(specs, dirs, Path({str(results)!r}), 1, ex.tqdm(disable=True))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _specs_code(corpus_dir: Path, encoder_dir: Path, n: int = 3) -> str:
    return (f"[RunSpec(corpus='tiny={corpus_dir}', arch='encoder_crf', size=None, encoder={str(encoder_dir)!r}, "
            f"train=TrainConfig(epochs=1, patience=1, seed=seed)) for seed in range({n})]")


def test_a_budget_of_zero_starts_no_run_and_a_cached_run_needs_only_its_record(tmp_path, tiny_corpus_dir,
                                                                                tiny_encoder_dir):
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir, 2)
    dirs = ex.run_dirs_of(specs, tmp_path / "cache")
    assert ex.ensure_records(specs, dirs, tmp_path, 1, ex.tqdm(disable=True), hours=0) == {}
    assert not any(d.exists() for d in dirs) and _records(tmp_path) == set()
    found = ex.ensure_records(specs[:1], dirs[:1], tmp_path, 1, ex.tqdm(disable=True))
    assert set(found) == _records(tmp_path) == {dirs[0].name}
    (tmp_path / "runs" / f"{dirs[0].name}.json").unlink()  # the record lost, the run still cached
    stamp = (dirs[0] / "metrics.json").stat().st_mtime_ns
    again = ex.ensure_records(specs[:1], dirs[:1], tmp_path, 1, ex.tqdm(disable=True))
    assert again[dirs[0].name]["scores"] == found[dirs[0].name]["scores"]
    assert (dirs[0] / "metrics.json").stat().st_mtime_ns == stamp  # rewritten from the cache, not retrained


def test_a_plan_killed_between_runs_is_finished_by_another_machine(tmp_path, tiny_corpus_dir, tiny_encoder_dir):
    """Machine A is killed after its first record; machine B (a fresh run cache, the records A left, as git
    would carry them) trains only what is missing: every record present, no run trained twice."""
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir)
    code = _specs_code(tiny_corpus_dir, tiny_encoder_dir)
    log = tmp_path / "trained.log"
    a = _machine(code, tmp_path / "cache-a", tmp_path, log)
    deadline = time.monotonic() + 300
    while not _records(tmp_path) and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    a.kill()
    a.communicate()
    first = _records(tmp_path)
    assert len(first) >= 1, "machine A recorded nothing before it was killed"
    b = _machine(code, tmp_path / "cache-b", tmp_path, log)
    out, _ = b.communicate(timeout=600)
    assert b.returncode == 0, out[-3000:]
    folders = {d.name for d in ex.run_dirs_of(specs, tmp_path / "cache-b")}
    assert _records(tmp_path) == folders
    assert not any((tmp_path / "cache-b" / f).exists() for f in first)  # B never retrained what A recorded
    trained_by_b = log.read_text().split()[-(len(folders) - len(first)):]
    assert set(trained_by_b) == folders - first


def test_two_machines_sharing_a_run_cache_train_each_run_once(tmp_path, tiny_corpus_dir, tiny_encoder_dir):
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir)
    code = _specs_code(tiny_corpus_dir, tiny_encoder_dir)
    log = tmp_path / "trained.log"
    machines = [_machine(code, tmp_path / "cache", tmp_path, log) for _ in range(2)]
    for m in machines:
        out, _ = m.communicate(timeout=600)
        assert m.returncode == 0, out[-3000:]
    trained = log.read_text().split()
    assert sorted(trained) == sorted({d.name for d in ex.run_dirs_of(specs, tmp_path / "cache")})  # once each
    assert _records(tmp_path) == set(trained)


def test_a_dask_cluster_trains_the_plan(tmp_path, tiny_corpus_dir, tiny_encoder_dir):
    """``--scheduler``: each run a task on a (here local) Dask cluster of two workers; the records come back."""
    distributed = pytest.importorskip("distributed")
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir, 2)
    dirs = ex.run_dirs_of(specs, tmp_path / "cache")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        found = ex.ensure_records(specs, dirs, tmp_path, 1, ex.tqdm(disable=True),
                                   scheduler=cluster.scheduler_address)
    assert set(found) == _records(tmp_path) == {d.name for d in dirs}
    record = json.loads((tmp_path / "runs" / f"{dirs[0].name}.json").read_text())
    assert record["where"]["threads"] >= 1 and all((d / "metrics.json").is_file() for d in dirs)


def test_spawn_trains_even_one_worker_in_a_process_of_its_own(tmp_path, tiny_corpus_dir, tiny_encoder_dir,
                                                             monkeypatch):
    """``spawn``: one worker trains in a child process (a notebook's kernel that times it keeps no training
    memory); without it one worker trains here."""
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir, 2)
    dirs = ex.run_dirs_of(specs, tmp_path / "cache")
    pools, real = [], ex.executor

    def executor(workers, scheduler=None):
        pools.append(workers)
        return real(workers, scheduler)

    monkeypatch.setattr(ex, "executor", executor)
    ex.ensure_records(specs[:1], dirs[:1], tmp_path, 1, ex.tqdm(disable=True))
    assert pools == []
    found = ex.ensure_records(specs[1:], dirs[1:], tmp_path, 1, ex.tqdm(disable=True), spawn=True)
    assert pools == [1] and set(found) == {dirs[1].name} and (dirs[1] / "metrics.json").is_file()


def test_an_analysis_that_needs_weights_trains_a_recorded_run_missing_here(tmp_path, tiny_corpus_dir,
                                                                           tiny_encoder_dir):
    """Records from another machine make the tables; an analysis (weights=True) retrains only what it needs,
    with the record's thread count (the same model on the same machine kind), keeping the committed record as it
    is and this process' threads as they were."""
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir, 1)
    elsewhere, here = ex.run_dirs_of(specs, tmp_path / "elsewhere"), ex.run_dirs_of(specs, tmp_path / "here")
    ex.ensure_records(specs, elsewhere, tmp_path, 1, ex.tqdm(disable=True))
    record = tmp_path / "runs" / f"{here[0].name}.json"
    recorded = json.loads(record.read_text())
    recorded["where"]["threads"] = 3  # trained elsewhere with 3 threads
    record.write_text(json.dumps(recorded))
    committed = record.read_bytes()
    ex.ensure_records(specs, here, tmp_path, 1, ex.tqdm(disable=True))
    assert not here[0].exists()  # the record suffices
    threads = torch.get_num_threads()
    ex.ensure_records(specs, here, tmp_path, 1, ex.tqdm(disable=True), weights=True)
    assert (here[0] / "model").is_dir() and record.read_bytes() == committed
    assert json.loads((here[0] / "metrics.json").read_text())["threads"] == 3 and torch.get_num_threads() == threads


def test_verify_retrains_recorded_runs_and_matches_them_on_the_same_setting(tmp_path, monkeypatch, tiny_corpus_dir,
                                                                             tiny_encoder_dir):
    """``runs --verify``: a recorded run trained again from scratch gives identical scores on the same machine,
    precision and thread count."""
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir, 2)
    dirs = ex.run_dirs_of(specs, tmp_path / "cache")
    plan = {d.name: spec for d, spec in zip(dirs, specs)}
    monkeypatch.setattr(plans, "planned_runs", lambda profile: plan)
    monkeypatch.setattr(ex, "records_root", lambda profile: tmp_path / "runs")
    ex.ensure_records(specs, dirs, tmp_path, 1, ex.tqdm(disable=True))
    import acmtl.companion.runs

    trained, real = [], acmtl.companion.runs.train
    monkeypatch.setattr(acmtl.companion.runs, "train",
                        lambda *args, **kwargs: trained.append(1) or real(*args, **kwargs))
    table = plans.verify_records("smoke", 1, seed=3)
    assert trained == [1]  # trained again, not found in the run cache
    assert table["folder"].nunique() == 1 and set(table["split"]) == {"dev", "test", "full_test"}
    assert table["same_setting"].all() and table["identical"].all(), table
    both = plans.verify_records("smoke", 2, workers=2)  # side by side, in worker processes with the records' threads
    assert trained == [1] and both["folder"].nunique() == 2, both  # not trained in this process
    assert both["same_setting"].all() and both["identical"].all(), both


@pytest.fixture(scope="module")
def default_plan() -> tuple[dict, dict]:
    """The default profile's plan and its diagnosis (run folders from the data: no training)."""
    return plans.planned_runs("default"), plans.diagnosis_plan("default")


def test_the_plan_trains_the_diagnosis_first(default_plan) -> None:
    plan, diagnosis = default_plan
    assert len(diagnosis) == sum(len(seeds) for seeds in get_profile("default").diagnosis.values())
    assert list(plan)[:len(diagnosis)] == list(diagnosis)


@pytest.mark.parametrize("rule", ["keeps", "keeps once trained", "picks another", "not yet"])
def test_runs_that_take_the_wiring_wait_for_the_rule(default_plan, tmp_path, monkeypatch, capsys, rule) -> None:
    """The diagnosis chooses the wiring the other AC-MTL runs take: those start only once every run of it is
    recorded and the rule keeps the profile's wiring; the rest of the plan never waits. A diagnosis recorded
    before the plan starts lets everything train in one pool; "not yet": its last run's budget ran out."""
    import acmtl.companion.diagnosis

    plan, diagnosis = default_plan
    prof = get_profile("default")
    waiting = {f for f, spec in plan.items() if f not in diagnosis and prof.takes_wiring(spec.arch)}
    assert {plan[f].arch for f in waiting} == {"acmtl", "bert_cnn", "bert_mhsa", "bert_mhsa_cnn"}
    records, stages = tmp_path / "runs", []

    def ensure_records(specs, dirs, *args, **kwargs):
        stages.append([d.name for d in dirs])
        for d in dirs if rule != "not yet" else ():
            (records / f"{d.name}.json").write_text("{}")
        return {d.name: {} for d in dirs}

    monkeypatch.setattr(ex, "ensure_records", ensure_records)
    monkeypatch.setattr(ex, "records_root", lambda profile: records)
    import acmtl.companion.noise_counts

    monkeypatch.setattr(acmtl.companion.noise_counts, "produce", lambda profile, **kwargs: 0)  # tested on its own
    monkeypatch.setattr(plans, "ensure_analysis_models", lambda profile, **kwargs: [])  # tested on its own
    records.mkdir()
    for folder in list(diagnosis)[: len(diagnosis) - (rule in ("not yet", "keeps once trained"))]:
        (records / f"{folder}.json").write_text("{}")
    chosen = {"variant": "identity_start" if rule == "picks another" else prof.wiring, "dev_seeds": 3,
              "dev_diff": 0.02, "dev_ci_low": 0.01, "dev_ci_high": 0.03}
    monkeypatch.setattr(acmtl.companion.diagnosis, "recorded_rule", lambda profile: (chosen, prof.wiring))
    found = plans.train_plan("default", plan, progress=False)
    first = [f for f in plan if f not in waiting]
    if rule == "keeps":  # the diagnosis was recorded already: one pool, longest first
        assert stages == [list(plan)] and set(found) == set(plan)
    elif rule == "keeps once trained":  # the diagnosis first, then the runs that waited for it
        assert stages[0] == first and len(stages) == 2 and set(stages[1]) == waiting and set(found) == set(plan)
    else:
        assert stages == [first] and not waiting & set(found)
    assert capsys.readouterr().err.count("Set wiring='identity_start'") == (rule == "picks another")


def test_the_plan_table_says_what_each_record_cost_and_where_it_ran(tmp_path, monkeypatch, tiny_corpus_dir,
                                                                    tiny_encoder_dir):
    """``runs --plan P`` lists, from each record, the worker seconds its run took and the machine that trained it:
    what a regeneration spread over machines reports."""
    specs = _specs(tiny_corpus_dir, tiny_encoder_dir, 2)
    dirs = ex.run_dirs_of(specs, tmp_path / "cache")
    monkeypatch.setattr(ex, "records_root", lambda profile: tmp_path / "runs")
    found = ex.ensure_records(specs[:1], dirs[:1], tmp_path, 1, ex.tqdm(disable=True))
    table = plans.plan_table("smoke", {d.name: spec for d, spec in zip(dirs, specs)}).set_index("folder")
    times = found[dirs[0].name]["times"]
    assert table["recorded"].tolist() == [True, False]
    assert table.loc[dirs[0].name, "seconds"] == pytest.approx(times["train_seconds"] + times["score_seconds"])
    assert pd.isna(table.loc[dirs[1].name, "seconds"]) and table.loc[dirs[1].name, "trained_on"] == ""
    machine = table.loc[dirs[0].name, "trained_on"]
    assert re.fullmatch(r".+, \d+ cores \(CPU only\), \d+ torch threads?, (fp32|bf16)", machine), machine


def test_measure_workers_times_the_same_runs_per_worker_count(monkeypatch) -> None:
    """Each worker count trains the same runs from an empty temporary run cache (never the committed records),
    with cores // workers threads each; the speed-up is the one-worker wall time over each count's."""
    calls, clock = [], [0.0]

    def train(specs, run_dirs, results, workers, bar, **kwargs):
        assert not list(Path(results).glob("runs/*.json")) and "acmtl-workers-" in str(results)
        calls.append(([d.name for d in run_dirs], workers, torch.get_num_threads()))
        clock[0] += 400 / workers  # a clock of its own: no timing in a test
        return {}

    monkeypatch.setattr(ex, "ensure_records", train)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    threads = torch.get_num_threads()
    table = plans.measure_workers(quick=True, workers=(4, 1, 2))
    assert torch.get_num_threads() == threads  # left as it was
    assert [(w, t) for _, w, t in calls] == [(4, 1), (2, 2), (1, 4)]  # the most workers first
    assert len({tuple(folders) for folders, _, _ in calls}) == 1  # the same runs each time
    assert table["workers"].tolist() == [1, 2, 4] and table["threads_per_worker"].tolist() == [4, 2, 1]
    assert table["wall_seconds"].tolist() == [400, 200, 100] and table["speedup"].tolist() == [1, 2, 4]


def test_measure_workers_repeats_interleaved_passes_after_a_warm_up(monkeypatch) -> None:
    """Passes alternate the worker counts (each pass meets the same load for every count) after an uncounted
    warm-up of one-epoch runs; each count reports its median pass and range, the speed-up the ratio of medians with
    the range of the per-pass ratios."""
    calls, clock = [], [0.0]
    one_worker = iter([999, 100, 130, 90])  # the warm-up first, so slow it must not count
    two_workers = iter([999, 50, 60, 40])

    def train(specs, run_dirs, results, workers, bar, **kwargs):
        assert kwargs.get("spawn")  # one worker too: the kernel that times it keeps no training memory
        calls.append((workers, specs[0].train.epochs))
        clock[0] += next(one_worker if workers == 1 else two_workers)
        return {}

    monkeypatch.setattr(ex, "ensure_records", train)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    table = plans.measure_workers(workers=(1, 2)).set_index("workers")
    assert calls == [(2, 1), (1, 1)] + [(2, 6), (1, 6)] * 3  # warm-up, then 3 passes, interleaved
    assert table["passes"].tolist() == [3, 3] and table["epochs"].tolist() == [6, 6]
    assert table.loc[1, ["wall_seconds", "min_wall_seconds", "max_wall_seconds"]].tolist() == [100, 90, 130]
    assert table.loc[2, ["wall_seconds", "min_wall_seconds", "max_wall_seconds"]].tolist() == [50, 40, 60]
    assert table.loc[2, "speedup"] == 2.0  # 100 / 50, of the medians
    assert table.loc[2, ["min_speedup", "max_speedup"]].tolist() == [2.0, 2.25]  # 100/50 and 90/40, pass by pass
    assert table.loc[1, ["speedup", "min_speedup", "max_speedup"]].tolist() == [1.0, 1.0, 1.0]


def test_the_plan_puts_the_analysis_models_in_the_run_cache(monkeypatch, tmp_path) -> None:
    """After the runs and the noise counts, the models the notebooks load (pack.analysis_runs) are trained into the
    run cache where missing (weights=True: a recorded run the cache lacks is trained again), so the notebooks
    train nothing; the folders the cache then holds are returned."""
    from acmtl.companion.pack import analysis_runs

    asked = {}

    def ensure_records(specs, run_dirs, results, workers, bar, **kwargs):
        asked.update(folders=[d.name for d in run_dirs], workers=workers, **kwargs)
        (run_dirs[0] / "metrics.json").parent.mkdir(parents=True)
        (run_dirs[0] / "metrics.json").write_text("{}")  # what is_complete looks for
        return {}

    monkeypatch.setattr(ex, "ensure_records", ensure_records)
    monkeypatch.setattr(plans, "runs_root", lambda profile: tmp_path)
    held = plans.ensure_analysis_models("default", workers=2, hours=1.5)
    assert asked["folders"] == list(analysis_runs("default")) and asked["weights"] and asked["hours"] == 1.5
    assert asked["workers"] == 2 and held == asked["folders"][:1]
    first = asked["folders"][:1]
    asked.clear()
    assert plans.ensure_analysis_models("default", hours=0) == first and not asked  # no budget left: no training
