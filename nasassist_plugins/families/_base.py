"""Shared machinery of the benchmark families: the result type, CSV reading, graph
building (serial or multi-process), caching and sampling.

Each family module (``nb101``, ``nb201``, ``nb301``, ``tnb101``) describes its search
space with a :class:`~.registry.FamilyDef` listed in :mod:`.registry`; :func:`load` and
:func:`sample_graphs` do the rest.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nasassist_plugins.errors import DataError
from nasassist_plugins.families._cache import (
    GraphSequence,
    GraphStore,
    StoreBuilder,
    load_store,
    resolve_cache_dir,
    save_store,
)
from nasassist_plugins.families._trace import trace_spec
from nasassist_plugins.families.registry import (
    FamilyDef,
    Table,
    VariantDef,
    get_family_def,
)
from nasassist_plugins.graph import ComputationalGraph

__all__ = [
    "BenchmarkFamily",
    "graph_store_for",
    "load",
    "read_table",
    "sample_graphs",
    "sample_specs",
    "trace_into",
    "trace_spec",
]

#: Below this many graphs per worker, tracing runs in-process: starting a worker
#: (a fresh interpreter importing torch) costs seconds.
MIN_GRAPHS_PER_WORKER = 16

#: Value the benchmark files use for a proxy that failed to compute; loaded as NaN.
FAILED_PROXY = -1e8


# ============================================================================ result type
@dataclass(repr=False)
class BenchmarkFamily:
    """Architectures of one benchmark file with their graphs and measured figures.

    Row ``i`` of every field describes the same architecture.

    Attributes:
        name: family name (``"nb101"``, ``"nb201"``, ``"nb301"``, ``"tnb101"``).
        variant: which file of the family was read (see ``VARIANTS`` of the module).
        specs: the benchmark's own encoding of each architecture (NB101
            ``(adjacency, ops)``; NB201 arch string; NB301 ``(normal, reduce)``
            genotypes; TNB101 arch string such as ``64-41414-3_11_212``).
        graphs: one :class:`~nasassist_plugins.graph.ComputationalGraph` per row, traced
            from the real PyTorch network with ``from_torch``; a lazy sequence that
            decodes a graph when it is accessed.
        targets: measured figures (accuracies, training time, ...), name → float array.
        proxies: zero-cost proxy scores where the file has them (failed computations,
            stored as -1e8 upstream, are NaN), name → float array.
        ids: a stable identifier per row (NB101 hash, NB201 index, arch string, ...).
        extras: other numeric columns (proxy compute times, ...), name → float array.
        metadata: file, units, default target and other notes about the data.
    """

    name: str
    variant: str
    specs: list[Any]
    graphs: Sequence[ComputationalGraph]
    targets: dict[str, np.ndarray]
    proxies: dict[str, np.ndarray] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.specs)

    def __repr__(self) -> str:
        return (
            f"BenchmarkFamily(name={self.name!r}, variant={self.variant!r}, rows={len(self)}, "
            f"targets={list(self.targets)}, proxies={list(self.proxies)})"
        )

    @property
    def default_target(self) -> str:
        """Name of the target :meth:`target` returns when called without a name."""
        return str(self.metadata.get("default_target") or next(iter(self.targets)))

    def target(self, name: str | None = None) -> np.ndarray:
        """The target array ``name`` (default: :attr:`default_target`).

        Raises:
            KeyError: naming the available targets when ``name`` is not one of them.
        """
        key = self.default_target if name is None else name
        if key not in self.targets:
            raise KeyError(f"{self.name}/{self.variant} has no target {key!r}; available: {sorted(self.targets)}")
        return self.targets[key]

    def proxy(self, name: str) -> np.ndarray:
        """The zero-cost proxy array ``name``.

        Raises:
            KeyError: naming the available proxies when ``name`` is not one of them.
        """
        if name not in self.proxies:
            raise KeyError(f"{self.name}/{self.variant} has no proxy {name!r}; available: {sorted(self.proxies)}")
        return self.proxies[name]

    def subset(self, indices: Sequence[int] | np.ndarray | slice) -> "BenchmarkFamily":
        """A new family holding only the given rows (integer indices, boolean mask or slice)."""
        n = len(self)
        if isinstance(indices, slice):
            idx = np.arange(n)[indices]
        else:
            idx = np.asarray(indices)
            if idx.dtype == bool:
                if idx.shape != (n,):
                    raise IndexError(f"boolean mask has shape {idx.shape}, expected ({n},)")
                idx = np.flatnonzero(idx)
            elif idx.size == 0:
                idx = idx.astype(np.int64)
            elif not np.issubdtype(idx.dtype, np.integer):
                raise TypeError(f"indices must be integers, a boolean mask or a slice, got dtype {idx.dtype}")
            if idx.size and (idx.max() >= n or idx.min() < -n):
                raise IndexError(f"index out of range for a family of {n} rows")
            idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
        rows = idx.tolist()
        graphs = self.graphs[idx] if isinstance(self.graphs, GraphSequence) else [self.graphs[i] for i in rows]
        return BenchmarkFamily(
            name=self.name,
            variant=self.variant,
            specs=[self.specs[i] for i in rows],
            graphs=graphs,
            targets={k: v[idx] for k, v in self.targets.items()},
            proxies={k: v[idx] for k, v in self.proxies.items()},
            ids=[self.ids[i] for i in rows] if self.ids else [],
            extras={k: v[idx] for k, v in self.extras.items()},
            metadata=dict(self.metadata),
        )


# ============================================================================ csv helpers
def resolve_data_file(data_dir: str | os.PathLike[str], filename: str) -> Path:
    """``data_dir/filename`` (or ``data_dir/<basename>`` when given the family folder).

    Raises:
        DataError: the directory or the file does not exist.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"benchmark data directory {str(root)!r} does not exist or is not a directory "
            "(pass the folder that holds nb101/, nb201/, nb301/, tnb101/, e.g. ../shared/data)"
        )
    for candidate in (root / filename, root / Path(filename).name):
        if candidate.is_file():
            return candidate
    raise DataError(f"benchmark file {filename!r} not found in {str(root)!r} (looked for {str(root / filename)!r})")


def read_csv(path: Path, required: Iterable[str], limit: int | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file (at most ``limit`` rows when given).

    Raises:
        DataError: unreadable file, empty file, or missing required columns (named).
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            if not columns:
                raise DataError(f"{path.name}: file is empty (no header row) at {str(path)!r}")
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataError(
                    f"{path.name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                    f"(found columns: {', '.join(columns)})"
                )
            rows: list[dict[str, str]] = []
            for row in reader:
                if limit is not None and len(rows) >= limit:
                    break
                rows.append(row)
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read benchmark file {str(path)!r}: {exc}") from exc
    return columns, rows


def to_float(path: Path, row_number: int, column: str, text: str | None) -> float:
    """Parse one numeric cell; empty → NaN. Raises DataError naming file, row and column."""
    if text is None or text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path.name}: row {row_number}, column {column!r}: {text!r} is not a number") from None


def float_column(path: Path, rows: Sequence[Mapping[str, str]], column: str, scale: float = 1.0) -> np.ndarray:
    out = np.array([to_float(path, i + 2, column, r.get(column)) for i, r in enumerate(rows)], dtype=np.float64)
    return out * scale if scale != 1.0 else out


def numeric_columns(path: Path, rows: Sequence[Mapping[str, str]], columns: Iterable[str]) -> dict[str, np.ndarray]:
    """Float arrays of ``columns`` (proxies): -1e8 (failed proxy) becomes NaN."""
    out: dict[str, np.ndarray] = {}
    for column in columns:
        values = float_column(path, rows, column)
        values[values == FAILED_PROXY] = np.nan
        out[column] = values
    return out


def split_extra_columns(columns: Iterable[str], used: Iterable[str]) -> tuple[list[str], list[str]]:
    """Remaining columns as ``(proxies, extras)``: ``*_time_s`` are extras."""
    used_set = set(used)
    rest = [c for c in columns if c not in used_set]
    return [c for c in rest if not c.endswith("_time_s")], [c for c in rest if c.endswith("_time_s")]


def row_error(path: Path, row_number: int, column: str, exc: Exception) -> DataError:
    return DataError(f"{path.name}: row {row_number}, column {column!r}: {exc}")


# ============================================================================ graph building
def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _worker_trace_chunk(job: tuple[str, list[str]]) -> dict[str, np.ndarray]:
    """Trace a chunk of specs in a worker and return them encoded (numpy arrays pickle
    fast; ``ComputationalGraph`` objects would cost the parent ~5 ms each to unpickle)."""
    family, keys = job
    builder = StoreBuilder()
    for key in keys:
        builder.add(key, trace_spec(family, key))
    return builder.build().arrays


def resolve_n_jobs(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return int(n_jobs)


def trace_into(
    builder: StoreBuilder, family: str, keys: Sequence[str], *, n_jobs: int = 1, progress: bool = True
) -> None:
    """Trace the networks of ``keys`` and add their graphs to ``builder``.

    With ``n_jobs > 1`` (``-1``: every CPU) and enough work, chunks of specs are traced
    in that many spawned worker processes (one torch thread each), which send back
    encoded chunks that are merged here. If interrupted, ``builder`` keeps what was
    finished.
    """
    from tqdm.auto import tqdm

    n_jobs = resolve_n_jobs(n_jobs)
    bar = tqdm(total=len(keys), desc=f"tracing {family} graphs", unit="graph", disable=not progress,
               file=sys.stderr, dynamic_ncols=True, mininterval=0.5)  # fmt: skip
    try:
        if n_jobs <= 1 or len(keys) < MIN_GRAPHS_PER_WORKER * n_jobs:
            import torch

            # Batch-1 convolutions of these small networks run fastest on one thread (and
            # do not fight other processes for cores); restored afterwards.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for key in keys:
                    builder.add(key, trace_spec(family, key))
                    bar.update(1)
            finally:
                torch.set_num_threads(threads)
            return
        import multiprocessing as mp

        size = max(1, min(32, len(keys) // (4 * n_jobs)))
        chunks = [(family, list(keys[i : i + size])) for i in range(0, len(keys), size)]
        with mp.get_context("spawn").Pool(n_jobs, initializer=_worker_init) as pool:
            for arrays in pool.imap(_worker_trace_chunk, chunks):
                added = builder.merge(GraphStore(arrays))
                bar.update(added)
    finally:
        bar.close()


def graph_store_for(
    definition: FamilyDef,
    keys: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None | bool = None,
    progress: bool = True,
    n_jobs: int = 1,
    write: bool = True,
) -> tuple[GraphStore, dict[str, Any]]:
    """A store holding the graphs of every key: read from the cache, missing ones built.

    Newly built graphs are merged into the family's cache file (when caching is on and
    ``write``). If building is interrupted, what was built so far is saved first.

    Returns:
        ``(store, info)`` where ``info`` records the cache path, hits and build time.
    """
    directory = resolve_cache_dir(cache_dir)
    key_hash, header = definition.cache_identity()
    path = directory / f"{definition.name}-{key_hash}.npz" if directory is not None else None
    info: dict[str, Any] = {"cache_path": str(path) if path else None, "cache_key": key_hash}
    t0 = time.perf_counter()
    store = load_store(path, header) if path is not None else None
    info["cache_load_s"] = time.perf_counter() - t0
    unique = list(dict.fromkeys(keys))
    missing = [k for k in unique if store is None or k not in store]
    info["cache_hits"] = len(unique) - len(missing)
    info["built"] = len(missing)
    if not missing:
        return (store if store is not None else StoreBuilder().build()), info
    builder = StoreBuilder.from_store(store) if store is not None else StoreBuilder()
    before = len(builder)
    save = path is not None and write
    t0 = time.perf_counter()
    try:
        trace_into(builder, definition.name, missing, n_jobs=n_jobs, progress=progress)
    except BaseException:
        if save and len(builder) > before:  # keep the work done so far (Ctrl-C, a failing spec)
            _save_quietly(path, builder.build(), header)
        raise
    info["build_s"] = time.perf_counter() - t0
    new_store = builder.build()
    if save:
        _save_quietly(path, new_store, header)
    return new_store, info


def _save_quietly(path: Path | None, store: GraphStore, header: Mapping[str, Any]) -> None:
    """Write the cache; an unwritable cache directory only warns (the graphs are in memory)."""
    import warnings

    if path is None:
        return
    try:
        save_store(path, store, header)
    except OSError as exc:
        warnings.warn(f"could not write graph cache {path}: {exc}", RuntimeWarning, stacklevel=3)


# ============================================================================ loading / sampling
def read_table(
    name: str, data_dir: str | os.PathLike[str], *, variant: str | None = None, limit: int | None = None
) -> tuple[FamilyDef, VariantDef, Path, Table]:
    """Read and check a variant's file without building graphs: ``(family, variant, path, table)``."""
    definition = get_family_def(name)
    variant_name = variant or definition.default_variant
    if variant_name not in definition.variants:
        raise ValueError(
            f"unknown variant {variant_name!r} of {definition.name}; expected one of {sorted(definition.variants)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
    v = definition.variants[variant_name]
    path = resolve_data_file(data_dir, v.filename)
    columns, rows = read_csv(path, v.required, limit if v.row_limited else None)
    return definition, v, path, v.reader(path, rows, columns, None if limit is None else int(limit))


def load(
    name: str,
    data_dir: str | os.PathLike[str],
    *,
    variant: str | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None | bool = None,
    progress: bool = True,
    n_jobs: int = 1,
) -> BenchmarkFamily:
    """Generic loader behind :func:`nasassist_plugins.families.load_family`."""
    definition, v, path, table = read_table(name, data_dir, variant=variant, limit=limit)
    variant_name = v.name
    store, info = graph_store_for(definition, table.keys, cache_dir=cache_dir, progress=progress, n_jobs=n_jobs)
    graphs = GraphSequence(store, [store.index[k] for k in table.keys])
    metadata = {
        "family": definition.name,
        "variant": variant_name,
        "file": str(path),
        "description": v.description,
        "default_target": v.default_target,
        "build": dict(definition.build_config, device=definition.device, example_input=definition.example_input),
        **table.metadata,
        "cache": info,
    }
    return BenchmarkFamily(
        name=definition.name,
        variant=variant_name,
        specs=table.specs,
        graphs=graphs,
        targets=table.targets,
        proxies=table.proxies,
        ids=table.ids,
        extras=table.extras,
        metadata=metadata,
    )


def sample_specs(family: str, n: int, *, seed: int = 0) -> list[Any]:
    """``n`` specs drawn uniformly (with replacement) from the family's search space."""
    definition = get_family_def(family)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    return [definition.random_spec(rng) for _ in range(n)]


def sample_graphs(
    family: str,
    n: int,
    *,
    seed: int = 0,
    progress: bool = True,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike[str] | None | bool = None,
) -> list[ComputationalGraph]:
    """``n`` unlabelled graphs of random architectures of ``family`` (for pre-training).

    Specs are drawn with the cell helpers' samplers from ``numpy.random.default_rng(seed)``
    (uniform, with replacement: repeats are possible in small spaces). Graphs already in
    the family's cache are reused; new ones are traced but not written to the cache.
    Each graph's ``metadata["spec"]`` holds its spec key.
    """
    definition = get_family_def(family)
    keys = [definition.spec_to_key(s) for s in sample_specs(definition.name, n, seed=seed)]
    store, _ = graph_store_for(definition, keys, cache_dir=cache_dir, progress=progress, n_jobs=n_jobs, write=False)
    return [store.graph(store.index[k]) for k in keys]
