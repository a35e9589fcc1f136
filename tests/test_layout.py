"""The package's layout is a contract: the method (acmtl.core) is small and imports neither the companion nor the
serving side, acmtl.data imports neither, and no import cycle exists anywhere. import-linter checks the layers
(pyproject.toml's [tool.importlinter], `lint-imports` in CI); this test checks them too, with the cycles and the
size, from the code's own syntax trees, so a plain `pytest` catches a violation."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "acmtl"
CORE_LINES = 2500  # the method read in one sitting: model, CRF, features, encoders, training, tagging, scores
# Each layer may import the layers below it, never one above: the command line, the companion, the serving side,
# the method, the data, and the base modules everyone may use.
LAYERS = (("acmtl.__main__", "acmtl.cli", "acmtl.overrides"), ("acmtl.companion",), ("acmtl.serving",),
          ("acmtl.core",), ("acmtl.data",), ("acmtl.paths", "acmtl.version"))


def _module(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the acmtl modules it imports (anywhere in it: inside functions too), from ``ast``."""
    modules = {_module(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # the most specific module each import names (``from acmtl.core import model`` names acmtl.core.model)
            found |= {t for t in targets if t in modules and not any(o != t and o.startswith(t + ".") and o in
                                                                      modules for o in targets)}
        graph[name] = found - {name}
    return graph


def _layer(module: str) -> int | None:
    """The rank of ``module``'s layer (0 the top), None for the package itself (``acmtl.from_pretrained``)."""
    for rank, layer in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in layer):
            return rank
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one."""
    bad = []
    for module, targets in graph.items():
        rank = _layer(module)
        if rank is None:
            continue
        bad += [f"{module} -> {t}" for t in targets if (r := _layer(t)) is not None and r < rank]
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each an import cycle."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_layer_imports_one_above_it():
    assert layer_violations(import_graph()) == []


def test_no_import_cycle_anywhere():
    assert cycles(import_graph()) == []


def test_the_method_is_small():
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "core").glob("*.py"))
    assert lines < CORE_LINES, f"acmtl/core holds {lines} lines; the method should read in one sitting"


def test_the_checks_catch_planted_faults(tmp_path):
    """A forbidden import (the method importing the companion) and a cycle, planted in a copy of the package."""
    import shutil

    copy = tmp_path / "acmtl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    model = copy / "core" / "model.py"
    model.write_text(model.read_text(encoding="utf-8") + "\nfrom acmtl.companion import claims  # planted\n")
    graph = import_graph(copy)
    assert "acmtl.core.model -> acmtl.companion.claims" in layer_violations(graph)
    crf = copy / "core" / "crf.py"
    crf.write_text(crf.read_text(encoding="utf-8") + "\nfrom acmtl.core import model  # planted cycle\n")
    assert any({"acmtl.core.crf", "acmtl.core.model"} <= set(c) for c in cycles(import_graph(copy)))


@pytest.mark.skipif(not (Path(sys.executable).parent / "lint-imports").exists(), reason="import-linter not installed")
def test_import_linter_keeps_the_contracts():
    """The same contracts as import-linter states them (pyproject.toml), as CI runs them."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=PACKAGE.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
