"""What each notebook found, in words, computed from the tables in ``results/`` and their provenance.

The notebooks print these lines under "What we found"; ``python -m acmtl report`` puts the first line of each
(:func:`at_a_glance`) and the time of each notebook (:func:`timings`) into the README, so no number or time is
typed by hand anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from acmtl.companion.analysis import LEGAL_TYPE_GLOSSES
from acmtl.companion.claims import paper_robustness, paper_setup, paper_speed_params, table2_applies_to
from acmtl.companion.config import get_profile
from acmtl.companion.experiments import corpus_label, describe_models
from acmtl.companion.figures import read
from acmtl.companion.publish import NOTEBOOK_TABLES, duration
from acmtl.companion.stats import MIN_SEEDS, compare_runs
from acmtl.companion.tables import ARCH_LABELS, PAPER_MODELS
from acmtl.core.evaluate import is_missing


def _pct(x) -> str:
    return "–" if is_missing(x) else f"{100 * x:.1f}"


def _device_note(record: dict) -> str:
    caution = (" — smoke models are barely trained, so these numbers mean nothing."
               if record["profile"] == "smoke" else ".")
    return f"\nMeasured in the *{record['profile']}* profile{caution}"


def _models_note(record: dict) -> list[str]:
    """The models a single-model analysis loaded, beside their records (its provenance; older tables lack it)."""
    models = record["extra"].get("models")
    return [f"* {describe_models(models)}"] if models else []


def table2(results: Path) -> list[str]:
    table, record = read(results, "table2_performance")
    anchors, _ = read(results, "table2_anchors")
    measured = table[table["status"] == "measured"]
    lines = []
    for (corpus, size), rows in measured.groupby(["corpus", "size"], sort=False):
        rows = rows.set_index("arch")
        if "acmtl" not in rows.index:
            continue
        ac = rows.loc["acmtl"]
        parts = []
        for arch, base in rows.drop(index="acmtl").iterrows():
            gap = ac["test_f1_mean"] - base["test_f1_mean"]
            if min(ac["seeds"], base["seeds"]) > 1:
                beyond = abs(gap) > ac["test_f1_std"] + base["test_f1_std"]
                verdict = f", {'beyond' if beyond else 'within'} the summed seed std"
            else:
                verdict = ", one seed: no spread to judge it by"
            parts.append(f"{ARCH_LABELS[arch]} {_pct(base['test_f1_mean'])} ({100 * gap:+.1f} points{verdict})")
        claimed = table2_applies_to(corpus.partition("=")[0]) and not is_missing(ac.get("paper_f1"))
        vs_paper = f"; the paper reports {ac['paper_f1']:.2f}" if claimed else ""  # beside MSRA only
        n = int(ac["seeds"])
        lines.append(f"* **{corpus_label(corpus)}, {int(size)} sentences** ({n} seed{'s' * (n > 1)}): AC-MTL test F1 "
                     f"{_pct(ac['test_f1_mean'])}, full official test {_pct(ac['full_test_f1_mean'])}{vs_paper}; "
                     + "; ".join(parts) + ".")
    best = anchors.groupby("corpus")["anchor_f1_high"].max()
    for corpus, group in measured.groupby("corpus", sort=False):
        name = corpus.partition("=")[0]
        if name in best:
            top = group.loc[group["full_test_f1_mean"].idxmax()]
            lines.append(f"* On the full {corpus_label(corpus)} test set our best model ({top['model']}, "
                         f"{int(top['size'])} training sentences) reaches {_pct(top['full_test_f1_mean'])}; the best "
                         f"published result, trained on the whole training set, is {best[name]:.2f}.")
    runs = record["extra"]["runs"]
    lines.append(f"* {len(runs)} runs, {sum(r['trained_now'] for r in runs)} of them trained in this execution; "
                 f"{duration(record['wall_seconds'])} of wall time.")
    return lines


def figure6(results: Path) -> list[str]:
    table, record = read(results, "figure6_speed_params")
    bench = record["extra"]["bench"]
    m, fp = bench["models"], bench["protocol"]["precisions"][0]
    total = table.set_index("model")["params_total"]
    claim = paper_speed_params().set_index("model")
    ratio = total["acmtl_bert_base"] / total["encoder_crf_bert_base"]
    lines = [
        f"* **Size.** At BERT-base size AC-MTL has {total['acmtl_bert_base'] / 1e6:.1f} M parameters, "
        f"{100 * abs(ratio - 1):.1f} % {'more' if ratio > 1 else 'fewer'} than RoBERTa-CRF of the same size "
        f"({total['encoder_crf_bert_base'] / 1e6:.1f} M); "
        f"the paper: {claim.loc['AC-MTL', 'paper_params_millions']:.0f} "
        f"against {claim.loc['RoBERTa', 'paper_params_millions']:.0f}, more than 40 % smaller. On m3e-small, "
        f"{m['acmtl']['params']['total'] / 1e6:.1f} M, {m['acmtl']['params']['added'] / 1e6:.1f} M of them added to "
        f"the encoder. XLNet-base-CRF counts {total['xlnet_crf_base'] / 1e6:.1f} M "
        f"(the paper: {claim.loc['XLNet', 'paper_params_millions']:.0f} M).",
        f"* **Speed** ({fp}, {bench['protocol']['mode']} protocol, {table['device'].dropna().iloc[0]}): AC-MTL "
        f"{m['acmtl']['tokens_per_s'][fp]:,.0f} characters/s, "
        f"{m['acmtl']['tokens_per_s'][fp] / m['encoder_crf']['tokens_per_s'][fp]:.2f}x "
        f"RoBERTa-CRF's speed on the same encoder ({m['encoder_crf']['tokens_per_s'][fp]:,.0f}); "
        f"BiLSTM-CRF {m['bilstm_crf']['tokens_per_s'][fp]:,.0f}; "
        f"AC-MTL at BERT-base size {m['acmtl_bert_base']['tokens_per_s'][fp]:,.0f}. "
        f"Per character AC-MTL computes {m['acmtl']['gflop_per_token']:.3f} GFLOP, "
        f"RoBERTa-CRF {m['encoder_crf']['gflop_per_token']:.3f}. The paper's "
        f"{claim.loc['AC-MTL', 'paper_tokens_per_s']:,.0f} tokens/s were measured on a V100: not comparable."
        + (f" In bf16 (native here) AC-MTL tags {speed['bf16'] / speed[fp]:.2f}x as many characters per second "
           f"as in {fp}." if "bf16" in (speed := m["acmtl"]["tokens_per_s"]) else ""),
    ]
    lines.append(f"* **Workers.** {workers_speedup(results)}")
    if bench["protocol"]["mode"] == "quick":
        lines.append("* QUICK protocol: a plumbing check on 16 sentences; "
                     "the speeds above are not measurements to cite.")
    return lines


def _spread(row: pd.Series) -> str:
    """'range of 5 passes 1.05-1.18x; median ' where the table has passes (older tables have one timing)."""
    if "min_speedup" not in row or pd.isna(row["min_speedup"]):
        return ""
    return f"range of {int(row['passes'])} passes {row['min_speedup']:.2f}-{row['max_speedup']:.2f}x; median "


def workers_speedup(results: Path) -> str:
    """One sentence: how much faster the plan's runs train side by side than one after another
    (``figure6_workers``, :func:`acmtl.companion.plan.measure_workers`)."""
    if not (results / "figure6_workers.csv").is_file():
        return "The speed-up of training runs side by side is not measured yet (notebook 02 measures it)."
    table, record = read(results, "figure6_workers")
    if len(table) == 1:
        return "One core: the plan trains one run at a time, nothing to compare."
    one, many = table[table["workers"] == 1].iloc[0], table.loc[table["workers"].idxmax()]  # the plan's default
    threads = int(many["threads_per_worker"])
    return (f"{int(many['workers'])} worker processes with {threads} torch thread{'s' * (threads != 1)} each "
            f"train the same {int(one['runs'])} short runs "
            f"{many['speedup']:.2f}x as fast as one process with {int(one['threads_per_worker'])} "
            f"({_spread(many)}{duration(many['wall_seconds'])} against {duration(one['wall_seconds'])}, "
            "start-up included, "
            f"{record['device']['cpu'] or 'this CPU'}, {int(one['cores'])} cores).")


# AC-MTL built up from its baseline one component at a time, as Table 3's rows do.
BUILD_UP = ("encoder_crf", "bert_mhsa", "bert_mhsa_cnn", "acmtl")
EFFECT = {-1: "lowers F1", 1: "raises F1", 0: "within the noise", None: "too few seeds to judge"}


def build_up(table: pd.DataFrame, runs: pd.DataFrame, counts: Callable) -> str:
    """Where AC-MTL's F1 goes (``table``: Table 3's rows; ``runs``: their per-run rows, whose per-sentence counts
    ``counts(run, split)`` reads): the full-test F1 of each step from encoder+CRF to AC-MTL, each step's paired
    difference over seeds with its seed-aware 95 % interval (:func:`acmtl.companion.stats.compare`), and "lowers" or
    "raises" only for a step whose interval says so."""
    f1 = table.set_index("arch")["full_test_f1_mean"].reindex(list(BUILD_UP)).dropna()
    chain, sides = [f"{ARCH_LABELS[f1.index[0]]} {100 * f1.iloc[0]:.2f}"], []
    for before, after in zip(f1.index, f1.index[1:]):
        step = compare_runs(runs, after, before, counts)
        chain.append(f"{ARCH_LABELS[after]} {100 * f1[after]:.2f} ({step.text()}, {EFFECT[step.side()]})")
        sides.append(step.side())
    moved = sum(side in (-1, 1) for side in sides)
    trend = (f"{len(sides) - sides.count(None)} of the {len(sides)} steps have enough seeds to judge"
             if None in sides else
             f"every component added on top of the encoder {EFFECT[sides[0]]}" if moved == len(sides) and
             len(set(sides)) == 1 else
             f"{moved} of the {len(sides)} components added on top of the encoder "
             f"move{'s' * (moved == 1)} F1 beyond the noise")
    return (f"**From encoder+CRF to AC-MTL** (full test, MSRA-{int(table['size'].iloc[0]):,}, "
            f"{int(table['seeds'].min())} seeds; each step paired by seed, with its 95 % interval over seeds and test "
            f"sentences): {trend}: " + " → ".join(chain) + ".")


def _record_counts(results: Path) -> Callable:
    """A reader of a per-run row's counts from its record under ``results/runs/``."""
    from acmtl.companion.records import load_counts

    return lambda run, split: load_counts(results / "runs" / Path(run.record).name, split)


def table3(results: Path) -> list[str]:
    steps, record = read(results, "table3_ablation_steps")
    table, ablation = read(results, "table3_ablation")
    lines = [f"* {build_up(table, pd.DataFrame(ablation['extra']['runs']), _record_counts(results))}"]
    steps = steps.sort_values("component", key=lambda c: c != "multi-task learning", kind="stable")  # the paper's point
    for _, r in steps.iterrows():  # not itertuples: "with" is a keyword
        paper = f"the paper: {r.paper_difference:+.2f}" if pd.notna(r.paper_difference) else "not in the paper"
        lines.append(f"* **{r.component}** ({r['with']} minus {r.without}): {r.test_f1_difference:+.2f} F1 points on "
                     f"the subset test split (per seed: {r.test_f1_difference_per_seed}), "
                     f"{r.full_test_f1_difference:+.2f} on the full test set; {paper}.")
    best = table.loc[table["full_test_f1_mean"].idxmax()]
    seeds = int(table["seeds"].max())
    lines.append(f"* Best on the full test set: {ARCH_LABELS[best['arch']]} ({best['full_test_f1']}). "
                 + ("A difference whose per-seed signs disagree is not a finding." if seeds > 1 else
                    "With one seed no difference here can be told apart from seed-to-seed variation."))
    return lines


def figure7(results: Path) -> list[str]:
    scores, record = read(results, "figure7_attention_scores")
    lines = []
    for panel, part in scores.groupby("panel"):
        wide = part.pivot(index="sentence", columns="arch", values="attention_score")
        if "acmtl" in wide and wide.shape[1] > 1:
            top = int((wide["acmtl"] >= wide.max(axis=1)).sum())
            lines.append(f"* **{panel}** ({part['token'].iloc[0]}): AC-MTL has the highest score of the "
                         f"{wide.shape[1]} models in {top} of {len(wide)} sentences (the paper: in all of them); one "
                         "model per architecture, described, not judged.")
        ratio = part.groupby("model", sort=False)["score_over_uniform"].mean()
        lines.append("  Mean score / uniform baseline: " + ", ".join(f"{m} {r:.2f}×" for m, r in ratio.items())
                     + " (1× = no more attention than an even spread).")
    for r in scores.dropna(subset=["paper_attention_score"]).itertuples():
        lines.append(f"* {r.panel} sentence {r.sentence}, {r.model}: ours {r.attention_score:.2f} "
                     f"(uniform {r.uniform_score:.2f}), the paper {r.paper_attention_score:.2f}.")
    return lines + _models_note(record) + [_device_note(record)]


def figure8(results: Path) -> list[str]:
    curves, record = read(results, "figure8_curves")
    noise, _ = read(results, "figure8_noise")
    paper = paper_robustness()
    lines = []
    lines += _noise_lines(results, noise, paper)
    for corpus, part in curves.groupby("corpus", sort=False):
        for arch, run in part.groupby("arch", sort=False):
            final = run[run["selected"]].iloc[0]
            peak = run["test_f1"].max()
            first = run.loc[run["test_f1"] >= 0.95 * peak, "epoch"].min()
            reach = f"first reaches 95% of its peak ({100 * peak:.1f}) at epoch {first}" if peak > 0 else "stays at 0"
            model = PAPER_MODELS.get(arch, "")
            lines.append(f"* **{corpus_label(corpus)}, {ARCH_LABELS[arch]}**: selected epoch {int(final.epoch)} of "
                         f"{len(run)}, test F1 {100 * final.test_f1:.1f}; the test curve {reach}"
                         + (" (the paper: AC-MTL plateaus by epoch 10)." if model == "AC-MTL" else "."))
    return lines + [_device_note(record)]


# what AC-MTL's F1 lost to noise minus a baseline's says, by its interval's side (stats.SeedComparison.side)
LOSS_EFFECT = {1: "loses more, beyond the noise", -1: "loses less, beyond the noise", 0: "within the noise",
               None: "too few seeds to judge"}


def _noise_lines(results: Path, noise: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """Figure 8(b) at its highest rate: F1 lost to noise per model (means over seeds, their range where there are
    several) and, with enough seeds, AC-MTL's loss against each baseline's (verdicts.noise_comparisons)."""
    from acmtl.companion.verdicts import Results, noise_comparisons, noise_seeds

    top = noise["rate"].max()
    at_top = noise[noise["rate"] == top]
    worst = at_top.groupby("arch", sort=False)[["f1", "f1_drop", "realised_rate"]].mean()
    spread = at_top.groupby("arch", sort=False)["f1_drop"].agg(["min", "max"])
    seeds = noise_seeds(noise)
    lines = []
    if "acmtl" in worst.index and len(worst) > 1:
        less = [ARCH_LABELS[a] for a in worst.index
                if a != "acmtl" and worst.loc["acmtl", "f1_drop"] < worst.loc[a, "f1_drop"]]
        claim = paper[paper["context"].str.startswith("8(b)")]["paper_final_f1"].iloc[0]
        others = ", ".join(f"{ARCH_LABELS[a]} {100 * worst.loc[a, 'f1_drop']:.1f}" for a in worst.index if a != "acmtl")
        ranked = (f"less than {', '.join(less)}" if less else "more than every baseline")
        if len(seeds) == 1:
            judged = "one model each, too few seeds to rank them"
        elif len(seeds) < MIN_SEEDS:
            judged = f"means of {len(seeds)} seeds, too few to rank them"
        else:
            loss = {b: pair[1] for (rate, b), pair in noise_comparisons(Results(results), noise).items() if rate == top}
            judged = (f"means of {len(seeds)} seeds; AC-MTL's loss minus each baseline's, paired by seed: "
                      + ", ".join(f"{ARCH_LABELS[b]} {c.text()} ({LOSS_EFFECT[c.side()]})" for b, c in loss.items()))
        lines.append(f"* **Noise**: at {100 * worst['realised_rate'].mean():.1f} % misspelt characters AC-MTL loses "
                     f"{100 * worst.loc['acmtl', 'f1_drop']:.1f} F1 points ({others}): {ranked}, {judged} (the paper: "
                     f"AC-MTL the most robust, {claim:.2f} on its perturbed set).")
    for arch, r in worst.iterrows():
        several = (f" (mean of {len(seeds)} seeds; {100 * spread.loc[arch, 'min']:.1f}-"
                   f"{100 * spread.loc[arch, 'max']:.1f} lost)" if len(seeds) > 1 else "")
        lines.append(f"* **Noise**, {ARCH_LABELS[arch]}: F1 {100 * (r.f1 + r.f1_drop):.1f} clean → {100 * r.f1:.1f} "
                     f"with {100 * r.realised_rate:.1f}% of characters misspelt ({100 * r.f1_drop:.1f} points "
                     f"lost){several}.")
    return lines


def figure9(results: Path) -> list[str]:
    per_type, record = read(results, "figure9_agreement_types")
    per_window, _ = read(results, "figure9_agreement_windows")
    extra = record["extra"]
    p, t = per_type["predicted_mentions"], per_type["true_mentions"]
    overall_tv = 0.5 * (p / max(1, p.sum()) - t / max(1, t.sum())).abs().sum()
    r = per_type.dropna(subset=["pearson_r"])
    lowest = ", ".join(f"{LEGAL_TYPE_GLOSSES.get(row.type, row.type)} {row.pearson_r:.2f}"
                       for row in r.nsmallest(3, "pearson_r").itertuples())
    scored = per_window.dropna(subset=["tv_distance"])
    halves = scored.iloc[: len(scored) // 2], scored.iloc[len(scored) // 2:]
    lines = [
        f"* Predicted and true mix of legal entity types on {extra['test_documents']} held-out documents: "
        f"total-variation distance {overall_tv:.3f} overall, {per_window['tv_distance'].mean():.3f} per window of "
        f"{extra['window']} documents (true windows differ from the overall true mix by "
        f"{per_window['tv_true_vs_overall'].mean():.3f} by themselves); {int(t.sum())} gold, {int(p.sum())} predicted "
        "mentions.",
        f"* Per type, correlation of windowed counts: median r = {r['pearson_r'].median():.2f} over {len(r)} types "
        f"(lowest: {lowest})." if len(r) else "* Per type correlations: undefined (constant streams).",
    ]
    if all(len(h) for h in halves):
        lines.append(f"* 'Increasingly aligned as cases accumulate' (the paper): mean window distance "
                     f"{halves[0]['tv_distance'].mean():.3f} in the first half of the documents, "
                     f"{halves[1]['tv_distance'].mean():.3f} in the second. With documents in corpus order, "
                     "there is no reason for a trained model to improve along them.")
    lines.append(f"* Case texts: {extra['case_texts_distinct']:,} distinct texts exist (the paper: "
                 f"{paper_setup()['legal_cases']:,} cases); {extra['case_texts_tagged']:,} tagged in "
                 f"{duration(extra['case_seconds'])}, unverifiable without gold.")
    return lines + _models_note(record) + [_device_note(record)]


def figure10(results: Path) -> list[str]:
    counts, record = read(results, "figure10_error_categories")
    pairs, _ = read(results, "figure10_error_type_pairs")
    errors, _ = read(results, "figure10_error_examples")
    ranked = counts[counts["errors"] > 0].sort_values("errors", ascending=False)
    loc_org = int(pairs[pairs["type_pair"].isin(["LOC→ORG", "ORG→LOC"])]["errors"].sum())
    per = int((errors["gold"].fillna("") + errors["predicted"].fillna("")).str.contains("/PER").sum())
    return [
        f"* {len(errors)} errors in {record['extra']['misclassified']} misclassified sentences; most frequent: "
        + ", ".join(f"{r.category} {r.errors} ({100 * r.share:.0f}%)" for r in ranked.itertuples()) + ".",
        f"* LOC ↔ ORG: {loc_org} errors, {loc_org}/{int(pairs['errors'].sum())} of those that change the type and "
        f"{100 * loc_org / max(1, len(errors)):.0f}% of all errors. The paper ranks LOC ↔ ORG confusion first; here "
        f"the most frequent category is *{ranked['category'].iloc[0] if len(ranked) else 'none'}*.",
        f"* Errors that involve a person name (gold or predicted PER): {per}.",
        *_models_note(record),
        _device_note(record),
    ]


def diagnosis(results: Path) -> list[str]:
    """Notebook 03's diagnosis: each suspect's paired difference and verdict, and the wiring the dev split chose."""
    from acmtl.companion.diagnosis import MIN_SEEDS, RULE_COLUMNS, acmtl_wirings, chosen_wiring

    verdicts, record = read(results, "table3_diagnosis")
    lines = [f"* **{r.variant}** against {r.reference}: {100 * r.diff_mean:+.2f} F1 points on the full test set "
             f"({100 * r.f1_mean:.2f} vs {100 * r.reference_f1_mean:.2f}; per seed, with 95 % intervals: "
             f"{r.diff_per_seed}): **{r.verdict}**. Suspect: {r.suspect}."
             for r in verdicts[verdicts["verdict"] != "reference"].itertuples()]
    trained = get_profile("default").wiring
    current = record["extra"].get("current_wiring", trained)  # tables from before the rule did not record it
    best = chosen_wiring(verdicts, current)
    compared = acmtl_wirings(verdicts).reindex(columns=["variant", *RULE_COLUMNS]).dropna()
    against = "; ".join(f"`{r.variant}` {100 * r.dev_diff:+.2f} [{100 * r.dev_ci_low:+.2f}, "
                        f"{100 * r.dev_ci_high:+.2f}] ({r.dev_seeds:.0f} seeds)"
                        for r in compared.itertuples()) or "no paired dev interval yet"
    outcome = (f"`{current}` stays the default" if best.variant == current
               else f"`{best.variant}` beats `{current}` and becomes the default")
    used = ("Every AC-MTL of the default profile is trained with it (`Profile.wiring`)." if trained == best.variant
            else f"The default profile still trains `{trained}` (`Profile.wiring`).")
    lines.append(f"* **The wiring rule** (`diagnosis.chosen_wiring`; the corpus dev split, never a test set; a "
                 f"contender needs {MIN_SEEDS} seeds paired with the default and a 95 % interval above 0): "
                 f"{outcome}. Each contender minus `{current}` on dev F1: {against}. {used}")
    return lines


FINDINGS: dict[str, Callable[[Path], list[str]]] = {
    "Table 2": table2, "Table 3": table3, "Figure 6": figure6, "Figure 7": figure7, "Figure 8": figure8,
    "Figure 9": figure9, "Figure 10": figure10, "Table 3 diagnosis": diagnosis,
}


def markdown(name: str, results: Path) -> str:
    """The findings of ``name`` (a key of :data:`FINDINGS`) as a Markdown list, for a notebook's display."""
    return "\n".join(FINDINGS[name](results))


# Notebook -> the tables it writes (provenance of each records the time since the notebook started).
def _size(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def resources_line(results: Path) -> str:
    """One line: the largest peak memory of a notebook run and the largest disk use of each folder when a table was
    written (:func:`acmtl.companion.publish.resources`, in each table's provenance): the largest, not the last, since a
    notebook rerun alone on a fresh machine sees a run cache of its own runs only."""
    records = [(notebook, read(results, t)[1]) for notebook, tables in NOTEBOOK_TABLES.items() for t in tables
               if (results / f"{t}.provenance.json").is_file()]
    records = [(notebook, r) for notebook, r in records if "resources" in r]
    if not records:
        return "Memory and disk: not recorded yet (the provenance of the next `./run_all.sh` records them)."
    notebook, peak = max(records, key=lambda nr: nr[1]["resources"]["peak_memory_mib"])
    disk = {folder: max(r["resources"]["disk_mib"][folder] for _, r in records)
            for folder in peak["resources"]["disk_mib"]}  # the folders acmtl.companion.publish.resources measures
    return (f"Memory and disk: a notebook process peaked at {_size(peak['resources']['peak_memory_mib'])} "
            f"(`{notebook}`); on disk, at most, the environment took {_size(disk['environment'])}, "
            f"the corpora and encoder cache with its downloads {_size(disk['cache'])} and the run cache "
            f"{_size(disk['runs'])}.")


def training_line(results: Path) -> str:
    """One line: what the runs recorded at this code cost (``results/runs/``, :mod:`acmtl.companion.records`): worker
    time in the training loop and in scoring, which machines trained how many, and the wall time that makes on each
    machine's workers (one per ``threads`` of its cores, as :func:`acmtl.companion.plan.train_plan` runs them)."""
    from acmtl.companion.publish import describe_device
    from acmtl.companion.records import records_dir
    from acmtl.companion.runs import code_digest

    current = code_digest()
    records = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(records_dir(results).glob("*.json"))]
    records = [r for r in records if r["code_sha256"] == current]
    if not records:
        return "Training: no run records at this code yet (`python -m acmtl runs --plan default --train` writes them)."
    machines: dict[str, list[dict]] = {}
    for record in records:
        where = record["where"]
        machines.setdefault(f"{describe_device(where)}, {where['precision']}", []).append(record)
    loop = sum(r["times"]["train_seconds"] for r in records)
    scoring = sum(r["times"]["score_seconds"] for r in records)
    parts = []
    for machine, done in sorted(machines.items(), key=lambda item: -len(item[1])):
        seconds = sum(r["times"]["train_seconds"] + r["times"]["score_seconds"] for r in done)
        where = done[0]["where"]
        workers = max(1, where["cpu_count"] // where["threads"])
        parts.append(f"{len(done)} on {machine} ({duration(seconds)} of worker time, {workers} at a time: about "
                     f"{duration(seconds / workers)} of wall time)")
    return (f"Training: the {len(records)} runs recorded at this code took {duration(loop + scoring)} of worker "
            f"time, {duration(loop)} in the training loop and {duration(scoring)} scoring (dev F1 after each epoch, "
            f"the best model on every split): {'; '.join(parts)}. `./run_all.sh --retrain` trains them all again, "
            f"before the notebooks' time below. {workers_speedup(results)}")


def at_a_glance(results: Path) -> str:
    """Markdown: the first finding of Table 3 and Figures 6-10, one line each."""
    lines = []
    for name in ("Table 3", "Figure 6", "Figure 7", "Figure 8", "Figure 9", "Figure 10"):
        first = FINDINGS[name](results)[0].removeprefix("* ")
        lines.append(f"* **{name}.** {first}")
    return "\n".join(lines)
