from __future__ import annotations

import json
import random

import numpy as np
import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOBES

from acmtl.core.evaluate import (
    Scores,
    bootstrap_ci,
    counts_f1,
    entity_sets,
    format_mean_std,
    is_missing,
    mean_std,
    paired_bootstrap,
    score,
    sentence_counts,
    summarize_seeds,
)

GOLD = [
    ["B-PER", "E-PER", "O", "S-LOC", "O"],
    ["O", "B-ORG", "I-ORG", "E-ORG", "O"],
]


def test_perfect_prediction() -> None:
    s = score(GOLD, GOLD)
    assert (s.precision, s.recall, s.f1, s.support) == (1.0, 1.0, 1.0, 3)
    assert s.token_accuracy == 1.0
    assert set(s.per_type) == {"PER", "LOC", "ORG"}


def test_hand_computed_boundary_error() -> None:
    gold = [["B-PER", "E-PER", "O", "B-LOC", "I-LOC", "E-LOC"]]
    pred = [["B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O"]]  # PER right, LOC one char short
    s = score(gold, pred)
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(0.5)
    assert s.support == 2
    assert s.per_type["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert s.per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s.token_accuracy == pytest.approx(4 / 6)


def test_per_type_and_micro() -> None:
    gold = [["S-PER", "O", "S-PER", "B-LOC", "E-LOC"], ["S-ORG", "O", "O", "O", "O"]]
    pred = [["S-PER", "O", "O", "B-LOC", "E-LOC"], ["S-ORG", "S-PER", "O", "O", "S-LOC"]]
    s = score(gold, pred)
    # gold: 2 PER, 1 LOC, 1 ORG; pred: 2 PER (1 right), 2 LOC (1 right), 1 ORG (right)
    assert s.per_type["PER"]["precision"] == pytest.approx(0.5)
    assert s.per_type["PER"]["recall"] == pytest.approx(0.5)
    assert s.per_type["PER"]["support"] == 2
    assert s.per_type["LOC"]["precision"] == pytest.approx(0.5)
    assert s.per_type["LOC"]["recall"] == pytest.approx(1.0)
    assert s.per_type["LOC"]["f1"] == pytest.approx(2 / 3)
    assert s.per_type["ORG"]["f1"] == pytest.approx(1.0)
    assert s.precision == pytest.approx(3 / 5)
    assert s.recall == pytest.approx(3 / 4)
    assert s.f1 == pytest.approx(2 * 3 / (5 + 4))
    assert s.token_accuracy == pytest.approx(7 / 10)


def test_strict_mode_rejects_broken_chunks() -> None:
    gold = [["B-PER", "E-PER", "O", "O"]]
    # E without B, B without E, and a type switch inside a chunk are not entities in strict IOBES
    for broken in (["O", "E-PER", "O", "O"], ["B-PER", "O", "O", "O"], ["B-PER", "E-LOC", "O", "O"],
                   ["I-PER", "E-PER", "O", "O"]):
        s = score(gold, [broken])
        assert s.precision == 0.0 and s.recall == 0.0 and s.f1 == 0.0, broken
    assert entity_sets([["I-PER", "E-PER", "B-LOC", "E-LOC"]]) == [{("LOC", 2, 4)}]


def test_no_entities_anywhere_scores_zero_without_warnings() -> None:
    s = score([["O", "O"]], [["O", "I-PER"]])
    assert (s.precision, s.recall, s.f1, s.support, s.per_type) == (0.0, 0.0, 0.0, 0, {})
    assert s.token_accuracy == 0.5


def test_to_dict_labels_levels_and_is_json() -> None:
    d = score(GOLD, GOLD).to_dict()
    json.dumps(d)
    assert d["entity_f1"] == 1.0 and d["token_accuracy"] == 1.0
    assert d["entity_support.ORG"] == 1
    assert not {"f1", "precision", "recall", "accuracy"} & set(d)
    assert all(k.startswith("entity_") or k == "token_accuracy" for k in d)


def test_invalid_input_is_named() -> None:
    with pytest.raises(ValueError, match="sentence 1: gold has 5 tags, pred has 4"):
        score(GOLD, [GOLD[0], GOLD[1][:4]])
    with pytest.raises(ValueError, match="sentence 0, position 2: pred tag 'M-PER'"):
        score([["O", "O", "O"]], [["O", "O", "M-PER"]])
    with pytest.raises(ValueError, match="2 sentences, pred has 1"):
        score(GOLD, GOLD[:1])


def _random_tags(rng: random.Random, n: int) -> list[str]:
    vocab = ["O"] * 4 + [f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC")]
    return [rng.choice(vocab) for _ in range(n)]


def test_span_counts_agree_with_seqeval_on_random_malformed_sequences() -> None:
    rng = random.Random(1234)
    for _ in range(500):
        n_sent = rng.randint(1, 4)
        gold = [_random_tags(rng, rng.randint(1, 12)) for _ in range(n_sent)]
        pred = [_random_tags(rng, len(g)) for g in gold]
        tp, n_pred, n_gold = sentence_counts(gold, pred).sum(axis=0)
        strict = {"mode": "strict", "scheme": IOBES, "zero_division": 0}
        p, r, f = (m(gold, pred, **strict) for m in (precision_score, recall_score, f1_score))
        assert (tp / n_pred if n_pred else 0.0) == pytest.approx(p)
        assert (tp / n_gold if n_gold else 0.0) == pytest.approx(r)
        assert (2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0) == pytest.approx(f)
        s = score(gold, pred)
        assert s.f1 == pytest.approx(f) and s.support == n_gold


def _noisy_corpus(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    gold, pred = [], []
    for _ in range(n):
        g = ["B-PER", "E-PER", "O", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"]
        p = list(g)
        if rng.random() < 0.3:
            p[0] = "O"
        if rng.random() < 0.2:
            p[3] = "S-PER"
        gold.append(g)
        pred.append(p)
    return gold, pred


def test_bootstrap_contains_point_is_deterministic_and_narrows() -> None:
    gold, pred = _noisy_corpus(40, seed=0)
    f1 = score(gold, pred).f1
    low, high = bootstrap_ci(gold, pred, seed=3)
    assert low < f1 < high
    assert bootstrap_ci(gold, pred, seed=3) == (low, high)
    assert bootstrap_ci(gold, pred, seed=4) != (low, high)
    big_low, big_high = bootstrap_ci(gold * 10, pred * 10, seed=3)
    assert big_high - big_low < (high - low) / 2
    assert bootstrap_ci(gold, gold) == (1.0, 1.0)


def test_bootstrap_rejects_bad_level() -> None:
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(GOLD, GOLD, level=95)


def test_mean_std_and_summaries() -> None:
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)  # ddof=1
    with pytest.raises(ValueError):
        mean_std([])
    rows = [{"precision": 0.9, "recall": 0.8, "f1": 0.85}, {"precision": 0.7, "recall": 0.6, "f1": 0.65}]
    summary = summarize_seeds(rows)
    assert summary["f1"]["mean"] == pytest.approx(0.75)
    assert summary["f1"]["std"] == pytest.approx(0.1414213562)
    assert summary["recall"]["n"] == 2
    assert summarize_seeds([score(GOLD, GOLD).to_dict()], keys=("entity_f1",))["entity_f1"]["mean"] == 1.0
    with pytest.raises(KeyError, match="accuracy"):
        summarize_seeds(rows, keys=("accuracy",))


def test_format_mean_std() -> None:
    assert format_mean_std(0.91234, 0.0045) == "91.23 ± 0.45"
    assert format_mean_std(2618.0, 12.5, percent=False) == "2618.00 ± 12.50"
    assert format_mean_std(0.91234, None) == "91.23"


def test_is_missing() -> None:
    assert is_missing(None) and is_missing(float("nan")) and is_missing(np.float64("nan"))
    assert not is_missing(0.0) and not is_missing("–") and not is_missing(0)


def test_scores_is_frozen() -> None:
    s = score(GOLD, GOLD)
    assert isinstance(s, Scores)
    with pytest.raises(AttributeError):
        s.f1 = 0.0  # type: ignore[misc]


def test_paired_bootstrap_difference_and_interval() -> None:
    rng = random.Random(0)
    gold = [["B-PER", "E-PER", "O", "S-LOC"] for _ in range(300)]
    good = [list(g) for g in gold]
    worse = [["O", "O", "O", "S-LOC"] if rng.random() < 0.3 else list(g) for g in gold]
    good_counts, worse_counts = sentence_counts(gold, good), sentence_counts(gold, worse)
    pair = paired_bootstrap(good_counts, worse_counts, n_resamples=500, seed=1)
    assert pair["diff"] == pytest.approx(score(gold, good).f1 - score(gold, worse).f1)
    assert 0 < pair["low"] <= pair["diff"] <= pair["high"]
    same = paired_bootstrap(worse_counts, worse_counts, n_resamples=200)
    assert same == {"diff": 0.0, "low": 0.0, "high": 0.0}  # paired: identical models differ by exactly 0
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(good_counts, worse_counts, level=1.5)


def test_counts_give_seqevals_f1() -> None:
    rng = random.Random(1)
    gold = [["B-PER", "E-PER", "O", "S-LOC", "B-ORG", "I-ORG", "E-ORG"] for _ in range(50)]
    pred = [[rng.choice(["O", "S-LOC", "S-PER"]) if rng.random() < 0.2 else t for t in g] for g in gold]
    assert counts_f1(sentence_counts(gold, pred)) == pytest.approx(score(gold, pred).f1, abs=1e-12)
