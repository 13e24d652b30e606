"""NAS-Bench-201 cells as real PyTorch networks.

The skeleton follows the benchmark's "tiny network" (Dong & Yang, 2020): a 3x3 conv +
BN stem, three stages of ``cells_per_stage`` identical cells with ``channels``,
``2*channels`` and ``4*channels`` channels, separated by residual reduction blocks,
then BN-ReLU, global average pooling and a linear classifier. A cell has 4 nodes;
node ``i`` is the sum of one op applied to each earlier node, and the cell's output is
node 3. With ``channels=16``, ``cells_per_stage=5`` and 10 classes the parameter count
ranges from 73,306 (no convolution in the cell) to 1,531,546 (all ``nor_conv_3x3``),
the values published with the benchmark.
"""

from __future__ import annotations

import torch
from torch import nn

from nasassist_plugins.adapters.cells._layers import (
    FactorizedReduce,
    ReLUConvBN,
    Zero,
    avg_pool_3x3,
    edge_key,
    named_sequential,
    check_positive,
    sum_tensors,
)

__all__ = ["NB201_OPS", "nb201_network", "parse_nb201_arch", "random_nb201_arch", "NB201Arch"]

#: Operation names of the NAS-Bench-201 cell, in the benchmark's order.
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

_NUM_NODES = 4  # input node 0 plus three computed nodes

#: Parsed cell: for each computed node 1..3, its incoming ``(op, source_node)`` pairs.
NB201Arch = tuple[tuple[tuple[str, int], ...], ...]


def parse_nb201_arch(arch_str: str) -> NB201Arch:
    """Parse an NB201 cell string such as ``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|``.

    Returns one tuple per computed node (1, 2, 3) holding its ``(op, source)`` edges in
    the order written. Node ``i`` must have exactly one edge from every node ``j < i``.

    Raises:
        ValueError: naming the malformed part (wrong node count, unknown op, bad or
            repeated source index, missing edge).
    """
    if not isinstance(arch_str, str):
        raise ValueError(f"NB201 arch string must be a str, got {type(arch_str).__name__}")
    text = arch_str.strip()
    if not text:
        raise ValueError("NB201 arch string is empty")
    node_strs = text.split("+")
    if len(node_strs) != _NUM_NODES - 1:
        raise ValueError(
            f"NB201 arch string must describe {_NUM_NODES - 1} nodes separated by '+', "
            f"found {len(node_strs)} in {arch_str!r}"
        )
    nodes: list[tuple[tuple[str, int], ...]] = []
    for node, node_str in enumerate(node_strs, start=1):
        if not (node_str.startswith("|") and node_str.endswith("|")):
            raise ValueError(f"NB201 node {node} must be written as '|op~src|...|', got {node_str!r}")
        edges: list[tuple[str, int]] = []
        for item in node_str.strip("|").split("|"):
            op, sep, src_str = item.partition("~")
            if not sep or not src_str.strip().isdigit():
                raise ValueError(f"NB201 node {node}: edge {item!r} is not of the form 'op~source_index'")
            if op not in NB201_OPS:
                raise ValueError(f"NB201 node {node}: unknown op {op!r}; expected one of {list(NB201_OPS)}")
            src = int(src_str)
            if src >= node:
                raise ValueError(f"NB201 node {node}: source index {src} must be smaller than {node}")
            edges.append((op, src))
        sources = sorted(src for _, src in edges)
        if sources != list(range(node)):
            raise ValueError(
                f"NB201 node {node} must have exactly one edge from each of nodes {list(range(node))}, "
                f"got sources {sources}"
            )
        nodes.append(tuple(edges))
    return tuple(nodes)


def _format_nb201_arch(nodes: NB201Arch) -> str:
    """Inverse of :func:`parse_nb201_arch`."""
    return "+".join("|" + "|".join(f"{op}~{src}" for op, src in edges) + "|" for edges in nodes)


def random_nb201_arch(rng) -> str:
    """A uniformly random NB201 cell string (each of the 6 edges picks one of the 5 ops).

    Args:
        rng: a ``numpy.random.Generator``.
    """
    picks = rng.integers(0, len(NB201_OPS), size=6)
    it = iter(int(p) for p in picks)
    nodes = tuple(tuple((NB201_OPS[next(it)], src) for src in range(node)) for node in range(1, _NUM_NODES))
    return _format_nb201_arch(nodes)


def _nb201_op(op: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """One NB201 edge operation (ops on edges from the cell input get its width/stride)."""
    if op == "none":
        return Zero(in_channels, out_channels, stride)
    if op == "skip_connect":
        if stride == 1 and in_channels == out_channels:
            return nn.Identity()
        return FactorizedReduce(in_channels, out_channels, stride)
    if op == "nor_conv_1x1":
        return ReLUConvBN(in_channels, out_channels, 1, stride, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(in_channels, out_channels, 3, stride, 1)
    if op == "avg_pool_3x3":
        if in_channels == out_channels:
            return avg_pool_3x3(stride)
        return named_sequential(
            preprocess=ReLUConvBN(in_channels, out_channels, 1, 1, 0), pool=avg_pool_3x3(stride)
        )
    raise ValueError(f"unknown NB201 op {op!r}; expected one of {list(NB201_OPS)}")


class NB201Cell(nn.Module):
    """An NB201 cell: node ``i`` sums the ops on its edges from nodes ``0..i-1``; output is node 3.

    Edge modules live in ``edges`` under keys ``"<target><-<source>"`` (``"2<-0"``).
    """

    def __init__(self, nodes: NB201Arch, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        plan: list[list[tuple[str, int]]] = []
        for node, node_edges in enumerate(nodes, start=1):
            incoming = []
            for op, src in node_edges:
                key = edge_key(node, src)
                if src == 0:
                    self.edges[key] = _nb201_op(op, in_channels, out_channels, stride)
                else:
                    self.edges[key] = _nb201_op(op, out_channels, out_channels, 1)
                incoming.append((key, src))
            plan.append(incoming)
        self._plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for incoming in self._plan:
            states.append(sum_tensors([self.edges[key](states[src]) for key, src in incoming]))
        return states[-1]


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: two ReLU-Conv3x3-BN (first strided) plus a pooled 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride, 1)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3, 1, 1)
        if stride == 2:
            self.downsample: nn.Module | None = named_sequential(
                pool=nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            )
        elif in_channels != out_channels:
            self.downsample = ReLUConvBN(in_channels, out_channels, 1, 1, 0)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        residual = x if self.downsample is None else self.downsample(x)
        return residual + out


class NB201Network(nn.Module):
    """The NAS-Bench-201 macro skeleton around one repeated cell (see :func:`nb201_network`)."""

    def __init__(
        self, nodes: NB201Arch, channels: int, cells_per_stage: int, num_classes: int, in_channels: int
    ) -> None:
        super().__init__()
        self.arch_str = _format_nb201_arch(nodes)
        self.stem = named_sequential(
            conv=nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), bn=nn.BatchNorm2d(channels)
        )
        self.cells = nn.ModuleList()
        c_prev = channels
        for stage in range(3):
            c_curr = channels * 2**stage
            if stage > 0:
                self.cells.append(ResNetBasicBlock(c_prev, c_curr, 2))
            for _ in range(cells_per_stage):
                self.cells.append(NB201Cell(nodes, c_curr, c_curr, 1))
            c_prev = c_curr
        self.lastact = named_sequential(bn=nn.BatchNorm2d(c_prev), relu=nn.ReLU(inplace=False))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pool(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))


def nb201_network(
    arch_str: str, *, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3
) -> nn.Module:
    """Build the NAS-Bench-201 network of a cell string.

    Args:
        arch_str: official cell string, e.g.
            ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
        channels: channels of the first stage (16 in the benchmark); stages 2 and 3 double it.
        cells_per_stage: cells per stage (5 in the benchmark).
        num_classes: classifier outputs (10 CIFAR-10, 100 CIFAR-100, 120 ImageNet16-120).
        in_channels: image channels read by the stem.

    Raises:
        ValueError: for a malformed arch string or non-positive sizes.
    """
    nodes = parse_nb201_arch(arch_str)
    check_positive(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes, in_channels=in_channels)
    return NB201Network(nodes, channels, cells_per_stage, num_classes, in_channels)

