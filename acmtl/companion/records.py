"""Run records: what a finished run leaves in git, so that every number can be recomputed without weights.

One small JSON file per run, ``results/runs/<folder>.json`` (``folder``: the run's key in the run cache,
which covers the run-defining code, the data and every setting), written the moment the run finishes:

    folder, code_sha256   the run's key and the digest of the code that defines a run
    spec                  corpus (by name), architecture, size, seed, encoder, model overrides, training settings
    where                 device, CPU, precision, torch threads, torch / transformers versions, the commit
    scores                per scored split: precision, recall, F1 and support (entities)
    counts                per scored split: each sentence's (true positives, predicted, gold) entity counts,
                          packed; the paired bootstrap intervals need nothing else
    curve                 per epoch: the loss and its parts, dev F1 (test F1 for Figure 8's runs), seconds
    times                 best epoch, epochs run, seconds in the training loop and scoring

Paths are relative (a record never names the machine's folders), so records from several machines
and days make one regeneration: a run whose record is committed with the current key is done.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from acmtl.data.fetch import atomic_write_bytes

FORMAT = 1  # bump when a record's fields change meaning


def records_dir(results: str | Path) -> Path:
    """Where the records of a results folder live: ``<results>/runs/``."""
    return Path(results) / "runs"


def record_path(results: str | Path, folder: str) -> Path:
    return records_dir(results) / f"{folder}.json"


def pack_counts(counts: np.ndarray) -> str:
    """[n, 3] non-negative entity counts per sentence -> a short ASCII string (zlib, base64)."""
    array = np.asarray(counts)
    if array.ndim != 2 or array.shape[1] != 3 or (array < 0).any() or (array > np.iinfo(np.uint16).max).any():
        raise ValueError(f"expected [n, 3] entity counts that fit 16 bits, got shape {array.shape}")
    return base64.b64encode(zlib.compress(array.astype("<u2").tobytes(), 9)).decode("ascii")


def unpack_counts(packed: str) -> np.ndarray:
    """:func:`pack_counts` inverted: [n, 3] int64 counts (true positives, predicted, gold) per sentence."""
    return np.frombuffer(zlib.decompress(base64.b64decode(packed)), dtype="<u2").reshape(-1, 3).astype(np.int64)


def _corpus_name(spec: str) -> str:
    """``msra`` stays ``msra``; ``name=/some/dir`` (a user's corpus) becomes ``name``: no machine paths."""
    return spec.partition("=")[0]


def build_record(run_dir: str | Path, gold: Mapping[str, Sequence[Sequence[str]]], where: dict) -> dict:
    """The record of the finished run in ``run_dir``; ``gold`` holds the gold BIOES tags of every split it
    scored (``predictions.json``'s keys), ``where`` the machine it ran on (:func:`acmtl.companion.publish.device_info`
    and the commit)."""
    from acmtl.core.evaluate import sentence_counts

    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    curve = json.loads((run_dir / "curve.json").read_text(encoding="utf-8"))
    predictions = json.loads((run_dir / "predictions.json").read_text(encoding="utf-8"))
    missing = set(predictions) - set(gold)
    if missing:
        raise ValueError(f"{run_dir}: no gold tags given for the scored splits {sorted(missing)}")
    corpus, train = run["corpus"], run["train"]
    return {
        "format": FORMAT,
        "folder": run_dir.name,
        "code_sha256": run["code_sha256"],
        "spec": {"corpus": _corpus_name(corpus["spec"]), "arch": run["arch"], "size": corpus["size"],
                 "seed": train["seed"], "encoder": run["model"]["encoder"], "train": train, "model": run["model"],
                 "data_sha256": corpus["data_sha256"], "sentences": corpus["sentences"]},
        "where": {**where, "device": metrics.get("device"), "precision": metrics.get("precision"),
                  "threads": metrics.get("threads")},
        "scores": {split: {k.removeprefix("entity_"): v for k, v in scores.items()}
                   for split, scores in metrics.items() if isinstance(scores, dict) and "entity_f1" in scores},
        "counts": {split: pack_counts(sentence_counts([list(t) for t in gold[split]],
                                                      [line.split() for line in tags]))
                   for split, tags in predictions.items()},
        "curve": curve,
        "times": {k: metrics.get(k) for k in ("best_epoch", "epochs_run", "train_seconds", "score_seconds")},
    }


def write_record(results: str | Path, record: dict) -> Path:
    """Write ``record`` to its file under ``results`` atomically (a reader never sees half a record)."""
    path = record_path(results, record["folder"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(record, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return path


def read_record(results: str | Path, folder: str) -> dict | None:
    """The record of run ``folder``, or None when it has none."""
    path = record_path(results, folder)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_records(results: str | Path, folders: Iterable[str]) -> dict[str, dict]:
    """The records of ``folders`` that exist, by folder."""
    found = {folder: read_record(results, folder) for folder in folders}
    return {folder: record for folder, record in found.items() if record is not None}


def code_digests(records: Iterable[dict]) -> set[str]:
    """The code digests a set of records was trained with: one, when a table is computed at one code."""
    return {record["code_sha256"] for record in records}


def load_counts(path: str | Path, split: str) -> np.ndarray:
    """The per-sentence entity counts a record (its file, ``path``) holds for ``split``: [n, 3]."""
    counts = json.loads(Path(path).read_text(encoding="utf-8"))["counts"]
    if split not in counts:
        raise KeyError(f"{path} holds no counts for {split!r}; it has {sorted(counts)}")
    return unpack_counts(counts[split])
