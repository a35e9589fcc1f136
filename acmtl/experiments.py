"""What the notebooks share: where results go, the training grid, tables with provenance, figures.

Every notebook runs under one profile (``acmtl.config``). Only a *published* run writes the committed
``results/`` and ``figures/``: the ``default`` profile, started by ``./run_all.sh`` (which sets
``ACMTL_PUBLISH=1`` in the kernel's environment), with every parameter as committed (:func:`start_notebook`). Any
other run writes ``build/<profile>/...`` (``build/exercise/`` for an unpublished default run), so an
exercise, a smoke or a paper run never overwrites them. ``ACMTL_OUTPUT_ROOT=DIR`` moves the root (the
repository by default) for every profile: the tests point it at a temporary folder.
"""

from __future__ import annotations

import ast
import io
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from tqdm.std import tqdm

import acmtl
from acmtl.claims import paper_table2, table2_applies_to
from acmtl.config import get_profile
from acmtl.data.fetch import atomic_write_bytes
from acmtl.paths import cache_dir, runs_dir

if TYPE_CHECKING:
    from acmtl.runs import RunSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_ROOT_ENV = "ACMTL_OUTPUT_ROOT"
SHARED_RUN_PROFILES = ("default", "paper")  # their runs live in the one run cache, runs/
METRICS = ("precision", "recall", "f1")
STAND_IN = "-stand-in"  # suffix of the small corpora a smoke run trains on

# How tables and figures name our architectures, and which row of the paper each one answers.
ARCH_LABELS = {
    "acmtl": "AC-MTL",
    "encoder_crf": "RoBERTa-CRF (m3e-small)",
    "encoder_pinyin_crf": "RoBERTa+pinyin-CRF",  # beyond the paper: isolates the pinyin features
    "bilstm_crf": "BiLSTM-CRF",
    "xlnet_crf": "XLNet-CRF",
    "bert_cnn": "BERT+CNN",
    "bert_mhsa": "BERT+MHSA",
    "bert_mhsa_cnn": "BERT+MHSA+CNN",
    "acmtl_soft": "AC-MTL, soft sharing",  # beyond the paper
}
PAPER_MODELS = {  # arch -> the model name in acmtl.claims (paper_table2 / paper_table3 / paper_speed_params)
    "acmtl": "AC-MTL", "encoder_crf": "RoBERTa", "bilstm_crf": "BiLSTM", "xlnet_crf": "XLNet",
    "bert_cnn": "BERT+CNN", "bert_mhsa": "BERT+MHSA", "bert_mhsa_cnn": "BERT+MHSA+CNN",
}


PAPER_TABLE2_COLUMNS = ("paper_precision", "paper_recall", "paper_f1", "paper_note")


def paper_table2_for(corpus: str) -> pd.DataFrame:
    """The paper's Table 2 with our ``arch`` for each model, its numbers beside ``corpus``: NaN unless the paper's
    Table 2 is read against that corpus (MSRA, :func:`acmtl.claims.table2_applies_to`)."""
    paper = paper_table2().rename(columns={"note": "paper_note"})
    paper.insert(0, "arch", paper["model"].map({name: arch for arch, name in PAPER_MODELS.items()}))
    if not table2_applies_to(corpus):
        paper[list(PAPER_TABLE2_COLUMNS)] = float("nan")
    return paper


def with_paper_table2(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (columns corpus, arch, size) with the paper's Table 2 row for the same model and size as
    :data:`PAPER_TABLE2_COLUMNS`, NaN on every corpus but MSRA (shown as a dash)."""
    paper = pd.concat([paper_table2_for(c).assign(corpus=c) for c in table["corpus"].unique()], ignore_index=True)
    paper = paper.rename(columns={"sample_size": "size"})[["corpus", "arch", "size", *PAPER_TABLE2_COLUMNS]]
    return table.merge(paper, on=["corpus", "arch", "size"], how="left")


def output_root() -> Path:
    """The folder under which results/, figures/ and build/ go: ``$ACMTL_OUTPUT_ROOT`` or the repository."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or REPO_ROOT).expanduser().resolve()


def _profile_root(profile: str) -> Path:
    get_profile(profile)  # an unknown profile fails here, with the list of known ones
    return output_root() if profile == "default" else output_root() / "build" / profile


def _mkdirs(base: Path) -> tuple[Path, Path]:
    dirs = base / "results", base / "figures"
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def output_dirs(profile: str) -> tuple[Path, Path]:
    """(results_dir, figures_dir) of ``profile``, created if missing: where its tables are read from."""
    return _mkdirs(_profile_root(profile))


# -- where a notebook run writes: published (results/, figures/) or an exercise (build/exercise/) -------

EXERCISE = "exercise"  # build/exercise/: the default profile's outputs from an unpublished run
_exercise_reason: str | None = None  # set by start_notebook: why this kernel's default-profile writes go to build/


def target_dirs(profile: str) -> tuple[Path, Path]:
    """(results_dir, figures_dir) that :func:`write_table` and :func:`save_figure` write for ``profile``: its
    :func:`output_dirs`, except that an unpublished default-profile notebook run writes ``build/exercise/``."""
    if profile == "default" and _exercise_reason is not None:
        return _mkdirs(output_root() / "build" / EXERCISE)
    return output_dirs(profile)


def committed_parameters(notebook: str) -> dict:
    """The literal values of the parameters cell of ``notebooks/<notebook>.ipynb`` as committed (git HEAD; the
    file on disk outside a git checkout): the settings the committed results were made with."""
    path = f"notebooks/{notebook}.ipynb"
    try:
        text = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"HEAD:{path}"], capture_output=True, text=True,
                              check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        text = (REPO_ROOT / path).read_text(encoding="utf-8")
    cell = next(c for c in json.loads(text)["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


PUBLISH_ENV = "ACMTL_PUBLISH"  # "1" in the environment ./run_all.sh starts its notebooks' kernels with


def start_notebook(notebook: str, namespace: Mapping) -> Path:
    """Decide where a notebook run writes, say so as its first output, and return that folder (relative).

    ``namespace``: the notebook's ``globals()``, holding its parameters. The run is *published* (it writes
    results/ and figures/) only under the default profile, started by ``./run_all.sh`` (``$ACMTL_PUBLISH`` is 1)
    with every parameter equal to the committed parameters cell; otherwise its default-profile tables and
    figures go to build/exercise/, and the committed ones stay as they are. The switch lives in the environment,
    not in a notebook parameter: an executed notebook stores the parameters papermill injected, so a stored
    ``publish = True`` would publish again whenever the committed notebook is rerun by hand.
    """
    global _exercise_reason
    committed = committed_parameters(notebook)
    profile = namespace["profile"]
    changed = [name for name, value in committed.items() if name != "profile" and namespace.get(name) != value]
    _exercise_reason = None
    if profile == "default" and os.environ.get(PUBLISH_ENV) != "1":
        _exercise_reason = f"not started by ./run_all.sh (no {PUBLISH_ENV}=1)"
    elif profile == "default" and changed:
        _exercise_reason = "parameters changed from the committed ones: " + ", ".join(changed)
    results, _ = target_dirs(profile)
    where = _shown(results.parent)
    if _exercise_reason:
        print(f"EXERCISE RUN, {_exercise_reason}: tables and figures go to {where}/results and {where}/figures; "
              "the committed results/ and figures/ are left as they are.")
        # what to expect of this rerun; never in a published run's output, which would keep the time of the run
        # it replaces beside its own (the notebook's metadata)
        from acmtl.findings import time_note

        print(time_note(notebook))
    elif profile == "default":
        print("Published run (default profile, committed parameters, ./run_all.sh): writes results/ and figures/.")
    else:
        print(f"Profile {profile!r}: tables and figures go to {where}/results and {where}/figures.")
    return results.parent


def kernel_config():
    """The traitlets configuration to start notebook kernels with (``config=`` of nbclient's NotebookClient or
    papermill's execute_notebook): IPC transport where the platform has it (POSIX), so the kernel's code and
    outputs pass through sockets only this user can open, not unencrypted local TCP ports. The sockets live in
    Jupyter's runtime folder: their default path is relative, and the kernel runs in the notebook's folder."""
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Config({"KernelManager": {"transport": "ipc", "ip": str(runtime / f"acmtl-kernel-{os.getpid()}")}})


def _shown(path: Path) -> str:
    """``path`` relative to the output root (never a machine's absolute path in a notebook's output)."""
    try:
        return str(path.relative_to(output_root())) or "."
    except ValueError:
        return path.name


def runs_root(profile: str) -> Path:
    """The run cache: runs/ for default and paper (shared with the CLI); a private one for smoke."""
    if profile in SHARED_RUN_PROFILES:
        root = runs_dir()
        return root if root.is_absolute() else REPO_ROOT / root  # the same folder from notebooks/ as from the CLI
    return _profile_root(profile) / "runs"


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


GIB_PER_WORKER = 4  # a training worker peaked near 3 GiB (MSRA-3000, m3e-small): 4 leaves room for the rest


def default_workers(cores: int | None = None, memory_gib: float | None = None) -> int:
    """One 1-thread worker per core, as many as memory allows (:data:`GIB_PER_WORKER` each): on 2 cores two
    1-thread workers train 1.27x the characters per second of one 2-thread process (measured); each worker
    holds its own model. Threads per worker are then cores // workers (:func:`_ensure_records`)."""
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
    """The record (:mod:`acmtl.records`) of the finished run of ``spec`` in ``run_dir``: its scores, per-sentence
    counts, curve and times, and the machine and commit it ran at."""
    from acmtl.records import build_record
    from acmtl.runs import run_splits

    splits = run_splits(spec.corpus, spec.size, spec.train.seed)[1]
    git = _git()
    return build_record(run_dir, {name: [s.tags for s in part] for name, part in splits.items()},
                        where={**device_info(), "commit": git["commit"], "dirty": git["dirty"]})


def _train_and_record(spec: RunSpec, root: str, threads: int | None) -> dict:
    """A worker's task: train (or resume, or find) the run of ``spec`` under ``root``; its record, which the
    process that plans writes (a Dask worker may share no disk with it)."""
    import torch
    import transformers

    from acmtl.runs import ensure_run

    transformers.utils.logging.disable_progress_bar()  # a new process: the parent's setting does not reach it
    if threads:
        torch.set_num_threads(threads)
    return record_of(spec, ensure_run(spec, progress=False, root=Path(root)))


def _label(spec: RunSpec) -> str:
    return f"{spec.arch} size={spec.size} seed={spec.train.seed}"


def _run_dirs(specs: Iterable[RunSpec], root: Path) -> list[Path]:
    """Each spec's folder in the run cache under ``root`` (preparing a spec loads and hashes its data)."""
    from acmtl.runs import prepare, run_id

    return [root / run_id(prepare(spec)[0]) for spec in specs]


def _trained(bar: tqdm, spec: RunSpec, lines: bool) -> None:
    """One more run trained: the bar says so, and with ``lines`` (the bar is off) a line of its own does."""
    if lines:
        print(f"trained {_label(spec)}", flush=True)
    bar.set_postfix_str(f"trained {_label(spec)}")
    bar.update()


@contextmanager
def _executor(workers: int, scheduler: str | None) -> Iterator[tuple[Executor, int]]:
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


def _ensure_records(specs: Sequence[RunSpec], run_dirs: Sequence[Path], results: Path, workers: int, bar: tqdm, *,
                    lines: bool = False, hours: float | None = None, retrain: bool = False, weights: bool = False,
                    scheduler: str | None = None) -> dict[str, dict]:
    """Every spec's record (:mod:`acmtl.records`) by run folder (``run_dirs``, in the same order): read from
    ``results``' records; else written from the run cache; else trained and written the moment the run finishes,
    one after another in this process (``workers`` 1), by ``workers`` processes, or on a Dask cluster
    (``scheduler``). ``hours``: no run starts after that budget (a run under way finishes; rerun to go on).
    ``retrain``: ignore the records (the run cache still answers: a cached run is the same run). ``weights``: an
    analysis needs the trained models, so a recorded run missing from the run cache is trained again (its record,
    from the machine that made the tables, is kept). ``lines``: also print a line for each run trained. A run's
    file lock keeps two processes, or machines that share the run cache, from training it twice."""
    from acmtl.records import read_records, write_record
    from acmtl.runs import is_complete

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

    if todo and workers <= 1 and not scheduler:
        while (item := next_run()) is not None:
            bar.set_postfix_str(_label(item[0]))
            finished(item[0], _train_and_record(item[0], str(item[1].parent), None))
    elif todo:
        with _executor(min(workers, len(todo)), scheduler) as (pool, slots):
            # one missing run gets every core, not a worker's share; a Dask worker keeps its own threads
            threads = None if scheduler else max(1, (os.cpu_count() or 1) // slots)
            running = {}
            for _ in range(slots):
                if (item := next_run()) is not None:
                    running[pool.submit(_train_and_record, item[0], str(item[1].parent), threads)] = item[0]
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(running.pop(future), future.result())  # a worker's exception surfaces here
                    if (item := next_run()) is not None:
                        running[pool.submit(_train_and_record, item[0], str(item[1].parent), threads)] = item[0]
    return found


def run_spec(profile: str, corpus: str, arch: str, size: int | None, seed: int, *, encoder: str | None = None,
             model_overrides: dict | None = None, **train_overrides) -> RunSpec:
    """The run of ``arch`` on ``corpus`` (a spec, as :func:`acmtl.data.corpora.load_corpus` takes it) at ``size``
    and ``seed`` under ``profile``: the profile's training settings and encoder, the settings tuning chose for
    ``arch`` (:meth:`acmtl.config.Profile.tuned_settings`), then the overrides. Table 2's models at the profile's
    ``curves`` size and seed score their test split after every epoch (Figure 8 reads those runs)."""
    from acmtl.runs import RunSpec

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


def planned_runs(profile: str) -> dict[str, RunSpec]:
    """Every run the notebooks of ``profile`` train, by folder in the run cache, longest first: Table 2's grid,
    Table 3's ablation and diagnosis, notebook 06's legal model (seed 0, its notebook's default; Figures 6-8 and 10
    reuse these runs; notebook 08's tuning trials are its own). Trained by :func:`train_plan` in one pool of
    workers, they leave no core idle at the end of each notebook's grid, and the notebooks then run on a quiet
    machine (the benchmark needs one)."""
    from acmtl.diagnosis import variant_grid

    prof = get_profile(profile)
    wanted = [(corpus, arch, size, seed, None)
              for corpus, grid in prof.table2.items() for size, seeds in grid.items()
              for arch in TABLE2_ARCHS for seed in seeds]
    if prof.ablation_size is not None:
        wanted += [("msra", arch, prof.ablation_size, seed, None)
                   for arch in prof.ablation_archs for seed in prof.ablation_seeds]
        wanted += [("msra", variant.arch, prof.ablation_size, seed, variant.overrides)
                   for _, variant, seeds in variant_grid(prof.diagnosis) for seed in seeds]
    wanted.append(("legal", "acmtl", legal_size(profile), 0, None))
    specs = [run_spec(profile, corpus_spec(profile, short_text_corpus() if corpus == "short" else corpus),
                      arch, size, seed, model_overrides=overrides) for corpus, arch, size, seed, overrides in wanted]
    plan = {}
    for spec, run_dir in zip(specs, _run_dirs(specs, runs_root(profile))):
        plan.setdefault(run_dir.name, spec)  # a run two tables share (same folder) is trained once
    return dict(sorted(plan.items(), key=lambda item: -(item[1].size or 0)))


def usual_model(profile: str, arch: str) -> dict:
    """Every :class:`acmtl.model.ModelConfig` field of ``arch`` as Table 2 trains it: the defaults, then tuning's."""
    from acmtl.model import ModelConfig

    return {**{f.name: f.default for f in fields(ModelConfig)}, **get_profile(profile).tuned_settings(arch)[1]}


def records_root(profile: str) -> Path:
    """Where ``profile``'s run records live (:mod:`acmtl.records`): ``results/runs/`` for default (in git)."""
    from acmtl.records import records_dir

    return records_dir(output_dirs(profile)[0])


def plan_table(profile: str, plan: Mapping[str, RunSpec] | None = None) -> pd.DataFrame:
    """One row per planned run (``plan``, default :func:`planned_runs`): its folder in the run cache, corpus, size,
    model, seed, how its model differs from the architecture's usual one (a diagnosis variant), whether its record
    is in ``results/runs/`` (then it is done, at this code: the folder is the key) and whether the run cache has
    it finished (then its weights are here)."""
    from acmtl.runs import is_complete

    root = runs_root(profile)
    rows = []
    for folder, spec in (planned_runs(profile) if plan is None else plan).items():
        usual = usual_model(profile, spec.arch)
        rows.append({"folder": folder, "corpus": spec.corpus.split("=")[0], "size": spec.size, "model": spec.arch,
                     "seed": spec.train.seed,
                     "variant": ",".join(f"{k}={v}" for k, v in spec.model_overrides.items() if usual.get(k) != v),
                     "recorded": (records_root(profile) / f"{folder}.json").is_file(),
                     "cached": is_complete(root / folder)})
    return pd.DataFrame(rows).astype({"size": "Int64"})  # integers, blank for a corpus' own splits


def train_plan(profile: str, plan: Mapping[str, RunSpec] | None = None, *, workers: int | None = None,
               progress: bool = True, hours: float | None = None, retrain: bool = False,
               scheduler: str | None = None) -> dict[str, dict]:
    """Record every planned run (``plan``, default :func:`planned_runs`) of ``profile``: training those with no
    record in ``results/runs/`` and none in the run cache, ``workers`` at a time (default
    :func:`training_workers`) or on the Dask cluster at ``scheduler``, starting none after ``hours``; the records
    by folder (fewer than planned when the budget ran out)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    plan = planned_runs(profile) if plan is None else plan
    run_dirs = [runs_root(profile) / folder for folder in plan]
    bar = tqdm(total=len(plan), desc=f"{profile} runs", unit="run", disable=not progress, mininterval=0)
    found = _ensure_records(list(plan.values()), run_dirs, records_root(profile).parent,
                            training_workers() if workers is None else workers, bar, hours=hours, retrain=retrain,
                            scheduler=scheduler)
    bar.close()
    return found


VERIFY_TOLERANCE = 2.0  # F1 points: runs on another device, precision or thread count differ by float order


def verify_records(profile: str, n: int, *, seed: int = 0) -> pd.DataFrame:
    """Retrain ``n`` randomly chosen recorded runs of ``profile``'s plan from scratch (a temporary run cache, the
    thread count of the record) and put each score beside its record: identical where device, CPU, precision and
    threads match (``same_setting``), else expected within :data:`VERIFY_TOLERANCE` F1 points."""
    import random
    import tempfile

    from acmtl.records import read_records

    plan = planned_runs(profile)
    recorded = read_records(records_root(profile).parent, plan)
    rows = []
    with tempfile.TemporaryDirectory(prefix="acmtl-verify-") as cache:
        for folder in random.Random(seed).sample(sorted(recorded), min(n, len(recorded))):
            old = recorded[folder]
            new = _train_and_record(plan[folder], cache, old["where"].get("threads"))
            same = all(old["where"].get(k) == new["where"].get(k) for k in ("device", "cpu", "precision", "threads"))
            for split, scores in old["scores"].items():
                now = new["scores"][split]["f1"]
                rows.append({"folder": folder, "model": old["spec"]["arch"], "size": old["spec"]["size"],
                             "seed": old["spec"]["seed"], "split": split, "recorded_f1": scores["f1"], "now_f1": now,
                             "same_setting": same, "identical": now == scores["f1"],
                             "within_tolerance": abs(now - scores["f1"]) * 100 <= VERIFY_TOLERANCE})
    return pd.DataFrame(rows)


def record_row(record: dict) -> dict:
    """A run's record as a row of scores: what a table is computed from (no weights needed)."""
    spec, times = record["spec"], record["times"]
    return {"arch": spec["arch"], "size": spec["size"], "seed": spec["seed"], "folder": record["folder"],
            "best_epoch": times["best_epoch"], "epochs_run": times["epochs_run"],
            "train_seconds": times["train_seconds"], "score_seconds": times["score_seconds"],
            **{f"{split}_{key}": scores[key] for split, scores in record["scores"].items()
               for key in (*METRICS, "support")}}


def train_grid(profile: str, corpus: str, archs: Iterable[str], sizes: Iterable[int | None],
               seeds: Iterable[int], *, progress: bool = True, model_overrides: dict | None = None,
               workers: int | None = None, weights: bool = False, **train_overrides) -> pd.DataFrame:
    """Every (arch, size, seed)'s run, one row of scores each, from its record (:func:`record_row`), training the
    runs that have none (see :func:`_ensure_records`).

    A run is :func:`run_spec`'s, the spec ``python -m acmtl train`` builds, so runs trained from the command line
    are reused. Under a profile with a stand-in corpus (smoke) ``corpus`` is replaced by :func:`corpus_spec`'s
    stand-in; the ``corpus`` column keeps the name asked for, ``corpus_spec`` says what was trained on. The
    ``run_dir`` column is the run's folder in the run cache, ``record`` its record's file. ``weights``: the
    caller needs the trained models (an analysis), so they are trained where the run cache lacks them; else the
    records suffice and the weights may not be on this machine.
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
    run_dirs = _run_dirs(specs, root)
    before = set((records_root(profile)).glob("*.json"))
    found = _ensure_records(specs, run_dirs, records_root(profile).parent,
                            training_workers() if workers is None else workers, bar, lines=progress and not live,
                            weights=weights)
    bar.close()
    return pd.DataFrame([{"corpus": corpus, "corpus_spec": spec_used, **record_row(found[run_dir.name]),
                          "run_dir": str(run_dir), "record": str(records_root(profile) / f"{run_dir.name}.json"),
                          "trained_now": records_root(profile) / f"{run_dir.name}.json" not in before}
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


def summarize(df: pd.DataFrame, by: Sequence[str] = ("corpus", "arch", "size"),
              splits: Sequence[str] = ("test", "full_test")) -> pd.DataFrame:
    """Mean, sample std and seed count per group, plus a 'mean ± std' text column per split and metric (percent)."""
    from acmtl.evaluate import format_mean_std, summarize_seeds

    rows = []
    for key, group in df.groupby(list(by), sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(group)
        for split in splits:
            names = [f"{split}_{m}" for m in METRICS]
            if not set(names) <= set(group.columns):
                continue
            stats = summarize_seeds(group[names].to_dict("records"), keys=names)
            for name in names:
                row[f"{name}_mean"], row[f"{name}_std"] = stats[name]["mean"], stats[name]["std"]
                std = stats[name]["std"] if len(group) > 1 else None
                row[name] = format_mean_std(stats[name]["mean"], std)
        rows.append(row)
    return pd.DataFrame(rows)


def architecture_parameters(arch: str, types: Sequence[str], encoder_config: dict | None = None, *,
                            encoder: str | None = None) -> dict[str, int]:
    """Exact parameter counts (total, encoder, added) of ``arch`` for these entity types, built on torch's meta
    device: no memory, no weights. The encoder's size comes from ``encoder_config`` (e.g.
    ``bert_base_config().to_dict()``), else from the configuration of ``encoder`` (default: the embedded one)."""
    import torch
    from transformers import AutoConfig

    from acmtl.checkpoint import build_model
    from acmtl.encoders import DEFAULT_ENCODER, resolve_encoder
    from acmtl.model import ModelConfig, count_parameters
    from acmtl.train import tag_names

    if encoder_config is None:
        encoder_config = AutoConfig.from_pretrained(resolve_encoder(encoder or DEFAULT_ENCODER)).to_dict()
    cfg = ModelConfig.for_architecture(arch, tag_names(types), encoder_config=dict(encoder_config))
    with torch.device("meta"):
        model, _ = build_model(cfg, pretrained=False)
    return count_parameters(model)


GENERATED = ("results", "figures")  # written by run_all.sh itself: never a change to the experiment
NOTEBOOKS = "notebooks"  # executed in place by run_all.sh: only a change to a cell's source is one


RUN_ALL_PARAMETERS = ("profile",)  # what run_all.sh passes: provenance records it in its own field


def _run_all_parameters_only(cell: dict, source: str) -> bool:
    """Whether ``cell`` is papermill's injected-parameters cell setting nothing but :data:`RUN_ALL_PARAMETERS`."""
    if "injected-parameters" not in cell.get("metadata", {}).get("tags", []):
        return False
    try:
        statements = ast.parse(source).body
    except SyntaxError:
        return False
    return all(isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) and t.id in RUN_ALL_PARAMETERS
                                                 for t in s.targets) for s in statements)


def _cell_sources(notebook_json: str) -> list[tuple[str, str]]:
    """(cell type, source) of every cell: what a notebook asks for, without what running it wrote (outputs, and
    the cell papermill injects with run_all.sh's profile; any other injected value counts)."""
    cells = json.loads(notebook_json).get("cells", [])
    sources = [(cell, "".join(cell.get("source", ""))) for cell in cells]
    return [(cell.get("cell_type", ""), source) for cell, source in sources
            if not _run_all_parameters_only(cell, source)]


def _only_outputs_changed(path: str, git: Callable[..., str]) -> bool:
    """Whether ``path`` is a notebook under notebooks/ whose cell sources equal HEAD's (outputs may differ)."""
    if not (path.startswith(f"{NOTEBOOKS}/") and path.endswith(".ipynb")):
        return False
    try:
        current = (REPO_ROOT / path).read_text(encoding="utf-8")
        return _cell_sources(current) == _cell_sources(git("show", f"HEAD:{path}"))
    except (OSError, subprocess.SubprocessError, ValueError):  # new, deleted or unreadable: a change
        return False


def _git() -> dict:
    """The commit, and whether the experiment differs from it: any changed or untracked file but the generated
    outputs, counting an executed notebook as changed only where a cell's source differs from the commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.rstrip("\n")
    try:
        status = git("status", "--porcelain", "-z", "--untracked-files=all", "--", ".",
                     *(f":!{d}" for d in GENERATED))
        entries, changed = iter(status.split("\0")), []
        for entry in entries:  # "XY path"; a rename or copy is followed by its original path
            if entry:
                if {"R", "C"} & set(entry[:2]):
                    next(entries, None)
                changed.append(entry[3:])
        changed = [path for path in changed if not _only_outputs_changed(path, git)]
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed), "changed_files": changed[:20]}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "changed_files": []}


def device_info() -> dict:
    """The machine the numbers come from: CPU model, GPU name (if one is used), torch threads."""
    import torch

    from acmtl.bench import machine_info
    from acmtl.predict import default_device

    info = machine_info(default_device())
    info["torch_threads"] = torch.get_num_threads()
    info["platform"] = platform.platform()
    return info


def describe_device(info: dict | None = None) -> str:
    """One line naming the device, for notebook text and figure captions."""
    info = info or device_info()
    cpu = f"{info.get('cpu') or platform.processor() or 'unknown CPU'}, {info['cpu_count']} cores"
    if info.get("gpu"):
        return f"{info['gpu']} (GPU), host {cpu}"
    threads = info["torch_threads"]
    return f"{cpu} (CPU only), {threads} torch thread{'s' * (threads != 1)}"


def _corpus_sources(spec: str) -> dict:
    from acmtl.data.corpora import load_corpus

    corpus = load_corpus(spec)
    return {"spec": spec, "name": corpus.name, "sources": dict(corpus.sources)}


def _mib(folder: Path) -> float:
    """Disk use of the files under ``folder`` in MiB (0 when it does not exist)."""
    sizes = (f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    return round(sum(sizes) / 2**20, 1) if folder.is_dir() else 0.0


def resources(profile: str) -> dict:
    """What a run of the notebooks costs besides time: this process's peak memory (a notebook trains in its own
    kernel, so training is included) and the disk taken by the environment, the data and encoder cache and
    the run cache, when the table is written."""
    import resource

    return {"peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
            "disk_mib": {"environment": _mib(Path(sys.prefix)), "cache": _mib(cache_dir()),
                         "runs": _mib(runs_root(profile))}}


def _portable(value):
    """``value`` (nested dicts and lists) with every absolute path made relative to the output root, the
    repository or the run cache (else cut to its name): a provenance record names no machine's folders."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v) for v in value]
    if not (isinstance(value, str) and value.startswith("/")):
        return value
    path = Path(value)
    for root, shown in ((output_root(), ""), (REPO_ROOT, ""), (runs_root("default"), "runs")):
        if path.is_relative_to(root):
            return str(Path(shown) / path.relative_to(root))
    return path.name


def records_summary(extra: dict) -> dict:
    """How many run records a table was computed from (``extra["runs"]``: rows with a ``record`` file) and the
    code digests they were trained with: one digest, the current one, when the table is at this code."""
    from acmtl.runs import code_digest

    files = {row["record"] for row in extra.get("runs", []) if isinstance(row, dict) and row.get("record")}
    digests = [json.loads(Path(f).read_text(encoding="utf-8"))["code_sha256"] for f in sorted(files)]
    return {"runs": len(digests), "at_this_code": digests.count(code_digest()),
            "code_sha256": sorted(set(digests))}


def provenance(profile: str, *, corpora: Iterable[str] = (), seeds: Iterable[int] = (), started: float,
               extra: dict | None = None) -> dict:
    prof = get_profile(profile)
    extra = extra or {}
    return {
        "git": _git(),
        "profile": profile,
        "encoder": prof.encoder,
        "train_config": {k: v for k, v in asdict(prof.train).items() if k != "seed"},
        "corpora": [_corpus_sources(c) for c in corpora],
        "seeds": list(seeds),
        "device": device_info(),
        "wall_seconds": round(time.time() - started, 1),
        "resources": resources(profile),
        "acmtl_version": acmtl.__version__,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "records": records_summary(extra),
        "extra": _portable(extra),
    }


def write_table(df: pd.DataFrame, name: str, profile: str, *, corpora: Iterable[str] = (),
                seeds: Iterable[int] = (), started: float, extra: dict | None = None) -> Path:
    """results_dir/name.csv (atomically) and name.provenance.json beside it (:func:`target_dirs`); returns the
    CSV path."""
    results, _ = target_dirs(profile)
    path = results / f"{name}.csv"
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
    record = provenance(profile, corpora=corpora, seeds=seeds, started=started, extra=extra)
    record["table"] = {"file": path.name, "rows": len(df), "columns": list(df.columns)}
    atomic_write_bytes(results / f"{name}.provenance.json",
                       (json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
    return path


def save_figure(fig, name: str, profile: str) -> list[Path]:
    """figures_dir/name.png (150 dpi) and name.svg (:func:`target_dirs`), each written atomically, without
    timestamps."""
    _, figures = target_dirs(profile)
    paths = []
    for suffix, options in ((".png", {"dpi": 150, "metadata": {"Software": None}}),
                            (".svg", {"metadata": {"Date": None}})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], bbox_inches="tight", **options)
        path = figures / f"{name}{suffix}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


# -- the tables of notebooks 01-03 and 05, built from their runs ---------------------------------------

XLNET_NOT_RUN = ("not run: no Chinese XLNet weights on any package registry; with a local copy run "
                 "`python -m acmtl train --model encoder_crf --encoder /path/to/chinese-xlnet-base --profile paper` "
                 "on a GPU (see README)")


def table2_table(per_run: pd.DataFrame, plan: Mapping[str, Mapping[int, Sequence[int]]]) -> pd.DataFrame:
    """Table 2: :func:`summarize` of ``per_run`` per corpus, model and size, a "not run" XLNet-CRF row for every
    corpus and size of ``plan``, and the paper's row for the same model and size beside MSRA only."""
    not_run = pd.DataFrame([{"corpus": corpus, "arch": "xlnet_crf", "size": size, "seeds": 0}
                            for corpus, grid in plan.items() for size in grid])
    table = pd.concat([summarize(per_run, by=("corpus", "arch", "size")), not_run], ignore_index=True)
    table.insert(1, "corpus_label", table["corpus"].map(corpus_label))
    table.insert(3, "model", table["arch"].map(ARCH_LABELS))
    table["status"] = table["arch"].map(lambda arch: XLNET_NOT_RUN if arch == "xlnet_crf" else "measured")
    return with_paper_table2(table)


# The Figure 6 rows counted at the paper's size (BERT-base / XLNet-base), and the paper's model each one answers.
BASE_SIZE_LABELS = {"encoder_crf_bert_base": "RoBERTa-CRF, BERT-base size (count only)",
                    "xlnet_crf_base": "XLNet-CRF, XLNet-base size (count only)"}
FIGURE6_PAPER_ROW = {"acmtl_bert_base": "AC-MTL", "encoder_crf_bert_base": "RoBERTa", "xlnet_crf_base": "XLNet",
                     "bilstm_crf": "BiLSTM"}
XLNET_BASE = {"vocab_size": 32000, "d_model": 768, "n_layer": 12, "n_head": 12, "d_inner": 3072}  # ymcui/Chinese-XLNet


def base_size_parameters(types: Sequence[str]) -> dict[str, dict[str, int]]:
    """Exact parameter counts at the paper's encoder size, on the meta device: AC-MTL and encoder-CRF on
    BERT-base, and XLNet-base with encoder-CRF's head (a 768-wide encoder's CRF head is the same)."""
    import torch
    from transformers import XLNetConfig, XLNetModel

    from acmtl.encoders import bert_base_config

    bert_base = bert_base_config().to_dict()
    encoder_crf = architecture_parameters("encoder_crf", types, bert_base)
    with torch.device("meta"):
        xlnet = sum(p.numel() for p in XLNetModel(XLNetConfig(**XLNET_BASE)).parameters())
    return {"acmtl_bert_base": architecture_parameters("acmtl", types, bert_base),
            "encoder_crf_bert_base": encoder_crf,
            "xlnet_crf_base": {"total": xlnet + encoder_crf["added"], "encoder": xlnet, "added": encoder_crf["added"]}}


def figure6_table(bench: dict, counted: Mapping[str, Mapping[str, int]], paper: pd.DataFrame) -> pd.DataFrame:
    """One row per model: what ``bench`` (:func:`acmtl.bench.run_benchmark`) measured on this machine, then the
    ``counted`` models it did not run, with the paper's parameters and speed for the same model at its size."""
    precisions = bench["protocol"]["precisions"]
    rows = [{"model": name, "label": r["label"], "measured_on": "this machine",
             **{f"params_{k}": v for k, v in r["params"].items()}, "gflop_per_token": r["gflop_per_token"],
             **{f"tokens_per_s_{p}": r["tokens_per_s"][p] for p in precisions}} for name, r in bench["models"].items()]
    rows += [{"model": name, "label": BASE_SIZE_LABELS[name], "measured_on": "count only (meta device, no weights)",
              **{f"params_{k}": v for k, v in counts.items()}} for name, counts in counted.items()
             if name not in bench["models"]]
    table = pd.DataFrame(rows)
    table["params_millions"] = table["params_total"] / 1e6
    device = describe_device(bench["machine"] | {"torch_threads": bench["machine"]["threads"]})
    table["device"] = table["measured_on"].map(lambda where: device if where == "this machine" else "")
    table["paper_model"] = table["model"].map(FIGURE6_PAPER_ROW)
    paper = paper[["model", "paper_params_millions", "paper_tokens_per_s", "paper_device"]]
    return table.merge(paper.rename(columns={"model": "paper_model"}), on="paper_model", how="left")


# Table 3's steps: (component, the variant with it, the variant without it).
ABLATION_STEPS = (("pinyin features", "encoder_pinyin_crf", "encoder_crf"),
                  ("attention (MHSA) on top of CNN", "bert_mhsa_cnn", "bert_cnn"),
                  ("CNN on top of attention", "bert_mhsa_cnn", "bert_mhsa"),
                  ("multi-task learning", "acmtl", "bert_mhsa_cnn"),
                  ("soft instead of shared layers", "acmtl_soft", "acmtl"))


def ablation_steps(per_run: pd.DataFrame, paper_f1: Mapping[str, float]) -> pd.DataFrame:
    """What each component adds, paired by seed: per step of :data:`ABLATION_STEPS` whose two variants ran, the
    mean and per-seed F1 difference (points) on the subset test split and the full test set, and the same
    difference of the paper's F1 (``paper_f1``: arch -> F1 in percent)."""
    f1 = per_run.pivot_table(index="seed", columns="arch", values=["test_f1", "full_test_f1"])
    rows = []
    for step, with_, without in ABLATION_STEPS:
        if not {with_, without} <= set(per_run["arch"]):
            continue
        row = {"component": step, "with": ARCH_LABELS[with_], "without": ARCH_LABELS[without], "seeds": len(f1)}
        for split in ("test_f1", "full_test_f1"):
            diff = 100 * (f1[split][with_] - f1[split][without])
            row[f"{split}_difference"] = round(diff.mean(), 2)
            row[f"{split}_difference_per_seed"] = " ".join(f"{d:+.2f}" for d in diff)
        row["paper_difference"] = round(paper_f1.get(with_, float("nan")) - paper_f1.get(without, float("nan")), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def figure8_vs_paper(curve_runs: Mapping[str, pd.DataFrame], noise: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Figure 8 beside the paper: per panel and model our F1 (percent) and the paper's final F1 for the same model.

    ``curve_runs``: panel ("8(a)", "8(c)") -> :func:`train_grid` rows; ``noise``: :func:`acmtl.analysis.noise_scores`
    rows (panel 8(b), noisy rates only); ``paper``: :func:`acmtl.claims.paper_robustness`. XLNet, which we cannot
    run, keeps its row with the paper's number only."""
    def claim(panel: str, model: str) -> float:
        row = paper[paper["context"].str.startswith(panel) & (paper["model"] == model)]
        return row["paper_final_f1"].iloc[0] if len(row) else float("nan")

    rows = [{"panel": panel, "data": f"{corpus_label(r.corpus)}, test split of the subset", "arch": r.arch,
             "model": ARCH_LABELS[r.arch], "f1": 100 * r.test_f1, "full_test_f1": 100 * r.full_test_f1,
             "paper_model": PAPER_MODELS.get(r.arch, ""), "paper_final_f1": claim(panel, PAPER_MODELS.get(r.arch, ""))}
            for panel, runs in curve_runs.items() for r in runs.itertuples()]
    rows += [{"panel": "8(b)", "data": f"MSRA {r.split}, noise rate {r.rate} (realised {r.realised_rate:.3f})",
              "arch": r.arch, "model": ARCH_LABELS[r.arch], "f1": 100 * r.f1, "full_test_f1": float("nan"),
              "paper_model": PAPER_MODELS.get(r.arch, ""),
              "paper_final_f1": claim("8(b)", PAPER_MODELS.get(r.arch, ""))}
             for r in noise[noise["rate"] > 0].itertuples()]
    rows += [{"panel": r.context[:4], "data": f"{r.context} (not run: needs Chinese XLNet weights, "
              "--encoder /path/to/chinese-xlnet-base)", "arch": "", "model": "XLNet", "f1": float("nan"),
              "full_test_f1": float("nan"), "paper_model": "XLNet", "paper_final_f1": r.paper_final_f1}
             for r in paper[paper["model"] == "XLNet"].itertuples()]
    return pd.DataFrame(rows)
