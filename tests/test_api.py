"""The Python API: CRF marginals against brute force, entity confidences, the predictor's Hugging Face-style
methods, the model card, config.json's model type, and the example of docs/using-a-model.md run as written."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import acmtl
from acmtl.core.checkpoint import CheckpointError, build_model, load_pretrained, save_pretrained
from acmtl.core.crf import ConstrainedCRF, bioes_allowed, span_probability
from acmtl.core.model import MODEL_VERSION, ModelConfig
from acmtl.core.train import tag_names
from acmtl.serving.predictor import NERPredictor

ROOT = Path(__file__).resolve().parents[1]
TAGS = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def random_crf(constrained: bool, seed: int) -> ConstrainedCRF:
    torch.manual_seed(seed)
    crf = ConstrainedCRF(TAGS, constrain=constrained)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf


def path_probabilities(crf: ConstrainedCRF, emissions: torch.Tensor, constrained: bool) -> dict[tuple, float]:
    """p(y | x) of every tag path of one sentence [n, K], by enumeration (forbidden paths have no mass)."""
    allowed_start, allowed, allowed_end = bioes_allowed(TAGS)
    start, trans, end, em = (t.detach().double().numpy() for t in (crf.start_transitions, crf.transitions,
                                                                     crf.end_transitions, emissions))
    scores = {}
    for path in itertools.product(range(len(TAGS)), repeat=len(em)):
        if constrained and not (allowed_start[path[0]] and allowed_end[path[-1]]
                                and all(allowed[a, b] for a, b in zip(path, path[1:]))):
            continue
        scores[path] = (start[path[0]] + end[path[-1]] + sum(em[i, t] for i, t in enumerate(path))
                        + sum(trans[a, b] for a, b in zip(path, path[1:])))
    log_z = np.logaddexp.reduce(list(scores.values()))
    return {path: math.exp(s - log_z) for path, s in scores.items()}


@pytest.mark.parametrize("constrained", [False, True])
def test_marginals_and_span_probabilities_match_brute_force(constrained):
    crf = random_crf(constrained, seed=3)
    lengths = [4, 1, 3]
    emissions = torch.randn(len(lengths), 4, len(TAGS)) * 1.5
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    marginals = crf.marginals(emissions, mask)
    alpha, beta, log_z = crf.forward_backward(emissions, mask)
    transitions = crf.decoding_scores()[1].double().numpy()
    for b, n in enumerate(lengths):
        paths = path_probabilities(crf, emissions[b, :n], constrained)
        assert sum(paths.values()) == pytest.approx(1.0)
        expected = np.zeros((n, len(TAGS)))
        for path, p in paths.items():
            expected[np.arange(n), path] += p
        np.testing.assert_allclose(marginals[b, :n].numpy(), expected, atol=1e-9)
        # every span of every path: p(tags on the span) = the mass of the paths that agree there
        for path in sorted(paths, key=paths.get)[-5:]:
            for start, stop in itertools.combinations(range(n + 1), 2):
                agree = sum(p for other, p in paths.items() if other[start:stop] == path[start:stop])
                got = span_probability(alpha[b, :n].numpy(), beta[b, :n].numpy(), emissions[b, :n].double().numpy(),
                                       transitions, float(log_z[b]), start, list(path[start:stop]))
                assert got == pytest.approx(agree, abs=1e-9)


def test_partition_function_equals_pytorch_crf():
    crf = random_crf(False, seed=4)
    emissions = torch.randn(5, 7, len(TAGS))
    mask = torch.arange(7)[None, :] < torch.tensor([7, 3, 1, 6, 7])[:, None]
    _, _, log_z = crf.forward_backward(emissions, mask)
    expected = crf._compute_normalizer(emissions.transpose(0, 1), mask.transpose(0, 1))  # pytorch-crf's own
    torch.testing.assert_close(log_z.float(), expected)


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A tiny random AC-MTL tilted towards entity tags, saved as a model folder."""
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("acmtl", tag_names(["LOC", "ORG", "PER"]), encoder=str(tiny_encoder_dir),
                                       cnn_channels=16)
    model, tokenizer = build_model(cfg)
    with torch.no_grad():
        model.ner_head.bias.copy_(torch.tensor([0.0] + [0.8, 0.8, 0.8, 0.3] * 3))
    return NERPredictor(model, tokenizer).save_pretrained(tmp_path_factory.mktemp("api") / "model")  # as a user saves


TEXTS = ["他毕业于北京交通大学。", "", "张三在上海市浦东新区工作，李四在深圳。" * 3]


def test_confidence_is_the_span_probability_of_the_whole_text(model_dir):
    ner = acmtl.from_pretrained(model_dir, device="cpu")
    text = TEXTS[2]
    entities = ner(text)
    assert entities and all(0.0 < e["score"] <= 1.0 for e in entities)
    from acmtl.core.features import collate, encode

    batch = collate([encode(list(text), ner.tokenizer)], [0])
    with torch.no_grad():
        emissions, _ = ner.model.emissions(*batch.inputs)
    alpha, beta, log_z = ner.model.crf.forward_backward(emissions, batch.mask)
    transitions = ner.model.crf.decoding_scores()[1].double().numpy()
    tag_id = {t: i for i, t in enumerate(ner.model.cfg.tags)}
    for e in entities:
        n = e["end"] - e["start"]
        tags = [tag_id[f"S-{e['type']}"]] if n == 1 else (
            [tag_id[f"B-{e['type']}"]] + [tag_id[f"I-{e['type']}"]] * (n - 2) + [tag_id[f"E-{e['type']}"]])
        expected = span_probability(alpha[0].numpy(), beta[0].numpy(), emissions[0].double().numpy(), transitions,
                                    float(log_z[0]), e["start"], tags)
        assert e["score"] == pytest.approx(expected, rel=1e-9)
    # windowed: each entity is scored in a window that holds it, still a probability
    windowed = NERPredictor(ner.model, ner.tokenizer, max_len=12)(text)
    assert windowed and all(0.0 < e["score"] <= 1.0 for e in windowed)


def same_entities(a: list[list[dict]], b: list[list[dict]]) -> bool:
    strip = lambda rows: [[{k: v for k, v in e.items() if k != "score"} for e in row] for row in rows]
    scores = lambda rows: [e["score"] for row in rows for e in row]
    return strip(a) == strip(b) and scores(a) == pytest.approx(scores(b), rel=1e-4)


def test_predictor_api(model_dir, tmp_path, monkeypatch):
    ner = acmtl.from_pretrained(model_dir.parent, device="cpu")  # a run folder: its model/ is loaded
    many = ner.predict(TEXTS)
    one_by_one = [ner.predict(t) for t in TEXTS]
    assert one_by_one == [ner(t) for t in TEXTS]
    assert same_entities(one_by_one, many)  # alone or batched (padding moves float sums a little)
    assert many[1] == [] and all(t[e["start"] : e["end"]] == e["text"] for t, es in zip(TEXTS, many) for e in es)
    assert ner.to("cpu") is ner and ner.device.type == "cpu"
    copy = ner.save_pretrained(tmp_path / "copy")
    assert acmtl.from_pretrained(copy, device="cpu").predict(TEXTS) == many
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert acmtl.from_pretrained(copy).device.type == "cpu"  # auto: no GPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    from acmtl.core.predict import default_device

    assert default_device().type == "cuda"


def test_config_names_its_model_type_and_foreign_folders_are_refused(model_dir, tmp_path):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "acmtl" and config["acmtl_version"] == acmtl.__version__
    old = tmp_path / "old"  # saved before model_type existed: still loads
    save_pretrained(*load_pretrained(model_dir), old)
    config_old = json.loads((old / "config.json").read_text())
    for key in ("model_type", "acmtl_version"):
        del config_old[key]
    (old / "config.json").write_text(json.dumps(config_old))
    assert acmtl.from_pretrained(old, device="cpu").predict(TEXTS) == acmtl.from_pretrained(model_dir).predict(TEXTS)

    newer = json.loads((model_dir / "config.json").read_text())
    newer.update(model_version=MODEL_VERSION + 1, acmtl_version="9.0.0")
    (old / "config.json").write_text(json.dumps(newer))
    with pytest.raises(CheckpointError, match=rf"model version {MODEL_VERSION + 1} \(written by acmtl 9\.0\.0\), "
                                              rf"this acmtl {re.escape(acmtl.__version__)} reads version"):
        acmtl.from_pretrained(old)

    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(bert)
    with pytest.raises(CheckpointError, match="a Hugging Face 'bert' model, not an acmtl model"):
        acmtl.from_pretrained(bert)


def test_every_saved_model_has_a_card_and_a_finished_run_gets_its_scores(model_dir, tmp_path):
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: other\n") and "# acmtl `acmtl`" in card  # the tiny encoder: terms unknown
    assert "read its own model card" in card and "Not scored yet" in card and "@article{fu2025acmtl" in card

    from acmtl.companion.runs import write_run_card

    run = tmp_path / "run"
    model, tokenizer = load_pretrained(model_dir)
    model.cfg.encoder = "m3e-small"  # as if fine-tuned from the default encoder
    save_pretrained(model, tokenizer, run / "model")
    record = {"arch": "acmtl", "acmtl_version": acmtl.__version__, "code_sha256": "c0de",
              "corpus": {"name": "msra", "spec": "msra", "size": 1000, "data_sha256": "da7a",
                         "sentences": {"train": 700, "dev": 150, "test": 150}},
              "train": {"seed": 7, "epochs": 30, "encoder_lr": 5e-5}}
    scores = {"entity_precision": 0.5, "entity_recall": 0.25, "entity_f1": 1 / 3}
    metrics = {"best_epoch": 3, "epochs_run": 8, "device": "cpu", "precision": "fp32", "dev": scores,
               "full_test": {**scores, "entity_f1": 0.3125}}
    (run / "run.json").write_text(json.dumps(record))
    (run / "metrics.json").write_text(json.dumps(metrics))
    card = write_run_card(run).read_text(encoding="utf-8")
    assert "base_model: moka-ai/m3e-small" in card and "**research use only**" in card
    assert "`msra`" in card and "a subset of 1000 sentences" in card and "seed: 7" in card
    assert "| dev (model selection) | 0.5000 | 0.2500 | 0.3333 |" in card and "| 0.3125 |" in card
    assert "test (the subset's own)" not in card  # not scored: no row
    # save_pretrained from a predictor loaded out of the run keeps what the run recorded
    copy = acmtl.from_pretrained(run, device="cpu").save_pretrained(tmp_path / "copy")
    assert (copy / "README.md").read_text(encoding="utf-8") == card


def readme_block(marker: str) -> str:
    """The fenced code block that follows ``marker`` on the README's page about using a trained model."""
    text = (ROOT / "docs" / "using-a-model.md").read_text(encoding="utf-8")
    return text.split(marker, 1)[1].split("```", 2)[1].split("\n", 1)[1]


def test_readme_python_example_runs(model_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves a model folder into the working directory
    code = readme_block("<!-- example: python api")
    assert "runs/<hash>" in code
    exec(compile(code.replace("runs/<hash>", str(model_dir.parent)), "docs/using-a-model.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'score':" in printed and "'start':" in printed
    assert acmtl.from_pretrained(tmp_path / "my-ner-model").predict("北京") is not None


def test_a_saved_config_keeps_no_cache_path_of_this_machine(model_dir):
    """transformers' ``_name_or_path`` is where the encoder was loaded from (for the default encoder, a folder of
    this machine's cache); the encoder's name is ``model.encoder``, what the model was asked for."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["encoder_config"] and "_name_or_path" not in config["model"]["encoder_config"]


def test_a_baseline_card_lists_only_the_settings_its_model_reads(tiny_encoder_dir, tmp_path):
    from acmtl.serving.card import model_card

    types = tag_names(["LOC", "ORG", "PER"])
    baseline = model_card(ModelConfig.for_architecture("encoder_crf", types, encoder=str(tiny_encoder_dir)))
    for setting in ("attention_heads", "cnn_kernels", "main_task_weight", "syllable_dim", "soft_sharing_l2",
                    "identity_start", "pool_size", "char_dim"):
        assert f'"{setting}"' not in baseline, setting
    assert '"dropout"' in baseline and '"constrained_decoding"' in baseline
    full = model_card(ModelConfig.for_architecture("acmtl", types, encoder=str(tiny_encoder_dir)))
    assert all(f'"{s}"' in full for s in ("attention_heads", "cnn_kernels", "main_task_weight", "syllable_dim"))
    assert '"soft_sharing_l2"' not in full  # hard sharing: one block, nothing to pull together


@pytest.mark.parametrize("texts, said", [(None, "not None"), (42, "not a int"), (b"x", "not a bytes"),
                                         (["北京", None], "not a list holding a NoneType")])
def test_the_predictor_says_what_it_takes(model_dir, texts, said):
    ner = acmtl.from_pretrained(model_dir, device="cpu")
    with pytest.raises(TypeError, match=rf"takes a text \(a str\) or a list of texts, {said}"):
        ner(texts)


def test_a_run_is_named_by_its_hash_and_a_missing_folder_says_so(model_dir, tmp_path, monkeypatch):
    import shutil

    cache = tmp_path / "elsewhere"
    shutil.copytree(model_dir, cache / "5ca7eff995137790" / "model")
    monkeypatch.setenv("ACMTL_RUNS", str(cache))
    monkeypatch.chdir(tmp_path)
    assert acmtl.from_pretrained("5ca7eff995137790", device="cpu").predict(TEXTS) == \
        acmtl.from_pretrained(model_dir, device="cpu").predict(TEXTS)
    with pytest.raises(FileNotFoundError, match=rf"runs/5ca7eff995137790: no such folder; the run cache has "
                                                rf"{re.escape(str(cache))}/5ca7eff995137790"):
        acmtl.from_pretrained("runs/5ca7eff995137790")
    with pytest.raises(FileNotFoundError, match="0000000000000000: no such folder, nor a run of that name"):
        acmtl.from_pretrained("0000000000000000")
