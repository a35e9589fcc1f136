"""Long texts are tagged in overlapping windows; no entity is lost or broken at a seam."""

import random
from types import SimpleNamespace

import pytest
import torch

from acmtl.core.features import Encoded
from acmtl.core.predict import _windows, tag_encoded

TAGS = ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
BEI, JING, DA, XUE = 11, 12, 13, 14  # "北京大学"-like ids: an entity is B I I E when all four are in view


class RuleTagger(torch.nn.Module):
    """Tags the id pattern 11 12 13 14 as one LOC entity, but only when the whole pattern is in the window."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.cfg = SimpleNamespace(tags=TAGS)
        self.windows_seen = []

    def decode(self, char_ids, syllable_ids, tone_ids, mask):
        paths = []
        for row, m in zip(char_ids.tolist(), mask.tolist()):
            n = sum(m)
            self.windows_seen.append(n)
            path = [0] * n
            for i in range(n - 3):
                if row[i : i + 4] == [BEI, JING, DA, XUE]:
                    path[i : i + 4] = [1, 2, 2, 3]
            paths.append(path)
        return paths


def make_item(ids):
    return Encoded(ids, [0] * len(ids), [0] * len(ids))


def test_window_offsets_cover_the_text():
    for n in (1, 510, 511, 1000, 10_000):
        starts = _windows(n, 510, 128)
        assert starts[0] == 0 and starts[-1] + min(n, 510) == n
        assert all(b - a <= 510 - 128 for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("seed", range(3))
def test_entities_near_seams_are_found(seed):
    rng = random.Random(seed)
    n = 10_000
    ids = [rng.choice([1, 2, 3]) for _ in range(n)]
    starts = _windows(n, 510, 128)
    # place an entity across or right next to every window edge
    positions = sorted({max(0, min(n - 4, s + d)) for s in starts[1:] for d in (-3, -2, -1, 0, 1)}
                       | {max(0, min(n - 4, s + 510 + d)) for s in starts for d in (-3, -2, -1, 0)})
    placed = []
    for p in positions:
        if all(abs(p - q) >= 5 for q in placed):
            ids[p : p + 4] = [BEI, JING, DA, XUE]
            placed.append(p)
    model = RuleTagger()
    (path,) = tag_encoded(model, [make_item(ids)], max_len=510, overlap=128)
    assert len(path) == n
    found = [i for i in range(n) if path[i] == 1]
    assert found == placed
    for p in placed:
        assert path[p : p + 4] == [1, 2, 2, 3]
    assert max(model.windows_seen) <= 510


def test_empty_items_give_empty_paths():
    model = RuleTagger()
    assert tag_encoded(model, [make_item([]), make_item([BEI, JING, DA, XUE]), make_item([])]) == [[], [1, 2, 2, 3], []]
