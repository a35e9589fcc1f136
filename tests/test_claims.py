from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from acmtl.companion import claims

# Table 2 as the paper prints it (sample size, model, P, R, F1), transcribed independently of claims.py.
TABLE2 = [
    (200, "AC-MTL", 98.62, 98.10, 98.36), (200, "XLNet", 96.21, 95.89, 95.54),
    (200, "RoBERTa", 88.53, 85.37, 86.92), (200, "BiLSTM", 82.48, 82.64, 82.73),
    (1000, "AC-MTL", 98.40, 97.90, 98.15), (1000, "XLNet", 97.16, 96.29, 96.64),
    (1000, "RoBERTa", 88.24, 88.71, 89.44), (1000, "BiLSTM", 81.76, 81.46, 82.17),
    (3000, "AC-MTL", 98.54, 98.19, 98.79), (3000, "XLNet", 97.46, 95.27, 96.26),
    (3000, "RoBERTa", 86.89, 87.04, 87.28), (3000, "BiLSTM", 82.40, 81.67, 91.64),
]

FRAMES = {
    "table2": claims.paper_table2,
    "table3": claims.paper_table3,
    "speed_params": claims.paper_speed_params,
    "attention": claims.paper_attention_scores,
    "robustness": claims.paper_robustness,
    "anchors": claims.published_anchors,
    "consistency": claims.paper_consistency_report,
}


def test_table2_round_trips() -> None:
    df = claims.paper_table2()
    got = list(df[["sample_size", "model", "paper_precision", "paper_recall", "paper_f1"]]
               .itertuples(index=False, name=None))
    assert got == TABLE2
    assert (df["source"] == "paper, Table 2").all()


def test_table2_keeps_the_garbled_labels_with_a_note() -> None:
    df = claims.paper_table2().set_index(["sample_size", "model"])
    assert df.loc[(3000, "XLNet"), "printed_sample_size"] == "2000"
    assert df.loc[(3000, "BiLSTM"), "printed_model"] == "DH CTM"
    note = df.loc[(3000, "BiLSTM"), "note"]
    assert "91.64" in note and "82.40" in note and "81.67" in note
    assert all("2000" in n for n in df.loc[3000, "note"])
    assert df.loc[(200, "AC-MTL"), "note"] == ""


def test_table3_and_figures() -> None:
    t3 = claims.paper_table3().set_index("model")
    assert list(t3.index) == ["BERT+CNN", "BERT+MHSA", "BERT+MHSA+CNN", "AC-MTL"]
    assert tuple(t3.loc["AC-MTL", ["paper_precision", "paper_recall", "paper_f1"]]) == (99.54, 98.19, 98.79)
    sp = claims.paper_speed_params().set_index("model")
    assert sp.loc["AC-MTL", "paper_params_millions"] == 64.0
    assert sp.loc["RoBERTa", "paper_params_millions"] == 118.0
    assert sp.loc["XLNet", "paper_params_millions"] == 105.0
    assert sp.loc["AC-MTL", "paper_tokens_per_s"] == 2618.0
    assert "V100" in sp.loc["AC-MTL", "paper_device"]
    assert math.isnan(sp.loc["BiLSTM", "paper_params_millions"])
    att = claims.paper_attention_scores()
    assert sorted(att["paper_attention_score"]) == [0.46, 0.63, 0.66, 0.67, 0.68]
    rob = claims.paper_robustness().set_index(["context", "model"])
    assert rob.loc[("8(a) MSRA test set", "RoBERTa"), "paper_final_f1"] == 87.28
    assert rob.loc[("8(b) spelling-perturbed set", "AC-MTL"), "paper_final_f1"] == 96.54
    assert rob.loc[("8(c) Weibo", "AC-MTL"), "paper_final_f1"] == 98.35
    assert rob.loc[("8(c) Weibo", "XLNet"), "paper_final_f1"] == 92.78


def test_setup() -> None:
    setup = claims.paper_setup()
    assert setup["learning_rate"] == 5e-5 and setup["batch_size"] == 32 and setup["epochs"] == 50
    assert setup["dropout"] == 0.1 and setup["main_task_loss_weight"] == 0.7
    assert setup["split"] == (0.70, 0.15, 0.15) and "V100" in setup["gpu"]
    assert "1.8.1" in setup["framework"]
    with pytest.raises(TypeError):
        claims.PAPER_CLAIMS.setup["epochs"] = 1  # type: ignore[index]


@pytest.mark.parametrize("name", FRAMES)
def test_every_frame_labels_its_numbers(name: str) -> None:
    df = FRAMES[name]()
    assert len(df) > 0
    assert df["source"].astype(bool).all()
    for column in df.columns:
        if pd.api.types.is_float_dtype(df[column]):
            assert column.startswith(("paper_", "anchor_")), f"{name}.{column}"


def test_consistency_report_flags_rows_outside_the_harmonic_mean_bound() -> None:
    report = claims.paper_consistency_report()
    violating = set(report.loc[~report["within_pr_bound"], ["source", "sample_size", "model"]]
                    .itertuples(index=False, name=None))
    # By hand: F1 must lie between P and R.
    # 200 XLNet 95.54 < 95.89; 200 BiLSTM 82.73 > 82.64; 1000 RoBERTa 89.44 > 88.71;
    # 1000 BiLSTM 82.17 > 81.76; 3000 AC-MTL 98.79 > 98.54; 3000 RoBERTa 87.28 > 87.04;
    # 3000 BiLSTM 91.64 > 82.40. All Table 3 rows lie inside their bound.
    assert violating == {
        ("paper, Table 2", 200, "XLNet"), ("paper, Table 2", 200, "BiLSTM"),
        ("paper, Table 2", 1000, "RoBERTa"), ("paper, Table 2", 1000, "BiLSTM"),
        ("paper, Table 2", 3000, "AC-MTL"), ("paper, Table 2", 3000, "RoBERTa"),
        ("paper, Table 2", 3000, "BiLSTM"),
    }
    matching = set(report.loc[report["matches_hm"], ["sample_size", "model"]]
                   .itertuples(index=False, name=None))
    assert matching == {(200, "AC-MTL"), (200, "RoBERTa"), (1000, "AC-MTL")}
    bilstm = report[(report["sample_size"] == 3000) & (report["model"] == "BiLSTM")].iloc[0]
    assert bilstm["paper_pr_harmonic_mean"] == pytest.approx(82.03)


def test_cross_checks() -> None:
    checks = claims.paper_cross_checks().set_index("check")["holds"]
    assert not checks["Table 3 AC-MTL row equals Table 2 AC-MTL (3000) row"]
    assert not checks["Text: parameter compression 'exceeding 40%' relative to both RoBERTa and XLNet"]
    assert checks["Text: MTL adds 2.05 F1 points over BERT+MHSA+CNN (Table 3)"]
    assert checks["Abstract's 200-sample P/R/F1 equal Table 2"]
    assert checks["Figure 8(a) 'MSRA test set' final F1s equal Table 2 (3000) F1s"]


def test_anchors_cover_msra_weibo_resume() -> None:
    df = claims.published_anchors()
    assert {"msra", "weibo", "resume"} <= set(df["corpus"])
    best = df.groupby("corpus")["anchor_f1_high"].max()
    assert best["weibo"] == 72.66 and best["msra"] == 96.26 and best["resume"] == 96.66
    row = df[(df["system"] == "BERT + CRF (re-runs)") & (df["corpus"] == "weibo")].iloc[0]
    assert (row["anchor_f1_low"], row["anchor_f1_high"], row["anchor_f1_text"]) == (68.8, 70.5, "68.8-70.5")
    assert math.isnan(row["anchor_f1"])
    lattice = df[(df["system"] == "Lattice LSTM") & (df["corpus"] == "msra")].iloc[0]
    assert lattice["anchor_f1"] == 93.18 and lattice["source"] == "Zhang & Yang, ACL 2018"
    assert "ChineseBERT-base (glyph + pinyin)" not in set(df.loc[df["corpus"] == "msra", "system"])


def test_claims_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.PAPER_CLAIMS.table2[0].f1 = 0.0  # type: ignore[misc]


# -- verdicts: each rule on hand-made numbers, and the committed results/claims_verdict.csv ------------------

def test_t_interval_by_hand() -> None:
    from acmtl.companion.verdicts import t_interval

    mean, low, high = t_interval([1.0, 2.0, 3.0])  # sd 1, t(2) = 4.303
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - 4.303 / math.sqrt(3), 2.0 + 4.303 / math.sqrt(3)))
    assert math.isnan(t_interval([5.0])[1])


def test_an_f1_interval_stays_within_0_and_100() -> None:
    """Table 3's BERT+CNN seeds: the t interval reaches 119.19, but no F1 lies beyond 100."""
    from acmtl.companion.verdicts import f1_interval, judge_value

    mean, low, high = f1_interval([70.2356, 77.3784])
    assert (mean, low, high) == pytest.approx((73.807, 28.43, 100.0), abs=0.01)
    assert f1_interval([1.0, 9.0])[1] == 0.0 and math.isnan(f1_interval([50.0])[1])
    two = judge_value(94.75, [70.2356, 77.3784])  # two seeds: shown, not judged, and no interval printed
    assert (two.verdict, two.ours) == ("too few seeds to judge", "73.81 (2 seeds: 70.24, 77.38)")
    assert "100.00]" in judge_value(94.75, [70.2356, 77.3784, 99.0]).ours


@pytest.mark.parametrize("paper, ours, verdict", [
    (61.0, [60.0, 61.0, 62.0], "reproduced"),  # interval 61 ± 2.48 holds the paper's value
    (98.36, [60.0, 61.0, 62.0], "not reproduced"),
    (70.0, [50.0, 70.0, 90.0], "partly"),  # inside, but ± 49.7 points: consistent only because it is wide
    (94.75, [70.2356, 77.3784, 71.0], "not reproduced"),  # inside [63.4, 82.4]? no: 94.75 lies above it
    (94.75, [60.0, 77.3784, 99.0], "not reproduced"),  # inside a wide one, but our mean 78.8 is 16 points off
    (80.5, [80.0], "too few seeds to judge"),  # one or two seeds: shown, not judged
    (82.0, [80.0, 81.0], "too few seeds to judge"),
])
def test_value_rule(paper, ours, verdict) -> None:
    from acmtl.companion.verdicts import judge_value

    assert judge_value(paper, ours).verdict == verdict


def _seeds(differences: list[float]):
    """A paired comparison whose per-seed differences are ``differences`` (F1 points), on one test sentence each:
    nothing to resample, so its interval is the t interval over the seeds."""
    from acmtl.companion.stats import compare

    def run(tp: float) -> np.ndarray:  # F1 = tp / 1000 with 1000 gold and 1000 predicted entities
        return np.array([[round(tp), 1000, 1000]])

    return compare([run(500 + 10 * d) for d in differences], [run(500)] * len(differences))


@pytest.mark.parametrize("differences, verdict", [
    ([2.0, 3.0, 4.0], "reproduced"),  # paired interval above 0: the paper's direction
    ([-2.0, -3.0, -4.0], "not reproduced"),
    ([5.0, -1.0, 4.0], "partly"),  # includes 0, mean on the paper's side
    ([-5.0, 1.0, -4.0], "not reproduced"),  # includes 0, mean on the other side
    ([1.5], "too few seeds to judge"),  # one or two seeds: the sign alone says nothing
    ([-1.5, -3.0], "too few seeds to judge"),
])
def test_direction_rule(differences, verdict) -> None:
    from acmtl.companion.verdicts import judge_direction

    assert judge_direction(_seeds(differences)).verdict == verdict


def test_interval_case_and_count_rules() -> None:
    from acmtl.companion.verdicts import judge_cases, judge_count

    assert [judge_cases(c) for c in ([True, True], [True, True, False], [True, False], [True, False, False],
                                     [False])] == ["reproduced", "partly"] + ["not reproduced"] * 3
    assert judge_count(64.0, 108.3) == "not reproduced" and judge_count(102.0, 101.7) == "reproduced"


def test_a_claim_of_several_parts_takes_its_worst_part() -> None:
    from acmtl.companion.verdicts import combine

    assert combine(["reproduced", "not testable here"]) == "reproduced"
    assert combine(["reproduced", "partly"]) == "partly"
    assert combine(["reproduced", "not reproduced"]) == "not reproduced"  # half a claim is not half reproduced
    assert combine(["partly", "not reproduced", "reproduced"]) == "not reproduced"
    assert combine([True, False]) == "not reproduced" and combine([True, True]) == "reproduced"
    assert combine(["not testable here"]) == "not testable here"
    assert combine(["reproduced", "too few seeds to judge"]) == "too few seeds to judge"  # a part unjudged
    assert combine(["too few seeds to judge", "not reproduced"]) == "not reproduced"  # but a failed part decides


@pytest.mark.parametrize("differences, verdict", [
    ([-0.65, 0.98], "too few seeds to judge"),  # Table 3's multi-task step with two seeds
    ([1.9, 2.2, 2.0], "reproduced"),  # above 0 and 2.05 inside a narrow interval
    ([3.0, 3.3, 3.1], "not reproduced"),  # above 0, but 2.05 outside the interval: a different gain
    ([-1.0, 6.0, 2.5], "partly"),  # a wide interval, the mean 2.5 nearer the claimed gain than no gain
    ([-2.0, 4.0, 1.0], "not reproduced"),  # a wide interval, the mean 1.0 nearer no gain than the claimed one
])
def test_a_claimed_gain_is_judged_on_its_size_too(differences, verdict) -> None:
    from acmtl.companion.verdicts import judge_magnitude

    assert judge_magnitude(2.05, _seeds(differences)).verdict == verdict


def test_scores_highest_is_judged_against_every_row() -> None:
    """AC-MTL clearly above the three rows the paper's sentence compares, but below encoder+CRF: not the highest."""
    from acmtl.companion.verdicts import judge_highest

    f1 = {"encoder_crf": [0.80, 0.81, 0.82], "bert_cnn": [0.60, 0.61, 0.62], "bert_mhsa": [0.61, 0.62, 0.63],
          "bert_mhsa_cnn": [0.62, 0.63, 0.64], "acmtl": [0.70, 0.71, 0.72]}
    runs = pd.DataFrame([{"arch": arch, "seed": seed, "counts": np.array([[round(1000 * value), 1000, 1000]])}
                         for arch, values in f1.items() for seed, value in enumerate(values)])
    judgement = judge_highest(runs, "acmtl", lambda run, split: run.counts)
    assert judgement.verdict == "not reproduced"
    assert "AC-MTL − RoBERTa: -10.00 [-10.00, -10.00], 3 seeds" in judgement.ours
    assert judge_highest(runs[runs["arch"] != "encoder_crf"], "acmtl",
                         lambda run, split: run.counts).verdict == "reproduced"


def test_the_plateau_claim_from_one_model_each_is_shown_not_judged(tmp_path) -> None:
    """One curve per architecture is too few seeds to compare models: the row says which half holds, no verdict."""
    from acmtl.companion.verdicts import claims_verdict

    def curve(arch: str, plateau: int) -> list[dict]:
        return [{"corpus": "msra", "arch": arch, "epoch": e, "dev_f1": 0.9 if e >= plateau else 0.1}
                for e in range(1, 31)]

    pd.DataFrame(curve("acmtl", 8) + curve("encoder_crf", 7)).to_csv(tmp_path / "figure8_curves.csv", index=False)
    claim = "Figure 8(a): AC-MTL plateaus by epoch 10, baselines need 20"
    row = claims_verdict(tmp_path)[0].set_index("claim").loc[claim]
    assert row["verdict"] == "too few seeds to judge"
    assert "AC-MTL by 10: yes, every baseline at 20 or later: no" in row["ours"]


def test_head_to_head_rule_reads_every_msra_size() -> None:
    """Above 0 at every size reproduces the abstract; the worst size decides; no MSRA run: not testable."""
    from acmtl.companion.verdicts import judge_head_to_head

    def runs(*gaps: list[float]) -> pd.DataFrame:
        """AC-MTL minus encoder+CRF per seed (F1 points) at 200, 1000 and 3000 sentences."""
        return pd.DataFrame([{"corpus": "msra", "size": size, "arch": arch, "seed": seed,
                              "counts": np.array([[500 + 10 * gap * (arch == "acmtl"), 1000, 1000]])}
                             for size, per_seed in zip((200, 1000, 3000), gaps) for seed, gap in enumerate(per_seed)
                             for arch in ("acmtl", "encoder_crf")])

    def judge(*gaps):
        return judge_head_to_head(runs(*gaps), lambda run, split: run.counts)

    above, below, tie = [2, 3, 4], [-2, -3, -4], [-1, 2, 3]
    assert judge(above, above, above).verdict == "reproduced"
    assert judge(above, below, above).verdict == "not reproduced"
    assert judge(above, tie, above).verdict == "partly"
    assert judge(above, [1, 2], above).verdict == "too few seeds to judge"
    assert "1,000: +1.33 [-3.84, +6.50], 3 seeds" in judge(above, tie, above).ours
    assert judge_head_to_head(runs(above).assign(corpus="resume"), lambda run, split: run.counts).verdict == (
        "not testable here")


def _write_table2(folder, test_f1: dict[tuple[str, int], list[float]]) -> None:
    """A table2_performance.csv and provenance whose per-run records hold ``test_f1`` (fractions) per arch, seed,
    on the subset test and, as one sentence of 10,000 entities, on the full test."""
    import json

    from acmtl.companion.records import pack_counts

    (folder / "runs").mkdir()
    runs = []
    for (arch, size), values in test_f1.items():
        for seed, f in enumerate(values):
            record = folder / "runs" / f"{arch}-{size}-{seed}.json"
            counts = pack_counts(np.array([[round(10_000 * f), 10_000, 10_000]]))
            record.write_text(json.dumps({"counts": {"full_test": counts}}))
            runs.append({"corpus": "msra", "arch": arch, "size": size, "seed": seed, "test_precision": f,
                         "test_recall": f, "test_f1": f, "record": f"results/runs/{record.name}"})
    rows = [{"corpus": "msra", "arch": arch, "size": size, "seeds": len(v), "full_test_f1": "1.00",
             "status": "measured"} for (arch, size), v in test_f1.items()]
    pd.DataFrame(rows).to_csv(folder / "table2_performance.csv", index=False)
    (folder / "table2_performance.provenance.json").write_text(json.dumps({"extra": {"runs": runs}}))


def test_table2_verdicts_from_hand_made_results(tmp_path) -> None:
    """Runs at the paper's F1 reproduce it; a baseline above AC-MTL on every seed does not lead;
    no file: not testable."""
    from acmtl.companion.verdicts import claims_verdict

    _write_table2(tmp_path, {("acmtl", 200): [0.9836, 0.9830, 0.9842], ("encoder_crf", 200): [0.99, 0.995, 0.999],
                             ("bilstm_crf", 200): [0.50, 0.55, 0.45]})
    df, inputs = claims_verdict(tmp_path)
    verdict = df.set_index("claim")["verdict"]
    assert verdict["Table 2, MSRA 200: AC-MTL F1"] == "reproduced"
    assert verdict["Table 2, MSRA 200: RoBERTa F1"] == "not reproduced"  # 86.92 is far below 99.5
    assert verdict["Table 2, MSRA 200: AC-MTL leads BiLSTM in P, R and F1"] == "reproduced"
    assert verdict["Table 2, MSRA 200: AC-MTL leads RoBERTa in P, R and F1"] == "not reproduced"
    assert verdict["Table 2, MSRA 1000: AC-MTL F1"] == "not testable here"  # no run at 1000
    assert verdict["Figure 6(a): AC-MTL has 64 M parameters"] == "not testable here"  # no figure 6 results
    assert set(inputs) - {f"runs/{p.name}" for p in (tmp_path / "runs").iterdir()} == {
        "table2_performance.csv", "table2_performance.provenance.json"}  # and the records of the full test's counts
    not_testable = df[df["verdict"] == "not testable here"]
    assert not_testable["not_testable"].str.len().gt(0).all() and df.loc[df["verdict"] != "not testable here",
                                                                          "rule"].str.len().gt(0).all()


def test_the_committed_verdicts_cover_every_claim() -> None:
    """One row per statement of claims, per Table 2 size and model, per Table 3 row; only the four verdicts."""
    from pathlib import Path

    from acmtl.companion.verdicts import CSV, VERDICTS, claims_verdict

    results = Path(__file__).resolve().parents[1] / "results"
    committed = pd.read_csv(results / CSV, dtype=str, keep_default_na=False)
    fresh, _ = claims_verdict(results)
    pd.testing.assert_frame_equal(committed, fresh.astype(str).replace("nan", ""), check_dtype=False)
    assert set(committed["verdict"]) <= set(VERDICTS)
    assert {s.key for s in claims.PAPER_CLAIMS.statements} <= set(committed["statement"])
    claimed = set(committed["claim"])
    assert {f"Table 2, MSRA {r.sample_size}: {r.model} F1" for r in claims.PAPER_CLAIMS.table2} <= claimed
    assert {f"Table 3: {r.model} F1" for r in claims.PAPER_CLAIMS.table3} <= claimed
