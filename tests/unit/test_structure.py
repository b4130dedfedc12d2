"""The layout's rules, checked on the source: the layer contract (import-linter), no project
module imported inside a function, no module (or test) using another module's private names,
no test importing a conftest, and modules small unless their docstring says why not."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("udfs", "runtime", "jobs", "payline")
MAX_LINES = 400


def sources(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py")
                  if "__pycache__" not in p.parts)


def project(name: str | None) -> bool:
    return bool(name) and name.split(".")[0] in PACKAGES


def imported_modules(tree: ast.Module) -> dict[str, str]:
    """Local name -> project module, for the module-level ``import``/``from ... import``."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if project(a.name):
                    out[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and project(node.module):
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    modules = imported_modules(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and project(node.module):
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{a.name}"
                      for a in node.names if a.name.startswith("_")]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
              and node.value.id in modules):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses "
                         f"{node.value.id}.{node.attr}")
    return found


def test_the_layer_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    proc = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and proc.stdout.count("KEPT") >= 4


@pytest.mark.parametrize("path", sources(*PACKAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_inside_a_function_but_a_heavy_library_with_its_reason(path: Path):
    lines = path.read_text().splitlines()
    bad = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if not isinstance(inner, (ast.Import, ast.ImportFrom)):
                continue
            names = ([a.name for a in inner.names] if isinstance(inner, ast.Import)
                     else [inner.module or ""])
            where = f"{path.relative_to(ROOT)}:{inner.lineno}"
            if any(project(n) for n in names):
                bad.append(f"{where}: a project module imported inside a function")
                continue
            # a deferred third-party import says why: a comment in its function, on its line
            # or above it
            above = lines[node.lineno:inner.lineno]
            if not any("#" in line for line in above):
                bad.append(f"{where}: {names[0]} imported inside a function without a comment")
    assert not bad, "\n".join(bad)


def test_no_module_uses_another_modules_private_names():
    found = [u for p in sources(*PACKAGES, "tests", "bench") for u in private_uses(p)]
    assert not found, "\n".join(found)


def test_no_test_imports_a_conftest():
    found = [f"{p.relative_to(ROOT)}" for p in sources("tests")
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.ImportFrom) and "conftest" in (node.module or "")]
    assert not found, found


@pytest.mark.parametrize("path", sources(*PACKAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_over_400_lines_says_why_in_its_docstring(path: Path):
    n = len(path.read_text().splitlines())
    if n > MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "one cohesive" in doc.lower(), f"{path.relative_to(ROOT)} has {n} lines"
