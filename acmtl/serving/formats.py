"""Texts in, tagged texts out, for ``acmtl predict``: plain UTF-8 text files (one text per line) in; JSON
lines, CoNLL (BIOES) or BIO out.

CoNLL and BIO write one character and its tag per line and a blank line after each text, the format
:func:`acmtl.data.conll.read_conll` reads back (and ``acmtl evaluate --data`` scores). Whitespace and
control characters cannot stand in that column, so they are left out; the tags of the other
characters are derived from the entities, so an entity with a space inside stays one entity.
"""

from __future__ import annotations

import bisect
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from acmtl.data.conll import Entity, encoding_hint, entities_to_tags, to_bio

FORMATS = ("jsonl", "conll", "bio")


class InputError(ValueError):
    """An input file that cannot be read as UTF-8 text."""


def input_files(paths: Iterable[Path]) -> list[Path]:
    """Files to read: each path given, a folder standing for its (non-hidden) files, sorted."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not found:
                raise InputError(f"{path}: the folder holds no files to tag")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a BOM and CRLF line ends are fine); a wrong encoding is an error."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte 0x{data[err.start]:02x}){encoding_hint(data)}") from None
    lines = text.removeprefix("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()  # the line end of the last line
    return [line.removesuffix("\r") for line in lines]


CONTROL_NAMES = {"\x00": "NUL", "\x07": "BEL", "\x08": "BS", "\x1b": "ESC", "\r": "CR", "\x7f": "DEL"}


def without_controls(text: str) -> tuple[str, Counter]:
    """``text`` without its control characters (NUL, BEL, ESC, a carriage return, ...; a tab is kept, as a space
    would be) and how many of each were removed, by name. Tagged as they are, the model takes them into entities
    ("张三\\r"), and CoNLL cannot show them."""
    removed = Counter(CONTROL_NAMES.get(c, f"U+{ord(c):04X}") for c in text
                      if c != "\t" and unicodedata.category(c) == "Cc")
    if not removed:
        return text, removed
    return "".join(c for c in text if c == "\t" or unicodedata.category(c) != "Cc"), removed


def _writable(char: str) -> bool:
    """Can stand alone in the first column of a CoNLL line (read_conll splits on whitespace)."""
    return not char.isspace() and unicodedata.category(char) not in ("Cc", "Cs")


def conll_lines(text: str, entities: list[dict], scheme: str = "bioes") -> list[str]:
    """``char<TAB>tag`` lines of one text and a blank line; nothing for a text without a writable character."""
    kept = [i for i, char in enumerate(text) if _writable(char)]
    if not kept:
        return []
    spans = [Entity(e["type"], bisect.bisect_left(kept, e["start"]), bisect.bisect_left(kept, e["end"]))
             for e in entities]
    tags = entities_to_tags(len(kept), [span for span in spans if span.start < span.end])
    if scheme == "bio":
        tags = to_bio(tags)
    return [f"{text[i]}\t{tag}" for i, tag in zip(kept, tags)] + [""]


def render(text: str, entities: list[dict], fmt: str, **extra) -> list[str]:
    """The output lines for one tagged text in ``fmt`` (``extra`` keys go into JSON lines only)."""
    if fmt == "jsonl":
        return [json.dumps({"text": text, "entities": entities, **extra}, ensure_ascii=False)]
    if fmt in ("conll", "bio"):
        return conll_lines(text, entities, "bio" if fmt == "bio" else "bioes")
    raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
