"""Static check of untrusted model source: an AST allowlist applied before anything runs.

This is the first of three walls around generated code (the others are the restricted
builtins and resource limits of the worker process, :mod:`.worker`, and the process
boundary itself, :mod:`.runner`). It runs in the caller's process, so it only *parses*
the source (never compiles or executes it) and refuses anything outside a small,
model-shaped subset of Python:

* imports only of ``torch``, ``torch.nn``, ``torch.nn.functional``, ``math``, ``typing``
  (and ``from __future__ import annotations``), never ``*``;
* at module level: imports, class and function definitions, constant assignments and
  docstrings (no top-level calls or loops, so executing the module does nothing);
* no dangerous names (``open``, ``exec``, ``eval``, ``compile``, ``__import__``,
  ``getattr``/``setattr``/``delattr``, ``globals``/``locals``/``vars``, ``type``, ...),
  no names of system modules (``os``, ``sys``, ``subprocess``, ``socket``, ...), no
  dunder names at all;
* no dunder or private attribute access (except ``super().__init__`` and ``self._x``),
  no torch escape hatches (``torch.load``/``save``/``hub``/``jit``/``ops``/``utils``/
  ``library``/``from_file``/storages, ...), no ``str.format`` (it reads attributes by
  name), no ``typing.get_type_hints`` (it evaluates strings);
* no attribute named like a module or function that leads outside the model: a fixed
  list (``os``, ``sys``, ``builtins``, ``ctypes``, ``np``, ``operator``, frame attributes
  such as ``f_globals``...) plus every name under which torch, ``torch.nn``,
  ``torch.nn.functional``, ``math`` or ``typing`` re-export — at any depth — a module or
  a callable of ``os``, ``sys``, ``io``, ``pickle``, ``subprocess``, ``numpy``...
  (:func:`escape_attribute_names`, computed from the installed torch);
* no assignment to attributes of anything but ``self`` (nothing can patch ``torch``);
* dunder method definitions only for ``__init__``;
* no nesting deeper than :data:`MAX_NESTING` (a 4 KB ``x+x+...`` must not crash the
  checker with ``RecursionError``).

This is a cheap first filter, not a boundary: the sandbox contains whatever passes it by
operating-system means (see :mod:`.isolation`).

:func:`validate_source` returns a :class:`ValidationReport` listing every violation with
its line, or raises :class:`~nasassist_plugins.mutation.errors.ProposalRejected`
through :func:`check_source`.
"""

from __future__ import annotations

import ast
import sys
import types
import warnings
from dataclasses import dataclass, field

from nasassist_plugins.mutation.errors import ProposalRejected

__all__ = [
    "ALLOWED_MODULES",
    "MAX_SOURCE_CHARS",
    "ValidationReport",
    "Violation",
    "MAX_NESTING",
    "check_source",
    "escape_attribute_names",
    "module_classes",
    "validate_source",
]

#: Modules generated code may import (and ``from __future__ import annotations``).
ALLOWED_MODULES = frozenset({"torch", "torch.nn", "torch.nn.functional", "math", "typing"})
#: Refuse sources longer than this before parsing them (parser resource exhaustion).
MAX_SOURCE_CHARS = 200_000
#: Refuse syntax trees nested deeper than this (the checker and the compiler recurse).
MAX_NESTING = 100
_MAX_AST_NODES = 50_000

_FORBIDDEN_NAMES = frozenset(
    {
        "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr", "hasattr",
        "globals", "locals", "vars", "dir", "type", "input", "breakpoint", "help", "memoryview",
        "exit", "quit", "copyright", "credits", "license", "bytearray", "format", "__builtins__", "__loader__", "__spec__",
        # system modules (only reachable if imported, but name them for a clear reason)
        "os", "sys", "subprocess", "socket", "builtins", "importlib", "ctypes", "pickle", "marshal",
        "shutil", "pathlib", "signal", "threading", "multiprocessing", "io", "inspect", "gc",
        "resource", "codecs", "urllib", "http", "requests", "pty", "posix", "nt",
    }
)  # fmt: skip
# Attribute names that reach outside a model's computation (files, pickles, native code,
# other processes, code evaluation) or that read attributes by name.
_FORBIDDEN_ATTRS = frozenset(
    {
        "load", "save", "hub", "jit", "ops", "classes", "library", "package", "onnx", "distributed",
        "multiprocessing", "backends", "compile", "utils", "fx", "export", "from_file", "storage",
        "untyped_storage", "UntypedStorage", "TypedStorage", "Storage", "share_memory_", "serialization",
        "profiler", "testing", "overrides", "format", "format_map", "get_type_hints", "ForwardRef",
        "NamedTuple", "TypedDict", "system", "popen", "tofile", "load_state_dict", "register_load_state_dict_post_hook",
        "cpp_extension", "_dynamo", "set_default_device", "__dict__", "dump", "dumps", "compiler", "inductor",
        "importer", "package_importer", "package_exporter", "rpc", "monitor", "collect_env", "gds", "custom_ops",
        # modules and the doors they open (also found by escape_attribute_names where torch re-exports them)
        "os", "sys", "builtins", "bltns", "importlib", "ctypes", "subprocess", "socket", "shutil", "pickle", "marshal",
        "io", "pathlib", "tempfile", "glob", "multiprocessing", "mp", "threading", "signal", "resource", "gc",
        "inspect", "linecache", "runpy", "np", "numpy", "operator", "types", "traceback", "codecs", "platform",
        "logging", "posix", "fcntl", "mmap", "pty", "urllib", "http", "environ", "getenv", "putenv", "popen",
        "spawnv", "execv", "execve", "fork", "kill", "killpg", "unlink", "remove", "rmdir", "rmtree", "chmod",
        "urlopen", "attrgetter", "methodcaller", "FunctionType", "CodeType", "ModuleType", "MethodType",
        # frames and code objects (their globals hold the real builtins)
        "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "gi_frame", "gi_code", "cr_frame", "ag_frame",
        "tb_frame", "tb_next", "co_consts", "co_code", "func_globals", "mro",
    }
)  # fmt: skip
# Modules whose re-exports (as a module or as one of their callables) lead outside a model's computation.
_ESCAPE_MODULES = frozenset(
    """os sys builtins importlib ctypes _ctypes subprocess _posixsubprocess socket _socket shutil pickle _pickle marshal
    io _io pathlib tempfile glob gzip bz2 lzma tarfile zipfile multiprocessing _multiprocessing threading _thread signal
    _signal resource gc inspect linecache runpy pty posix fcntl mmap urllib http logging numpy platform sysconfig atexit
    code codeop pdb trace tokenize fileinput pwd grp selectors asyncio concurrent codecs _codecs posixpath genericpath
    ntpath copyreg pickletools types operator _operator dis ast uuid webbrowser pydoc site zipimport pkgutil shelve dbm
    sqlite3 smtplib ftplib telnetlib xmlrpc ssl mailbox faulthandler tracemalloc cProfile profile timeit doctest unittest
    venv ensurepip distutils setuptools pkg_resources pynvml sympy jinja2 fsspec filelock networkx traceback
    argparse""".split()
)
_ESCAPE_BUILTINS = ("open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "globals", "locals",
                    "vars", "input", "breakpoint", "memoryview", "type")
_TYPING_NAMES = frozenset(
    {"Any", "Optional", "List", "Tuple", "Dict", "Sequence", "Union", "Callable", "Iterable", "Mapping",
     "Set", "FrozenSet", "Literal", "Final", "ClassVar", "cast", "TYPE_CHECKING"}
)  # fmt: skip
_ALLOWED_DUNDER_DEFS = frozenset({"__init__"})
_MODULE_LEVEL = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.Assign, ast.AnnAssign, ast.Expr, ast.Pass)
_CLASS_LEVEL = (ast.FunctionDef, ast.Assign, ast.AnnAssign, ast.Expr, ast.Pass)
_FORBIDDEN_NODES: dict[type, str] = {
    ast.Global: "global statements",
    ast.Nonlocal: "nonlocal statements",
    ast.AsyncFunctionDef: "async functions",
    ast.Await: "await",
    ast.AsyncFor: "async for",
    ast.AsyncWith: "async with",
}


@dataclass(frozen=True)
class Violation:
    """One refused construct: a category, a message and its line (0 when not tied to one)."""

    reason: str
    message: str
    line: int = 0

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_source`: the violations (empty when the source is allowed)."""

    violations: list[Violation] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self, limit: int = 5) -> str:
        """The first ``limit`` violations on one line."""
        shown = "; ".join(str(v) for v in self.violations[:limit])
        more = len(self.violations) - limit
        return shown + (f" (+{more} more)" if more > 0 else "")


def validate_source(source: str) -> ValidationReport:
    """Check ``source`` against the allowlist (see the module docstring); never executes it."""
    report = ValidationReport()
    if not isinstance(source, str):
        report.violations.append(Violation("not-text", f"source must be a string, got {type(source).__name__}"))
        return report
    if len(source) > MAX_SOURCE_CHARS:
        report.violations.append(Violation("too-long", f"source has {len(source):,} characters (limit {MAX_SOURCE_CHARS:,})"))
        return report
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        report.violations.append(Violation("syntax-error", f"syntax error: {exc.msg}", exc.lineno or 0))
        return report
    except (RecursionError, MemoryError, ValueError) as exc:
        report.violations.append(Violation("syntax-error", f"source cannot be parsed: {type(exc).__name__}"))
        return report
    nodes, depth = _size_and_depth(tree)
    if nodes > _MAX_AST_NODES:
        report.violations.append(Violation("too-long", f"source has more than {_MAX_AST_NODES:,} syntax nodes"))
        return report
    if depth > MAX_NESTING:
        report.violations.append(Violation("too-complex", f"expressions nested {depth} deep (limit {MAX_NESTING})"))
        return report
    try:
        _Checker(report).check(tree)
        report.classes = module_classes(tree)
    except (RecursionError, MemoryError) as exc:  # belt and braces: the depth check should prevent it
        report.violations.append(Violation("too-complex", f"the source is too complex to check ({type(exc).__name__})"))
        return report
    if not report.classes and report.ok:
        report.violations.append(Violation("no-module-class", "the source defines no class deriving from nn.Module"))
    return report


def _size_and_depth(tree: ast.AST) -> tuple[int, int]:
    """Number of nodes and nesting depth of ``tree``, without recursion."""
    count, deepest = 0, 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if count > _MAX_AST_NODES:
            break
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return count, deepest


_ESCAPE_NAMES: frozenset[str] | None = None


def escape_attribute_names() -> frozenset[str]:
    """Attribute names under which the allowed modules re-export a way out of the model.

    Walks every module reachable by attribute from ``torch``, ``torch.nn``,
    ``torch.nn.functional``, ``math`` and ``typing`` (not entering the dangerous ones)
    and collects each public name bound to a module of :data:`_ESCAPE_MODULES`, to a
    callable defined in one, or to a dangerous builtin (``open``, ``eval``, ``getattr``...).
    Computed once per process from what is imported at the time (empty, and computed
    again later, while torch is not imported).
    """
    global _ESCAPE_NAMES
    if _ESCAPE_NAMES is not None:
        return _ESCAPE_NAMES
    roots = [sys.modules.get(name) for name in ("torch", "torch.nn", "torch.nn.functional", "math", "typing")]
    if roots[0] is None:
        return frozenset()  # not cached: torch may be imported later
    import builtins

    dangerous_builtins = {id(getattr(builtins, n)) for n in _ESCAPE_BUILTINS}

    def escapes(module_name: object) -> bool:
        return isinstance(module_name, str) and module_name.split(".")[0] in _ESCAPE_MODULES

    names: set[str] = set()
    seen: set[int] = set()
    frontier = [m for m in roots if m is not None]
    with warnings.catch_warnings():  # deprecated re-exports warn when touched
        warnings.simplefilter("ignore")
        _walk_modules(frontier, seen, names, escapes, dangerous_builtins)
    _ESCAPE_NAMES = frozenset(names)
    return _ESCAPE_NAMES


def _walk_modules(frontier: list, seen: set[int], names: set[str], escapes, dangerous_builtins: set[int]) -> None:
    while frontier:
        module = frontier.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        for name, value in list(vars(module).items()):
            if name.startswith("_"):
                continue
            if isinstance(value, types.ModuleType):
                if escapes(value.__name__):
                    names.add(name)
                else:
                    frontier.append(value)
            elif id(value) in dangerous_builtins:
                names.add(name)
            elif callable(value) and getattr(value, "__module__", None) != "builtins" and escapes(getattr(value, "__module__", None)):
                names.add(name)


def check_source(source: str) -> list[str]:
    """Validate ``source``; return its ``nn.Module`` class names or raise :class:`ProposalRejected`."""
    report = validate_source(source)
    if not report.ok:
        raise ProposalRejected(report.violations[0].reason, report.summary())
    return report.classes


def module_classes(tree: ast.Module) -> list[str]:
    """Names of top-level classes deriving (syntactically) from ``nn.Module`` or another of them."""
    found: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            text = _dotted(base)
            if text in {"nn.Module", "torch.nn.Module", "Module"} or text in found:
                found.append(node.name)
                break
    return found


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of attributes on a name, ``""`` otherwise."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Checker(ast.NodeVisitor):
    """Walks the tree once, recording every violation."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        self.typing_aliases: set[str] = set()
        self.escape_names = escape_attribute_names()

    def add(self, reason: str, message: str, node: ast.AST | None = None) -> None:
        self.report.violations.append(Violation(reason, message, getattr(node, "lineno", 0) or 0))

    def check(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if not isinstance(stmt, _MODULE_LEVEL):
                self.add("top-level-code", f"{type(stmt).__name__} at module level (only imports, classes, "
                         "functions and constant assignments are allowed)", stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and not _is_constant_expr(stmt.value):
                self.add("top-level-code", "module-level assignments must be constants (no calls at import time)", stmt)
            elif isinstance(stmt, ast.Expr) and not _is_docstring(stmt):
                self.add("top-level-code", "module-level expressions run at import time; only docstrings are allowed", stmt)
            elif isinstance(stmt, ast.ClassDef):
                self._check_class_body(stmt)
        self.visit(tree)

    def _check_class_body(self, cls: ast.ClassDef) -> None:
        for stmt in cls.body:
            if not isinstance(stmt, _CLASS_LEVEL):
                self.add("top-level-code", f"{type(stmt).__name__} in the body of class {cls.name} "
                         "(only methods and constant attributes are allowed)", stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and not _is_constant_expr(stmt.value):
                self.add("top-level-code", f"class attributes of {cls.name} must be constants", stmt)
        for deco in cls.decorator_list:
            self.add("forbidden-construct", f"class decorators are not allowed ({cls.name})", deco)
        for kw in cls.keywords:
            self.add("forbidden-construct", f"class keywords such as metaclass= are not allowed ({cls.name})", kw)

    # -- imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_MODULES:
                self.add("forbidden-import", f"import of {alias.name!r} (allowed: {', '.join(sorted(ALLOWED_MODULES))})", node)
            elif alias.name == "typing":
                self.typing_aliases.add(alias.asname or "typing")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.add("forbidden-import", "relative imports are not allowed", node)
            return
        if module == "__future__":
            if any(a.name != "annotations" for a in node.names):
                self.add("forbidden-import", "only `from __future__ import annotations` is allowed", node)
            return
        if module not in ALLOWED_MODULES:
            self.add("forbidden-import", f"import from {module!r} (allowed: {', '.join(sorted(ALLOWED_MODULES))})", node)
            return
        for alias in node.names:
            name = alias.name
            if name == "*":
                self.add("forbidden-import", f"`from {module} import *` is not allowed", node)
            elif module == "typing" and name not in _TYPING_NAMES:
                self.add("forbidden-import", f"typing.{name} is not allowed", node)
            elif name.startswith("_") or name in _FORBIDDEN_ATTRS or name in self.escape_names:
                self.add("forbidden-import", f"`from {module} import {name}` reaches outside the model", node)
            elif f"{module}.{name}" not in ALLOWED_MODULES and module == "torch" and name in {"utils", "hub"}:
                self.add("forbidden-import", f"torch.{name} is not allowed", node)

    # -- names and attributes
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _FORBIDDEN_NAMES:
            self.add("forbidden-name", f"use of {node.id!r} is not allowed", node)
        elif _is_dunder(node.id):
            self.add("dunder-access", f"dunder name {node.id!r} is not allowed", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        base = node.value
        if attr == "__init__" and isinstance(base, ast.Call) and _dotted(base.func) == "super":
            pass  # super().__init__(...)
        elif _is_dunder(attr) or attr.startswith("__"):
            self.add("dunder-access", f"dunder attribute .{attr} is not allowed", node)
        elif attr.startswith("_") and not (isinstance(base, ast.Name) and base.id == "self"):
            self.add("private-access", f"private attribute .{attr} is only allowed on self", node)
        elif attr in _FORBIDDEN_ATTRS or attr in self.escape_names:
            self.add("forbidden-attribute", f"attribute .{attr} reaches outside the model (modules, files, native "
                     "code, processes, code evaluation or attribute lookup by name)", node)
        elif isinstance(base, ast.Name) and base.id in self.typing_aliases and attr not in _TYPING_NAMES:
            self.add("forbidden-attribute", f"typing.{attr} is not allowed", node)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and not (isinstance(base, ast.Name) and base.id == "self"):
            self.add("foreign-assignment", f"assigning or deleting .{attr} of something other than self "
                     "(could patch torch or builtins)", node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and not _rooted_in_local(node):
            self.add("foreign-assignment", "item assignment on a module-level object is not allowed", node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if _is_dunder(node.name) and node.name not in _ALLOWED_DUNDER_DEFS:
            self.add("dunder-access", f"defining {node.name} is not allowed (only __init__ and ordinary methods)", node)
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        label = _FORBIDDEN_NODES.get(type(node))
        if label:
            self.add("forbidden-construct", f"{label} are not allowed", node)
        super().generic_visit(node)


def _rooted_in_local(node: ast.AST) -> bool:
    """Whether a subscript/attribute chain starts at ``self`` or a lowercase local (not a module)."""
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return isinstance(node, ast.Name) and node.id not in {"torch", "nn", "F", "math", "typing"}


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_constant_expr(node: ast.AST | None) -> bool:
    """Literals, tuples/lists/dicts of literals, unary/binary arithmetic on them, and names."""
    if node is None:
        return True
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant_expr(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(_is_constant_expr(k) for k in node.keys if k is not None) and all(_is_constant_expr(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _is_constant_expr(node.operand)
    if isinstance(node, ast.BinOp):
        # bounded: refuse ** with large exponents (10 ** 10 ** 10 would hang at import time)
        if isinstance(node.op, (ast.Pow, ast.LShift)):
            return False
        return _is_constant_expr(node.left) and _is_constant_expr(node.right)
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return bool(_dotted(node))
    return False
