"""Compact, pickle-free on-disk store of many :class:`ComputationalGraph` objects.

A traced benchmark network has a few hundred nodes; as JSON, the 15,625 NAS-Bench-201
graphs would take about a gigabyte. A :class:`~._store.GraphStore` (unique nodes plus
per-graph node ids and edges, see :mod:`._store`) is written as plain numpy arrays in
one ``np.savez_compressed`` file, read back with
``allow_pickle=False`` (caches may be shared between users, and loading a pickle can
run code). Graphs are decoded on demand, so opening a store takes about a second even
for tens of thousands of graphs, and a decoded graph compares equal (``==``) to the
freshly traced one it was made from.

Cache files are named ``<family>-<key>.npz``, where ``key`` hashes the family, the
network build settings, :data:`CACHE_FORMAT_VERSION`, the graph format version, the
torch version and a fingerprint of the tracing/cell-builder source code (docstrings
and comments excluded), so a change to any of them makes a fresh cache instead of
silently reusing stale graphs. The same key is stored inside the file and checked on
load.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from nasassist_plugins.families._store import GraphSequence, GraphStore, StoreBuilder
from nasassist_plugins.graph import GRAPH_FORMAT_VERSION

__all__ = [
    "CACHE_ENV_VAR",
    "CACHE_FORMAT_VERSION",
    "GraphSequence",
    "GraphStore",
    "StoreBuilder",
    "cache_key",
    "code_fingerprint",
    "default_cache_dir",
    "load_store",
    "resolve_cache_dir",
    "save_store",
]

#: Bump when the layout of the cache file changes (or to force every cache to rebuild).
CACHE_FORMAT_VERSION = 1

#: Environment variable that overrides the default cache directory.
CACHE_ENV_VAR = "NASASSIST_CACHE"



# ----------------------------------------------------------------------------- location / key
def default_cache_dir() -> Path:
    """``$NASASSIST_CACHE`` when set, else ``~/.cache/nasassist/graphs``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "nasassist" / "graphs"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None | bool) -> Path | None:
    """The cache directory to use: ``None`` → default, ``False`` → caching disabled."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


_FINGERPRINTS: dict[tuple[str, ...], str] = {}


def code_fingerprint(modules: Iterable[str]) -> str:
    """Hash of the code (not docstrings or comments) of the named modules.

    Editing the tracer, the op tables or a cell builder changes the graphs they make,
    so it must invalidate cached graphs; reformatting a docstring need not.
    """
    names = tuple(sorted(set(modules)))
    if names in _FINGERPRINTS:
        return _FINGERPRINTS[names]
    digest = hashlib.sha256()
    for name in names:
        module = importlib.import_module(name)
        path = getattr(module, "__file__", None)
        digest.update(name.encode())
        if not path or not Path(path).is_file():
            continue
        source = Path(path).read_text(encoding="utf-8")
        try:
            digest.update(ast.dump(_strip_docstrings(ast.parse(source))).encode())
        except SyntaxError:  # pragma: no cover - an importable module parses
            digest.update(source.encode())
    _FINGERPRINTS[names] = digest.hexdigest()[:16]
    return _FINGERPRINTS[names]


def cache_key(family: str, build_config: Mapping[str, Any], modules: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """``(key, header)``: a short hash naming the cache file, and what it hashes."""
    import torch

    from nasassist_plugins.adapters.torch_adapter import TRACER_VERSION

    header = {
        "family": family,
        "cache_format": CACHE_FORMAT_VERSION,
        "tracer": TRACER_VERSION,
        "graph_format": GRAPH_FORMAT_VERSION,
        "torch": ".".join(torch.__version__.split("+")[0].split(".")[:2]),
        "code": code_fingerprint(modules),
        "build": dict(build_config),
    }
    text = json.dumps(header, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], header


# ----------------------------------------------------------------------------- file io
def save_store(path: Path, store: GraphStore, header: Mapping[str, Any]) -> None:
    """Write ``store`` (plus ``header``) to ``path`` atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header_bytes = json.dumps(dict(header), sort_keys=True, default=str).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, header=np.frombuffer(header_bytes, dtype=np.uint8), **store.arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a cache may be shared, like any file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_store(path: Path, header: Mapping[str, Any]) -> GraphStore | None:
    """Open the store at ``path`` if it exists and was written under the same ``header``.

    Returns ``None`` (meaning: rebuild) for a missing file, a different header (stale
    cache) or an unreadable file (with a warning).
    """
    if not path.is_file():
        return None
    expected = json.loads(json.dumps(dict(header), sort_keys=True, default=str))
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = json.loads(data["header"].tobytes().decode("utf-8"))
            if stored != expected:
                return None
            arrays = {k: data[k] for k in data.files if k != "header"}
        return GraphStore(arrays)
    except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
        warnings.warn(f"ignoring unreadable graph cache {path}: {exc}", RuntimeWarning, stacklevel=3)
        return None
