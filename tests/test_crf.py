"""The batched, constrained Viterbi against brute force, and against pytorch-crf's own decoder."""

import itertools

import pytest
import torch

from acmtl.core.crf import ConstrainedCRF, bioes_allowed

TAGS = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def brute_force(crf: ConstrainedCRF, emissions: torch.Tensor, length: int, constrained: bool) -> list[int]:
    start, trans, end = bioes_allowed(TAGS)
    best, best_path = -float("inf"), None
    for path in itertools.product(range(len(TAGS)), repeat=length):
        if constrained and not (start[path[0]] and end[path[-1]]
                                and all(trans[a, b] for a, b in zip(path, path[1:]))):
            continue
        s = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
        s = s + sum(emissions[i, t] for i, t in enumerate(path))
        s = s + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))
        if s > best:
            best, best_path = s, list(path)
    return best_path


@pytest.mark.parametrize("constrained", [False, True])
def test_viterbi_matches_brute_force(constrained):
    torch.manual_seed(0)
    crf = ConstrainedCRF(TAGS, constrain=constrained)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 2.0)
    lengths = [4, 1, 3, 2]
    emissions = torch.randn(len(lengths), 4, len(TAGS)) * 2
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    decoded = crf.viterbi(emissions, mask)
    for b, n in enumerate(lengths):
        assert decoded[b] == brute_force(crf, emissions[b], n, constrained)


def test_unconstrained_viterbi_equals_pytorch_crf_decode():
    torch.manual_seed(1)
    crf = ConstrainedCRF(TAGS, constrain=False)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 1.0)
    emissions = torch.randn(8, 12, len(TAGS))
    lengths = torch.tensor([12, 5, 1, 7, 12, 3, 9, 2])
    mask = torch.arange(12)[None, :] < lengths[:, None]
    assert crf.viterbi(emissions, mask) == crf.decode(emissions, mask)


def test_constrained_paths_are_valid_bioes():
    torch.manual_seed(2)
    crf = ConstrainedCRF(TAGS)
    emissions = torch.randn(16, 20, len(TAGS)) * 5  # noisy scores that favour broken sequences
    mask = torch.ones(16, 20, dtype=torch.bool)
    start, trans, end = bioes_allowed(TAGS)
    for path in crf.viterbi(emissions, mask):
        assert start[path[0]] and end[path[-1]]
        assert all(trans[a, b] for a, b in zip(path, path[1:]))


def test_bioes_rules():
    start, trans, end = bioes_allowed(TAGS)
    i = TAGS.index
    assert not start[i("I-PER")] and not start[i("E-PER")] and start[i("S-PER")]
    assert trans[i("B-PER"), i("E-PER")] and not trans[i("B-PER"), i("E-LOC")]
    assert not trans[i("O"), i("I-PER")] and trans[i("E-PER"), i("B-LOC")]
    assert not end[i("B-LOC")] and end[i("E-LOC")]
