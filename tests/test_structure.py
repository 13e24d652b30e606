"""The code base keeps the shape a newcomer can follow (issue: codebase redesign).

* no import cycles between modules (module-level imports; imports inside functions are
  how heavy or optional dependencies load on first use and are allowed to point anywhere);
* no private name (``_name``) imported from another package;
* no library module over 500 lines;
* the light entry points do not pull in torch_geometric or transformers at import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Module name -> file for the library (``adapters/`` is ``nasassist_plugins.adapters``)."""
    out: dict[str, Path] = {}
    for base, prefix in ((ROOT / "nasassist_plugins", "nasassist_plugins"), (ROOT / "adapters", "nasassist_plugins.adapters")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def _package(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str | None:
    if node.level:
        base = _package(module, modules).split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module


def _top_level_imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported module, names) for imports executed when the module is imported."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, list[str]]] = []
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        for sub in [node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node):
            if isinstance(sub, ast.Import):
                found.extend((alias.name, []) for alias in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                target = _resolve(module, sub, modules)
                if target:
                    found.append((target, [alias.name for alias in sub.names]))
    return found


def _all_imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, modules)
            if target:
                found.append((target, [alias.name for alias in node.names]))
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = nx.DiGraph()
    for module, path in modules.items():
        graph.add_node(module)
        for target, names in _top_level_imports(module, path, modules):
            candidates = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
            for candidate in candidates:
                if candidate in modules and candidate != module:
                    # importing a package runs its __init__; a submodule importing its own package's
                    # __init__ for a name is the normal layout, not a cycle of design
                    if module.startswith(candidate + "."):
                        continue
                    graph.add_edge(module, candidate)
    cycles = [c for c in nx.simple_cycles(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_no_private_names_imported_across_packages() -> None:
    modules = _modules()
    offenders = []
    for module, path in modules.items():
        own = _package(module, modules)
        for target, names in _all_imports(module, path, modules):
            if not target.startswith("nasassist_plugins"):
                continue
            target_package = target if target in modules and modules[target].name == "__init__.py" else target.rpartition(".")[0]
            private_module = any(part.startswith("_") and not part.startswith("__") for part in target.split("."))
            same_tree = target_package == own or target_package.startswith(own + ".") or own.startswith(target_package + ".")
            for name in names:
                if (name.startswith("_") and not name.startswith("__")) or private_module:
                    if not same_tree:
                        offenders.append(f"{module} imports {name} from {target}")
    assert not offenders, "\n".join(offenders)


def test_no_library_module_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("module", ["nasassist_plugins.optuna", "nasassist_plugins.errors", "nasassist_plugins.curves"])
def test_light_imports(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "heavy = sorted(m for m in ('torch_geometric', 'transformers') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"importing {module} pulled in {result.stdout.strip()}"
