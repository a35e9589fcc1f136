"""The command line: every command explains itself; data stats prints the official counts as JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def acmtl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acmtl", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["data"], ["data", "fetch"], ["data", "stats"], ["train"],
                                     ["evaluate"], ["predict"], ["bench"], ["report"], ["runs"], ["tune"]])
def test_every_command_has_help(command):
    result = acmtl(*command, "--help")
    assert result.returncode == 0 and "usage: acmtl" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_data_stats_msra_reports_the_official_counts():
    result = acmtl("data", "stats", "msra")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["splits"]
    train_dev = {t: stats["train"]["entities"][t] + stats["dev"]["entities"][t] for t in ("PER", "LOC", "ORG")}
    assert train_dev == {"PER": 17_615, "LOC": 36_517, "ORG": 20_571}
    assert stats["test"]["entities"] == {"PER": 1_973, "LOC": 2_877, "ORG": 1_331}
    assert stats["train"]["sentences"] + stats["dev"]["sentences"] == 50_652
    assert stats["test"]["sentences"] == 4_620


def test_data_stats_resume_sentence_counts():
    stats = json.loads(acmtl("data", "stats", "resume").stdout)["splits"]
    assert [stats[s]["sentences"] for s in ("train", "dev", "test")] == [3_819, 463, 477]


def test_unknown_model_is_a_clear_error(tiny_corpus_dir, tmp_path):
    result = acmtl("train", "--corpus", f"tiny={tiny_corpus_dir}", "--model", "gpt", "--out", str(tmp_path))
    assert result.returncode != 0 and "unknown architecture 'gpt'" in result.stderr


def test_environment_yml_pins_match_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    deps = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    pins = set(re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', deps))
    env = set(re.findall(r"^\s+- ([A-Za-z0-9_.-]+==\S+)$", (ROOT / "environment.yml").read_text(), re.M))
    assert "torch==2.13.0" in pins and pins <= env


# -- using a trained model: predict and evaluate on the user's own files -------------------------------------------

TYPES = ["LOC", "ORG", "PER"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny random BiLSTM-CRF (fast enough for a 1 MB text), tilted towards entity tags, saved as run/model."""
    import torch

    from acmtl.core.checkpoint import build_model, save_pretrained
    from acmtl.core.model import ModelConfig
    from acmtl.core.train import tag_names

    torch.manual_seed(0)
    model, tokenizer = build_model(ModelConfig.for_architecture("bilstm_crf", tag_names(TYPES), char_dim=8,
                                                                lstm_hidden=8))
    with torch.no_grad():
        model.ner_head.bias.copy_(torch.tensor([0.0] + [0.8, 0.8, 0.8, 0.3] * len(TYPES)))
    run = tmp_path_factory.mktemp("cli") / "run"
    save_pretrained(model, tokenizer, run / "model")
    return run


TEXTS = {"notes.txt": "他毕业于北京交通大学。\n张三 在上海市工作\r\n\n李四去了深圳。",  # CRLF, a blank line, no end
         "more.txt": "\ufeff王五在广州。\n"}  # a byte-order mark


def test_readme_commands_tag_a_folder_and_score_a_conll_file(run_dir, tiny_corpus_dir, tmp_path):
    from acmtl.data.conll import read_conll

    page = (ROOT / "docs" / "using-a-model.md").read_text(encoding="utf-8")  # linked from the README
    block = page.split("<!-- example: use a trained model", 1)[1].split("```", 2)[1].split("\n", 1)[1]
    (tmp_path / "my_texts").mkdir()
    for name, text in TEXTS.items():
        (tmp_path / "my_texts" / name).write_text(text, encoding="utf-8")
    (tmp_path / "my_gold.conll").write_bytes((tiny_corpus_dir / "test.txt").read_bytes())
    script = block.replace("runs/<hash>", str(run_dir)).replace(".venv/bin/python", sys.executable)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # predict --format conll: one file per input, readable by the project's reader, every visible character once
    for name, text in TEXTS.items():
        sentences = read_conll(tmp_path / "tagged" / name.replace(".txt", ".conll"))
        lines = [line for line in text.removeprefix("\ufeff").splitlines() if line.strip()]
        assert ["".join(s.chars) for s in sentences] == ["".join(line.split()) for line in lines]
    # predict --format jsonl: the texts of notes.txt, line by line, with entities and their scores
    output, evaluation = result.stdout.split("\n{\n", 1)
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["text"] for r in rows] == TEXTS["notes.txt"].replace("\r", "").split("\n")
    assert [r["line"] for r in rows] == [1, 2, 3, 4] and rows[0]["file"].endswith("notes.txt")
    assert any(r["entities"] for r in rows) and all(0 <= e["score"] <= 1 for r in rows for e in r["entities"])
    # evaluate --data: scores as JSON, the predictions written next to the gold tags
    scores = json.loads("{\n" + evaluation)
    gold = read_conll(tiny_corpus_dir / "test.txt")
    assert scores["sentences"] == len(gold) and 0 <= scores["entity_f1"] <= 1 and "entity_f1_ci95" in scores
    compared = (tmp_path / "compared.conll").read_text(encoding="utf-8").split("\n\n")[:-1]
    assert [[line.split("\t")[:2] for line in block.split("\n")] for block in compared] == \
        [[[c, t] for c, t in zip(s.chars, s.tags)] for s in gold]
    assert [len(s.chars) for s in read_conll(tmp_path / "compared.conll")] == [len(s.chars) for s in gold]


def test_conll_and_bio_output_carry_the_entities_of_jsonl(run_dir, tmp_path):
    from acmtl.data.conll import read_conll

    texts = "他毕业于北京交通大学。\n张 三在上海\t市工作，\u3000李四去了深圳。\n\n   \nabc def 北京\n"
    found = {}
    for fmt in ("jsonl", "conll", "bio"):
        out = tmp_path / f"out.{fmt}"
        result = subprocess.run([sys.executable, "-m", "acmtl", "predict", "--model", str(run_dir), "--format", fmt,
                                 "--output", str(out)], input=texts, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        found[fmt] = out
    rows = [json.loads(line) for line in found["jsonl"].read_text(encoding="utf-8").splitlines()]
    visible = [r for r in rows if r["text"].strip()]
    expected = [[(e["type"], "".join(e["text"].split())) for e in r["entities"]] for r in visible]
    assert any(expected)
    for fmt, scheme in (("conll", "bioes"), ("bio", "bio")):
        sentences = read_conll(found[fmt], scheme=scheme)
        assert ["".join(s.chars) for s in sentences] == ["".join(r["text"].split()) for r in visible]
        assert [[(e.type, "".join(s.chars[e.start:e.end])) for e in s.entities()] for s in sentences] == expected


def acmtl_error(*args: str, **kwargs) -> str:
    result = subprocess.run([sys.executable, "-m", "acmtl", *args], capture_output=True, text=True, timeout=300,
                            **kwargs)
    assert result.returncode == 2 and result.stdout == "", (result.returncode, result.stdout[-500:])
    return result.stderr


def test_bad_input_gets_a_clear_error_and_loses_nothing(run_dir, tmp_path):
    good, gbk = tmp_path / "good.txt", tmp_path / "gbk.txt"
    good.write_text("北京\n", encoding="utf-8")
    gbk.write_bytes("第一行\n他毕业于北京交通大学。\n".encode("gbk"))
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier result\n")
    err = acmtl_error("predict", "--model", str(run_dir), "--input", str(good), str(gbk), "--output", str(out))
    assert f"{gbk}:1: not UTF-8 (byte 0xb5)" in err and "iconv -f GB18030 -t UTF-8" in err
    assert out.read_text() == "an earlier result\n" and sorted(p.name for p in tmp_path.iterdir()) == \
        ["gbk.txt", "good.txt", "out.jsonl"]  # not overwritten, no partial file left behind
    if Path("/proc/self/mem").is_file():  # a file that cannot be read, even by root
        assert "/proc/self/mem: cannot read it (Input/output error)" in acmtl_error(
            "predict", "--model", str(run_dir), "--input", "/proc/self/mem")
    assert f"{tmp_path / 'nothing'}: no such file or folder" in acmtl_error(
        "predict", "--model", str(run_dir), "--input", str(tmp_path / "nothing"))
    gold = tmp_path / "gold.conll"
    gold.write_bytes("北\tB-LOC\n京\tE-LOC\n".encode("gbk"))
    assert f"{gold}:1: not valid UTF-8" in acmtl_error("evaluate", str(run_dir), "--data", str(gold))


def test_a_run_folder_of_another_version_is_refused_by_name(run_dir, tmp_path):
    import shutil

    from acmtl.core.model import MODEL_VERSION

    other = tmp_path / "run"
    shutil.copytree(run_dir, other)
    config = json.loads((other / "model" / "config.json").read_text())
    config.update(model_version=MODEL_VERSION + 1, acmtl_version="9.0.0")
    (other / "model" / "config.json").write_text(json.dumps(config))
    err = acmtl_error("predict", "--model", str(other), "北京")
    assert f"saved by model version {MODEL_VERSION + 1} (written by acmtl 9.0.0)" in err
    assert f"reads version {MODEL_VERSION}" in err


def test_a_one_megabyte_text_is_tagged_whole(run_dir, tmp_path):
    import random

    rng = random.Random(0)
    han = "北京上海天津广州深圳大学中国人民政府银行公司医院张王李赵刘陈的一是在不了有和"
    text = "".join(rng.choice(han) for _ in range(350_000))  # one line, 1.05 MB in UTF-8
    source = tmp_path / "big.txt"
    source.write_text(text, encoding="utf-8")
    assert source.stat().st_size > 1_000_000
    out = tmp_path / "big.jsonl"
    result = subprocess.run([sys.executable, "-m", "acmtl", "predict", "--model", str(run_dir), "--input",
                             str(source), "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["text"] == text and row["entities"][-1]["end"] > len(text) - 100
    assert all(text[e["start"] : e["end"]] == e["text"] for e in row["entities"])


def test_run_all_rejects_an_unknown_notebook_before_any_set_up():
    """``./run_all.sh 99_nope`` stops at once with the notebooks it knows, not with papermill's traceback after
    the set-up; a name without ``.ipynb`` is how the README's examples name them."""
    result = subprocess.run(["bash", str(ROOT / "run_all.sh"), "99_nope"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-500:]
    assert "no notebook notebooks/99_nope.ipynb" in result.stderr
    assert "03_ablation.ipynb" in result.stderr and "Traceback" not in result.stderr


# -- issue 32: no silent waits, run folders by name, pipes and control characters ----------------------------


def _main_then_torch_imported(*args: str) -> tuple[str, bool]:
    """Run ``acmtl.cli.main(args)`` in a fresh interpreter: its stderr, and whether it had imported torch."""
    code = ("import sys; from acmtl.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    rc, torch_imported = result.stdout.split()
    assert rc == "2", result.stderr
    return result.stderr, torch_imported == "True"


@pytest.mark.parametrize("args, said", [
    (["predict", "--model", "no/such/run", "北京"], "no/such/run: no such folder"),
    (["predict", "--model", ".", "--input", "no_such.txt"], "no_such.txt: no such file or folder"),
    (["evaluate", "no/such/run"], "no/such/run: no such folder"),
    (["evaluate", ".", "--data", "no_such.conll"], "no_such.conll: no such file or folder"),
    (["train", "--corpus", "tiny=no/such/folder", "--set", "train.epochs=1"], "no/such/folder"),
])
def test_arguments_are_checked_before_torch_is_imported(args, said, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err, torch_imported = _main_then_torch_imported(*args)
    assert said in err and not torch_imported, err


def test_predict_takes_a_run_hash_and_evaluate_too(run_dir, tmp_path):
    import shutil

    cache = tmp_path / "elsewhere"
    shutil.copytree(run_dir, cache / "5ca7eff995137790")
    env = {**__import__("os").environ, "ACMTL_RUNS": str(cache)}
    result = subprocess.run([sys.executable, "-m", "acmtl", "predict", "--model", "5ca7eff995137790", "北京"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["text"] == "北京", result.stderr[-2000:]
    err = acmtl_error("predict", "--model", "runs/5ca7eff995137790", "北京", env=env, cwd=tmp_path)
    assert f"runs/5ca7eff995137790: no such folder; the run cache has {cache / '5ca7eff995137790'}" in err
    assert "config.json is missing" not in err


def test_a_reader_that_leaves_early_ends_the_output_quietly(run_dir):
    """``acmtl ... | head``: the reader closes the pipe; no "Broken pipe" error, no traceback."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written
    result = subprocess.run([sys.executable, "-m", "acmtl", "predict", "--model", str(run_dir), "北京"],
                            stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    os.close(write)
    assert result.returncode == 1 and "Broken pipe" not in result.stderr and "Traceback" not in result.stderr, \
        result.stderr[-2000:]


def test_predict_at_a_terminal_prompts_and_tags_each_line_as_it_is_typed(run_dir):
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "acmtl", "predict", "--model", str(run_dir)], stdin=follower,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(follower)
    try:
        os.write(leader, "他毕业于北京交通大学。\n".encode())
        ready, _, _ = select.select([process.stdout], [], [], 120)
        assert ready, "nothing tagged while the terminal stays open"
        assert json.loads(process.stdout.readline())["text"] == "他毕业于北京交通大学。"
        os.write(leader, b"\x04")  # Ctrl-D
        assert process.wait(timeout=60) == 0
        assert "type a text and press Enter" in process.stderr.read().decode()
    finally:
        process.kill()
        os.close(leader)


def test_control_characters_are_removed_before_tagging_in_every_format(run_dir, tmp_path):
    from acmtl.data.conll import read_conll

    texts = "张三\r\n北\x00京\x07大\x1b学\n"  # a lone CR before the line end, NUL, BEL and ESC inside
    source = tmp_path / "in.txt"
    source.write_bytes(texts.replace("\r\n", "\r\r\n").encode())
    outputs = {}
    for fmt in ("jsonl", "conll"):
        result = subprocess.run([sys.executable, "-m", "acmtl", "predict", "--model", str(run_dir), "--input",
                                 str(source), "--format", fmt, "--output", str(tmp_path / f"out.{fmt}")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "control characters removed before tagging (1 CR, 1 NUL, 1 BEL, 1 ESC)" in result.stderr
        outputs[fmt] = tmp_path / f"out.{fmt}"
    rows = [json.loads(line) for line in outputs["jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["张三", "北京大学"]
    entities = [[(e["type"], e["text"]) for e in r["entities"]] for r in rows]
    assert all(e["text"].isprintable() for r in rows for e in r["entities"])
    sentences = read_conll(outputs["conll"])
    assert [[(e.type, "".join(s.chars[e.start:e.end])) for e in s.entities()] for s in sentences] == entities


def test_train_says_what_it_does_and_quiet_prints_only_the_folder(tiny_corpus_dir, tmp_path):
    """Scoring the best model shows a bar; a model that learned nothing says so; --quiet keeps stdout to the
    folder and stderr to warnings."""
    base = [sys.executable, "-m", "acmtl", "train", "--corpus", f"tiny={tiny_corpus_dir}", "--model", "bilstm_crf",
            "--epochs", "1", "--batch-size", "8"]
    loud = subprocess.run([*base, "--out", str(tmp_path / "loud")], capture_output=True, text=True, timeout=600)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert json.loads((tmp_path / "loud" / "metrics.json").read_text())["dev"]["entity_f1"] == 0
    assert "epoch 1: loss" in loud.stdout and "scoring epoch 1 on test" in loud.stderr
    assert "dev F1 stayed 0 in all 1 epochs: the model has learned no entity yet" in loud.stderr
    quiet = subprocess.run([*base, "--out", str(tmp_path / "quiet"), "--quiet"], capture_output=True, text=True,
                           timeout=600)
    assert quiet.returncode == 0 and quiet.stdout == f"{tmp_path / 'quiet'}\n", quiet.stderr[-3000:]
    assert "epoch 1/1" not in quiet.stderr and "scoring" not in quiet.stderr and "dev F1 stayed 0" in quiet.stderr
    assert "no progress bars, no epoch lines" in " ".join(acmtl("train", "--help").stdout.split())


def test_the_licence_the_package_and_its_cards_name_is_in_the_repository():
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n\nCopyright (c) the acmtl authors\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in licence


def test_runs_plan_train_takes_a_budget_and_lists_what_is_recorded(tmp_path, monkeypatch):
    """`runs --plan smoke --train --hours 0` starts no run and says how many planned runs are recorded; the plan's
    options are refused without --train / --plan."""
    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    result = acmtl("runs", "--plan", "smoke", "--train", "--hours", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^0 of \d+ planned runs recorded in", result.stdout, re.M)
    assert not (tmp_path / "build" / "smoke" / "runs").exists()  # nothing trained
    for args in (["runs", "--hours", "1"], ["runs", "--plan", "smoke", "--retrain"], ["runs", "--verify", "1"]):
        refused = acmtl(*args)
        assert refused.returncode != 0 and "acmtl runs: --" in refused.stderr, args


def test_run_all_retrain_reaches_the_plan():
    """./run_all.sh --retrain hands --retrain to the plan step (the records are ignored there, and only there)."""
    script = (ROOT / "run_all.sh").read_text()
    assert "--retrain) retrain=(--retrain)" in script
    assert 'acmtl runs --plan "$profile" --train "${retrain[@]}"' in script
