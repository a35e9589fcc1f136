"""Spelling noise: homophone table, rate, determinism, and what is (not) allowed to change."""

from __future__ import annotations

import pytest

from acmtl.data.conll import Entity, Sentence, entities_to_tags
from acmtl.data.noise import HomophoneTable, perturb
from acmtl.data.pinyin import pinyin_strings

TEXT = ("他毕业于北京交通大学，现在仍在北京工作。北京的发展速度很快，我也想去北京学习。"
        "创新是企业发展的核心动力，只有不断探索新技术和新模式，才能在激烈的市场竞争中脱颖而出。"
        "2017年6月底的一天13时许，被告人在市场附近窃得电瓶4只，价值人民币352元。")
# every character of the entity 北京交通大学 gets homophones or near-homophones
TABLE_CHARS = TEXT + "经惊精景静境京井敬镜北被背杯贝备焦郊娇胶同统痛达打答雪穴削新心信辛欣星"


def sentence(text: str, entities: list[Entity] = ()) -> Sentence:
    return Sentence(tuple(text), entities_to_tags(len(text), entities))


@pytest.fixture(scope="module")
def table() -> HomophoneTable:
    return HomophoneTable.from_characters(TABLE_CHARS)


@pytest.fixture(scope="module")
def corpus() -> list[Sentence]:
    one = sentence(TEXT, [Entity("ORG", 4, 10)])  # 北京交通大学
    return [one] * 150


def test_table_groups_characters_by_their_most_common_reading(table):
    assert "京" in table.by_reading["jing1"] and "经" in table.by_reading["jing1"]
    assert table.homophones("京", "jing1") == tuple(c for c in table.by_reading["jing1"] if c != "京")
    near = table.near_homophones("京", "jing1")
    assert {"景", "静", "境", "井", "敬", "镜"} <= set(near)
    assert not set(near) & set(table.by_reading["jing1"])  # another tone only
    assert table.homophones("京", "zzz9") == () and table.near_homophones("京", "") == ()


def test_table_min_count_and_non_chinese():
    table = HomophoneTable.from_characters("京京经a1，")
    assert table.by_reading == {"jing1": ("京", "经")}
    assert HomophoneTable.from_characters("京京经", min_count=2).by_reading == {"jing1": ("京",)}


def test_lengths_tags_and_non_chinese_characters_are_kept(table, corpus):
    noisy, report = perturb(corpus, table, 0.3, seed=1)
    assert report.replaced > 0
    for clean, dirty in zip(corpus, noisy):
        assert dirty.tags == clean.tags and len(dirty.chars) == len(clean.chars)
        readings = pinyin_strings(clean.chars)
        for c, d, reading in zip(clean.chars, dirty.chars, readings):
            if not reading:  # digits and punctuation never change
                assert c == d
            elif c != d:  # a replacement is a homophone or a near-homophone of the reading in context
                assert d in table.homophones(c, reading) + table.near_homophones(c, reading)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_realised_rate_is_close_to_the_requested_rate(table, corpus, rate):
    _, report = perturb(corpus, table, rate, seed=0)
    drawn = (report.replaced + report.selected_without_candidate) / report.chinese_characters
    assert drawn == pytest.approx(rate, abs=0.02)  # ~14,000 Bernoulli draws: sd < 0.005
    assert report.realised_rate <= drawn
    assert report.realised_rate == report.replaced / report.chinese_characters
    assert report.entity_chinese_characters == 150 * 6
    assert report.realised_entity_rate == pytest.approx(rate, abs=0.08)  # 900 draws, all with candidates


def test_rate_zero_changes_nothing_and_rate_one_replaces_every_candidate(table, corpus):
    same, report = perturb(corpus, table, 0.0)
    assert same == corpus and report.replaced == 0
    noisy, report = perturb(corpus, table, 1.0)
    assert report.replaced + report.selected_without_candidate == report.chinese_characters
    assert report.replaced == sum(c != d for s, n in zip(corpus, noisy) for c, d in zip(s.chars, n.chars))


def test_same_seed_same_noise_other_seed_other_noise(table, corpus):
    a, report_a = perturb(corpus, table, 0.1, seed=7)
    b, report_b = perturb(corpus, table, 0.1, seed=7)
    c, _ = perturb(corpus, table, 0.1, seed=8)
    assert a == b and report_a == report_b
    assert a != c


def test_near_homophone_probability_picks_the_pool(table, corpus):
    _, only_same = perturb(corpus, table, 0.5, near_homophone_prob=0.0)
    _, only_near = perturb(corpus, table, 0.5, near_homophone_prob=1.0)
    # with 0.0 a near-homophone is used only where no homophone exists; with 1.0 wherever one exists
    assert only_same.replaced_near < only_near.replaced_near
    noisy, _ = perturb(corpus, table, 1.0, near_homophone_prob=1.0)
    readings = pinyin_strings(corpus[0].chars)
    for c, d, reading in zip(corpus[0].chars, noisy[0].chars, readings):
        if reading and table.near_homophones(c, reading):
            assert d in table.near_homophones(c, reading)


@pytest.mark.parametrize("kwargs", [{"rate": -0.1}, {"rate": 1.5}, {"rate": 0.1, "near_homophone_prob": 2.0}])
def test_invalid_settings_are_rejected(table, corpus, kwargs):
    with pytest.raises(ValueError):
        perturb(corpus, table, **kwargs)
