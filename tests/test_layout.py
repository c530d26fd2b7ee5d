"""The layout rules of the package, checked on its source (an AST walk; nothing is imported).

- no import cycles among ``omnimask`` modules (a package ``__init__`` re-exporting its own
  submodules is not a cycle of design);
- code outside ``omnimask.modalities`` imports only the modality-neutral contract from it
  (``omnimask.modalities`` itself or ``omnimask.modalities.base``); converters, which serve one
  reference codebase, are exempt;
- no source file over 600 lines, no function over 80 lines (converters' key tables exempt).

Each rule is also run on a small synthetic tree that breaks it, so a rule that can no longer see
what it forbids fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def module_graph(src: Path, package: str = "omnimask") -> tuple[dict[str, Path], dict[str, set[str]]]:
    """``(modules, edges)``: every module of ``package`` under ``src`` and the modules it imports."""
    root = src / package
    mods: dict[str, Path] = {}
    for p in root.rglob("*.py"):
        parts = p.relative_to(src).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = name.split(".")
                if node.level:
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                prefix = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in mods and t != name)
    return mods, edges


def import_cycles(mods: dict[str, Path], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), minus a package with the
    submodules its ``__init__`` re-exports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in mods:
        if v not in index:
            visit(v)
    out = []
    for comp in found:
        top = min(comp, key=len)
        if mods[top].name == "__init__.py" and all(m == top or m.startswith(top + ".") for m in comp):
            continue
        out.append(comp)
    return out


def modality_leaks(edges: dict[str, set[str]], package: str = "omnimask") -> list[str]:
    """Imports of concrete modality code from outside ``<package>.modalities`` (converters exempt)."""
    neutral = {f"{package}.modalities", f"{package}.modalities.base"}
    leaks = []
    for src_mod, targets in edges.items():
        if src_mod.startswith((f"{package}.modalities", f"{package}.convert")):
            continue
        leaks += [
            f"{src_mod} imports {t}"
            for t in sorted(targets)
            if t.startswith(f"{package}.modalities.") and t not in neutral
        ]
    return leaks


def long_code(mods: dict[str, Path]) -> list[str]:
    """Files over 600 lines; functions over 80 lines outside the converters."""
    found = []
    for name, path in mods.items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES:
            found.append(f"{path} has {len(text.splitlines())} lines")
        if ".convert." in f"{name}.":
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name} has {n} lines")
    return found


@pytest.fixture(scope="module")
def graph():
    return module_graph(SRC)


def test_no_import_cycles(graph):
    mods, edges = graph
    assert import_cycles(mods, edges) == []


def test_shared_code_imports_no_modality(graph):
    _, edges = graph
    assert modality_leaks(edges) == []


def test_no_long_files_or_functions(graph):
    mods, _ = graph
    assert long_code(mods) == []


def test_every_modality_is_a_package(graph):
    """One folder per modality: the modality registry discovers sub-packages, never loose modules."""
    mods, _ = graph
    loose = [
        m
        for m, p in mods.items()
        if m.count(".") == 2 and m.startswith("omnimask.modalities.") and p.name != "__init__.py"
    ]
    assert sorted(loose) == ["omnimask.modalities.base", "omnimask.modalities.patches"]  # the neutral contract


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_rules_see_what_they_forbid(tmp_path):
    """Yesterday's faults, rebuilt small: a circle through a modality, shared code importing a
    modality, a long function. Each must be reported."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    src = _write(
        tmp_path,
        {
            "__init__.py": "",
            "data/__init__.py": "from .transforms import t\n",
            "data/transforms.py": "from ..modalities.image import MEAN\nt = 1\n",
            "modalities/__init__.py": "",
            "modalities/base.py": "",
            "modalities/image/__init__.py": "from .viz import MEAN\n",
            "modalities/image/viz.py": "from ...data.transforms import t\nMEAN = 0\n",
            "objectives/__init__.py": "",
            "objectives/chamfer.py": "from ..modalities.base import x\nfrom ..modalities.image import viz\n",
            "training/__init__.py": "",
            "training/loop.py": f"def long():\n{body}\n",
        },
    )
    mods, edges = module_graph(src, "pkg")
    cycles = import_cycles(mods, edges)
    assert any("pkg.data.transforms" in c and "pkg.modalities.image.viz" in c for c in cycles)
    leaks = modality_leaks(edges, "pkg")
    assert "pkg.objectives.chamfer imports pkg.modalities.image" in leaks
    assert "pkg.data.transforms imports pkg.modalities.image" in leaks
    assert not any("modalities.base" in leak for leak in leaks)
    assert any("pkg.training.loop.long" in f for f in long_code(mods))
