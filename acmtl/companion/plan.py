"""The plan: every run the notebooks of a profile need, trained into run records (:mod:`acmtl.companion.records`)
by one pool of workers (or a Dask cluster) before the notebooks run, resumable on any machine from the records in
git; and the spot-check that retrains a few recorded runs.

The diagnosis goes first. Its runs choose the wiring of the layers AC-MTL adds (:func:`diagnosis.chosen_wiring`),
which the other runs of AC-MTL and its Table 3 variants take; those wait for the diagnosis' records and start
only if the rule keeps the profile's wiring.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
from tqdm.std import tqdm

from acmtl.companion import experiments as ex
from acmtl.companion.config import get_profile
from acmtl.companion.progress import release_memory
from acmtl.companion.publish import runs_root
from acmtl.companion.wirings import variant_grid

if TYPE_CHECKING:
    from acmtl.companion.runs import RunSpec


def diagnosis_plan(profile: str) -> dict[str, RunSpec]:
    """The runs of ``profile``'s diagnosis (notebook 03) by folder in the run cache, seed by seed: the wiring rule
    reads them, so the plan trains them first."""
    prof = get_profile(profile)
    if prof.ablation_size is None:
        return {}
    specs = sorted((ex.run_spec(profile, ex.corpus_spec(profile, "msra"), variant.arch, prof.ablation_size, seed,
                                model_overrides=variant.overrides)
                    for _, variant, seeds in variant_grid(prof.diagnosis) for seed in seeds),
                   key=lambda spec: spec.train.seed)
    return {run_dir.name: spec for spec, run_dir in zip(specs, ex.run_dirs_of(specs, runs_root(profile)))}


def planned_runs(profile: str, diagnosis: Mapping[str, RunSpec] | None = None) -> dict[str, RunSpec]:
    """Every run the notebooks of ``profile`` train, by folder in the run cache: the diagnosis first
    (``diagnosis``, default :func:`diagnosis_plan`), then Table 2's grid, Table 3's ablation and notebook 06's legal
    model (seed 0, its notebook's default), longest first; Figures 6-8 and 10 reuse these runs, notebook 08's tuning
    trials are its own. Trained by :func:`train_plan` in one pool of workers, they leave no core idle at the end of each
    notebook's grid, and the notebooks then run on a quiet machine (the benchmark needs one)."""
    prof = get_profile(profile)
    wanted = [(corpus, arch, size, seed)
              for corpus, grid in prof.table2.items() for size, seeds in grid.items()
              for arch in ex.TABLE2_ARCHS for seed in seeds]
    if prof.ablation_size is not None:
        wanted += [("msra", arch, prof.ablation_size, seed)
                   for arch in prof.ablation_archs for seed in prof.ablation_seeds]
    wanted.append(("legal", "acmtl", ex.legal_size(profile), 0))
    specs = [ex.run_spec(profile, ex.corpus_spec(profile, ex.short_text_corpus() if corpus == "short" else corpus),
                         arch, size, seed) for corpus, arch, size, seed in wanted]
    plan = diagnosis_plan(profile) if diagnosis is None else diagnosis
    rest = {}
    for spec, run_dir in zip(specs, ex.run_dirs_of(specs, runs_root(profile))):
        if run_dir.name not in plan:
            rest.setdefault(run_dir.name, spec)  # a run two tables share (same folder) is trained once
    return {**plan, **dict(sorted(rest.items(), key=lambda item: -(item[1].size or 0)))}


def plan_table(profile: str, plan: Mapping[str, RunSpec] | None = None) -> pd.DataFrame:
    """One row per planned run (``plan``, default :func:`planned_runs`): its folder in the run cache, corpus, size,
    model, seed, how its model differs from the architecture's usual one (a diagnosis variant), whether its record
    is in ``results/runs/`` (then it is done, at this code: the folder is the key) and, from the record, the worker
    seconds it took (training and scoring) and the machine that trained it; whether the run cache has it finished
    (then its weights are here); and for Figure 8(b)'s runs (:func:`noise_counts.figure8b_specs`) whether their noise
    counts are in the profile's results (``results/noise/``; blank for the other runs)."""
    from acmtl.companion import noise_counts
    from acmtl.companion.publish import describe_device
    from acmtl.companion.records import read_records
    from acmtl.companion.runs import is_complete

    plan = planned_runs(profile) if plan is None else plan
    root, records = runs_root(profile), read_records(ex.records_root(profile).parent, plan)
    fig = noise_counts.committed(profile)
    noisy = {folder: noise_counts.has_counts(ex.records_root(profile).parent, folder, fig.setting)
             for folder in noise_counts.figure8b_specs(profile, fig)}
    rows = []
    for folder, spec in plan.items():
        usual, record = ex.usual_model(profile, spec.arch), records.get(folder)
        row = ex.record_row(record) if record else {}
        rows.append({"folder": folder, "corpus": spec.corpus.split("=")[0], "size": spec.size, "model": spec.arch,
                     "seed": spec.train.seed,
                     "variant": ",".join(f"{k}={v}" for k, v in spec.model_overrides.items() if usual.get(k) != v),
                     "recorded": record is not None,
                     "seconds": row["train_seconds"] + (row["score_seconds"] or 0) if record else None,
                     "trained_on": f"{describe_device(record['where'])}, {record['where']['precision']}" if record
                     else "",
                     "cached": is_complete(root / folder), "noise_counts": noisy.get(folder)})
    # blank: a corpus' own splits, no record, not a run of Figure 8(b)
    return pd.DataFrame(rows).astype({"size": "Int64", "seconds": "Float64", "noise_counts": "boolean"})


def train_plan(profile: str, plan: Mapping[str, RunSpec] | None = None, *, workers: int | None = None,
               progress: bool = True, hours: float | None = None, retrain: bool = False,
               scheduler: str | None = None) -> dict[str, dict]:
    """Record every planned run (``plan``, default :func:`planned_runs`) of ``profile``: training those with no
    record in ``results/runs/`` and none in the run cache, ``workers`` at a time (default
    :func:`experiments.training_workers`) or on the Dask cluster at ``scheduler``, starting none after ``hours``;
    the records by folder (fewer than planned when the budget ran out).

    The runs that take the profile's wiring (:meth:`config.Profile.takes_wiring`, outside the diagnosis) wait
    until every run of the diagnosis is recorded, and then start only if the wiring rule keeps that wiring
    (:func:`diagnosis.recorded_rule`); if it picks another, they stay untrained and a line on stderr says which
    wiring to set: trained now, they would be runs of a model the profile no longer trains. A plan that finds the
    diagnosis recorded (and is not retraining it) trains all its runs in one pool: no core idles between the two.

    Then, within the same budget, the Figure 8(b) noise counts its recorded runs lack are written under the profile's
    results (:func:`noise_counts.produce`: a run missing from the run cache is trained there, the same worker count,
    and tagged), each file ready to commit as it lands; and the models the notebooks' analyses load are trained
    into the run cache where missing (:func:`ensure_analysis_models`)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    prof, diagnosis = get_profile(profile), diagnosis_plan(profile)
    plan = planned_runs(profile, diagnosis) if plan is None else plan
    waiting = {folder: spec for folder, spec in plan.items()
               if folder not in diagnosis and prof.takes_wiring(spec.arch)}
    bar = tqdm(total=len(plan), desc=f"{profile} runs", unit="run", disable=not progress, mininterval=0)
    deadline = None if hours is None else time.monotonic() + 3600 * hours
    found = {}

    workers = ex.training_workers() if workers is None else workers

    def hours_left() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic()) / 3600

    def train(stage: Mapping[str, RunSpec]) -> None:
        found.update(ex.ensure_records(list(stage.values()), [runs_root(profile) / folder for folder in stage],
                                       ex.records_root(profile).parent, workers, bar, hours=hours_left(),
                                       retrain=retrain, scheduler=scheduler))

    kept = _wiring_kept(profile, diagnosis, len(waiting)) if waiting and not retrain else None
    if kept:
        train(plan)
    else:
        train({folder: spec for folder, spec in plan.items() if folder not in waiting})
        if waiting and kept is None and _wiring_kept(profile, diagnosis, len(waiting)):
            train(waiting)
    bar.close()
    from acmtl.companion import noise_counts

    noise_counts.produce(profile, workers=workers, hours=hours_left(), progress=progress)
    ensure_analysis_models(profile, workers=workers, hours=hours_left())
    return found


def ensure_analysis_models(profile: str, *, workers: int | None = None, hours: float | None = None) -> list[str]:
    """Put in the run cache the trained models the notebooks' analyses load (:func:`pack.analysis_runs`: 02's
    backends, 04's attention, 05's exercises, 06, 07), training those it lacks, so that the notebooks train nothing
    (their peak memory is the analysis', not a training's) and ``runs --pack`` can write them. Returns the folders
    now in the run cache."""
    from acmtl.companion.pack import analysis_runs
    from acmtl.companion.runs import is_complete

    needed = {folder: n.spec for folder, n in analysis_runs(profile).items()}
    run_dirs = [runs_root(profile) / folder for folder in needed]
    if hours is None or hours > 0:
        ex.ensure_records(list(needed.values()), run_dirs, ex.records_root(profile).parent,
                          ex.training_workers() if workers is None else workers, tqdm(disable=True), hours=hours,
                          weights=True, lines=True)
    return [d.name for d in run_dirs if is_complete(d)]


def _wiring_kept(profile: str, diagnosis: Mapping[str, RunSpec], waiting: int) -> bool | None:
    """Whether the runs that take ``profile``'s wiring may start: None while a run of its ``diagnosis`` has no
    record, else whether the rule keeps the wiring. If the rule picks another, a line on stderr says so."""
    from acmtl.companion.diagnosis import recorded_rule

    if not all((ex.records_root(profile) / f"{folder}.json").is_file() for folder in diagnosis):
        return None  # not trained yet, or the budget ran out before the diagnosis was done
    row, current = recorded_rule(profile)
    if row["variant"] == current:
        return True
    print(f"The diagnosis changes the wiring: {row['variant']} beats {current} on the corpus' dev split by "
          f"{100 * row['dev_diff']:+.2f} F1 [95 % CI {100 * row['dev_ci_low']:+.2f}, {100 * row['dev_ci_high']:+.2f}]"
          f" over {int(row['dev_seeds'])} paired seeds (diagnosis.chosen_wiring). Set wiring={row['variant']!r} in "
          f"the {profile!r} profile (acmtl/companion/config.py) and train the plan again: {waiting} runs that take "
          f"the wiring wait for it.", file=sys.stderr)
    return False


VERIFY_TOLERANCE = 2.0  # F1 points: runs on another device, precision or thread count differ by float order


def verify_records(profile: str, n: int, *, seed: int = 0, workers: int | None = None) -> pd.DataFrame:
    """Retrain ``n`` randomly chosen recorded runs of ``profile``'s plan from scratch (a temporary run cache, the
    thread count of the record), ``workers`` at a time (default :func:`experiments.training_workers`), and put each
    score beside its record: identical where device, CPU, precision and threads match (``same_setting``), else
    expected within :data:`VERIFY_TOLERANCE` F1 points."""
    import random
    import tempfile

    from acmtl.companion.records import read_records

    plan = planned_runs(profile)
    recorded = read_records(ex.records_root(profile).parent, plan)
    chosen = random.Random(seed).sample(sorted(recorded), min(n, len(recorded)))
    slots = min(len(chosen), ex.training_workers() if workers is None else workers)
    rows = []
    with tempfile.TemporaryDirectory(prefix="acmtl-verify-") as cache:
        tasks = [(plan[folder], cache, recorded[folder]["where"].get("threads")) for folder in chosen]
        if slots <= 1:
            retrained = [ex.train_and_record(*task) for task in tasks]
        else:  # side by side, each with its record's threads, as the plan trained them
            with ex.executor(slots) as (pool, _):
                futures = [pool.submit(ex.train_and_record, *task) for task in tasks]
                retrained = [future.result() for future in futures]
        for folder, new in zip(chosen, retrained):
            old = recorded[folder]
            same = all(old["where"].get(k) == new["where"].get(k) for k in ("device", "cpu", "precision", "threads"))
            for split, scores in old["scores"].items():
                now = new["scores"][split]["f1"]
                rows.append({"folder": folder, "model": old["spec"]["arch"], "size": old["spec"]["size"],
                             "seed": old["spec"]["seed"], "split": split, "recorded_f1": scores["f1"], "now_f1": now,
                             "same_setting": same, "identical": now == scores["f1"],
                             "within_tolerance": abs(now - scores["f1"]) * 100 <= VERIFY_TOLERANCE})
    return pd.DataFrame(rows)


def measure_workers(*, quick: bool = False, workers: Sequence[int] | None = None,
                    repeats: int | None = None) -> pd.DataFrame:
    """How much faster a plan trains with its runs side by side: the same short runs (encoder+CRF on the smoke
    profile's MSRA stand-in, a fixed number of epochs, seeds 0, 1, ...) trained from an empty temporary run cache
    as :func:`train_plan` trains them (one worker too in a process of its own: the caller, a notebook's kernel, keeps
    no training memory), by each worker count in ``workers`` (default: 1 and
    :func:`experiments.default_workers`) with ``cores // workers`` torch threads each.

    After a warm-up (each count trains tiny one-epoch runs, uncounted: it fills the file cache), ``repeats`` passes
    (default 3: a pass of the default runs takes about 2 minutes on 2 cores) each time every count in turn, so a
    pass of each count meets the same load on the machine. Six epochs, so the runs learn entities (with fewer, the
    models tag nothing and each run warns so). One row per count: wall seconds of
    the median pass with the slowest and fastest (``min_`` / ``max_wall_seconds``; process start-up included),
    and the speed-up over one worker with every core: the ratio of medians, with the range of the per-pass ratios
    (pass i of one worker over pass i of this count). ``quick``: two tiny runs, one pass, a plumbing check."""
    import os
    import statistics
    import tempfile
    from pathlib import Path

    import torch

    release_memory()  # what a notebook's earlier cells left (the benchmark) is not held beside the workers
    cores = os.cpu_count() or 1
    runs, epochs, size = (2, 1, 40) if quick else (4, 6, None)
    repeats = (1 if quick else 3) if repeats is None else repeats

    def short_runs(epochs: int, size: int | None) -> list[RunSpec]:
        return [ex.run_spec("default", ex.corpus_spec("smoke", "msra"), "encoder_crf", size, seed, epochs=epochs,
                            patience=epochs) for seed in range(runs)]

    specs, warm_up = short_runs(epochs, size), short_runs(1, 40)
    counts = sorted({1, ex.default_workers()} if workers is None else set(workers), reverse=True)
    threads_before = torch.get_num_threads()

    def wall_seconds(count: int, specs: Sequence[RunSpec] = specs) -> float:
        with tempfile.TemporaryDirectory(prefix="acmtl-workers-") as tmp:
            run_dirs = ex.run_dirs_of(specs, Path(tmp) / "runs")
            torch.set_num_threads(max(1, cores // count))  # one worker trains in this process
            start = time.perf_counter()
            try:
                ex.ensure_records(specs, run_dirs, Path(tmp) / "results", count, tqdm(disable=True), spawn=True)
            finally:
                torch.set_num_threads(threads_before)
            return time.perf_counter() - start

    if not quick:
        for count in counts:
            wall_seconds(count, warm_up)
    passes = {count: [] for count in counts}
    for _ in range(repeats):
        for count in counts:  # the most workers first in each pass
            passes[count].append(wall_seconds(count))
    rows = [{"workers": count, "threads_per_worker": max(1, cores // count), "cores": cores, "runs": runs,
             "epochs": epochs, "passes": repeats, "wall_seconds": round(statistics.median(seconds), 2),
             "min_wall_seconds": round(min(seconds), 2), "max_wall_seconds": round(max(seconds), 2)}
            for count, seconds in passes.items()]
    table = pd.DataFrame(rows).sort_values("workers", ignore_index=True)
    if 1 in counts:
        one = passes[1]
        speedups = {count: [a / b for a, b in zip(one, seconds)] for count, seconds in passes.items()}
        table["speedup"] = [round(statistics.median(one) / statistics.median(passes[c]), 3) for c in table["workers"]]
        table["min_speedup"] = [round(min(speedups[c]), 3) for c in table["workers"]]
        table["max_speedup"] = [round(max(speedups[c]), 3) for c in table["workers"]]
    return table
