"""The diagnosis pairs each variant with its reference on the same seed and judges the difference."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from acmtl.data.corpora import load_corpus
from acmtl.diagnosis import REFERENCES, VARIANTS, chosen_wiring, paired_table, summarize_pairs
from acmtl.evaluate import score


def _fake_run(folder, tags: list[list[str]], gold: list[list[str]]) -> dict:
    """A finished run folder holding ``tags`` as its full-test predictions."""
    folder.mkdir()
    (folder / "predictions.json").write_text(json.dumps({"full_test": [" ".join(t) for t in tags]}))
    (folder / "metrics.json").write_text(json.dumps({"full_test": {"entity_f1": score(gold, tags).f1}}))
    return {"run_dir": str(folder), "full_test_f1": score(gold, tags).f1}


def test_variants_change_one_thing_of_their_reference():
    for name, reference in REFERENCES.items():
        variant, ref = VARIANTS[name], VARIANTS[reference]
        if variant.arch == ref.arch:
            changed = {k for k in {**variant.overrides, **ref.overrides}
                       if variant.overrides.get(k) != ref.overrides.get(k)}
            assert 1 <= len(changed) <= 2, (name, changed)  # the residual block also drops Eq. 11's pooling


def test_pairs_are_matched_by_seed_and_judged(tmp_path, tiny_corpus_dir):
    spec = f"tiny={tiny_corpus_dir}"
    gold = [list(s.tags) for s in load_corpus(spec).splits["test"]]
    blind = [["O"] * len(g) for g in gold]  # finds nothing
    half = gold[: len(gold) // 2] + blind[len(gold) // 2:]  # the seed-1 reference: right on half the sentences
    rows = []
    for seed, reference in ((0, blind), (1, half)):
        for variant, tags in (("paper", reference), ("pool_1", gold), ("no_positions", reference)):
            run = _fake_run(tmp_path / f"{variant}-{seed}", tags, gold)
            rows.append({"variant": variant, "seed": seed, "corpus_spec": spec, "size": None, **run})
    rows.append({"variant": "max_over_kernels", "seed": 1, "corpus_spec": spec, "size": None,
                 **_fake_run(tmp_path / "max-1", gold, gold)})
    pairs = paired_table(pd.DataFrame(rows), n_resamples=200)
    assert set(zip(pairs["variant"], pairs["seed"])) == {("pool_1", 0), ("pool_1", 1), ("no_positions", 0),
                                                         ("no_positions", 1), ("max_over_kernels", 1)}
    pool = pairs[pairs["variant"] == "pool_1"]
    assert (pool["reference"] == "paper").all()
    assert pool["diff"].tolist() == [1.0, pytest.approx(1.0 - score(gold, half).f1)]  # each seed with its own pair
    verdicts = summarize_pairs(pairs).set_index("variant")
    assert verdicts.loc["pool_1", "verdict"] == "helps"
    assert verdicts.loc["no_positions", "verdict"] == "no clear effect"  # identical predictions: a zero interval
    assert verdicts.loc["max_over_kernels", "seeds"] == 1
    assert verdicts.loc["pool_1", "diff_mean"] == pytest.approx(pool["diff"].mean())


def test_selection_uses_the_corpus_dev_split(tmp_path, tiny_corpus_dir, monkeypatch):
    """The wiring is chosen on the corpus' own dev split (every run's predictions on it), never on a test set."""
    import acmtl.runs
    from acmtl.diagnosis import selection_scores

    spec = f"tiny={tiny_corpus_dir}"
    dev = load_corpus(spec).splits["dev"]
    seen = []

    def fake_predictions(run_dir, texts, **kwargs):
        seen.append([tuple(t) for t in texts])
        right = str(run_dir).endswith("good")
        return [list(s.tags) if right else ["O"] * len(s.chars) for s in dev], 0.0

    monkeypatch.setattr(acmtl.runs, "run_predictions", fake_predictions)
    runs = pd.DataFrame([{"variant": v, "seed": seed, "corpus_spec": spec, "size": None, "dev_f1": 0.5,
                          "run_dir": str(tmp_path / f"{v}-{seed}-{'good' if v == 'pool_1' else 'bad'}")}
                         for v in ("paper", "pool_1") for seed in (0, 1)])
    scores = selection_scores(runs).set_index("variant")
    assert scores.loc["pool_1", "corpus_dev_f1_mean"] == 1.0 and scores.loc["paper", "corpus_dev_f1_mean"] == 0.0
    assert all(texts == [s.chars for s in dev] for texts in seen)  # the dev split, not test


def test_the_wiring_is_chosen_among_acmtl_variants_on_dev_f1_alone():
    """A baseline's dev F1 never wins, and no test score takes part."""
    table = pd.DataFrame({"variant": ["encoder_crf", "paper", "residual_block", "pool_1"],
                          "corpus_dev_f1_mean": [0.9, 0.7, 0.8, 0.75], "f1_mean": [0.9, 0.99, 0.1, 0.5]})
    assert chosen_wiring(table).variant == "residual_block"


def test_the_default_wiring_is_the_one_dev_f1_chose():
    """Profile.wiring names the AC-MTL variant of the committed diagnosis with the best F1 on the corpus' own dev
    split (never a test split), and every architecture that borrows AC-MTL's settings gets it."""
    from pathlib import Path

    from acmtl.config import get_profile
    from acmtl.train import TrainConfig

    prof = get_profile("default")
    table = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "table3_diagnosis.csv")
    best = chosen_wiring(table).variant
    assert prof.wiring == best
    for arch in ("acmtl", "bert_cnn", "bert_mhsa_cnn"):
        model_settings = prof.tuned_settings(arch)[1]
        assert {k: model_settings[k] for k in VARIANTS[best].overrides} == VARIANTS[best].overrides, arch
    assert "pool_size" not in prof.tuned_settings("encoder_crf")[1]
    assert prof.tuned_settings("bert_mhsa")[1] == {k: v for k, v in prof.tuned["acmtl"].items()  # no CNN: no wiring
                                                   if k not in TrainConfig.__dataclass_fields__}
