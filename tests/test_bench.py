"""``acmtl bench --quick`` runs end to end and writes the JSON the Figure 6 notebook reads (no timing checks)."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
import torch.nn.functional as F

from acmtl.cli import main
from acmtl.companion import bench
from acmtl.companion.bench import MODELS, PAPER_TOKENS_PER_S, TARGETS, _count_flops, compare, format_table
from acmtl.companion.claims import paper_speed_params
from acmtl.core.predict import _OneDNNLinear
from acmtl.serving import backends


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["bench", "--quick", "--device", "cpu", "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_every_model_has_params_and_speed_per_precision(quick):
    precisions = quick["protocol"]["precisions"]
    assert precisions[0] == "fp32" and set(precisions) <= {"fp32", "fp16", "bf16"}
    assert ("bf16" in precisions) == quick["machine"]["bf16_native"]
    assert ("fp16" in precisions) == (quick["machine"]["device"] == "cuda")
    assert {"acmtl", "acmtl_bert_base", "reference", "encoder_crf", "bilstm_crf"} <= set(quick["models"])
    assert set(quick["models"]) <= set(MODELS)
    for name, result in quick["models"].items():
        assert result["params"]["total"] == result["params"]["encoder"] + result["params"]["added"] > 0, name
        assert result["characters"] > 0 and result["gflop_per_token"] > 0, name
        for key in ("tokens_per_s", "vs_reference", "fraction_of_matmul_peak"):
            assert set(result[key]) == set(precisions) and all(v > 0 for v in result[key].values()), (name, key)


def test_sizes_training_and_latency(quick):
    models, precisions = quick["models"], quick["protocol"]["precisions"]
    assert models["acmtl_bert_base"]["params"]["encoder"] > 3 * models["acmtl"]["params"]["encoder"]
    assert models["reference"]["params"]["encoder"] == models["acmtl"]["params"]["encoder"]
    assert models["acmtl"]["params"]["added"] > models["reference"]["params"]["added"]
    for name in ("acmtl", "encoder_crf", "reference"):  # the issue asks for encoder+CRF's training speed too
        assert all(models[name]["train_chars_per_s"][p] > 0 for p in precisions), name
    for name in ("acmtl", "reference"):
        assert all(0 < models[name]["latency_ms"][p]["p50"] <= models[name]["latency_ms"][p]["p95"]
                   for p in precisions)
    assert 0 <= models["acmtl"]["time_share"]["prepare"] < 1 and 0 <= models["acmtl"]["time_share"]["viterbi"] < 1
    assert all(quick["matmul_gflops"][p] > 0 for p in precisions)
    assert quick["machine"]["threads"] >= 1 and quick["machine"]["cpu_count"] >= 1


def _speed(characters: int, seconds: list[float]) -> float:
    """Characters per second of the median timed pass, from the raw timings."""
    return characters / statistics.median(seconds)


def test_ratios_and_targets_follow_from_the_raw_timings(quick):
    """Every ratio recomputed from characters and timed passes; targets judged against the same-library reference."""
    models, precisions = quick["models"], quick["protocol"]["precisions"]
    ratios, targets = quick["ratios"], quick["targets"]
    acmtl, plain = models["acmtl"], models["reference"]
    same_library = models.get("reference_fast_gemm", plain)  # present where acmtl's CPU GEMM differs from the default
    for p in precisions:
        assert len(acmtl["inference_seconds"][p]) == quick["protocol"]["repeats"]
        assert len(acmtl["train_seconds"][p]) == quick["protocol"]["train_repeats"]  # more than inference's
        speed = {name: _speed(m["characters"], m["inference_seconds"][p]) for name, m in models.items()}
        like = speed["acmtl"] / _speed(same_library["characters"], same_library["inference_seconds"][p])
        assert ratios["inference_like_for_like"][p] == pytest.approx(like)
        assert ratios["inference_vs_plain_reference"][p] == pytest.approx(speed["acmtl"] / speed["reference"])
        train = (_speed(acmtl["train_characters"], acmtl["train_seconds"][p])
                 / _speed(plain["train_characters"], plain["train_seconds"][p]))
        assert ratios["training_like_for_like"][p] == pytest.approx(train)
        assert targets["inference"]["met_like_for_like"][p] == (like >= TARGETS["inference"])
        assert targets["inference"]["met_vs_plain_reference"][p] == (speed["acmtl"] / speed["reference"]
                                                                     >= TARGETS["inference"])
        assert targets["training"]["met_like_for_like"][p] == (train >= TARGETS["training"])
    table = format_table(quick)
    for kind in TARGETS:
        assert f"{kind} AC-MTL / reference, like for like (target" in table
    assert ("as a plain user runs it (target" in table) == ("reference_fast_gemm" in models)


def test_targets_compare_like_with_like():
    """AC-MTL on oneDNN beats the reference on the default BLAS, not the reference on oneDNN: met only vs plain."""
    def model(tokens_per_s: float, train_chars_per_s: float = 100.0) -> dict:
        return {"tokens_per_s": {"fp32": tokens_per_s}, "train_chars_per_s": {"fp32": train_chars_per_s},
                "gflop_per_token": 1.0}

    models = {"acmtl": model(130.0, 70.0), "reference": model(100.0), "reference_fast_gemm": model(175.0)}
    ratios, targets = compare(models, ["fp32"])
    assert ratios["inference_like_for_like"]["fp32"] == pytest.approx(130 / 175)
    assert ratios["inference_vs_plain_reference"]["fp32"] == pytest.approx(1.3)
    assert targets["inference"]["met_like_for_like"] == {"fp32": False}
    assert targets["inference"]["met_vs_plain_reference"] == {"fp32": True}
    assert ratios["training_like_for_like"]["fp32"] == pytest.approx(0.7)
    assert targets["training"] == {"target": TARGETS["training"], "met_like_for_like": {"fp32": False}}
    del models["reference_fast_gemm"]  # the plain reference already runs on acmtl's library (GPU, or BLAS chosen)
    ratios, targets = compare(models, ["fp32"])
    assert ratios["inference_like_for_like"] == ratios["inference_vs_plain_reference"] == {"fp32": pytest.approx(1.3)}
    assert targets["inference"]["met_like_for_like"] == {"fp32": True}


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


def test_machine_kind_is_recorded(quick):
    machine = quick["machine"]
    assert machine["cpu"] and machine["threads"] >= 1 and machine["torch"] == torch.__version__
    assert set(machine["cpu_flags"]) <= set(bench.CPU_FLAGS)
    assert machine["onnxruntime"] == backends.versions()["onnxruntime"]  # None where the extra is missing
    assert "onnxruntime" in format_table(quick).splitlines()[1]


def test_every_installed_backend_is_timed_and_read_two_ways(quick):
    """Each backend's ratios recomputed from its raw timings: vs the plain eager fp32 reference, and like for like."""
    assert quick["protocol"]["backends"] == backends.available_backends()
    plain = quick["models"]["reference"]
    plain_fp32 = _speed(plain["characters"], plain["inference_seconds"]["fp32"])
    by_backend = quick["ratios"]["inference_by_backend"]
    assert set(by_backend) == set(quick["protocol"]["backends"])
    for backend, measured in quick["backends"].items():
        ours, theirs = (_speed(measured[m]["characters"], measured[m]["inference_seconds"])
                        for m in ("acmtl", "reference"))
        assert measured["acmtl"]["characters"] == quick["models"]["acmtl"]["characters"]  # every character tagged
        assert by_backend[backend]["vs_eager_reference"] == pytest.approx(ours / plain_fp32)
        assert by_backend[backend]["like_for_like"] == pytest.approx(ours / theirs)
    fastest = quick["targets"]["inference"]["fastest_backend"]
    assert fastest["met"] == (fastest["vs_eager_reference"] >= TARGETS["inference"])
    assert fastest["vs_eager_reference"] == max(r["vs_eager_reference"] for r in by_backend.values())
    table = format_table(quick)
    assert all(f"\n{backend} " in table for backend in by_backend)
    assert f"fastest backend ({fastest['backend']})" in table


def test_fastest_backend_is_judged_against_the_plain_eager_reference():
    def speeds(acmtl: float, reference: float) -> dict:
        return {"acmtl": {"tokens_per_s": acmtl}, "reference": {"tokens_per_s": reference}}

    models = {"acmtl": {"tokens_per_s": {"fp32": 75.0}, "train_chars_per_s": {"fp32": 1.0}, "gflop_per_token": 1.0},
              "reference": {"tokens_per_s": {"fp32": 100.0}, "train_chars_per_s": {"fp32": 1.0},
                            "gflop_per_token": 1.0}}
    ratios, targets = compare(models, ["fp32"], {"onnx": speeds(110.0, 160.0), "onnx-int8": speeds(150.0, 250.0)})
    assert ratios["inference_by_backend"]["eager"] == {"vs_eager_reference": 0.75, "like_for_like": 0.75}
    assert ratios["inference_by_backend"]["onnx"] == {"vs_eager_reference": pytest.approx(1.1),
                                                      "like_for_like": pytest.approx(110 / 160)}
    assert targets["inference"]["fastest_backend"] == {"backend": "onnx-int8", "vs_eager_reference": 1.5,
                                                       "like_for_like": 0.6, "met": True}
    assert "bert_base_vs_paper" not in ratios  # a CPU run is not read against the paper's V100


def test_gpu_run_is_read_against_the_papers_tokens_per_s_from_claims():
    paper = paper_speed_params().set_index("model").loc["AC-MTL", "paper_tokens_per_s"]
    assert PAPER_TOKENS_PER_S == paper
    model = {"tokens_per_s": {"fp32": 2.0 * paper, "fp16": 5.0 * paper},
             "train_chars_per_s": {"fp32": 1.0, "fp16": 1.0}, "gflop_per_token": 1.0}
    ratios, _ = compare({"acmtl": model, "reference": model, "acmtl_bert_base": model}, ["fp32", "fp16"], on_gpu=True)
    assert ratios["bert_base_vs_paper"] == {"fp32": pytest.approx(2.0), "fp16": pytest.approx(5.0)}


def test_compare_backends_scores_each_backend_against_eager(tiny_encoder_dir, msra, tmp_path):
    """F1 per backend on MSRA's official test (a sample here), its change from eager, the sentences tagged alike."""
    from acmtl.core.checkpoint import build_model, save_pretrained
    from acmtl.core.model import ModelConfig
    from acmtl.core.train import tag_names

    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("acmtl", tag_names(msra.types), encoder=str(tiny_encoder_dir), cnn_channels=16)
    folder = save_pretrained(*build_model(cfg), tmp_path / "model")
    found = bench.compare_backends(folder, sample_every=500)
    assert found["sentences"] == len(msra.splits["test"][::500])
    assert list(found["backends"]) == backends.available_backends()
    eager = found["backends"]["eager"]
    assert eager["f1_change_points"] == 0 and eager["identical_sentences"] == 1
    for backend, result in found["backends"].items():
        assert 0 <= result["f1"] <= 1 and 0 <= result["identical_sentences"] <= 1, backend
        assert result["f1_change_points"] == pytest.approx(100 * (result["f1"] - eager["f1"]))
    if "onnx" in found["backends"]:
        assert found["backends"]["onnx"]["identical_sentences"] == 1  # fp32: eager's tags, sentence for sentence
        assert (folder / "onnx").is_dir()
