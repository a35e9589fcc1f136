"""The tuning study: an equal budget however many workers share it, nothing lost when one dies, resumable
from the committed trial table. Trials are real (tiny) runs: a 2-layer encoder on a 20-sentence subset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")

from acmtl.companion.tune import best_settings, search_space, split_params, study_name, trials_table  # noqa: E402  optional optuna

TRIALS = 4


def _worker(tmp_path: Path, corpus: str, encoder: Path, storage: str, trials: int, **kwargs) -> subprocess.Popen:
    """A worker process: ``tune`` of encoder_crf on the tiny corpus, smoke profile, outputs under tmp_path."""
    options = dict(corpus=corpus, size=20, trials=trials, profile="smoke", storage=storage, encoder=str(encoder),
                   progress=False, epochs=kwargs.pop("epochs", 3), **kwargs)
    code = f"from acmtl.companion.tune import tune; tune('encoder_crf', **{options!r})"
    env = {**os.environ, "ACMTL_OUTPUT_ROOT": str(tmp_path), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]


def _study(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture()
def corpus(tiny_corpus_dir) -> str:
    return f"tiny={tiny_corpus_dir}"


def test_search_spaces_split_into_known_settings():
    for arch in ("acmtl", "encoder_crf", "bilstm_crf"):
        params = {name: (d.choices[0] if hasattr(d, "choices") else d.low) for name, d in search_space(arch).items()}
        train, model = split_params(params)
        assert set(train) | set(model) == set(params)
    assert "encoder_lr" not in search_space("bilstm_crf")  # no pre-trained encoder to tune
    with pytest.raises(ValueError, match="neither"):
        split_params({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="tunable"):
        search_space("bert_cnn")


def test_saved_values_read_back_as_their_choices():
    from acmtl.companion.tune import _native

    pool = search_space("acmtl")["pool_size"]
    assert _native(3.0, pool) == 3 and isinstance(_native("3", pool), int)  # a CSV column with gaps holds floats
    assert _native("paper", search_space("acmtl")["cnn_block"]) == "paper"
    assert isinstance(_native(256.0, search_space("acmtl")["cnn_channels"]), int)
    with pytest.raises(ValueError, match="choices"):
        _native(5, pool)


def test_tuned_settings_reach_every_architecture_that_borrows_them():
    from dataclasses import replace

    from acmtl.companion.config import get_profile

    prof = replace(get_profile("smoke"), tuned={"acmtl": {"head_lr": 5e-4, "cnn_block": "paper", "dropout": 0.2},
                                                "encoder_crf": {"encoder_lr": 1e-4}})
    assert prof.tuned_settings("acmtl") == ({"head_lr": 5e-4}, {"cnn_block": "paper", "dropout": 0.2})
    assert prof.tuned_settings("bert_mhsa_cnn") == prof.tuned_settings("acmtl")  # Table 3 takes AC-MTL's
    assert prof.tuned_settings("encoder_pinyin_crf") == ({"encoder_lr": 1e-4}, {})
    assert prof.tuned_settings("bilstm_crf") == ({}, {})  # no study: the profile's own settings


def test_a_worker_refused_a_trial_stops_asking():
    """Once a worker's trial finds the budget taken by trials running elsewhere, it stops: no loop of refusals."""
    from types import SimpleNamespace

    from acmtl.companion.tune import _Budget

    class Study:
        stopped = False

        def get_trials(self, deepcopy=False, states=()):
            return []  # nothing finished yet: the budget is held by running trials

        def stop(self):
            self.stopped = True

    study = Study()
    _Budget(12)(study, SimpleNamespace(user_attrs={}))
    assert not study.stopped
    _Budget(12)(study, SimpleNamespace(user_attrs={"reason": "budget"}))
    assert study.stopped


def test_the_default_profile_uses_what_the_committed_studies_chose():
    """Profile.tuned is the best trial of the committed results/tuning_*.csv within the trial budget (a study rerun
    or a hand edit shows up here): a better trial finished beyond the budget is planted and must not be chosen.
    Early stopping's patience is protocol, not a tuned setting, so it is left out of the comparison."""
    from pathlib import Path

    from acmtl.companion.config import get_profile

    def without_patience(settings: dict) -> dict:
        return {k: v for k, v in settings.items() if k != "patience"}

    prof = get_profile("default")
    results = Path(__file__).resolve().parents[1] / "results"
    for arch in prof.tune_archs:
        table = pd.read_csv(results / f"tuning_{study_name('msra', prof.tune_size, arch)}.csv")
        finished = table[table["state"].isin(["COMPLETE", "PRUNED"])]
        assert len(finished) >= prof.tune_trials, arch  # the budget was spent
        beyond = finished.nlargest(1, "number").assign(number=table["number"].max() + 1, state="COMPLETE", value=1.0)
        beyond = beyond.assign(**{c: beyond[c].map(lambda v: v * 2 if isinstance(v, float) else v)
                                  for c in table.columns if c.startswith("params_")})  # other settings, best score
        chosen = best_settings(pd.concat([table, beyond], ignore_index=True), prof.tune_trials)
        assert without_patience(prof.tuned[arch]) == without_patience(chosen), arch


def test_two_workers_share_one_budget(tmp_path, corpus, tiny_encoder_dir):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    workers = [_worker(tmp_path, corpus, tiny_encoder_dir, storage, TRIALS) for _ in range(2)]
    for w in workers:
        _finish(w)
    study = _study(storage, study_name(corpus, 20, "encoder_crf"))
    table = trials_table(study)
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])]
    assert len(finished) == TRIALS  # nothing lost, nothing beyond the budget
    assert finished["number"].is_unique and finished["run_id"].is_unique  # no trial run twice
    assert len(table) == TRIALS, table  # a surplus start is refused, not run, and not listed
    refused = [t for t in study.get_trials() if t.user_attrs.get("reason") == "budget"]
    assert len(refused) <= len(workers), f"{len(refused)} refused starts: a worker kept asking after the budget"
    complete = finished[finished["state"] == "COMPLETE"]
    assert complete["value"].between(0, 1).all() and (complete["steps"] > 0).all()
    saved = pd.read_csv(tmp_path / "build" / "smoke" / "results" / f"tuning_{study.study_name}.csv")
    assert len(saved[saved["state"].isin(["COMPLETE", "PRUNED"])]) == TRIALS
    assert set(best_settings(saved, TRIALS)) == set(search_space("encoder_crf"))


def test_a_killed_worker_is_resumed(tmp_path, corpus, tiny_encoder_dir):
    """Kill a worker in the middle of a trial; the next worker fails the stale trial, retries it with the same
    settings (its run resumes from its checkpoint) and completes the budget."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    name = study_name(corpus, 20, "encoder_crf")
    worker = _worker(tmp_path, corpus, tiny_encoder_dir, storage, 3, heartbeat=1, grace=2, epochs=20,
                     checkpoint_every=0)
    runs = tmp_path / "build" / "smoke" / "runs"
    killed_params = None
    deadline = time.time() + 240
    while killed_params is None and time.time() < deadline and worker.poll() is None:
        time.sleep(0.05)
        try:
            running = _study(storage, name).get_trials(states=[optuna.trial.TrialState.RUNNING])
        except (KeyError, Exception):  # the study does not exist yet
            continue
        for trial in running:
            curve = runs / str(trial.user_attrs.get("run_id")) / "curve.json"
            if curve.is_file() and len(json.loads(curve.read_text())) >= 2:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                killed_params = trial.params
    assert killed_params is not None, "the worker finished every trial before it could be killed"
    time.sleep(3)  # past the grace period: the heartbeat has stopped
    _finish(_worker(tmp_path, corpus, tiny_encoder_dir, storage, 3, heartbeat=1, grace=2, epochs=20))
    trials = _study(storage, name).get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL and t.params == killed_params]
    retried = [t for t in trials if t.state != optuna.trial.TrialState.FAIL and t.params == killed_params]
    assert len(failed) == 1 and len(retried) == 1
    assert retried[0].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials) == 3


def test_a_fresh_storage_resumes_from_the_saved_trials(tmp_path, corpus, tiny_encoder_dir):
    first = f"sqlite:///{tmp_path / 'first.db'}"
    _finish(_worker(tmp_path, corpus, tiny_encoder_dir, first, 2))
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"  # a new machine: only results/tuning_*.csv survives
    _finish(_worker(tmp_path, corpus, tiny_encoder_dir, fresh, 3))
    name = study_name(corpus, 20, "encoder_crf")
    old, new = _study(first, name).get_trials(), _study(fresh, name).get_trials()
    imported = [t for t in new if "imported_from_number" in t.user_attrs]
    assert [t.params for t in imported] == [t.params for t in old]
    assert [t.value for t in imported] == [t.value for t in old]
    assert len([t for t in new if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]) == 3


def test_a_pruned_trial_has_no_corpus_dev_value():
    # Optuna gives a pruned trial its last intermediate value (a subset-dev F1); the table must not pass it off
    # as the corpus-dev F1 that complete trials are ranked by.
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.7,
                                              intermediate_values={1: 0.5}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, value=0.9,
                                              intermediate_values={1: 0.9}))
    table = trials_table(study)
    assert table["value"].iloc[0] == 0.7 and pd.isna(table["value"].iloc[1])
    assert json.loads(table["intermediate"].iloc[1]) == {"1": 0.9}


@pytest.mark.parametrize("best, pruned", [(0.55, True), (0.60, False)])
def test_the_pruner_stops_only_trials_below_the_lower_quartile(best, pruned):
    from acmtl.companion.tune import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    for value in (0.5, 0.6, 0.7, 0.8):  # complete trials at epoch 6: lower quartile 0.575, median 0.65
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value,
                                                  intermediate_values={6: value}))
    trial = study.ask()
    trial.report(best, 6)
    assert bool(trial.should_prune()) is pruned


def test_a_failed_trial_says_why(tmp_path, corpus, tiny_encoder_dir, monkeypatch):
    """The exception that failed a trial is its row's reason; a failure with none recorded says its worker died."""
    import acmtl.companion.runs
    from acmtl.companion.tune import LOST, tune

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(acmtl.companion.runs, "ensure_run", broken)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(RuntimeError, match="disk full"):
        tune("encoder_crf", corpus=corpus, size=20, trials=1, profile="smoke", storage=storage, results=False,
             progress=False, root=tmp_path, encoder=str(tiny_encoder_dir), epochs=1)
    study = _study(storage, study_name(corpus, 20, "encoder_crf"))
    assert trials_table(study)["reason"].tolist() == ["RuntimeError: disk full"]
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # as the heartbeat marks a trial whose worker died
    assert trials_table(study)["reason"].tolist()[-1] == LOST
