"""darts1k: 1,000 DARTS-space networks with measured CIFAR-10 accuracies.

The genotypes were sampled at random from the DARTS space and the networks trained by the
authors of SWAP (ICLR 2024; ``DARTS_archs_CIFAR10.csv``, 200 epochs); the reduction cell
equals the normal cell in every row. Their training network was smaller than DARTS'
evaluation network and its exact skeleton is not published, so graphs are traced from the
same DARTS network as NB301 (8 cells, 32 initial channels, 10 classes) and the family is
for **ranking** (Spearman, Kendall, top-k), not for absolute accuracy.

Variant ``cifar10`` (default; ``<data_dir>/darts1k/darts1k_cifar10_valacc.csv``): target
``val_accuracy`` (%, 10.2 .. 86.6). Specs are ``(normal, reduce)`` genotypes as in NB301
(``none`` edges occur here, unlike NB301).
"""

from __future__ import annotations

from pathlib import Path

from nasassist_plugins.families._base import float_column
from nasassist_plugins.families.nb301 import BUILD_CONFIG, DEFINITION as _NB301, genotype_keys, nb301_spec_key
from nasassist_plugins.families.registry import FamilyDef, Table, VariantDef, register

__all__ = ["VARIANTS"]


def _read(path: Path, rows: list[dict[str, str]], columns: list[str], limit: int | None) -> Table:
    rows = rows[:limit] if limit is not None else rows
    keys = genotype_keys(path, rows)
    return Table(
        specs=[_NB301.key_to_spec(k) for k in keys],
        keys=keys,
        ids=[str(i) for i in range(len(keys))],
        targets={"val_accuracy": float_column(path, rows, "val_accuracy")},
        metadata={"units": "CIFAR-10 validation accuracy in % (measured; small training network, rank use only)"},
    )


VARIANTS: dict[str, VariantDef] = {
    "cifar10": VariantDef(
        "cifar10",
        "darts1k/darts1k_cifar10_valacc.csv",
        _read,
        ("genotype_normal", "genotype_reduce", "val_accuracy"),
        "val_accuracy",
        "1,000 random DARTS genotypes with measured CIFAR-10 validation accuracy (%) (SWAP's data set)",
    ),
}

DEFINITION = register(
    FamilyDef(
        name="darts1k",
        variants=VARIANTS,
        default_variant="cifar10",
        build_network=_NB301.build_network,
        spec_to_key=nb301_spec_key,
        key_to_spec=_NB301.key_to_spec,
        random_spec=_NB301.random_spec,
        build_config=BUILD_CONFIG,
        device="cpu",
        modules=("nasassist_plugins.adapters.cells.darts",),
    )
)
