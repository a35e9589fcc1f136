"""Entity-level NER evaluation (seqeval, strict IOBES), seed summaries and bootstrap intervals.

Entity-level strict micro F1 is the metric the Chinese NER literature reports; token accuracy is
kept only as a labelled side number because it is inflated by the many "O" tags.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOBES, Entities
from tqdm.std import tqdm

_TAG = re.compile(r"O|[BIES]-\S+")
_FIELDS = ("precision", "recall", "f1", "support")


@dataclass(frozen=True)
class Scores:
    """Entity-level strict micro scores, per-type scores and (separately) token accuracy."""

    precision: float
    recall: float
    f1: float
    support: int
    per_type: dict[str, dict[str, float]]
    token_accuracy: float

    def to_dict(self) -> dict:
        """Flat JSON-able dict; every key says whether it is entity-level or token-level."""
        out: dict = {f"entity_{k}": getattr(self, k) for k in _FIELDS}
        out["token_accuracy"] = self.token_accuracy
        for name in sorted(self.per_type):
            for k in _FIELDS:
                out[f"entity_{k}.{name}"] = self.per_type[name][k]
        return out


def _validate(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences, pred has {len(pred)}")
    if not gold:
        raise ValueError("nothing to score: no sentences")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags, pred has {len(p)}")
        for side, tags in (("gold", g), ("pred", p)):
            for j, tag in enumerate(tags):
                if not isinstance(tag, str) or not _TAG.fullmatch(tag):
                    raise ValueError(f"sentence {i}, position {j}: {side} tag {tag!r} is not BIOES")


def entity_sets(seqs: Sequence[Sequence[str]]) -> list[set[tuple[str, int, int]]]:
    """Per-sentence sets of (type, start, end) spans, extracted exactly as seqeval strict IOBES does."""
    per_sentence = Entities([list(s) for s in seqs], IOBES).entities
    return [{(e.tag, e.start, e.end) for e in ents} for ents in per_sentence]


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """(n_sentences, 3) int array of per-sentence (true positives, predicted, gold) entity counts."""
    _validate(gold, pred)
    return np.array(
        [(len(g & p), len(p), len(g)) for g, p in zip(entity_sets(gold), entity_sets(pred))],
        dtype=np.int64,
    ).reshape(-1, 3)


def score(gold: list[list[str]], pred: list[list[str]]) -> Scores:
    """Strict IOBES entity-level micro P/R/F1 plus per-type scores (seqeval, zero_division=0)."""
    _validate(gold, pred)
    token_accuracy = float(accuracy_score(gold, pred))
    if not any(entity_sets(gold)) and not any(entity_sets(pred)):
        # seqeval's macro average warns on an empty type list; every micro score is 0 here anyway.
        return Scores(0.0, 0.0, 0.0, 0, {}, token_accuracy)
    report = classification_report(
        gold, pred, mode="strict", scheme=IOBES, zero_division=0, output_dict=True
    )

    def row(d: dict) -> dict[str, float]:
        return {"precision": float(d["precision"]), "recall": float(d["recall"]),
                "f1": float(d["f1-score"]), "support": int(d["support"])}

    micro = row(report["micro avg"])
    per_type = {k: row(v) for k, v in report.items() if not k.endswith(" avg")}
    return Scores(micro["precision"], micro["recall"], micro["f1"], int(micro["support"]),
                  per_type, token_accuracy)


def _resample(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Indices of ``n_resamples`` bootstrap resamples of ``n`` sentences, [n_resamples, n]."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _resampled_f1(counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Micro F1 of each resample from per-sentence (tp, predicted, gold) counts -> [n_resamples]."""
    tp, n_pred, n_gold = (counts[:, k][idx].sum(axis=1) for k in range(3))
    denom = n_pred + n_gold
    return np.divide(2.0 * tp, denom, out=np.zeros(len(idx)), where=denom > 0)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    _check_level(level)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    gold: list[list[str]],
    pred: list[list[str]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap interval of entity-level micro F1, resampling test sentences.

    Entities are extracted once; each resample only sums per-sentence counts, so 1000
    resamples of a full test set take well under a second. ``progress`` shows a bar (on a
    terminal, for runs that take over a second); the resamples are the same either way.
    """
    _check_level(level)  # a bad level fails before any work
    counts = sentence_counts(gold, pred)
    idx = _resample(len(counts), n_resamples, seed)
    chunks = tqdm(range(0, n_resamples, 100), desc="bootstrap, 100 resamples a step",
                  disable=None if progress else True, delay=1)
    return _interval(np.concatenate([_resampled_f1(counts, idx[i : i + 100]) for i in chunks]), level)


def counts_f1(counts: np.ndarray) -> float:
    """Micro F1 from per-sentence (tp, predicted, gold) counts (:func:`sentence_counts`): seqeval's, to rounding."""
    return float(_resampled_f1(counts, np.arange(len(counts))[None, :])[0])


def paired_bootstrap(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """F1(a) - F1(b) on the same test sentences, from each model's :func:`sentence_counts` on them, with a paired
    percentile interval: every resample draws one set of sentences and scores both models on it, so sentence
    difficulty cancels out. Returns {"diff", "low", "high"} as fractions."""
    return seed_paired_bootstrap([counts_a], [counts_b], n_resamples=n_resamples, seed=seed, level=level)


def seed_paired_bootstrap(
    counts_a: Sequence[np.ndarray],
    counts_b: Sequence[np.ndarray],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean over seeds of F1(a) - F1(b), where ``counts_a[k]`` and ``counts_b[k]`` (:func:`sentence_counts`) come
    from runs with the same seed (same training subset), scored on the same test sentences.

    The interval resamples both sources of doubt: each resample draws the seeds with replacement (training
    randomness) and one set of test sentences shared by every seed (test sampling), then averages the
    drawn seeds' paired differences. With one seed it is :func:`paired_bootstrap`'s interval.
    Returns {"diff", "low", "high"} as fractions."""
    _check_level(level)
    if not counts_a or len(counts_a) != len(counts_b):
        raise ValueError(f"need the same number (> 0) of runs per model, got {len(counts_a)} and {len(counts_b)}")
    sentences = {len(c) for c in (*counts_a, *counts_b)}
    if len(sentences) != 1:
        raise ValueError(f"paired runs must be scored on the same sentences, got {sorted(sentences)} sentences")
    idx = _resample(sentences.pop(), n_resamples, seed)
    per_seed = np.stack([_resampled_f1(a, idx) - _resampled_f1(b, idx)
                         for a, b in zip(counts_a, counts_b)])  # [seeds, n_resamples]
    seeds = len(counts_a)
    picks = np.random.default_rng([seed, 1]).integers(0, seeds, size=(n_resamples, seeds))
    low, high = _interval(per_seed[picks, np.arange(n_resamples)[:, None]].mean(axis=1), level)
    diff = np.mean([counts_f1(a) - counts_f1(b) for a, b in zip(counts_a, counts_b)])
    return {"diff": float(diff), "low": low, "high": high}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); std is 0.0 for a single value."""
    if len(values) == 0:
        raise ValueError("mean_std of no values")
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def summarize_seeds(rows: list[dict], keys: Sequence[str] = ("precision", "recall", "f1")) -> dict:
    """{key: {"mean", "std", "n"}} over per-seed result rows."""
    out = {}
    for key in keys:
        missing = [i for i, r in enumerate(rows) if key not in r]
        if missing:
            raise KeyError(f"rows {missing} have no key {key!r}")
        mean, std = mean_std([r[key] for r in rows])
        out[key] = {"mean": mean, "std": std, "n": len(rows)}
    return out


def format_mean_std(mean: float, std: float | None, *, percent: bool = True) -> str:
    """'91.23 ± 0.45' (fractions scaled to percent when percent=True); the mean alone when std is None
    (one seed has no spread to show, and '± 0.00' would claim one)."""
    scale = 100.0 if percent else 1.0
    return f"{mean * scale:.2f}" if std is None else f"{mean * scale:.2f} ± {std * scale:.2f}"


def is_missing(value) -> bool:
    """True for None and NaN: the cells a table shows as a dash."""
    return value is None or (isinstance(value, float) and math.isnan(value))
