"""The run cache: a trained model is identified by the hash of everything that defines it.

``runs/<hash>/`` holds ``run.json`` (the full configuration the hash was computed from),
``model/``, ``curve.json``, ``metrics.json`` and, once asked for, ``predictions/`` (the model's tags
for a list of texts, see :func:`run_predictions`). The hash covers the architecture, the code
that defines what a run means (:func:`code_digest`), the encoder, the exact training data (a
digest of every sentence and tag of every split), the subset size, the seed, the splits scored
and all hyper-parameters. A finished run is never
trained again; an unfinished one resumes from its last checkpoint; two processes asking for
the same run take turns through a file lock, and the second reuses the first one's result.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

import acmtl
from acmtl.core.checkpoint import load_pretrained, read_config
from acmtl.core.model import ModelConfig
from acmtl.core.predict import predict_tags
from acmtl.core.train import TrainConfig, tag_names, train
from acmtl.data.conll import Sentence
from acmtl.data.corpora import Corpus, load_corpus
from acmtl.data.fetch import atomic_write_bytes
from acmtl.data.splits import subset_splits
from acmtl.paths import runs_dir
from acmtl.serving.card import CARD_FILE, read_run_records, write_model_card
from acmtl.version import __version__


@dataclass(frozen=True)
class RunSpec:
    """What to train: ``arch`` on ``size`` sentences of ``corpus`` (None = the full corpus splits)."""

    corpus: str
    arch: str
    size: int | None
    train: TrainConfig
    encoder: str
    model_overrides: dict = field(default_factory=dict)
    # Splits scored besides train and dev: "test" (the subset's 15 %, per epoch too, for Figure 8),
    # "full_test" (the official test set), "corpus_dev" (the corpus' own dev set, kept out of every
    # subset: what hyper-parameter tuning selects on, see acmtl.companion.tune).
    evaluate_on: tuple[str, ...] = ("test", "full_test")


# The modules whose code decides what a trained run is: its data features, model, loss, optimiser,
# early stopping, checkpoint and scores. Their code (not comments or docstrings) is in every run's key.
RUN_DEFINING_MODULES = ("core/model.py", "core/crf.py", "core/train.py", "core/features.py", "core/checkpoint.py",
                        "core/encoders.py", "core/predict.py", "core/evaluate.py", "data/pinyin.py", "data/splits.py")


def _code_only(source: str) -> str:
    """The module's syntax tree without docstrings: comments, docstrings and layout do not change a run."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)  # the code regenerated from the tree: no comments, one layout


@functools.cache
def code_digest() -> str:
    """sha256 of the code of :data:`RUN_DEFINING_MODULES`: a change to any of them never reuses an old run.

    Computed once per process, so a file edited while a long job trains does not relabel the runs
    that job trains with the code it loaded."""
    package = Path(acmtl.__file__).parent
    digest = hashlib.sha256()
    for name in RUN_DEFINING_MODULES:
        digest.update(f"#{name}\n{_code_only((package / name).read_text(encoding='utf-8'))}\n".encode())
    return digest.hexdigest()


def data_digest(data: dict[str, list[Sentence]]) -> str:
    digest = hashlib.sha256()
    for name in sorted(data):
        digest.update(f"#{name}\n".encode())
        for s in data[name]:
            digest.update(("".join(s.chars) + "\t" + " ".join(s.tags) + "\n").encode())
    return digest.hexdigest()


# Splits drawn by this process, by corpus content, size and seed (see run_splits).
_SPLITS: dict[tuple, dict[str, list[Sentence]]] = {}


def run_splits(corpus_spec: str, size: int | None, seed: int) -> tuple[Corpus, dict[str, list[Sentence]]]:
    """The corpus and a run's splits (:func:`acmtl.data.splits.subset_splits`), drawn once per process for each
    corpus content, size and seed: every model, variant and table of a seed shares them, and planning
    ./run_all.sh's runs does not redraw them for each (drawing stratifies the 48,000 MSRA sentences)."""
    corpus = load_corpus(corpus_spec)
    key = (corpus.name, json.dumps(corpus.sources, sort_keys=True), size, seed)
    if key not in _SPLITS:
        _SPLITS[key] = subset_splits(corpus, size, seed)
    return corpus, {name: list(part) for name, part in _SPLITS[key].items()}


def prepare(spec: RunSpec) -> tuple[dict, ModelConfig, dict[str, list[Sentence]]]:
    """The run's configuration (what gets hashed), its model config and its data splits."""
    corpus, splits = run_splits(spec.corpus, spec.size, spec.train.seed)
    unknown = set(spec.evaluate_on) - (set(splits) - {"train", "dev"})
    if unknown:
        raise ValueError(f"cannot score on {sorted(unknown)}; choose from {sorted(set(splits) - {'train', 'dev'})}")
    data = {name: splits[name] for name in ("train", "dev", *spec.evaluate_on)}
    encoder = {} if spec.arch == "bilstm_crf" else {"encoder": spec.encoder}  # BiLSTM-CRF has its own
    model_cfg = ModelConfig.for_architecture(spec.arch, tag_names(corpus.types), **encoder, **spec.model_overrides)
    config = {
        "code_sha256": code_digest(),
        "arch": spec.arch,
        "model": model_cfg.to_dict(),
        "train": asdict(spec.train),
        "corpus": {"spec": spec.corpus, "name": corpus.name, "sources": corpus.sources,
                   "size": spec.size, "data_sha256": data_digest(data),
                   "sentences": {k: len(v) for k, v in data.items()}},
    }
    return config, model_cfg, data


def run_id(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file()


def ensure_run(spec: RunSpec, *, progress: bool = True, root: Path | None = None,
               checkpoint_every: float = 60.0, on_epoch: Callable[[dict], None] | None = None) -> Path:
    """Return the directory of the finished run for ``spec``, training (or resuming) it if needed.

    ``on_epoch`` is handed to :func:`acmtl.core.train.train` (a tuner's pruning hook)."""
    config, model_cfg, data = prepare(spec)
    run_dir = (root or runs_dir()) / run_id(config)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(run_dir) + ".lock"):
        if is_complete(run_dir):
            if not (run_dir / "model" / CARD_FILE).is_file():  # a run finished before cards were written
                write_run_card(run_dir)
            return run_dir
        run_dir.mkdir(exist_ok=True)
        record = {**config, "acmtl_version": __version__}
        atomic_write_bytes(run_dir / "run.json", json.dumps(record, indent=2, ensure_ascii=False).encode())
        train(model_cfg, spec.train, data, run_dir, resume=True, progress=progress,
              checkpoint_every=checkpoint_every, on_epoch=on_epoch)
        write_run_card(run_dir)
    return run_dir


def write_run_card(run_dir: str | Path) -> Path:
    """(Re)write the model card of ``run_dir/model`` with the run's corpus, settings and scores."""
    model_dir = Path(run_dir) / "model"
    return write_model_card(model_dir, read_config(model_dir), *read_run_records(model_dir))


def _finished(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir} has no metrics.json: the run has not finished")
    return run_dir


def load_metrics(run_dir: str | Path) -> dict:
    return json.loads((_finished(run_dir) / "metrics.json").read_text())


def load_predictions(run_dir: str | Path, split: str) -> list[list[str]]:
    """The finished run's predicted BIOES tags on one of the splits it was scored on."""
    path = _finished(run_dir) / "predictions.json"
    predictions = json.loads(path.read_text(encoding="utf-8"))
    if split not in predictions:
        raise KeyError(f"{path} has no predictions for {split!r}; it has {sorted(predictions)}")
    return [line.split() for line in predictions[split]]


def run_predictions(run_dir: str | Path, texts: Sequence[Sequence[str]], *,
                    batch_size: int = 64) -> tuple[list[list[str]], float]:
    """The finished run's predicted BIOES tags for each text (a string or a sequence of characters), and the
    seconds it took to compute them.

    Computed once per run, list of texts and batch size (batching pads, which moves float sums): the result
    is kept in ``run_dir/predictions/<sha256>.json``, so a notebook rerun re-scores a 4,620-sentence test
    set or 1,413 case texts in a second instead of minutes. The seconds are those of the first computation.
    """
    run_dir = _finished(run_dir)
    texts = [list(text) for text in texts]
    key = hashlib.sha256(json.dumps({"batch_size": batch_size, "texts": texts}, ensure_ascii=False).encode())
    path = run_dir / "predictions" / f"{key.hexdigest()[:24]}.json"
    if path.is_file():
        record = json.loads(path.read_text(encoding="utf-8"))
        return [line.split() for line in record["tags"]], record["seconds"]
    started = time.perf_counter()
    model, tokenizer = load_pretrained(run_dir / "model")
    tags = predict_tags(model, tokenizer, texts, batch_size=batch_size)
    seconds = time.perf_counter() - started
    record = {"texts": len(texts), "characters": sum(map(len, texts)), "batch_size": batch_size,
              "seconds": seconds, "tags": [" ".join(t) for t in tags]}
    path.parent.mkdir(exist_ok=True)
    atomic_write_bytes(path, json.dumps(record, ensure_ascii=False).encode())
    return tags, seconds


# `python -m acmtl runs`: what the run cache holds
RUN_COLUMNS = ("folder", "corpus", "size", "model", "seed", "encoder_lr", "head_lr", "epochs",
               "dev_f1", "test_f1", "full_test_f1", "finished", "date")


def _read_json(path: Path, warn: Callable[[str], None], consequence: str) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        warn(f"acmtl runs: {path} is not valid JSON ({err}): {consequence}")
        return None
    if not isinstance(record, dict):
        warn(f"acmtl runs: {path} is not a JSON object: {consequence}")
        return None
    return record


def _section(record: dict, key: str) -> dict:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _f1(metrics: dict, split: str) -> float | None:
    scores = metrics.get(split)
    return scores.get("entity_f1") if isinstance(scores, dict) else None


def _epochs(run_dir: Path, metrics: dict) -> int | None:
    """Epochs trained: a finished run's ``epochs_run``, else the rows of its curve so far (None: unreadable)."""
    if "epochs_run" in metrics:
        return metrics["epochs_run"]
    try:
        return len(json.loads((run_dir / "curve.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        return 0  # no epoch finished yet
    except (OSError, ValueError, TypeError):
        return None


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def list_runs(root: str | Path | None = None, *, warn: Callable[[str], None] = _warn_stderr,
              **filters) -> list[dict]:
    """One dict per run folder under ``root`` (default: :func:`acmtl.paths.runs_dir`), oldest first.

    Keys are :data:`RUN_COLUMNS`: ``folder`` (``root/<run hash>``: what ``predict --model`` and ``evaluate``
    take, as does the hash alone for a run of the default run cache), ``corpus`` (its name), ``size`` (None: the
    corpus' own splits), ``model`` (the architecture), ``seed``, ``encoder_lr``, ``head_lr``, ``epochs`` (epochs
    trained, so far for an unfinished run), the entity F1 on dev, test and full_test (None where not scored or
    not finished), ``finished`` (metrics.json exists) and ``date`` (the modification time of metrics.json, else
    run.json, as local ``YYYY-MM-DD HH:MM``). ``filters`` are exact matches on these keys, a None filter matching
    everything; ``corpus=`` also matches the corpus spec the run was trained with (``tiny=/some/dir``). Folders without
    run.json and ``*.lock`` files are ignored; a run.json that is not valid JSON is reported through
    ``warn`` (default: a line on stderr) and skipped.
    """
    unknown = set(filters) - set(RUN_COLUMNS)
    if unknown:
        raise ValueError(f"cannot filter runs on {sorted(unknown)}; choose from {', '.join(RUN_COLUMNS)}")
    filters = {key: value for key, value in filters.items() if value is not None}
    root = Path(root) if root is not None else runs_dir()
    if not root.is_dir():
        return []
    found = []  # (mtime, row)
    for run_dir in sorted(root.iterdir()):
        run_json = run_dir / "run.json"
        if not run_dir.is_dir() or not run_json.is_file():
            continue
        record = _read_json(run_json, warn, "run skipped")
        if record is None:
            continue
        finished = is_complete(run_dir)
        metrics = (_read_json(run_dir / "metrics.json", warn, "its scores are left blank") or {}) if finished else {}
        corpus, train_cfg = _section(record, "corpus"), _section(record, "train")
        try:
            stamp = (run_dir / "metrics.json" if finished else run_json).stat().st_mtime
        except OSError:  # removed while we looked
            continue
        row = {"folder": str(run_dir), "corpus": corpus.get("name"), "size": corpus.get("size"),
               "model": record.get("arch"), "seed": train_cfg.get("seed"),
               "encoder_lr": train_cfg.get("encoder_lr"), "head_lr": train_cfg.get("head_lr"),
               "epochs": _epochs(run_dir, metrics),
               "dev_f1": _f1(metrics, "dev"), "test_f1": _f1(metrics, "test"),
               "full_test_f1": _f1(metrics, "full_test"),
               "finished": finished, "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))}
        if all(row[key] == value or (key == "corpus" and corpus.get("spec") == value)
               for key, value in filters.items()):
            found.append((stamp, row))
    return [row for _, row in sorted(found, key=lambda item: (item[0], item[1]["folder"]))]


def format_runs(rows: list[dict]) -> str:
    """:func:`list_runs`' rows as a text table: F1 with 4 decimals, ``finished`` as yes/no, blanks for None."""
    import pandas as pd

    def cell(column: str, value):
        if value is None:
            return ""
        if column == "finished":
            return "yes" if value else "no"
        if column.endswith("_f1") and isinstance(value, (int, float)):
            return f"{value:.4f}"
        return value

    cells = [{column: cell(column, row.get(column)) for column in RUN_COLUMNS} for row in rows]
    return pd.DataFrame(cells, columns=list(RUN_COLUMNS), dtype=object).to_string(index=False)
