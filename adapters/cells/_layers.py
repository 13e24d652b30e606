"""Small building blocks shared by the benchmark-cell networks.

Every block is built from standard ``torch.nn`` layers so that the graph adapters see
ordinary ``Conv2d``/``BatchNorm2d``/``ReLU``/pooling leaves, and every ``forward`` is
free of data-dependent control flow so the networks trace with ``torch.fx``. Composite
blocks name their children (``relu``, ``conv``, ``bn``, ...) instead of using numbered
``nn.Sequential`` slots: the qualified names become the ``module`` of graph nodes and
should read well in reports.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = [
    "ConvBNReLU",
    "DilConv",
    "FactorizedReduce",
    "ReLUConvBN",
    "SepConv",
    "Zero",
    "avg_pool_3x3",
    "check_positive",
    "edge_key",
    "max_pool_3x3",
    "named_sequential",
    "sum_tensors",
]


class Zero(nn.Module):
    """The ``none`` operation: an all-zero tensor shaped like the op's output.

    Benchmarks keep ``none`` edges in the network (they still cost a node in the cell),
    so the op is a real module. ``x.mul(0.0)`` keeps the graph connected and the dtype
    and device of ``x``; a stride subsamples first so reduction edges produce the
    reduced size. When ``out_channels`` differs from ``in_channels`` (TransNAS cells that
    widen the network on an edge) one zero channel is repeated to the requested width.
    The module has no children, so adapters treat it as one leaf node (op ``zero``).
    """

    def __init__(self, in_channels: int | None = None, out_channels: int | None = None, stride: int = 1) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"Zero: stride must be >= 1, got {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = int(stride)
        # Decided once here, so forward has no shape-dependent branching.
        self._widen = out_channels is not None and in_channels is not None and out_channels != in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if self._widen:
            return x[:, :1, ::s, ::s].mul(0.0).repeat(1, self.out_channels, 1, 1)
        if s > 1:
            return x[:, :, ::s, ::s].mul(0.0)
        return x.mul(0.0)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}"


class ReLUConvBN(nn.Module):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d, the pre-activation op of NB201/DARTS/TransNAS."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.relu(x)))


class ConvBNReLU(nn.Module):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> ReLU, NAS-Bench-101's ``conv_bn_relu``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class DilConv(nn.Module):
    """DARTS dilated separable conv: ReLU -> depthwise dilated conv -> pointwise conv -> BN."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.dw = nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=False,
        )
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pw(self.dw(self.relu(x))))


class SepConv(nn.Module):
    """DARTS separable conv: two stacked depthwise-separable blocks, only the first strided."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__()
        self.relu1 = nn.ReLU(inplace=False)
        self.dw1 = nn.Conv2d(
            in_channels, in_channels, kernel_size, stride=stride, padding=padding, groups=in_channels, bias=False
        )
        self.pw1 = nn.Conv2d(in_channels, in_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels, affine=affine)
        self.relu2 = nn.ReLU(inplace=False)
        self.dw2 = nn.Conv2d(
            in_channels, in_channels, kernel_size, stride=1, padding=padding, groups=in_channels, bias=False
        )
        self.pw2 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.pw1(self.dw1(self.relu1(x))))
        return self.bn2(self.pw2(self.dw2(self.relu2(x))))


class FactorizedReduce(nn.Module):
    """ReLU, then two 1x1 convs on the input and on the input shifted by one pixel, concatenated, then BN.

    The reduction used by DARTS (``skip_connect`` on stride-2 edges, preprocessing after a
    reduction cell) and TransNAS (``skip`` edges that change width or size). The shifted
    branch reads a zero-padded copy (as TransNAS does) so odd feature-map sizes work too;
    for even sizes the result equals DARTS' unpadded slice exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, affine: bool = True) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {out_channels}")
        self.relu = nn.ReLU(inplace=False)
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.conv1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=stride, bias=False)
        self.conv2 = nn.Conv2d(in_channels, out_channels - out_channels // 2, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv1(x), self.conv2(shifted)], dim=1))


def avg_pool_3x3(stride: int = 1) -> nn.AvgPool2d:
    """3x3 average pooling with 'same' padding that ignores the padded zeros (NB201, DARTS)."""
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def max_pool_3x3(stride: int = 1) -> nn.MaxPool2d:
    """3x3 max pooling with 'same' padding (NB101, DARTS)."""
    return nn.MaxPool2d(3, stride=stride, padding=1)


def named_sequential(**layers: nn.Module) -> nn.Sequential:
    """An ``nn.Sequential`` whose children carry the given names instead of 0, 1, 2."""
    return nn.Sequential(OrderedDict(layers))


def sum_tensors(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Sum a non-empty list of tensors with a chain of ``+`` (traces to plain ``add`` nodes)."""
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


def edge_key(target: int, source: int) -> str:
    """Readable ``ModuleDict`` key of the edge ``source -> target`` of a cell: ``"2<-0"``."""
    return f"{target}<-{source}"


def check_positive(**sizes: int) -> None:
    """Raise ``ValueError`` naming the first size argument that is not a positive integer."""
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
