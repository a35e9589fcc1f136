"""Tag raw text with a trained model, including texts longer than the encoder's 512 positions.

A text longer than ``max_len`` characters is cut into overlapping windows. Each window is
decoded on its own; consecutive windows are joined at a point inside their overlap where the
left window has just closed an entity (or is outside one) and the right window starts a new
one (or is outside one), chosen as close to the middle of the overlap as possible. An entity
shorter than the overlap is therefore always seen whole by one window and never cut at a seam.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from acmtl.checkpoint import load_pretrained
from acmtl.data.conll import tags_to_entities
from acmtl.encoders import CharTokenizer
from acmtl.features import Encoded, encode, inference_batches
from acmtl.model import ACMTL

MAX_LEN = 510  # 512 encoder positions minus [CLS] and [SEP]
OVERLAP = 128


def _windows(length: int, max_len: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``max_len`` covering ``length`` characters with ``overlap``."""
    if length <= max_len:
        return [0]
    step = max_len - overlap
    starts = list(range(0, length - max_len, step))
    return starts + [length - max_len]


def _stitch(pieces: list[tuple[int, list[int]]], tags: list[str]) -> list[int]:
    closes = [t[0] in "OES" for t in tags]  # an entity may end after this tag
    opens = [t[0] in "OBS" for t in tags]  # an entity may start at this tag
    result = pieces[0][1]
    for start, window in pieces[1:]:
        end = len(result)  # the left part covers [0, end); this window covers [start, start + len)
        middle = (start + end) / 2
        cuts = [p for p in range(start + 1, end + 1) if closes[result[p - 1]] and opens[window[p - start]]]
        cut = min(cuts, key=lambda p: abs(p - middle)) if cuts else int(middle)
        result = result[:cut] + window[cut - start :]
    return result


@torch.inference_mode()
def tag_encoded(model: ACMTL, items: Sequence[Encoded], *, batch_size: int = 32,
                max_len: int = MAX_LEN, overlap: int = OVERLAP) -> list[list[int]]:
    """Best tag ids for each item (empty items give empty lists); long items are windowed."""
    device = next(model.parameters()).device
    windows, owner = [], []
    for i, item in enumerate(items):
        if len(item) == 0:
            continue
        for start in _windows(len(item), max_len, overlap):
            windows.append(item.window(start, start + max_len))
            owner.append((i, start))
    decoded: list[list[int]] = [[] for _ in windows]
    was_training = model.training
    model.eval()
    for batch in inference_batches(windows, batch_size):
        for row, path in zip(batch.index, model.decode(*batch.to(device).inputs)):
            decoded[row] = path
    model.train(was_training)
    pieces: list[list[tuple[int, list[int]]]] = [[] for _ in items]
    for (i, start), path in zip(owner, decoded):
        pieces[i].append((start, path))
    return [_stitch(p, model.cfg.tags) if p else [] for p in pieces]


class NERPredictor:
    """Raw text in, entities out: ``NERPredictor.from_pretrained(run_dir).predict(["..."])``."""

    def __init__(self, model: ACMTL, tokenizer: CharTokenizer, *, batch_size: int = 32, max_len: int = MAX_LEN):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_len = batch_size, max_len

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str = "cpu", **kwargs) -> "NERPredictor":
        """Load a run directory (``runs/<hash>/``) or any directory written by ``save_pretrained``."""
        directory = Path(directory)
        if (directory / "model").is_dir():  # a run directory keeps its best model under model/
            directory = directory / "model"
        model, tokenizer = load_pretrained(directory)
        return cls(model.to(device), tokenizer, **kwargs)

    def predict(self, texts: Sequence[str]) -> list[list[dict]]:
        """For each text, its entities as ``{"type", "start", "end", "text"}`` with ``text[start:end]``."""
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts; wrap a single text in a list")
        items = [encode(list(text), self.tokenizer) if text.strip() else encode([], self.tokenizer)
                 for text in texts]
        paths = tag_encoded(self.model, items, batch_size=self.batch_size, max_len=self.max_len)
        tags = self.model.cfg.tags
        return [
            [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start : e.end]}
             for e in tags_to_entities([tags[i] for i in path])]
            for text, path in zip(texts, paths)
        ]

