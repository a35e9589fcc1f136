"""Course tooling: the offline HTML export (``./run_all.sh --html``, ``--html-only``) and the notebooks' kernel.

The export tests export the committed, executed notebooks/00_method_walkthrough.ipynb (the one with the
equations) as is, with ``acmtl.companion.export``, the code run_all.sh calls. A page must load nothing from outside
its export folder. The rule checked on every exported page: whatever an element loads (``src``, ``href``,
``srcset``, ``data``, ``poster`` ... of any element but ``<a>``; ``url()`` and ``@import`` in CSS; any URL in an
inline script) is a ``data:`` URI or a relative path to an existing file inside the folder. An http(s) URL
may appear only as the ``href`` of an ``<a>`` link, which a reader follows by choice; text is never loaded.

The browser test opens the page in headless Chromium with networking off and reads the typeset DOM. It is
skipped when no Chromium is installed; .ci/run installs Debian's ``chromium`` so that CI always runs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import papermill
import pytest

import acmtl.data.fetch as fetch_module
from acmtl.companion.export import MATHJAX_DIR, export_html
from acmtl.data.fetch import FetchError, PackageFolder, extract_folder, sha256_of

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_method_walkthrough.ipynb"
EMBEDDED_PNG = "data:image/png;base64,"
LOADING_ATTRIBUTES = {"src", "href", "srcset", "data", "poster", "background", "action", "formaction", "xlink:href"}


class PageParser(HTMLParser):
    """What a page loads (element, attribute, reference), its inline CSS and scripts, its classes and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.css: list[str] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self.classes: Counter[str] = Counter()
        self._inside: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            if name == "class":
                self.classes.update(value.split())
            elif name == "style":
                self.css.append(value)
            elif name in LOADING_ATTRIBUTES and tag != "a":
                parts = [p.split()[0] for p in re.split(r",\s+", value.strip())] if name == "srcset" else [value]
                self.refs += [(tag, name, part) for part in parts]
        if tag in ("script", "style"):
            self._inside = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._inside:
            self._inside = None

    def handle_data(self, data: str) -> None:
        {"script": self.scripts, "style": self.css, None: self.text}[self._inside].append(data)


def css_references(css: str) -> list[str]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)  # comments cite URLs without loading them
    return re.findall(r"url\(\s*['\"]?([^'\")]+)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)


def outside_references(page: Path, folder: Path) -> list[str]:
    """Everything ``page`` would load from outside ``folder`` (see the module docstring for the rule)."""
    parsed = PageParser(page.read_text(encoding="utf-8"))
    refs = [f"<{tag} {name}>: {ref}" for tag, name, ref in parsed.refs]
    refs += [f"CSS: {ref}" for css in parsed.css for ref in css_references(css)]
    bad = [f"script: {url}" for script in parsed.scripts for url in re.findall(r"https?://[^\s'\"]+", script)]
    for described in refs:
        ref = described.split(": ", 1)[1].strip()
        parts = urlsplit(ref)
        if parts.scheme == "data" or (not parts.scheme and not parts.netloc and not parts.path):  # data:, #anchor
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        if parts.scheme or parts.netloc or not target.is_relative_to(folder.resolve()) or not target.is_file():
            bad.append(described[:160])
    return bad


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, Path]:
    """(export folder, page of notebook 00), exported from the committed notebook."""
    folder = tmp_path_factory.mktemp("html_export")
    [page] = export_html([NOTEBOOK], folder)
    return folder, page


def test_every_figure_is_embedded(export):
    _, page = export
    nb = nbformat.read(NOTEBOOK, as_version=4)
    figures = sum("image/png" in o.get("data", {}) for cell in nb.cells for o in cell.get("outputs", []))
    assert figures >= 3, f"the walkthrough should show its figures inline, found {figures} image outputs"
    sources = [ref for tag, name, ref in PageParser(page.read_text(encoding="utf-8")).refs if tag == "img"]
    assert sum(src.startswith(EMBEDDED_PNG) for src in sources) == figures == len(sources)


def test_pages_load_nothing_from_outside_the_export_folder(export):
    folder, page = export
    pages = sorted(folder.glob("*.html"))
    assert pages == [page]
    assert not {p.name: outside_references(p, folder) for p in pages if outside_references(p, folder)}
    loaded = [ref for _, _, ref in PageParser(page.read_text(encoding="utf-8")).refs]
    assert any(ref.startswith(f"{MATHJAX_DIR}/MathJax.js?") for ref in loaded), "MathJax is not loaded from the folder"


def test_the_reference_check_catches_what_a_page_loads_from_outside(tmp_path):
    (tmp_path / "local.js").write_text("")
    page = tmp_path / "page.html"
    page.write_text('<script src="local.js"></script><a href="https://arxiv.org/">a paper</a> see https://x.org\n'
                    '<script src="https://cdn.example/m.js"></script><link rel="stylesheet" href="//cdn.example/s.css">'
                    '<img src="../outside.png"><img srcset="data:image/png;base64,AA 1x, missing.png 2x">'
                    '<style>/* https://cited.example */ .a {background: url("https://cdn.example/f.woff")}</style>'
                    '<script>import("https://cdn.example/mermaid.mjs")</script>')
    assert [bad.split(": ", 1)[1] for bad in outside_references(page, tmp_path)] == [
        "https://cdn.example/mermaid.mjs", "https://cdn.example/m.js", "//cdn.example/s.css", "../outside.png",
        "missing.png", "https://cdn.example/f.woff"]


def browser() -> str | None:
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


def page_requests(netlog: Path) -> list[str]:
    """URLs a file:// page asked the network for; Chromium's own background calls have another isolation key."""
    events = json.loads(netlog.read_text(encoding="utf-8"))["events"]
    return sorted({e["params"]["url"] for e in events if "url" in e.get("params", {})
                   and str(e["params"].get("network_isolation_key", "")).startswith("file://")})


@pytest.fixture(scope="module")
def offline_dom(export, tmp_path_factory) -> tuple[str, list[str]]:
    """(the DOM after MathJax ran, the network requests of the page), in headless Chromium with no network."""
    chromium = browser()
    if chromium is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it), "
                    "so the offline rendering of the exported HTML is not checked")
    _, page = export
    work = tmp_path_factory.mktemp("chromium")
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={work / 'profile'}",
               "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # networking off
               f"--log-net-log={work / 'net.json'}", "--virtual-time-budget=30000", "--dump-dom", page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-3000:]
    return result.stdout, page_requests(work / "net.json")


def test_equations_are_typeset_offline(offline_dom):
    dom, _ = offline_dom
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    displayed = len(re.findall(r"\$\$.+?\$\$", markdown, flags=re.S))
    assert displayed >= 5, "notebook 00 should show the paper's equations"
    parsed = PageParser(dom)
    raw = [line.strip()[:80] for line in "".join(parsed.text).splitlines() if "$$" in line]
    assert not raw, f"raw LaTeX left on the page: {raw}"
    assert parsed.classes["MathJax_Display"] == displayed, "not every $$ equation was typeset by MathJax"
    assert parsed.classes["MathJax"] > displayed, "the inline $...$ math was not typeset"
    assert not parsed.classes["merror"] + parsed.classes["noError"], "MathJax could not typeset some TeX"
    assert "STIXMathJax_Main" in dom, "MathJax fell back to the browser's fonts, not the STIX-Web fonts of the wheel"


def test_the_page_requests_nothing_from_the_network(offline_dom):
    _, requested = offline_dom
    assert not requested, f"the page tried to fetch {requested}"


def test_extract_folder_replaces_the_folder_and_rejects_a_tampered_wheel(tmp_path, monkeypatch):
    wheel = tmp_path / "wheels" / "demo-1.0-py3-none-any.whl"
    files = {"demo/static/a.js": b"a", "demo/static/fonts/b.woff": b"b", "demo/other.py": b"c"}

    def download(package: str, content: dict[str, bytes] = files) -> Path:
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as archive:
            for name, data in content.items():
                archive.writestr(name, data)
        return wheel

    monkeypatch.setattr(fetch_module, "_download_wheel", download)
    folder = PackageFolder("demo==1.0", "demo/static/", sha256_of(download("demo==1.0")))
    dest = tmp_path / "export" / "static"
    dest.mkdir(parents=True)
    (dest / "stale.js").write_text("from an older export")
    extract_folder(folder, dest)
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == {
        "a.js": b"a", "fonts/b.woff": b"b"}

    monkeypatch.setattr(fetch_module, "_download_wheel", lambda package: download(package, {**files, "x": b"tamper"}))
    with pytest.raises(FetchError, match="expected sha256"):
        extract_folder(folder, dest)
    assert (dest / "a.js").read_bytes() == b"a" and not wheel.exists(), "a tampered wheel must not reach the export"
    assert [p.name for p in dest.parent.iterdir()] == ["static"], "no half-built folder may be left behind"


def test_notebooks_use_the_kernel_run_all_registers():
    """run_all.sh registers the .venv's kernel by name, runs the notebooks (papermill, through acmtl.companion.publish)
    and JupyterLab with it: notebooks say so too."""
    script = (ROOT / "run_all.sh").read_text()
    kernel = re.search(r"^kernel=(\S+)$", script, flags=re.M).group(1)
    assert re.search(r"ipykernel install --sys-prefix --name \"\$kernel\"", script)
    assert re.search(r"acmtl\.companion\.publish .*\"\$kernel\"$", script, flags=re.M)
    assert 'default_kernel_name="$kernel"' in script
    named = {nb.name: nbformat.read(nb, as_version=4).metadata.get("kernelspec", {}).get("name")
             for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    assert named and all(name == kernel for name in named.values()), f"kernelspec should be {kernel!r}: {named}"


def test_walkthrough_runs_its_checks(tmp_path):
    """Executes notebook 00 (~40 s on a busy 2-core CPU): every hand computation is checked against acmtl's code."""
    executed = tmp_path / NOTEBOOK.name
    papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters={"profile": "smoke"},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    outputs = [o for cell in nbformat.read(executed, as_version=4).cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert printed.count("✓") >= 15, "the walkthrough's hand computations were not all checked"
    assert "ACMTL.decode = the step-by-step computation" in printed
