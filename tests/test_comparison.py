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


@pytest.mark.parametrize("low, high, seeds, expected", [
    (0.01, 0.03, 3, "beats"), (-0.03, -0.001, 5, "loses"), (-0.01, 0.02, 3, "ties"), (0.0, 0.02, 3, "ties"),
    (0.01, 0.03, 2, "too few seeds")])
def test_verdict_rule(low, high, seeds, expected):
    from acmtl.companion.stats import SeedComparison

    result = SeedComparison((low + high) / 2, low, high, seeds, (), 0.0, 0.0, 2.0)
    assert comparison.verdict(result) == expected


def _run(tmp_path, arch: str, seed: int, predicted: list[list[str]]) -> dict:
    """A train_grid row whose record holds ``predicted``'s counts on the full test set."""
    from acmtl.companion.records import pack_counts
    from acmtl.core.evaluate import score

    record = tmp_path / f"{arch}-{seed}.json"
    where = {"cpu": "Intel" if seed < 3 else "AMD", "precision": "bf16"}
    record.write_text(json.dumps({"counts": {"full_test": pack_counts(sentence_counts(GOLD, predicted))},
                                  "where": where}))
    return {"corpus": "msra", "corpus_spec": "msra", "size": 1000, "arch": arch, "seed": seed,
            "record": str(record), "full_test_f1": score(GOLD, predicted).f1}


def test_head_to_head_pairs_runs_by_seed(tmp_path):
    runs = pd.DataFrame([*(_run(tmp_path, "acmtl", s, GOLD) for s in (0, 1, 2)),
                         *(_run(tmp_path, "encoder_crf", s, MISSES) for s in (0, 1, 2)),
                         _run(tmp_path, "encoder_crf", 3, GOLD)])  # seed 3 has no partner: left out
    (row,) = comparison.head_to_head(runs).itertuples()
    assert (row.seeds, row.verdict) == (3, "beats")
    assert row.diff == pytest.approx(row.f1_a_mean - row.f1_b_mean) and row.ci_low > 0
    sentence = comparison.verdict_sentence(row)
    assert sentence.startswith("MSRA, 1,000 training sentences: AC-MTL beats encoder+CRF by ")
    assert f"{100 * row.diff:.2f} F1 points" in sentence and "3 seeds" in sentence
    assert row.trained_on == "Intel, bf16 (6 runs)" and "runs from" not in sentence


def test_a_comparison_across_machines_says_so(tmp_path):
    runs = pd.DataFrame([_run(tmp_path, arch, s, tags) for arch, tags in (("acmtl", GOLD), ("encoder_crf", MISSES))
                         for s in (0, 1, 2, 3)])
    (row,) = comparison.head_to_head(runs).itertuples()
    assert row.trained_on == "mixed: Intel, bf16 (6 runs); AMD, bf16 (2 runs)"
    assert "runs from Intel, bf16 (6 runs); AMD, bf16 (2 runs)" in comparison.verdict_sentence(row)


def test_two_seeds_are_too_few_for_a_verdict(tmp_path):
    """However large the gap, two paired seeds give no verdict: the sentence says so instead."""
    runs = pd.DataFrame([_run(tmp_path, arch, s, tags) for arch, tags in (("acmtl", GOLD), ("encoder_crf", MISSES))
                         for s in (0, 1)])
    (row,) = comparison.head_to_head(runs).itertuples()
    assert (row.seeds, row.verdict) == (2, comparison.TOO_FEW)
    assert "too few to judge" in comparison.verdict_sentence(row)
