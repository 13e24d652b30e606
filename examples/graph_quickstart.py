"""Trace three kinds of candidate architectures into one graph space and compare them.

Runs offline on CPU in a few seconds:

    python examples/graph_quickstart.py --out examples/output

1. a user's PyTorch model (a small ResNet) through ``from_torch``;
2. the same model exported to ONNX and read back with ``from_onnx`` (the weighted ops
   and parameter counts must agree);
3. an NAS-Bench-201 cell built as a real network with ``nb201_network``.

It prints a summary table per graph and writes each graph as JSON and PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from rich.console import Console

from nasassist_plugins.adapters import export_onnx, from_onnx, from_torch, nb201_network
from nasassist_plugins.cli.graph_command import summary_table
from nasassist_plugins.graph.draw import draw_graph


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/output"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console()
    example = torch.randn(1, 3, 32, 32)

    model = SmallResNet()
    torch_graph = from_torch(model, example, name="small-resnet (torch)")
    onnx_path = export_onnx(model, example, args.out / "small_resnet.onnx")
    onnx_graph = from_onnx(onnx_path, name="small-resnet (onnx)")
    cell = nb201_network("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    cell_graph = from_torch(cell, example, name="nb201 cell network")

    for graph in (torch_graph, onnx_graph, cell_graph):
        console.print(summary_table(graph))
        stem = graph.name.split(" ")[0] + ("-onnx" if "onnx" in graph.name else "")
        graph.to_json(args.out / f"{stem}.json")
        draw_graph(graph, args.out / f"{stem}.png")

    agree = (
        torch_graph.weighted_op_counts() == onnx_graph.weighted_op_counts()
        and torch_graph.num_parameters == onnx_graph.num_parameters
    )
    console.print(
        f"torch vs ONNX: weighted ops {dict(torch_graph.weighted_op_counts())} vs {dict(onnx_graph.weighted_op_counts())}; "
        f"parameters {torch_graph.num_parameters:,} vs {onnx_graph.num_parameters:,} -> "
        + ("[green]agree[/green]" if agree else "[red]disagree[/red]")
    )
    console.print(f"wrote JSON and PNG files to {args.out}")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
