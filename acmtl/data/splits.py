"""Seeded, stratified subsets and train/dev/test splits.

The paper trains on 200/1000/3000-sentence samples split 70/15/15. With test sets of 30
sentences, which sentences land where matters, so every draw is stratified by the sentence's
entity-type signature (the sorted set of types it contains) and fixed by a seed.

How: sentences are ordered by stratum (shuffled within each) and drawn by systematic sampling,
an evenly spaced pick with a random start. Each stratum then gets its proportional share,
rounded up or down, and the sizes come out exact. Signatures too rare to reach even one
sentence of the smallest part are pooled into one stratum.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from acmtl.data.conll import Corpus, Sentence

SUBSET_FRACTIONS = (0.7, 0.15, 0.15)


def signature(sentence: Sentence) -> tuple[str, ...]:
    """The sorted distinct entity types of a sentence; ``()`` for a sentence without entities."""
    return tuple(sorted({entity.type for entity in sentence.entities()}))


def _stratified_order(sentences: Sequence[Sentence], min_stratum: int, rng: random.Random) -> list[int]:
    """Sentence indices grouped by signature (rare ones pooled, last), shuffled within each group."""
    signatures = [signature(s) for s in sentences]
    counts = Counter(signatures)
    groups: dict[tuple[str, ...] | None, list[int]] = defaultdict(list)
    for index, sig in enumerate(signatures):
        groups[sig if counts[sig] >= min_stratum else None].append(index)
    order: list[int] = []
    for key in sorted(groups, key=lambda k: (k is None, k or ())):
        members = groups[key]
        rng.shuffle(members)
        order += members
    return order


def _systematic(n: int, k: int, rng: random.Random) -> list[int]:
    """``k`` distinct positions in ``range(n)``, evenly spaced from a random start."""
    start = rng.random()
    return [int((i + start) * n / k) for i in range(k)]


def _sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` by ``fractions`` with the largest-remainder method, so the sizes add up to ``n``."""
    raw = [n * f for f in fractions]
    sizes = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda j: (sizes[j] - raw[j], j))
    for j in by_remainder[: n - sum(sizes)]:
        sizes[j] += 1
    return sizes


def stratified_split(
    sentences: Sequence[Sentence], fractions: Sequence[float] = SUBSET_FRACTIONS, seed: int = 0
) -> tuple[list[Sentence], ...]:
    """Disjoint parts of ``sentences`` in the given proportions (default 70/15/15), each in corpus order."""
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    sizes = _sizes(len(sentences), fractions)
    rng = random.Random(seed)
    smallest = min(f for f in fractions if f > 0)
    pool = _stratified_order(sentences, math.ceil(1 / smallest), rng)
    parts: list[list[int]] = [[] for _ in fractions]
    for j in range(len(fractions) - 1, 0, -1):  # the first part (train) takes what is left
        picked = set(_systematic(len(pool), sizes[j], rng))
        parts[j] = [index for p, index in enumerate(pool) if p in picked]
        pool = [index for p, index in enumerate(pool) if p not in picked]
    parts[0] = pool
    return tuple([sentences[i] for i in sorted(part)] for part in parts)


def sample_subset(sentences: Sequence[Sentence], n: int, seed: int) -> list[Sentence]:
    """``n`` sentences drawn without replacement, stratified by signature, in corpus order."""
    if not 0 < n <= len(sentences):
        raise ValueError(f"cannot draw {n} sentences from {len(sentences)}")
    rng = random.Random(seed)
    order = _stratified_order(sentences, math.ceil(len(sentences) / n), rng)
    return [sentences[i] for i in sorted(order[p] for p in _systematic(len(order), n, rng))]


def subset_splits(corpus: Corpus, n: int | None, seed: int) -> dict[str, list[Sentence]]:
    """The paper's protocol: ``n`` sentences of the corpus' train split, split 70/15/15 into train, dev
    and test, plus ``full_test`` (the official test split) and ``corpus_dev`` (the corpus' own dev split).

    ``n=None`` gives the corpus' own splits. Subsets are drawn from the train split alone, so the
    official test split (``full_test``) and the corpus' dev split (``corpus_dev``, on which
    hyper-parameters are tuned) stay clean for every subset.
    """
    test, corpus_dev = list(corpus.splits["test"]), list(corpus.splits["dev"])
    if n is None:
        return {"train": list(corpus.splits["train"]), "dev": corpus_dev, "test": test, "full_test": test,
                "corpus_dev": corpus_dev}
    pool = corpus.splits["train"]
    if n > len(pool):
        raise ValueError(f"{corpus.name} has {len(pool)} train sentences; cannot draw a subset of {n}")
    train, dev, subset_test = stratified_split(sample_subset(pool, n, seed), SUBSET_FRACTIONS, seed)
    return {"train": train, "dev": dev, "test": subset_test, "full_test": test, "corpus_dev": corpus_dev}
