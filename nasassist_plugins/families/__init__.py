"""Benchmark families: published NAS benchmark results as (graph, targets) pairs.

Every architecture is turned into a :class:`~nasassist_plugins.graph.ComputationalGraph`
by building the benchmark's real PyTorch network (``nasassist_plugins.adapters.cells``)
and tracing it with :func:`~nasassist_plugins.adapters.torch_adapter.from_torch` — the
same path a user's model takes — so benchmark cells and user models live in one graph
space. Traced graphs are cached on disk in a compact, pickle-free format (see
:mod:`nasassist_plugins.families._cache`).

Example::

    from nasassist_plugins.families import load_family, sample_graphs

    nb201 = load_family("nb201", "../shared/data", n_jobs=2)   # 15,625 cells, 12-epoch accuracies
    graph, acc = nb201.graphs[0], nb201.target("cifar10_val")[0]
    small = nb201.subset(range(100))
    pretrain = sample_graphs("nb101", 1000, seed=0)            # unlabelled random cells

Families and variants (files are read from ``data_dir``, e.g. ``../shared/data``):

* ``nb101``: ``30k`` (default), ``1k``, ``zc``
* ``nb201``: ``12epoch`` (default), ``zc-cifar10``, ``zc-imagenet16-120``, ``zc725``
* ``nb301``: ``zc``
* ``tnb101``: ``micro`` (default), ``micro-zc``
* ``darts1k``: ``cifar10`` (1,000 DARTS networks with measured accuracies)

Families are table-driven: each is one :class:`~.registry.FamilyDef` in its own module,
listed in :data:`~.registry.FAMILY_MODULES`. ``load_nb101(data_dir, ...)`` and the other
``load_<family>`` functions are :func:`load_family` with the family filled in.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from nasassist_plugins.families._base import (
    BenchmarkFamily,
    graph_store_for,
    load,
    read_table,
    sample_specs,
    trace_spec,
)
from nasassist_plugins.families._base import sample_graphs as _sample_graphs
from nasassist_plugins.families._cache import (
    CACHE_ENV_VAR,
    CACHE_FORMAT_VERSION,
    GraphSequence,
    default_cache_dir,
)
from nasassist_plugins.families.nb201 import naslib_to_arch_str
from nasassist_plugins.families.registry import FAMILY_MODULES, get_family_def
from nasassist_plugins.graph import ComputationalGraph

__all__ = [
    "FAMILIES",
    "VARIANTS",
    "BenchmarkFamily",
    "GraphSequence",
    "CACHE_ENV_VAR",
    "CACHE_FORMAT_VERSION",
    "default_cache_dir",
    "graph_store_for",
    "load_family",
    "read_table",
    "load_nb101",
    "load_nb201",
    "load_nb301",
    "load_tnb101",
    "load_darts1k",
    "sample_graphs",
    "sample_specs",
    "spec_graph",
    "naslib_to_arch_str",
]

#: Names accepted by :func:`load_family` and :func:`sample_graphs`.
FAMILIES: tuple[str, ...] = tuple(FAMILY_MODULES)


def _variants(name: str) -> tuple[str, ...]:
    definition = get_family_def(name)
    return (definition.default_variant,) + tuple(v for v in definition.variants if v != definition.default_variant)


#: Variants of each family; the first one is the default.
VARIANTS: dict[str, tuple[str, ...]] = {name: _variants(name) for name in FAMILIES}


def load_family(
    name: str,
    data_dir: str | os.PathLike[str],
    *,
    variant: str | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None | bool = None,
    progress: bool = True,
    n_jobs: int = 1,
) -> BenchmarkFamily:
    """Load a benchmark family's architectures, graphs and measured figures.

    Args:
        name: one of :data:`FAMILIES` (``"nb101"``, ``"nb201"``, ``"nb301"``, ``"tnb101"``, ``"darts1k"``).
        data_dir: folder holding the benchmark data (``nb101/``, ``nb201/``, ...), e.g.
            ``../shared/data``.
        variant: which file of the family (see :data:`VARIANTS`; default: the first).
        limit: read only the first ``limit`` architectures (quick experiments, tests).
        cache_dir: where traced graphs are cached (default ``$NASASSIST_CACHE`` or
            ``~/.cache/nasassist/graphs``); ``False`` disables the cache. All variants
            of a family share one cache file, keyed by the network settings and a
            version/fingerprint of the tracing code, so stale graphs are never reused.
        progress: show a progress bar while tracing graphs.
        n_jobs: worker processes for tracing (``1``: in this process; ``-1``: all CPUs).
            Workers are spawned (each imports torch, a few seconds), so they are only
            used for at least 16 graphs per worker; in a script, call from under
            ``if __name__ == "__main__":`` as usual with multiprocessing.

    Returns:
        A :class:`BenchmarkFamily` (``specs``, lazily decoded ``graphs``, ``targets``,
        ``proxies``, ``ids``, ``extras``, ``metadata``).

    Raises:
        ValueError: unknown family or variant, or a bad ``limit``.
        nasassist_plugins.errors.DataError: missing directory or file, missing column, or
            an unreadable value; the message names the file (and row/column).
    """
    return load(name, data_dir, variant=variant, limit=limit, cache_dir=cache_dir, progress=progress, n_jobs=n_jobs)


def sample_graphs(
    family: str,
    n: int,
    *,
    seed: int = 0,
    progress: bool = True,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike[str] | None | bool = None,
) -> list[ComputationalGraph]:
    """``n`` unlabelled graphs of uniformly random architectures of ``family``.

    For encoder pre-training. Specs come from the cell helpers' samplers driven by
    ``numpy.random.default_rng(seed)`` (with replacement); graphs already in the
    family's cache are reused, new ones are traced (not written to the cache). Each
    graph's ``metadata["spec"]`` holds its spec key.
    """
    return _sample_graphs(family, n, seed=seed, progress=progress, n_jobs=n_jobs, cache_dir=cache_dir)


def spec_graph(family: str, spec: Any) -> ComputationalGraph:
    """Trace the graph of one spec of ``family`` (no cache), e.g. an NB201 cell string."""
    definition = get_family_def(family)
    return trace_spec(definition.name, definition.spec_to_key(spec))


def _family_loader(name: str) -> Callable[..., BenchmarkFamily]:
    """:func:`load_family` with ``name`` filled in, documented from the family's definition."""

    def loader(
        data_dir: str | os.PathLike[str],
        *,
        variant: str | None = None,
        limit: int | None = None,
        cache_dir: str | os.PathLike[str] | None | bool = None,
        progress: bool = True,
        n_jobs: int = 1,
    ) -> BenchmarkFamily:
        return load(name, data_dir, variant=variant, limit=limit, cache_dir=cache_dir, progress=progress, n_jobs=n_jobs)

    definition = get_family_def(name)
    lines = "\n".join(f"        * ``{v.name}``: {v.description}" for v in definition.variants.values())
    loader.__name__ = loader.__qualname__ = f"load_{name}"
    loader.__doc__ = (
        f"Load the ``{name}`` benchmark family: ``load_family({name!r}, data_dir, ...)``.\n\n"
        f"    Variants (default ``{definition.default_variant!r}``):\n\n{lines}\n\n"
        "    Arguments, return value and errors are those of :func:`load_family`.\n"
    )
    return loader


load_nb101 = _family_loader("nb101")
load_nb201 = _family_loader("nb201")
load_nb301 = _family_loader("nb301")
load_darts1k = _family_loader("darts1k")
load_tnb101 = _family_loader("tnb101")
