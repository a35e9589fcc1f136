"""Figure 8(b)'s counts in git (acmtl.companion.noise_counts): the file's round trip and what it refuses, the noise
table read from it without weights, the verdicts over seeds, and the plan that lists and produces the counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from acmtl.companion import noise_counts, verdicts
from acmtl.companion.noise_counts import CountsStore, NoiseSetting
from acmtl.data.conll import Sentence

SETTING = NoiseSetting(rates=(0.2,))


def _sentences(text: str, n: int = 4) -> list[Sentence]:
    return [Sentence(tuple(f"{text}{i}"), ("B-LOC", "E-LOC", "O")) for i in range(n)]


CLEAN, NOISY = _sentences("北京"), _sentences("背京")
COUNTS = {0.0: np.array([[1, 1, 1], [1, 1, 1], [0, 1, 1], [1, 2, 1]]),
          0.2: np.array([[0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 1]])}


def _entries() -> dict[float, dict]:
    return {0.0: noise_counts.entry(CLEAN, None, COUNTS[0.0], 3.0),
            0.2: {**noise_counts.entry(NOISY, None, COUNTS[0.2], 4.0), "realised_rate": 0.19}}


def test_a_counts_file_round_trips_and_refuses_other_sets_or_params(tmp_path) -> None:
    path = noise_counts.write_counts(tmp_path, "f0", SETTING, _entries(),
                                     run={"code_sha256": "c0de", "arch": "acmtl", "corpus": {"spec": "msra",
                                                                                              "size": 1000},
                                          "train": {"seed": 3}})
    assert path == tmp_path / "noise" / "f0.json" and not list(path.parent.glob("*.tmp*"))
    stored = json.loads(path.read_text())
    assert stored["spec"] == {"arch": "acmtl", "corpus": "msra", "size": 1000, "seed": 3}
    assert stored["code_sha256"] == "c0de" and set(stored["rates"]) == {"0.0", "0.2"}
    found = noise_counts.read_counts(tmp_path, "f0", SETTING, {0.0: CLEAN, 0.2: NOISY})
    assert set(found) == {0.0, 0.2} and found[0.2]["realised_rate"] == 0.19 and found[0.0]["seconds"] == 3.0
    assert all(np.array_equal(found[r]["counts"], COUNTS[r]) for r in COUNTS)
    # another noise procedure (other misspelt sentences): that rate is refused, the clean set still matches
    other = _sentences("贝京")
    assert set(noise_counts.read_counts(tmp_path, "f0", SETTING, {0.0: CLEAN, 0.2: other})) == {0.0}
    # other params, another run, a rate never tagged: nothing
    assert noise_counts.read_counts(tmp_path, "f0", NoiseSetting(rates=(0.2,), near_homophone_prob=1.0),
                                    {0.0: CLEAN}) == {}
    assert noise_counts.read_counts(tmp_path, "f1", SETTING, {0.0: CLEAN}) == {}
    assert noise_counts.read_counts(tmp_path, "f0", SETTING, {0.5: NOISY}) == {}
    assert noise_counts.has_counts(tmp_path, "f0", SETTING)
    assert not noise_counts.has_counts(tmp_path, "f0", NoiseSetting(rates=(0.2, 0.5)))


def _store(results: Path, **kwargs) -> CountsStore:
    return CountsStore(results, SETTING, **kwargs)


def test_noise_scores_read_committed_counts_and_need_no_weights(tmp_path, monkeypatch) -> None:
    """A run whose counts are in results/noise/ is neither trained nor tagged: its rows come from the counts."""
    noise_counts.write_counts(tmp_path / "results", "f0", SETTING, _entries())

    def no_weights(*args, **kwargs):
        raise AssertionError("tagged a run whose counts are committed")

    monkeypatch.setattr(noise_counts, "run_predictions", no_weights)
    runs = pd.DataFrame([{"run_dir": str(tmp_path / "cache" / "f0"), "arch": "acmtl", "seed": 0, "best_epoch": 5}])
    out = noise_counts.noise_scores(runs, CLEAN, {0.2: (NOISY, None)}, keep=("arch", "seed"),
                                counts=_store(tmp_path / "results", weights=no_weights))
    assert list(out["rate"]) == [0.0, 0.2] and list(out["seconds"]) == [3.0, 4.0]
    assert out.loc[1, "realised_rate"] == 0.19
    assert tuple(out.loc[0, ["precision", "recall", "f1"]]) == noise_counts.prf(COUNTS[0.0])
    assert out.loc[1, "f1_drop"] == pytest.approx(noise_counts.prf(COUNTS[0.0])[2] - noise_counts.prf(COUNTS[0.2])[2])
    # an exercise writing elsewhere reads the committed file and keeps a copy beside its own tables
    again = noise_counts.noise_scores(runs, CLEAN, {0.2: (NOISY, None)}, keep=("arch", "seed"),
                                  counts=_store(tmp_path / "exercise", read_from=(tmp_path / "results",)))
    assert again.equals(out) and (tmp_path / "exercise" / "noise" / "f0.json").is_file()


def test_noise_scores_tag_only_the_missing_rates_and_write_them(tmp_path, monkeypatch) -> None:
    """A rate the file lacks: the run's weights are made present once, only that rate is tagged, and the file then
    holds every rate."""
    run_dir = tmp_path / "cache" / "f0"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"code_sha256": "c0de", "arch": "acmtl",
                                                  "corpus": {"spec": "msra", "size": 1000}, "train": {"seed": 0}}))
    noise_counts.write_counts(tmp_path, "f0", SETTING, {0.0: _entries()[0.0]})
    tagged, weighed = [], []
    monkeypatch.setattr(noise_counts, "run_predictions", lambda run, texts, *, batch_size: (
        tagged.append(len(texts)) or [["B-LOC", "E-LOC", "O"] for _ in texts], 1.5))
    runs = pd.DataFrame([{"run_dir": str(run_dir), "arch": "acmtl", "best_epoch": 5}])
    out = noise_counts.noise_scores(runs, CLEAN, {0.2: (NOISY, None)}, counts=_store(tmp_path, weights=weighed.append))
    assert tagged == [len(NOISY)] and len(weighed) == 1 and out.loc[1, "f1"] == 1.0
    found = noise_counts.read_counts(tmp_path, "f0", SETTING, {0.0: CLEAN, 0.2: NOISY})
    assert set(found) == {0.0, 0.2} and found[0.2]["seconds"] == 1.5
    assert json.loads((tmp_path / "noise" / "f0.json").read_text())["code_sha256"] == "c0de"


# -- the verdicts over seeds --------------------------------------------------------------------------------------

N = 300


def _synthetic(f1: float, rng: np.random.Generator) -> np.ndarray:
    """N sentences with one gold entity each, about ``f1`` of them found (precision = recall = F1)."""
    hit = (rng.random(N) < f1).astype(int)
    return np.stack([hit, np.ones(N, int), np.ones(N, int)], axis=1)


def _results(tmp_path: Path, seeds: int, ac_loss: float) -> Path:
    """figure8_noise.csv and the runs' counts files: AC-MTL 0.85 clean, a baseline 0.80 clean losing 0.20 at rate
    0.2; AC-MTL loses ``ac_loss``."""
    rng = np.random.default_rng(0)
    rows = []
    for arch, clean, loss in (("acmtl", 0.85, ac_loss), ("encoder_crf", 0.80, 0.20)):
        for seed in range(seeds):
            folder = f"{arch}-{seed}"
            counts = {0.0: _synthetic(clean, rng), 0.2: _synthetic(clean - loss, rng)}
            noise_counts.write_counts(tmp_path, folder, SETTING, {
                rate: noise_counts.entry(CLEAN, None, c, 1.0) for rate, c in counts.items()})
            for rate, c in counts.items():
                f1 = noise_counts.prf(c)[2]
                rows.append({"split": "full_test", "arch": arch, "model": arch, "seed": seed, "folder": folder,
                             "best_epoch": 5, "rate": rate, "realised_rate": rate, "realised_entity_rate": rate,
                             "seconds": 1.0, "precision": f1, "recall": f1, "f1": f1})
    table = pd.DataFrame(rows)
    table["f1_drop"] = table.groupby(["arch", "seed"])["f1"].transform("first") - table["f1"]
    table.to_csv(tmp_path / "figure8_noise.csv", index=False)
    return tmp_path


def _noise_verdicts(results: Path) -> dict[str, str]:
    rows = verdicts._robustness(verdicts.Results(results))
    return {row["claim"].removeprefix("Figure 8(b): "): row["verdict"] for row in rows
            if row["claim"].startswith("Figure 8(b)")}


@pytest.mark.parametrize("seeds, ac_loss, higher, robust", [
    (3, 0.02, verdicts.REPRODUCED, verdicts.REPRODUCED),  # AC-MTL above and losing less, over 3 seeds
    (3, 0.35, verdicts.NOT_REPRODUCED, verdicts.NOT_REPRODUCED),  # it loses more than the baseline, ends below it
    (2, 0.02, verdicts.TOO_FEW, verdicts.TOO_FEW),  # the same evidence from 2 seeds is not judged
    (1, 0.02, verdicts.TOO_FEW, verdicts.TOO_FEW),
])
def test_figure8b_is_judged_over_seeds_from_the_counts(tmp_path, seeds, ac_loss, higher, robust) -> None:
    found = _noise_verdicts(_results(tmp_path, seeds, ac_loss))
    assert found["AC-MTL above the other models on perturbed text"] == higher
    assert found["AC-MTL the most noise-resistant"] == robust
    assert found["AC-MTL's F1 on spelling-perturbed text, 96.54"] == verdicts.NOT_TESTABLE


def test_the_findings_rank_the_noise_loss_over_seeds(tmp_path) -> None:
    from acmtl.companion import findings

    lines = findings._noise_lines(_results(tmp_path, 3, 0.02), pd.read_csv(tmp_path / "figure8_noise.csv"),
                                  findings.paper_robustness())
    assert "means of 3 seeds" in lines[0] and "loses less, beyond the noise" in lines[0], lines[0]
    assert "(mean of 3 seeds;" in lines[1]


# -- the plan --------------------------------------------------------------------------------------------------------


def test_the_plan_lists_and_produces_figure8b_counts(tmp_path, monkeypatch, capsys, tiny_corpus_dir,
                                                     tiny_encoder_dir) -> None:
    """``runs --plan P`` says which of Figure 8(b)'s runs have their counts in results/noise/; ``--train`` writes the
    missing ones, training a recorded run the run cache lacks."""
    from acmtl import cli
    from acmtl.companion import experiments as ex
    from acmtl.companion import plan as plans
    from acmtl.companion import publish
    from acmtl.companion.runs import RunSpec, is_complete
    from acmtl.core.train import TrainConfig
    from acmtl.data.corpora import load_corpus

    specs = [RunSpec(corpus=f"tiny={tiny_corpus_dir}", arch="encoder_crf", size=None, encoder=str(tiny_encoder_dir),
                     train=TrainConfig(epochs=1, patience=1, seed=seed)) for seed in range(3)]
    dirs = ex.run_dirs_of(specs, tmp_path / "elsewhere")  # trained on another machine: records only, no weights
    plan = {d.name: spec for d, spec in zip(dirs, specs)}
    ex.ensure_records(specs, dirs, tmp_path / "results", 1, ex.tqdm(disable=True))
    fig = noise_counts.Figure8b(("encoder_crf",), 0, (0, 1), SETTING)
    clean = load_corpus(f"tiny={tiny_corpus_dir}").splits["test"]
    sets = {0: (clean, {0.2: (clean[::-1], None)})}
    sets[1] = sets[0]
    monkeypatch.setattr(ex, "records_root", lambda profile: tmp_path / "results" / "runs")
    monkeypatch.setattr(publish, "runs_root", lambda profile: tmp_path / "cache")
    monkeypatch.setattr(plans, "runs_root", lambda profile: tmp_path / "cache")
    monkeypatch.setattr(plans, "planned_runs", lambda profile: plan)
    monkeypatch.setattr(noise_counts, "committed", lambda profile: fig)
    monkeypatch.setattr(noise_counts, "figure8b_specs", lambda profile, fig=None: dict(list(plan.items())[:2]))
    monkeypatch.setattr(noise_counts, "evaluation_sets", lambda *args: (None, sets))
    noise_counts.write_counts(tmp_path / "results", dirs[1].name, SETTING, {
        0.0: noise_counts.entry(clean, None, np.zeros((len(clean), 3), int), 1.0),
        0.2: noise_counts.entry(clean[::-1], None, np.zeros((len(clean), 3), int), 1.0)})
    table = plans.plan_table("smoke", plan).set_index("folder")
    listed = table["noise_counts"]
    assert listed.astype(object).where(listed.notna(), None).tolist() == [False, True, None]  # blank: not 8(b)'s
    assert cli.main(["runs", "--plan", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "Figure 8(b) noise counts: 1 of 2 in" in out
    assert re.search(r"Models the notebooks' analyses load: 0 of \d+ in the run cache", out)  # none trained here
    assert noise_counts.produce("smoke", workers=1, progress=False, log=lambda line: None) == 1
    assert is_complete(tmp_path / "cache" / dirs[0].name)  # trained here: its record had no weights with it
    found = noise_counts.read_counts(tmp_path / "results", dirs[0].name, SETTING, {0.0: clean, 0.2: clean[::-1]})
    assert set(found) == {0.0, 0.2}
    written = json.loads((tmp_path / "results" / "noise" / f"{dirs[0].name}.json").read_text())
    assert written["spec"]["seed"] == 0 and isinstance(written["clean_matches_record"], bool)
    assert noise_counts.produce("smoke", workers=1, progress=False) == 0  # nothing left to do
