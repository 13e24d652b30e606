"""NAS benchmark cells (NAS-Bench-101, NAS-Bench-201, DARTS/NAS-Bench-301, TransNAS-Bench-101)
as real PyTorch networks, with parsers, validators and random samplers of each space.

The networks use only standard ``torch.nn`` layers plus a childless :class:`Zero` module
for ``none`` edges, have no data-dependent control flow (they trace with ``torch.fx``),
and name their submodules after the cell structure (``cells.3.edges.2<-0``), so that the
graph adapters turn a benchmark cell and a user's model into the same kind of graph.
"""

from nasassist_plugins.adapters.cells._layers import Zero
from nasassist_plugins.adapters.cells.darts import (
    DARTS_OPS,
    darts_network,
    random_darts_genotype,
    validate_darts_genotype,
)
from nasassist_plugins.adapters.cells.nb101 import (
    NB101_OPS,
    nb101_network,
    random_nb101_spec,
    validate_nb101_spec,
)
from nasassist_plugins.adapters.cells.nb201 import (
    NB201_OPS,
    nb201_network,
    parse_nb201_arch,
    random_nb201_arch,
)
from nasassist_plugins.adapters.cells.tnb101 import (
    TNB101_OPS,
    TNB101Arch,
    parse_tnb101_arch,
    random_tnb101_arch,
    tnb101_network,
)

__all__ = [
    "DARTS_OPS",
    "NB101_OPS",
    "NB201_OPS",
    "TNB101_OPS",
    "TNB101Arch",
    "Zero",
    "darts_network",
    "nb101_network",
    "nb201_network",
    "parse_nb201_arch",
    "parse_tnb101_arch",
    "random_darts_genotype",
    "random_nb101_spec",
    "random_nb201_arch",
    "random_tnb101_arch",
    "tnb101_network",
    "validate_darts_genotype",
    "validate_nb101_spec",
]
