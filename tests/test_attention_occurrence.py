"""Notebook 04's ``occurrence`` parameter: which occurrence of a word Figure 7 scores (issue 32)."""

from __future__ import annotations

import pytest
import torch

from acmtl.companion.analysis import attention_scores
from acmtl.core.checkpoint import build_model
from acmtl.core.model import ModelConfig
from acmtl.core.train import tag_names


@pytest.fixture(scope="module")
def mhsa_model(tiny_encoder_dir):
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("bert_mhsa", tag_names(["LOC"]), encoder=str(tiny_encoder_dir))
    return build_model(cfg)


def test_a_sentence_with_fewer_occurrences_is_scored_at_its_last(mhsa_model):
    model, tokenizer = mhsa_model
    texts = ["北京人在北京", "他是北京人"]  # the word twice, then once
    second = attention_scores(model, tokenizer, texts, "北京", occurrence=1)
    assert second[0] != attention_scores(model, tokenizer, texts[:1], "北京")[0]  # the second occurrence, scored
    assert second[1] == pytest.approx(attention_scores(model, tokenizer, texts[1:], "北京")[0])  # its only one
    with pytest.raises(ValueError, match="occurrence counts from 0"):
        attention_scores(model, tokenizer, texts, "北京", occurrence=-1)
