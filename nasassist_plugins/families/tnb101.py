"""TransNAS-Bench-101, micro (cell-level) space: 4,096 cells ``64-41414-a_bc_def``.

Graphs are traced from the benchmark's encoder (stem to 1/4 resolution, macro skeleton
``41414`` of two cells per layer, 64 base channels) with a 100-class classification
head, on a ``(1, 3, 32, 32)`` input like the other families (the benchmark trains on
256x256 images: the graph's structure, channels and parameters are the same, only the
recorded feature-map sizes are smaller). The network is constructed on PyTorch's
``meta`` device and given zero-filled CPU tensors before tracing on the CPU (skipping
the random initialisation of its ~15M weights; same graph). One graph per cell serves all seven tasks (task-specific decoders are not
modelled).

The files are long tables (one row per cell and task); the loader pivots them to one
row per cell, in order of first appearance:

================  =====  ===============================================================
variant           rows   content
================  =====  ===============================================================
``micro`` (def.)  4,096  one target per task (``class_scene``, ``class_object``,
                         ``jigsaw``: top-1 %; ``segmentsemantic``: pixel accuracy %;
                         ``autoencoder``, ``normal``: SSIM; ``room_layout``: negative
                         L2) and the Zen score per task as proxy ``<task>/zen``
``micro-zc``      ~711   the same targets for a subset, with proxies ``<task>/<proxy>``
                         (NaN where a task has no row for the cell)
================  =====  ===============================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nasassist_plugins.errors import DataError
from nasassist_plugins.families._base import (
    float_column,
    numeric_columns,
    row_error,
    split_extra_columns,
)
from nasassist_plugins.families.registry import FamilyDef, Table, VariantDef, register

__all__ = ["TASKS", "VARIANTS"]

#: The seven TransNAS-Bench-101 tasks.
TASKS: tuple[str, ...] = (
    "class_scene", "class_object", "room_layout", "jigsaw", "segmentsemantic", "normal", "autoencoder",
)  # fmt: skip


def _canonical(arch_str: str) -> str:
    from nasassist_plugins.adapters.cells import parse_tnb101_arch

    return str(parse_tnb101_arch(arch_str))


def _read_long(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    used = ("task", "naslib_idx", "tnb_arch_str", "naslib_op_indices", "val_accuracy")
    proxy_cols, extra_cols = split_extra_columns(columns, used)
    order: dict[str, int] = {}
    cells: dict[tuple[str, str], dict[str, str]] = {}
    tasks: list[str] = []
    canonical: dict[str, str] = {}
    for i, row in enumerate(rows):
        task = (row.get("task") or "").strip()
        if not task:
            raise DataError(f"{path.name}: row {i + 2}, column 'task' is empty")
        raw = row.get("tnb_arch_str") or ""
        arch = canonical.get(raw)
        if arch is None:
            try:
                arch = canonical[raw] = _canonical(raw)
            except ValueError as exc:
                raise row_error(path, i + 2, "tnb_arch_str", exc) from None
        if arch not in order:
            if limit is not None and len(order) >= limit:
                continue
            order[arch] = len(order)
        if task not in tasks:
            tasks.append(task)
        cells[(arch, task)] = row
    archs = list(order)
    tasks.sort(key=lambda t: TASKS.index(t) if t in TASKS else len(TASKS))
    targets: dict[str, np.ndarray] = {}
    proxies: dict[str, np.ndarray] = {}
    extras: dict[str, np.ndarray] = {}
    for task in tasks:
        picked = [cells.get((a, task), {}) for a in archs]
        targets[task] = float_column(path, picked, "val_accuracy")
        for name, values in numeric_columns(path, picked, proxy_cols).items():
            proxies[f"{task}/{name}"] = values
        for name, values in numeric_columns(path, picked, extra_cols).items():
            extras[f"{task}/{name}"] = values
    return Table(
        specs=archs, keys=archs, ids=archs, targets=targets, proxies=proxies, extras=extras,
        metadata={"tasks": tasks, "units": {"class_scene": "top-1 %", "class_object": "top-1 %", "jigsaw": "top-1 %",
                  "segmentsemantic": "pixel accuracy %", "autoencoder": "SSIM", "normal": "SSIM",
                  "room_layout": "negative L2"}},
    )  # fmt: skip


VARIANTS: dict[str, VariantDef] = {
    "micro": VariantDef(
        "micro",
        "tnb101/tnb101_micro_all4096_zen_valacc.csv",
        _read_long,
        ("task", "tnb_arch_str", "val_accuracy"),
        "class_object",
        "all 4,096 micro cells x 7 tasks, final validation metric + Zen score",
        row_limited=False,
    ),
    "micro-zc": VariantDef(
        "micro-zc",
        "tnb101/tnb101_micro_zc.csv",
        _read_long,
        ("task", "tnb_arch_str", "val_accuracy"),
        "class_object",
        "~711 micro cells per task with zero-cost proxies (NASLib)",
        row_limited=False,
    ),
}

#: Settings of the traced network.
BUILD_CONFIG: dict[str, Any] = {"num_classes": 100}


def _network(arch_str: str):
    from nasassist_plugins.adapters.cells import tnb101_network

    return tnb101_network(arch_str, **BUILD_CONFIG)


def _random(rng: np.random.Generator) -> str:
    from nasassist_plugins.adapters.cells import random_tnb101_arch

    return random_tnb101_arch(rng)


DEFINITION = register(
    FamilyDef(
        name="tnb101",
        variants=VARIANTS,
        default_variant="micro",
        build_network=_network,
        spec_to_key=_canonical,
        key_to_spec=str,
        random_spec=_random,
        build_config=BUILD_CONFIG,
        device="meta-to-cpu",
        modules=("nasassist_plugins.adapters.cells.tnb101",),
    )
)
