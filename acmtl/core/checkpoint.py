"""Build, save and load models: safetensors for weights, JSON for configuration, never pickle.

A saved model directory is self-contained::

    config.json          {"model_type": "acmtl", "format": "acmtl-model", "model_version": 2,
                          "acmtl_version": "0.1.0", "model": ModelConfig}
    model.safetensors    every weight, the encoder's included
    tokenizer/           the character vocabulary (CharTokenizer.save_pretrained)
    README.md            the model card, written beside them by the serving side (acmtl.serving.card) and the
                         run cache: architecture, training, scores, licence, citation

``model_type`` tells tools that read ``config.json`` (transformers' ``AutoConfig``) that this is not a
plain BERT; folders saved before it was added load as before.

Every file is written under a temporary name and renamed into place, so a crash never leaves
a half-written one. Loading rebuilds the encoder from the configuration stored in
``config.json`` (no download), then loads the weights strictly: a missing or unexpected weight
is an error, as is a pickle file (``*.bin``, ``*.pt``, ...) in the directory, a damaged weights
file, or a tokenizer whose vocabulary size differs from the configuration's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from acmtl.core.encoders import DEFAULT_ENCODER, CharTokenizer, EncoderError, load_encoder
from acmtl.core.model import ACMTL, MODEL_VERSION, BiLSTMCharEncoder, ModelConfig, TransformerCharEncoder
from acmtl.data.fetch import atomic_write_bytes
from acmtl.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT = "acmtl-model"
MODEL_TYPE = "acmtl"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class CheckpointError(RuntimeError):
    """A model directory is incomplete, unsafe or does not match its configuration."""


def build_model(cfg: ModelConfig, *, pretrained: bool = True) -> tuple[ACMTL, CharTokenizer]:
    """A fresh model for ``cfg``; ``pretrained`` loads the encoder's weights, else only its architecture."""
    vocabulary = DEFAULT_ENCODER if cfg.encoder == "bilstm" else cfg.encoder
    tokenizer = CharTokenizer.from_pretrained(vocabulary)
    return _build(cfg, tokenizer, pretrained), tokenizer


def _build(cfg: ModelConfig, tokenizer: CharTokenizer, pretrained: bool) -> ACMTL:
    cfg.vocab_size = tokenizer.vocab_size
    if cfg.encoder == "bilstm":
        encoder = BiLSTMCharEncoder(cfg.vocab_size, cfg.char_dim, cfg.lstm_hidden)
    else:
        if pretrained:
            transformer = load_encoder(cfg.encoder)
            cfg.encoder_config = transformer.config.to_dict()
        elif cfg.encoder_config:
            settings = dict(cfg.encoder_config)
            config = transformers.AutoConfig.for_model(settings.pop("model_type"), **settings)
            transformer = transformers.AutoModel.from_config(config)
        else:
            transformer = load_encoder(cfg.encoder, pretrained=False)
            cfg.encoder_config = transformer.config.to_dict()
        encoder = TransformerCharEncoder(transformer, tokenizer.cls_id, tokenizer.sep_id)
    return ACMTL(cfg, encoder)


def save_pretrained(model: ACMTL, tokenizer: CharTokenizer, directory: str | Path,
                    state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (or ``state``, weights for it kept aside) and ``tokenizer``; each file is replaced
    atomically. The model card beside them is the serving side's (:func:`acmtl.serving.card.write_model_card`)."""
    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in (state or model.state_dict()).items()}
    metadata = {"format": FORMAT, "model_version": str(MODEL_VERSION)}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata=metadata))
    settings = model.cfg.to_dict()
    # transformers records where the encoder was loaded from: a path of this machine's cache, meaningless elsewhere
    settings["encoder_config"].pop("_name_or_path", None)
    config = {"model_type": MODEL_TYPE, "format": FORMAT, "model_version": MODEL_VERSION,
              "acmtl_version": __version__, "model": settings}
    atomic_write_bytes(directory / CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False).encode())
    tokenizer.save_pretrained(directory / TOKENIZER_DIR)
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not an acmtl model directory: {CONFIG_FILE} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not an acmtl model configuration (a JSON object is expected)")
    if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:  # e.g. a transformers BERT folder's config
        raise CheckpointError(f"{path}: a Hugging Face {data.get('model_type')!r} model, not an acmtl model; "
                              "acmtl loads the folders its training and save_pretrained write")
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("model_version") != MODEL_VERSION:
        writer = f" (written by acmtl {data['acmtl_version']})" if "acmtl_version" in data else ""
        raise CheckpointError(f"{path}: saved by model version {data.get('model_version')}{writer}, "
                              f"this acmtl {__version__} reads version {MODEL_VERSION}; retrain or use a "
                              "matching acmtl")
    try:
        return ModelConfig.from_dict(data["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad model configuration ({err})") from None


def load_pretrained(directory: str | Path) -> tuple[ACMTL, CharTokenizer]:
    """Load a model saved by :func:`save_pretrained`, in eval mode."""
    directory = Path(directory)
    cfg = read_config(directory)
    unsafe = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if unsafe:
        raise CheckpointError(f"{directory} contains pickle files {unsafe}; acmtl loads only safetensors "
                              "(pickle can run arbitrary code): remove them")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory}: {WEIGHTS_FILE} is missing")
    if not (directory / TOKENIZER_DIR).is_dir():
        raise CheckpointError(f"{directory}: {TOKENIZER_DIR}/ is missing")
    try:
        tokenizer = CharTokenizer.from_pretrained(str(directory / TOKENIZER_DIR))
    except (EncoderError, ValueError) as err:
        raise CheckpointError(f"{directory / TOKENIZER_DIR}: cannot load the tokenizer ({err})") from None
    if tokenizer.vocab_size != cfg.vocab_size:  # e.g. a truncated vocab.txt: characters would silently become [UNK]
        raise CheckpointError(f"{directory / TOKENIZER_DIR} has {tokenizer.vocab_size} tokens, but {CONFIG_FILE} "
                              f"says the model has {cfg.vocab_size}: the tokenizer does not belong to this model")
    model = _build(cfg, tokenizer, pretrained=False)
    try:
        state = load_file(str(weights))
    except SafetensorError as err:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err}); it is damaged or "
                              "truncated: save or train the model again") from None
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match {CONFIG_FILE}: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]} ({len(missing)} / {len(unexpected)} in all)")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not match {CONFIG_FILE}: {err}") from None
    return model.eval(), tokenizer
