"""Attention scores, error categories and theme-river agreement on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from acmtl.companion.analysis import (
    CATEGORIES,
    attention_score,
    attention_scores,
    categorise_errors,
    document_type_counts,
    error_counts,
    error_table,
    predict_entities,
    sample_misclassified,
    smooth_counts,
    stream_agreement,
    token_positions,
    uniform_attention_score,
    window_counts,
)
from acmtl.core.checkpoint import build_model
from acmtl.core.model import ModelConfig
from acmtl.core.train import tag_names
from acmtl.data.conll import Entity, Sentence, entities_to_tags

# -- attention ----------------------------------------------------------------------------------


def test_token_positions():
    assert token_positions("他毕业于北京交通大学", "北京") == [4, 5]
    assert token_positions("北京人在北京", "北京", occurrence=1) == [4, 5]
    with pytest.raises(ValueError, match="fewer than 2"):
        token_positions("北京人", "北京", occurrence=1)
    with pytest.raises(ValueError):
        token_positions("上海人", "北京")


def test_attention_score_on_a_hand_built_tensor():
    n = 4
    uniform = torch.full((n, n), 1 / n)  # head 0: every key gets 1/4
    focused = torch.zeros(n, n)
    focused[:, 1] = 1.0  # head 1: every query looks only at character 1
    last = torch.zeros(n, n)
    last[:, 3] = 1.0  # head 2: every query looks only at character 3
    weights = torch.stack([uniform, focused, last])  # [3, 4, 4]
    # target = characters 1 and 2: head 0 gives 2/4, head 1 gives 1, head 2 gives 0
    assert attention_score(weights, [1, 2]) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # averaged over queries: only query 0 attends to character 0
    one_query = torch.zeros(1, n, n)
    one_query[0, :, 3] = 1.0
    one_query[0, 0] = torch.tensor([1.0, 0, 0, 0])
    assert attention_score(one_query, [0]) == pytest.approx(1 / 4)
    assert attention_score(uniform[None], [1, 2]) == pytest.approx(uniform_attention_score("他是北京", "是北"))
    with pytest.raises(ValueError):
        attention_score(weights, [4])
    with pytest.raises(ValueError):
        attention_score(weights[0], [0])


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder_dir):
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("bert_mhsa", tag_names(["LOC", "ORG", "PER"]), encoder=str(tiny_encoder_dir))
    model, tokenizer = build_model(cfg)
    return model.eval(), tokenizer


def test_attention_scores_follow_the_model_weights_and_ignore_padding(tiny_model):
    model, tokenizer = tiny_model
    texts = ["他是北京人", "他毕业于北京交通大学，现在仍在北京工作"]
    batched = attention_scores(model, tokenizer, texts, "北京")
    alone = [attention_scores(model, tokenizer, [t], "北京")[0] for t in texts]
    assert batched == pytest.approx(alone, abs=1e-5)  # padding of the shorter sentence changes nothing
    from acmtl.core.features import collate, encode
    batch = collate([encode(list(texts[1]), tokenizer)], [0])
    # the reference, by hand: softmax(Q K^T / sqrt(d_k)) of the MHSA layer's own input (the NER block's), per head
    attention, seen = model.blocks[0].attention, {}
    hook = attention.register_forward_pre_hook(lambda module, args: seen.update(x=args[0][0]))  # returns None
    with torch.no_grad():
        model.emissions(*batch.inputs)
    hook.remove()
    q, k, _ = attention.qkv(seen["x"]).split(seen["x"].shape[-1], dim=-1)
    q, k = (z.view(len(texts[1]), attention.heads, attention.head_dim).transpose(0, 1) for z in (q, k))
    weights = (q @ k.transpose(-2, -1) / math.sqrt(attention.head_dim)).softmax(-1)  # [heads, T, T]
    assert batched[1] == pytest.approx(weights[:, :, 4:6].sum(-1).mean().item(), abs=1e-5)
    second = attention_scores(model, tokenizer, texts[1:], "北京", occurrence=1)[0]
    assert second == pytest.approx(weights[:, :, 15:17].sum(-1).mean().item(), abs=1e-5)
    assert all(0.0 < s < 1.0 for s in batched)


def test_sample_misclassified_returns_only_wrong_sentences_in_order(tiny_model):
    model, tokenizer = tiny_model
    tags = lambda n, es: entities_to_tags(n, es)
    sentences = [Sentence(tuple("他是北京人" * (1 + i % 3)), tags(5 * (1 + i % 3), [Entity("LOC", 2, 4)]))
                 for i in range(12)]
    predicted = predict_entities(model, tokenizer, [s.chars for s in sentences])
    wrong = {i for i, s in enumerate(sentences) if set(predicted[i]) != set(s.entities())}
    found, examined = sample_misclassified(model, tokenizer, sentences, limit=3, seed=3, chunk=4)
    assert len(found) == min(3, len(wrong)) and [i for i, _ in found] == sorted(i for i, _ in found)
    for i, pred in found:
        assert set(pred) == set(predicted[i]) and i in wrong
    assert (found, examined) == sample_misclassified(model, tokenizer, sentences, limit=3, seed=3, chunk=4)
    everything, examined_all = sample_misclassified(model, tokenizer, sentences, limit=100, chunk=5)
    assert {i for i, _ in everything} == wrong and examined_all == len(sentences)


# -- error categories ---------------------------------------------------------------------------

BJTU = Entity("ORG", 4, 10)  # 北京交通大学 in 他毕业于北京交通大学


@pytest.mark.parametrize("gold, pred, category, relation", [
    ([Entity("LOC", 0, 2)], [Entity("ORG", 0, 2)], "type confusion", "same span"),
    ([BJTU], [Entity("ORG", 4, 8)], "boundary", "pred inside gold"),
    ([Entity("LOC", 4, 6)], [Entity("LOC", 3, 6)], "boundary", "gold inside pred"),
    ([Entity("PER", 0, 3)], [Entity("PER", 1, 4)], "boundary", "crossing"),
    ([BJTU], [Entity("LOC", 4, 6)], "boundary+type", "pred inside gold"),
    ([BJTU], [Entity("LOC", 4, 6), Entity("ORG", 6, 10)], "nested/overlap conflict", "one-to-many"),
    ([Entity("LOC", 0, 2), Entity("LOC", 2, 4)], [Entity("LOC", 0, 4)], "nested/overlap conflict", "one-to-many"),
    ([Entity("PER", 0, 2)], [], "missed", ""),
    ([], [Entity("PER", 0, 2)], "spurious", ""),
])
def test_every_error_category(gold, pred, category, relation):
    (error,) = categorise_errors(gold, pred)
    assert (error.category, error.relation) == (category, relation)
    assert set(error.gold) == set(gold) and set(error.pred) == set(pred)


def test_exact_matches_are_not_errors_and_parts_are_separate():
    gold = [Entity("PER", 0, 2), Entity("LOC", 4, 6), Entity("ORG", 8, 12), Entity("LOC", 14, 16)]
    pred = [Entity("PER", 0, 2), Entity("ORG", 4, 6), Entity("ORG", 9, 12), Entity("PER", 17, 19)]
    assert categorise_errors(gold, gold) == []
    errors = categorise_errors(gold, pred)
    assert [e.category for e in errors] == ["type confusion", "boundary", "missed", "spurious"]
    assert [e.category for e in categorise_errors(gold, list(reversed(pred)))] == [e.category for e in errors]


def test_error_table_and_counts():
    text = "他毕业于北京交通大学，在上海工作"
    sentence = Sentence(tuple(text), entities_to_tags(len(text), [BJTU, Entity("LOC", 12, 14)]))
    table = error_table([sentence], [(0, [Entity("LOC", 4, 6), Entity("ORG", 12, 14)])])
    assert table[["category", "gold", "predicted", "type_pair"]].values.tolist() == [
        ["boundary+type", "北京交通大学/ORG", "北京/LOC", "ORG→LOC"],
        ["type confusion", "上海/LOC", "上海/ORG", "LOC→ORG"],
    ]
    counts = error_counts(table).set_index("category")
    assert list(counts.index) == list(CATEGORIES)
    assert counts.loc["type confusion", "errors"] == 1 and counts.loc["missed", "errors"] == 0
    assert counts["share"].sum() == pytest.approx(1.0)
    assert error_counts(error_table([], []))["errors"].sum() == 0


# -- theme river --------------------------------------------------------------------------------


def test_document_type_counts_and_windows():
    docs = [[Entity("A", 0, 1), Entity("A", 2, 3)], [], [Entity("B", 0, 1)], [Entity("A", 0, 1)], [Entity("B", 1, 2)]]
    counts = document_type_counts(docs, ["A", "B"])
    assert counts.values.tolist() == [[2, 0], [0, 0], [0, 1], [1, 0], [0, 1]]
    windows = window_counts(counts, 2)
    assert windows.index.tolist() == [0, 2, 4] and windows.values.tolist() == [[2, 0], [1, 1], [0, 1]]
    assert smooth_counts(counts, 3)["A"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 1 / 3, 0.5])
    with pytest.raises(ValueError, match="type 'C'"):
        document_type_counts([[Entity("C", 0, 1)]], ["A", "B"])


def test_stream_agreement_identical_disjoint_and_constant():
    rng = np.random.default_rng(0)
    true = pd.DataFrame(rng.integers(0, 4, size=(20, 3)), columns=["A", "B", "C"])
    per_type, per_window = stream_agreement(true, true, window=5)
    assert per_type["pearson_r"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert per_window["tv_distance"].tolist() == pytest.approx([0.0] * 4)
    assert per_window["documents"].tolist() == [5, 5, 5, 5]

    only_a = pd.DataFrame({"A": [1] * 6, "B": [0] * 6, "C": [0] * 6})
    only_b = pd.DataFrame({"A": [0] * 6, "B": [2] * 6, "C": [0] * 6})
    per_type, per_window = stream_agreement(only_a, only_b, window=4)
    assert per_window["tv_distance"].tolist() == pytest.approx([1.0, 1.0])  # disjoint type mixes
    assert per_window["documents"].tolist() == [4, 2]
    assert per_type["pearson_r"].isna().all()  # constant streams have no correlation
    assert per_type["predicted_mentions"].tolist() == [6, 0, 0] and per_type["true_mentions"].tolist() == [0, 12, 0]

    half = pd.DataFrame({"A": [1, 1], "B": [1, 0], "C": [0, 0]})
    full = pd.DataFrame({"A": [2, 0], "B": [0, 0], "C": [0, 0]})
    _, per_window = stream_agreement(half, full, window=2)
    assert per_window["tv_distance"].iloc[0] == pytest.approx(1 / 3)  # (2/3, 1/3) against (1, 0)
    with pytest.raises(ValueError):
        stream_agreement(half, full.iloc[:1], window=1)
    assert math.isnan(stream_agreement(half * 0, full, window=2)[1]["tv_distance"].iloc[0])


# -- Figure 8(b): spelling noise ----------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_tiny(tiny_corpus_dir):
    """The tiny corpus' test sentences and a misspelt copy in which some sentences changed and some did not."""
    from acmtl.data.corpora import load_corpus
    from acmtl.data.noise import HomophoneTable, perturb

    corpus = load_corpus(f"tiny={tiny_corpus_dir}")
    table = HomophoneTable.from_characters(c for s in corpus.splits["train"] for c in s.chars)
    return corpus.splits["test"], {0.05: perturb(corpus.splits["test"], table, 0.05, seed=0)}


def test_noise_scores_tag_clean_and_noisy_text_the_same_way(noisy_tiny, tiny_corpus_dir, tiny_encoder_dir,
                                                            tmp_path, monkeypatch):
    """A real run: clean (rate 0) and misspelt rows come from one path and one batch size, with measured seconds."""
    from acmtl.companion import noise_counts
    from acmtl.companion.runs import RunSpec, ensure_run, load_metrics
    from acmtl.core.train import TrainConfig

    spec = RunSpec(corpus=f"tiny={tiny_corpus_dir}", arch="bilstm_crf", size=None, encoder=str(tiny_encoder_dir),
                   train=TrainConfig(epochs=1, patience=1))
    run_dir = ensure_run(spec, progress=False, root=tmp_path)
    batch_sizes = []
    real = noise_counts.run_predictions

    def spy(run, texts, *, batch_size):
        batch_sizes.append(batch_size)
        return real(run, texts, batch_size=batch_size)

    monkeypatch.setattr(noise_counts, "run_predictions", spy)
    clean, noisy = noisy_tiny
    out = noise_counts.noise_scores(pd.DataFrame([{"run_dir": str(run_dir), "arch": "bilstm_crf", "best_epoch": 1}]),
                                clean, noisy)
    assert batch_sizes == [noise_counts.NOISE_BATCH_SIZE] * 2
    assert list(out["rate"]) == [0.0, 0.05] and (out["seconds"] > 0).all()  # measured for the clean row too
    # the clean scores are those training wrote for the same sentences (metrics.json, the same batch size)
    metrics = load_metrics(run_dir)["test"]
    assert tuple(out.loc[0, ["precision", "recall", "f1"]]) == tuple(metrics[f"entity_{m}"] for m in
                                                                     ("precision", "recall", "f1"))


def test_noise_scores_rows_and_f1_drop(noisy_tiny, monkeypatch):
    """With a tagger that knows the clean sentences only, F1 falls exactly by the entities in changed sentences."""
    from acmtl.companion import noise_counts

    clean, noisy = noisy_tiny
    gold = {s.chars: list(s.tags) for s in clean}
    monkeypatch.setattr(noise_counts, "run_predictions", lambda run, texts, *, batch_size: (
        [gold.get(tuple(t), ["O"] * len(t)) for t in texts], 2.5))
    runs = pd.DataFrame([{"run_dir": "a", "arch": "acmtl", "best_epoch": 3, "other": 1},
                         {"run_dir": "b", "arch": "bilstm_crf", "best_epoch": 7, "other": 2}])
    out = noise_counts.noise_scores(runs, clean, noisy)
    assert list(out.columns) == ["arch", "best_epoch", "rate", "realised_rate", "realised_entity_rate", "seconds",
                                 "precision", "recall", "f1", "f1_drop"]
    assert list(zip(out["arch"], out["rate"])) == [("acmtl", 0.0), ("acmtl", 0.05), ("bilstm_crf", 0.0),
                                                   ("bilstm_crf", 0.05)]
    sentences, report = noisy[0.05]
    kept = sum(len(c.entities()) for c, n in zip(clean, sentences) if c.chars == n.chars)
    recall = kept / sum(len(c.entities()) for c in clean)
    assert 0 < recall < 1  # some sentences changed, some did not
    noisy_row = out.iloc[1]
    assert out.iloc[0]["f1"] == 1.0 and noisy_row["precision"] == 1.0
    assert noisy_row["recall"] == pytest.approx(recall) and noisy_row["f1"] == pytest.approx(2 * recall / (1 + recall))
    assert noisy_row["f1_drop"] == pytest.approx(1 - noisy_row["f1"]) and out.iloc[0]["f1_drop"] == 0.0
    assert noisy_row["realised_rate"] == report.realised_rate and (out["seconds"] == 2.5).all()
