"""Why does AC-MTL lose to its own encoder+CRF baseline? Each suspect measured as a paired run.

Every variant below is trained on the same MSRA subsets with the same seeds and the same
hyper-parameters as the reference (``paper``: the model as the paper's equations print it), and
scored on the full official test set. For each seed the two runs' predictions on the same 4,620
sentences give a paired difference; :func:`summarize_pairs` judges the mean over seeds with the seed-aware interval
of :func:`acmtl.companion.stats.compare`, the one every verdict of the companion uses.

The same runs choose the default wiring, on the corpus' own dev split only: every contender is paired
by seed with the current default (:func:`wiring_comparisons`) and :func:`chosen_wiring` states the rule.
"""

from __future__ import annotations

import pandas as pd

from acmtl.companion.stats import MIN_SEEDS  # a wiring becomes the default only with this many paired seeds
from acmtl.companion.wirings import REFERENCES, VARIANTS, variant_grid

DATACLASS_WIRING = "residual_block"  # ModelConfig's defaults: what a profile without a wiring of its own trains
RULE_COLUMNS = ("dev_seeds", "dev_diff", "dev_ci_low", "dev_ci_high")  # see wiring_comparisons


def acmtl_wirings(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The AC-MTL variants' rows of the diagnosis table (``verdicts``: :func:`verdict_table`)."""
    return verdicts[[VARIANTS[v].arch == "acmtl" for v in verdicts["variant"]]]


def chosen_wiring(verdicts: pd.DataFrame, current: str) -> pd.Series:
    """The rule that sets the default wiring, applied to the diagnosis table (``verdicts``), its row returned.

    The ``current`` default stays unless an AC-MTL variant beats it on the corpus' own dev split (never a test
    split) with at least :data:`MIN_SEEDS` seeds paired with it and a 95 % interval of the difference wholly above
    0 (:func:`wiring_comparisons`); of several such, the largest mean difference wins. A lead inside the noise,
    a row with fewer seeds, or a row without a paired interval never moves the default."""
    wirings = acmtl_wirings(verdicts)
    if current not in set(wirings["variant"]):
        raise ValueError(f"the current wiring {current!r} has no row in the diagnosis table")
    rule = wirings.reindex(columns=list(RULE_COLUMNS))  # NaN where a row has no paired interval: it cannot win
    beats = (rule["dev_seeds"] >= MIN_SEEDS) & (rule["dev_ci_low"] > 0)
    if not beats.any():
        return wirings[wirings["variant"] == current].iloc[0]
    return wirings.loc[rule.loc[beats, "dev_diff"].idxmax()]


def recorded_rule(profile: str) -> tuple[pd.Series, str]:
    """(:func:`chosen_wiring`'s row, the wiring it was asked about) on ``profile``'s diagnosis as recorded: the
    profile's current wiring against every contender, from the runs' records. Every run of the diagnosis must be
    recorded (:func:`acmtl.companion.plan.train_plan` asks only then): a missing one would be trained."""
    from acmtl.companion.config import get_profile

    prof = get_profile(profile)
    current = prof.wiring or DATACLASS_WIRING
    runs = diagnosis_runs(profile, prof.diagnosis, size=prof.ablation_size, progress=False)
    table = pd.DataFrame({"variant": runs["variant"].unique()})
    return chosen_wiring(table.merge(wiring_comparisons(runs, current), on="variant", how="left"), current), current


def diagnosis_runs(profile: str, grid: dict[str, tuple[int, ...]], *, size: int = 1000, corpus: str = "msra",
                   progress: bool = True) -> pd.DataFrame:
    """Train (or reuse) every variant with its seeds (``grid``: variant -> seeds); one row of scores per run,
    with a ``variant`` column."""
    from acmtl.companion.experiments import train_grid

    frames = []
    for name, v, seeds in variant_grid(grid):
        frame = train_grid(profile, corpus, [v.arch], [size], seeds, progress=progress, model_overrides=v.overrides)
        frames.append(frame.assign(variant=name))
    return pd.concat(frames, ignore_index=True)


def _pairs_of(runs: pd.DataFrame, variant: str, reference: str, split: str):
    """The seeds ``variant`` and ``reference`` share in ``runs``, and each one's per-seed counts on ``split``."""
    from acmtl.companion.records import load_counts

    records = {(r.variant, r.seed): r.record for r in runs.itertuples()}
    seeds = sorted({s for v, s in records if v == variant} & {s for v, s in records if v == reference})
    return seeds, *([load_counts(records[(v, s)], split) for s in seeds] for v in (variant, reference))


def paired_table(runs: pd.DataFrame, *, split: str = "full_test") -> pd.DataFrame:
    """One row per variant and seed: its F1 and its reference's on ``split``, and the paired difference with its
    test-sentence interval (:func:`acmtl.companion.stats.compare` of one seed), from the runs' records (``runs``:
    :func:`diagnosis_runs`' rows)."""
    from acmtl.companion.stats import compare

    f1 = {(r.variant, r.seed): getattr(r, f"{split}_f1") for r in runs.itertuples()}
    rows = []
    for variant in dict.fromkeys(runs["variant"]):
        reference = REFERENCES.get(variant)
        for seed, a, b in zip(*_pairs_of(runs, variant, reference, split)) if reference else ():
            pair = compare([a], [b])
            rows.append({"variant": variant, "reference": reference, "seed": seed, "f1": f1[(variant, seed)],
                         "reference_f1": f1[(reference, seed)], "diff": pair.diff, "ci_low": pair.low,
                         "ci_high": pair.high})
    return pd.DataFrame(rows).sort_values(["variant", "seed"], ignore_index=True)


def wiring_comparisons(runs: pd.DataFrame, current: str) -> pd.DataFrame:
    """Every AC-MTL variant against the ``current`` default wiring on the corpus' own dev split, paired by seed:
    the seeds both have (``dev_seeds``), the mean difference of F1 (``dev_diff``) and its seed-aware 95 % interval
    (``dev_ci_low``, ``dev_ci_high``; :func:`acmtl.companion.stats.compare`), from the runs' records. What
    :func:`chosen_wiring` decides on."""
    from acmtl.companion.stats import compare

    wirings = runs[[VARIANTS[v].arch == "acmtl" for v in runs["variant"]]]
    rows = []
    for variant in wirings["variant"].unique():
        seeds, a, b = _pairs_of(wirings, variant, current, "corpus_dev")
        if variant == current or not seeds:
            continue
        pair = compare(a, b)
        rows.append({"variant": variant, "dev_seeds": len(seeds), "dev_diff": pair.diff,
                     "dev_ci_low": pair.low, "dev_ci_high": pair.high})
    return pd.DataFrame(rows, columns=["variant", *RULE_COLUMNS])


def selection_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the mean over its seeds of F1 on the corpus' own dev split (kept out of every subset, as
    in tuning) and on the subset's dev split: a description; the default wiring is chosen by :func:`chosen_wiring`
    on paired seeds. A test set never takes part."""
    means = runs.groupby("variant", sort=False)[["corpus_dev_f1", "dev_f1"]].mean()
    return means.rename(columns={"dev_f1": "subset_dev_f1"}).add_suffix("_mean").reset_index()


def summarize_pairs(pairs: pd.DataFrame, runs: pd.DataFrame, *, split: str = "full_test") -> pd.DataFrame:
    """One row per variant: mean F1 of it and its reference, the mean paired difference over seeds with its
    seed-aware 95 % interval (:func:`acmtl.companion.stats.compare`, from the runs' records), the per-seed
    differences with their test-sentence intervals, and the verdict: "helps" / "hurts" when the interval excludes
    zero on that side, "no clear effect" when it includes zero, "too few seeds" below
    :data:`acmtl.companion.stats.MIN_SEEDS`."""
    from acmtl.companion.stats import compare

    rows = []
    for variant, group in pairs.groupby("variant", sort=False):
        reference = group["reference"].iloc[0]
        pooled = compare(*_pairs_of(runs, variant, reference, split)[1:])
        rows.append({
            "variant": variant, "reference": reference, "suspect": VARIANTS[variant].suspect,
            "seeds": pooled.seeds, "f1_mean": group["f1"].mean(), "reference_f1_mean": group["reference_f1"].mean(),
            "diff_mean": pooled.diff, "ci_low": pooled.low, "ci_high": pooled.high,
            "diff_per_seed": "; ".join(f"{100 * r.diff:+.2f} [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"
                                       for r in group.itertuples()),
            "verdict": {1: "helps", -1: "hurts", 0: "no clear effect", None: "too few seeds"}[pooled.side()],
        })
    order = [v for v in VARIANTS if v in {r["variant"] for r in rows}]
    return pd.DataFrame(rows).set_index("variant").loc[order].reset_index()


def run_diagnosis(profile: str, *, size: int = 1000, corpus: str = "msra",
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The profile's diagnosis grid trained (or reused), paired and judged (:func:`write_diagnosis`).
    Returns (pairs, verdicts)."""
    import time

    from acmtl.companion.config import get_profile

    started = time.time()
    grid = get_profile(profile).diagnosis
    runs = diagnosis_runs(profile, grid, size=size, corpus=corpus, progress=progress)
    return write_diagnosis(profile, runs, grid, size, started=started)


def write_diagnosis(profile: str, runs: pd.DataFrame, grid: dict[str, tuple[int, ...]], size: int, *,
                    started: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair and judge the diagnosis' ``runs`` (:func:`diagnosis_runs`' rows; their records hold the counts);
    writes ``table3_diagnosis_pairs`` (one row per variant and seed) and ``table3_diagnosis`` (one row per variant,
    with its dev scores and its paired comparison with the current default wiring, which :func:`chosen_wiring`
    decides on) with provenance that lists the runs. Returns (pairs, verdicts)."""
    from acmtl.companion import publish
    from acmtl.companion.config import get_profile

    pairs = paired_table(runs)
    current = get_profile(profile).wiring or DATACLASS_WIRING
    verdicts = (summarize_pairs(pairs, runs).merge(selection_scores(runs), on="variant", how="outer")
                .merge(wiring_comparisons(runs, current), on="variant", how="left"))
    verdicts["verdict"] = verdicts["verdict"].fillna("reference")  # `paper` itself: compared, not judged
    verdicts = verdicts.set_index("variant").loc[[v for v in VARIANTS if v in set(verdicts["variant"])]].reset_index()
    extra = {"variants": {v: VARIANTS[v].overrides for v in grid}, "seeds": grid, "size": size,
             "current_wiring": current, "runs": runs.to_dict("records")}
    corpora, seeds = list(runs["corpus_spec"].unique()), sorted(set(runs["seed"]))
    for table, name in ((pairs, "table3_diagnosis_pairs"), (verdicts, "table3_diagnosis")):
        publish.write_table(table, name, profile, corpora=corpora, seeds=seeds, started=started, extra=extra)
    return pairs, verdicts
