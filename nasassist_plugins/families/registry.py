"""The table of benchmark families: how each search space is read, built and sampled.

Every family is one :class:`FamilyDef` (how to build the real network of a spec, how to
turn a spec into a string key and back, which CSV variants exist and how to read them),
defined in its own module and listed in :data:`FAMILY_MODULES`. Adding a family means
writing that module and adding one line to the table; :func:`get_family_def` imports
a family's module the first time it is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from nasassist_plugins.families._cache import cache_key

__all__ = [
    "ALIASES",
    "FAMILY_MODULES",
    "FamilyDef",
    "Table",
    "TRACER_MODULES",
    "VariantDef",
    "get_family_def",
    "register",
]

#: Family name -> module defining its :class:`FamilyDef` as ``DEFINITION``.
FAMILY_MODULES: dict[str, str] = {
    "nb101": "nasassist_plugins.families.nb101",
    "nb201": "nasassist_plugins.families.nb201",
    "nb301": "nasassist_plugins.families.nb301",
    "tnb101": "nasassist_plugins.families.tnb101",
    "darts1k": "nasassist_plugins.families.darts1k",
}

#: Other spellings accepted for a family name (after lower-casing and removing ``-``/``_``).
ALIASES: dict[str, str] = {
    "nasbench101": "nb101",
    "nasbench201": "nb201",
    "nasbench301": "nb301",
    "darts": "nb301",
    "transnasbench101": "tnb101",
    "tnb101micro": "tnb101",
}

#: Modules whose code decides what a traced benchmark graph looks like (cache fingerprint).
#: (Each family adds its cell-builder module; loaders and readers are not included, so
#: editing them keeps the cache.)
TRACER_MODULES: tuple[str, ...] = (
    "nasassist_plugins.adapters.torch_adapter",
    "nasassist_plugins.adapters._torch_trace",
    "nasassist_plugins.adapters._torch_ops",
    "nasassist_plugins.adapters.cells._layers",
    "nasassist_plugins.graph.computational_graph",
    "nasassist_plugins.graph.ops",
    "nasassist_plugins.families._trace",
)

@dataclass
class Table:
    """What a variant reader returns: one row per architecture, graphs not built yet."""

    specs: list[Any]
    keys: list[str]
    ids: list[str]
    targets: dict[str, np.ndarray]
    proxies: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantDef:
    """One benchmark file of a family.

    Attributes:
        name: variant name passed as ``variant=``.
        filename: path relative to the data directory (``nb201/nb201_all15625_12epoch.csv``).
        reader: ``reader(path, rows, columns, limit) -> Table`` (rows are CSV dicts).
        required: columns that must be present.
        default_target: target returned by ``BenchmarkFamily.target()``.
        description: one line for docs and errors.
        row_limited: ``limit`` counts file rows (so only that many are read); ``False``
            for long tables that are pivoted or de-duplicated, which are read whole.
    """

    name: str
    filename: str
    reader: Callable[[Path, list[dict[str, str]], list[str], int | None], Table]
    required: tuple[str, ...]
    default_target: str
    description: str = ""
    row_limited: bool = True


@dataclass(frozen=True)
class FamilyDef:
    """How to read, build and sample one search space.

    Attributes:
        name: family name.
        variants: variant name → :class:`VariantDef`; ``default_variant`` is used when
            ``variant=None``.
        build_network: ``spec -> nn.Module`` (the real benchmark network).
        spec_to_key / key_to_spec: canonical string form of a spec (cache key) and back.
        random_spec: ``rng -> spec`` drawing uniformly from the space.
        build_config: settings the network is built with (part of the cache key).
        device: how networks are built and traced: ``"cpu"`` (build and trace on the
            CPU), ``"meta-to-cpu"`` (construct on the ``meta`` device, i.e. without random
            weight initialisation, then materialise zero-filled CPU tensors and trace on
            the CPU: faster for networks with millions of weights) or ``"meta"`` (trace
            on meta tensors; slower in practice, since meta kernels run in Python). All
            three give the same graph: weight values never enter it.
        example_input: input shape given to ``from_torch``.
        modules: modules whose code shapes the graphs (cache fingerprint).
    """

    name: str
    variants: Mapping[str, VariantDef]
    default_variant: str
    build_network: Callable[[Any], Any]
    spec_to_key: Callable[[Any], str]
    key_to_spec: Callable[[str], Any]
    random_spec: Callable[[np.random.Generator], Any]
    build_config: Mapping[str, Any]
    device: str = "cpu"
    example_input: tuple[int, ...] = (1, 3, 32, 32)
    modules: tuple[str, ...] = ()

    def cache_identity(self) -> tuple[str, dict[str, Any]]:
        config = dict(self.build_config, device=self.device, example_input=list(self.example_input))
        return cache_key(self.name, config, TRACER_MODULES + self.modules)


_REGISTRY: dict[str, FamilyDef] = {}


def register(definition: FamilyDef) -> FamilyDef:
    """Record a family's definition (called by its module, listed in :data:`FAMILY_MODULES`)."""
    _REGISTRY[definition.name] = definition
    return definition


def get_family_def(name: str) -> FamilyDef:
    """The :class:`FamilyDef` called ``name`` (case-insensitive; :data:`ALIASES` accepted)."""
    key = str(name).lower().replace("-", "").replace("_", "")
    key = ALIASES.get(key, key)
    if key not in FAMILY_MODULES:
        raise ValueError(f"unknown benchmark family {name!r}; expected one of {sorted(FAMILY_MODULES)}")
    if key not in _REGISTRY:
        importlib.import_module(FAMILY_MODULES[key])
    return _REGISTRY[key]


