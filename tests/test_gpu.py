"""The CUDA path against the CPU's, on the tiny fixtures (no download): a training step under AMP lowers the loss,
the CRF scores and decodes alike, ``predict`` finds the same entities, a model saved from the GPU loads on the CPU
and back, and ``torchrun`` with one process trains on the GPU.

Marked ``gpu`` and skipped without CUDA; ``scripts/gpu_check.sh`` runs them on a GPU machine.
``ACMTL_GPU_TEST_DEVICE=cpu`` runs the same checks with the CPU in the GPU's place: a dry run of the tests' own
code where no GPU is (each comparison is then trivially equal, so it proves the plumbing, not CUDA).
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from acmtl.core.checkpoint import build_model, load_pretrained, save_pretrained
from acmtl.core.crf import ConstrainedCRF
from acmtl.core.features import encode_sentences, training_batches
from acmtl.core.model import ModelConfig
from acmtl.core.train import bf16_supported, tag_names
from acmtl.serving.predictor import NERPredictor

DEVICE = torch.device(os.environ.get("ACMTL_GPU_TEST_DEVICE", "cuda"))
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA")]


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder_dir, msra):
    """An untrained AC-MTL on the tiny encoder, on the CPU (each test copies it)."""
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("acmtl", tag_names(msra.types), encoder=str(tiny_encoder_dir), cnn_channels=16)
    return build_model(cfg)


@pytest.fixture()
def full_fp32():
    """No TF32 while comparing with the CPU: it keeps 10 bits of mantissa, and an untrained model's near-tied tag
    scores may then tip the other way; a difference would be rounding, not the GPU path."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_a_training_step_under_amp_lowers_the_loss(tiny_model, msra, precision):
    """fp16 (with loss scaling) on every GPU, bf16 where it is native: the matrix products run in that precision
    and ten steps on one batch lower its loss."""
    if precision == "bf16" and not bf16_supported(DEVICE):
        pytest.skip(f"no native bf16 on {DEVICE}")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    model, tokenizer = copy.deepcopy(tiny_model)
    items = encode_sentences(msra.splits["train"][:16], tokenizer, model.cfg.tags)
    batch = training_batches(items, 16, seed=0)[0].to(DEVICE)
    model.to(DEVICE).train()
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    seen = []
    linear.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(DEVICE.type, enabled=precision == "fp16")
    losses = []
    for _ in range(10):
        with torch.autocast(DEVICE.type, dtype=dtype):
            loss = model(*batch.inputs, batch.tag_ids).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert set(seen) == {dtype}, "autocast did not reach the model's linear layers"
    assert all(map(math.isfinite, losses)) and losses[-1] < 0.8 * losses[0], losses


def test_the_crf_scores_and_decodes_on_the_gpu_as_on_the_cpu(msra):
    torch.manual_seed(0)
    tags = tag_names(msra.types)
    crf = ConstrainedCRF(tags)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 1.0)
    emissions = 3 * torch.randn(8, 30, len(tags))
    mask = torch.arange(30)[None, :] < torch.tensor([30, 1, 7, 30, 12, 2, 29, 18])[:, None]
    paths = crf.viterbi(emissions, mask)
    gold = torch.zeros(8, 30, dtype=torch.long)
    for row, path in enumerate(paths):
        gold[row, : len(path)] = torch.tensor(path)
    on_gpu = copy.deepcopy(crf).to(DEVICE)
    moved = emissions.to(DEVICE), mask.to(DEVICE)
    assert on_gpu.viterbi(*moved) == paths
    nll = on_gpu.nll(moved[0], gold.to(DEVICE), moved[1]).item()
    assert nll == pytest.approx(crf.nll(emissions, gold, mask).item(), rel=1e-5)
    assert torch.allclose(on_gpu.marginals(*moved).cpu(), crf.marginals(emissions, mask), atol=1e-9)


def test_predict_on_the_gpu_finds_the_cpus_entities(tiny_model, msra, full_fp32):
    """Every entity, span and type alike, with its score; a text over 510 characters goes through the windows."""
    model, tokenizer = tiny_model
    texts = [s.text for s in msra.splits["test"][:64]] + ["".join(s.text for s in msra.splits["test"][:40])]
    assert len(texts[-1]) > 510
    on_cpu = NERPredictor(model, tokenizer).predict(texts)
    on_gpu = NERPredictor(copy.deepcopy(model), tokenizer).to(DEVICE).predict(texts)
    spans = lambda found: [[(e["type"], e["start"], e["end"]) for e in text] for text in found]
    assert any(on_cpu), "the untrained model tags nothing: the comparison would be of empty lists"
    assert spans(on_gpu) == spans(on_cpu)
    scores = lambda found: [e["score"] for text in found for e in text]
    assert scores(on_gpu) == pytest.approx(scores(on_cpu), abs=1e-4)


def test_a_model_saved_from_the_gpu_loads_on_the_cpu_and_back(tiny_model, tmp_path):
    model, tokenizer = copy.deepcopy(tiny_model)
    model.to(DEVICE)
    folder = save_pretrained(model, tokenizer, tmp_path / "from_gpu")
    loaded, _ = load_pretrained(folder)  # on the CPU
    on_gpu = model.state_dict()
    assert all(torch.equal(value, on_gpu[key].cpu()) for key, value in loaded.state_dict().items())
    predictor = NERPredictor.from_pretrained(folder, device=DEVICE)
    assert predictor.device.type == DEVICE.type
    again = load_file(predictor.save_pretrained(tmp_path / "again") / "model.safetensors")
    first = load_file(folder / "model.safetensors")
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)  # GPU -> file -> GPU


def test_torchrun_with_one_process_trains_on_the_gpu(tiny_corpus_dir, tiny_encoder_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "acmtl",
           "train", "--corpus", f"tiny={tiny_corpus_dir}", "--encoder", str(tiny_encoder_dir), "--profile", "smoke",
           "--epochs", "2", "--batch-size", "8", "--out", str(out), "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"].startswith(DEVICE.type) and metrics["epochs_run"] == 2
    assert 0.0 <= metrics["test"]["entity_f1"] <= 1.0
