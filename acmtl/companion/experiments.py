"""What the experiments train: each run's spec under a profile, and the grid a notebook asks for, from the run
records (:mod:`acmtl.companion.records`) or trained where missing by a pool of worker processes or a Dask
cluster. The plan of every run the notebooks need is :mod:`acmtl.companion.plan`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from tqdm.std import tqdm

from acmtl.companion.config import get_profile
from acmtl.companion.progress import training_output
from acmtl.companion.publish import device_info, git_state, output_dirs, runs_root
from acmtl.paths import cache_dir

if TYPE_CHECKING:
    from acmtl.companion.runs import RunSpec

METRICS = ("precision", "recall", "f1")
STAND_IN = "-stand-in"  # suffix of the small corpora a smoke run trains on


def short_text_corpus() -> str:
    """The paper's second corpus: "weibo" when ``$ACMTL_WEIBO_DIR`` is set, else "resume", which stands in."""
    from acmtl.data.corpora import WEIBO_ENV

    return "weibo" if os.environ.get(WEIBO_ENV) else "resume"


def corpus_label(spec: str) -> str:
    """A corpus spec as tables print it, saying when Resume stands in for Weibo."""
    name = spec.partition("=")[0]
    return {"msra": "MSRA", "weibo": "Weibo", "resume": "Resume (stands in for Weibo)"}.get(name, name)


def corpus_spec(profile: str, corpus: str) -> str:
    """The corpus spec to train on: ``corpus`` itself, or under a profile with ``stand_in_sentences`` a small
    stand-in drawn from it (so a smoke run never scores thousands of official test sentences)."""
    n = get_profile(profile).stand_in_sentences
    if n <= 0 or corpus.partition("=")[0].endswith(STAND_IN):
        return corpus
    import hashlib

    from acmtl.data.conll import write_conll
    from acmtl.data.corpora import load_corpus

    source = load_corpus(corpus)
    name = f"{source.name}{STAND_IN}"
    digest = hashlib.sha256(json.dumps(source.sources, sort_keys=True).encode()).hexdigest()[:8]
    directory = cache_dir() / "stand-ins" / f"{name}-{n}-{digest}"  # one fixed folder: one corpus cache entry
    if not all((directory / f"{split}.txt").is_file() for split in ("train", "dev", "test")):
        for split, share in (("train", 0.6), ("dev", 0.15), ("test", 0.25)):
            usable = [s for s in source.splits[split] if len(s.chars) <= 80 and not any(c.isspace() for c in s.chars)]
            k = max(1, round(n * share))
            write_conll(directory / f"{split}.txt", usable[:: max(1, len(usable) // k)][:k])  # evenly spaced
    return f"{name}={directory}"


WORKERS_ENV = "ACMTL_WORKERS"


def training_workers() -> int:
    """How many processes train a plan's missing runs side by side: ``$ACMTL_WORKERS``, default
    :func:`default_workers`."""
    value = os.environ.get(WORKERS_ENV, str(default_workers()))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${WORKERS_ENV} must be a whole number of processes >= 1, not {value!r}")
    return int(value)


GIB_PER_WORKER = 5  # a training worker peaked at 4.5 GiB (AC-MTL on MSRA-1,000, m3e-small; `/usr/bin/time -v`)


def default_workers(cores: int | None = None, memory_gib: float | None = None) -> int:
    """One 1-thread worker per core, as many as memory allows (:data:`GIB_PER_WORKER` each; each worker holds its
    own model); threads per worker are then cores // workers (:func:`ensure_records`). Side by side, small models
    keep more of each core busy than one process's threads do: notebook 02 measures the speed-up
    (:func:`acmtl.companion.plan.measure_workers`, ``results/figure6_workers.csv``)."""
    cores = cores or os.cpu_count() or 1
    if memory_gib is None:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 8
    return max(1, min(cores, int(memory_gib // GIB_PER_WORKER)))


def _die_with_parent(parent: int) -> None:
    """A training worker's initializer: exit once the process that started the pool is gone. Killed (not
    interrupted), the pool leaves its workers behind, each holding a core and its run's lock until it finishes
    on its own; this way the run resumes from its last checkpoint at the next start instead."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def record_of(spec: RunSpec, run_dir: Path) -> dict:
    """The record (:mod:`records`) of the finished run of ``spec`` in ``run_dir``: its scores, per-sentence
    counts, curve and times, and the machine and commit it ran at."""
    from acmtl.companion.records import build_record
    from acmtl.companion.runs import run_splits

    splits = run_splits(spec.corpus, spec.size, spec.train.seed)[1]
    git = git_state()
    return build_record(run_dir, {name: [s.tags for s in part] for name, part in splits.items()},
                        where={**device_info(), "commit": git["commit"], "dirty": git["dirty"]})


def train_and_record(spec: RunSpec, root: str, threads: int | None) -> dict:
    """A worker's task: train (or resume, or find) the run of ``spec`` under ``root``; its record, which the
    process that plans writes (a Dask worker may share no disk with it)."""
    import torch
    import transformers

    from acmtl.companion.runs import ensure_run

    transformers.utils.logging.disable_progress_bar()  # a new process: the parent's setting does not reach it
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:  # under ./run_all.sh a notebook's training shows its bars on the terminal, not in the notebook
        with training_output() as bars:
            return record_of(spec, ensure_run(spec, progress=bars, root=Path(root)))
    finally:  # in the caller's process (one run at a time), what follows keeps its threads
        torch.set_num_threads(before)


def _label(spec: RunSpec) -> str:
    return f"{spec.arch} size={spec.size} seed={spec.train.seed}"


def run_dirs_of(specs: Iterable[RunSpec], root: Path) -> list[Path]:
    """Each spec's folder in the run cache under ``root`` (preparing a spec loads and hashes its data)."""
    from acmtl.companion.runs import prepare, run_id

    return [root / run_id(prepare(spec)[0]) for spec in specs]


def _trained(bar: tqdm, spec: RunSpec, lines: bool) -> None:
    """One more run trained: the bar says so, and with ``lines`` (the bar is off) a line of its own does."""
    if lines:
        print(f"trained {_label(spec)}", flush=True)
    bar.set_postfix_str(f"trained {_label(spec)}")
    bar.update()


@contextmanager
def executor(workers: int, scheduler: str | None = None) -> Iterator[tuple[Executor, int]]:
    """(an executor, how many runs it trains at once): ``workers`` spawned processes (not forked: a forked OpenMP
    runtime can hang), each exiting with its parent; or the Dask cluster at ``scheduler``, one run per worker."""
    if scheduler:
        from distributed import Client  # the [cluster] extra

        with Client(scheduler) as client:
            yield client.get_executor(pure=False), max(1, len(client.scheduler_info()["workers"]))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        yield pool, workers


def ensure_records(specs: Sequence[RunSpec], run_dirs: Sequence[Path], results: Path, workers: int, bar: tqdm, *,
                    lines: bool = False, hours: float | None = None, retrain: bool = False, weights: bool = False,
                    scheduler: str | None = None, spawn: bool = False) -> dict[str, dict]:
    """Every spec's record (:mod:`acmtl.companion.records`) by run folder (``run_dirs``, in the same order): read from
    ``results``' records; else written from the run cache; else trained and written the moment the run finishes,
    one after another in this process (``workers`` 1), by ``workers`` processes, or on a Dask cluster
    (``scheduler``); ``spawn``: in a worker process even with one worker (this process, a notebook's kernel, keeps
    none of the training's memory). ``hours``: no run starts after that budget (a run under way finishes; rerun to
    go on).
    ``retrain``: ignore the records (the run cache still answers: a cached run is the same run). ``weights``: an
    analysis needs the trained models, so a recorded run missing from the run cache is trained again, with its
    record's thread count (on the record's machine kind that makes it the same model, bit for bit; the record, from
    the machine that made the tables, is kept). ``lines``: also print a line for each run trained. A run's
    file lock keeps two processes, or machines that share the run cache, from training it twice."""
    from acmtl.companion.records import read_records, write_record
    from acmtl.companion.runs import is_complete

    folders = [run_dir.name for run_dir in run_dirs]
    found = {} if retrain else read_records(results, folders)
    kept = set(found)  # records that stay as they are
    todo = {run_dir.name: (spec, run_dir) for spec, run_dir in zip(specs, run_dirs, strict=True)
            if run_dir.name not in found or (weights and not is_complete(run_dir))}
    for folder, (spec, run_dir) in list(todo.items()):
        if folder not in found and is_complete(run_dir):  # trained before, here: its record needs no training
            found[folder] = record_of(spec, run_dir)
            write_record(results, found[folder])
            del todo[folder]
    bar.update(len(specs) - len(todo))
    deadline = None if hours is None else time.monotonic() + 3600 * hours
    queue = iter(todo.values())

    def finished(spec: RunSpec, record: dict) -> None:
        if record["folder"] not in kept:
            write_record(results, record)
            found[record["folder"]] = record
        _trained(bar, spec, lines)

    def next_run() -> tuple[RunSpec, Path] | None:
        return next(queue, None) if deadline is None or time.monotonic() < deadline else None

    def threads_for(run_dir: Path, share: int | None) -> int | None:
        # float sums depend on the thread count: a recorded run trained again takes its record's
        return found[run_dir.name]["where"].get("threads") if run_dir.name in kept else share

    if todo and workers <= 1 and not scheduler and not spawn:
        while (item := next_run()) is not None:
            bar.set_postfix_str(_label(item[0]))
            finished(item[0], train_and_record(item[0], str(item[1].parent), threads_for(item[1], None)))
    elif todo:
        with executor(min(workers, len(todo)), scheduler) as (pool, slots):
            # one missing run gets every core, not a worker's share; a Dask worker keeps its own threads
            share = None if scheduler else max(1, (os.cpu_count() or 1) // slots)
            running = {}

            def start_next() -> None:
                if (item := next_run()) is not None:
                    threads = threads_for(item[1], share)
                    running[pool.submit(train_and_record, item[0], str(item[1].parent), threads)] = item[0]

            for _ in range(slots):
                start_next()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(running.pop(future), future.result())  # a worker's exception surfaces here
                    start_next()
    return found


def run_spec(profile: str, corpus: str, arch: str, size: int | None, seed: int, *, encoder: str | None = None,
             model_overrides: dict | None = None, **train_overrides) -> RunSpec:
    """The run of ``arch`` on ``corpus`` (a spec, as :func:`acmtl.data.corpora.load_corpus` takes it) at ``size``
    and ``seed`` under ``profile``: the profile's training settings and encoder, the settings tuning chose for
    ``arch`` (:meth:`config.Profile.tuned_settings`), then the overrides. Table 2's models at the profile's
    ``curves`` size and seed score their test split after every epoch (Figure 8 reads those runs)."""
    from acmtl.companion.runs import RunSpec

    prof = get_profile(profile)
    tuned_train, tuned_model = prof.tuned_settings(arch)
    usual = usual_model(profile, arch)
    curve = arch in TABLE2_ARCHS and (size, seed) == prof.curves and {**usual, **(model_overrides or {})} == usual
    # at the diagnosis' size every run also scores the corpus' dev split: the wiring rule reads it from the records
    scored = ("test", "full_test", *(("corpus_dev",) if size == prof.ablation_size else ()))
    return RunSpec(corpus=corpus, arch=arch, size=size, encoder=encoder or prof.encoder,
                   train=prof.train_config(seed, **{"test_curve": curve, **tuned_train, **train_overrides}),
                   model_overrides={**tuned_model, **(model_overrides or {})}, evaluate_on=scored)


TABLE2_ARCHS = ("acmtl", "encoder_crf", "bilstm_crf")  # notebook 01's models


def legal_size(profile: str) -> int | None:
    """The size of notebook 06's legal AC-MTL: the corpus' own train/dev parts (None), the first size under smoke."""
    return get_profile(profile).sizes[0] if profile == "smoke" else None


def usual_model(profile: str, arch: str) -> dict:
    """Every :class:`model.ModelConfig` field of ``arch`` as Table 2 trains it: the defaults, then tuning's."""
    from acmtl.core.model import ModelConfig

    return {**{f.name: f.default for f in fields(ModelConfig)}, **get_profile(profile).tuned_settings(arch)[1]}


def records_root(profile: str) -> Path:
    """Where ``profile``'s run records live (:mod:`acmtl.companion.records`): ``results/runs/`` for default (in git)."""
    from acmtl.companion.records import records_dir

    return records_dir(output_dirs(profile)[0])


def record_row(record: dict) -> dict:
    """A run's record as a row of scores: what a table is computed from (no weights needed)."""
    spec, times = record["spec"], record["times"]
    return {"arch": spec["arch"], "size": spec["size"], "seed": spec["seed"], "folder": record["folder"],
            "best_epoch": times["best_epoch"], "epochs_run": times["epochs_run"],
            "train_seconds": times["train_seconds"], "score_seconds": times["score_seconds"],
            **{f"{split}_{key}": scores[key] for split, scores in record["scores"].items()
               for key in (*METRICS, "support")}}


def model_scores(run_dir: str | Path, record: dict) -> dict:
    """The entity F1 of the model in the run cache (its own ``metrics.json``) on each split its record scores,
    ``model_<split>_f1``, and ``model_is_recorded``: whether all equal the record's. A model trained again on another
    machine kind or thread count differs from the recorded run by float order, so an analysis of it must say so."""
    from acmtl.companion.runs import load_metrics

    metrics = load_metrics(run_dir)
    scores = {f"model_{split}_f1": metrics[split]["entity_f1"] for split in record["scores"] if metrics.get(split)}
    same = all(scores.get(f"model_{split}_f1") == recorded["f1"] for split, recorded in record["scores"].items())
    return {**scores, "model_is_recorded": same}


def analysed_models(runs: pd.DataFrame) -> list[dict]:
    """What an analysis of ``runs`` (:func:`train_grid` rows with ``weights=True``) loads: each model's arch, seed,
    folder, its split's F1 (the official test where there is one) beside its record's, and whether it is the
    recorded run; notebooks print it (:func:`describe_models`) and keep it in their tables' provenance."""
    split = "full_test" if "model_full_test_f1" in runs else "test"
    return [{"arch": r["arch"], "seed": int(r["seed"]), "folder": r["folder"], "split": split,
             "model_f1": r[f"model_{split}_f1"], "record_f1": r[f"{split}_f1"],
             "is_recorded": bool(r["model_is_recorded"])} for r in runs.to_dict("records")]


def describe_models(models: Sequence[dict]) -> str:
    """One line on the models an analysis loads (:func:`analysed_models`): each the recorded run or one trained
    again, with its F1 beside its record's."""
    parts = [f"{m['arch']} seed {m['seed']}: " + (
        f"the recorded run ({m['split']} F1 {100 * m['model_f1']:.1f})" if m["is_recorded"] else
        f"trained again, not the recorded run: {m['split']} F1 {100 * m['model_f1']:.1f} against its record's "
        f"{100 * m['record_f1']:.1f}") for m in models]
    again = any(not m["is_recorded"] for m in models)
    return ("The model" + ("s" if len(models) > 1 else "") + " analysed: " + "; ".join(parts) + "."
            + (" A run trained again on another machine kind or thread count differs from its record by float "
               "order; this analysis is of the model here, the tables of scores are of the records." if again else ""))


def train_grid(profile: str, corpus: str, archs: Iterable[str], sizes: Iterable[int | None],
               seeds: Iterable[int], *, progress: bool = True, model_overrides: dict | None = None,
               workers: int | None = None, weights: bool = False, **train_overrides) -> pd.DataFrame:
    """Every (arch, size, seed)'s run, one row of scores each, from its record (:func:`record_row`), training the
    runs that have none (see :func:`ensure_records`).

    A run is :func:`run_spec`'s, the spec ``python -m acmtl train`` builds, so runs trained from the command line
    are reused. Under a profile with a stand-in corpus (smoke) ``corpus`` is replaced by :func:`corpus_spec`'s
    stand-in; the ``corpus`` column keeps the name asked for, ``corpus_spec`` says what was trained on. The
    ``run_dir`` column is the run's folder in the run cache, ``record`` its record's file. ``weights``: the
    caller needs the trained models (an analysis), so they are trained where the run cache lacks them, and each
    row also has the cached model's own scores (:func:`model_scores`); else the records suffice and the weights may
    not be on this machine.
    """
    import transformers

    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars, one per run
    root = runs_root(profile)
    spec_used = corpus_spec(profile, corpus)
    specs = [run_spec(profile, spec_used, arch, size, seed, model_overrides=model_overrides, **train_overrides)
             for size in sizes for arch in archs for seed in seeds]
    # On a terminal, a bar (tqdm.std, not tqdm.auto: no ipywidgets needed) that says runs done / to do, elapsed,
    # estimate. A notebook stores every redraw of a bar in its output (dozens of fragments in the HTML): there,
    # one line per run trained instead.
    live = progress and sys.stdout.isatty()
    bar = tqdm(total=len(specs), desc=f"{corpus} runs", unit="run", disable=not live, file=sys.stdout,
               mininterval=0)
    run_dirs = run_dirs_of(specs, root)
    records = {run_dir.name: records_root(profile) / f"{run_dir.name}.json" for run_dir in run_dirs}
    recorded_before = {folder for folder, record in records.items() if record.is_file()}
    found = ensure_records(specs, run_dirs, records_root(profile).parent,
                            training_workers() if workers is None else workers, bar, lines=progress and not live,
                            weights=weights)
    bar.close()
    return pd.DataFrame([{"corpus": corpus, "corpus_spec": spec_used, **record_row(found[run_dir.name]),
                          "run_dir": str(run_dir), "record": str(records[run_dir.name]),
                          "trained_now": run_dir.name not in recorded_before,
                          **(model_scores(run_dir, found[run_dir.name]) if weights else {})}
                         for run_dir in run_dirs])


def run_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, epoch) from each run's record (``runs``: :func:`train_grid` rows): dev and test F1 per
    epoch, whether that epoch's model is the one selected, and the training loss with its parts."""
    rows = []
    for run in runs.itertuples():
        for point in json.loads(Path(run.record).read_text(encoding="utf-8"))["curve"]:
            rows.append({"corpus": run.corpus, "arch": run.arch, "size": run.size, "seed": run.seed,
                         "epoch": point["epoch"], "dev_f1": point["dev_f1"], "test_f1": point.get("test_f1"),
                         "selected": point["epoch"] == run.best_epoch,
                         **{k: v for k, v in point.items() if k == "loss" or k.startswith("loss_")}})
    return pd.DataFrame(rows)
