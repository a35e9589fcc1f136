"""Does AC-MTL beat its own encoder+CRF baseline? One verdict per corpus and size, decided by a CI.

Runs of the two models with the same seed share their training subset, so each seed gives a paired
difference on the same test sentences (:func:`acmtl.core.evaluate.paired_bootstrap`). The verdict uses
the mean over seeds with an interval that resamples seeds and test sentences together
(:func:`acmtl.core.evaluate.seed_paired_bootstrap`): "beats" when the whole 95 % interval is above zero,
"loses" when it is below, "ties" when it contains zero.
"""

from __future__ import annotations

import pandas as pd

from acmtl.companion.experiments import corpus_label
from acmtl.companion.records import load_counts
from acmtl.core.evaluate import paired_bootstrap, seed_paired_bootstrap

MODEL_NAMES = {"acmtl": "AC-MTL", "encoder_crf": "encoder+CRF"}
COLUMNS = ("corpus", "corpus_label", "size", "a", "b", "split", "seeds", "f1_a_mean", "f1_b_mean", "diff", "ci_low",
           "ci_high", "diff_per_seed", "verdict")


def head_to_head(runs: pd.DataFrame, a: str = "acmtl", b: str = "encoder_crf", *, split: str = "full_test",
                 n_resamples: int = 1000) -> pd.DataFrame:
    """One row per (corpus, size) where both ``a`` and ``b`` have runs with the same seeds (``runs``: rows of
    :func:`experiments.train_grid`, whose records hold each run's per-sentence counts on ``split``): mean F1
    of each, the mean paired difference with its interval,
    the per-seed differences with theirs, and the verdict."""
    rows = []
    for (corpus, size), group in runs.groupby(["corpus", "size"], sort=False):
        by_seed = {arch: {r.seed: r for r in g.itertuples()} for arch, g in group.groupby("arch")}
        seeds = sorted(set(by_seed.get(a, {})) & set(by_seed.get(b, {})))
        if not seeds:
            continue
        counts = {arch: [load_counts(by_seed[arch][s].record, split) for s in seeds] for arch in (a, b)}
        per_seed = [paired_bootstrap(ca, cb, n_resamples=n_resamples, seed=s)
                    for s, ca, cb in zip(seeds, counts[a], counts[b])]
        pooled = seed_paired_bootstrap(counts[a], counts[b], n_resamples=n_resamples)
        rows.append({
            "corpus": corpus, "corpus_label": corpus_label(corpus), "size": int(size), "a": a, "b": b,
            "split": split, "seeds": len(seeds),
            "f1_a_mean": sum(getattr(by_seed[a][s], f"{split}_f1") for s in seeds) / len(seeds),
            "f1_b_mean": sum(getattr(by_seed[b][s], f"{split}_f1") for s in seeds) / len(seeds),
            "diff": pooled["diff"], "ci_low": pooled["low"], "ci_high": pooled["high"],
            "diff_per_seed": "; ".join(
                f"seed {s}: {100 * p['diff']:+.2f} [{100 * p['low']:+.2f}, {100 * p['high']:+.2f}]"
                for s, p in zip(seeds, per_seed)),
            "verdict": verdict(pooled["low"], pooled["high"]),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def verdict(low: float, high: float) -> str:
    """"beats" / "loses" when the interval of a - b lies wholly above / below zero, else "ties"."""
    return "beats" if low > 0 else "loses" if high < 0 else "ties"


def verdict_sentence(row) -> str:
    """One README sentence for a :func:`head_to_head` row, every number taken from it."""
    a, b = MODEL_NAMES.get(row.a, row.a), MODEL_NAMES.get(row.b, row.b)
    gap = {"beats": f"beats {b} by {100 * row.diff:.2f} F1 points",
           "loses": f"loses to {b} by {-100 * row.diff:.2f} F1 points",
           "ties": f"ties with {b} (difference {100 * row.diff:+.2f} F1 points, the interval includes 0)"}[row.verdict]
    return (f"{row.corpus_label}, {row.size:,} training sentences: {a} {gap} on the full test set "
            f"(95 % CI [{100 * row.ci_low:+.2f}, {100 * row.ci_high:+.2f}], {row.seeds} seed"
            f"{'s' if row.seeds != 1 else ''}; {a} {100 * row.f1_a_mean:.2f}, {b} {100 * row.f1_b_mean:.2f}).")
