"""The run cache: a trained model is identified by the hash of everything that defines it.

``runs/<hash>/`` holds ``run.json`` (the full configuration the hash was computed from),
``model/``, ``curve.json`` and ``metrics.json``. The hash covers the architecture, the model
code version, the encoder, the exact training data (a digest of every sentence and tag of
every split), the subset size, the seed and all hyper-parameters. A finished run is never
trained again; an unfinished one resumes from its last checkpoint; two processes asking for
the same run take turns through a file lock, and the second reuses the first one's result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

import acmtl
from acmtl.data.conll import Sentence
from acmtl.data.corpora import load_corpus
from acmtl.data.fetch import atomic_write_bytes
from acmtl.data.splits import subset_splits
from acmtl.model import MODEL_VERSION, ModelConfig
from acmtl.paths import runs_dir
from acmtl.train import TrainConfig, tag_names, train


@dataclass(frozen=True)
class RunSpec:
    """What to train: ``arch`` on ``size`` sentences of ``corpus`` (None = the full corpus splits)."""

    corpus: str
    arch: str
    size: int | None
    train: TrainConfig
    encoder: str
    model_overrides: dict = field(default_factory=dict)


def data_digest(data: dict[str, list[Sentence]]) -> str:
    digest = hashlib.sha256()
    for name in sorted(data):
        digest.update(f"#{name}\n".encode())
        for s in data[name]:
            digest.update(("".join(s.chars) + "\t" + " ".join(s.tags) + "\n").encode())
    return digest.hexdigest()


def prepare(spec: RunSpec) -> tuple[dict, ModelConfig, dict[str, list[Sentence]]]:
    """The run's configuration (what gets hashed), its model config and its data splits."""
    corpus = load_corpus(spec.corpus)
    data = subset_splits(corpus, spec.size, spec.train.seed)
    encoder = {} if spec.arch == "bilstm_crf" else {"encoder": spec.encoder}  # BiLSTM-CRF has its own
    model_cfg = ModelConfig.for_architecture(spec.arch, tag_names(corpus.types), **encoder, **spec.model_overrides)
    config = {
        "model_version": MODEL_VERSION,
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
               checkpoint_every: float = 60.0) -> Path:
    """Return the directory of the finished run for ``spec``, training (or resuming) it if needed."""
    config, model_cfg, data = prepare(spec)
    run_dir = (root or runs_dir()) / run_id(config)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(run_dir) + ".lock"):
        if is_complete(run_dir):
            return run_dir
        run_dir.mkdir(exist_ok=True)
        record = {**config, "acmtl_version": acmtl.__version__}
        atomic_write_bytes(run_dir / "run.json", json.dumps(record, indent=2, ensure_ascii=False).encode())
        train(model_cfg, spec.train, data, run_dir, resume=True, progress=progress, checkpoint_every=checkpoint_every)
    return run_dir


def load_metrics(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir} has no metrics.json: the run has not finished")
    return json.loads((run_dir / "metrics.json").read_text())
