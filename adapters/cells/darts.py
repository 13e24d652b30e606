"""DARTS / NAS-Bench-301 cells as real PyTorch networks.

The skeleton is DARTS' CIFAR network (Liu et al., 2019) as evaluated by NAS-Bench-301:
a 3x3 conv + BN stem with ``3*channels`` channels, ``layers`` cells of which those at
1/3 and 2/3 of the depth are reduction cells (stride 2, doubled width), global average
pooling and a linear classifier; no auxiliary head and no drop-path.

A cell reads the outputs of the two previous cells (nodes 0 and 1), preprocesses them to
the cell width (a ``FactorizedReduce`` for node 0 right after a reduction cell, else a
1x1 ReLU-Conv-BN), computes four intermediate nodes 2..5 as the sum of two ops on earlier
nodes, and concatenates nodes 2..5. In a reduction cell, ops reading nodes 0 or 1 have
stride 2.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from nasassist_plugins.adapters.cells._layers import (
    DilConv,
    FactorizedReduce,
    ReLUConvBN,
    SepConv,
    Zero,
    avg_pool_3x3,
    check_positive,
    edge_key,
    max_pool_3x3,
    named_sequential,
)

__all__ = [
    "DARTS_OPS",
    "DartsGenotype",
    "darts_network",
    "random_darts_genotype",
    "validate_darts_genotype",
]

#: Operation names of the DARTS search space. NB301 samples never use ``none``.
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
_SAMPLED_OPS = DARTS_OPS[1:]
_STEPS = 4  # intermediate nodes 2..5
_CONCAT = tuple(range(2, 2 + _STEPS))
_STEM_MULTIPLIER = 3

#: A cell genotype: 8 ``(op, input_node)`` pairs, two per intermediate node 2..5.
DartsGenotype = list[tuple[str, int]]


def validate_darts_genotype(genotype: Any, *, name: str = "genotype") -> DartsGenotype:
    """Check a DARTS cell genotype and return it as a list of ``(op, input_node)`` tuples.

    Accepts the NB301 CSV form (a JSON list of ``[op, input]`` pairs, already decoded)
    or tuples. The genotype must hold 8 pairs; pair ``2k`` and ``2k+1`` feed node
    ``k + 2`` and must read an earlier node (``0 <= input < k + 2``); ops must be in
    :data:`DARTS_OPS`.

    Args:
        genotype: the pairs.
        name: what to call the genotype in error messages (``genotype_normal`` ...).

    Raises:
        ValueError: naming the problem and the offending pair.
    """
    if isinstance(genotype, (str, bytes)) or not isinstance(genotype, Sequence):
        raise ValueError(f"DARTS {name} must be a list of (op, input_node) pairs, got {type(genotype).__name__}")
    if len(genotype) != 2 * _STEPS:
        raise ValueError(
            f"DARTS {name} must have {2 * _STEPS} (op, input_node) pairs (2 per node 2..5), got {len(genotype)}"
        )
    pairs: DartsGenotype = []
    for index, pair in enumerate(genotype):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"DARTS {name} entry {index} must be an (op, input_node) pair, got {pair!r}")
        op, src = pair
        if op not in DARTS_OPS:
            raise ValueError(f"DARTS {name} entry {index}: unknown op {op!r}; expected one of {list(DARTS_OPS)}")
        if isinstance(src, bool) or not hasattr(src, "__index__"):
            raise ValueError(f"DARTS {name} entry {index}: input node must be an integer, got {src!r}")
        src = int(src)
        node = index // 2 + 2
        if not 0 <= src < node:
            raise ValueError(f"DARTS {name} entry {index}: node {node} cannot read node {src} (allowed 0..{node - 1})")
        pairs.append((str(op), src))
    return pairs


def random_darts_genotype(rng) -> tuple[DartsGenotype, DartsGenotype]:
    """A random ``(normal, reduce)`` genotype pair, sampled like NAS-Bench-301.

    Each intermediate node picks two distinct earlier nodes and, per edge, one of the 7
    ops other than ``none``.

    Args:
        rng: a ``numpy.random.Generator``.
    """

    def one_cell() -> DartsGenotype:
        pairs: DartsGenotype = []
        for k in range(_STEPS):
            sources = rng.choice(k + 2, size=2, replace=False)
            for src in sorted(int(s) for s in sources):
                pairs.append((_SAMPLED_OPS[int(rng.integers(len(_SAMPLED_OPS)))], src))
        return pairs

    return one_cell(), one_cell()


def _darts_op(op: str, channels: int, stride: int) -> nn.Module:
    """One DARTS edge operation at width ``channels``."""
    if op == "none":
        return Zero(channels, channels, stride)
    if op == "max_pool_3x3":
        return max_pool_3x3(stride)
    if op == "avg_pool_3x3":
        return avg_pool_3x3(stride)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, stride)
    if op == "sep_conv_3x3":
        return SepConv(channels, channels, 3, stride, 1)
    if op == "sep_conv_5x5":
        return SepConv(channels, channels, 5, stride, 2)
    if op == "dil_conv_3x3":
        return DilConv(channels, channels, 3, stride, 2, 2)
    if op == "dil_conv_5x5":
        return DilConv(channels, channels, 5, stride, 4, 2)
    raise ValueError(f"unknown DARTS op {op!r}; expected one of {list(DARTS_OPS)}")


class DartsCell(nn.Module):
    """One DARTS cell; edge ops live in ``edges`` under keys ``"<node><-<input>"``."""

    def __init__(
        self,
        genotype: DartsGenotype,
        prev_prev_channels: int,
        prev_channels: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(prev_prev_channels, channels, 2)
        else:
            self.preprocess0 = ReLUConvBN(prev_prev_channels, channels, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(prev_channels, channels, 1, 1, 0)
        self.edges = nn.ModuleDict()
        self._plan: list[tuple[str, int, str, int]] = []
        for k in range(_STEPS):
            node = k + 2
            keys = []
            for op, src in genotype[2 * k : 2 * k + 2]:
                key = edge_key(node, src)
                if key in self.edges:  # both edges of a node read the same input
                    key = f"{key}_b"
                stride = 2 if reduction and src < 2 else 1
                self.edges[key] = _darts_op(op, channels, stride)
                keys.append((key, src))
            self._plan.append((keys[0][0], keys[0][1], keys[1][0], keys[1][1]))
        self.out_channels = channels * len(_CONCAT)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for key_a, src_a, key_b, src_b in self._plan:
            states.append(self.edges[key_a](states[src_a]) + self.edges[key_b](states[src_b]))
        return torch.cat([states[i] for i in _CONCAT], dim=1)


class DartsNetwork(nn.Module):
    """DARTS' CIFAR evaluation network without auxiliary head (see :func:`darts_network`)."""

    def __init__(
        self,
        normal: DartsGenotype,
        reduce: DartsGenotype,
        channels: int,
        layers: int,
        num_classes: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        self.genotype_normal = list(normal)
        self.genotype_reduce = list(reduce)
        stem_channels = _STEM_MULTIPLIER * channels
        self.stem = named_sequential(
            conv=nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False), bn=nn.BatchNorm2d(stem_channels)
        )
        prev_prev, prev, curr = stem_channels, stem_channels, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        reduction_layers = {layers // 3, 2 * layers // 3}
        for i in range(layers):
            reduction = i in reduction_layers
            if reduction:
                curr *= 2
            cell = DartsCell(reduce if reduction else normal, prev_prev, prev, curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            prev_prev, prev = prev, cell.out_channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.global_pool(s1), 1))


def darts_network(
    genotype_normal: Any,
    genotype_reduce: Any,
    *,
    channels: int = 32,
    layers: int = 8,
    num_classes: int = 10,
    in_channels: int = 3,
) -> nn.Module:
    """Build the DARTS / NAS-Bench-301 network of a normal and a reduction genotype.

    Args:
        genotype_normal: 8 ``(op, input_node)`` pairs of the normal cell, e.g. the decoded
            ``genotype_normal`` column of the NB301 CSV.
        genotype_reduce: the same for the reduction cell.
        channels: width of the first cells (32 for NB301's evaluation, 36 for DARTS' paper).
        layers: number of cells (8 for NB301, 20 for DARTS' paper); at least 3.
        num_classes: classifier outputs.
        in_channels: image channels read by the stem.

    Raises:
        ValueError: for a malformed genotype or bad sizes.
    """
    normal = validate_darts_genotype(genotype_normal, name="genotype_normal")
    reduce = validate_darts_genotype(genotype_reduce, name="genotype_reduce")
    check_positive(channels=channels, layers=layers, num_classes=num_classes, in_channels=in_channels)
    if layers < 3:
        raise ValueError(f"layers must be at least 3 so that both reduction cells exist, got {layers}")
    if channels % 2:
        raise ValueError(f"channels must be even (FactorizedReduce halves it), got {channels}")
    return DartsNetwork(normal, reduce, channels, layers, num_classes, in_channels)
