"""``acmtl bench --quick`` runs end to end and writes the JSON the Figure 6 notebook reads, every timing with its
median and range (no timing checks); Figure 6 drawn from it."""

from __future__ import annotations

import contextlib
import io
import json
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.collections import LineCollection
from test_figures import hidden_markers, legends_covering_data, series_without_legend, text_overlaps, texts_across_axes

from acmtl.cli import main
from acmtl.companion import bench, figures, publish, tables
from acmtl.companion.bench import MODELS, PAPER_TOKENS_PER_S, TARGETS, _count_flops, compare, format_table
from acmtl.companion.claims import paper_speed_params
from acmtl.core.predict import _OneDNNLinear
from acmtl.serving import backends


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        assert main(["bench", "--quick", "--device", "cpu", "--json", str(path)]) == 0
    return json.loads(path.read_text()) | {"log": log.getvalue()}


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


def _span(ours: tuple[int, list[float]], theirs: tuple[int, list[float]]) -> list[float]:
    """[min, max] of the per-pass ratios, from the raw timings (pass i of each, timed in the same round)."""
    ratios = [(ours[0] / a) / (theirs[0] / b) for a, b in zip(ours[1], theirs[1], strict=True)]
    return [pytest.approx(min(ratios)), pytest.approx(max(ratios))]


def _median_and_range(characters: int, seconds: list[float]) -> tuple:
    return pytest.approx(_speed(characters, seconds)), pytest.approx([characters / max(seconds),
                                                                      characters / min(seconds)])


def test_each_timing_is_the_median_of_its_passes_with_their_range(quick):
    """Speeds: the median pass and [slowest, fastest]; the full protocol times at least 5 passes after a warm-up."""
    assert bench.FULL.repeats >= 5 and bench.FULL.train_repeats >= 5
    assert quick["protocol"]["repeats"] >= 2  # a range even in the plumbing check
    for name, m in quick["models"].items():
        for p in quick["protocol"]["precisions"]:
            assert (m["tokens_per_s"][p], m["tokens_per_s_range"][p]) == _median_and_range(
                m["characters"], m["inference_seconds"][p]), name
            if name in bench.TRAINED:
                assert (m["train_chars_per_s"][p], m["train_chars_per_s_range"][p]) == _median_and_range(
                    m["train_characters"], m["train_seconds"][p]), name
    for m in (m for rows in quick["backends"].values() for m in rows.values()):
        assert (m["tokens_per_s"], m["tokens_per_s_range"]) == _median_and_range(m["characters"],
                                                                                 m["inference_seconds"])
    for key, value in quick["matmul_gflops"].items():
        low, high = quick["matmul_gflops_range"][key]
        assert low <= value <= high
    assert sum("warm-up" in line for line in quick["log"].splitlines()) == 1  # one line, not one per model


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
        inference = lambda m, p=p: (m["characters"], m["inference_seconds"][p])
        training = lambda m, p=p: (m["train_characters"], m["train_seconds"][p])
        assert ratios["ranges"]["inference_like_for_like"][p] == _span(inference(acmtl), inference(same_library))
        assert ratios["ranges"]["inference_vs_plain_reference"][p] == _span(inference(acmtl), inference(plain))
        assert ratios["ranges"]["training_like_for_like"][p] == _span(training(acmtl), training(plain))
        assert targets["inference"]["met_like_for_like"][p] == (like >= TARGETS["inference"])
        assert targets["inference"]["met_vs_plain_reference"][p] == (speed["acmtl"] / speed["reference"]
                                                                     >= TARGETS["inference"])
        assert targets["training"]["met_like_for_like"][p] == (train >= TARGETS["training"])
    table = format_table(quick)
    for kind in TARGETS:
        assert f"{kind} AC-MTL / reference, like for like (target" in table
        low, high = ratios["ranges"][f"{kind}_like_for_like"]["fp32"]
        assert f"(range {low:,.3f}-{high:,.3f}, " in table  # each ratio printed with its range
    for m in models.values():
        low, high = m["tokens_per_s_range"]["fp32"]
        assert f"{low:,.0f}-{high:,.0f}" in table
    assert ("as a plain user runs it (target" in table) == ("reference_fast_gemm" in models)


def timed(tokens_per_s: dict[str, float], train_chars_per_s: dict[str, float] | None = None) -> dict:
    """A model's measurements as the benchmark records them, one timed pass each (1,000 characters)."""
    train_chars_per_s = train_chars_per_s or dict.fromkeys(tokens_per_s, 1.0)
    return {"tokens_per_s": tokens_per_s, "train_chars_per_s": train_chars_per_s, "gflop_per_token": 1.0,
            "characters": 1000, "inference_seconds": {p: [1000 / v] for p, v in tokens_per_s.items()},
            "train_characters": 1000, "train_seconds": {p: [1000 / v] for p, v in train_chars_per_s.items()},
            "tokens_per_s_range": {p: [v, v] for p, v in tokens_per_s.items()}}


def test_targets_compare_like_with_like():
    """AC-MTL on oneDNN beats the reference on the default BLAS, not the reference on oneDNN: met only vs plain."""
    def model(tokens_per_s: float, train_chars_per_s: float = 100.0) -> dict:
        return timed({"fp32": tokens_per_s}, {"fp32": train_chars_per_s})

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
        timed = lambda name, m=measured: (m[name]["characters"], m[name]["inference_seconds"])
        spread = quick["ratios"]["ranges"]["inference_by_backend"][backend]
        assert spread["like_for_like"] == _span(timed("acmtl"), timed("reference"))
        assert spread["vs_eager_reference"] == _span(timed("acmtl"), (plain["characters"],
                                                                      plain["inference_seconds"]["fp32"]))
    fastest = quick["targets"]["inference"]["fastest_backend"]
    assert fastest["met"] == (fastest["vs_eager_reference"] >= TARGETS["inference"])
    assert fastest["vs_eager_reference"] == max(r["vs_eager_reference"] for r in by_backend.values())
    table = format_table(quick)
    assert all(f"\n{backend} " in table for backend in by_backend)
    assert f"fastest backend ({fastest['backend']})" in table


def test_fastest_backend_is_judged_against_the_plain_eager_reference():
    def speeds(acmtl: float, reference: float) -> dict:
        return {name: {"tokens_per_s": v, "characters": 1000, "inference_seconds": [1000 / v]}
                for name, v in (("acmtl", acmtl), ("reference", reference))}

    models = {"acmtl": timed({"fp32": 75.0}), "reference": timed({"fp32": 100.0})}
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
    model = timed({"fp32": 2.0 * paper, "fp16": 5.0 * paper})
    model["tokens_per_s_range"]["fp16"] = [4.0 * paper, 6.0 * paper]
    ratios, _ = compare({"acmtl": model, "reference": model, "acmtl_bert_base": model}, ["fp32", "fp16"], on_gpu=True)
    assert ratios["bert_base_vs_paper"] == {"fp32": pytest.approx(2.0), "fp16": pytest.approx(5.0)}
    assert ratios["ranges"]["bert_base_vs_paper"]["fp16"] == pytest.approx([4.0, 6.0])


def test_a_ratio_carries_the_range_of_its_per_pass_ratios():
    """Pass i of AC-MTL against pass i of the reference (the same round), not the slowest of one against the
    fastest of the other: a load that slows both models in one round leaves their ratio alone."""
    acmtl, reference = timed({"fp32": 1.0}), timed({"fp32": 1.0})
    acmtl["inference_seconds"]["fp32"] = [1.0, 2.0, 1.1]  # round 2 slowed both
    reference["inference_seconds"]["fp32"] = [2.0, 4.0, 2.0]
    ratios, _ = compare({"acmtl": acmtl, "reference": reference}, ["fp32"])
    assert ratios["ranges"]["inference_like_for_like"]["fp32"] == pytest.approx([2.0 / 1.1, 2.0])
    assert bench.pass_speeds(1000, [1.0, 2.0]) == [1000.0, 500.0]


def test_figure6_draws_each_speeds_range(quick, tmp_path, monkeypatch):
    """The table the notebook writes from the benchmark, its median and range columns, and Figure 6 from it: a
    line across each range, through its median point, and a figure that reads cleanly."""
    monkeypatch.setenv(publish.OUTPUT_ROOT_ENV, str(tmp_path))
    results = {k: v for k, v in quick.items() if k != "log"}
    table = tables.figure6_table(results, tables.base_size_parameters(("LOC", "ORG", "PER")), paper_speed_params())
    precisions = results["protocol"]["precisions"]
    measured = table[table["measured_on"] == "this machine"]
    for p in precisions:
        assert (measured[f"min_tokens_per_s_{p}"] <= measured[f"tokens_per_s_{p}"]).all()
        assert (measured[f"tokens_per_s_{p}"] <= measured[f"max_tokens_per_s_{p}"]).all()
    assert (measured["timed_passes"] == results["protocol"]["repeats"]).all()
    publish.write_table(table, "figure6_speed_params", "smoke", started=0.0, extra={"bench": results})
    fig = figures.figure6_speed_params(publish.target_dirs("smoke")[0])
    try:
        speed = fig.axes[1]
        drawn = sorted(tuple(np.round(segment[:, 0], 6)) for c in speed.collections if isinstance(c, LineCollection)
                       for segment in c.get_segments())
        wanted = sorted(tuple(np.round(measured[[f"min_tokens_per_s_{p}", f"max_tokens_per_s_{p}"]].to_numpy(), 6)
                              [i]) for p in precisions for i in range(len(measured)))
        assert drawn == wanted
        assert [text_overlaps(fig), legends_covering_data(fig), series_without_legend(fig), hidden_markers(fig),
                texts_across_axes(fig)] == [[]] * 5
    finally:
        plt.close(fig)


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
