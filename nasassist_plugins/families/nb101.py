"""NAS-Bench-101 (CIFAR-10; cells of up to 7 vertices: conv3x3/conv1x1/maxpool).

Graphs are traced from the benchmark's full network (128-channel stem, 3 stacks of 3
cells, 10 classes) on a ``(1, 3, 32, 32)`` input. The network is constructed on
PyTorch's ``meta`` device and then given zero-filled CPU tensors (``to_empty``) before
tracing on the CPU: this skips the random weight initialisation of up to ~50M
parameters, which would otherwise dominate, and gives exactly the graph of a normally
built network (weights' values never enter a graph; checked in the tests). The traced
``num_parameters`` equals the benchmark's ``trainable_parameters``.

Variants (files under ``<data_dir>/nb101/``):

===============  ======  ==============================================================
variant          rows    content
===============  ======  ==============================================================
``30k`` (def.)   30,001  ``val_acc_{4,12,36,108}`` (0..1, one training run per budget),
                         ``train_time_108_s``, ``trainable_parameters``
``1k``           1,000   same columns
``zc``           292     ``val_acc_108`` (converted from % to 0..1) + 11 zero-cost
                         proxies; the file's 500 rows de-duplicated on ``nb101_hash``
                         (first row kept)
===============  ======  ==============================================================

Specs are ``(adjacency, ops)`` of the pruned cell, ``ops`` including ``input`` and
``output``; ids are the benchmark's module hashes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nasassist_plugins.families._base import (
    float_column,
    numeric_columns,
    row_error,
    split_extra_columns,
)
from nasassist_plugins.families.registry import FamilyDef, Table, VariantDef, register

__all__ = ["VARIANTS", "nb101_spec_key"]

_TARGETS = ("val_acc_4", "val_acc_12", "val_acc_36", "val_acc_108", "train_time_108_s", "trainable_parameters")


def nb101_spec_key(spec: tuple[Any, Any]) -> str:
    """Canonical string of an NB101 spec ``(adjacency, ops)`` (validated and pruned first)."""
    from nasassist_plugins.adapters.cells import validate_nb101_spec

    adjacency, ops = spec
    adjacency, ops = validate_nb101_spec(adjacency, ops)
    return json.dumps([adjacency, ops], separators=(",", ":"))


def _key_to_spec(key: str) -> tuple[list[list[int]], list[str]]:
    adjacency, ops = json.loads(key)
    return adjacency, ops


def _parse_spec(path: Path, row_number: int, row: dict[str, str]) -> tuple[tuple[list[list[int]], list[str]], str]:
    specs = []
    for column in ("adjacency", "ops"):
        try:
            specs.append(json.loads(row[column]))
        except (TypeError, json.JSONDecodeError) as exc:
            raise row_error(path, row_number, column, ValueError(f"not valid JSON ({exc})")) from None
    try:
        key = nb101_spec_key((specs[0], specs[1]))
    except ValueError as exc:
        raise row_error(path, row_number, "adjacency/ops", exc) from None
    return _key_to_spec(key), key


def _read_main(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    rows = rows[:limit] if limit is not None else rows
    parsed = [_parse_spec(path, i + 2, r) for i, r in enumerate(rows)]
    _, extra_cols = split_extra_columns(columns, ("hash", "num_vertices", "adjacency", "ops", *_TARGETS))
    return Table(
        specs=[p[0] for p in parsed],
        keys=[p[1] for p in parsed],
        ids=[r["hash"] for r in rows],
        targets={name: float_column(path, rows, name) for name in _TARGETS},
        extras=numeric_columns(path, rows, extra_cols),
        metadata={"units": {"val_acc_*": "accuracy in 0..1", "train_time_108_s": "seconds",
                            "trainable_parameters": "count"}},  # fmt: skip
    )


def _read_zc(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    seen: set[str] = set()
    kept: list[tuple[int, dict[str, str]]] = []
    for i, row in enumerate(rows):
        if row["nb101_hash"] in seen:
            continue
        if limit is not None and len(kept) >= limit:
            break
        seen.add(row["nb101_hash"])
        kept.append((i + 2, row))
    parsed = [_parse_spec(path, n, r) for n, r in kept]
    rows = [r for _, r in kept]
    proxy_cols, extra_cols = split_extra_columns(
        columns, ("nb101_hash", "adjacency", "ops", "naslib_tuple", "val_accuracy")
    )
    return Table(
        specs=[p[0] for p in parsed],
        keys=[p[1] for p in parsed],
        ids=[r["nb101_hash"] for r in rows],
        targets={"val_acc_108": float_column(path, rows, "val_accuracy", scale=0.01)},
        proxies=numeric_columns(path, rows, proxy_cols),
        extras=numeric_columns(path, rows, extra_cols),
        metadata={"units": {"val_acc_108": "accuracy in 0..1 (file: %)"}, "deduplicated_on": "nb101_hash"},
    )


VARIANTS: dict[str, VariantDef] = {
    "30k": VariantDef(
        "30k",
        "nb101/nb101_30k_with_arch.csv",
        _read_main,
        ("hash", "adjacency", "ops", *_TARGETS),
        "val_acc_108",
        "30,001 cells with validation accuracy after 4/12/36/108 epochs",
    ),
    "1k": VariantDef(
        "1k",
        "nb101/nb101_1k_with_arch.csv",
        _read_main,
        ("hash", "adjacency", "ops", *_TARGETS),
        "val_acc_108",
        "1,000 cells with validation accuracy after 4/12/36/108 epochs",
    ),
    "zc": VariantDef(
        "zc",
        "nb101/nb101_cifar10_zc.csv",
        _read_zc,
        ("nb101_hash", "adjacency", "ops", "val_accuracy"),
        "val_acc_108",
        "292 cells with zero-cost proxies and 108-epoch validation accuracy (NASLib)",
        row_limited=False,
    ),
}

#: Settings of the traced network (the benchmark's).
BUILD_CONFIG: dict[str, Any] = {"num_classes": 10, "stem_channels": 128, "num_stacks": 3, "modules_per_stack": 3}


def _network(spec: tuple[Any, Any]):
    from nasassist_plugins.adapters.cells import nb101_network

    adjacency, ops = spec
    return nb101_network(adjacency, ops, **BUILD_CONFIG)


def _random(rng: np.random.Generator) -> tuple[list[list[int]], list[str]]:
    from nasassist_plugins.adapters.cells import random_nb101_spec

    adjacency, ops = random_nb101_spec(rng)
    return [list(map(int, r)) for r in adjacency], list(ops)


DEFINITION = register(
    FamilyDef(
        name="nb101",
        variants=VARIANTS,
        default_variant="30k",
        build_network=_network,
        spec_to_key=nb101_spec_key,
        key_to_spec=_key_to_spec,
        random_spec=_random,
        build_config=BUILD_CONFIG,
        device="meta-to-cpu",
        modules=("nasassist_plugins.adapters.cells.nb101",),
    )
)
