"""Provenance's ``dirty``: an edit to code or to a notebook's source counts, outputs that run_all.sh writes do not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from acmtl.companion import publish


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


def _notebook(path: Path, source: str, output: str | None = None) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook"), nbformat.v4.new_code_cell(source)]
    if output is not None:  # what executing it writes: outputs and execution metadata
        nb.cells[1].execution_count = 1
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        nb.metadata["papermill"] = {"duration": 1.5}
    nbformat.write(nb, path)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A committed repository with code, a notebook and a result; ``publish`` reads it as its own."""
    for folder in ("acmtl", "notebooks", "results"):
        (tmp_path / folder).mkdir()
    (tmp_path / "acmtl" / "model.py").write_text("LAYERS = 4\n")
    _notebook(tmp_path / "notebooks" / "01.ipynb", "size = 200\nprint(size)")
    (tmp_path / "results" / "table.csv").write_text("f1\n0.5\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    monkeypatch.setattr(publish, "REPO_ROOT", tmp_path)
    return tmp_path


def test_a_clean_tree_is_not_dirty(repo):
    record = publish.git_state()
    assert record["dirty"] is False and record["changed_files"] == []
    assert len(record["commit"]) == 40


def test_outputs_of_an_executed_notebook_and_results_are_not_dirty(repo):
    _notebook(repo / "notebooks" / "01.ipynb", "size = 200\nprint(size)", output="200\n")
    (repo / "results" / "table.csv").write_text("f1\n0.7\n")
    (repo / "results" / "new.csv").write_text("f1\n0.1\n")
    assert json.loads((repo / "notebooks" / "01.ipynb").read_text())["cells"][1]["outputs"]  # really changed
    assert publish.git_state()["dirty"] is False


def _inject(path: Path, source: str) -> None:
    """What papermill does with ``-p NAME VALUE``: a tagged cell after the notebook's parameters."""
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, cell)
    nbformat.write(nb, path)


def test_the_profile_run_all_injects_is_not_dirty(repo):
    _inject(repo / "notebooks" / "01.ipynb", '# Parameters\nprofile = "default"\n')
    assert publish.git_state()["dirty"] is False


def test_any_other_injected_parameter_is_dirty(repo):
    _inject(repo / "notebooks" / "01.ipynb", '# Parameters\nprofile = "default"\nsize = 3000\n')
    assert publish.git_state()["dirty"] is True


def test_a_changed_cell_source_is_dirty(repo):
    _notebook(repo / "notebooks" / "01.ipynb", "size = 3000\nprint(size)", output="3000\n")
    record = publish.git_state()
    assert record["dirty"] is True and record["changed_files"] == ["notebooks/01.ipynb"]


def test_a_new_notebook_is_dirty(repo):
    _notebook(repo / "notebooks" / "02.ipynb", "print(1)")
    assert publish.git_state()["changed_files"] == ["notebooks/02.ipynb"]


def test_a_changed_python_file_is_dirty(repo):
    (repo / "acmtl" / "model.py").write_text("LAYERS = 12\n")
    record = publish.git_state()
    assert record["dirty"] is True and record["changed_files"] == ["acmtl/model.py"]


def test_outside_a_repository_dirty_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path either
    assert publish.git_state() == {"commit": None, "dirty": None, "changed_files": []}
