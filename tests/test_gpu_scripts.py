"""scripts/gpu_check.sh and scripts/gpu_bundle.sh as far as a machine without a GPU can check them: both parse,
the check says plainly that it checked nothing where CUDA is absent, and its summary reads each step's files."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_summary():
    spec = importlib.util.spec_from_file_location("gpu_summary", ROOT / "scripts" / "gpu_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_bundle.sh", "lock.sh"])
def test_the_scripts_parse(script):
    assert subprocess.run(["bash", "-n", ROOT / "scripts" / script]).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: scripts/gpu_check.sh would run for real")
def test_without_cuda_the_check_says_it_checked_nothing(tmp_path):
    result = subprocess.run(["bash", ROOT / "scripts" / "gpu_check.sh", tmp_path / "out"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert "no CUDA: skipped" in result.stdout
    assert "no CUDA: skipped" in (tmp_path / "out" / "summary.txt").read_text()


def test_the_summary_reads_each_steps_files(tmp_path, monkeypatch):
    gpu_summary = load_summary()
    monkeypatch.setattr(gpu_summary, "machine", lambda: "the machine")
    out = tmp_path / "out"
    (out / "smoke" / "build" / "smoke" / "results" / "runs").mkdir(parents=True)
    (out / "steps.tsv").write_text("tests\t0\t40\nsmoke\t0\t90\nmsra\t0\t150\nbench\t124\t120\n")
    (out / "tests.log").write_text("......\n6 passed in 38.20s\n")
    (out / "smoke.log").write_text("folder corpus ...\n14 of 14 planned runs recorded in build/smoke/results/runs\n")
    for i in range(2):
        (out / "smoke" / "build" / "smoke" / "results" / "runs" / f"{i}.json").write_text(
            json.dumps({"where": {"device": "cuda"}}))
    record = min((ROOT / "results" / "runs").glob("*.json"))  # a run with a CPU record
    cpu = json.loads(record.read_text())
    run = out / "runs" / record.stem
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"test": {"entity_f1": 0.75}, "device": "cuda", "precision": "bf16",
                                                  "epochs_run": 12, "train_seconds": 41.2}))
    (out / "msra.log").write_text(f"a warning\n{run}\n")
    lines = gpu_summary.summary(out)
    assert lines[:3] == ["the machine", "tests  passed in 40 s: 6 passed in 38.20s",
                         "smoke  passed in 90 s: 14 of 14 planned runs recorded, trained on cuda"]
    assert lines[3].startswith("msra   passed in 150 s: AC-MTL, MSRA-1000, seed 0: test F1 75.00 (bf16 on cuda, "
                               "12 epochs, 41 s in the training loop); its CPU record: test F1 "
                               f"{100 * cpu['scores']['test']['f1']:.2f} ({cpu['where']['precision']} on ")
    assert lines[4].startswith("bench  FAILED (exit 124, over its time) in 120 s: no result (FileNotFoundError")

    bench = {"machine": {"gpu": "NVIDIA H100"}, "protocol": {"precisions": ["fp32", "bf16"], "repeats": 5,
                                                             "paper_acmtl_tokens_per_s_v100": 2618.0},
             "models": {"acmtl_bert_base": {"tokens_per_s": {"fp32": 26180.0, "bf16": 52360.0},
                                            "tokens_per_s_range": {"fp32": [25000.0, 27000.0],
                                                                   "bf16": [50000.0, 54000.0]}}},
             "ratios": {"bert_base_vs_paper": {"fp32": 10.0, "bf16": 20.0},
                        "ranges": {"bert_base_vs_paper": {"fp32": [9.55, 10.31], "bf16": [19.1, 20.63]}}}}
    (out / "bench.json").write_text(json.dumps(bench))
    (out / "steps.tsv").write_text("bench\t0\t80\n")
    assert gpu_summary.summary(out)[1] == (
        "bench  passed in 80 s: AC-MTL at BERT-base size on NVIDIA H100, tokens/s, median (range) of 5 passes: "
        "fp32 26,180 (25,000-27,000), bf16 52,360 (50,000-54,000); over the paper's 2,618 on a V100: "
        "fp32 10.00x (9.55-10.31), bf16 20.00x (19.10-20.63)")
