"""The lab (acmtl.companion.lab, docs/lab/): notebook 00 teaches the AC-MTL the recorded runs trained, its training
section trains it the recorded runs' way, tables show F1 in percent, and every exercise carries its expected outcome,
time and memory tags and an answer in the key kept apart from the notebooks."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from acmtl.companion import lab, progress
from acmtl.companion.config import get_profile
from acmtl.core.train import TrainConfig, tag_names

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "notebooks" / "00_method_walkthrough.ipynb"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TAGS = tag_names(["LOC", "ORG", "PER"])
NOT_CONFIG = {"tags", "encoder_config", "vocab_size"}  # filled in when the model is built


def _records(arch: str = "acmtl") -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "results" / "runs").glob("*.json"))
            if json.loads(p.read_text(encoding="utf-8"))["spec"]["arch"] == arch]


def _model(config: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if k not in NOT_CONFIG}


def test_the_walkthrough_builds_the_model_every_recorded_table2_run_trained() -> None:
    """Table 2's AC-MTL runs at the sizes only Table 2 trains (the diagnosis' size holds other wirings too) were
    built from exactly lab.trained_config's ModelConfig and trained with lab.trained_spec's settings."""
    prof = get_profile("default")
    sizes = set(prof.table2["msra"]) - {prof.ablation_size}
    records = [r for r in _records() if r["spec"]["corpus"] == "msra" and r["spec"]["size"] in sizes]
    assert records, "no recorded Table 2 AC-MTL run to compare with"
    taught = _model(lab.trained_config("default", TAGS).to_dict())
    assert taught["cnn_block"] != "paper" or prof.wiring == "paper"  # the printed block is the contrast, not the model
    settings = {f.name for f in fields(TrainConfig)} - {"seed", "test_curve"}
    for record in records:
        spec = record["spec"]
        assert _model(spec["model"]) == taught, f"{record['folder']}: another model than notebook 00 builds"
        trained = lab.trained_spec("default", spec["size"], spec["seed"]).train
        assert {k: spec["train"][k] for k in settings} == {k: getattr(trained, k) for k in settings}, record["folder"]


def test_the_paper_block_is_eq11_as_printed() -> None:
    paper = lab.paper_config("default", TAGS)
    assert (paper.cnn_block, paper.pool_size) == ("paper", 3)
    assert lab.block_formula(paper) == "GELU(MaxPool1D_3(S + S'))"
    assert lab.block_formula(lab.trained_config("default", TAGS, pool_size=1)) == "LN(S + Dropout(GELU(S')))"
    assert lab.trained_config("default", TAGS, main_task_weight=None).main_task_weight == \
        get_profile("default").tuned["acmtl"]["main_task_weight"]  # None keeps the recorded runs' value


def _cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def test_the_walkthrough_reads_its_model_from_the_profile_and_shows_it() -> None:
    """Nothing of the trained configuration is typed in notebook 00: its parameters default to None (the recorded
    runs'), it builds cfg with lab.trained_config, and its committed output prints the profile's dropout and w."""
    cells = _cells(WALKTHROUGH)
    (parameters,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec("".join(parameters["source"]), namespace)
    assert [namespace[k] for k in ("cnn_kernels", "use_pinyin", "main_task_weight")] == [None, None, None]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "cfg = lab.trained_config(profile, tags" in code and "lab.quick_training(profile" in code
    assert 'cnn_block="paper"' not in code and "ModelConfig.for_architecture" not in code
    printed = "\n".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    cfg = lab.trained_config("default", TAGS)
    assert f"dropout p = {cfg.dropout:.3f}, {lab.loss_formula(cfg.main_task_weight)}" in printed, \
        "notebook 00's output does not show the recorded runs' dropout and loss weight: execute it again"
    assert "p = 0.1:" not in printed and "L = 0.7 *" not in printed  # the paper's values, taught as ours


def test_notebooks_03_and_05_name_the_trained_block_and_weight() -> None:
    for name in ("03_ablation", "05_robustness"):
        cells = _cells(ROOT / "notebooks" / f"{name}.ipynb")
        text = "\n".join("".join(c["source"]) for c in cells)
        assert "lab.describe(profile)" in text, name
        assert "0.7\\,L_{ner}" not in text and "GELU(S + S')$:" not in text, f"{name} teaches another model"


def test_quick_training_trains_the_recorded_runs_way(monkeypatch, tmp_path) -> None:
    """The walkthrough's training: the recorded runs' model and settings on a 200-sentence subset, the recorded
    runs' warm-up steps, no test set but the subset's (train itself is replaced: this checks what it is given)."""
    import acmtl.core.checkpoint as checkpoint
    import acmtl.core.train as core_train
    from acmtl.data.conll import Entity, Sentence, entities_to_tags

    given = {}

    def fake_train(model_cfg, cfg, data, out_dir, **kwargs):
        given.update(model=model_cfg, train=cfg, data={k: len(v) for k, v in data.items()})
        for epoch, f1 in ((1, 0.0), (2, 0.25)):
            kwargs["on_epoch"]({"epoch": epoch, "loss": 1.0 / epoch, "loss_ner": 1.2 / epoch, "loss_boundary": 0.9,
                                "loss_type": 0.8, "seconds": 1.0, "dev_f1": f1})
        return {"best_epoch": 2, "precision": "fp32"}

    sentence = Sentence(tuple("他是北京人"), tuple(entities_to_tags(5, [Entity("LOC", 2, 4)])))
    monkeypatch.setattr(core_train, "train", fake_train)
    monkeypatch.setattr(checkpoint, "load_pretrained", lambda out: checkpoint.build_model(given["model"],
                                                                                         pretrained=False))
    terminal = tmp_path / "progress.log"  # what ./run_all.sh's watch copies to its terminal
    monkeypatch.setenv(progress.PROGRESS_ENV, str(terminal))
    run = lab.quick_training("default", sentence, log=lambda line: None)
    epochs = [line.split(", ")[1].split(":")[0] for line in terminal.read_text().splitlines()]
    assert epochs == [f"epoch 1/{lab.QUICK_EPOCHS}", f"epoch 2/{lab.QUICK_EPOCHS}"]
    recorded = lab.trained_spec("default", lab.QUICK_SIZE).train
    assert _model(given["model"].to_dict()) == _model(lab.trained_config("default", TAGS).to_dict())
    assert given["data"] == {"train": 140, "dev": 30, "test": 30}
    cfg = given["train"]
    assert cfg.epochs == lab.QUICK_EPOCHS and (cfg.encoder_lr, cfg.head_lr) == (recorded.encoder_lr, recorded.head_lr)
    assert cfg.warmup * cfg.epochs == pytest.approx(recorded.warmup * recorded.epochs)  # the same warm-up steps
    assert run.curve["dev F1 (%)"].tolist() == [0.0, 25.0] and run.best_epoch == 2
    assert list(run.tagged.index)[0] == "gold" and run.tagged.loc["gold", "entities"] == "LOC:北京"
    assert "2 epochs" in run.cost() and "fp32" in run.cost()


def test_readable_shows_scores_in_percent_and_rounds_the_rest() -> None:
    df = pd.DataFrame({"arch": ["acmtl"], "f1": [0.72274], "full_test_precision": [0.5], "diff": [-0.0615],
                       "f1_change_points": [-0.03], "train_seconds": [297.790935], "flag_f1": [True],
                       "best_settings": ['{"dropout": 0.2469471582154701, "cnn_block": "residual"}']})
    shown = lab.readable(df, percent=["diff"])
    assert shown.to_dict("records") == [{
        "arch": "acmtl", "f1 (%)": 72.27, "full_test_precision (%)": 50.0, "diff (%)": -6.15,
        "f1_change_points": -0.03, "train_seconds": 297.8, "flag_f1": True,
        "best_settings": '{"dropout": 0.2469, "cnn_block": "residual"}'}]


# -- exercises and the answer key ---------------------------------------------------------------------------------


def test_every_exercise_has_its_tags_and_an_answer_in_the_key() -> None:
    assert lab.ANSWERS.is_file() and not lab.ANSWERS.is_relative_to(ROOT / "notebooks")  # apart from the notebooks
    assert {n.stem[:2] for n in NOTEBOOKS} == {f"{i:02d}" for i in range(9)}
    assert all(len(lab.exercises(n)) >= 3 for n in NOTEBOOKS)
    assert lab.exercise_problems(NOTEBOOKS, lab.answers()) == []


def test_the_exercise_check_catches_what_a_lab_cannot_use(tmp_path) -> None:
    """Each planted fault is reported: a missing tag, a long exercise not marked homework, a missing answer, an
    answer under another title, a placeholder answer, an answer to no exercise."""
    notebook = tmp_path / "08_tuning.ipynb"
    shutil.copy(ROOT / "notebooks" / "08_tuning.ipynb", notebook)
    key = lab.answers()
    assert lab.exercise_problems([notebook], {k: v for k, v in key.items() if k[0] == "08"}) == []

    def plant(old: str, new: str) -> list[str]:
        source = (ROOT / "notebooks" / "08_tuning.ipynb").read_text(encoding="utf-8")
        assert old in source
        notebook.write_text(source.replace(old, new, 1), encoding="utf-8")
        return lab.exercise_problems([notebook], {k: v for k, v in key.items() if k[0] == "08"})

    assert any("no *Memory:* tag" in p for p in plant("*Memory:*", "*RAM:*"))
    assert any("no *Expect:* tag" in p for p in plant("*Expect:*", "*We hope:*"))
    assert any("but not tagged homework" in p for p in plant("*Time:* 1 min", "*Time:* 25 min"))
    notebook.write_text((ROOT / "notebooks" / "08_tuning.ipynb").read_text(encoding="utf-8"), encoding="utf-8")
    ours = {k: v for k, v in key.items() if k[0] == "08"}
    without = {k: v for k, v in ours.items() if k != ("08", 2)}
    assert any("no answer in the key" in p for p in lab.exercise_problems([notebook], without))
    planted = {("08", 1): (("Another title", "text"), "the key answers"),
               ("08", 3): (("A study of your own", "{TIME08}"), "placeholder"),
               ("08", 9): (("Not asked", "text"), "which no notebook asks")}
    for entry, (answer, problem) in planted.items():
        assert any(problem in p for p in lab.exercise_problems([notebook], {**ours, entry: answer})), problem


def test_the_handout_names_the_route_the_pack_and_what_to_do_when_something_fails() -> None:
    handout = (ROOT / "docs" / "lab_handout.md").read_text(encoding="utf-8")
    for needed in ("00_method_walkthrough", "runs --pack", "runs --unpack", "answers.md", "ACMTL_WORKERS",
                   "When something fails"):
        assert needed in handout, needed
    for notebook in NOTEBOOKS:
        assert notebook.stem in handout, f"the handout says nothing of {notebook.stem}"


def test_notebook_02_measures_the_workers_before_anything_fills_its_kernel() -> None:
    """Two training workers (about 1.6 GiB each) beside a kernel that has run the benchmark took notebook 02 to
    4.2 GiB; beside a kernel holding only its imports they stay under 4 GiB."""
    cells = json.loads((ROOT / "notebooks" / "02_speed_params.ipynb").read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    first = {call: next(i for i, source in enumerate(code) if call in source)
             for call in ("plan.measure_workers(", "run_benchmark(", "compare_backends(", "ex.train_grid(")}
    assert first["plan.measure_workers("] < min(v for k, v in first.items() if k != "plan.measure_workers(")
