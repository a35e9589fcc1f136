"""Training end to end: the model can learn, checkpoints round-trip, runs repeat, resume and run in parallel."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import acmtl
from acmtl.companion.runs import RunSpec, ensure_run, run_predictions
from acmtl.core.checkpoint import CheckpointError, load_pretrained
from acmtl.core.model import ModelConfig
from acmtl.core.train import TrainConfig, tag_names, train, warmup_then_linear_decay

PYTHON = sys.executable


@pytest.fixture(scope="module")
def learned(tmp_path_factory, msra):
    """AC-MTL (embedded encoder) trained on 32 MSRA sentences and scored on the same 32."""
    sentences = [s for s in msra.splits["train"] if s.entities()][:32]
    cfg = ModelConfig.for_architecture("acmtl", tag_names(msra.types))
    out = tmp_path_factory.mktemp("learned")
    metrics = train(cfg, TrainConfig(epochs=30, patience=6, batch_size=8, encoder_lr=2e-4, head_lr=1e-3,
                                  precision="fp32"),
                    {"train": sentences, "dev": sentences}, out, progress=False)
    return out, metrics, sentences


def test_acmtl_fits_32_sentences(learned):
    _, metrics, _ = learned
    assert metrics["dev"]["entity_f1"] >= 0.99


def test_curve_records_the_loss_parts_and_plots_them(learned):
    """Each epoch's mean loss is 0.7 · NER + 0.15 · (boundary + type) of its recorded parts (up to the
    rounding of averaging), and the figure draws one line per part next to the total, named by its weights."""
    import matplotlib.pyplot as plt

    from acmtl.companion.plots import loss_parts

    out, _, _ = learned
    curve = json.loads((out / "curve.json").read_text())
    for row in curve:
        assert [k for k in row if k.startswith("loss_")] == ["loss_ner", "loss_boundary", "loss_type"]
        assert row["loss"] == pytest.approx(0.7 * row["loss_ner"] + 0.15 * (row["loss_boundary"] + row["loss_type"]),
                                            rel=1e-5)
    assert curve[-1]["loss_ner"] < curve[0]["loss_ner"]  # the main task is learned
    fig, ax = plt.subplots()
    loss_parts(ax, curve, {"ner": 0.7, "boundary": 0.15, "type": 0.15})
    lines = {line.get_label(): line.get_ydata().tolist() for line in ax.get_lines()}
    plt.close(fig)
    assert lines == {"NER (CRF)": [r["loss_ner"] for r in curve], "boundary": [r["loss_boundary"] for r in curve],
                     "type": [r["loss_type"] for r in curve],
                     "total = 0.7·NER (CRF) + 0.15·boundary + 0.15·type": [r["loss"] for r in curve]}


def test_learning_rate_warms_up_then_decays_linearly_to_zero():
    multiplier = warmup_then_linear_decay(warmup_steps=2, total_steps=10)
    assert [multiplier(s) for s in range(11)] == [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0]


def test_save_load_round_trip_gives_identical_predictions(learned, tmp_path):
    out, _, sentences = learned
    texts = [s.text for s in sentences[:8]] + ["", "   ", "他毕业于北京交通大学。"]
    first = acmtl.from_pretrained(out).predict(texts)
    model, tokenizer = load_pretrained(out / "model")
    from acmtl.core.checkpoint import save_pretrained

    save_pretrained(model, tokenizer, tmp_path / "copy")
    second = acmtl.from_pretrained(tmp_path / "copy").predict(texts)
    assert first == second
    assert first[8] == [] and first[9] == []
    for text, entities in zip(texts, first):
        assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    # the trained model finds the entities it was trained on
    gold = [{(e.type, e.start, e.end) for e in s.entities()} for s in sentences[:8]]
    assert [{(e["type"], e["start"], e["end"]) for e in p} for p in first[:8]] == gold


def test_loading_refuses_pickles_and_mismatched_weights(learned, tmp_path):
    out, _, _ = learned
    model, tokenizer = load_pretrained(out / "model")
    from acmtl.core.checkpoint import save_pretrained

    target = save_pretrained(model, tokenizer, tmp_path / "m")
    (target / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(CheckpointError, match="pickle"):
        load_pretrained(target)
    (target / "pytorch_model.bin").unlink()
    config = json.loads((target / "config.json").read_text())
    config["model"]["use_cnn"] = False
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match"):
        load_pretrained(target)


def cli_train(corpus: Path, encoder: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "acmtl", "train", "--corpus", f"tiny={corpus}", "--encoder", str(encoder),
           "--profile", "smoke", "--epochs", "4", "--batch-size", "8", "--out", str(out), "--quiet",
           "--checkpoint-every", "0", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finished(proc: subprocess.Popen) -> None:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]


def comparable(out: Path) -> tuple[dict, list]:
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("train_seconds"), metrics.pop("score_seconds")
    curve = [{k: v for k, v in row.items() if k not in ("seconds", "score_seconds", "train_chars_per_s")}
             for row in json.loads((out / "curve.json").read_text())]
    return metrics, curve


def test_same_seed_same_metrics_and_resume_after_sigkill(tiny_corpus_dir, tiny_encoder_dir, tmp_path):
    a, b, killed = tmp_path / "a", tmp_path / "b", tmp_path / "killed"
    finished(cli_train(tiny_corpus_dir, tiny_encoder_dir, a))
    finished(cli_train(tiny_corpus_dir, tiny_encoder_dir, b))
    assert comparable(a) == comparable(b)  # bit-identical on CPU for the same seed

    proc = cli_train(tiny_corpus_dir, tiny_encoder_dir, killed)
    deadline = time.time() + 300
    while not (killed / "checkpoint" / "state.json").exists():  # wait for the first finished epoch
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()
    finished(cli_train(tiny_corpus_dir, tiny_encoder_dir, killed, "--resume"))
    assert comparable(killed) == comparable(a)
    assert not (killed / "checkpoint").exists()  # the resume state is removed once the run is done


# Runs `acmtl train` in each torchrun process, recording the batches it trains on and a checksum of its weights
# after every optimizer step, to RECORD_DIR/rank<N>.json.
DDP_DRIVER = """
import hashlib, json, os, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
import acmtl.core.model
from acmtl.cli import main

seen = {"batches": [], "weights": []}
forward = acmtl.core.model.ACMTL.forward

def recording_forward(self, char_ids, *rest):
    if self.training:
        seen["batches"].append(hashlib.sha256(char_ids.cpu().numpy().tobytes()).hexdigest())
    return forward(self, char_ids, *rest)

def after_step(optimizer, args, kwargs):
    seen["weights"].append(sum(p.detach().double().sum().item() for g in optimizer.param_groups for p in g["params"]))

acmtl.core.model.ACMTL.forward = recording_forward
register_optimizer_step_post_hook(after_step)
code = main(sys.argv[1:])
with open(os.path.join(os.environ["RECORD_DIR"], f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(seen, f)
sys.exit(code)
"""


def test_torchrun_two_cpu_processes_share_the_data_and_sync_gradients(tiny_corpus_dir, tiny_encoder_dir, tmp_path):
    """Both processes train, each on its own batches, and after every step hold the same weights (synced)."""
    out, driver = tmp_path / "ddp", tmp_path / "ddp_driver.py"
    driver.write_text(DDP_DRIVER)
    torchrun = Path(PYTHON).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(driver), "train",
           "--corpus", f"tiny={tiny_corpus_dir}", "--encoder", str(tiny_encoder_dir), "--profile", "smoke",
           "--epochs", "2", "--batch-size", "4", "--out", str(out), "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "RECORD_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and 0.0 <= metrics["test"]["entity_f1"] <= 1.0
    assert len(json.loads((out / "curve.json").read_text())) == 2
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = len(ranks[0]["weights"])
    assert steps > 0 and len(ranks[1]["weights"]) == steps  # both took part, step for step
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) == steps
    assert all(a != b for a, b in zip(ranks[0]["batches"], ranks[1]["batches"]))  # each its own share of the data
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients averaged across processes: identical weights
    assert len(set(ranks[0]["weights"])) == steps  # and the weights moved at every step


def test_run_cache_trains_once(tiny_corpus_dir, tiny_encoder_dir, tmp_path):
    spec = RunSpec(corpus=f"tiny={tiny_corpus_dir}", arch="bilstm_crf", size=None, encoder=str(tiny_encoder_dir),
                   train=TrainConfig(epochs=1, patience=1))
    first = ensure_run(spec, progress=False, root=tmp_path)
    stamp = (first / "metrics.json").stat().st_mtime_ns
    assert ensure_run(spec, progress=False, root=tmp_path) == first
    assert (first / "metrics.json").stat().st_mtime_ns == stamp
    other = RunSpec(**{**spec.__dict__, "train": TrainConfig(epochs=1, patience=1, seed=1)})
    assert ensure_run(other, progress=False, root=tmp_path) != first


# The modules whose code decides what a run computes (the network, its CRF, its batches, its training, scoring and
# decoding, the encoder and tokenizer, the pinyin features and the splits): written out here, not read from
# acmtl.companion.runs, so a module dropped from RUN_DEFINING_MODULES fails below instead of passing unchecked.
DEFINE_A_RUN = ("core/model.py", "core/crf.py", "core/features.py", "core/train.py", "core/checkpoint.py",
                "core/encoders.py", "core/predict.py", "core/evaluate.py", "data/pinyin.py", "data/splits.py")


def test_run_key_follows_the_code_not_its_comments(monkeypatch, tmp_path):
    """A change to the code of each run-defining module gives new run keys; a comment or docstring does not."""
    import shutil

    import acmtl
    import acmtl.companion.runs as runs

    package = tmp_path / "acmtl"
    shutil.copytree(Path(acmtl.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(acmtl, "__file__", str(package / "__init__.py"))
    monkeypatch.setattr(runs, "code_digest", runs.code_digest.__wrapped__)  # uncached: the files change below
    before = runs.code_digest()
    train_py = package / "core" / "train.py"
    source = train_py.read_text()
    train_py.write_text(source.replace('"""Training:', '"""Training (reworded):', 1) + "\n# a comment\n")
    assert runs.code_digest() == before
    train_py.write_text(source.replace("grad_clip: float = 1.0", "grad_clip: float = 5.0"))
    assert runs.code_digest() != before
    train_py.write_text(source)
    unkeyed = []
    for name in DEFINE_A_RUN:
        module = package / name
        source = module.read_text()
        module.write_text(source + "\n_CHANGED = 1\n")  # a line of code, not a comment
        unkeyed += [name] if runs.code_digest() == before else []
        module.write_text(source)
    assert not unkeyed, f"a code change here keeps the old run key: {unkeyed}"


def test_run_predictions_are_computed_once(tiny_corpus_dir, tiny_encoder_dir, tmp_path, monkeypatch):
    import acmtl.companion.runs
    from acmtl.data.conll import tags_to_entities

    spec = RunSpec(corpus=f"tiny={tiny_corpus_dir}", arch="acmtl", size=None, encoder=str(tiny_encoder_dir),
                   train=TrainConfig(epochs=1, patience=1))
    run = ensure_run(spec, progress=False, root=tmp_path)
    texts = ["他毕业于北京交通大学。", "", "北京" * 400]  # the last one is windowed
    tags, seconds = run_predictions(run, texts)
    assert [len(t) for t in tags] == [len(t) for t in texts] and seconds > 0
    expected = acmtl.from_pretrained(run / "model").predict(texts)  # the public API, decoded independently
    assert [[(e.type, e.start, e.end) for e in tags_to_entities(t)] for t in tags] == \
        [[(e["type"], e["start"], e["end"]) for e in row] for row in expected]

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded again")

    monkeypatch.setattr(acmtl.companion.runs, "load_pretrained", no_model)
    assert run_predictions(run, [list(t) for t in texts]) == (tags, seconds)  # from runs/<hash>/predictions/
    with pytest.raises(AssertionError, match="loaded again"):
        run_predictions(run, texts[:1])  # other texts: computed anew
    with pytest.raises(FileNotFoundError, match="not finished"):
        run_predictions(tmp_path / "nothing", texts)


def test_predict_cli_reads_stdin_and_writes_json_lines(learned):
    out, _, sentences = learned
    stdin = "\n".join([sentences[0].text, "", "   ", "北京" * 400]) + "\n"
    result = subprocess.run([PYTHON, "-m", "acmtl", "predict", "--model", str(out)], input=stdin,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == stdin.splitlines()
    assert rows[0]["entities"] and rows[1]["entities"] == [] and rows[2]["entities"] == []
    for row in rows:
        assert all(row["text"][e["start"] : e["end"]] == e["text"] for e in row["entities"])


def test_patience_counts_only_after_the_first_dev_entity(tiny_corpus_dir, msra, tmp_path, monkeypatch):
    """Scripted dev F1 (one evaluation per epoch, no test split): four epochs at 0 (not learning yet),
    then 0.2, 0.3, and no gain after."""
    import acmtl.core.train as train_module
    from acmtl.core.evaluate import Scores
    from acmtl.data.corpora import load_corpus

    script = iter([0.0, 0.0, 0.0, 0.0, 0.2, 0.3, 0.3, 0.1, 0.3, 0.3])
    monkeypatch.setattr(train_module, "evaluate_items",
                        lambda *args, **kwargs: Scores(0.0, 0.0, next(script, 0.0), 0, {}, 0.0))
    corpus = load_corpus(f"tiny={tiny_corpus_dir}")
    metrics = train(ModelConfig.for_architecture("bilstm_crf", tag_names(msra.types)),
                    TrainConfig(epochs=10, patience=2, batch_size=16),
                    {"train": corpus.splits["train"], "dev": corpus.splits["dev"]}, tmp_path, progress=False)
    assert (metrics["best_epoch"], metrics["epochs_run"]) == (6, 8)  # not stopped at epoch 3 with F1 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_scoring_runs_under_the_training_precision(tiny_corpus_dir, tiny_encoder_dir, msra, tmp_path, monkeypatch,
                                                   precision):
    """Dev F1 per epoch and the final scores are computed in the precision the run trains in (bf16 autocast or
    none), and the test split is scored per epoch only for a run that asks for its curve (``test_curve``)."""
    import acmtl.core.train as train_module
    from acmtl.data.corpora import load_corpus

    seen = []

    def recording(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return tag_encoded(*args, **kwargs)

    tag_encoded = train_module.tag_encoded
    monkeypatch.setattr(train_module, "tag_encoded", recording)
    corpus = load_corpus(f"tiny={tiny_corpus_dir}")
    data = {name: corpus.splits[name][:16] for name in ("train", "dev", "test")}
    cfg = ModelConfig.for_architecture("encoder_crf", tag_names(msra.types), encoder=str(tiny_encoder_dir))
    for curve in (False, True):
        seen.clear()
        out = tmp_path / f"{precision}_{curve}"
        metrics = train(cfg, TrainConfig(epochs=2, patience=2, batch_size=8, precision=precision, test_curve=curve),
                        data, out, progress=False)
        rows = json.loads((out / "curve.json").read_text())
        assert [("test_f1" in row) for row in rows] == [curve, curve]
        assert all(row["score_seconds"] > 0 for row in rows)  # what scoring cost, beside the loop's seconds
        assert metrics["score_seconds"] > sum(row["score_seconds"] for row in rows)  # and the final scores
        assert set(metrics) >= {"dev", "test"} and metrics["precision"] == precision
        assert len(seen) == 2 * (2 if curve else 1) + 2  # per epoch dev (and test), then dev and test at the end
        assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}


def test_optimizer_is_fused_and_steps_like_the_per_tensor_loop(msra):
    """The fused AdamW kernel gives the per-tensor loop's update (rounding aside) with the same parameter groups."""
    from acmtl.core.checkpoint import build_model
    from acmtl.core.train import _optimizer

    torch.manual_seed(0)
    model, _ = build_model(ModelConfig.for_architecture("bilstm_crf", tag_names(msra.types)))
    twin = copy.deepcopy(model)
    fused, _ = _optimizer(model, TrainConfig(), steps=10)
    assert fused.defaults["fused"]
    names = {id(p): name for name, p in model.named_parameters()}
    plain = torch.optim.AdamW([{**group, "fused": False, "foreach": True,
                                "params": [twin.get_parameter(names[id(p)]) for p in group["params"]]}
                               for group in fused.param_groups])
    ids = torch.randint(1, 100, (4, 12))
    for _ in range(3):
        for m, opt in ((model, fused), (twin, plain)):
            opt.zero_grad()
            m.encoder(ids, torch.ones_like(ids, dtype=torch.bool)).square().mean().backward()
            opt.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
