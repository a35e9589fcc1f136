"""``acmtl bench --quick`` runs end to end and writes the JSON the Figure 6 notebook reads (no timing checks)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from acmtl.bench import MODELS, _count_flops
from acmtl.cli import main
from acmtl.predict import _OneDNNLinear


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["bench", "--quick", "--device", "cpu", "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_every_model_has_params_and_speed_per_precision(quick):
    precisions = quick["protocol"]["precisions"]
    assert precisions[0] == "fp32" and set(precisions) <= {"fp32", "bf16"}
    assert ("bf16" in precisions) == quick["machine"]["bf16_native"]
    assert {"acmtl", "acmtl_bert_base", "reference", "encoder_crf", "bilstm_crf"} <= set(quick["models"])
    assert set(quick["models"]) <= set(MODELS)
    for name, result in quick["models"].items():
        assert result["params"]["total"] == result["params"]["encoder"] + result["params"]["added"] > 0, name
        assert result["characters"] > 0 and result["gflop_per_token"] > 0, name
        for key in ("tokens_per_s", "vs_reference", "fraction_of_matmul_peak"):
            assert set(result[key]) == set(precisions) and all(v > 0 for v in result[key].values()), (name, key)


def test_sizes_training_latency_and_ratios(quick):
    models, precisions = quick["models"], quick["protocol"]["precisions"]
    assert models["acmtl_bert_base"]["params"]["encoder"] > 3 * models["acmtl"]["params"]["encoder"]
    assert models["reference"]["params"]["encoder"] == models["acmtl"]["params"]["encoder"]
    assert models["acmtl"]["params"]["added"] > models["reference"]["params"]["added"]
    for name in ("acmtl", "reference"):
        assert all(models[name]["train_chars_per_s"][p] > 0 for p in precisions)
        assert all(0 < models[name]["latency_ms"][p]["p50"] <= models[name]["latency_ms"][p]["p95"]
                   for p in precisions)
    assert 0 <= models["acmtl"]["time_share"]["prepare"] < 1 and 0 <= models["acmtl"]["time_share"]["viterbi"] < 1
    assert quick["ratios"]["inference"] == models["acmtl"]["vs_reference"]
    for kind in ("inference", "training"):
        assert set(quick["targets"][kind]["met"]) == set(precisions)
        assert all(quick["ratios"][kind][p] > 0 for p in precisions)
    assert all(quick["matmul_gflops"][p] > 0 for p in precisions)
    assert quick["machine"]["threads"] >= 1 and quick["machine"]["cpu_count"] >= 1


def test_flop_counter_counts_lstm_and_onednn_linear():
    lstm = torch.nn.LSTM(4, 3, bidirectional=True, batch_first=True)
    with torch.inference_mode(), _count_flops(lstm) as flops:
        lstm(torch.randn(2, 5, 4))
    assert flops() == 10 * 2 * (2 * 4 * 3 * (4 + 3))  # tokens x directions x 4 gates of [x; h] @ W
    linear = torch.nn.Linear(6, 5)
    with torch.inference_mode(), _OneDNNLinear(), _count_flops(linear) as flops:
        linear(torch.randn(2, 3, 6))
    assert flops() == 2 * 6 * 6 * 5


def test_onednn_linear_matches_f_linear_and_leaves_autocast_and_autograd_alone():
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 7, 16), torch.randn(8, 16), torch.randn(8)
    with torch.inference_mode():
        expected = F.linear(x, weight, bias)
        with _OneDNNLinear():
            assert torch.allclose(F.linear(x, weight, bias), expected, atol=1e-5)
            assert torch.allclose(F.linear(x, weight=weight), expected - bias, atol=1e-5)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert F.linear(x, weight, bias).dtype == torch.bfloat16
    leaf = x.clone().requires_grad_()
    with _OneDNNLinear():
        F.linear(leaf, weight, bias).sum().backward()
    assert torch.allclose(leaf.grad, weight.sum(0).expand_as(x))
