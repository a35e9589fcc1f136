"""Character-per-line CoNLL files: strict reading (BIO, BIOES or BMES in, BIOES out) and writing.

Every corpus passes through ``read_conll``, so this is where malformed data is caught: a
problem is reported as ``CorpusFormatError`` with the file and line, never skipped. The
internal scheme is BIOES because the CRF uses it; ``to_bio`` converts back for export.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from acmtl.data.fetch import atomic_write_bytes

SCHEMES = ("bio", "bioes", "bmes")
_PREFIXES = {"bio": "BI", "bioes": "BIES", "bmes": "BMES"}
_MIDDLE = {"bio": "I", "bioes": "I", "bmes": "M"}
_FIELD_SEP = re.compile(r"[ \t]+")  # ASCII only, so U+3000 (full-width space) can be a character
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # after CRLF -> LF; a lone CR is an error too
_WEIBO_TOKEN = re.compile(r"^(.)\d+$")  # Peng & Dredze's weiboNER_2nd_conll: char + word position


class CorpusFormatError(ValueError):
    """Malformed corpus input; ``str(err)`` is ``"{path}:{line}: {message}"``."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(str(path), line, message)
        self.path = str(path)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Entity:
    type: str
    start: int  # character offset, inclusive
    end: int  # exclusive


@dataclass(frozen=True)
class Sentence:
    chars: tuple[str, ...]
    tags: tuple[str, ...]  # BIOES

    def __post_init__(self) -> None:
        if len(self.chars) != len(self.tags):
            raise ValueError(f"{len(self.chars)} characters but {len(self.tags)} tags")

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def entities(self) -> list[Entity]:
        return tags_to_entities(self.tags)


@dataclass
class Corpus:
    """A named corpus: its splits of sentences, entity types and the source files it was built from."""

    name: str
    splits: dict[str, list[Sentence]]  # "train", "dev", "test"
    types: tuple[str, ...]  # sorted entity types
    sources: dict[str, str]  # source file -> sha256
    notes: list[str]  # how the corpus was made: split rules, seeds, repaired units, conversion report


@dataclass(frozen=True)
class ConllFile:
    """What ``read_conll_file`` found: the sentences plus the facts a corpus reports in its notes."""

    path: str
    scheme: str  # the scheme of the file ("bio", "bioes" or "bmes"), before normalising to BIOES
    sentences: list[Sentence]
    first_unit: list[int]  # for each sentence, the index of its first blank-line-separated unit
    glued_lines: list[int]  # first line of every unit glued onto the one before it

    @property
    def glued(self) -> int:
        return len(self.glued_lines)


def tags_to_entities(tags: Sequence[str]) -> list[Entity]:
    """Entities of a BIOES sequence: ``B-X I-X* E-X`` or ``S-X``.

    Fragments that are not well formed (an orphan ``I-X``, a ``B-X`` never closed) are not
    entities, as in seqeval's strict IOBES mode, so model output is scored the same way.
    """
    entities: list[Entity] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if prefix == "S":
            entities.append(Entity(label, i, i + 1))
            start = -1
        elif prefix == "B":
            start, kind = i, label
        elif prefix == "I" and start >= 0 and label == kind:
            continue
        elif prefix == "E" and start >= 0 and label == kind:
            entities.append(Entity(label, start, i + 1))
            start = -1
        else:
            start = -1
    return entities


def entities_to_tags(n: int, entities: Iterable[Entity]) -> tuple[str, ...]:
    """BIOES tags of length ``n``; overlapping or out-of-range entities are an error."""
    tags = ["O"] * n
    for ent in sorted(entities, key=lambda e: e.start):
        if not 0 <= ent.start < ent.end <= n:
            raise ValueError(f"entity {ent} is outside a sentence of {n} characters")
        if any(t != "O" for t in tags[ent.start:ent.end]):
            raise ValueError(f"entity {ent} overlaps another entity")
        if ent.end - ent.start == 1:
            tags[ent.start] = f"S-{ent.type}"
        else:
            tags[ent.start] = f"B-{ent.type}"
            tags[ent.start + 1:ent.end - 1] = [f"I-{ent.type}"] * (ent.end - ent.start - 2)
            tags[ent.end - 1] = f"E-{ent.type}"
    return tuple(map(sys.intern, tags))


def to_bio(tags: Sequence[str]) -> list[str]:
    """BIOES -> BIO (``S-`` becomes ``B-``, ``E-`` becomes ``I-``)."""
    return ["B" + t[1:] if t[0] == "S" else "I" + t[1:] if t[0] == "E" else t for t in tags]


def write_conll(path: str | Path, sentences: Iterable[Sentence]) -> None:
    """``char<TAB>tag`` per line, a blank line after each sentence; UTF-8, LF, atomic."""
    lines: list[str] = []
    for sentence in sentences:
        for char, tag in zip(sentence.chars, sentence.tags):
            if len(char) != 1 or char in " \t\r\n":
                raise ValueError(f"cannot write {char!r} as one CoNLL character (sentence {sentence.text!r})")
            lines.append(f"{char}\t{tag}\n")
        lines.append("\n")
    atomic_write_bytes(Path(path), "".join(lines).encode("utf-8"))


def read_conll(path: str | Path, *, scheme: str | None = None, glue_continuations: bool = False) -> list[Sentence]:
    """Sentences of a CoNLL file, tags normalised to BIOES. See ``read_conll_file``."""
    return read_conll_file(path, scheme=scheme, glue_continuations=glue_continuations).sentences


def read_conll_file(path: str | Path, *, scheme: str | None = None, glue_continuations: bool = False) -> ConllFile:
    """Read one character-per-line file: ``char<whitespace>[extra columns...]tag``, blank line between units.

    The tag scheme (BIO, BIOES, BMES) is detected from the tag prefixes unless ``scheme`` forces
    one; sequences must be valid in it. ``glue_continuations`` appends a unit whose first tag
    continues an entity (``I-``/``M-``/``E-``) to the unit before it: some corpora cut long
    sentences inside an entity (MSRA 17 times, Resume twice).
    """
    if scheme is not None and scheme.lower() not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    path = str(path)
    lines = _decode(path, Path(path).read_bytes()).split("\n")
    units = _split_units(path, lines)
    found = _detect_scheme(path, units) if scheme is None else _check_scheme(path, units, scheme.lower())
    glued_lines: list[int] = []
    first_unit: list[int] = []
    merged: list[_Unit] = []
    for index, unit in enumerate(units):
        if glue_continuations and merged and unit.prefixes[0] in "IME":
            _glue(merged[-1], unit, found)
            glued_lines.append(unit.lines[0])
        else:
            merged.append(unit)
            first_unit.append(index)
    sentences = [_to_sentence(path, unit, found) for unit in merged]
    return ConllFile(path, found, sentences, first_unit, glued_lines)


@dataclass
class _Unit:
    chars: list[str]
    prefixes: list[str]  # "O", "B", "I", "M", "E", "S"
    labels: list[str]
    lines: list[int]


def encoding_hint(data: bytes) -> str:
    """What to do with bytes that are not UTF-8: a hint when they are GBK/GB18030 (common for Chinese text)."""
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        return ""
    return "; it decodes as GBK/GB18030: convert it with `iconv -f GB18030 -t UTF-8`"


def _decode(path: str, data: bytes) -> str:
    if b"\x00" in data:
        offset = data.index(b"\x00")
        line = data.count(b"\n", 0, offset) + 1
        raise CorpusFormatError(path, line, "binary data (NUL byte); expected a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise CorpusFormatError(
            path, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at column {column}){encoding_hint(data)}"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if match := _CONTROL.search(text):
        line = text.count("\n", 0, match.start()) + 1
        what = "a carriage return without a line feed" if match.group() == "\r" else "is this a binary file?"
        raise CorpusFormatError(path, line, f"control character U+{ord(match.group()):04X} ({what})")
    return text


def _split_units(path: str, lines: list[str]) -> list[_Unit]:
    rows: list[tuple[int, str, str]] = []  # (line number, token, tag)
    breaks: set[int] = set()  # index into rows where a new unit starts
    columns = 0  # fields per line, set by the first tagged line: a line with more or fewer is misaligned
    for number, line in enumerate(lines, start=1):
        line = line.strip(" \t")
        if not line:
            breaks.add(len(rows))
            continue
        fields = _FIELD_SEP.split(line)
        if len(fields) < 2:
            raise CorpusFormatError(path, number, f"no tag: {line!r} has one field; expected a character, then a tag")
        if len(fields) != columns:
            if columns:
                raise CorpusFormatError(path, number, f"{len(fields)} columns, but line {rows[0][0]} has {columns}; "
                                        "every line needs the same columns (the character first, the tag last)")
            columns = len(fields)
        rows.append((number, fields[0], fields[-1]))
    if not rows:
        raise CorpusFormatError(path, 1, "empty file: no tagged characters")
    weibo_tokens = all(_WEIBO_TOKEN.match(token) for _, token, _ in rows)
    units: list[_Unit] = []
    tag_cache: dict[str, tuple[str, str]] = {}
    for i, (number, token, tag) in enumerate(rows):
        if i == 0 or i in breaks:
            units.append(_Unit([], [], [], []))
        if weibo_tokens:
            token = token[0]
        elif len(token) != 1:
            raise CorpusFormatError(path, number, f"expected one character in the first column, got {token!r}")
        if (parsed := tag_cache.get(tag)) is None:
            parsed = tag_cache[tag] = _parse_tag(path, number, tag)
        unit = units[-1]
        unit.chars.append(sys.intern(token))
        unit.prefixes.append(parsed[0])
        unit.labels.append(parsed[1])
        unit.lines.append(number)
    return units


def _parse_tag(path: str, line: int, tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, label = tag.partition("-")
    if prefix not in ("B", "I", "M", "E", "S") or not sep or not label:
        raise CorpusFormatError(path, line, f"unknown tag {tag!r}; expected O or B-/I-/M-/E-/S- followed by a type")
    return prefix, sys.intern(label)


def _first_lines(units: list[_Unit]) -> dict[str, int]:
    first: dict[str, int] = {}
    for unit in units:
        for prefix, line in zip(unit.prefixes, unit.lines):
            first.setdefault(prefix, line)
    return first


def _detect_scheme(path: str, units: list[_Unit]) -> str:
    first = _first_lines(units)
    if "M" in first and "I" in first:
        line, other = max((first["M"], "I"), (first["I"], "M"))
        this = "M" if other == "I" else "I"
        raise CorpusFormatError(
            path, line, f"mixed tag schemes: {this}- here, {other}- at line {first[other]} "
            "(BMES uses M-, BIO/BIOES use I-)"
        )
    if "M" in first:
        return "bmes"
    return "bioes" if "E" in first or "S" in first else "bio"


def _check_scheme(path: str, units: list[_Unit], scheme: str) -> str:
    allowed = _PREFIXES[scheme] + "O"
    for unit in units:
        for prefix, label, line in zip(unit.prefixes, unit.labels, unit.lines):
            if prefix not in allowed:
                raise CorpusFormatError(path, line, f"tag {prefix}-{label} is not part of the {scheme.upper()} scheme")
    return scheme


def _glue(previous: _Unit, unit: _Unit, scheme: str) -> None:
    """Append ``unit`` to ``previous``; re-open an entity the cut closed (``S-X | E-X`` -> ``B-X E-X``)."""
    if previous.labels[-1] == unit.labels[0] and scheme != "bio":
        reopened = {"S": "B", "E": _MIDDLE[scheme]}
        previous.prefixes[-1] = reopened.get(previous.prefixes[-1], previous.prefixes[-1])
    previous.chars += unit.chars
    previous.prefixes += unit.prefixes
    previous.labels += unit.labels
    previous.lines += unit.lines


def _to_sentence(path: str, unit: _Unit, scheme: str) -> Sentence:
    """Validate ``unit`` in ``scheme`` and convert its tags to BIOES."""
    middle = _MIDDLE[scheme]
    prefixes, labels, lines = unit.prefixes, unit.labels, unit.lines
    name = scheme.upper()
    open_label = ""  # type of the entity the previous tag leaves open ("" when none)
    open_line = 0
    tags: list[str] = []
    for i, (prefix, label) in enumerate(zip(prefixes, labels)):
        continues = prefix == middle or (prefix == "E" and scheme != "bio")
        if continues and open_label != label:
            if i == 0:
                raise CorpusFormatError(
                    path, lines[i], f"sentence starts with {prefix}-{label}, inside an entity (a sentence cut in two? "
                    "glue_continuations=True glues it onto the sentence before)"
                )
            before = f"{prefixes[i - 1]}-{labels[i - 1]}".rstrip("-")
            raise CorpusFormatError(
                path, lines[i], f"{prefix}-{label} follows {before}; in {name} it must continue an entity of type "
                f"{label}"
            )
        if not continues and open_label and scheme != "bio":
            tag = f"{prefix}-{label}".rstrip("-")
            raise CorpusFormatError(
                path, lines[i], f"{tag} while the {open_label} entity opened at line {open_line} is not closed; "
                f"in {name} an entity ends with E-{open_label}"
            )
        if prefix == "B":
            open_line = lines[i]
        if scheme == "bio":
            following = prefixes[i + 1] == "I" and labels[i + 1] == label if i + 1 < len(prefixes) else False
            if prefix == "B":
                tags.append(f"B-{label}" if following else f"S-{label}")
            elif prefix == "I":
                tags.append(f"I-{label}" if following else f"E-{label}")
            else:
                tags.append("O")
            open_label = label if prefix != "O" else ""
        else:
            tags.append(f"I-{label}" if prefix == "M" else "O" if prefix == "O" else f"{prefix}-{label}")
            open_label = label if prefix in ("B", middle) else ""
    if open_label and scheme != "bio":
        raise CorpusFormatError(
            path, lines[-1], f"sentence ends inside the {open_label} entity opened at line {open_line}; "
            f"in {name} an entity ends with E-{open_label}"
        )
    return Sentence(tuple(unit.chars), tuple(map(sys.intern, tags)))
