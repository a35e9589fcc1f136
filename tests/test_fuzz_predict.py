"""Raw-text prediction never crashes and always returns entities whose offsets index the input exactly.

1,000 generated texts (fixed seed) go through ``NERPredictor`` loaded from disk: empty and
whitespace-only texts, emoji and other astral-plane characters, full-/half-width mixes,
combining marks, control and format characters, lone surrogates, Latin and digits among
Chinese, characters outside the encoder's vocabulary, texts at the window boundaries and one
text of 100,000 characters. The model is tiny and random, with the emission bias tilted
towards entity tags so that it predicts plenty of entities and the offset checks bite.
"""

from __future__ import annotations

import random
import string

import pytest
import torch

from acmtl.core.checkpoint import build_model, save_pretrained
from acmtl.core.model import ModelConfig
from acmtl.core.train import tag_names
from acmtl.serving.predictor import NERPredictor

SEED = 20240607
N_TEXTS = 1_000
LONG = 100_000
TYPES = ("LOC", "ORG", "PER")


def _span(first: int, last: int) -> list[str]:
    return [chr(c) for c in range(first, last + 1)]


COMMON_HAN = list("北京上海天津广州深圳大学中国人民政府银行公司医院法院张王李赵刘陈杨黄吴周徐孙马朱胡郭何林高罗郑"
                  "梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方"
                  "的一是在不了有和这为上个我以要他时来用们生到作地出就分对成会可主发年动同工也能下过子说产种面而"
                  "后多定行学法所得经十三之进着等部度家电力里如水化自二理起小物现实加量都两体制机当使点从业本去把")
HAN = COMMON_HAN + _span(0x4E00, 0x9FA5)
LATIN = list(string.ascii_letters + string.digits + "@.-_:/%#&+=()[]!?,;'\"")
WHITESPACE = list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") + _span(0x2000, 0x200A)
ASTRAL = (_span(0x1F300, 0x1F64F) + _span(0x1F680, 0x1F6FF) + _span(0x1F900, 0x1F9FF) + _span(0x1F1E6, 0x1F1FF)
          + _span(0x1F3FB, 0x1F3FF) + _span(0x20000, 0x2A6DF) + _span(0x30000, 0x3134A) + _span(0x1D400, 0x1D7FF)
          + _span(0xF0000, 0xF00FF) + _span(0xE0020, 0xE007F))
ASTRAL_SEQUENCES = ["👨\u200d👩\u200d👧\u200d👦", "🇨🇳", "1\ufe0f\u20e3", "🏳\ufe0f\u200d🌈", "👍🏽", "𠮷野家"]
WIDTH = _span(0xFF01, 0xFF5E) + _span(0xFF61, 0xFF9F) + _span(0xFFE0, 0xFFE6) + list(string.ascii_letters + "0123")
COMBINING = _span(0x0300, 0x036F) + _span(0x1AB0, 0x1ABE) + _span(0x20D0, 0x20F0) + ["\u3099", "\u309a"]
CONTROL = (_span(0x00, 0x08) + _span(0x0E, 0x1B) + ["\x7f"] + _span(0x80, 0x84) + _span(0x86, 0x9F)
           + _span(0x200B, 0x200F) + _span(0x202A, 0x202E) + _span(0x2060, 0x2064) + _span(0x2066, 0x2069)
           + ["\ufeff", "\ufff9", "\ufffa", "\ufffb", "\ufffc", "\ufffd", "\ufffe", "\uffff"]
           + _span(0xD800, 0xD80F) + _span(0xDC00, 0xDC0F) + _span(0xE000, 0xE00F))
OUT_OF_VOCABULARY = (_span(0x3400, 0x4DBF) + _span(0x9FA6, 0x9FFF) + _span(0xF900, 0xFAD9) + _span(0xA000, 0xA48C)
                     + _span(0x0F40, 0x0F6C) + _span(0x1200, 0x137F) + _span(0x13A0, 0x13F4) + _span(0x1820, 0x1877))
TEMPLATES = ["2023年{L}在{H}发布", "{H}的邮箱是{L}@{L}.com", "访问https://{L}.cn/{L}?id={D}", "{H}（{L}）{D}元",
             "iPhone {D}在{H}{H}售价{D}.{D}元", "{H}{H}，{L} {L}；{D}%"]

KINDS = ("tiny", "whitespace", "astral", "width", "combining", "control", "latin", "oov", "window", "mixed")


def _chars(rng: random.Random, pool: list[str], n: int) -> str:
    return "".join(rng.choice(pool) for _ in range(n))


def fuzz_text(rng: random.Random, kind: str) -> str:
    n = rng.randint(1, 60)
    if kind == "tiny":  # the empty text, or one or two characters of any kind
        return _mixed(rng, rng.choice([0, 0, 1, 1, 2]))
    if kind == "whitespace":
        return _chars(rng, WHITESPACE, n)
    if kind == "astral":
        return "".join(rng.choice(ASTRAL_SEQUENCES) if rng.random() < 0.2
                       else rng.choice(ASTRAL if rng.random() < 0.4 else HAN) for _ in range(n))
    if kind == "width":
        return "".join(rng.choice(WIDTH if rng.random() < 0.5 else HAN) for _ in range(n))
    if kind == "combining":  # marks after a base, at the very start, and stacked
        marks = "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 4)))
        body = "".join(c + (rng.choice(COMBINING) if rng.random() < 0.3 else "") for c in _chars(rng, HAN + LATIN, n))
        return marks + body
    if kind == "control":
        return "".join(rng.choice(CONTROL if rng.random() < 0.3 else HAN) for _ in range(n))
    if kind == "latin":
        fill = {"H": lambda: _chars(rng, HAN, rng.randint(1, 5)),
                "L": lambda: _chars(rng, LATIN[:52], rng.randint(1, 6)),
                "D": lambda: str(rng.randint(0, 10**6))}
        template = rng.choice(TEMPLATES)
        return "".join(fill[part]() if part in fill else part
                       for part in template.replace("{", "\0").replace("}", "\0").split("\0"))
    if kind == "oov":
        return "".join(rng.choice(OUT_OF_VOCABULARY if rng.random() < 0.5 else HAN) for _ in range(n))
    if kind == "window":  # lengths at and around the 510-character window and its seams
        n = rng.choice([382, 509, 510, 511, 512, 638, 639, 892, 1020, 1021])
        return _mixed(rng, n)
    return _mixed(rng, n)


def _mixed(rng: random.Random, n: int) -> str:
    pools = [HAN] * 6 + [LATIN, WHITESPACE, ASTRAL, WIDTH, COMBINING, CONTROL, OUT_OF_VOCABULARY]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def fuzz_texts() -> tuple[list[str], list[str]]:
    """``N_TEXTS`` texts and their kinds; the last one is ``LONG`` characters of everything."""
    rng = random.Random(SEED)
    kinds = [KINDS[i % len(KINDS)] for i in range(N_TEXTS - 1)]
    texts = [fuzz_text(rng, kind) for kind in kinds]
    return texts + [_mixed(rng, LONG)], kinds + ["long"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Viterbi is thousands of tiny operations: on a busy 2-core machine a second thread only adds waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=[True, False], ids=["constrained", "unconstrained"])
def predictor(request, tiny_encoder_dir, tmp_path_factory) -> NERPredictor:
    """A tiny random AC-MTL, saved and loaded back; unconstrained decoding may emit broken tag sequences."""
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("acmtl", tag_names(TYPES), encoder=str(tiny_encoder_dir), cnn_channels=16,
                                       constrained_decoding=request.param)
    model, tokenizer = build_model(cfg)
    with torch.no_grad():  # favour B/I/E (and a little S) over O, so that entities of every length appear
        model.ner_head.bias.copy_(torch.tensor([0.0] + [0.8, 0.8, 0.8, 0.3] * len(TYPES)))
    directory = save_pretrained(model, tokenizer, tmp_path_factory.mktemp("fuzz_model"))
    return NERPredictor.from_pretrained(directory)


def check_entities(text: str, entities: list[dict]) -> None:
    end = 0
    for e in entities:
        assert set(e) == {"type", "start", "end", "text", "score"}, e
        assert e["score"] is None or 0.0 <= e["score"] <= 1.0 + 1e-9, e  # a probability (None: see _entity_scores)
        assert e["type"] in TYPES and type(e["start"]) is int and type(e["end"]) is int, e
        assert end <= e["start"] < e["end"] <= len(text), (e, len(text))  # in order, not overlapping
        assert text[e["start"] : e["end"]] == e["text"], e
        end = e["end"]


def test_fuzzed_texts_give_exact_offsets(predictor: NERPredictor) -> None:
    texts, kinds = fuzz_texts()
    assert len(texts) == N_TEXTS and len(texts[-1]) == LONG
    unknown = predictor.tokenizer.encode([c for t, k in zip(texts, kinds) if k == "oov" for c in t])
    assert unknown.count(predictor.tokenizer.unk_id) > 500  # the "oov" texts really are outside the vocabulary
    results = predictor.predict(texts)
    assert len(results) == len(texts)
    for text, entities in zip(texts, results):
        check_entities(text, entities)
        if not text.strip():
            assert entities == []

    # the checks above are not vacuous: entities everywhere, also after and on astral characters
    found = [(t, e) for t, es in zip(texts, results) for e in es]
    tagged = [bool(es) for t, es in zip(texts, results) if t.strip()]
    assert len(found) > 2_000 and sum(tagged) > 0.4 * len(tagged)
    assert sum(any(ord(c) > 0xFFFF for c in t[: e["start"]]) for t, e in found) > 100
    assert sum(any(ord(c) > 0xFFFF for c in e["text"]) for _, e in found) > 20
    odd = set(COMBINING) | set(CONTROL)
    assert sum(any(c in odd for c in e["text"]) for _, e in found) > 20
    assert len({e["end"] - e["start"] for _, e in found}) >= 5  # short and long entities
    assert sum(e["score"] is None for _, e in found) < len(found) / 1000  # nearly every entity has its probability
    long_entities = results[-1]
    assert {e["start"] * 20 // LONG for e in long_entities} == set(range(20))  # the whole long text is tagged
    assert long_entities[-1]["end"] > LONG - 300  # inside the last 510-character window: the tail is tagged too


def test_offsets_survive_small_windows(predictor: NERPredictor) -> None:
    """A predictor with a window shorter than the default overlap still tags the whole text."""
    texts, _ = fuzz_texts()
    small = NERPredictor(predictor.model, predictor.tokenizer, max_len=40)
    sample = [t for t in texts[:-1] if len(t) > 100][:20]
    results = small.predict(sample)
    for text, entities in zip(sample, results):
        check_entities(text, entities)
    assert sum(bool(es) and es[-1]["end"] > 80 for es in results) >= len(sample) // 2  # not just the first window
