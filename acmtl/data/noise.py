"""Spelling noise for the robustness test (Figure 8b): homophone and near-homophone substitutions.

The paper tests on a "spelling-perturbed" set without describing it. Ours imitates the commonest
Chinese typing error, picking the wrong character for the right pinyin in an input method:

* each Chinese character of a sentence is replaced with probability ``rate`` (seeded);
* its reading is the one it has *in context* (``acmtl.data.pinyin.pinyin_strings``: 行 in 银行 is hang2);
* the replacement is drawn uniformly from a :class:`HomophoneTable`: characters whose most common
  reading (pypinyin's dictionary) is the same syllable and tone (homophone, 京 jing1 -> 经/惊/精) or,
  with probability ``near_homophone_prob``, the same syllable in another tone (near-homophone,
  京 jing1 -> 景/静); when one pool is empty the other is used, and a character with neither stays;
* characters without pinyin (digits, Latin, punctuation) are never touched.

The table is built from a given set of characters (e.g. the training text the encoder knows), so
replacements are ordinary characters, not rare ones that would become [UNK]. Lengths and tags are
kept: a misspelt 北京 is still a location. Apply it to evaluation data only; the report gives the
realised rate (replaced / Chinese characters), overall and inside entities; it falls short of
``rate`` by the characters drawn that have no candidate in the table.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from acmtl.data.conll import Sentence
from acmtl.data.pinyin import pinyin_strings

TONES = "12345"  # TONE3 readings: 1-4 and 5 for the neutral tone


def _syllable_tone(reading: str) -> tuple[str, str]:
    return (reading[:-1], reading[-1]) if reading and reading[-1] in TONES else (reading, "")


@dataclass(frozen=True)
class HomophoneTable:
    """TONE3 reading (``"jing1"``) -> the characters whose most common reading it is, sorted."""

    by_reading: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_characters(cls, chars: Iterable[str], min_count: int = 1) -> HomophoneTable:
        """From the characters of a text (repeats allowed); those seen fewer than ``min_count`` times are left out."""
        table: dict[str, list[str]] = {}
        for char, count in sorted(Counter(chars).items()):
            if len(char) != 1 or count < min_count:
                continue
            reading = pinyin_strings([char])[0]
            if reading:
                table.setdefault(reading, []).append(char)
        return cls({reading: tuple(members) for reading, members in sorted(table.items())})

    def homophones(self, char: str, reading: str) -> tuple[str, ...]:
        """Other characters with exactly this reading (syllable and tone)."""
        return tuple(c for c in self.by_reading.get(reading, ()) if c != char)

    def near_homophones(self, char: str, reading: str) -> tuple[str, ...]:
        """Other characters with this reading's syllable in another tone."""
        syllable, tone = _syllable_tone(reading)
        if not tone:
            return ()
        return tuple(c for t in TONES if t != tone for c in self.by_reading.get(syllable + t, ()) if c != char)

    def __len__(self) -> int:
        return sum(len(members) for members in self.by_reading.values())


@dataclass(frozen=True)
class NoiseReport:
    """What :func:`perturb` did; ``realised_rate`` is the number to quote beside the requested ``rate``."""

    rate: float
    seed: int
    near_homophone_prob: float
    sentences: int
    characters: int
    chinese_characters: int  # characters with a pinyin reading: the ones that may be replaced
    selected_without_candidate: int  # drawn for replacement, but the table has no candidate: left as it was
    replaced: int
    replaced_near: int  # of ``replaced``: by a near-homophone
    entity_chinese_characters: int
    entity_replaced: int

    @property
    def realised_rate(self) -> float:
        return self.replaced / self.chinese_characters if self.chinese_characters else 0.0

    @property
    def realised_entity_rate(self) -> float:
        return self.entity_replaced / self.entity_chinese_characters if self.entity_chinese_characters else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "realised_rate": self.realised_rate, "realised_entity_rate": self.realised_entity_rate}


def perturb(sentences: Sequence[Sentence], table: HomophoneTable, rate: float, *, seed: int = 0,
            near_homophone_prob: float = 0.3) -> tuple[list[Sentence], NoiseReport]:
    """Misspelt copies of ``sentences`` (same lengths, same tags) and a report; the same seed gives the same copies."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if not 0.0 <= near_homophone_prob <= 1.0:
        raise ValueError(f"near_homophone_prob must be in [0, 1], got {near_homophone_prob}")
    rng = random.Random(seed)
    out: list[Sentence] = []
    chinese = without = replaced = near_used = entity_chinese = entity_replaced = 0
    for sentence in sentences:
        chars = list(sentence.chars)
        for i, reading in enumerate(pinyin_strings(sentence.chars)):
            if not reading:
                continue
            chinese += 1
            in_entity = sentence.tags[i] != "O"
            entity_chinese += in_entity
            if rng.random() >= rate:
                continue
            same = table.homophones(chars[i], reading)
            near = table.near_homophones(chars[i], reading)
            use_near = bool(near) and (not same or rng.random() < near_homophone_prob)
            pool = near if use_near else same
            if not pool:
                without += 1
                continue
            chars[i] = rng.choice(pool)
            replaced += 1
            near_used += use_near
            entity_replaced += in_entity
        out.append(Sentence(tuple(chars), sentence.tags))
    report = NoiseReport(rate, seed, near_homophone_prob, len(sentences), sum(len(s.chars) for s in sentences),
                         chinese, without, replaced, near_used, entity_chinese, entity_replaced)
    return out, report
