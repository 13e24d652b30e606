"""Training-free suite values of benchmark architectures: which architectures, which
(proxy) networks, and a resumable per-architecture checkpoint.

The suite (:func:`nasassist_plugins.proxies.compute_suite`) runs each candidate once
forward and once backward. On the project's 2-core CPU the benchmarks' full-size networks
cost 1-10 s each, so the families are measured on **proxy networks**: the same cells in a
smaller skeleton (fewer cells per stage, fewer channels, smaller inputs), batch 16. The
effect of that reduction on every signal's correlation is measured on a subset at full
size (``benchmarks/zero_shot_suite.py --config full``).

Architectures per family (fixed by ``seed``): NB101 1,000 random cells of the 30k table;
NB201 the 725 cells with 200-epoch results on all three datasets plus random cells of the
9,445-cell CIFAR-10 table up to 1,000 (``extended``: all 9,445); NB301 all 725; TNB101
1,000 random micro cells; darts1k all 1,000 (its reduction cell equals its normal cell, so
its proxy network has 3 cells; NB301's has 5).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from scipy.stats import rankdata

from nasassist_plugins.families import read_table
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.proxies.suite import SUITE_SIGNALS

__all__ = [
    "CONFIGS",
    "FAMILY_TARGETS",
    "SuiteConfig",
    "TaskData",
    "family_keys",
    "family_targets",
    "load_tasks",
    "read_checkpoint",
]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteConfig:
    """How one family's architectures are turned into networks for the suite."""

    name: str
    family: str
    input_shape: tuple[int, ...]
    build: Callable[[Any], Any]
    description: str


def _nb101(stem: int, per_stack: int) -> Callable[[Any], Any]:
    def build(spec: Any) -> Any:
        from nasassist_plugins.adapters.cells import nb101_network

        adjacency, ops = spec
        return nb101_network(adjacency, ops, stem_channels=stem, modules_per_stack=per_stack)

    return build


def _nb201(channels: int, cells: int, classes: int) -> Callable[[Any], Any]:
    def build(spec: Any) -> Any:
        from nasassist_plugins.adapters.cells import nb201_network

        return nb201_network(spec, channels=channels, cells_per_stage=cells, num_classes=classes)

    return build


def _darts(channels: int, layers: int) -> Callable[[Any], Any]:
    def build(spec: Any) -> Any:
        from nasassist_plugins.adapters.cells import darts_network

        normal, reduce = spec
        return darts_network(normal, reduce, channels=channels, layers=layers)

    return build


def _tnb101(base: int) -> Callable[[Any], Any]:
    def build(spec: Any) -> Any:
        from nasassist_plugins.adapters.cells import tnb101_network

        text = str(spec)
        return tnb101_network(f"{base}-{text.split('-', 1)[1]}")

    return build


#: Named network configurations: ``<family>`` (proxy network used for every table and for
#: training), ``<family>-full`` (the benchmark's own network, for the reduction study).
CONFIGS: dict[str, SuiteConfig] = {
    c.name: c
    for c in [
        SuiteConfig("nb101", "nb101", (1, 3, 32, 32), _nb101(16, 1), "NB101 cell, stem 16, 1 cell per stack, 32x32"),
        SuiteConfig("nb201", "nb201", (1, 3, 32, 32), _nb201(16, 1, 10), "NB201 cell, C=16, 1 cell per stage, 32x32"),
        SuiteConfig("nb201-in16", "nb201", (1, 3, 16, 16), _nb201(16, 1, 120),
                    "NB201 cell, C=16, 1 cell per stage, 16x16, 120 classes (ImageNet16-120 tasks)"),
        SuiteConfig("nb301", "nb301", (1, 3, 32, 32), _darts(8, 5), "DARTS cells, C=8, 5 cells, 32x32"),
        SuiteConfig("darts1k", "darts1k", (1, 3, 32, 32), _darts(8, 3), "DARTS cell, C=8, 3 cells, 32x32"),
        SuiteConfig("tnb101", "tnb101", (1, 3, 64, 64), _tnb101(16), "TransNAS micro cell, base 16 channels, 64x64"),
        SuiteConfig("nb201-full", "nb201", (1, 3, 32, 32), _nb201(16, 5, 10), "NB201 benchmark network (C=16, N=5)"),
        SuiteConfig("darts1k-full", "darts1k", (1, 3, 32, 32), _darts(32, 8), "NB301's DARTS network (C=32, 8 cells)"),
        SuiteConfig("tnb101-full", "tnb101", (1, 3, 64, 64), _tnb101(64), "TransNAS micro, base 64 (benchmark width), 64x64"),
    ]
}

#: ``(task name, variant, target column, suite configuration)`` per family; larger is better.
FAMILY_TARGETS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "nb101": (("nb101", "30k", "val_acc_108", "nb101"),),
    "nb201": (
        ("nb201-c10", "zc-cifar10", "cifar10_val", "nb201"),
        ("nb201-c100", "zc725", "cifar100_val", "nb201"),
        ("nb201-in16", "zc-imagenet16-120", "imagenet16-120_val", "nb201-in16"),
        ("nb201-c10-12ep", "12epoch", "cifar10_val", "nb201"),
        ("nb201-c100-12ep", "12epoch", "cifar100_val", "nb201"),
        ("nb201-in16-12ep", "12epoch", "imagenet16-120_val", "nb201-in16"),
    ),
    "nb301": (("nb301", "zc", "val_accuracy", "nb301"),),
    "tnb101": tuple(
        (f"tnb101-{t}", "micro", t, "tnb101")
        for t in ("class_scene", "class_object", "jigsaw", "segmentsemantic", "autoencoder", "normal", "room_layout")
    ),
    "darts1k": (("darts1k", "cifar10", "val_accuracy", "darts1k"),),
}


def family_keys(family: str, data_dir: str | os.PathLike[str], *, n: int = 1000, seed: int = 0,
                extended: bool = False) -> list[tuple[str, Any]]:
    """``[(key, spec)]`` of the architectures measured for ``family`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if family == "nb201":
        _, _, _, c10 = read_table("nb201", data_dir, variant="zc-cifar10")
        _, _, _, z725 = read_table("nb201", data_dir, variant="zc725")
        in_c10 = set(c10.keys)
        base = [k for k in dict.fromkeys(z725.keys) if k in in_c10]
        others = [k for k in c10.keys if k not in set(base)]
        order = rng.permutation(len(others))
        extra = [others[i] for i in order] if extended else [others[i] for i in order[: max(0, n - len(base))]]
        keys = base + extra
        spec = {k: s for k, s in zip(c10.keys, c10.specs)}
        return [(k, spec[k]) for k in keys]
    variant = {"nb101": "30k", "nb301": "zc", "tnb101": "micro", "darts1k": "cifar10"}[family]
    _, _, _, table = read_table(family, data_dir, variant=variant)
    unique = list(dict.fromkeys(table.keys))
    spec = {k: s for k, s in zip(table.keys, table.specs)}
    if len(unique) > n:
        unique = [unique[i] for i in np.sort(rng.choice(len(unique), size=n, replace=False))]
    return [(k, spec[k]) for k in unique]


def family_targets(family: str, data_dir: str | os.PathLike[str], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Task name -> target per key (NaN where the task's file lacks the architecture).

    Keys that occur several times in a file (NB101 specs with equal hashes) take the mean.
    """
    out: dict[str, np.ndarray] = {}
    tables: dict[str, Any] = {}
    for task, variant, column, _ in FAMILY_TARGETS[family]:
        if variant not in tables:
            tables[variant] = read_table(family, data_dir, variant=variant)[3]
        table = tables[variant]
        sums: dict[str, list[float]] = {}
        for k, v in zip(table.keys, np.asarray(table.targets[column], dtype=float)):
            if math.isfinite(v):
                sums.setdefault(k, []).append(v)
        out[task] = np.array([float(np.mean(sums[k])) if k in sums else math.nan for k in keys])
    return out


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{key: row}`` of a JSON-lines suite checkpoint (the last row of a key wins)."""
    rows: dict[str, dict[str, Any]] = {}
    path = Path(path)
    if not path.is_file():
        return rows
    with path.open() as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
            rows[row["key"]] = row
    return rows


def signal_matrix(rows: dict[str, dict[str, Any]], keys: Iterable[str], signals: Sequence[str]) -> np.ndarray:
    """(n, len(signals)) values of ``keys`` (NaN where missing)."""
    out = []
    for k in keys:
        values = rows.get(k, {}).get("values", {})
        out.append([_float(values.get(s)) for s in signals])
    return np.array(out, dtype=float)


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)  # "-inf"
    return float(value)


def family_graphs(family: str, keys: Sequence[str], *, chunk: int = 250, progress: bool = False,
                  n_jobs: int = 1) -> list[Any]:
    """Graphs of the benchmark's own (full-size) networks for ``keys``, through the family cache.

    Traced in chunks, each merged into the cache file, so an interrupted run keeps its work.
    """
    from nasassist_plugins.families import graph_store_for
    from nasassist_plugins.families.registry import get_family_def

    definition = get_family_def(family)
    keys = list(keys)
    for start in range(0, len(keys), chunk):
        graph_store_for(definition, keys[start:start + chunk], progress=progress, n_jobs=n_jobs)
    store, _ = graph_store_for(definition, keys, progress=progress, n_jobs=n_jobs)
    return [store.graph(store.index[k]) for k in keys]


@dataclass
class TaskData:
    """One (family, task): suite rows, rank targets and graph indices of its architectures."""

    family: str
    task: str
    keys: list[str]
    suite: np.ndarray
    values: np.ndarray
    graph_rows: np.ndarray

    @property
    def target(self) -> np.ndarray:
        """Rank-normalised values (0 worst .. 1 best)."""
        return (rankdata(self.values) - 1) / max(len(self.values) - 1, 1)


def load_tasks(data_dir: str, suite_dir: str, families: Sequence[str], *, progress: bool = False
               ) -> tuple[list[TaskData], list[ComputationalGraph]]:
    """Tasks of ``families`` with suite rows from ``suite_dir`` and their graphs (one list)."""
    tasks: list[TaskData] = []
    graphs: list[ComputationalGraph] = []
    for family in families:
        keys = [k for k, _ in family_keys(family, data_dir)]
        targets = family_targets(family, data_dir, keys)
        checkpoints = {cfg: read_checkpoint(f"{suite_dir}/{cfg}.jsonl") for *_, cfg in FAMILY_TARGETS[family]}
        usable = [k for k in keys if all(k in rows for rows in checkpoints.values())]
        if not usable:
            _logger.warning("%s: no architecture has suite values yet; skipped", family)
            continue
        offset = len(graphs)
        graphs.extend(family_graphs(family, usable, progress=progress))
        position = {k: offset + i for i, k in enumerate(usable)}
        for task, _, _, cfg in FAMILY_TARGETS[family]:
            y = targets[task][[keys.index(k) for k in usable]] if len(usable) != len(keys) else targets[task]
            ok = np.isfinite(y)
            task_keys = [k for k, good in zip(usable, ok) if good]
            if len(task_keys) < 20:
                continue
            tasks.append(TaskData(family, task, task_keys, signal_matrix(checkpoints[cfg], task_keys, SUITE_SIGNALS),
                                  y[ok], np.array([position[k] for k in task_keys])))
    return tasks, graphs
