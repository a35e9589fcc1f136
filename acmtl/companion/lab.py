"""What the teaching side needs besides the experiments: the notebooks' lessons and the class lab (docs/lab/).

* :func:`trained_config`: the AC-MTL every recorded run of a profile is built from (the settings
  :func:`acmtl.companion.experiments.run_spec` gives a run: tuning's choices and the profile's wiring), so notebook 00
  teaches the model that was trained; :func:`paper_config` is the same model with Eq. 11's block as printed, and
  :func:`departures` lists where the two differ and why;
* :func:`quick_training`: AC-MTL trained on a 200-sentence MSRA subset for a few epochs (notebook 00's last section):
  the loss parts and dev F1 per epoch, one sentence tagged before and after, the time and peak memory it took;
* :func:`readable`: a table as a student reads it, F1 and its kin in percent, seconds rounded;
* :func:`exercises` and :func:`answers`: the notebooks' exercises with their tags, and the answer key kept apart
  from them (``docs/lab/answers.md``), which tests/test_lab.py holds to each other.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from acmtl.companion import experiments as ex
from acmtl.companion.config import get_profile
from acmtl.companion.progress import echo
from acmtl.companion.wirings import PAPER_WIRING
from acmtl.core.model import ModelConfig
from acmtl.data.conll import Sentence, tags_to_entities

REPO = Path(__file__).resolve().parents[2]
ANSWERS = REPO / "docs" / "lab" / "answers.md"

# -- the model the recorded runs train ------------------------------------------------------------------------------


def trained_spec(profile: str, size: int | None = None, seed: int = 0, corpus: str = "msra", *,
                 model_overrides: dict | None = None, **train_overrides):
    """The :class:`acmtl.companion.runs.RunSpec` of AC-MTL under ``profile``, as Table 2's runs are specified."""
    return ex.run_spec(profile, corpus, "acmtl", size, seed, model_overrides=model_overrides, **train_overrides)


def trained_config(profile: str, tags: list[str], **overrides) -> ModelConfig:
    """The :class:`ModelConfig` of the recorded AC-MTL runs of ``profile`` (what :func:`acmtl.companion.runs.prepare`
    builds from their spec), with ``overrides`` on top; an override of None keeps the recorded runs' value."""
    chosen = {k: tuple(v) if k == "cnn_kernels" else v for k, v in overrides.items() if v is not None}
    spec = trained_spec(profile, model_overrides=chosen)
    return ModelConfig.for_architecture("acmtl", list(tags), encoder=spec.encoder, **spec.model_overrides)


def paper_config(profile: str, tags: list[str], **overrides) -> ModelConfig:
    """The same model with the CNN block of Eq. 11 as printed: S'' = GELU(MaxPool1D_3(S + S'))."""
    return replace(trained_config(profile, tags, **overrides), **PAPER_WIRING)


def block_formula(cfg: ModelConfig) -> str:
    """The CNN block of ``cfg`` as an equation (S: the attention's output, S': the projected convolutions)."""
    pooled = "S'" if cfg.cnn_block == "residual" else "S + S'"
    if cfg.pool_size > 1:
        pooled = f"MaxPool1D_{cfg.pool_size}({pooled})"
    return f"LN(S + Dropout(GELU({pooled})))" if cfg.cnn_block == "residual" else f"GELU({pooled})"


def loss_formula(weight: float) -> str:
    """The multi-task loss with the NER weight ``weight`` and the rest split evenly, rounded as printed."""
    return f"L = {weight:.3f}·L_ner + {(1 - weight) / 2:.3f}·(L_boundary + L_type)"


def describe(profile: str) -> str:
    """One line naming the AC-MTL the recorded runs of ``profile`` train: its block, dropout and loss."""
    cfg = trained_config(profile, ["O"])
    return (f"AC-MTL as the recorded runs of profile {profile!r} train it: S'' = {block_formula(cfg)}, "
            f"dropout {cfg.dropout:.3f}, {loss_formula(cfg.main_task_weight)}")


def departures(profile: str) -> pd.DataFrame:
    """Where the recorded AC-MTL runs depart from what the paper prints (section 3.1, Eq. 11, section 4.1), and why."""
    from acmtl.companion.claims import paper_setup

    paper, spec = paper_setup(), trained_spec(profile)
    ours, printed = trained_config(profile, ["O"]), paper_config(profile, ["O"])
    tuned = ("tuning study on the corpus' dev split, the same budget for every model (notebook 08)"
             if get_profile(profile).tuned.get("acmtl") else f"profile {profile!r} has no tuning study: the default")
    rows = [
        ("CNN block (Eq. 11)", f"S'' = {block_formula(printed)}", f"S'' = {block_formula(ours)}",
         "max-pooling S + S' overwrites each character's features with its neighbours'; "
         "notebook 03's diagnosis picks the wiring on dev F1"),
        ("dropout p (Eq. 14)", f"{paper['dropout']:g}", f"{ours.dropout:.3f}", tuned),
        ("NER loss weight w", f"{paper['main_task_loss_weight']:g}", f"{ours.main_task_weight:.3f}", tuned),
        ("learning rate, encoder", f"{paper['learning_rate']:g}", f"{spec.train.encoder_lr:.2e}", tuned),
        ("learning rate, added layers", f"{paper['learning_rate']:g}", f"{spec.train.head_lr:.2e}",
         "new layers start from random weights; " + tuned),
        ("epochs, early stopping", f"{paper['epochs']}, yes (patience not stated)",
         f"{spec.train.epochs}, patience {spec.train.patience}", "the same protocol for every model"),
        ("encoder (Eq. 8)", paper["encoder"], spec.encoder, "no model hub offline; any BERT-style encoder plugs in"),
    ]
    return pd.DataFrame(rows, columns=["setting", "the paper", "the recorded runs", "why"])


def wiring_evidence(profile: str) -> pd.DataFrame:
    """Notebook 03's diagnosis in two rows, from the committed run records (``results/runs/``): AC-MTL with the paper's
    block and with the recorded runs' wiring at the diagnosis size, mean F1 (%) over the seeds both were trained on.
    Empty where no such records exist (the smoke profile, a fresh study)."""
    import json

    prof = get_profile(profile)
    configs = {"Eq. 11 as printed": paper_config(profile, ["O"]), "the recorded runs'": trained_config(profile, ["O"])}
    wanted = {name: {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()
                     if k not in ("tags", "encoder_config", "vocab_size")} for name, cfg in configs.items()}
    scores: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in configs}  # seed -> (full test, dev)
    for path in sorted((REPO / "results" / "runs").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        spec, by_split = record["spec"], record["scores"]
        if (spec["arch"], spec["corpus"], spec["size"]) != ("acmtl", "msra", prof.ablation_size):
            continue
        for name, model in wanted.items():
            if all(spec["model"].get(k) == v for k, v in model.items()) and "corpus_dev" in by_split:
                scores[name][spec["seed"]] = (by_split["full_test"]["f1"], by_split["corpus_dev"]["f1"])
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in scores.values())))
    rows = [{"block": name, "S''": block_formula(cfg), "seeds": len(seeds),
             "full-test F1 (%)": 100 * sum(scores[name][s][0] for s in seeds) / len(seeds),
             "corpus-dev F1 (%)": 100 * sum(scores[name][s][1] for s in seeds) / len(seeds)}
            for name, cfg in configs.items()] if seeds else []
    return pd.DataFrame(rows, columns=["block", "S''", "seeds", "full-test F1 (%)", "corpus-dev F1 (%)"]).round(2)


# -- a training to watch -------------------------------------------------------------------------------------------

QUICK_SIZE, QUICK_EPOCHS = 200, 12  # 140 training sentences: a few minutes on a laptop's CPU


def quick_settings(profile: str) -> tuple[str, int, int]:
    """(corpus spec, subset size, epochs) of notebook 00's training: MSRA-200 for 12 epochs, or under a profile with
    a stand-in corpus (smoke) its first size for one epoch."""
    prof = get_profile(profile)
    if prof.stand_in_sentences:
        return ex.corpus_spec(profile, "msra"), prof.sizes[0], 1
    return "msra", QUICK_SIZE, QUICK_EPOCHS


def peak_memory_mib() -> float | None:
    """This process's peak resident memory so far in MiB; None where the platform does not report it."""
    try:
        import resource
    except ImportError:  # Windows: the peak working set, if psutil is installed
        try:
            import psutil

            return psutil.Process().memory_info().peak_wset / 2**20
        except (ImportError, AttributeError):
            return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS: bytes, Linux: KiB


def memory_mib() -> float | None:
    """This process's resident memory now in MiB; None where it cannot be read."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        status = Path("/proc/self/status")
        found = re.search(r"VmRSS:\s+(\d+) kB", status.read_text()) if status.is_file() else None
        return int(found.group(1)) / 1024 if found else None


@dataclass
class QuickRun:
    """What :func:`quick_training` saw: one row per epoch, the tagged sentence, what it cost."""

    curve: pd.DataFrame  # epoch, the loss and its parts, dev F1 in percent, seconds
    tagged: pd.DataFrame  # the sentence's gold entities and the model's before and after training
    weight: float  # the NER loss weight w the total was computed with
    train_sentences: int
    dev_sentences: int
    best_epoch: int
    wall_seconds: float
    cpu_seconds: float
    threads: int
    precision: str  # "bf16" or "fp32": what training ran in on this machine
    memory_before_mib: float | None
    peak_memory_mib: float | None
    load: float | None = None  # the machine's 1-minute load average when training ended (None: not reported)

    def table(self) -> pd.DataFrame:
        """The curve as printed: losses to 3 decimals, F1 to 0.1 point, seconds to 0.1 s."""
        return self.curve.round({c: 3 for c in self.curve if c.startswith("loss")} | {"dev F1 (%)": 1, "seconds": 1})

    def cost(self) -> str:
        """What the training took, measured here: wall and CPU time, threads, precision, memory."""
        from acmtl.companion.publish import duration

        def gib(mib: float | None) -> str:
            return "not reported on this platform" if mib is None else f"{mib / 1024:.2f} GiB"

        cores = os.cpu_count() or 1
        busy = (f"; the machine was busy (load {self.load:.1f} on {cores} cores): the wall time overstates what "
                f"training needs, the CPU time does not" if self.load is not None and self.load > cores + 0.5 else "")
        return (f"{self.train_sentences} training sentences x {len(self.curve)} epochs (dev: {self.dev_sentences}): "
                f"{duration(self.wall_seconds)} wall, {duration(self.cpu_seconds)} CPU on {self.threads} "
                f"thread{'s' * (self.threads != 1)}, {self.precision}; peak memory of this kernel "
                f"{gib(self.peak_memory_mib)} ({gib(self.memory_before_mib)} in use when training started){busy}")


def _entities(sentence: Sentence, tags: list[str]) -> str:
    found = [f"{e.type}:{sentence.text[e.start:e.end]}" for e in tags_to_entities(tags)]
    return ", ".join(found) or "(none)"


def _right(sentence: Sentence, tags: list[str]) -> str:
    gold, found = set(sentence.entities()), set(tags_to_entities(tags))
    return f"{len(gold & found)} of {len(gold)}"


def quick_training(profile: str, sentence: Sentence, *, size: int | None = None, epochs: int | None = None,
                   seed: int = 0, precision: str | None = None, log=print, **model_overrides) -> QuickRun:
    """Train AC-MTL as the recorded runs do (:func:`trained_spec`: same model, optimiser and settings) on a
    ``size``-sentence subset of MSRA for ``epochs`` epochs (:func:`quick_settings` for None) with
    :func:`acmtl.core.train.train`, in a temporary folder that is deleted afterwards; ``log`` gets a line per epoch.
    The learning rate warms up over as many steps as in the recorded runs (whose schedule spans the profile's
    epochs: a warm-up over 10 % of only ``epochs`` would reach the peak rate within the first epoch), then decays
    to 0 at the last epoch. ``sentence`` is tagged by the model training starts from and by the best one (dev F1
    selects it). ``precision``: "fp32" or "bf16" instead of the machine's choice ("auto")."""
    from acmtl.companion.runs import run_splits
    from acmtl.core.checkpoint import build_model, load_pretrained
    from acmtl.core.predict import predict_tags
    from acmtl.core.train import set_seed, tag_names, train

    corpus, default_size, default_epochs = quick_settings(profile)
    size, epochs = size or default_size, epochs or default_epochs
    source, splits = run_splits(corpus, size, seed)
    data = {name: splits[name] for name in ("train", "dev", "test")}  # not the 4,620 official test sentences
    recorded = trained_spec(profile, size, seed, corpus).train
    warmup = min(1.0, recorded.warmup * recorded.epochs / epochs)  # the recorded runs' warm-up steps
    spec = trained_spec(profile, size, seed, corpus, epochs=epochs, warmup=warmup, test_curve=False,
                        precision=precision or recorded.precision)
    cfg = trained_config(profile, tag_names(source.types), **model_overrides)

    set_seed(spec.train.seed)  # what train() does before it builds the model: the same starting weights
    untrained, tokenizer = build_model(replace(cfg))
    before = predict_tags(untrained, tokenizer, [sentence.chars])[0]
    del untrained

    rows = []

    def on_epoch(row: dict) -> None:
        rows.append(row)
        line = (f"epoch {row['epoch']}/{epochs}: L = {row['loss']:.3f} (L_ner {row['loss_ner']:.3f}, "
                f"L_boundary {row.get('loss_boundary', float('nan')):.3f}, "
                f"L_type {row.get('loss_type', float('nan')):.3f})   dev F1 {100 * row['dev_f1']:.1f} %   "
                f"{row['seconds']:.0f} s")
        log(line)
        echo(f"quick training of AC-MTL on {len(data['train'])} sentences, {line}")  # ./run_all.sh's terminal

    memory_before = memory_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="acmtl-quick-") as out:
        metrics = train(replace(cfg), spec.train, data, out, progress=False, checkpoint_every=float("inf"),
                        on_epoch=on_epoch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best, tokenizer = load_pretrained(Path(out) / "model")
    after = predict_tags(best, tokenizer, [sentence.chars])[0]

    curve = pd.DataFrame(rows)
    curve = curve.assign(dev_f1=100 * curve["dev_f1"]).rename(columns={"dev_f1": "dev F1 (%)"})
    curve = curve[["epoch", *[c for c in ("loss", "loss_ner", "loss_boundary", "loss_type") if c in curve],
                   "dev F1 (%)", "seconds"]]
    labels = ["gold", "before training (epoch 0)", f"after training (epoch {metrics['best_epoch']})"]
    tagged = pd.DataFrame({"entities": [_entities(sentence, list(sentence.tags)), _entities(sentence, before),
                                        _entities(sentence, after)],
                           "gold entities found": ["", _right(sentence, before), _right(sentence, after)]},
                          index=labels)
    return QuickRun(curve, tagged, cfg.main_task_weight, len(data["train"]), len(data["dev"]), metrics["best_epoch"],
                    wall, cpu, torch.get_num_threads(), metrics["precision"], memory_before, peak_memory_mib(),
                    os.getloadavg()[0] if hasattr(os, "getloadavg") else None)


def plot_training(run: QuickRun):
    """Left: the loss and its parts per epoch; right: dev F1 (%) per epoch, the selected epoch marked."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    parts = {"loss_ner": "L_ner (CRF)", "loss_boundary": "L_boundary", "loss_type": "L_type"}
    for column, label in parts.items():
        if column in run.curve:
            left.plot(run.curve["epoch"], run.curve[column], marker="o", label=label)
    left.plot(run.curve["epoch"], run.curve["loss"], color="black", linewidth=2.5, marker="o",
              label="L, what training minimises")
    left.set(xlabel="epoch", ylabel="mean training loss (log scale)", yscale="log",
             title=f"the loss and its parts ({loss_formula(run.weight)})")
    left.title.set_fontsize(9)
    left.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    left.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    left.legend(fontsize=8)
    right.plot(run.curve["epoch"], run.curve["dev F1 (%)"], marker="o", color="tab:green")
    best = run.curve[run.curve["epoch"] == run.best_epoch]
    right.scatter(best["epoch"], best["dev F1 (%)"], s=120, facecolors="none", edgecolors="black", zorder=3,
                  label=f"selected: epoch {run.best_epoch}")
    right.set(xlabel="epoch", ylabel="dev F1 (%)", ylim=(0, 100),
              title=f"entity F1 on the {run.dev_sentences} dev sentences")
    right.legend(fontsize=8, loc="upper left")
    for ax in (left, right):
        ax.set_xticks(run.curve["epoch"])
    fig.tight_layout()
    return fig


# -- tables as a student reads them -----------------------------------------------------------------------------

_SCORE = re.compile(r"(^|_)(precision|recall|f1)($|_)")


def readable(df: pd.DataFrame, percent: tuple[str, ...] | list[str] = (), digits: int = 2) -> pd.DataFrame:
    """``df`` with its precision, recall and F1 columns (fractions in the tables) and the columns in ``percent``
    (differences of F1 and their intervals) in percent to ``digits`` decimals, renamed "... (%)", seconds to 0.1 s
    and the floats of JSON settings to 4 significant digits. Columns already in points (``*_points``) are left
    alone."""
    shown = df.copy()
    renamed = {}
    for column in shown.columns:
        name = str(column)
        numeric = pd.api.types.is_numeric_dtype(shown[column]) and not pd.api.types.is_bool_dtype(shown[column])
        if numeric and (name in percent or (_SCORE.search(name) and "points" not in name)):
            shown[column] = (100 * shown[column]).round(digits)
            renamed[column] = f"{name} (%)"
        elif numeric and "seconds" in name:
            shown[column] = shown[column].round(1)
        elif not numeric:
            shown[column] = shown[column].map(_rounded_settings)
    return shown.rename(columns=renamed)


def _rounded_settings(value):
    """A JSON object of settings (a tuning study's choice) with its floats to 4 significant digits; else ``value``."""
    import json

    if not (isinstance(value, str) and value.startswith("{")):
        return value
    try:
        settings = json.loads(value)
    except ValueError:
        return value
    return json.dumps({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in settings.items()})


# -- exercises and their answers ---------------------------------------------------------------------------------

_ITEM = re.compile(r"^(\d+)\. \*\*(.+?)\*\*", re.M)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|min|h)\b")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(MiB|GiB)\b")
_MINUTES = {"s": 1 / 60, "min": 1, "h": 60}
HOMEWORK_MINUTES = 10  # an exercise that may take longer is homework


@dataclass(frozen=True)
class Exercise:
    notebook: str  # its stem, e.g. "00_method_walkthrough"
    number: int
    title: str
    text: str
    expected: str  # the *Expect:* tag: what the student should see ("" when missing)
    time: str  # the *Time:* tag ("" when missing)
    memory: str  # the *Memory:* tag ("" when missing)
    homework: bool  # tagged **homework**

    @property
    def minutes(self) -> float | None:
        """The longest duration the time tag names (its fp32 estimate where it gives one), in minutes."""
        found = [float(n) * _MINUTES[unit] for n, unit in _DURATION.findall(self.time)]
        return max(found) if found else None

    @property
    def memory_gib(self) -> float | None:
        """The memory tag's first size, in GiB."""
        found = _SIZE.search(self.memory)
        return float(found.group(1)) / (1024 if found.group(2) == "MiB" else 1) if found else None


def _tag(text: str, name: str) -> str:
    """The text of the tag ``*name:*`` up to the next tag, bullet or exercise, on one line."""
    found = re.search(rf"\*{name}:\*\s*(.+?)(?=\s*·\s*\*|\n\s*[-*] |\n\d+\. \*\*|\Z)", text, re.S)
    return " ".join(found.group(1).split()) if found else ""


def exercises(notebook: Path) -> list[Exercise]:
    """The numbered exercises under a notebook's "Exercises" heading, with their tags: ``*Expect:*``, ``*Time:*``,
    ``*Memory:*`` and ``**homework**``."""
    import json

    found = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        heading = re.search(r"^#+ (?:\d+\. )?Exercises\b", source, re.M) if cell["cell_type"] == "markdown" else None
        if heading is None:
            continue
        body = source[heading.end():]
        items = list(_ITEM.finditer(body))
        for item, following in zip(items, [*items[1:], None]):
            text = body[item.start(): following.start() if following else len(body)]
            found.append(Exercise(notebook.stem, int(item.group(1)), item.group(2).strip().rstrip("."), text,
                                  _tag(text, "Expect"), _tag(text, "Time"), _tag(text, "Memory"),
                                  "**homework**" in text))
    return found


def exercise_problems(notebooks: list[Path], key: dict[tuple[str, int], tuple[str, str]]) -> list[str]:
    """What a lab cannot use: an exercise without its expected outcome, time or memory tag, a long one not marked
    homework (or a short one marked), one without an answer in the key or under another title, an answer to no
    exercise, a placeholder left in an answer."""
    problems, seen = [], set()
    for notebook in notebooks:
        found = exercises(notebook)
        if not found:
            problems.append(f"{notebook.stem}: no exercises")
        for ex_ in found:
            name = f"{ex_.notebook} exercise {ex_.number} ({ex_.title})"
            problems += [f"{name}: no *{tag}:* tag" for tag, value in
                         (("Expect", ex_.expected), ("Time", ex_.time), ("Memory", ex_.memory)) if not value]
            if ex_.time and ex_.minutes is None:
                problems.append(f"{name}: the time tag names no duration")
            if ex_.memory and ex_.memory_gib is None:
                problems.append(f"{name}: the memory tag names no size in MiB or GiB")
            if ex_.minutes is not None and (ex_.minutes > HOMEWORK_MINUTES) != ex_.homework:
                problems.append(f"{name}: {ex_.minutes:g} min but {'' if ex_.homework else 'not '}tagged homework")
            entry = (ex_.notebook[:2], ex_.number)
            seen.add(entry)
            if entry not in key:
                problems.append(f"{name}: no answer in the key")
            else:
                title, answer = key[entry]
                if title != ex_.title:
                    problems.append(f"{name}: the key answers {title!r}")
                if not answer or re.search(r"\{[A-Z0-9_]+\}|TODO", answer):
                    problems.append(f"{name}: its answer is empty or a placeholder")
    problems += [f"the key answers {prefix} · {number}, which no notebook asks" for prefix, number in key
                 if (prefix, number) not in seen]
    return problems


def answers(path: Path = ANSWERS) -> dict[tuple[str, int], tuple[str, str]]:
    """The answer key: (notebook prefix "00", exercise number) -> (title, answer), from headings
    ``### 00 · 1. Title`` and the text under each."""
    text = path.read_text(encoding="utf-8")
    heads = list(re.finditer(r"^### (\d\d) · (\d+)\. (.+)$", text, re.M))
    key = {}
    for head, following in zip(heads, [*heads[1:], None]):
        body = text[head.end(): following.start() if following else len(text)]
        body = re.split(r"^#{1,2} ", body, maxsplit=1, flags=re.M)[0]  # up to the next section
        key[(head.group(1), int(head.group(2)))] = (head.group(3).strip().rstrip("."), body.strip())
    return key
