"""ONNX Runtime backends: the exported network gives eager's emissions at any batch and length, predict
tags alike on every backend, exports are cached by weights, and a missing extra is a clear error."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from acmtl import cli
from acmtl.core.checkpoint import build_model, save_pretrained
from acmtl.core.features import collate, encode
from acmtl.core.model import ModelConfig
from acmtl.core.predict import tag_encoded
from acmtl.core.train import tag_names
from acmtl.serving import backends
from acmtl.serving.predictor import NERPredictor

needs_onnx = pytest.mark.skipif(bool(backends.missing_packages()),
                                reason="the ONNX backends need the 'onnx' extra: pip install -e '.[onnx]'")
TEXTS = ["他毕业于北京交通大学。", "新华社北京十二月三十一日电", "", "李明在上海浦东新区工作，住在杭州西湖边。"]


@pytest.fixture(scope="module")
def tiny(tiny_encoder_dir):
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("acmtl", tag_names(["LOC", "ORG", "PER"]), encoder=str(tiny_encoder_dir),
                                       cnn_channels=16, pool_size=3)  # pooled: the export must keep its length free
    model, tokenizer = build_model(cfg)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


def _batch(tokenizer, texts):
    return collate([encode(list(t), tokenizer) for t in texts], list(range(len(texts)))).inputs


def test_cli_offers_the_backends_that_exist():
    assert cli.BACKENDS == backends.BACKENDS


def test_unknown_or_uninstalled_backend_is_a_clear_error(tiny, monkeypatch, onnx_dir):
    model, _ = tiny
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        backends.acmtl_emissions(model, "tensorrt", cache_dir=onnx_dir)
    assert backends.acmtl_emissions(model, "eager") is None
    monkeypatch.setattr(backends, "missing_packages", lambda: ["onnxruntime"])
    assert backends.available_backends() == ["eager"]
    with pytest.raises(backends.BackendError, match=r"needs onnxruntime: pip install -e '\.\[onnx\]'"):
        backends.acmtl_emissions(model, "onnx", cache_dir=onnx_dir)


@needs_onnx
def test_onnx_emissions_equal_eager_at_any_batch_and_length(tiny, onnx_dir):
    """The export traces one small batch; batch size and length must stay free (one row, one character, ragged)."""
    model, tokenizer = tiny
    network = backends.acmtl_emissions(model, "onnx", cache_dir=onnx_dir)
    for texts in (TEXTS[:1], ["中"], TEXTS[:2] + TEXTS[3:] + ["北京" * 40]):
        inputs = _batch(tokenizer, texts)
        with torch.inference_mode():
            expected = model.emissions(*inputs)[0]
        got = network(*inputs)
        assert got.shape == expected.shape
        mask = inputs[-1]
        assert torch.allclose(got[mask], expected[mask], atol=1e-4), texts


@needs_onnx
def test_every_backend_tags_like_eager(tiny, onnx_dir):
    onnx = pytest.importorskip("onnx")
    model, tokenizer = tiny
    items = [encode(list(t), tokenizer) for t in TEXTS]
    eager = tag_encoded(model, items)
    fp32 = tag_encoded(model, items, network=backends.acmtl_emissions(model, "onnx", cache_dir=onnx_dir))
    assert fp32 == eager
    int8 = backends.acmtl_emissions(model, "onnx-int8", cache_dir=onnx_dir)
    graph = onnx.load(int8.path).graph
    weights = {w.name for w in graph.initializer}
    assert any(node.op_type == "MatMulInteger" for node in graph.node)
    assert not [node.name for node in graph.node if node.op_type == "MatMul" and weights & set(node.input)]
    assert [len(p) for p in tag_encoded(model, items, network=int8)] == [len(p) for p in eager]


@needs_onnx
def test_exports_are_cached_by_weights(tiny, onnx_dir, monkeypatch):
    model, _ = tiny
    first = backends.acmtl_emissions(model, "onnx", cache_dir=onnx_dir).path

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the weights did not change")

    monkeypatch.setattr(backends, "_export", no_export)
    assert backends.acmtl_emissions(model, "onnx", cache_dir=onnx_dir).path == first
    changed = {k: v.clone() for k, v in model.state_dict().items()}
    changed["ner_head.bias"][0] += 1.0
    other, _ = build_model(model.cfg, pretrained=False)
    other.load_state_dict(changed)
    with pytest.raises(backends.BackendError, match="exported again"):  # new weights, new key: a new export
        backends.acmtl_emissions(other.eval(), "onnx", cache_dir=onnx_dir)


@needs_onnx
def test_predict_cli_backend_matches_eager_and_caches_beside_the_model(tiny, tmp_path, capsys):
    model, tokenizer = tiny
    folder = save_pretrained(model, tokenizer, tmp_path / "saved")
    outputs = {}
    for backend in ("eager", "onnx"):
        assert cli.main(["predict", "--model", str(folder), "--device", "cpu", "--backend", backend, *TEXTS]) == 0
        outputs[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(outputs["eager"]) == len(TEXTS)
    for ours, theirs in zip(outputs["onnx"], outputs["eager"]):
        assert [(e["type"], e["start"], e["end"]) for e in ours["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in theirs["entities"]]
        for a, b in zip(ours["entities"], theirs["entities"]):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert len(list((folder / "onnx").glob("acmtl-*.onnx"))) == 1
    assert NERPredictor.from_pretrained(folder, device="cpu", backend="onnx").network is not None


def test_predict_takes_the_emissions_from_the_backend(tiny):
    """Whatever the backend's network scores is what gets decoded: here it votes S-PER for every character."""
    model, tokenizer = tiny
    person = model.cfg.tags.index("S-PER")

    def network(char_ids, syllable_ids, tone_ids, mask):
        return 10.0 * F.one_hot(torch.full(char_ids.shape, person), len(model.cfg.tags)).float()

    items = [encode(list(t), tokenizer) for t in TEXTS]
    assert tag_encoded(model, items, network=network) == [[person] * len(t) for t in TEXTS]
    predictor = NERPredictor(model, tokenizer)
    predictor.network = network
    entities = predictor.predict(TEXTS[:1])[0]
    assert [(e["type"], e["start"], e["end"]) for e in entities] == [("PER", i, i + 1) for i in range(len(TEXTS[0]))]
