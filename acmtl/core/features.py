"""From sentences to padded tensors: ids per character, pinyin features, tags, length buckets.

Everything a batch needs is computed once per sentence (:func:`encode`), so an epoch only
pads and stacks. Batches are built from sentences of similar length, so little compute is
spent on padding: training shuffles, then sorts within buckets of ``bucket_batches`` batches;
inference (``acmtl.core.predict``) sorts everything by length and restores the original order afterwards.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from acmtl.core.encoders import CharTokenizer
from acmtl.data.conll import Sentence
from acmtl.data.pinyin import pinyin_features


@dataclass(frozen=True)
class Encoded:
    """One sentence as ids: characters, pinyin syllables, tones and (when known) tags."""

    char_ids: list[int]
    syllable_ids: list[int]
    tone_ids: list[int]
    tag_ids: list[int] | None = None

    def __len__(self) -> int:
        return len(self.char_ids)

    def window(self, start: int, end: int) -> Encoded:
        tags = None if self.tag_ids is None else self.tag_ids[start:end]
        return Encoded(self.char_ids[start:end], self.syllable_ids[start:end], self.tone_ids[start:end], tags)


@dataclass
class Batch:
    char_ids: torch.Tensor  # [B, T] long
    syllable_ids: torch.Tensor  # [B, T] long
    tone_ids: torch.Tensor  # [B, T] long
    mask: torch.Tensor  # [B, T] bool, True on real characters
    tag_ids: torch.Tensor | None  # [B, T] long, or None at inference
    index: list[int]  # position of each row in the list the batch was cut from

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        return self.char_ids, self.syllable_ids, self.tone_ids, self.mask

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)
        return Batch(*(move(t) for t in (self.char_ids, self.syllable_ids, self.tone_ids, self.mask, self.tag_ids)),
                     self.index)


def encode(chars: Sequence[str], tokenizer: CharTokenizer, tag_ids: list[int] | None = None) -> Encoded:
    syllables, tones = pinyin_features(chars)
    return Encoded(tokenizer.encode(chars), syllables, tones, tag_ids)


def encode_sentences(sentences: Sequence[Sentence], tokenizer: CharTokenizer, tags: list[str]) -> list[Encoded]:
    """Encode labelled sentences; a tag the model does not know is an error, not a silent O."""
    tag_index = {t: i for i, t in enumerate(tags)}
    encoded = []
    for n, sentence in enumerate(sentences):
        try:
            tag_ids = [tag_index[t] for t in sentence.tags]
        except KeyError as err:
            raise ValueError(f"sentence {n} ({sentence.text[:30]!r}) has tag {err.args[0]!r}, "
                             f"which is not among the model's tags {tags}") from None
        encoded.append(encode(sentence.chars, tokenizer, tag_ids))
    return encoded


def collate(items: Sequence[Encoded], index: list[int]) -> Batch:
    length = max(len(item) for item in items)

    def pad(rows: list[list[int]]) -> torch.Tensor:
        out = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, item in enumerate(items):
        mask[i, : len(item)] = True
    tags = None if items[0].tag_ids is None else pad([item.tag_ids for item in items])
    return Batch(pad([i.char_ids for i in items]), pad([i.syllable_ids for i in items]),
                 pad([i.tone_ids for i in items]), mask, tags, index)


def training_batches(items: Sequence[Encoded], batch_size: int, seed: int, bucket_batches: int = 20) -> list[Batch]:
    """Shuffled batches of similar-length sentences; the order depends only on ``seed``."""
    rng = random.Random(seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    batches = []
    span = batch_size * bucket_batches
    for start in range(0, len(order), span):
        bucket = sorted(order[start : start + span], key=lambda i: len(items[i]))
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    rng.shuffle(batches)
    return [collate([items[i] for i in b], b) for b in batches]
