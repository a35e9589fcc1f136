from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from acmtl.data.conll import CorpusFormatError, Sentence
from acmtl.data.corpora import (
    CorpusUnavailableError,
    corpus_stats,
    legal_case_texts,
    load_corpus,
)
from acmtl.data.legal import legal_conversion_report

TRAIN = "北 B-LOC\n京 I-LOC\n见 O\n\n李 B-PER\n"
DEV = "人\tB-ORG\n民\tM-ORG\n网\tE-ORG\n"
TEST = "上 S-LOC\n海 O\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACMTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "corpora"


def make_dir(root: Path, names: tuple[str, str, str] = ("train.txt", "dev.txt", "test.txt")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in zip(names, (TRAIN, DEV, TEST)):
        (root / name).write_text(content, encoding="utf-8")
    return root


def test_directory_corpus_and_stats(tmp_path: Path, cache: Path) -> None:
    directory = make_dir(tmp_path / "mine")
    corpus = load_corpus(str(directory))
    assert corpus.name == "mine"
    assert corpus.types == ("LOC", "ORG", "PER")
    assert [s.text for s in corpus.splits["train"]] == ["北京见", "李"]
    assert corpus.splits["dev"][0].tags == ("B-ORG", "I-ORG", "E-ORG")
    assert set(corpus.sources) == {str((directory / n).resolve()) for n in ("train.txt", "dev.txt", "test.txt")}
    assert load_corpus(f"other={directory}").name == "other"
    stats = json.loads(json.dumps(corpus_stats(corpus)))
    assert stats["splits"]["train"] == {
        "sentences": 2, "characters": 4, "entities": {"LOC": 1, "ORG": 0, "PER": 1}, "entities_total": 2,
        "length": {"min": 1, "median": 2.0, "p95": 3, "max": 3},
    }
    assert stats["name"] == "mine" and stats["notes"] == corpus.notes


def test_cache_is_used_and_rebuilt_when_corrupt(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    directory = make_dir(tmp_path / "mine")
    first = load_corpus(str(directory))
    [cached] = cache.glob("mine-*.json")
    assert load_corpus(str(directory)) == first
    cached.write_text('{"builder": 1, "splits": [', encoding="utf-8")
    assert load_corpus(str(directory)) == first
    assert "unusable" in capsys.readouterr().err
    assert json.loads(cached.read_text(encoding="utf-8"))["name"] == "mine"
    (directory / "test.txt").write_text("南 S-LOC\n", encoding="utf-8")  # new sources, new cache entry
    assert [s.text for s in load_corpus(str(directory)).splits["test"]] == ["南"]
    assert len(list(cache.glob("mine-*.json"))) == 2


def test_a_process_parses_a_corpus_once_and_hands_out_copies(tmp_path: Path, cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from acmtl.data import corpora

    directory = make_dir(tmp_path / "mine")
    load_corpus(str(directory))  # builds the JSON cache
    parsed, from_json = [], corpora._from_json
    monkeypatch.setattr(corpora, "_from_json", lambda data: parsed.append(data) or from_json(data))
    monkeypatch.setattr(corpora, "_PARSED", {})
    first = load_corpus(str(directory))
    first.splits["train"].clear()  # a caller's edit stays its own
    second = load_corpus(str(directory))
    assert len(parsed) == 1 and [s.text for s in second.splits["train"]] == ["北京见", "李"]


def test_weibo_from_directory_or_environment(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "weibo"
    make_dir(directory, ("weiboNER_2nd_conll.train", "weiboNER_2nd_conll.dev", "weiboNER_2nd_conll.test"))
    (directory / "weiboNER_2nd_conll.train").write_text("北0\tB-GPE.NAM\n京1\tI-GPE.NAM\n人0\tO\n", encoding="utf-8")
    corpus = load_corpus(f"weibo={directory}")
    assert corpus.name == "weibo" and corpus.splits["train"][0].text == "北京人"
    assert "Peng & Dredze" in corpus.notes[0]
    monkeypatch.setenv("ACMTL_WEIBO_DIR", str(directory))
    assert load_corpus("weibo") == corpus


def test_weibo_missing_says_where_it_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACMTL_WEIBO_DIR", raising=False)
    with pytest.raises(CorpusUnavailableError) as err:
        load_corpus("weibo")
    for part in ("Peng & Dredze", "not on any package registry", "golden-horse", "weibo=DIR", "ACMTL_WEIBO_DIR"):
        assert part in str(err.value)


def test_directory_errors_name_the_directory(tmp_path: Path, cache: Path) -> None:
    incomplete = tmp_path / "incomplete"
    make_dir(incomplete, ("train.txt", "valid.txt", "notes.md"))
    with pytest.raises(CorpusFormatError, match=r"incomplete:0: no test file") as err:
        load_corpus(str(incomplete))
    assert err.value.path == str(incomplete)
    twice = make_dir(tmp_path / "twice")
    (twice / "train_old.txt").write_text(TRAIN, encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="cannot tell which file is train"):
        load_corpus(f"x={twice}")
    broken = make_dir(tmp_path / "broken")
    (broken / "dev.txt").write_text("北 B-LOC\n京 E-PER\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError) as err:
        load_corpus(str(broken))
    assert str(err.value).startswith(f"{broken / 'dev.txt'}:2: E-PER follows B-LOC")
    with pytest.raises(ValueError, match="unknown corpus"):
        load_corpus("no-such-corpus")


def entity_counts(part: list[Sentence]) -> Counter:
    return Counter(e.type for s in part for e in s.entities())


def test_msra_official_split() -> None:
    corpus = load_corpus("msra")
    train, dev, test = (corpus.splits[k] for k in ("train", "dev", "test"))
    assert corpus.types == ("LOC", "ORG", "PER")
    assert len(train) + len(dev) == 50_652 and len(test) == 4_620
    assert len(dev) == 2_533
    assert entity_counts(train) + entity_counts(dev) == Counter(PER=17_615, LOC=36_517, ORG=20_571)
    assert entity_counts(test) == Counter(PER=1_973, LOC=2_877, ORG=1_331)
    assert sum(len(s.chars) for s in train + dev) == 2_169_879
    assert sum(len(s.chars) for s in test) == 172_601
    assert any("17 units" in note for note in corpus.notes) and any("seed 0" in note for note in corpus.notes)
    assert load_corpus("msra") == corpus  # from the cache


def test_resume_counts() -> None:
    corpus = load_corpus("resume")
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 3_819, "dev": 463, "test": 477}
    assert corpus.types == ("CONT", "EDU", "LOC", "NAME", "ORG", "PRO", "RACE", "TITLE")
    assert entity_counts(corpus.splits["train"]) == Counter(
        CONT=260, EDU=858, LOC=47, NAME=952, ORG=4_611, PRO=287, RACE=115, TITLE=6_308)
    assert sum(entity_counts(corpus.splits["test"]).values()) == 1_630


def test_legal_conversion_and_split() -> None:
    report = legal_conversion_report()
    assert report == {"rows": 500, "empty_responses": 11, "mentions_listed": 2_550, "unique": 2_101, "resolved": 270,
                      "ambiguous": 26, "listed_more_than_occurs": 68, "nested_dropped": 85, "not_found": 0,
                      "entities": 2_431}
    corpus = load_corpus("legal")
    parts = [corpus.splits[k] for k in ("train", "dev", "test")]
    assert [len(p) for p in parts] == [348, 75, 74]  # 500 rows less 3 exact duplicates, 70/15/15
    assert len({s.text for p in parts for s in p}) == 497
    assert len(corpus.types) == 10
    total = sum((entity_counts(p) for p in parts), Counter())
    assert total["犯罪嫌疑人"] + total["被盗物品"] > 1_000 and sum(total.values()) == 2_431 - 7
    assert any(json.dumps(report, sort_keys=True) in note for note in corpus.notes)


def test_legal_case_texts() -> None:
    texts = legal_case_texts()
    assert len(texts) == 1_413 and len(set(texts)) == len(texts)
    assert not any(t.startswith(("事实:", "文书:")) or "罪名:" in t or "\r" in t or t != t.strip() for t in texts)
    assert texts[0].startswith("公诉机关指控：2016年3月28日20时许") and legal_case_texts() == texts
