"""Figure 8(b)'s noise comparison kept in git: each run's per-sentence counts on the clean and the misspelt test set.

Figure 8(b) tags MSRA's evaluation sentences, clean and misspelt at several rates (:mod:`acmtl.data.noise`), with
the models of Table 2's MSRA runs at one size, every seed; two models are compared with
:func:`acmtl.companion.stats.compare_seeds`, which needs nothing but each sentence's (true positives, predicted,
gold) entity counts. Those counts are kept per run in ``results/noise/<run folder>.json`` (written atomically, as
the run records are), so a fresh clone draws and judges Figure 8(b) without weights:

    format, folder, code_sha256   the file's layout, the run (its key in the run cache) and its run-defining code
    spec                          architecture, size, seed of the run
    params                        how the sets were made and tagged: split, noise seed, near-homophone share,
                                  minimum character count, the vocabulary the replacements come from, batch size
    where                         the machine and commit that tagged them
    rates                         per noise rate (rate 0 is the clean set): the sentences' digest, realised rates,
                                  the noise report, the tagging's seconds and the packed counts
                                  (:func:`acmtl.companion.records.pack_counts`)
    clean_matches_record          whether the rate-0 counts equal the run record's on the same split (a model trained
                                  again on another machine kind may differ from the recorded one by float order)

A file is read only when its params are the asked ones, and a rate only when the digest of its sentences (clean
or misspelt, with their tags) is that of the sentences asked for: a change of the noise procedure, its table or
the evaluation set makes the run be tagged again (:func:`noise_scores`). The homophone
table's vocabulary is the encoder's tokenizer (:class:`acmtl.core.encoders.CharTokenizer`), the one every trained
model of the profile saves with its weights, so building the sets needs no trained model.

:func:`produce` makes the missing counts of the committed setting (notebook 05's parameters) in the background:
``python -m acmtl runs --plan default --train`` runs it after the plan's training.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from acmtl.companion.records import pack_counts, unpack_counts
from acmtl.companion.runs import run_predictions
from acmtl.data.fetch import atomic_write_bytes

if TYPE_CHECKING:
    from acmtl.companion.runs import RunSpec
    from acmtl.data.conll import Sentence
    from acmtl.data.noise import HomophoneTable, NoiseReport

FORMAT = 1  # bump when a counts file's fields change meaning
FOLDER = "noise"  # under a results folder
NOTEBOOK = "05_robustness"  # whose parameters cell holds the committed setting
NOISE_BATCH_SIZE = 64  # the training's evaluation batch size (TrainConfig.eval_batch_size)


@dataclass(frozen=True)
class NoiseSetting:
    """How Figure 8(b)'s evaluation sets are made and tagged (notebook 05's parameters; rate 0, clean, always)."""

    split: str = "full_test"
    rates: tuple[float, ...] = (0.05, 0.1, 0.2)
    seed: int = 0
    near_homophone_prob: float = 0.3
    min_count: int = 5
    vocabulary: str = "m3e-small"  # the encoder whose tokenizer the replacement characters must be known to
    batch_size: int = NOISE_BATCH_SIZE

    def params(self) -> dict:
        """What a counts file must have been made with to be read (its rates are checked one by one)."""
        return {k: v for k, v in asdict(self).items() if k != "rates"}

    def all_rates(self) -> tuple[float, ...]:
        return (0.0, *(float(r) for r in self.rates if float(r) != 0.0))


def rate_key(rate: float) -> str:
    return str(float(rate))  # "0.0", "0.05": as the provenance's noise reports name them


def counts_path(results: str | Path, folder: str) -> Path:
    return Path(results) / FOLDER / f"{folder}.json"


def sentences_digest(sentences: Iterable[Sentence]) -> str:
    """sha256 of the sentences' characters and tags, in order: what a rate's counts were computed on."""
    digest = hashlib.sha256()
    for s in sentences:
        digest.update(("".join(s.chars) + "\t" + " ".join(s.tags) + "\n").encode())
    return digest.hexdigest()


def prf(counts: np.ndarray) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of per-sentence (tp, predicted, gold) counts, computed as seqeval computes
    them (:func:`acmtl.core.evaluate.score`): p = tp / predicted, r = tp / gold, f = 2pr / (p + r), 0 where empty."""
    tp, predicted, gold = (int(x) for x in np.asarray(counts).sum(axis=0))
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entry(sentences: Sequence[Sentence], report: NoiseReport | None, counts: np.ndarray, seconds: float) -> dict:
    """One rate's part of a counts file (counts unpacked): the sentences' digest, realised rates, report, seconds."""
    return {"sentences": len(sentences), "sentences_sha256": sentences_digest(sentences),
            "realised_rate": report.realised_rate if report else 0.0,
            "realised_entity_rate": report.realised_entity_rate if report else 0.0,
            "report": report.to_dict() if report else None, "seconds": seconds, "counts": np.asarray(counts)}


def read_file(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_counts(results: str | Path, folder: str, setting: NoiseSetting,
                sets: Mapping[float, Sequence[Sentence]]) -> dict[float, dict]:
    """The entries (counts unpacked) of run ``folder``'s counts file under ``results`` for the rates of ``sets``
    (rate -> the sentences that rate tags) whose sentences are those: rate -> entry. Empty where the file is
    missing or was made with other params, another format or for another run; a rate whose sentences differ (another
    noise procedure or evaluation set) is left out."""
    record = read_file(counts_path(results, folder))
    if (record is None or record.get("format") != FORMAT or record.get("folder") != folder
            or record.get("params") != setting.params()):
        return {}
    found = {}
    for rate, sentences in sets.items():
        stored = record.get("rates", {}).get(rate_key(rate))
        if stored and stored.get("sentences_sha256") == sentences_digest(sentences):
            found[float(rate)] = {**stored, "counts": unpack_counts(stored["counts"])}
    return found


def write_counts(results: str | Path, folder: str, setting: NoiseSetting, entries: Mapping[float, dict], *,
                 run: Mapping | None = None, where: Mapping | None = None, extra: Mapping | None = None) -> Path:
    """Write run ``folder``'s counts file under ``results`` atomically with ``entries`` (rate -> :func:`entry`),
    keeping the entries of rates not given from a file there made with the same params. ``run``: the run's
    ``run.json`` (its code digest and spec); ``where``: the machine and commit that tagged; ``extra``: more fields."""
    path = counts_path(results, folder)
    old = read_file(path) or {}
    kept = old.get("rates", {}) if old.get("params") == setting.params() and old.get("folder") == folder else {}
    rates = {**kept, **{rate_key(rate): {**e, "counts": pack_counts(e["counts"])} for rate, e in entries.items()}}
    run = run or {}
    corpus, train = run.get("corpus", {}), run.get("train", {})
    record = {"format": FORMAT, "folder": folder, "code_sha256": run.get("code_sha256", old.get("code_sha256")),
              "spec": {"arch": run.get("arch"), "corpus": str(corpus.get("spec", "")).partition("=")[0] or None,
                       "size": corpus.get("size"), "seed": train.get("seed")} if run else old.get("spec"),
              "params": setting.params(), "where": dict(where or old.get("where") or {}),
              "rates": dict(sorted(rates.items(), key=lambda item: float(item[0]))), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(record, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return path


def has_counts(results: str | Path, folder: str, setting: NoiseSetting) -> bool:
    """Whether run ``folder`` has a counts file under ``results`` made with ``setting``'s params for every one of its
    rates (without building the sets to check their digests: what the plan's listing shows)."""
    record = read_file(counts_path(results, folder))
    return (record is not None and record.get("format") == FORMAT and record.get("params") == setting.params()
            and all(rate_key(r) in record.get("rates", {}) for r in setting.all_rates()))


@dataclass
class CountsStore:
    """Where :func:`noise_scores` reads and writes counts files: read from ``read_from``
    (the first holding a run's matching entries; default ``write_to``), written to ``write_to``. ``weights(run)``
    makes a run's trained model present (training it into the run cache if needed) before it is tagged."""

    write_to: Path
    setting: NoiseSetting
    read_from: tuple[Path, ...] = ()
    weights: Callable[[Mapping], None] | None = None
    where: dict = field(default_factory=dict)

    def read(self, folder: str, sets: Mapping[float, Sequence[Sentence]]) -> dict[float, dict]:
        """The matching entries of run ``folder`` (:func:`read_counts`), from ``write_to`` or else the first of
        ``read_from`` that has some; a file found elsewhere is copied to ``write_to``, so that the counts a table
        there was computed from lie beside it (an exercise's ``build/exercise/results/``)."""
        here = read_counts(self.write_to, folder, self.setting, sets)
        for results in self.read_from:
            found = read_counts(results, folder, self.setting, sets)
            if len(found) > len(here):
                target = counts_path(self.write_to, folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, counts_path(results, folder).read_bytes())
                return found
        return here

    def write(self, run_dir: str | Path, entries: Mapping[float, dict], record: str | Path | None = None) -> Path:
        run = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
        matches = None
        if record is not None and Path(record).is_file() and 0.0 in entries:
            stored = json.loads(Path(record).read_text(encoding="utf-8")).get("counts", {})
            if self.setting.split in stored:
                matches = bool(np.array_equal(unpack_counts(stored[self.setting.split]), entries[0.0]["counts"]))
        return write_counts(self.write_to, Path(run_dir).name, self.setting, entries, run=run, where=self.where,
                            extra=None if matches is None else {"clean_matches_record": matches})


# -- the committed setting, its runs and its sets -----------------------------------------------------------------


def setting_from(parameters: Mapping, vocabulary: str) -> NoiseSetting:
    """The setting notebook 05's parameters (``noise_rates``, ``noise_split``, ...) describe."""
    return NoiseSetting(split=parameters.get("noise_split", "full_test"),
                        rates=tuple(float(r) for r in parameters.get("noise_rates", (0.05, 0.1, 0.2))),
                        seed=int(parameters.get("noise_seed", 0)),
                        near_homophone_prob=float(parameters.get("near_homophone_prob", 0.3)),
                        min_count=int(parameters.get("min_char_count", 5)), vocabulary=vocabulary)


def figure8b_seeds(profile: str, size: int, seeds: Sequence[int] | None = None) -> list[int]:
    """Figure 8(b)'s seeds: ``seeds`` where given, else the profile's Table 2 MSRA seeds at ``size`` (default: 0-4;
    smoke: its one seed), else seed 0."""
    from acmtl.companion.config import get_profile

    if seeds:
        return sorted({int(s) for s in seeds})
    return list(get_profile(profile).table2.get("msra", {}).get(size, (0,)))


@dataclass(frozen=True)
class Figure8b:
    """What Figure 8(b) is computed for: the architectures, the size, the seeds and the noise setting."""

    archs: tuple[str, ...]
    size: int
    seeds: tuple[int, ...]
    setting: NoiseSetting


def committed(profile: str) -> Figure8b:
    """Figure 8(b) as notebook 05's committed parameters make it under ``profile``."""
    from acmtl.companion.publish import committed_parameters

    return from_parameters(profile, committed_parameters(NOTEBOOK))


def from_parameters(profile: str, params: Mapping) -> Figure8b:
    """Figure 8(b) as notebook 05's parameters (``archs``, ``size``, ``noise_seeds``, ``noise_rates``, ...: a mapping
    of their names, such as the notebook's ``globals()``) make it under ``profile``."""
    from acmtl.companion.config import get_profile

    prof = get_profile(profile)
    size = prof.sizes[0] if profile == "smoke" else int(params.get("size", 1000))  # as the notebook's `sizes`
    return Figure8b(tuple(params.get("archs", ("acmtl", "encoder_crf", "bilstm_crf"))), size,
                    tuple(figure8b_seeds(profile, size, params.get("noise_seeds"))), setting_from(params, prof.encoder))


def figure8b_specs(profile: str, fig: Figure8b | None = None) -> dict[str, RunSpec]:
    """Figure 8(b)'s runs (Table 2's MSRA runs at its size, every seed of it) by folder in the run cache."""
    from acmtl.companion import experiments as ex
    from acmtl.companion.publish import runs_root

    fig = fig or committed(profile)
    specs = [ex.run_spec(profile, ex.corpus_spec(profile, "msra"), arch, fig.size, seed)
             for seed in fig.seeds for arch in fig.archs]
    return {run_dir.name: spec for spec, run_dir in zip(specs, ex.run_dirs_of(specs, runs_root(profile)))}


def evaluation_sets(corpus_spec: str, fig: Figure8b
                    ) -> tuple[HomophoneTable, dict[int, tuple[list[Sentence], dict[float, tuple[list, NoiseReport]]]]]:
    """(the homophone table, seed -> (clean sentences, rate -> (misspelt sentences, report))) of ``fig`` on
    ``corpus_spec``: each seed's split ``fig.setting.split`` at ``fig.size`` (the official test set is every seed's,
    and is perturbed once) and its misspelt copies; the replacements come from ``fig.setting.vocabulary``'s
    tokenizer (no trained model needed)."""
    from acmtl.companion.analysis import homophone_table, misspell
    from acmtl.companion.runs import run_splits
    from acmtl.core.encoders import CharTokenizer

    setting = fig.setting
    table = homophone_table(CharTokenizer.from_pretrained(setting.vocabulary), min_count=setting.min_count)
    built: dict[str, tuple] = {}
    sets = {}
    for seed in fig.seeds:
        clean = run_splits(corpus_spec, fig.size, seed)[1][setting.split]
        key = sentences_digest(clean)
        if key not in built:
            built[key] = (clean, misspell(clean, table, setting.rates, seed=setting.seed,
                                          near_homophone_prob=setting.near_homophone_prob))
        sets[seed] = built[key]
    return table, sets


def noise_scores(runs: pd.DataFrame, clean: Sequence[Sentence],
                 noisy: Mapping[float, tuple[Sequence[Sentence], NoiseReport]], *,
                 batch_size: int = NOISE_BATCH_SIZE, keep: Sequence[str] = ("arch", "best_epoch"),
                 log: Callable[[str], None] | None = None, counts: CountsStore | None = None) -> pd.DataFrame:
    """Entity scores of each finished run (``runs``: a ``run_dir`` column) on ``clean`` and on each noisy copy.

    ``noisy``: rate -> (misspelt sentences, report), as :func:`acmtl.data.noise.perturb` returns them. One row
    per run and rate, the clean one first at rate 0: the ``keep`` columns of the run, rate, realised_rate,
    realised_entity_rate, seconds (tagging, as first computed: predictions are cached in the run), precision,
    recall, f1 and f1_drop (the run's clean F1 minus this F1), all from each sentence's entity counts. Clean and
    noisy sets are tagged the same way (:func:`acmtl.companion.runs.run_predictions`, ``batch_size``), so their F1s
    differ only by the noise.

    ``counts`` (:class:`CountsStore`): a run's counts are read from its counts file
    where they were computed on these very sentences (committed in ``results/noise/``: no weights needed); only the
    rates missing there are tagged, after ``counts.weights(run)`` made the run's model present, and written back.
    """
    from acmtl.core.evaluate import sentence_counts

    sets = [(0.0, clean, None), *((rate, sentences, report) for rate, (sentences, report) in noisy.items())]
    rows = []
    for run in runs.to_dict("records"):
        folder = Path(run["run_dir"]).name
        found = counts.read(folder, {rate: sentences for rate, sentences, _ in sets}) if counts else {}
        computed = {}
        clean_f1 = None
        for rate, sentences, report in sets:
            stored = found.get(float(rate))
            if stored is None:
                if counts and counts.weights and not computed:
                    counts.weights(run)
                predicted, seconds = run_predictions(run["run_dir"], [s.chars for s in sentences],
                                                     batch_size=batch_size)
                stored = computed[float(rate)] = entry(
                    sentences, report, sentence_counts([list(s.tags) for s in sentences], predicted), seconds)
            precision, recall, f1 = prf(stored["counts"])
            clean_f1 = f1 if clean_f1 is None else clean_f1
            rows.append({**{key: run[key] for key in keep}, "rate": rate, "realised_rate": stored["realised_rate"],
                         "realised_entity_rate": stored["realised_entity_rate"],
                         "seconds": stored["seconds"], "precision": precision, "recall": recall,
                         "f1": f1, "f1_drop": clean_f1 - f1})
            if log:
                how = f"{stored['seconds']:.0f} s" if float(rate) in computed else "counts from its file"
                log(f"{run.get('arch', run['run_dir'])} rate {rate}: F1 {f1:.4f} ({how})")
        if counts and computed:
            counts.write(run["run_dir"], computed, run.get("record"))
    return pd.DataFrame(rows)


def noise_table(fig: Figure8b, runs: pd.DataFrame, sets: Mapping[int, tuple], store: CountsStore, *,
                log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """:func:`noise_scores` of every run in ``runs`` (:func:`experiments.train_grid` rows:
    run_dir, arch, seed, folder, best_epoch, record) on its seed's sets, through ``store``: one row per run and rate
    with its seed and folder."""
    frames = []
    for seed, group in runs.groupby("seed", sort=True):
        clean, noisy = sets[int(seed)]
        frames.append(noise_scores(group, clean, noisy, keep=("arch", "seed", "folder", "best_epoch"),
                                   batch_size=fig.setting.batch_size, counts=store, log=log))
    order = {arch: i for i, arch in enumerate(fig.archs)}
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["arch", "seed", "rate"], key=lambda c: c.map(order) if c.name == "arch" else c,
                             kind="stable", ignore_index=True)


def _where() -> dict:
    from acmtl.companion.publish import device_info, git_state

    git = git_state()
    return {**device_info(), "commit": git["commit"], "dirty": git["dirty"]}


def notebook_store(profile: str, fig: Figure8b) -> CountsStore:
    """Notebook 05's store: counts read from the profile's results (``results/noise/``, in git, for default) and
    from where this notebook run writes its tables (the same folder, or ``build/exercise/results/``), where the
    counts it computes go; a run missing there is trained into the run cache (:func:`weights_for`) and tagged."""
    from acmtl.companion import experiments as ex
    from acmtl.companion.publish import output_dirs, target_dirs

    return CountsStore(target_dirs(profile)[0], fig.setting, read_from=(output_dirs(profile)[0],),
                       weights=weights_for(profile, figure8b_specs(profile, fig), ex.records_root(profile).parent),
                       where=_where())


def weights_for(profile: str, specs: Mapping[str, RunSpec], results: Path) -> Callable[[Mapping], None]:
    """A :class:`CountsStore`'s ``weights``: the run's model trained into the run cache where it is missing (with its
    record's thread count: :func:`experiments.ensure_records` with ``weights=True``)."""
    from tqdm.std import tqdm

    from acmtl.companion import experiments as ex

    def ensure(run: Mapping) -> None:
        run_dir = Path(run["run_dir"])
        ex.ensure_records([specs[run_dir.name]], [run_dir], results, 1, tqdm(disable=True), weights=True)

    return ensure


# -- the background: `runs --plan PROFILE --train` -----------------------------------------------------------------


def missing(profile: str, fig: Figure8b | None = None) -> dict[str, RunSpec]:
    """Figure 8(b)'s runs without a counts file of the committed setting in the profile's results (listing check)."""
    from acmtl.companion import experiments as ex

    fig = fig or committed(profile)
    results = ex.records_root(profile).parent
    return {f: s for f, s in figure8b_specs(profile, fig).items() if not has_counts(results, f, fig.setting)}


def produce(profile: str, *, workers: int, hours: float | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> int:
    """Write the missing counts files of Figure 8(b)'s committed setting under the profile's results
    (``results/noise/`` for default), for the runs that have a record (the plan trains the others first): the runs
    in the run cache first, then the rest ``workers`` at a time, trained into the run cache with the plan's worker
    machinery (:func:`experiments.ensure_records`, ``weights=True``) and tagged the moment their group is trained, so
    each file lands as soon as it can be committed. No group starts after ``hours``. Returns how many were written."""
    from tqdm.std import tqdm

    from acmtl.companion import experiments as ex
    from acmtl.companion.publish import runs_root
    from acmtl.companion.records import read_records
    from acmtl.companion.runs import is_complete

    if hours is not None and hours <= 0:
        return 0
    fig = committed(profile)
    results, root = ex.records_root(profile).parent, runs_root(profile)
    todo = missing(profile, fig)
    recorded = read_records(results, todo)
    todo = {f: s for f, s in todo.items() if f in recorded}
    if not todo:
        return 0
    deadline = None if hours is None else time.monotonic() + 3600 * hours
    store = CountsStore(results, fig.setting, where=_where())
    _, sets = evaluation_sets(ex.corpus_spec(profile, "msra"), fig)
    # the cached ones first (no training), then the others by architecture: a group trains runs of about one length
    order = sorted(todo, key=lambda f: (not is_complete(root / f), todo[f].arch))
    bar = tqdm(total=len(order), desc="Figure 8(b) noise counts", unit="run", disable=not progress, mininterval=0)
    written = 0
    while order:
        if deadline is not None and time.monotonic() >= deadline:
            break
        group = [order.pop(0)]
        while order and not is_complete(root / group[0]) and len(group) < workers:
            group.append(order.pop(0))
        dirs = [root / f for f in group]
        if not all(is_complete(d) for d in dirs):
            ex.ensure_records([todo[f] for f in group], dirs, results, workers, tqdm(disable=True), weights=True)
        for folder, run_dir in zip(group, dirs):
            row = {**ex.record_row(recorded[folder]), "run_dir": str(run_dir),
                   "record": str(ex.records_root(profile) / f"{folder}.json")}
            noise_table(fig, pd.DataFrame([row]), sets, store)
            written += 1
            bar.update()
            log(f"Figure 8(b) counts: {row['arch']} seed {row['seed']} -> {counts_path(results, folder)}")
    bar.close()
    return written
