"""Fair tuning: one Optuna study per architecture, the same number of trials for each, selected on
the corpus' own dev split (never on a test set).

A trial is one cached run (:func:`acmtl.companion.runs.ensure_run`) on the same subset (seed 0) with settings
drawn by a seeded TPE sampler from :data:`SEARCH_SPACES`. Early stopping inside the run still follows
the paper's 70/15/15 protocol (the subset's own dev split) with the profile's patience and epoch cap:
protocol, the same for every model, never searched (the committed studies sampled patience; their
tables keep that column, and the profiles leave its choice out). Each epoch's dev F1 is reported to a
percentile pruner, which stops a trial once its best dev F1 so far is below the lower quartile of the
complete trials at the same epoch (from epoch 5 on, after 4 complete trials: a slow start is not
hopeless; the median pruner pruned 9 of BiLSTM-CRF's 12 trials). The trial's value is
the F1 of the run's best model on the corpus' dev split (MSRA: 2,533 sentences held out of the
official train split; Resume: its 463), which no subset ever draws from.

The first half of the budget is a fixed set of seeded random points (:func:`startup_points`),
queued when the study is created; TPE proposes the rest from their results.

The budget: a study stops once ``trials`` of its trials are finished (complete or pruned). Trials
are numbered by the storage when they start, so with several workers a trial that starts when
earlier-numbered trials already fill the budget is not run (it is recorded as failed, reason
"budget"): no worker runs more than its share, whatever the timing.

Workers and resumption: the storage is a URL (default: a SQLite file in the run cache). Several
processes, or machines sharing a database server, can work on one study. Each running trial
sends a heartbeat; a trial whose worker died is marked failed after ``grace_period`` seconds and
retried once with the same settings, so its run resumes from its last checkpoint. The trials of a
study are also written to ``results/tuning_<study>.csv`` after every trial, and a fresh storage
(a new machine, an empty run cache) is seeded from that file, so a study resumes across sessions.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd

from acmtl.companion.config import get_profile
from acmtl.core.model import ModelConfig
from acmtl.core.train import TrainConfig

DEFAULT_TRIALS = 12
SEED = 0  # the subset and the training seed of every trial: trials differ only in their settings
# Optuna's percentile is the share of trials to keep (for a maximised value): 75 keeps the top three quarters, so a
# trial whose best dev F1 so far is below the lower quartile of the complete trials at the same epoch is pruned
PRUNE_PERCENTILE = 75.0
# A failed trial whose worker recorded no reason: it died (its heartbeat stopped) and a retry took its settings
LOST = "its worker stopped without a word (heartbeat lost); a retry ran its settings"


def _space() -> dict[str, dict]:
    import optuna.distributions as d

    common = {
        "encoder_lr": d.FloatDistribution(3e-5, 5e-4, log=True),
        "head_lr": d.FloatDistribution(2e-4, 3e-3, log=True),
        "dropout": d.FloatDistribution(0.0, 0.3),
        "warmup": d.FloatDistribution(0.0, 0.2),
    }  # early stopping is protocol (the profile's TrainConfig), the same for every model: never a knob here
    acmtl = {  # AC-MTL's own knobs share the same trial budget
        **common,
        "cnn_block": d.CategoricalDistribution(["residual", "paper"]),
        "pool_size": d.CategoricalDistribution([1, 3]),
        "cnn_channels": d.CategoricalDistribution([128, 256]),
        "main_task_weight": d.FloatDistribution(0.4, 1.0),
    }
    # BiLSTM-CRF has no pre-trained encoder: every weight learns at head_lr, from a range that suits an LSTM
    bilstm = {**{k: v for k, v in common.items() if k not in ("encoder_lr", "head_lr")},
              "head_lr": d.FloatDistribution(1e-3, 3e-2, log=True)}
    return {"acmtl": acmtl, "encoder_crf": common, "bilstm_crf": bilstm}


TRAIN_KEYS = {f.name for f in fields(TrainConfig)}
MODEL_KEYS = {f.name for f in fields(ModelConfig)}


def search_space(arch: str) -> dict:
    """The Optuna distributions searched for ``arch``."""
    spaces = _space()
    if arch not in spaces:
        raise ValueError(f"no search space for {arch!r}; tunable: {', '.join(spaces)}")
    return spaces[arch]


def split_params(params: dict) -> tuple[dict, dict]:
    """Sampled settings -> (TrainConfig overrides, ModelConfig overrides)."""
    unknown = set(params) - TRAIN_KEYS - MODEL_KEYS
    if unknown:
        raise ValueError(f"settings {sorted(unknown)} belong to neither TrainConfig nor ModelConfig")
    return ({k: v for k, v in params.items() if k in TRAIN_KEYS},
            {k: v for k, v in params.items() if k not in TRAIN_KEYS})


def study_name(corpus: str, size: int, arch: str) -> str:
    """E.g. ``msra_1000_acmtl``; a corpus given as NAME=DIR is named by NAME."""
    return f"{corpus.partition('=')[0]}_{size}_{arch}"


def default_storage(profile: str = "default") -> str:
    """A SQLite file in the profile's run cache (runs/tuning/optuna.db for default and paper)."""
    from acmtl.companion.publish import runs_root

    path = runs_root(profile) / "tuning" / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def _quiet_optuna() -> None:
    """Optuna logs every new study and flags heartbeats and its plots as experimental: we use them knowingly."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _storage(url: str, heartbeat: int, grace: int):
    import optuna

    _quiet_optuna()
    from sqlalchemy.exc import SQLAlchemyError

    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None  # workers take turns writing
    for attempt in range(5):  # workers starting together race to create the tables: the loser retries
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(1 + attempt)


def _finished_states():
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def trials_table(study) -> pd.DataFrame:
    """Every trial of ``study``: number, state, value (corpus-dev F1; none for a pruned trial, whose Optuna value
    is its last subset-dev F1), settings, epochs, steps, seconds, and the per-epoch subset-dev F1 reported."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("reason") == "budget":  # never ran: it found the budget taken
            continue
        value = t.value if t.state.name == "COMPLETE" else None
        rows.append({"study": study.study_name, "number": t.number, "state": t.state.name, "value": value,
                     **{f"params_{k}": v for k, v in sorted(t.params.items())},
                     "epochs": t.user_attrs.get("epochs"), "steps": t.user_attrs.get("steps"),
                     "seconds": t.user_attrs.get("seconds"), "run_id": t.user_attrs.get("run_id"),
                     "reason": t.user_attrs.get("reason", LOST if t.state.name == "FAIL" else ""),
                     "intermediate": json.dumps({str(k): v for k, v in sorted(t.intermediate_values.items())})})
    return pd.DataFrame(rows)


def import_trials(study, table: pd.DataFrame, arch: str) -> int:
    """Seed an empty ``study`` with the finished trials of a saved :func:`trials_table`; returns how many."""
    import optuna
    from optuna.trial import TrialState

    if study.get_trials(deepcopy=False):
        return 0
    space = search_space(arch)
    added = 0
    for row in table.sort_values("number").itertuples(index=False):
        state = TrialState[row.state]
        if state not in _finished_states():
            continue
        row = row._asdict()
        params = {k: _native(row[f"params_{k}"], space[k]) for k in space}
        attrs = {k: _plain(row[k]) for k in ("epochs", "steps", "seconds", "run_id")}
        study.add_trial(optuna.trial.create_trial(
            state=state, value=row["value"] if state == TrialState.COMPLETE else None, params=params,
            distributions=space, user_attrs={**attrs, "imported_from_number": int(row["number"])},
            intermediate_values={int(k): v for k, v in json.loads(row["intermediate"]).items()}))
        added += 1
    return added


def _plain(value):
    """A pandas cell as a JSON-friendly Python value (NaN -> None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _native(value, distribution):
    """A CSV cell back to the type the distribution holds: a column with gaps reads 3 as 3.0, True as 'True'."""
    import optuna.distributions as d

    if isinstance(distribution, d.CategoricalDistribution):
        for choice in distribution.choices:
            numeric = isinstance(choice, (int, float)) and not isinstance(choice, bool)
            if str(choice) == str(value) or (numeric and float(value) == choice):
                return choice
        raise ValueError(f"saved value {value!r} is not among the choices {distribution.choices}")
    if isinstance(distribution, d.IntDistribution):
        return int(value)
    return float(value)


def _suggest(trial, name: str, distribution):
    """``trial.suggest_*`` for a distribution object (the search space is declared as data, so it can be
    written beside the results and rebuilt when trials are imported)."""
    import optuna.distributions as d

    if isinstance(distribution, d.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, d.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


def startup_points(space: dict, n: int, seed: int) -> list[dict]:
    """The study's first ``n`` settings, drawn uniformly (log-uniformly where marked) by a seeded generator.

    They are queued in the storage when the study is created, so whichever worker takes them, a study
    starts from the same points; TPE then samples from the results (seeded in the creating worker)."""
    import numpy as np
    import optuna.distributions as d

    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for key, dist in space.items():
            if isinstance(dist, d.CategoricalDistribution):
                point[key] = dist.choices[int(rng.integers(len(dist.choices)))]
            elif isinstance(dist, d.IntDistribution):
                point[key] = int(rng.integers(dist.low, dist.high + 1))
            elif dist.log:
                point[key] = float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
            else:
                point[key] = float(rng.uniform(dist.low, dist.high))
        points.append(point)
    return points


def _sampler(seed: int | None, startup: int):
    import optuna

    # constant_liar: a running trial counts as a poor one, so concurrent workers do not propose the same point
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


class _Budget:
    """The trial budget of one study, counted so that concurrent workers agree (see the module docstring)."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def used_before(self, study, number: int) -> int:
        from optuna.trial import TrialState

        counted = (*_finished_states(), TrialState.RUNNING)
        return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number and t.state in counted)

    def finished(self, study) -> int:
        return len(study.get_trials(deepcopy=False, states=_finished_states()))

    def __call__(self, study, trial) -> None:  # an Optuna callback, after every trial
        # A worker whose trial found the budget taken stops too: the trials holding it are running elsewhere,
        # and a new trial would find it taken again (a dead worker's trial is retried by the living ones).
        if self.finished(study) >= self.trials or trial.user_attrs.get("reason") == "budget":
            study.stop()


def make_pruner():
    """The pruner of every study: see the module's docstring and :data:`PRUNE_PERCENTILE`."""
    import optuna

    return optuna.pruners.PercentilePruner(PRUNE_PERCENTILE, n_startup_trials=4, n_warmup_steps=5)


class BudgetReached(Exception):
    """A trial started after the budget was already taken by earlier-numbered trials."""


def tune(arch: str, *, corpus: str = "msra", size: int = 1000, trials: int = DEFAULT_TRIALS,
         profile: str = "default", storage: str | None = None, sampler_seed: int = SEED,
         heartbeat: int = 30, grace: int = 120, results: bool = True, progress: bool = True,
         root: Path | None = None, encoder: str | None = None, checkpoint_every: float = 60.0,
         **train_overrides):
    """Run (or resume, or join) the study of ``arch`` until ``trials`` trials are finished; returns the study.

    ``train_overrides`` change the profile's training settings for every trial (the tests shorten runs);
    ``encoder`` replaces the profile's encoder."""
    import optuna
    import transformers

    from acmtl.companion.publish import runs_root, write_table
    from acmtl.companion.runs import RunSpec, ensure_run, load_metrics, prepare, run_id

    transformers.utils.logging.disable_progress_bar()  # a "Loading weights" bar per trial

    space = search_space(arch)
    prof = get_profile(profile)
    name = study_name(corpus, size, arch)
    startup = max(1, trials // 2)
    storage_ = _storage(storage or default_storage(profile), heartbeat, grace)
    pruner = make_pruner()
    try:  # the worker that creates the study seeds it; workers that join sample with seeds of their own
        study = optuna.create_study(study_name=name, storage=storage_, direction="maximize", pruner=pruner,
                                    sampler=_sampler(sampler_seed, startup))
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage_, pruner=pruner, sampler=_sampler(None, startup))
        created = False
    if created:
        saved = _results_path(profile, name)
        imported = import_trials(study, pd.read_csv(saved), arch) if saved.is_file() else 0
        if imported and progress:
            print(f"{name}: resumed from {saved} ({imported} finished trials)", flush=True)
        for params in startup_points(space, startup, sampler_seed)[imported:]:
            study.enqueue_trial(params)
    budget = _Budget(trials)
    run_root = root or runs_root(profile)

    def objective(trial: optuna.Trial) -> float:
        if budget.used_before(study, trial.number) >= trials:
            trial.set_user_attr("reason", "budget")
            raise BudgetReached(f"trial {trial.number}: the budget of {trials} trials is taken")
        params = {k: _suggest(trial, k, dist) for k, dist in space.items()}
        train_params, model_params = split_params(params)
        spec = RunSpec(corpus=corpus, arch=arch, size=size, encoder=encoder or prof.encoder,
                       train=prof.train_config(SEED, **{**train_overrides, **train_params}),
                       model_overrides=model_params,
                       evaluate_on=("corpus_dev",))
        config, _, data = prepare(spec)
        trial.set_user_attr("run_id", run_id(config))
        started = time.perf_counter()
        epochs = 0

        def report(row: dict) -> None:
            nonlocal epochs
            epochs = row["epoch"]
            trial.report(row["dev_f1"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {row['epoch']}: dev F1 {row['dev_f1']:.4f} below the lower quartile")

        steps_per_epoch = -(-len(data["train"]) // spec.train.batch_size)
        try:
            run_dir = ensure_run(spec, progress=False, root=run_root, on_epoch=report,
                                 checkpoint_every=checkpoint_every)
            metrics = load_metrics(run_dir)
            epochs = metrics["epochs_run"]
            return metrics["corpus_dev"]["entity_f1"]
        except optuna.TrialPruned:
            raise
        except Exception as err:  # a failed trial's row says why
            trial.set_user_attr("reason", f"{type(err).__name__}: {err}"[:300])
            raise
        finally:  # pruned trials keep their cost too
            trial.set_user_attr("epochs", epochs)
            trial.set_user_attr("steps", epochs * steps_per_epoch)
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))

    def save(study: optuna.Study) -> None:
        if results:
            write_table(trials_table(study), f"tuning_{name}", profile, corpora=[corpus], seeds=[SEED],
                        started=time.time(), extra={"study": name, "budget": trials, "search_space": {
                            k: repr(v) for k, v in space.items()}})

    def record(study: optuna.Study, trial) -> None:
        save(study)
        if progress:
            done = budget.finished(study)
            if trial.state == optuna.trial.TrialState.PRUNED:  # its value is the last subset-dev F1 reported
                outcome = f"pruned after epoch {trial.user_attrs.get('epochs')} (subset dev F1 {trial.value:.4f})"
            else:
                value = "-" if trial.value is None else f"{trial.value:.4f}"
                outcome = f"{trial.state.name.lower()} (corpus-dev F1 {value})"
            print(f"{name}: trial {trial.number} {outcome}; {done}/{trials} finished", flush=True)

    if budget.finished(study) < trials:
        study.optimize(objective, catch=(BudgetReached,), callbacks=[budget, record], gc_after_trial=True)
    else:
        save(study)  # the table follows the storage, even when the budget was spent before this worker came
    return study


def _results_path(profile: str, name: str) -> Path:
    from acmtl.companion.publish import output_dirs

    return output_dirs(profile)[0] / f"tuning_{name}.csv"


def study_from_table(table: pd.DataFrame, arch: str):
    """An in-memory study holding the finished trials of a saved table: for Optuna's plots and importances."""
    import optuna

    _quiet_optuna()
    study = optuna.create_study(direction="maximize", study_name=str(table["study"].iloc[0]))
    import_trials(study, table, arch)
    return study


def load_trials(profile: str, corpus: str, size: int, arch: str) -> pd.DataFrame | None:
    """The saved trial table of a study (``results/tuning_<study>.csv``), or None when none was run."""
    path = _results_path(profile, study_name(corpus, size, arch))
    return pd.read_csv(path) if path.is_file() else None


def best_settings(table: pd.DataFrame, trials: int = DEFAULT_TRIALS) -> dict:
    """The settings of the best complete trial among the first ``trials`` finished ones (the budget)."""
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])].sort_values("number").head(trials)
    complete = finished[finished["state"] == "COMPLETE"]
    if complete.empty:
        raise ValueError("no complete trial yet")
    best = complete.loc[complete["value"].idxmax()]
    return {k[len("params_"):]: _plain(v) for k, v in best.items() if k.startswith("params_") and not pd.isna(v)}



def budget_table(tables: dict[str, pd.DataFrame | None], trials: int = DEFAULT_TRIALS) -> pd.DataFrame:
    """Per architecture: finished / complete / pruned trials of the budget, their steps and seconds, and the
    best corpus-dev F1 (over the first ``trials`` finished trials) with its settings."""
    rows = []
    for arch, table in tables.items():
        row = {"arch": arch, "budget": trials, "finished": 0, "complete": 0, "pruned": 0, "steps": 0,
               "seconds": 0.0, "best_corpus_dev_f1": None, "best_settings": ""}
        if table is not None:
            finished = table[table["state"].isin(["COMPLETE", "PRUNED"])].sort_values("number").head(trials)
            complete = finished[finished["state"] == "COMPLETE"]
            row.update(finished=len(finished), complete=len(complete), pruned=len(finished) - len(complete),
                       steps=int(finished["steps"].sum()), seconds=round(float(finished["seconds"].sum()), 1))
            if not complete.empty:
                row.update(best_corpus_dev_f1=float(complete["value"].max()),
                           best_settings=json.dumps(best_settings(table, trials)))
        rows.append(row)
    return pd.DataFrame(rows)


def findings(summary: pd.DataFrame, tables: dict[str, pd.DataFrame | None], trials: int = DEFAULT_TRIALS) -> list[str]:
    """Markdown lines: where each study stands and, once every study is finished, which settings won."""
    lines = []
    for row in summary.itertuples():
        if row.finished == 0:
            lines.append(f"* **{row.arch}**: no trial yet; run `python -m acmtl tune --model {row.arch}`.")
            continue
        best = ("no complete trial yet" if row.best_corpus_dev_f1 is None else
                f"best corpus-dev F1 {100 * row.best_corpus_dev_f1:.2f} with {row.best_settings}")
        status = "budget spent" if row.finished >= trials else f"**unfinished: {row.finished} of {trials} trials**"
        lines.append(f"* **{row.arch}**: {status} ({row.complete} complete, {row.pruned} pruned, "
                     f"{row.steps:,} steps, {row.seconds / 60:.0f} min); {best}.")
    if (summary["finished"] < trials).any():
        lines.append(f"* Not every study has its {trials} trials yet, so no model's settings are final and the "
                     "comparison is not yet fair: resume with `nohup python -m acmtl tune &`.")
    return lines
