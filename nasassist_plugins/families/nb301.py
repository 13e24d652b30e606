"""NAS-Bench-301 (the DARTS search space on CIFAR-10).

Graphs are traced from the DARTS network NB301 evaluates (8 cells, 32 initial
channels, reduction cells at 1/3 and 2/3 depth, 10 classes) on a ``(1, 3, 32, 32)``
input, built and traced on the CPU.

Variant ``zc`` (default; ``<data_dir>/nb301/nb301_cifar10_zc.csv``, 725 rows): target
``val_accuracy`` (%) is the **NB301 surrogate model's prediction**, not a trained
result; 12 zero-cost proxies. Specs are ``(normal, reduce)`` genotypes, each a list of
8 ``(op, input_node)`` pairs (two per intermediate node 2..5, concat ``[2, 3, 4, 5]``).
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

__all__ = ["VARIANTS", "nb301_spec_key"]

Genotype = list[tuple[str, int]]


def nb301_spec_key(spec: tuple[Any, Any]) -> str:
    """Canonical string of a ``(normal, reduce)`` genotype pair (validated first)."""
    from nasassist_plugins.adapters.cells import validate_darts_genotype

    normal, reduce = spec
    normal = validate_darts_genotype(normal, name="genotype_normal")
    reduce = validate_darts_genotype(reduce, name="genotype_reduce")
    return json.dumps([[list(p) for p in normal], [list(p) for p in reduce]], separators=(",", ":"))


def _key_to_spec(key: str) -> tuple[Genotype, Genotype]:
    normal, reduce = json.loads(key)
    return [(str(op), int(src)) for op, src in normal], [(str(op), int(src)) for op, src in reduce]


def genotype_keys(path: Path, rows: list[dict[str, str]]) -> list[str]:
    """Spec keys of rows holding ``genotype_normal``/``genotype_reduce`` JSON (NB301, darts1k)."""
    keys: list[str] = []
    for i, row in enumerate(rows):
        genotypes = []
        for column in ("genotype_normal", "genotype_reduce"):
            try:
                genotypes.append(json.loads(row[column]))
            except (TypeError, json.JSONDecodeError) as exc:
                raise row_error(path, i + 2, column, ValueError(f"not valid JSON ({exc})")) from None
        try:
            keys.append(nb301_spec_key((genotypes[0], genotypes[1])))
        except ValueError as exc:
            raise row_error(path, i + 2, "genotype_normal/genotype_reduce", exc) from None
    return keys


def _read_zc(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    rows = rows[:limit] if limit is not None else rows
    keys = genotype_keys(path, rows)
    proxy_cols, extra_cols = split_extra_columns(
        columns, ("genotype_normal", "genotype_reduce", "naslib_compact", "val_accuracy")
    )
    return Table(
        specs=[_key_to_spec(k) for k in keys],
        keys=keys,
        ids=keys,
        targets={"val_accuracy": float_column(path, rows, "val_accuracy")},
        proxies=numeric_columns(path, rows, proxy_cols),
        extras=numeric_columns(path, rows, extra_cols),
        metadata={"units": "accuracy in % (NB301 surrogate prediction)"},
    )


VARIANTS: dict[str, VariantDef] = {
    "zc": VariantDef(
        "zc",
        "nb301/nb301_cifar10_zc.csv",
        _read_zc,
        ("genotype_normal", "genotype_reduce", "val_accuracy"),
        "val_accuracy",
        "725 DARTS genotypes, NB301 surrogate accuracy (%) + 12 zero-cost proxies (NASLib)",
    ),
}

#: Settings of the traced network (NB301's evaluation network).
BUILD_CONFIG: dict[str, Any] = {"channels": 32, "layers": 8, "num_classes": 10}


def _network(spec: tuple[Genotype, Genotype]):
    from nasassist_plugins.adapters.cells import darts_network

    normal, reduce = spec
    return darts_network(normal, reduce, **BUILD_CONFIG)


def _random(rng: np.random.Generator) -> tuple[Genotype, Genotype]:
    from nasassist_plugins.adapters.cells import random_darts_genotype

    normal, reduce = random_darts_genotype(rng)
    return [(str(o), int(s)) for o, s in normal], [(str(o), int(s)) for o, s in reduce]


DEFINITION = register(
    FamilyDef(
        name="nb301",
        variants=VARIANTS,
        default_variant="zc",
        build_network=_network,
        spec_to_key=nb301_spec_key,
        key_to_spec=_key_to_spec,
        random_spec=_random,
        build_config=BUILD_CONFIG,
        device="cpu",
        modules=("nasassist_plugins.adapters.cells.darts",),
    )
)
