"""What the notebooks share: where results go, the training grid, tables with provenance, figures.

Every notebook runs under one profile (``acmtl.config``). The ``default`` profile writes the
committed ``results/`` and ``figures/``; any other profile writes ``build/<profile>/...``, so a
smoke or paper run never overwrites them. ``ACMTL_OUTPUT_ROOT=DIR`` moves the root (the repository
by default) for every profile: the tests point it at a temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import acmtl
from acmtl.claims import paper_table2, table2_applies_to
from acmtl.config import get_profile
from acmtl.data.fetch import atomic_write_bytes
from acmtl.paths import cache_dir, runs_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_ROOT_ENV = "ACMTL_OUTPUT_ROOT"
SHARED_RUN_PROFILES = ("default", "paper")  # their runs live in the one run cache, runs/
METRICS = ("precision", "recall", "f1")
STAND_IN = "-stand-in"  # suffix of the small corpora a smoke run trains on

# How tables and figures name our architectures, and which row of the paper each one answers.
ARCH_LABELS = {
    "acmtl": "AC-MTL",
    "encoder_crf": "RoBERTa-CRF (m3e-small)",
    "encoder_pinyin_crf": "RoBERTa+pinyin-CRF",  # beyond the paper: isolates the pinyin features
    "bilstm_crf": "BiLSTM-CRF",
    "xlnet_crf": "XLNet-CRF",
    "bert_cnn": "BERT+CNN",
    "bert_mhsa": "BERT+MHSA",
    "bert_mhsa_cnn": "BERT+MHSA+CNN",
    "acmtl_soft": "AC-MTL, soft sharing",  # beyond the paper
}
PAPER_MODELS = {  # arch -> the model name in acmtl.claims (paper_table2 / paper_table3 / paper_speed_params)
    "acmtl": "AC-MTL", "encoder_crf": "RoBERTa", "bilstm_crf": "BiLSTM", "xlnet_crf": "XLNet",
    "bert_cnn": "BERT+CNN", "bert_mhsa": "BERT+MHSA", "bert_mhsa_cnn": "BERT+MHSA+CNN",
}


PAPER_TABLE2_COLUMNS = ("paper_precision", "paper_recall", "paper_f1", "paper_note")


def paper_table2_for(corpus: str) -> pd.DataFrame:
    """The paper's Table 2 with our ``arch`` for each model, its numbers beside ``corpus``: NaN unless the paper's
    Table 2 is read against that corpus (MSRA, :func:`acmtl.claims.table2_applies_to`)."""
    paper = paper_table2().rename(columns={"note": "paper_note"})
    paper.insert(0, "arch", paper["model"].map({name: arch for arch, name in PAPER_MODELS.items()}))
    if not table2_applies_to(corpus):
        paper[list(PAPER_TABLE2_COLUMNS)] = float("nan")
    return paper


def with_paper_table2(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (columns corpus, arch, size) with the paper's Table 2 row for the same model and size as
    :data:`PAPER_TABLE2_COLUMNS`, NaN on every corpus but MSRA (shown as a dash)."""
    paper = pd.concat([paper_table2_for(c).assign(corpus=c) for c in table["corpus"].unique()], ignore_index=True)
    paper = paper.rename(columns={"sample_size": "size"})[["corpus", "arch", "size", *PAPER_TABLE2_COLUMNS]]
    return table.merge(paper, on=["corpus", "arch", "size"], how="left")


def output_root() -> Path:
    """The folder under which results/, figures/ and build/ go: ``$ACMTL_OUTPUT_ROOT`` or the repository."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or REPO_ROOT).expanduser().resolve()


def _profile_root(profile: str) -> Path:
    get_profile(profile)  # an unknown profile fails here, with the list of known ones
    return output_root() if profile == "default" else output_root() / "build" / profile


def output_dirs(profile: str) -> tuple[Path, Path]:
    """(results_dir, figures_dir) of ``profile``, created if missing."""
    base = _profile_root(profile)
    dirs = base / "results", base / "figures"
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def runs_root(profile: str) -> Path:
    """The run cache: runs/ for default and paper (shared with the CLI); a private one for smoke."""
    if profile in SHARED_RUN_PROFILES:
        root = runs_dir()
        return root if root.is_absolute() else REPO_ROOT / root  # the same folder from notebooks/ as from the CLI
    return _profile_root(profile) / "runs"


def short_text_corpus() -> str:
    """The paper's second corpus: "weibo" when ``$ACMTL_WEIBO_DIR`` is set, else "resume", which stands in."""
    from acmtl.data.corpora import WEIBO_ENV

    return "weibo" if os.environ.get(WEIBO_ENV) else "resume"


def corpus_label(spec: str) -> str:
    """A corpus spec as tables print it, saying when Resume stands in for Weibo."""
    name = spec.partition("=")[0]
    return {"msra": "MSRA", "weibo": "Weibo", "resume": "Resume (stands in for Weibo)"}.get(name, name)


def corpus_spec(profile: str, corpus: str) -> str:
    """The corpus spec to train on: ``corpus`` itself, or under a profile with ``stand_in_sentences`` a small
    stand-in drawn from it (so a smoke run never scores thousands of official test sentences)."""
    n = get_profile(profile).stand_in_sentences
    if n <= 0 or corpus.partition("=")[0].endswith(STAND_IN):
        return corpus
    import hashlib

    from acmtl.data.conll import write_conll
    from acmtl.data.corpora import load_corpus

    source = load_corpus(corpus)
    name = f"{source.name}{STAND_IN}"
    digest = hashlib.sha256(json.dumps(source.sources, sort_keys=True).encode()).hexdigest()[:8]
    directory = cache_dir() / "stand-ins" / f"{name}-{n}-{digest}"  # one fixed folder: one corpus cache entry
    if not all((directory / f"{split}.txt").is_file() for split in ("train", "dev", "test")):
        for split, share in (("train", 0.6), ("dev", 0.15), ("test", 0.25)):
            usable = [s for s in source.splits[split] if len(s.chars) <= 80 and not any(c.isspace() for c in s.chars)]
            k = max(1, round(n * share))
            write_conll(directory / f"{split}.txt", usable[:: max(1, len(usable) // k)][:k])  # evenly spaced
    return f"{name}={directory}"


def _split_columns(metrics: dict) -> dict:
    row = {}
    for split, scores in metrics.items():
        if isinstance(scores, dict) and "entity_f1" in scores:
            for key in (*METRICS, "support"):
                row[f"{split}_{key}"] = scores[f"entity_{key}"]
    return row


def train_grid(profile: str, corpus: str, archs: Iterable[str], sizes: Iterable[int | None],
               seeds: Iterable[int], *, progress: bool = True, model_overrides: dict | None = None,
               **train_overrides) -> pd.DataFrame:
    """Train (or reuse from the run cache) every (arch, size, seed); one row of scores per run.

    A run is exactly ``RunSpec(corpus, arch, size, profile.encoder, profile.train_config(seed, **overrides))``
    with the profile's tuned settings for ``arch`` (:meth:`acmtl.config.Profile.tuned_settings`) under the
    overrides, the spec ``python -m acmtl train`` builds, so runs trained from the command line are reused. Under a
    profile with a stand-in corpus (smoke) ``corpus`` is replaced by :func:`corpus_spec`'s stand-in; the
    ``corpus`` column keeps the name asked for, ``corpus_spec`` says what was trained on.
    """
    import transformers

    from acmtl.runs import RunSpec, ensure_run, load_metrics

    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars, one per run
    prof = get_profile(profile)
    root = runs_root(profile)
    spec_used = corpus_spec(profile, corpus)
    jobs = [(arch, size, seed) for size in sizes for arch in archs for seed in seeds]
    rows = []
    for i, (arch, size, seed) in enumerate(jobs, 1):
        tuned_train, tuned_model = prof.tuned_settings(arch)  # what `acmtl tune` chose, if it has run
        spec = RunSpec(corpus=spec_used, arch=arch, size=size, encoder=prof.encoder,
                       train=prof.train_config(seed, **{**tuned_train, **train_overrides}),
                       model_overrides={**tuned_model, **(model_overrides or {})})
        started = time.time()
        run_dir = ensure_run(spec, progress=False, root=root)
        metrics = load_metrics(run_dir)
        fresh = (run_dir / "metrics.json").stat().st_mtime >= started
        rows.append({"corpus": corpus, "corpus_spec": spec_used, "arch": arch, "size": size, "seed": seed,
                     "run_dir": str(run_dir), "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
                     "train_seconds": metrics["train_seconds"], "trained_now": fresh, **_split_columns(metrics)})
        if progress:
            f1 = " ".join(f"{s} F1 {rows[-1][f'{s}_f1']:.3f}" for s in ("dev", "test", "full_test")
                          if f"{s}_f1" in rows[-1])
            how = f"trained in {time.time() - started:.0f} s" if fresh else "from the run cache"
            print(f"[{i}/{len(jobs)}] {corpus} {arch} size={size} seed={seed}: {how}; {f1}", flush=True)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, by: Sequence[str] = ("corpus", "arch", "size"),
              splits: Sequence[str] = ("test", "full_test")) -> pd.DataFrame:
    """Mean, sample std and seed count per group, plus a 'mean ± std' text column per split and metric (percent)."""
    from acmtl.evaluate import format_mean_std, summarize_seeds

    rows = []
    for key, group in df.groupby(list(by), sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(group)
        for split in splits:
            names = [f"{split}_{m}" for m in METRICS]
            if not set(names) <= set(group.columns):
                continue
            stats = summarize_seeds(group[names].to_dict("records"), keys=names)
            for name in names:
                row[f"{name}_mean"], row[f"{name}_std"] = stats[name]["mean"], stats[name]["std"]
                std = stats[name]["std"] if len(group) > 1 else None
                row[name] = format_mean_std(stats[name]["mean"], std)
        rows.append(row)
    return pd.DataFrame(rows)


def architecture_parameters(arch: str, types: Sequence[str], encoder_config: dict | None = None, *,
                            encoder: str | None = None) -> dict[str, int]:
    """Exact parameter counts (total, encoder, added) of ``arch`` for these entity types, built on torch's meta
    device: no memory, no weights. The encoder's size comes from ``encoder_config`` (e.g.
    ``bert_base_config().to_dict()``), else from the configuration of ``encoder`` (default: the embedded one)."""
    import torch
    from transformers import AutoConfig

    from acmtl.checkpoint import build_model
    from acmtl.encoders import DEFAULT_ENCODER, resolve_encoder
    from acmtl.model import ModelConfig, count_parameters
    from acmtl.train import tag_names

    if encoder_config is None:
        encoder_config = AutoConfig.from_pretrained(resolve_encoder(encoder or DEFAULT_ENCODER)).to_dict()
    cfg = ModelConfig.for_architecture(arch, tag_names(types), encoder_config=dict(encoder_config))
    with torch.device("meta"):
        model, _ = build_model(cfg, pretrained=False)
    return count_parameters(model)


GENERATED = ("results", "figures")  # written by run_all.sh itself: never a change to the experiment
NOTEBOOKS = "notebooks"  # executed in place by run_all.sh: only a change to a cell's source is one


def _cell_sources(notebook_json: str) -> list[tuple[str, str]]:
    """(cell type, source) of every cell: what a notebook asks for, without what running it wrote."""
    cells = json.loads(notebook_json).get("cells", [])
    return [(cell.get("cell_type", ""), "".join(cell.get("source", ""))) for cell in cells]


def _only_outputs_changed(path: str, git: Callable[..., str]) -> bool:
    """Whether ``path`` is a notebook under notebooks/ whose cell sources equal HEAD's (outputs may differ)."""
    if not (path.startswith(f"{NOTEBOOKS}/") and path.endswith(".ipynb")):
        return False
    try:
        current = (REPO_ROOT / path).read_text(encoding="utf-8")
        return _cell_sources(current) == _cell_sources(git("show", f"HEAD:{path}"))
    except (OSError, subprocess.SubprocessError, ValueError):  # new, deleted or unreadable: a change
        return False


def _git() -> dict:
    """The commit, and whether the experiment differs from it: any changed or untracked file but the generated
    outputs, counting an executed notebook as changed only where a cell's source differs from the commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.rstrip("\n")
    try:
        status = git("status", "--porcelain", "-z", "--untracked-files=all", "--", ".",
                     *(f":!{d}" for d in GENERATED))
        entries, changed = iter(status.split("\0")), []
        for entry in entries:  # "XY path"; a rename or copy is followed by its original path
            if entry:
                if {"R", "C"} & set(entry[:2]):
                    next(entries, None)
                changed.append(entry[3:])
        changed = [path for path in changed if not _only_outputs_changed(path, git)]
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed), "changed_files": changed[:20]}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "changed_files": []}


def device_info() -> dict:
    """The machine the numbers come from: CPU model, GPU name (if one is used), torch threads."""
    import torch

    from acmtl.bench import machine_info

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = machine_info(device)
    info["torch_threads"] = torch.get_num_threads()
    info["platform"] = platform.platform()
    return info


def describe_device(info: dict | None = None) -> str:
    """One line naming the device, for notebook text and figure captions."""
    info = info or device_info()
    cpu = f"{info.get('cpu') or platform.processor() or 'unknown CPU'}, {info['cpu_count']} cores"
    if info.get("gpu"):
        return f"{info['gpu']} (GPU), host {cpu}"
    threads = info["torch_threads"]
    return f"{cpu} (CPU only), {threads} torch thread{'s' * (threads != 1)}"


def _corpus_sources(spec: str) -> dict:
    from acmtl.data.corpora import load_corpus

    corpus = load_corpus(spec)
    return {"spec": spec, "name": corpus.name, "sources": dict(corpus.sources)}


def provenance(profile: str, *, corpora: Iterable[str] = (), seeds: Iterable[int] = (), started: float,
               extra: dict | None = None) -> dict:
    prof = get_profile(profile)
    return {
        "git": _git(),
        "profile": profile,
        "encoder": prof.encoder,
        "train_config": {k: v for k, v in asdict(prof.train).items() if k != "seed"},
        "corpora": [_corpus_sources(c) for c in corpora],
        "seeds": list(seeds),
        "device": device_info(),
        "wall_seconds": round(time.time() - started, 1),
        "acmtl_version": acmtl.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": extra or {},
    }


def write_table(df: pd.DataFrame, name: str, profile: str, *, corpora: Iterable[str] = (),
                seeds: Iterable[int] = (), started: float, extra: dict | None = None) -> Path:
    """results_dir/name.csv (atomically) and name.provenance.json beside it; returns the CSV path."""
    results, _ = output_dirs(profile)
    path = results / f"{name}.csv"
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
    record = provenance(profile, corpora=corpora, seeds=seeds, started=started, extra=extra)
    record["table"] = {"file": path.name, "rows": len(df), "columns": list(df.columns)}
    atomic_write_bytes(results / f"{name}.provenance.json",
                       (json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
    return path


def save_figure(fig, name: str, profile: str) -> list[Path]:
    """figures_dir/name.png (150 dpi) and name.svg, each written atomically, without timestamps."""
    _, figures = output_dirs(profile)
    paths = []
    for suffix, options in ((".png", {"dpi": 150, "metadata": {"Software": None}}),
                            (".svg", {"metadata": {"Date": None}})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], bbox_inches="tight", **options)
        path = figures / f"{name}{suffix}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths
