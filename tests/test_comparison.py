"""The head-to-head verdict: its interval, its rule and the sentence the README prints."""

import json

import pandas as pd
import pytest

from acmtl import comparison
from acmtl.data.conll import Sentence
from acmtl.evaluate import paired_bootstrap, seed_paired_bootstrap

GOLD = [["S-PER", "O", "B-LOC", "E-LOC"], ["O", "S-ORG"], ["B-PER", "E-PER", "O"], ["S-LOC"]] * 10
MISSES = [["S-PER", "O", "O", "O"], ["O", "O"], ["B-PER", "E-PER", "O"], ["O"]] * 10  # drops LOC and ORG


def test_one_seed_gives_the_paired_interval():
    one = seed_paired_bootstrap(GOLD, [GOLD], [MISSES], seed=3)
    assert one == pytest.approx(paired_bootstrap(GOLD, GOLD, MISSES, seed=3))


def test_seeds_are_resampled_too():
    # seed 0 is far better, seed 1 slightly worse: averaging over seeds must widen the interval beyond the
    # sentence-only interval of the mean difference
    half = [g if i % 2 else m for i, (g, m) in enumerate(zip(GOLD, MISSES))]
    pooled = seed_paired_bootstrap(GOLD, [GOLD, MISSES], [MISSES, half])
    assert pooled["diff"] == pytest.approx(
        (paired_bootstrap(GOLD, GOLD, MISSES)["diff"] + paired_bootstrap(GOLD, MISSES, half)["diff"]) / 2)
    assert pooled["low"] < 0 < pooled["high"]


def test_mismatched_runs_are_an_error():
    with pytest.raises(ValueError, match="same number"):
        seed_paired_bootstrap(GOLD, [GOLD], [MISSES, MISSES])


@pytest.mark.parametrize("low, high, expected", [(0.01, 0.03, "beats"), (-0.03, -0.001, "loses"),
                                                 (-0.01, 0.02, "ties"), (0.0, 0.02, "ties")])
def test_verdict_rule(low, high, expected):
    assert comparison.verdict(low, high) == expected


def _run(tmp_path, arch: str, seed: int, predicted: list[list[str]]) -> dict:
    run_dir = tmp_path / f"{arch}-{seed}"
    run_dir.mkdir()
    (run_dir / "predictions.json").write_text(json.dumps({"full_test": [" ".join(p) for p in predicted]}))
    (run_dir / "metrics.json").write_text("{}")
    from acmtl.evaluate import score

    return {"corpus": "msra", "corpus_spec": "msra", "size": 1000, "arch": arch, "seed": seed,
            "run_dir": str(run_dir), "full_test_f1": score(GOLD, predicted).f1}


def test_head_to_head_pairs_runs_by_seed(tmp_path, monkeypatch):
    sentences = [Sentence(tuple("x" * len(t)), tuple(t)) for t in GOLD]
    monkeypatch.setattr(comparison, "run_splits", lambda spec, size, seed: (None, {"full_test": sentences}))
    runs = pd.DataFrame([_run(tmp_path, "acmtl", 0, GOLD), _run(tmp_path, "acmtl", 1, GOLD),
                         _run(tmp_path, "encoder_crf", 0, MISSES), _run(tmp_path, "encoder_crf", 1, MISSES),
                         _run(tmp_path, "encoder_crf", 2, GOLD)])  # seed 2 has no partner: left out
    (row,) = comparison.head_to_head(runs, n_resamples=200).itertuples()
    assert (row.seeds, row.verdict) == (2, "beats")
    assert row.diff == pytest.approx(row.f1_a_mean - row.f1_b_mean) and row.ci_low > 0
    sentence = comparison.verdict_sentence(row)
    assert sentence.startswith("MSRA, 1,000 training sentences: AC-MTL beats encoder+CRF by ")
    assert f"{100 * row.diff:.2f} F1 points" in sentence and "2 seeds" in sentence
