"""The head-to-head verdict: its interval, its rule and the sentence the README prints."""

import json

import pandas as pd
import pytest

from acmtl.companion import comparison
from acmtl.core.evaluate import paired_bootstrap, seed_paired_bootstrap, sentence_counts

GOLD = [["S-PER", "O", "B-LOC", "E-LOC"], ["O", "S-ORG"], ["B-PER", "E-PER", "O"], ["S-LOC"]] * 10
MISSES = [["S-PER", "O", "O", "O"], ["O", "O"], ["B-PER", "E-PER", "O"], ["O"]] * 10  # drops LOC and ORG
HALF = [g if i % 2 else m for i, (g, m) in enumerate(zip(GOLD, MISSES))]
RIGHT, MISSED, HALF_RIGHT = (sentence_counts(GOLD, tags) for tags in (GOLD, MISSES, HALF))


def test_one_seed_gives_the_paired_interval():
    one = seed_paired_bootstrap([RIGHT], [MISSED], seed=3)
    assert one == pytest.approx(paired_bootstrap(RIGHT, MISSED, seed=3))


def test_seeds_are_resampled_too():
    # seed 0 is far better, seed 1 slightly worse: averaging over seeds must widen the interval beyond the
    # sentence-only interval of the mean difference
    pooled = seed_paired_bootstrap([RIGHT, MISSED], [MISSED, HALF_RIGHT])
    assert pooled["diff"] == pytest.approx(
        (paired_bootstrap(RIGHT, MISSED)["diff"] + paired_bootstrap(MISSED, HALF_RIGHT)["diff"]) / 2)
    assert pooled["low"] < 0 < pooled["high"]


def test_mismatched_runs_are_an_error():
    with pytest.raises(ValueError, match="same number"):
        seed_paired_bootstrap([RIGHT], [MISSED, MISSED])
    with pytest.raises(ValueError, match="same sentences"):
        seed_paired_bootstrap([RIGHT], [MISSED[:-1]])


@pytest.mark.parametrize("low, high, expected", [(0.01, 0.03, "beats"), (-0.03, -0.001, "loses"),
                                                 (-0.01, 0.02, "ties"), (0.0, 0.02, "ties")])
def test_verdict_rule(low, high, expected):
    assert comparison.verdict(low, high) == expected


def _run(tmp_path, arch: str, seed: int, predicted: list[list[str]]) -> dict:
    """A train_grid row whose record holds ``predicted``'s counts on the full test set."""
    from acmtl.companion.records import pack_counts
    from acmtl.core.evaluate import score

    record = tmp_path / f"{arch}-{seed}.json"
    record.write_text(json.dumps({"counts": {"full_test": pack_counts(sentence_counts(GOLD, predicted))}}))
    return {"corpus": "msra", "corpus_spec": "msra", "size": 1000, "arch": arch, "seed": seed,
            "record": str(record), "full_test_f1": score(GOLD, predicted).f1}


def test_head_to_head_pairs_runs_by_seed(tmp_path):
    runs = pd.DataFrame([_run(tmp_path, "acmtl", 0, GOLD), _run(tmp_path, "acmtl", 1, GOLD),
                         _run(tmp_path, "encoder_crf", 0, MISSES), _run(tmp_path, "encoder_crf", 1, MISSES),
                         _run(tmp_path, "encoder_crf", 2, GOLD)])  # seed 2 has no partner: left out
    (row,) = comparison.head_to_head(runs, n_resamples=200).itertuples()
    assert (row.seeds, row.verdict) == (2, "beats")
    assert row.diff == pytest.approx(row.f1_a_mean - row.f1_b_mean) and row.ci_low > 0
    sentence = comparison.verdict_sentence(row)
    assert sentence.startswith("MSRA, 1,000 training sentences: AC-MTL beats encoder+CRF by ")
    assert f"{100 * row.diff:.2f} F1 points" in sentence and "2 seeds" in sentence
