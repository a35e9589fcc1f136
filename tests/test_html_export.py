"""`run_all.sh --html` gives one self-contained HTML file per notebook: every figure embedded, no image fetched.

Executes notebook 00 (the method walkthrough, ~40 s on a busy 2-core CPU) with papermill into a temporary
folder, then exports it with the command run_all.sh uses, ``jupyter nbconvert --to html``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_method_walkthrough.ipynb"
EMBEDDED_PNG = "data:image/png;base64,"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[nbformat.NotebookNode, str]:
    """(the executed notebook, its HTML export)."""
    folder = tmp_path_factory.mktemp("html_export")
    executed = folder / NOTEBOOK.name
    papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters={"profile": "smoke"},
                               kernel_name="python3", progress_bar=False, cwd=str(folder))
    jupyter = Path(sys.executable).with_name("jupyter")  # run_all.sh: .venv/bin/jupyter nbconvert --to html
    subprocess.run([str(jupyter), "nbconvert", "--to", "html", "--output-dir", str(folder), str(executed)],
                   check=True, capture_output=True, text=True)
    html = executed.with_suffix(".html").read_text(encoding="utf-8")
    return nbformat.read(executed, as_version=4), html


def image_outputs(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", []))


def img_sources(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*?\bsrc=\"([^\"]*)\"", html)


def test_every_figure_is_embedded(exported):
    nb, html = exported
    figures = image_outputs(nb)
    assert figures >= 3, f"the walkthrough should show its figures inline, found {figures} image outputs"
    sources = img_sources(html)
    assert sum(src.startswith(EMBEDDED_PNG) for src in sources) == figures


def test_no_external_images_or_stylesheets(exported):
    _, html = exported
    linked = [src[:80] for src in img_sources(html) if not src.startswith("data:")]
    assert not linked, f"images linked instead of embedded: {linked}"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html), "a stylesheet fetches an external resource"
    stylesheets = re.findall(r"<link\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"", html)
    assert not stylesheets, f"external stylesheets: {stylesheets}"
    assert "<style" in html  # nbconvert inlines the notebook's CSS


def test_walkthrough_runs_its_checks(exported):
    nb, html = exported
    outputs = [output for cell in nb.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert printed.count("✓") >= 15, "the walkthrough's hand computations were not all checked"
    assert "ACMTL.decode = the step-by-step computation" in html
