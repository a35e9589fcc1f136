"""Where a notebook's results go and what they record: the output folders (published ``results/`` and
``figures/``, or an exercise's ``build/``), the run cache's place, and every table's provenance.

Only a *published* run writes the committed ``results/`` and ``figures/``: the ``default`` profile, started by
``./run_all.sh`` (which sets ``ACMTL_PUBLISH=1`` in the kernel's environment), with every parameter as committed
(:func:`start_notebook`). Any other run writes ``build/<profile>/...`` (``build/exercise/`` for an unpublished
default run), so an exercise, a smoke or a paper run never overwrites them. ``ACMTL_OUTPUT_ROOT=DIR`` moves the
root (the repository by default) for every profile: the tests point it at a temporary folder.
"""

from __future__ import annotations

import ast
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from acmtl.companion.config import get_profile
from acmtl.companion.progress import Watch, peak_memory_mib, watch_memory
from acmtl.data.fetch import atomic_write_bytes
from acmtl.paths import cache_dir, runs_dir
from acmtl.version import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_ROOT_ENV = "ACMTL_OUTPUT_ROOT"
SHARED_RUN_PROFILES = ("default", "paper")  # their runs live in the one run cache, runs/


def output_root() -> Path:
    """The folder under which results/, figures/ and build/ go: ``$ACMTL_OUTPUT_ROOT`` or the repository."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or REPO_ROOT).expanduser().resolve()


def _profile_root(profile: str) -> Path:
    get_profile(profile)  # an unknown profile fails here, with the list of known ones
    return output_root() if profile == "default" else output_root() / "build" / profile


def _mkdirs(base: Path) -> tuple[Path, Path]:
    dirs = base / "results", base / "figures"
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def output_dirs(profile: str) -> tuple[Path, Path]:
    """(results_dir, figures_dir) of ``profile``, created if missing: where its tables are read from."""
    return _mkdirs(_profile_root(profile))


# -- where a notebook run writes: published (results/, figures/) or an exercise (build/exercise/) -------

EXERCISE = "exercise"  # build/exercise/: the default profile's outputs from an unpublished run
_exercise_reason: str | None = None  # set by start_notebook: why this kernel's default-profile writes go to build/


def target_dirs(profile: str) -> tuple[Path, Path]:
    """(results_dir, figures_dir) that :func:`write_table` and :func:`save_figure` write for ``profile``: its
    :func:`output_dirs`, except that an unpublished default-profile notebook run writes ``build/exercise/``."""
    if profile == "default" and _exercise_reason is not None:
        return _mkdirs(output_root() / "build" / EXERCISE)
    return output_dirs(profile)


def committed_parameters(notebook: str) -> dict:
    """The literal values of the parameters cell of ``notebooks/<notebook>.ipynb`` as committed (git HEAD; the
    file on disk outside a git checkout): the settings the committed results were made with."""
    path = f"notebooks/{notebook}.ipynb"
    try:
        text = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"HEAD:{path}"], capture_output=True, text=True,
                              check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        text = (REPO_ROOT / path).read_text(encoding="utf-8")
    cell = next(c for c in json.loads(text)["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


PUBLISH_ENV = "ACMTL_PUBLISH"  # "1" in the environment ./run_all.sh starts its notebooks' kernels with


def start_notebook(notebook: str, namespace: Mapping) -> Path:
    """Decide where a notebook run writes, say so as its first output, and return that folder (relative).

    ``namespace``: the notebook's ``globals()``, holding its parameters. The run is *published* (it writes
    results/ and figures/) only under the default profile, started by ``./run_all.sh`` (``$ACMTL_PUBLISH`` is 1)
    with every parameter equal to the committed parameters cell; otherwise its default-profile tables and
    figures go to build/exercise/, and the committed ones stay as they are. The switch lives in the environment,
    not in a notebook parameter: an executed notebook stores the parameters papermill injected, so a stored
    ``publish = True`` would publish again whenever the committed notebook is rerun by hand.
    """
    global _exercise_reason
    watch_memory()  # the kernel's peak memory, its training workers' included, for the tables' provenance
    committed = committed_parameters(notebook)
    profile = namespace["profile"]
    changed = [name for name, value in committed.items() if name != "profile" and namespace.get(name) != value]
    _exercise_reason = None
    if profile == "default" and os.environ.get(PUBLISH_ENV) != "1":
        _exercise_reason = f"not started by ./run_all.sh (no {PUBLISH_ENV}=1)"
    elif profile == "default" and changed:
        _exercise_reason = "parameters changed from the committed ones: " + ", ".join(changed)
    results, _ = target_dirs(profile)
    where = _shown(results.parent)
    if _exercise_reason:
        print(f"EXERCISE RUN, {_exercise_reason}: tables and figures go to {where}/results and {where}/figures; "
              "the committed results/ and figures/ are left as they are.")
        # what to expect of this rerun; never in a published run's output, which would keep the time of the run
        # it replaces beside its own (the notebook's metadata)
        print(time_note(notebook))
    elif profile == "default":
        print("Published run (default profile, committed parameters, ./run_all.sh): writes results/ and figures/.")
    else:
        print(f"Profile {profile!r}: tables and figures go to {where}/results and {where}/figures.")
    return results.parent


def kernel_config():
    """The traitlets configuration to start notebook kernels with (``config=`` of nbclient's NotebookClient or
    papermill's execute_notebook): IPC transport where the platform has it (POSIX), so the kernel's code and
    outputs pass through sockets only this user can open, not unencrypted local TCP ports. The sockets live in
    Jupyter's runtime folder: their default path is relative, and the kernel runs in the notebook's folder."""
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Config({"KernelManager": {"transport": "ipc", "ip": str(runtime / f"acmtl-kernel-{os.getpid()}")}})


def execute(notebook: str, output: str, profile: str, kernel: str = "acmtl") -> None:
    """Run ``notebook`` into ``output`` with papermill under ``profile``, its kernel talking over IPC sockets
    (:func:`kernel_config`): what ``./run_all.sh`` does for each notebook (papermill's command line cannot set the
    transport, so every kernel start warned "running over TCP without encryption"). While it runs, a line every
    minute says which cell runs, and the bars of the models it trains reach the terminal
    (:class:`acmtl.companion.progress.Watch`); at the end, a line gives the peak memory of its kernel's processes."""
    import papermill

    with Watch(Path(notebook).stem, Path(output)):
        papermill.execute_notebook(notebook, output, parameters={"profile": profile}, kernel_name=kernel,
                                   progress_bar=False, config=kernel_config())


def _shown(path: Path) -> str:
    """``path`` relative to the output root (never a machine's absolute path in a notebook's output)."""
    try:
        return str(path.relative_to(output_root())) or "."
    except ValueError:
        return path.name


def runs_root(profile: str) -> Path:
    """The run cache: runs/ for default and paper (shared with the CLI); a private one for smoke."""
    if profile in SHARED_RUN_PROFILES:
        root = runs_dir()
        return root if root.is_absolute() else REPO_ROOT / root  # the same folder from notebooks/ as from the CLI
    return _profile_root(profile) / "runs"


GENERATED = ("results", "figures")  # written by run_all.sh itself: never a change to the experiment
NOTEBOOKS = "notebooks"  # executed in place by run_all.sh: only a change to a cell's source is one


RUN_ALL_PARAMETERS = ("profile",)  # what run_all.sh passes: provenance records it in its own field


def _run_all_parameters_only(cell: dict, source: str) -> bool:
    """Whether ``cell`` is papermill's injected-parameters cell setting nothing but :data:`RUN_ALL_PARAMETERS`."""
    if "injected-parameters" not in cell.get("metadata", {}).get("tags", []):
        return False
    try:
        statements = ast.parse(source).body
    except SyntaxError:
        return False
    return all(isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) and t.id in RUN_ALL_PARAMETERS
                                                 for t in s.targets) for s in statements)


def _cell_sources(notebook_json: str) -> list[tuple[str, str]]:
    """(cell type, source) of every cell: what a notebook asks for, without what running it wrote (outputs, and
    the cell papermill injects with run_all.sh's profile; any other injected value counts)."""
    cells = json.loads(notebook_json).get("cells", [])
    sources = [(cell, "".join(cell.get("source", ""))) for cell in cells]
    return [(cell.get("cell_type", ""), source) for cell, source in sources
            if not _run_all_parameters_only(cell, source)]


def _only_outputs_changed(path: str, git: Callable[..., str]) -> bool:
    """Whether ``path`` is a notebook under notebooks/ whose cell sources equal HEAD's (outputs may differ)."""
    if not (path.startswith(f"{NOTEBOOKS}/") and path.endswith(".ipynb")):
        return False
    try:
        current = (REPO_ROOT / path).read_text(encoding="utf-8")
        return _cell_sources(current) == _cell_sources(git("show", f"HEAD:{path}"))
    except (OSError, subprocess.SubprocessError, ValueError):  # new, deleted or unreadable: a change
        return False


def git_state() -> dict:
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

    from acmtl.companion.bench import machine_info
    from acmtl.core.predict import default_device

    info = machine_info(default_device())
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


def _mib(folder: Path) -> float:
    """Disk use of the files under ``folder`` in MiB (0 when it does not exist)."""
    sizes = (f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    return round(sum(sizes) / 2**20, 1) if folder.is_dir() else 0.0


def resources(profile: str) -> dict:
    """What a run of the notebooks costs besides time: the peak memory so far of this process and the processes it
    started (a notebook's kernel and its training workers: :func:`acmtl.companion.progress.peak_memory_mib`) and the
    disk taken by the environment, the data and encoder cache and the run cache, when the table is written."""
    return {"peak_memory_mib": peak_memory_mib(),
            "disk_mib": {"environment": _mib(Path(sys.prefix)), "cache": _mib(cache_dir()),
                         "runs": _mib(runs_root(profile))}}


def _portable(value):
    """``value`` (nested dicts and lists) with every absolute path made relative to the output root, the
    repository or the run cache (else cut to its name): a provenance record names no machine's folders."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v) for v in value]
    if not (isinstance(value, str) and value.startswith("/")):
        return value
    path = Path(value)
    for root, shown in ((output_root(), ""), (REPO_ROOT, ""), (runs_root("default"), "runs")):
        if path.is_relative_to(root):
            return str(Path(shown) / path.relative_to(root))
    return path.name


def records_summary(extra: dict) -> dict:
    """How many run records a table was computed from (``extra["runs"]``: rows with a ``record`` file) and the
    code digests they were trained with: one digest, the current one, when the table is at this code."""
    from acmtl.companion.runs import code_digest

    files = {row["record"] for row in extra.get("runs", []) if isinstance(row, dict) and row.get("record")}
    digests = [json.loads(Path(f).read_text(encoding="utf-8"))["code_sha256"] for f in sorted(files)]
    return {"runs": len(digests), "at_this_code": digests.count(code_digest()),
            "code_sha256": sorted(set(digests))}


def provenance(profile: str, *, corpora: Iterable[str] = (), seeds: Iterable[int] = (), started: float,
               extra: dict | None = None) -> dict:
    prof = get_profile(profile)
    extra = extra or {}
    return {
        "git": git_state(),
        "profile": profile,
        "encoder": prof.encoder,
        "train_config": {k: v for k, v in asdict(prof.train).items() if k != "seed"},
        "corpora": [_corpus_sources(c) for c in corpora],
        "seeds": list(seeds),
        "device": device_info(),
        "wall_seconds": round(time.time() - started, 1),
        "resources": resources(profile),
        "acmtl_version": __version__,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "records": records_summary(extra),
        "extra": _portable(extra),
    }


def write_table(df: pd.DataFrame, name: str, profile: str, *, corpora: Iterable[str] = (),
                seeds: Iterable[int] = (), started: float, extra: dict | None = None) -> Path:
    """results_dir/name.csv (atomically) and name.provenance.json beside it (:func:`target_dirs`); returns the
    CSV path."""
    results, _ = target_dirs(profile)
    path = results / f"{name}.csv"
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
    record = provenance(profile, corpora=corpora, seeds=seeds, started=started, extra=extra)
    record["table"] = {"file": path.name, "rows": len(df), "columns": list(df.columns)}
    atomic_write_bytes(results / f"{name}.provenance.json",
                       (json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
    return path


def save_figure(fig, name: str, profile: str) -> list[Path]:
    """figures_dir/name.png (150 dpi) and name.svg (:func:`target_dirs`), each written atomically, without
    timestamps."""
    _, figures = target_dirs(profile)
    paths = []
    for suffix, options in ((".png", {"dpi": 150, "metadata": {"Software": None}}),
                            (".svg", {"metadata": {"Date": None}})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], bbox_inches="tight", **options)
        path = figures / f"{name}{suffix}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


# -- how long each notebook took: the clocks in its tables' provenance --------------------------------------


def duration(seconds: float) -> str:
    """``seconds`` as people say it: "40 s", "6.2 min", "1 h 27 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


NOTEBOOK_TABLES = {
    "01_performance": ("table2_performance", "table2_anchors", "table2_head_to_head"),
    "02_speed_params": ("figure6_speed_params", "figure6_backends", "figure6_workers"),
    "03_ablation": ("table3_ablation", "table3_ablation_steps", "table3_diagnosis", "table3_diagnosis_pairs"),
    "04_attention": ("figure7_attention_scores",),
    "05_robustness": ("figure8_curves", "figure8_noise", "figure8_vs_paper"),
    "06_legal_theme_river": ("figure9_agreement_types", "figure9_agreement_windows", "figure9_test_streams",
                             "figure9_case_stream"),
    "07_error_analysis": ("figure10_error_categories", "figure10_error_examples", "figure10_error_type_pairs"),
    "08_tuning": ("tuning_summary",),
}


def timings(results: Path) -> pd.DataFrame:
    """Per notebook: the wall time of its last run (the last table it wrote, from provenance), its peak memory then
    (MiB and as read; None where its provenance predates the measure), profile, day, machine."""
    rows = []
    for notebook, tables in NOTEBOOK_TABLES.items():
        records = [json.loads((results / f"{t}.provenance.json").read_text(encoding="utf-8"))
                   for t in tables if (results / f"{t}.provenance.json").is_file()]
        if records:
            last = max(records, key=lambda r: r["wall_seconds"])
            device = last["device"]
            peak = last.get("resources", {}).get("peak_memory_mib")
            rows.append({"notebook": notebook, "profile": last["profile"], "wall_seconds": last["wall_seconds"],
                         "wall": duration(last["wall_seconds"]), "peak_memory_mib": peak,
                         "peak_memory": None if peak is None else f"{peak / 1024:.1f} GiB",
                         "date": last["timestamp"][:10],
                         "machine": f"{device.get('gpu') or device.get('cpu')}, {device['cpu_count']} cores"})
    return pd.DataFrame(rows, columns=["notebook", "profile", "wall_seconds", "wall", "peak_memory_mib", "peak_memory",
                                       "date", "machine"])


def time_note(notebook: str, results: Path | None = None) -> str:
    """How long the last run of ``notebook`` that wrote ``results`` (default: the committed results/) took."""
    times = timings(results or output_dirs("default")[0]).set_index("notebook")
    if notebook not in times.index:
        return f"{notebook}: no run recorded in results/ yet."
    t = times.loc[notebook]
    return f"The run that wrote results/ took {t['wall']} ({t['profile']} profile, {t['date']}, {t['machine']})."


if __name__ == "__main__":  # ./run_all.sh: python -m acmtl.companion.publish NOTEBOOK OUTPUT PROFILE
    execute(*sys.argv[1:4])
