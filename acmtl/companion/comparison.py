"""Does AC-MTL beat its own encoder+CRF baseline? One verdict per corpus and size, decided by a CI.

Runs of the two models with the same seed share their training subset, so each seed gives a paired difference on
the same test sentences. The verdict uses the mean over seeds with the seed-aware interval of
:func:`acmtl.companion.stats.compare` (a t interval over seeds, widened by the test-sentence variance the seeds
share): "beats" when the whole 95 % interval is above zero, "loses" when it is below, "ties" when it contains zero,
and "too few seeds" below :data:`acmtl.companion.stats.MIN_SEEDS` paired seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from acmtl.companion.experiments import corpus_label
from acmtl.companion.records import load_counts
from acmtl.companion.stats import MIN_SEEDS, SeedComparison, compare, compare_runs

MODEL_NAMES = {"acmtl": "AC-MTL", "encoder_crf": "encoder+CRF"}
TOO_FEW = "too few seeds"
COLUMNS = ("corpus", "corpus_label", "size", "a", "b", "split", "seeds", "f1_a_mean", "f1_b_mean", "diff", "ci_low",
           "ci_high", "seed_sd", "diff_per_seed", "verdict", "trained_on")


def record_counts(run, split: str):
    """The per-sentence counts on ``split`` of a run row (``run.record``: its record's path)."""
    return load_counts(run.record, split)


def trained_on(runs: pd.DataFrame) -> str:
    """Where ``runs`` were trained, from their records: "CPU, precision" of each kind with its count of runs, so a
    comparison that mixes machines or precisions says so."""
    import json
    from collections import Counter

    kinds = Counter()
    for run in runs.itertuples():
        where = json.loads(Path(run.record).read_text(encoding="utf-8")).get("where", {})
        kinds[f"{where.get('cpu') or where.get('device') or 'unknown'}, {where.get('precision') or '?'}"] += 1
    text = "; ".join(f"{kind} ({n} runs)" for kind, n in kinds.most_common())
    return f"mixed: {text}" if len(kinds) > 1 else text


def head_to_head(runs: pd.DataFrame, a: str = "acmtl", b: str = "encoder_crf", *,
                 split: str = "full_test") -> pd.DataFrame:
    """One row per (corpus, size) where both ``a`` and ``b`` have runs with the same seeds (``runs``: rows of
    :func:`experiments.train_grid`, whose records hold each run's per-sentence counts on ``split``): mean F1
    of each, the mean paired difference with its interval (:func:`acmtl.companion.stats.compare`), the per-seed
    differences with their test-sentence intervals, and the verdict."""
    rows = []
    for (corpus, size), group in runs.groupby(["corpus", "size"], sort=False):
        pooled = compare_runs(group, a, b, record_counts, split=split)
        if pooled is None:
            continue
        seeds = sorted(set(group.loc[group["arch"] == a, "seed"]) & set(group.loc[group["arch"] == b, "seed"]))
        by_key = {(r.arch, r.seed): r for r in group.itertuples()}
        per_seed = [compare([record_counts(by_key[(a, s)], split)], [record_counts(by_key[(b, s)], split)])
                    for s in seeds]
        rows.append({
            "corpus": corpus, "corpus_label": corpus_label(corpus), "size": int(size), "a": a, "b": b,
            "split": split, "seeds": pooled.seeds,
            "f1_a_mean": sum(getattr(by_key[(a, s)], f"{split}_f1") for s in seeds) / len(seeds),
            "f1_b_mean": sum(getattr(by_key[(b, s)], f"{split}_f1") for s in seeds) / len(seeds),
            "diff": pooled.diff, "ci_low": pooled.low, "ci_high": pooled.high, "seed_sd": pooled.seed_sd,
            "diff_per_seed": "; ".join(f"seed {s}: {100 * p.diff:+.2f} [{100 * p.low:+.2f}, {100 * p.high:+.2f}]"
                                       for s, p in zip(seeds, per_seed)),
            "verdict": verdict(pooled),
            "trained_on": trained_on(pd.DataFrame([by_key[(arch, s)] for arch in (a, b) for s in seeds])),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def verdict(result: SeedComparison) -> str:
    """"beats" / "loses" when the interval of a - b lies wholly above / below zero, "ties" when it includes zero,
    "too few seeds" with fewer than :data:`MIN_SEEDS` paired seeds."""
    return {1: "beats", -1: "loses", 0: "ties", None: TOO_FEW}[result.side()]


def verdict_sentence(row) -> str:
    """One README sentence for a :func:`head_to_head` row, every number taken from it."""
    a, b = MODEL_NAMES.get(row.a, row.a), MODEL_NAMES.get(row.b, row.b)
    where = f"{row.corpus_label}, {row.size:,} training sentences: "
    if row.verdict == TOO_FEW:
        return (f"{where}{row.seeds} paired seed{'s' if row.seeds != 1 else ''}, too few to judge AC-MTL against "
                f"{b} (at least {MIN_SEEDS}; mean difference {100 * row.diff:+.2f}; {a} {100 * row.f1_a_mean:.2f}, "
                f"{b} {100 * row.f1_b_mean:.2f}).")
    gap = {"beats": f"beats {b} by {100 * row.diff:.2f} F1 points",
           "loses": f"loses to {b} by {-100 * row.diff:.2f} F1 points",
           "ties": f"ties with {b} (difference {100 * row.diff:+.2f} F1 points, the interval includes 0)"}[row.verdict]
    mixed = f"; runs from {row.trained_on.removeprefix('mixed: ')}" if str(row.trained_on).startswith("mixed") else ""
    return (f"{where}{a} {gap} on the full test set (95 % CI [{100 * row.ci_low:+.2f}, {100 * row.ci_high:+.2f}] "
            f"over {row.seeds} seeds and the test sentences; {a} {100 * row.f1_a_mean:.2f}, {b} "
            f"{100 * row.f1_b_mean:.2f}{mixed}).")
