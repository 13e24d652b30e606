"""TransNAS-Bench-101 cells as real PyTorch networks.

Architecture strings read ``<base channels>-<macro code>-<cell code>``, e.g.
``64-41414-3_11_212`` (the micro, cell-level space keeps ``64-41414`` fixed and varies
the cell) or ``64-412234-basic`` (the macro space, ResNet basic blocks).

Encoder skeleton, checked against the benchmark's published model code (``MacroNet``,
``MicroCell`` and ``cell_ops`` in yawen-d/TransNASBench):

* stem: 3x3 conv stride 2 to ``base/2`` channels + BN, then ReLU-Conv3x3(stride 2)-BN to
  ``base`` channels, so the encoder starts at 1/4 resolution;
* one layer per macro digit, each made of two cells: digit 1 keeps width and
  resolution, 2 doubles the width, 3 halves the resolution, 4 does both; only the first
  cell of a layer changes width/resolution;
* micro cell ``a_bc_def``: node 1 = op a(node 0); node 2 = op b(node 0) + op c(node 1);
  node 3 = op d(node 0) + op e(node 1) + op f(node 2); the output is node 3. Ops reading
  node 0 carry the layer's width change and stride. Codes: 0 none (zeros of the output
  shape), 1 skip (identity, or ``FactorizedReduce`` when width or size changes),
  2 ReLU-Conv1x1-BN, 3 ReLU-Conv3x3-BN;
* classification head (``FFDecoder`` in the benchmark): global average pool + linear.
  The benchmark's configs use 75 classes (class_object) and 47 (class_scene) on 256x256
  inputs; NASLib, whose proxy table ships a ``params`` column, uses 100 and 63. The
  encoder built here matches that column exactly (encoder + ``513 * num_classes``), so
  ``num_classes`` defaults to 100.

Differences from the original code, all numerically neutral: node sums use ``+``
instead of ``torch.stack(...).sum(0)``, and the ``none`` op on a widening edge repeats one
zero channel instead of allocating zeros from the input's shape (which ``torch.fx``
cannot trace).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from nasassist_plugins.adapters.cells._layers import (
    FactorizedReduce,
    ReLUConvBN,
    Zero,
    check_positive,
    edge_key,
    named_sequential,
    sum_tensors,
)

__all__ = [
    "TNB101_OPS",
    "TNB101Arch",
    "parse_tnb101_arch",
    "random_tnb101_arch",
    "tnb101_network",
]

#: Cell op codes of the micro space.
TNB101_OPS: dict[int, str] = {0: "none", 1: "skip_connect", 2: "nor_conv_1x1", 3: "nor_conv_3x3"}
_MICRO_PREFIX = "64-41414"
_BASIC = "basic"


class TNB101Arch(NamedTuple):
    """A parsed TransNAS-Bench-101 architecture string.

    Attributes:
        base_channels: channels after the stem (64 in the benchmark).
        macro: one digit 1..4 per layer (see the module docstring).
        cell: op codes per computed node (``((a,), (b, c), (d, e, f))``), or ``None`` for
            the macro space's ResNet basic blocks.
    """

    base_channels: int
    macro: tuple[int, ...]
    cell: tuple[tuple[int, ...], ...] | None

    def __str__(self) -> str:
        macro = "".join(str(d) for d in self.macro)
        cell = _BASIC if self.cell is None else "_".join("".join(str(op) for op in node) for node in self.cell)
        return f"{self.base_channels}-{macro}-{cell}"


def parse_tnb101_arch(arch_str: str) -> TNB101Arch:
    """Parse a TransNAS-Bench-101 string such as ``64-41414-3_11_212`` or ``64-412234-basic``.

    Raises:
        ValueError: naming the malformed part (field count, base channels, macro digit,
            cell node count or op code).
    """
    if not isinstance(arch_str, str):
        raise ValueError(f"TNB101 arch string must be a str, got {type(arch_str).__name__}")
    parts = arch_str.strip().split("-")
    if len(parts) != 3:
        raise ValueError(
            f"TNB101 arch string must have 3 '-'-separated fields (channels-macro-cell), got {arch_str!r}"
        )
    base_str, macro_str, cell_str = parts
    if not base_str.isdigit() or int(base_str) < 2 or int(base_str) % 2:
        raise ValueError(f"TNB101 base channels must be an even integer >= 2, got {base_str!r}")
    if not macro_str or any(ch not in "1234" for ch in macro_str):
        raise ValueError(f"TNB101 macro code must be a non-empty string of digits 1-4, got {macro_str!r}")
    macro = tuple(int(ch) for ch in macro_str)
    if cell_str == _BASIC:
        return TNB101Arch(int(base_str), macro, None)
    nodes = cell_str.split("_")
    if len(nodes) != 3:
        raise ValueError(f"TNB101 cell code must have 3 '_'-separated nodes (a_bc_def), got {cell_str!r}")
    for node, ops in enumerate(nodes, start=1):
        if len(ops) != node:
            raise ValueError(f"TNB101 cell node {node} must have {node} op code(s), got {ops!r} in {cell_str!r}")
        for ch in ops:
            if ch not in "0123":
                raise ValueError(
                    f"TNB101 cell node {node}: unknown op code {ch!r}; expected 0 none, 1 skip, 2 conv1x1, 3 conv3x3"
                )
    return TNB101Arch(int(base_str), macro, tuple(tuple(int(ch) for ch in ops) for ops in nodes))


def random_tnb101_arch(rng) -> str:
    """A uniformly random micro-space string ``64-41414-a_bc_def`` (one of the 4,096 cells).

    Args:
        rng: a ``numpy.random.Generator``.
    """
    codes = [str(int(c)) for c in rng.integers(0, len(TNB101_OPS), size=6)]
    return f"{_MICRO_PREFIX}-{codes[0]}_{''.join(codes[1:3])}_{''.join(codes[3:])}"


def _tnb101_op(code: int, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """One micro-cell edge operation."""
    if code == 0:
        return Zero(in_channels, out_channels, stride)
    if code == 1:
        if stride == 1 and in_channels == out_channels:
            return nn.Identity()
        return FactorizedReduce(in_channels, out_channels, stride)
    if code == 2:
        return ReLUConvBN(in_channels, out_channels, 1, stride, 0)
    if code == 3:
        return ReLUConvBN(in_channels, out_channels, 3, stride, 1)
    raise ValueError(f"unknown TNB101 op code {code!r}; expected one of {sorted(TNB101_OPS)}")


class TNB101MicroCell(nn.Module):
    """A TransNAS micro cell; edge ops live in ``edges`` under keys ``"<node><-<input>"``."""

    def __init__(self, cell: tuple[tuple[int, ...], ...], in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        self._plan: list[list[tuple[str, int]]] = []
        for node, codes in enumerate(cell, start=1):
            incoming = []
            for src, code in enumerate(codes):
                key = edge_key(node, src)
                if src == 0:
                    self.edges[key] = _tnb101_op(code, in_channels, out_channels, stride)
                else:
                    self.edges[key] = _tnb101_op(code, out_channels, out_channels, 1)
                incoming.append((key, src))
            self._plan.append(incoming)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for incoming in self._plan:
            states.append(sum_tensors([self.edges[key](states[src]) for key, src in incoming]))
        return states[-1]


class TNB101BasicBlock(nn.Module):
    """The macro space's ResNet basic block: two ReLU-Conv3x3-BN plus a 1x1 conv-BN shortcut when needed."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride, 1)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3, 1, 1)
        if stride != 1 or in_channels != out_channels:
            self.downsample: nn.Module | None = named_sequential(
                conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(out_channels),
            )
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        residual = x if self.downsample is None else self.downsample(x)
        return residual + out


class TNB101Network(nn.Module):
    """TransNAS-Bench-101 encoder plus a classification head (see :func:`tnb101_network`)."""

    def __init__(self, arch: TNB101Arch, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.arch_str = str(arch)
        base = arch.base_channels
        self.stem = named_sequential(
            conv1=nn.Conv2d(in_channels, base // 2, 3, stride=2, padding=1, bias=False),
            bn1=nn.BatchNorm2d(base // 2),
            conv2=ReLUConvBN(base // 2, base, 3, 2, 1),
        )
        self.layers = nn.ModuleList()
        channels = base
        for digit in arch.macro:
            target = channels * 2 if digit % 2 == 0 else channels
            stride = 2 if digit > 2 else 1
            first = self._cell(arch, channels, target, stride)  # only the first cell resizes
            self.layers.append(nn.Sequential(first, self._cell(arch, target, target, 1)))
            channels = target
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    @staticmethod
    def _cell(arch: TNB101Arch, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        if arch.cell is None:
            return TNB101BasicBlock(in_channels, out_channels, stride)
        return TNB101MicroCell(arch.cell, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(torch.flatten(self.global_pool(x), 1))


def tnb101_network(arch_str: str, *, num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """Build a TransNAS-Bench-101 encoder with a classification head.

    Args:
        arch_str: ``64-41414-a_bc_def`` (micro space) or ``<C>-<macro>-basic`` (macro space).
        num_classes: classifier outputs (class_object: 75 in the benchmark's config,
            100 in NASLib; class_scene: 47 and 63).
        in_channels: image channels read by the stem.

    Raises:
        ValueError: for a malformed arch string or bad sizes.
    """
    arch = parse_tnb101_arch(arch_str)
    check_positive(num_classes=num_classes, in_channels=in_channels)
    return TNB101Network(arch, num_classes, in_channels)
