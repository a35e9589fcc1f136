"""One comparison of two models over seeds and test sentences, used by every verdict of the companion.

The seed is the unit of replication. Runs of two models with the same seed share their training subset and are
scored on the same test sentences, so seed ``k`` gives one paired difference ``d_k = F1(a, k) - F1(b, k)``. The
mean over ``K`` seeds is uncertain for two reasons:

* training randomness: the ``d_k`` scatter from seed to seed (their sample variance ``s²``, which also holds the
  part of the test-sentence noise that differs between seeds);
* test-sentence sampling that every seed shares: the same sentences are easy or hard for every seed's pair, so
  this part does not average out over seeds. Its size is the covariance between two seeds' sentence errors,
  ``C = (K · V(d̄) - mean_k V(d_k)) / (K - 1)``, where ``V`` is a variance over resamples of the test sentences,
  computed without resampling by the delta method (linearising F1 = 2·TP / (predicted + gold) in each sentence's
  counts, which is what a paired bootstrap over sentences estimates, without its Monte-Carlo noise).

The interval is ``d̄ ± t(K - 1) · sqrt(s² / K + C)``: Student's t interval over the seeds, its variance widened by
the sentence variance the seeds share. ``K - 1`` degrees of freedom whatever the sentences' share, which errs wide
where that share is large; with three seeds the interval is wide (``t(2) = 4.30``): three seeds cannot say more.
Seeds and test-set sampling as the two sources of a benchmark's variance follow Bouthillier et al., "Accounting for
Variance in Machine Learning Benchmarks" (MLSys 2021). ``tests/test_stats.py`` checks the coverage by simulation
(93-99 % at 3 and 5 seeds, whether the test sentences' luck is shared by both models or favours one), and that the
percentile bootstrap over seeds and sentences it replaces (:func:`acmtl.core.evaluate.seed_paired_bootstrap`,
about a sign test with 3 seeds) covers too little.

A comparison with fewer than :data:`MIN_SEEDS` seeds is described, never judged (:func:`side` says so).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

MIN_SEEDS = 3  # fewer paired seeds give no verdict: "too few seeds to judge"
LEVEL = 0.95
METRICS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class SeedComparison:
    """The mean paired contrast over seeds with its interval (fractions: 0.01 is one F1 point)."""

    diff: float
    low: float
    high: float
    seeds: int
    per_seed: tuple[float, ...]
    seed_sd: float  # the per-seed contrasts' standard deviation (NaN for one seed)
    sentence_se: float  # the part of the standard error that the shared test sentences add
    dof: float  # of the t quantile: seeds - 1 (infinite for one seed, whose interval is the sentences' alone)

    @property
    def enough_seeds(self) -> bool:
        return self.seeds >= MIN_SEEDS

    def side(self) -> int | None:
        """+1 when the interval lies above 0, -1 below, 0 when it includes 0; None with too few seeds to judge."""
        if not self.enough_seeds:
            return None
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def text(self, scale: float = 100.0) -> str:
        """'-4.14 [-6.97, -1.31], 5 seeds' (points), or the per-seed values where there are too few seeds."""
        if not self.enough_seeds:
            values = ", ".join(f"{scale * d:+.2f}" for d in self.per_seed)
            plural = "s" if self.seeds != 1 else ""
            return f"{scale * self.diff:+.2f} ({self.seeds} seed{plural}: {values}; too few to judge)"
        return f"{scale * self.diff:+.2f} [{scale * self.low:+.2f}, {scale * self.high:+.2f}], {self.seeds} seeds"


def _ratio_and_influence(counts: np.ndarray, metric: str) -> tuple[float, np.ndarray]:
    """A micro metric of per-sentence (tp, predicted, gold) counts [n, 3], and each sentence's influence on it:
    the metric is num / den summed over sentences, so its first-order change when the sentence set is resampled
    is sum_i (num_i - metric · den_i) / den (the delta method)."""
    tp, predicted, gold = (counts[:, k].astype(float) for k in range(3))
    num, den = {"f1": (2 * tp, predicted + gold), "precision": (tp, predicted), "recall": (tp, gold)}[metric]
    total = den.sum()
    if total == 0:
        return 0.0, np.zeros(len(counts))
    value = num.sum() / total
    return float(value), (num - value * den) / total


def compare_seeds(terms: Sequence[tuple[float, Sequence[np.ndarray]]], *, metric: str = "f1",
                  level: float = LEVEL) -> SeedComparison:
    """The mean over seeds of a contrast ``sum_j w_j · metric(counts_j[k])`` with its seed-aware interval.

    ``terms``: (weight w_j, per-seed counts [one [n, 3] array per seed, seed k of every term trained with the same
    seed]); every array holds the same n test sentences in the same order. ``[(1, a), (-1, b)]`` is a - b; a
    difference of differences (F1 lost to noise by a minus that lost by b) has four terms."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    seeds = {len(per_seed) for _, per_seed in terms}
    if len(seeds) != 1 or 0 in seeds:
        raise ValueError(f"every term needs the same number (> 0) of seeds, got {sorted(seeds)}")
    sentences = {len(c) for _, per_seed in terms for c in per_seed}
    if len(sentences) != 1:
        raise ValueError(f"paired runs must be scored on the same sentences, got {sorted(sentences)} sentences")
    k = seeds.pop()
    contrast, influence = np.zeros(k), np.zeros((k, sentences.pop()))
    for weight, per_seed in terms:
        for s, counts in enumerate(per_seed):
            value, psi = _ratio_and_influence(np.asarray(counts), metric)
            contrast[s] += weight * value
            influence[s] += weight * psi
    mean = float(contrast.mean())
    var_each = (influence ** 2).sum(axis=1)  # each seed's contrast under resampled sentences
    var_mean = float((influence.mean(axis=0) ** 2).sum())  # the mean's: the seeds share the sentences
    if k == 1:
        seed_var, shared = math.nan, var_mean
        between, dof = 0.0, math.inf
    else:
        seed_var = float(contrast.var(ddof=1))
        shared = max(0.0, (k * var_mean - float(var_each.mean())) / (k - 1))
        between, dof = seed_var / k, k - 1.0
    se = math.sqrt(between + shared)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, dof)) * se if se > 0 else 0.0
    return SeedComparison(diff=mean, low=mean - half, high=mean + half, seeds=k,
                          per_seed=tuple(float(c) for c in contrast), seed_sd=math.sqrt(seed_var),
                          sentence_se=math.sqrt(shared), dof=dof)


def compare(counts_a: Sequence[np.ndarray], counts_b: Sequence[np.ndarray], *, metric: str = "f1",
            level: float = LEVEL) -> SeedComparison:
    """metric(a) - metric(b), mean over seeds, with the seed-aware interval (:func:`compare_seeds`); ``counts_a[k]``
    and ``counts_b[k]`` come from runs with the same seed, scored on the same test sentences."""
    return compare_seeds([(1.0, counts_a), (-1.0, counts_b)], metric=metric, level=level)


def compare_runs(runs: pd.DataFrame, a: str, b: str, counts: Callable[[object, str], np.ndarray], *,
                 split: str = "full_test", metric: str = "f1") -> SeedComparison | None:
    """:func:`compare` of architecture ``a`` against ``b`` on ``split`` over the seeds both have in ``runs`` (rows
    with ``arch`` and ``seed``; one run per architecture and seed), their per-sentence counts read by
    ``counts(row, split)``; None where they share no seed."""
    by_seed = {arch: {r.seed: r for r in group.itertuples()} for arch, group in runs.groupby("arch")}
    seeds = sorted(set(by_seed.get(a, {})) & set(by_seed.get(b, {})))
    if not seeds:
        return None
    return compare([counts(by_seed[a][s], split) for s in seeds], [counts(by_seed[b][s], split) for s in seeds],
                   metric=metric)
