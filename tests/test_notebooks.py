"""Every numbered notebook runs end to end under the smoke profile and writes its tables and figures.

The notebooks execute with papermill in a fresh kernel, with ``ACMTL_OUTPUT_ROOT`` pointing at a
temporary folder, so the committed results/ and figures/ are never touched. The folder is shared
by all notebooks of one session: later notebooks reuse the smoke runs of earlier ones, as they do
under ``run_all.sh``. This is the slowest test file (several minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_results_provenance import provenance_problems

from acmtl.companion import publish, tables
from acmtl.companion.publish import git_state, kernel_config

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WRITES_NOTHING = {"00_method_walkthrough"}  # a walkthrough of the model: it computes, it writes no results
# Notebooks whose output names are fixed; every other one must write at least one table and one figure.
EXPECTED = {
    "01_performance": (["table2_performance", "table2_anchors", "table2_head_to_head"], ["table2_performance"]),
    "02_speed_params": (["figure6_speed_params", "figure6_backends", "figure6_workers"], ["figure6_speed_params"]),
    "03_ablation": (["table3_ablation", "table3_ablation_steps", "table3_diagnosis", "table3_diagnosis_pairs"],
                    ["table3_ablation"]),
    "05_robustness": (["figure8_curves", "figure8_noise", "figure8_vs_paper"],
                      ["figure8_robustness", "figure8_loss_parts"]),
    "08_tuning": (["tuning_summary"], ["tuning_acmtl_history", "tuning_encoder_crf_importances"]),
}


@pytest.fixture(scope="session")
def output_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook_outputs")


def _files(folder: Path, suffix: str) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in folder.glob(f"*{suffix}")} if folder.is_dir() else {}


def _committed() -> dict[str, float]:
    return {str(p): p.stat().st_mtime for d in ("results", "figures") for p in (REPO / d).rglob("*") if p.is_file()}


def _new(before: dict[str, float], after: dict[str, float]) -> set[str]:
    return {name for name, mtime in after.items() if before.get(name) != mtime}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(notebook: Path, output_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(output_root))  # the kernel inherits it
    results, figures = output_root / "build" / "smoke" / "results", output_root / "build" / "smoke" / "figures"
    before = {s: _files(d, s) for d, s in ((results, ".csv"), (figures, ".png"))}
    committed = _committed()

    executed = output_root / "executed" / notebook.name
    executed.parent.mkdir(exist_ok=True)
    papermill.execute_notebook(str(notebook), str(executed), parameters={"profile": "smoke"}, kernel_name="python3",
                               cwd=str(notebook.parent), progress_bar=False, config=kernel_config())
    git_now = git_state()  # the same tree the kernel saw: its commit and whether a file differs from it

    tables = sorted(_new(before[".csv"], _files(results, ".csv")))
    pngs = sorted(_new(before[".png"], _files(figures, ".png")))
    if notebook.stem not in WRITES_NOTHING:
        assert tables, f"{notebook.name} wrote no table to {results}"
        assert pngs, f"{notebook.name} wrote no figure to {figures}"
    for table in tables:
        provenance = results / table.replace(".csv", ".provenance.json")
        assert provenance.is_file(), f"{notebook.name}: {table} has no provenance file"
        record = json.loads(provenance.read_text())
        assert record["profile"] == "smoke" and record["device"] and record["acmtl_version"], f"{provenance}"
        assert record["git"] == git_now, f"{provenance} names {record['git']}, the tree is {git_now}"
        assert provenance_problems(results / table, committed=False) == [], f"{provenance} disagrees with {table}"
    for png in pngs:
        assert (figures / png.replace(".png", ".svg")).is_file(), f"{notebook.name}: {png} has no SVG twin"
    wanted_tables, wanted_figures = EXPECTED.get(notebook.stem, ((), ()))
    missing = [f"{t}.csv" for t in wanted_tables if f"{t}.csv" not in tables]
    missing += [f"{f}.png" for f in wanted_figures if f"{f}.png" not in pngs]
    assert not missing, f"{notebook.name} did not write {missing}"
    assert _committed() == committed, f"{notebook.name} changed the committed results/ or figures/"


def test_run_all_plan_holds_exactly_the_runs_the_notebooks_train(output_root: Path, monkeypatch) -> None:
    """``./run_all.sh`` trains :func:`plan.planned_runs` in one pool before the notebooks: each run a
    notebook trains outside it trains alone (a core idle), each planned run no notebook uses is wasted. Notebook
    08's tuning trials are left to their notebook."""
    from acmtl.companion import experiments as ex
    from acmtl.companion import plan as plans
    from acmtl.companion import tune
    from acmtl.companion.config import get_profile
    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(output_root))
    executed = {p.name for p in (output_root / "executed").glob("*.ipynb")}
    if executed != {p.name for p in NOTEBOOKS}:
        pytest.skip("needs every notebook executed in this session (test_notebook_runs_in_smoke_profile)")
    root, prof = publish.runs_root("smoke"), get_profile("smoke")
    trained = {d.name: json.loads((d / "run.json").read_text()) for d in root.iterdir() if (d / "run.json").is_file()}
    corpus = ex.corpus_spec("smoke", "msra")
    trials = [tune.load_trials("smoke", corpus, prof.tune_size, arch) for arch in prof.tune_archs]
    tuning = {run for table in trials if table is not None for run in table["run_id"].dropna()}
    planned = set(plans.planned_runs("smoke"))
    assert set(trained) - planned - tuning == set(), "notebooks trained runs the plan lacks"
    assert planned - set(trained) == set(), "planned runs no notebook trained"


# -- the notebook infrastructure itself (fast) ---------------------------------------------------


def test_output_dirs_follow_profile_and_env(tmp_path, monkeypatch) -> None:

    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    assert publish.output_dirs("default") == (tmp_path / "results", tmp_path / "figures")
    smoke = tmp_path / "build" / "smoke"
    assert publish.output_dirs("smoke") == (smoke / "results", smoke / "figures")
    assert all(d.is_dir() for d in publish.output_dirs("smoke"))
    assert publish.runs_root("smoke") == smoke / "runs"
    monkeypatch.setenv("ACMTL_RUNS", "runs")
    assert publish.runs_root("default") == REPO / "runs"  # the CLI's run cache, wherever the notebook runs from
    with pytest.raises(ValueError, match="unknown profile"):
        publish.output_dirs("fast")


def test_write_table_and_figure_with_provenance(tmp_path, monkeypatch) -> None:
    import time

    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from acmtl.companion import plots

    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    started = time.time()
    path = publish.write_table(pd.DataFrame({"arch": ["acmtl"], "f1": [0.5]}), "t", "smoke", corpora=["resume"],
                               seeds=[0, 1], started=started, extra={"why": "test"})
    assert pd.read_csv(path).to_dict("records") == [{"arch": "acmtl", "f1": 0.5}]
    record = json.loads(path.with_suffix(".provenance.json").read_text())
    assert record["profile"] == "smoke" and record["seeds"] == [0, 1] and record["extra"] == {"why": "test"}
    assert record["table"] == {"file": "t.csv", "rows": 1, "columns": ["arch", "f1"]}
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git"]["commit"] == head and record["git"] == git_state()  # dirty: what git says of the tree now
    corpus = record["corpora"][0]
    assert corpus["name"] == "resume" and all(len(h) == 64 for h in corpus["sources"].values())
    assert record["encoder"] == "m3e-small" and record["device"]["cpu_count"] >= 1
    fig, axes = plots.new_figure()
    axes[0][0].plot([0, 1], [0, 1])
    pngs = publish.save_figure(fig, "f", "smoke")
    assert [p.suffix for p in pngs] == [".png", ".svg"]
    first = pngs[1].read_bytes()
    publish.save_figure(fig, "f", "smoke")
    assert pngs[1].read_bytes() == first  # no timestamps, stable ids: a rerun does not change the SVG


def test_smoke_stand_in_corpus_is_small_and_stable(tmp_path, monkeypatch) -> None:
    from acmtl.companion import experiments as ex
    from acmtl.data.corpora import load_corpus

    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    assert ex.corpus_spec("default", "resume") == "resume"
    spec = ex.corpus_spec("smoke", "resume")
    assert spec.startswith("resume-stand-in=") and ex.corpus_spec("smoke", spec) == spec
    corpus = load_corpus(spec)
    sizes = {split: len(part) for split, part in corpus.splits.items()}
    assert sum(sizes.values()) == 240 and sizes["test"] == 60, sizes
    assert set(corpus.types) <= set(load_corpus("resume").types)
    assert ex.corpus_spec("smoke", "resume") == spec  # the same folder, not rewritten


def test_summarize_mean_and_sample_std() -> None:
    import pandas as pd


    runs = pd.DataFrame({"corpus": "msra", "arch": "acmtl", "size": 200, "seed": [0, 1, 2],
                         "test_precision": [0.5, 0.6, 0.7], "test_recall": [0.5, 0.5, 0.5], "test_f1": [0.4, 0.5, 0.6]})
    row = tables.summarize(runs, splits=("test", "full_test")).iloc[0]
    assert row["seeds"] == 3 and row["test_f1_mean"] == pytest.approx(0.5) and row["test_f1_std"] == pytest.approx(0.1)
    assert row["test_f1"] == "50.00 ± 10.00" and "full_test_f1" not in row
    one = tables.summarize(runs.iloc[:1]).iloc[0]  # one seed: the mean alone, no "± 0.00"
    assert one["seeds"] == 1 and one["test_f1"] == "40.00" and one["test_f1_std"] == 0.0


def test_architecture_parameters_match_a_built_model() -> None:
    from acmtl.core.checkpoint import build_model
    from acmtl.core.encoders import bert_base_config
    from acmtl.core.model import ModelConfig, count_parameters
    from acmtl.core.train import tag_names

    types = ("LOC", "ORG", "PER")
    built, _ = build_model(ModelConfig.for_architecture("acmtl", tag_names(types)))
    assert tables.architecture_parameters("acmtl", types) == count_parameters(built)
    base = tables.architecture_parameters("encoder_crf", types, bert_base_config().to_dict())
    # by hand: bert-base-chinese has 102,267,648 parameters, 590,592 of them in the pooler we drop; on top, a
    # 768 -> 13 linear layer (O + B/I/E/S of 3 types) and the CRF's 13 x 13 transitions and 13 start and end scores
    tags = 1 + 4 * len(types)
    added = 768 * tags + tags + tags * tags + 2 * tags
    assert base == {"total": 102_267_648 - 590_592 + added, "encoder": 102_267_648 - 590_592, "added": added}


# -- notebooks that only call the package ---------------------------------------------------------

MAX_CODE_LINES = 60  # per notebook (issue 18): a story to read, the logic lives in acmtl
WALKTHROUGH = "00_method_walkthrough"  # builds the model by hand on purpose


def code_lines(notebook: Path) -> int:
    """Lines of code a student reads in a notebook: no blanks, no comments; the cell papermill injected counts."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(1 for cell in cells if cell["cell_type"] == "code"
               for line in "".join(cell["source"]).splitlines() if line.strip() and not line.strip().startswith("#"))


def test_code_lines_are_counted(tmp_path) -> None:
    cell = {"cell_type": "code", "metadata": {}, "source": ["# a comment\n", "\n", "x = 1\n", "y = 2  # why\n"]}
    injected = {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": ["profile = 'smoke'\n"]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": [cell, injected, {"cell_type": "markdown", "source": ["x = 1"]}]}))
    assert code_lines(path) == 3


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n.stem != WALKTHROUGH], ids=lambda p: p.stem)
def test_notebooks_stay_short_and_define_no_functions(notebook: Path) -> None:
    lines = code_lines(notebook)
    assert lines <= MAX_CODE_LINES, f"{notebook.name}: {lines} code lines; move logic into acmtl"
    code = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
    assert "def " not in code and "lambda" not in code, f"{notebook.name} defines a function the package could hold"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_carry_no_warning_or_machine_path(notebook: Path) -> None:
    """What a student sees: no TqdmWarning (or any warning) and no absolute path of the machine that ran it."""
    texts = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            texts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    text = "\n".join(texts)
    assert "Warning" not in text, f"{notebook.name}: a warning in the committed output"
    assert "\r" not in text, f"{notebook.name}: a progress bar's redraws in the committed output"
    # a published run's time is its metadata's; the time of the run it replaced contradicts it
    assert "The run that wrote results/ took" not in text, f"{notebook.name}: another run's time in its output"
    for root in (str(REPO), str(Path.home()), "/tmp/"):
        assert root not in text, f"{notebook.name}: the machine path {root} in the committed output"


# -- exercises never overwrite the committed results -----------------------------------------------


@pytest.fixture()
def fresh_start(tmp_path, monkeypatch):
    """:func:`acmtl.companion.publish.start_notebook` with the output root in a temporary folder, reset afterwards."""
    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setattr(publish, "_exercise_reason", None)
    return publish


def test_only_run_all_with_committed_parameters_publishes(fresh_start, tmp_path, capsys, monkeypatch) -> None:
    committed = publish.committed_parameters("03_ablation")
    assert committed["profile"] == "default" and "corpus" in committed

    monkeypatch.setenv(publish.PUBLISH_ENV, "1")  # what ./run_all.sh sets for the default profile's kernels
    assert publish.start_notebook("03_ablation", committed) == tmp_path
    published = (tmp_path / "results", tmp_path / "figures")
    assert publish.target_dirs("default") == publish.output_dirs("default") == published
    out = capsys.readouterr().out
    # one line: no time but its own (its metadata's), no other run's
    assert "writes results/ and figures/" in out and len(out.splitlines()) == 1

    exercise = tmp_path / "build" / "exercise"
    for namespace, why, switch in (
            (committed, f"no {publish.PUBLISH_ENV}=1", None),  # opened in Jupyter, or papermill by hand
            ({**committed, "publish": True}, f"no {publish.PUBLISH_ENV}=1", None),  # a stored `publish = True` replayed
            ({**committed, "corpus": "resume"}, "parameters changed from the committed ones: corpus", "1")):
        if switch is None:
            monkeypatch.delenv(publish.PUBLISH_ENV, raising=False)
        else:
            monkeypatch.setenv(publish.PUBLISH_ENV, switch)
        assert publish.start_notebook("03_ablation", namespace) == exercise
        out = capsys.readouterr().out
        assert out.startswith("EXERCISE RUN") and why in out and str(tmp_path) not in out
        assert "no run recorded in results/ yet" in out  # what to expect: the published run's time, here none
        assert publish.target_dirs("default") == (exercise / "results", exercise / "figures")
        assert publish.output_dirs("default")[0] == tmp_path / "results"  # reading still finds the committed tables
    publish.write_table(__import__("pandas").DataFrame({"a": [1]}), "t", "default", started=0.0)
    assert (exercise / "results" / "t.csv").is_file() and not (tmp_path / "results" / "t.csv").exists()

    assert publish.start_notebook("03_ablation", {**committed, "profile": "smoke"}) == tmp_path / "build" / "smoke"


def test_run_all_publishes_the_default_profile_only() -> None:
    """The one switch that publishes: ./run_all.sh sets it for the default profile's papermill runs, nowhere else."""
    from acmtl.companion.publish import PUBLISH_ENV

    script = (REPO / "run_all.sh").read_text()
    assert '[ "$profile" = default ] && publish=1' in script
    (line,) = [line for line in script.splitlines()
               if "acmtl.companion.publish" in line and not line.lstrip().startswith("#")]
    assert line.strip().startswith(f"{PUBLISH_ENV}=$publish .venv/bin/python -m acmtl.companion.publish")
    assert "publish True" not in line  # no notebook parameter publishes


def _git_in(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout


def test_a_committed_notebook_run_by_hand_leaves_results_and_figures_alone(tmp_path, monkeypatch) -> None:
    """What a student does: execute a committed notebook unchanged (nbclient, as Run All in JupyterLab), its stored
    injected cell included. It must write build/exercise/ and leave results/ and figures/ as committed. 08_tuning is
    the cheapest notebook that writes both (it reads the committed trial tables and trains nothing); its outputs go
    to a git copy of results/ and figures/ (``ACMTL_OUTPUT_ROOT``), so a failure never touches this checkout's."""
    nbclient, nbformat = pytest.importorskip("nbclient"), pytest.importorskip("nbformat")
    from acmtl.companion.publish import PUBLISH_ENV

    root = tmp_path / "clone"
    for folder in ("results", "figures"):
        shutil.copytree(REPO / folder, root / folder)
    _git_in(root, "init", "-q")
    _git_in(root, "add", "results", "figures")
    _git_in(root, "commit", "-q", "-m", "committed results")
    monkeypatch.setenv("ACMTL_OUTPUT_ROOT", str(root))  # the kernel inherits the environment
    monkeypatch.delenv(PUBLISH_ENV, raising=False)  # a student's shell; ./run_all.sh alone sets it

    notebook = nbformat.read(REPO / "notebooks" / "08_tuning.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600, config=kernel_config(),
                            resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()

    assert _git_in(root, "status", "--porcelain", "results", "figures") == "", "a run by hand rewrote them"
    assert (root / "build" / "exercise" / "results" / "tuning_summary.csv").is_file()
    assert "EXERCISE RUN" in "".join(out.get("text", "") for out in notebook.cells[3].outputs)


def test_a_grid_in_a_notebook_prints_a_line_per_run_trained_not_a_bar(monkeypatch, capsys, tmp_path) -> None:
    from acmtl.companion import experiments as ex
    from acmtl.companion import runs

    trained = []
    monkeypatch.setattr(runs, "is_complete", lambda run_dir: run_dir.name == "cached")
    monkeypatch.setattr(runs, "ensure_run", lambda spec, **kwargs: trained.append(spec) or Path("missing"))
    monkeypatch.setattr(ex, "record_of", lambda spec, run_dir: {"folder": run_dir.name})
    specs = [ex.run_spec("smoke", "msra", "acmtl", 200, seed) for seed in (0, 1)]
    bar = ex.tqdm(total=2, disable=True)
    ex.ensure_records(specs, [Path("cached"), Path("missing")], tmp_path, 1, bar, lines=True)
    assert trained == specs[1:] and capsys.readouterr().out == "trained acmtl size=200 seed=1\n"


def test_every_notebook_starts_by_deciding_where_it_writes() -> None:
    for notebook in NOTEBOOKS:
        if notebook.stem == WALKTHROUGH:
            continue
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert f'publish.start_notebook("{notebook.stem}", globals())' in code, notebook.name
        # nothing a notebook stores may switch publishing on: a rerun by hand would publish again
        stored = "".join("".join(c["source"]) for c in cells if {"parameters", "injected-parameters"}
                         & set(c.get("metadata", {}).get("tags", [])))
        assert "publish" not in stored, notebook.name


def test_ablation_steps_pair_by_seed(tmp_path) -> None:
    import pandas as pd

    from acmtl.companion.records import pack_counts

    def run(arch: str, seed: int, test_f1: float, full_test_f1: float) -> dict:
        """A run whose record scores one sentence with 100 gold and 100 predicted entities: F1 = tp / 100."""
        record = tmp_path / f"{arch}-{seed}.json"
        counts = {split: pack_counts(np.array([[round(100 * f1), 100, 100]]))
                  for split, f1 in (("test", test_f1), ("full_test", full_test_f1))}
        record.write_text(json.dumps({"counts": counts}))
        return {"arch": arch, "seed": seed, "record": str(record)}

    per_run = pd.DataFrame([run("acmtl", 0, 0.80, 0.60), run("acmtl", 1, 0.70, 0.61),
                            run("bert_mhsa_cnn", 0, 0.75, 0.50), run("bert_mhsa_cnn", 1, 0.72, 0.65)])
    (step,) = tables.ablation_steps(per_run, {"acmtl": 90.0, "bert_mhsa_cnn": 88.5}).to_dict("records")
    assert step["component"] == "multi-task learning" and step["seeds"] == 2
    assert step["test_f1_difference_per_seed"] == "+5.00 -2.00" and step["test_f1_difference"] == pytest.approx(1.5)
    assert step["full_test_f1_difference"] == pytest.approx(3.0) and step["paper_difference"] == pytest.approx(1.5)
    assert step["effect"] == "too few seeds to judge"  # two seeds: described, not judged


def test_run_curves_mark_the_selected_epoch(tmp_path) -> None:
    import pandas as pd

    from acmtl.companion import experiments as ex

    record = tmp_path / "record.json"  # a run's record holds its curve (acmtl.companion.records)
    record.write_text(json.dumps({"curve": [{"epoch": 1, "dev_f1": 0.1, "test_f1": 0.2}, {"epoch": 2, "dev_f1": 0.3}]}))
    runs = pd.DataFrame([{"corpus": "msra", "arch": "acmtl", "size": 60, "seed": 0, "record": str(record),
                          "best_epoch": 2}])
    curves = ex.run_curves(runs)
    assert curves["selected"].tolist() == [False, True] and pd.isna(curves["test_f1"].iloc[1])


def test_lab_starts_as_root_and_its_kernels_talk_over_ipc(tmp_path) -> None:
    """``./run_all.sh --lab``: JupyterLab starts where Jupyter would otherwise refuse root, and a kernel it starts
    binds IPC sockets (no "running over TCP without encryption" warning)."""
    import os
    import signal
    import socket
    import tempfile
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "lab.log"
    runtime = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # a socket's path holds ~107 bytes at most
    with log.open("w") as sink:
        lab = subprocess.Popen(["bash", str(REPO / "run_all.sh"), "--lab", "--no-browser", f"--port={port}",
                                "--IdentityProvider.token=t"], cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)})
    try:
        url = f"http://127.0.0.1:{port}/api/kernels?token=t"
        for _ in range(240):
            time.sleep(1)
            assert lab.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                continue
        kernel = json.load(urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=60))
        for _ in range(60):  # the kernel's start-up log lands in the server's
            time.sleep(1)
            if list(runtime.glob(f"kernel-{kernel['id']}*-ipc-*")):
                break
        time.sleep(3)  # the kernel's start-up warnings, if any, reach the log
        assert list(runtime.glob(f"kernel-{kernel['id']}*-ipc-*")), log.read_text()[-3000:]
        assert "without encryption" not in log.read_text()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=60)
        shutil.rmtree(runtime, ignore_errors=True)


def test_run_all_runs_a_notebook_without_the_tcp_warning(tmp_path) -> None:
    """What ./run_all.sh runs for each notebook (python -m acmtl.companion.publish) starts its kernel on IPC sockets:
    no "Kernel is running over TCP without encryption" (papermill's command line said it at every notebook)."""
    import os
    import subprocess
    import sys

    import nbformat

    # a notebook of one parameters cell and one that prints it: the kernel start is what is tested, not a notebook
    # (the numbered ones run above, through papermill with the same kernel_config)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('profile = "default"'),
                                               nbformat.v4.new_code_cell("print(profile)")])
    notebook.cells[0].metadata["tags"] = ["parameters"]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    done = subprocess.run([sys.executable, "-m", "acmtl.companion.publish", str(tmp_path / "tiny.ipynb"),
                           str(tmp_path / "ran.ipynb"), "smoke", "python3"], capture_output=True, text=True,
                          env={**os.environ, "ACMTL_OUTPUT_ROOT": str(tmp_path)}, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "over TCP" not in done.stdout + done.stderr
    assert "smoke" in nbformat.read(tmp_path / "ran.ipynb", as_version=4).cells[-1].outputs[0]["text"]
