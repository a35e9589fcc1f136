from __future__ import annotations

import pytest
from pypinyin import Style, lazy_pinyin
from pypinyin.contrib.tone_convert import to_normal
from pypinyin.pinyin_dict import pinyin_dict

from acmtl.data.pinyin import (
    NEUTRAL_TONE,
    NON_CHINESE_ID,
    NON_CHINESE_TONE,
    NUM_SYLLABLES,
    NUM_TONES,
    SYLLABLES,
    UNKNOWN_SYLLABLE_ID,
    pinyin_features,
    pinyin_strings,
)


def syllable_id(syllable: str) -> int:
    return SYLLABLES.index(syllable) + 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("北京", ["bei3", "jing1"]),
        ("银行", ["yin2", "hang2"]),
        ("行走", ["xing2", "zou3"]),
        ("重庆", ["chong2", "qing4"]),
        ("重要", ["zhong4", "yao4"]),
        ("我的书", ["wo3", "de5", "shu1"]),
        ("好吗", ["hao3", "ma5"]),
        ("绿色", ["lv4", "se4"]),
    ],
)
def test_readings_resolve_in_context(text: str, expected: list[str]) -> None:
    assert pinyin_strings(list(text)) == expected


def test_features_ids_and_tones() -> None:
    syllables, tones = pinyin_features(list("北京的重庆"))
    assert syllables == [syllable_id(s) for s in ("bei", "jing", "de", "chong", "qing")]
    assert tones == [3, 1, NEUTRAL_TONE, 2, 4]


@pytest.mark.parametrize("char", list("7１aZ Ａ,，。\t\u3000") + ["😀", "𝐀", "é", "\u200b"])
def test_non_chinese_characters(char: str) -> None:
    assert pinyin_strings([char]) == [""]
    assert pinyin_features([char]) == ([NON_CHINESE_ID], [NON_CHINESE_TONE])


def test_alignment_on_mixed_text() -> None:
    text = "我买了3部iPhone 15，花了１万元😀！重庆 OK吗"
    chars = list(text)
    syllables, tones = pinyin_features(chars)
    readings = pinyin_strings(chars)
    assert len(syllables) == len(tones) == len(readings) == len(chars)
    for char, reading, syllable, tone in zip(chars, readings, syllables, tones):
        chinese = "\u4e00" <= char <= "\u9fff"
        assert (reading != "") == chinese, char
        assert (syllable == NON_CHINESE_ID) == (not chinese), char
        assert (tone == NON_CHINESE_TONE) == (not chinese), char
    assert readings[chars.index("重")] == "chong2"
    assert readings[-1] == "ma5"


def test_empty_input() -> None:
    assert pinyin_strings([]) == []
    assert pinyin_features([]) == ([], [])


def test_items_that_are_not_single_characters_fall_back_per_item() -> None:
    # "e" + combining acute is two code points in one item: the joined text no longer aligns.
    chars = ["中", "e\u0301", "国", "", "人们"]
    assert pinyin_strings(chars) == ["zhong1", "", "guo2", "", ""]
    assert pinyin_features(chars)[1] == [1, NON_CHINESE_TONE, 2, NON_CHINESE_TONE, NON_CHINESE_TONE]


def test_same_readings_as_pypinyin_tone3() -> None:
    """The tone-mark-then-convert shortcut must equal pypinyin's own TONE3 output."""
    text = "中华人民共和国国务院总理李鹏在北京会见了来访的长江实业集团主席，了解到行长的想法吧。"
    expected = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [""] * len(s))
    assert pinyin_strings(list(text)) == expected


def test_syllable_vocabulary_is_fixed_and_covers_pypinyin() -> None:
    assert len(set(SYLLABLES)) == len(SYLLABLES) == 426
    assert NUM_SYLLABLES == len(SYLLABLES) + 3
    assert list(SYLLABLES) == sorted(SYLLABLES)
    readings = {to_normal(r) for value in pinyin_dict.values() for r in value.split(",")}
    assert readings <= set(SYLLABLES), sorted(readings - set(SYLLABLES))


def test_ids_stay_in_range() -> None:
    chars = [chr(code) for code in range(0x4E00, 0x4E00 + 3000)] + list("abc 123😀")
    syllables, tones = pinyin_features(chars)
    assert all(0 < s < NUM_SYLLABLES for s in syllables)
    assert all(0 < t < NUM_TONES for t in tones)
    assert UNKNOWN_SYLLABLE_ID not in syllables[:100]
