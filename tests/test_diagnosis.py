"""The diagnosis pairs each variant with its reference on the same seed and judges the difference."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from acmtl.companion.diagnosis import REFERENCES, VARIANTS, chosen_wiring, paired_table, summarize_pairs
from acmtl.core.evaluate import score
from acmtl.data.corpora import load_corpus


def _fake_run(folder, tags: list[list[str]], gold: list[list[str]], split: str = "full_test") -> dict:
    """A run's record holding ``tags``' per-sentence counts on ``split``."""
    from acmtl.companion.records import pack_counts
    from acmtl.core.evaluate import sentence_counts

    record = folder.with_suffix(".json")
    record.write_text(json.dumps({"counts": {split: pack_counts(sentence_counts(gold, tags))}}))
    return {"record": str(record), f"{split}_f1": score(gold, tags).f1}


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
    for seed, reference in ((0, blind), (1, half), (2, blind)):
        for variant, tags in (("paper", reference), ("pool_1", gold), ("no_positions", reference)):
            run = _fake_run(tmp_path / f"{variant}-{seed}", tags, gold)
            rows.append({"variant": variant, "seed": seed, "corpus_spec": spec, "size": None, **run})
    rows.append({"variant": "max_over_kernels", "seed": 1, "corpus_spec": spec, "size": None,
                 **_fake_run(tmp_path / "max-1", gold, gold)})
    runs = pd.DataFrame(rows)
    pairs = paired_table(runs)
    assert set(zip(pairs["variant"], pairs["seed"])) == {(v, s) for v in ("pool_1", "no_positions") for s in (0, 1, 2)
                                                         } | {("max_over_kernels", 1)}
    pool = pairs[pairs["variant"] == "pool_1"]
    assert (pool["reference"] == "paper").all()
    assert pool["diff"].tolist() == [1.0, pytest.approx(1.0 - score(gold, half).f1), 1.0]  # each seed, its own pair
    verdicts = summarize_pairs(pairs, runs).set_index("variant")
    assert verdicts.loc["pool_1", "verdict"] == "helps" and verdicts.loc["pool_1", "ci_low"] > 0
    assert verdicts.loc["no_positions", "verdict"] == "no clear effect"  # identical predictions: a zero interval
    assert verdicts.loc["max_over_kernels", "seeds"] == 1
    assert verdicts.loc["max_over_kernels", "verdict"] == "too few seeds"  # one seed helps, but one is not enough
    assert verdicts.loc["pool_1", "diff_mean"] == pytest.approx(pool["diff"].mean())


def test_selection_scores_describe_the_corpus_dev_split():
    """The dev scores of the diagnosis table are the corpus' own dev split and the subset's, never a test set."""
    from acmtl.companion.diagnosis import selection_scores

    runs = pd.DataFrame([{"variant": v, "seed": seed, "corpus_dev_f1": dev, "dev_f1": 0.5, "full_test_f1": 1 - dev}
                         for v, dev in (("paper", 0.0), ("pool_1", 1.0)) for seed in (0, 1)])
    scores = selection_scores(runs).set_index("variant")
    assert scores.loc["pool_1", "corpus_dev_f1_mean"] == 1.0 and scores.loc["paper", "corpus_dev_f1_mean"] == 0.0
    assert scores.loc["pool_1", "subset_dev_f1_mean"] == 0.5 and "full_test_f1_mean" not in scores


def _rule_table(**rows) -> pd.DataFrame:
    """A diagnosis table: variant -> (dev_seeds, dev_diff, dev_ci_low, dev_ci_high, f1_mean on the full test)."""
    return pd.DataFrame([{"variant": v, "dev_seeds": n, "dev_diff": d, "dev_ci_low": lo, "dev_ci_high": hi,
                          "f1_mean": test, "corpus_dev_f1_mean": 0.7 + (d or 0)}
                         for v, (n, d, lo, hi, test) in rows.items()])


def test_a_contender_that_beats_the_default_on_dev_becomes_the_default():
    table = _rule_table(residual_block=(None, None, None, None, 0.70), paper=(3, -0.02, -0.03, -0.01, 0.69),
                        identity_start=(3, 0.03, 0.01, 0.05, 0.71), max_over_kernels=(3, 0.01, 0.002, 0.02, 0.72))
    assert chosen_wiring(table, "residual_block").variant == "identity_start"  # two beat it: the larger lead wins


@pytest.mark.parametrize(("row", "why"), [
    ((1, 0.05, 0.02, 0.08, 0.9), "a 1-seed variant cannot win, however large its lead"),
    ((2, 0.05, 0.02, 0.08, 0.9), "two seeds are still too few"),
    ((3, 0.006, -0.001, 0.013, 0.9), "a lead inside the noise (interval includes 0) cannot flip the default"),
    ((None, None, None, None, 0.9), "a row without a paired dev interval (a pre-rule table) cannot win"),
])
def test_the_default_stays_unless_beaten_outside_the_noise(row, why):
    table = _rule_table(residual_block=(None, None, None, None, 0.70), max_over_kernels=row)
    assert chosen_wiring(table, "residual_block").variant == "residual_block", why


def test_the_wiring_is_chosen_among_acmtl_variants_on_dev_alone():
    """A baseline never wins, and no test score takes part: the full test would pick another wiring."""
    table = _rule_table(residual_block=(None, None, None, None, 0.70), encoder_crf=(3, 0.09, 0.05, 0.12, 0.95),
                        pool_1=(3, 0.02, 0.01, 0.03, 0.60), no_positions=(3, -0.01, -0.02, 0.00, 0.99))
    assert chosen_wiring(table, "residual_block").variant == "pool_1"
    with pytest.raises(ValueError, match="no row"):
        chosen_wiring(table, "max_over_kernels")


def test_wiring_comparisons_pair_each_variant_with_the_default_by_seed(tmp_path, tiny_corpus_dir):
    """dev_seeds counts the seeds both have, and the interval is on the corpus' own dev split."""
    from acmtl.companion.diagnosis import wiring_comparisons

    dev = [list(s.tags) for s in load_corpus(f"tiny={tiny_corpus_dir}").splits["dev"]]
    blind = [["O"] * len(tags) for tags in dev]
    grid = {"residual_block": (0, 1, 2), "identity_start": (0, 1, 2), "pool_1": (1,), "encoder_crf": (0, 1, 2)}
    runs = pd.DataFrame([{"variant": v, "seed": seed,
                          **_fake_run(tmp_path / f"{v}-{seed}", dev if v == "identity_start" else blind, dev,
                                      "corpus_dev")}
                         for v, seeds in grid.items() for seed in seeds])
    table = wiring_comparisons(runs, "residual_block").set_index("variant")
    assert set(table.index) == {"identity_start", "pool_1"}  # AC-MTL variants only, the default not with itself
    assert table.loc["identity_start", "dev_seeds"] == 3 and table.loc["pool_1", "dev_seeds"] == 1
    assert table.loc["identity_start", "dev_diff"] == 1.0 and table.loc["identity_start", "dev_ci_low"] == 1.0


def test_the_default_wiring_is_the_one_the_rule_keeps():
    """Profile.wiring is what chosen_wiring decides on the diagnosis (paired seeds on the corpus' own dev split,
    never a test split), computed against that same default: from the run records once every run of the diagnosis
    has one, else from the committed table. Every architecture that borrows AC-MTL's settings and has a block to
    wire gets it."""
    from pathlib import Path

    from acmtl.companion import experiments as ex
    from acmtl.companion.config import get_profile
    from acmtl.companion.diagnosis import recorded_rule
    from acmtl.companion.plan import diagnosis_plan

    prof = get_profile("default")
    if all((ex.records_root("default") / f"{folder}.json").is_file() for folder in diagnosis_plan("default")):
        best = recorded_rule("default")[0]["variant"]  # the records: nothing is trained
    else:  # the regeneration has not recorded the whole diagnosis yet
        results = Path(__file__).resolve().parents[1] / "results"
        table = pd.read_csv(results / "table3_diagnosis.csv")
        extra = json.loads((results / "table3_diagnosis.provenance.json").read_text())["extra"]
        assert extra.get("current_wiring", prof.wiring) == prof.wiring  # (tables from before the rule did not say)
        best = chosen_wiring(table, prof.wiring).variant
    assert prof.wiring == best
    for arch in ("acmtl", "bert_cnn", "bert_mhsa", "bert_mhsa_cnn"):
        model_settings = prof.tuned_settings(arch)[1]
        assert {k: model_settings[k] for k in VARIANTS[best].overrides} == VARIANTS[best].overrides, arch
    assert "pool_size" not in prof.tuned_settings("encoder_crf")[1]
