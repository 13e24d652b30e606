"""Put each layer's relevance on the source line that defines it (the thesis's annotated prompt).

A relevance table is keyed by qualified module names (``features.0``, ``layer1.0.conv2``).
This module finds, by parsing (never running) the source, the line where each of those
modules is constructed: ``self.<name> = ...`` assignments in the entry class, elements of
``nn.Sequential(...)`` / ``nn.ModuleList([...])`` by index, and attributes of other classes
of the same file when a layer is an instance of one. Several modules can map to one line
(a block class instantiated twice): their signed relevances are summed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["LineRelevance", "annotate_source", "line_relevance", "module_lines"]

_MARK = "# relevance"


@dataclass
class LineRelevance:
    """Relevance gathered on one source line."""

    line: int
    signed: float = 0.0
    delta: float = 0.0
    keys: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)


def module_lines(source: str, entry: str) -> dict[str, int]:
    """``{qualified module name: line}`` for the modules the source constructs visibly.

    Only names reachable from class ``entry`` are listed; the mapping is resolved lazily
    by :func:`line_relevance`, so this returns the direct attributes of ``entry`` and
    :func:`resolve_line` handles deeper names.
    """
    index = _SourceIndex(source)
    return {attr: line for attr, (line, _) in index.attrs.get(entry, {}).items()}


def line_relevance(source: str, entry: str, rows: Iterable[Any]) -> dict[int, LineRelevance]:
    """Relevance rows (objects with ``key``, ``signed_weight``, ``delta``, ``op_types``) per source line."""
    index = _SourceIndex(source)
    result: dict[int, LineRelevance] = {}
    for row in rows:
        module = getattr(row, "module", None) or getattr(row, "key", "")
        line = index.resolve(entry, str(module).split(".")) if module else None
        if line is None:
            continue
        slot = result.setdefault(line, LineRelevance(line))
        slot.signed += float(getattr(row, "signed_weight", 0.0))
        slot.delta += float(getattr(row, "delta", 0.0))
        slot.keys.append(str(row.key))
        slot.ops.extend(getattr(row, "op_types", ()) or ())
    return result


def annotate_source(source: str, entry: str, rows: Iterable[Any]) -> str:
    """``source`` with ``# relevance +0.1234 (conv2d)`` appended to each layer's line.

    Lines that already carry such a comment (from an earlier round) get the new value
    instead; lines ending in a backslash continuation are left alone.
    """
    per_line = line_relevance(source, entry, rows)
    lines = source.splitlines()
    for number, info in per_line.items():
        if not 1 <= number <= len(lines):
            continue
        text = lines[number - 1]
        if _MARK in text:
            text = text[: text.index(_MARK)].rstrip()
        if text.rstrip().endswith("\\"):
            continue
        ops = sorted(set(info.ops))
        what = ", ".join(ops[:3]) + ("…" if len(ops) > 3 else "")
        count = f"; {len(info.keys)} layers" if len(info.keys) > 1 else ""
        lines[number - 1] = f"{text}  {_MARK} {info.signed:+.4f} ({what}{count})"
    return "\n".join(lines) + ("\n" if source.endswith("\n") else "")


class _SourceIndex:
    """Where each class of a source constructs its submodules."""

    def __init__(self, source: str) -> None:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            tree = ast.Module(body=[], type_ignores=[])
        self.attrs: dict[str, dict[str, tuple[int, ast.AST]]] = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                table: dict[str, tuple[int, ast.AST]] = {}
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Assign):
                        for target in sub.targets:
                            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                                    and target.value.id == "self" and target.attr not in table):
                                table[target.attr] = (sub.value.lineno, sub.value)
                self.attrs[node.name] = table

    def resolve(self, cls: str, parts: list[str], depth: int = 0) -> int | None:
        if not parts or depth > 20:
            return None
        found = self.attrs.get(cls, {}).get(parts[0])
        if found is None:
            return None
        line, expr = found
        return self._descend(expr, parts[1:], line, depth)

    def _descend(self, expr: ast.AST, rest: list[str], line: int, depth: int) -> int:
        if not rest:
            return line
        if isinstance(expr, ast.Call):
            name = _call_name(expr)
            if name in {"Sequential", "ModuleList"} and rest[0].isdigit():
                items: list[ast.expr] = list(expr.args)
                if name == "ModuleList" and len(items) == 1 and isinstance(items[0], (ast.List, ast.Tuple)):
                    items = list(items[0].elts)
                i = int(rest[0])
                if i < len(items) and not any(isinstance(a, ast.Starred) for a in items):
                    return self._descend(items[i], rest[1:], getattr(items[i], "lineno", line), depth + 1)
                return line
            if name in self.attrs:
                deeper = self.resolve(name, rest, depth + 1)
                return deeper if deeper is not None else line
        return line


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""

