"""Offline HTML export of executed notebooks: ``python -m acmtl.companion.export OUT NOTEBOOK...``.

nbconvert's pages load MathJax, require.js and mermaid from a CDN, so offline the equations show as
raw LaTeX. Here every page refers only to files next to it: MathJax 2.7 is copied into ``OUT/mathjax/``
out of the pinned ``jupyter-server-mathjax`` wheel (sha256-checked by ``acmtl.data.fetch``; the server
itself is never installed) and loaded by a relative URL; require.js, the widget manager and mermaid are
left out (no notebook here uses them). Figures are embedded as data: URIs, so OUT can be zipped or
copied to a machine without network.

The rule the pages keep (tests/test_html_export.py checks it): nothing a page loads -- script,
stylesheet, font, image, frame -- comes from outside OUT; an http(s) URL may appear only as the
``href`` of an ``<a>`` link, which a reader follows by choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jinja2 import DictLoader
from nbconvert import HTMLExporter

from acmtl.data.fetch import PackageFolder, atomic_write_bytes, extract_folder

MATHJAX = PackageFolder("jupyter-server-mathjax==0.2.6", "jupyter_server_mathjax/static/",
                        "416389dde2010df46d5fbbb7adb087a5607111070af65a1445391040f2babb5e")
MATHJAX_DIR = "mathjax"
# The wheel carries one combined configuration and only the STIX-Web fonts (no TeX fonts, no CommonHTML).
MATHJAX_URL = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"

# nbconvert's lab template without its CDN scripts; MathJax told to use the wheel's STIX-Web fonts (by default it
# asks for TeX fonts, which the wheel lacks, and falls back to the browser's fonts: upright, wrongly sized math).
_TEMPLATE = "acmtl_offline.html.j2"
_OFFLINE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{{ super() }}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, imageFont: null, webFont: "STIX-Web"}});
</script>
{%- endblock html_head_js_mathjax -%}
"""


def export_html(notebooks: list[Path], out: Path) -> list[Path]:
    """Write ``out/<notebook>.html`` for each notebook and MathJax into ``out/mathjax/``; return the pages."""
    out.mkdir(parents=True, exist_ok=True)
    extract_folder(MATHJAX, out / MATHJAX_DIR)
    html = HTMLExporter(template_name="lab", template_file=_TEMPLATE, extra_loaders=[DictLoader({_TEMPLATE: _OFFLINE})],
                        mathjax_url=MATHJAX_URL, embed_images=True)
    pages = []
    for notebook in notebooks:
        body, _ = html.from_filename(str(notebook))
        page = out / Path(notebook).with_suffix(".html").name
        atomic_write_bytes(page, body.encode("utf-8"))
        pages.append(page)
    return pages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m acmtl.companion.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="export folder (pages + mathjax/)")
    parser.add_argument("notebooks", type=Path, nargs="+", help="executed notebooks (.ipynb)")
    args = parser.parse_args(argv)
    missing = [str(n) for n in args.notebooks if not n.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)} (run it first: ./run_all.sh [--profile P] NOTEBOOK)")
    for page in export_html(args.notebooks, args.out):
        print(f"acmtl: wrote {page}")


if __name__ == "__main__":
    main()
