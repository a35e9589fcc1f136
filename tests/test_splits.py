from __future__ import annotations

import random
from collections import Counter

import pytest

from acmtl.data.conll import Entity, Sentence, entities_to_tags
from acmtl.data.corpora import Corpus, load_corpus
from acmtl.data.splits import sample_subset, signature, stratified_split, subset_splits

# signature -> number of sentences; the last two are too rare to be strata of their own
SIGNATURES = {(): 400, ("A",): 250, ("B",): 150, ("A", "B"): 120, ("C",): 50, ("A", "C"): 20, ("B", "C"): 6,
              ("A", "B", "C"): 4}


def synthetic(seed: int = 1) -> list[Sentence]:
    """Sentences with unique texts and the signature counts above, in a shuffled order."""
    rng = random.Random(seed)
    plan = [sig for sig, count in SIGNATURES.items() for _ in range(count)]
    rng.shuffle(plan)
    sentences = []
    for i, sig in enumerate(plan):
        text = f"{i:05d}" + "x" * (2 * len(sig) + rng.randint(0, 3))
        entities = [Entity(kind, 5 + 2 * j, 7 + 2 * j) for j, kind in enumerate(sig)]
        sentences.append(Sentence(tuple(text), entities_to_tags(len(text), entities)))
    return sentences


def texts(part: list[Sentence]) -> list[str]:
    return [s.text for s in part]


def test_stratified_split_sizes_disjoint_ordered_deterministic() -> None:
    sentences = synthetic()
    train, dev, test = stratified_split(sentences, seed=3)
    assert (len(train), len(dev), len(test)) == (700, 150, 150)
    assert sorted(texts(train) + texts(dev) + texts(test)) == sorted(texts(sentences))
    position = {s.text: i for i, s in enumerate(sentences)}
    for part in (train, dev, test):
        assert [position[t] for t in texts(part)] == sorted(position[t] for t in texts(part))  # corpus order
    assert stratified_split(sentences, seed=3) == (train, dev, test)
    assert stratified_split(sentences, seed=4)[2] != test
    assert [len(p) for p in stratified_split(sentences[:497])] == [348, 75, 74]  # largest remainder


def test_stratified_split_keeps_signature_shares() -> None:
    sentences = synthetic()
    parts = stratified_split(sentences, seed=0)
    for part, fraction in zip(parts, (0.7, 0.15, 0.15)):
        counts = Counter(signature(s) for s in part)
        for sig, total in SIGNATURES.items():
            if total >= 7:  # a stratum of its own
                assert abs(counts[sig] - total * fraction) <= 2, (sig, counts[sig], total * fraction)
        rare = counts[("B", "C")] + counts[("A", "B", "C")]
        assert abs(rare - 10 * fraction) <= 2


def test_sample_subset_is_stratified_and_deterministic() -> None:
    sentences = synthetic()
    subset = sample_subset(sentences, 200, seed=7)
    assert len(subset) == 200 and len(set(texts(subset))) == 200
    assert set(texts(subset)) <= set(texts(sentences))
    assert sample_subset(sentences, 200, seed=7) == subset
    assert sample_subset(sentences, 200, seed=8) != subset
    counts = Counter(signature(s) for s in subset)
    for sig in [(), ("A",), ("B",), ("A", "B")]:
        assert abs(counts[sig] - SIGNATURES[sig] / 5) <= 1
    assert sample_subset(sentences, 1000, seed=0) == sentences
    for n in (0, 1001):
        with pytest.raises(ValueError):
            sample_subset(sentences, n, seed=0)


def test_bad_fractions_are_rejected() -> None:
    with pytest.raises(ValueError):
        stratified_split(synthetic(), (0.7, 0.2, 0.2))


def synthetic_corpus() -> Corpus:
    sentences = synthetic()
    splits = {"train": sentences[:700], "dev": sentences[700:850], "test": sentences[850:]}
    return Corpus("synthetic", splits, ("A", "B", "C"), {}, [])


def test_subset_splits_draw_from_train_only() -> None:
    """The corpus' dev split (where hyper-parameters are tuned) and test split stay out of every subset."""
    corpus = synthetic_corpus()
    assert subset_splits(corpus, None, seed=0) == {**corpus.splits, "full_test": corpus.splits["test"],
                                                   "corpus_dev": corpus.splits["dev"]}
    splits = subset_splits(corpus, 200, seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 140, "dev": 30, "test": 30, "full_test": 150,
                                                       "corpus_dev": 150}
    drawn = texts(splits["train"]) + texts(splits["dev"]) + texts(splits["test"])
    assert len(set(drawn)) == 200
    assert set(drawn) <= set(texts(corpus.splits["train"]))
    assert splits["full_test"] == corpus.splits["test"]
    assert splits["corpus_dev"] == corpus.splits["dev"]
    assert subset_splits(corpus, 200, seed=1) == splits
    with pytest.raises(ValueError):
        subset_splits(corpus, 701, seed=0)


def type_shares(part: list[Sentence]) -> dict[str, float]:
    counts = Counter(e.type for s in part for e in s.entities())
    total = sum(counts.values())
    return {kind: n / total for kind, n in counts.items()}


@pytest.mark.parametrize(("name", "n", "tolerance"), [("msra", 3000, 0.03), ("resume", 1000, 0.04)])
def test_real_subsets_preserve_type_distribution(name: str, n: int, tolerance: float) -> None:
    corpus = load_corpus(name)
    overall = type_shares(corpus.splits["train"])
    splits = subset_splits(corpus, n, seed=0)
    for split in ("train", "dev", "test"):
        shares = type_shares(splits[split])
        for kind, share in overall.items():
            if share > 0.05:
                assert abs(shares.get(kind, 0) - share) <= tolerance, (split, kind, shares.get(kind), share)
