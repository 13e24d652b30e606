"""``nasassist graph SPEC``: trace a model and print (or save) its computational graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nasassist_plugins.cli.outputs import check_writable
from nasassist_plugins.errors import NASAssistError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.graph.draw import ENGINES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="trace a model into a computational graph and summarise it",
        description=(
            "SPEC is file.py:ClassOrFactory, package.module:attr, model.onnx, "
            "nb201:<arch_str>, nb101:<json>, darts:<json> or tnb101:<arch_str>."
        ),
    )
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--input-shape", help="example input shape, e.g. 1,3,32,32 (cells default to 1,3,32,32)")
    parser.add_argument("--out", type=Path, help="write the graph: .json (lossless) or .png (drawing)")
    parser.add_argument("--nodes", action="store_true", help="also list every node")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="how a .png is laid out: graphviz dot when installed (auto, the default), dot, or matplotlib",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nasassist_plugins.cli.spec import load_model_spec

    if args.out is not None and args.out.suffix.lower() not in {".json", ".png"}:
        raise NASAssistError(f"--out must end in .json or .png, got {args.out}")
    check_writable("--out", args.out)
    resolved = load_model_spec(args.spec, args.input_shape)
    graph = resolved.graph
    console = Console()
    console.print(summary_table(graph))
    if args.nodes:
        console.print(nodes_table(graph))
    if args.out is not None:
        if args.out.suffix.lower() == ".json":
            graph.to_json(args.out, indent=1)
        else:
            from nasassist_plugins.graph.draw import draw_graph

            draw_graph(graph, args.out, engine=args.engine)
        console.print(f"wrote {args.out}")
    return 0


def summary_table(graph: ComputationalGraph) -> Table:
    s = graph.summary()
    table = Table(title=f"Computational graph: {s.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", justify="right")
    table.add_row("nodes", f"{s.num_nodes:,}")
    table.add_row("edges", f"{s.num_edges:,}")
    table.add_row("weighted nodes", f"{s.num_weighted_nodes:,}")
    table.add_row("parameters", f"{s.num_parameters:,}")
    table.add_row("FLOPs per sample (conv + matmul)", f"{s.matmul_flops:,}")
    table.add_row("FLOPs incl. element-wise ops", f"{s.flops:,}")
    if s.flops_unknown:
        table.add_row("FLOPs unknown (not counted)", ", ".join(s.flops_unknown[:8])
                      + (f" and {len(s.flops_unknown) - 8} more" if len(s.flops_unknown) > 8 else ""))
    if s.partial:
        table.add_row("partial graph", s.partial)
    table.add_row("tracer", str(graph.metadata.get("tracer", "-")))
    table.add_row("WL hash", graph.wl_hash())
    table.add_row("op counts", ", ".join(f"{op} {n}" for op, n in s.op_counts.items()))
    if s.unknown_ops:
        table.add_row("ops outside the vocabulary", ", ".join(s.unknown_ops))
    return table


def nodes_table(graph: ComputationalGraph) -> Table:
    table = Table(title="Nodes")
    for column in ("#", "op", "module", "output shape", "params", "inputs"):
        table.add_column(column)
    for i, node in enumerate(graph.nodes):
        table.add_row(
            str(i),
            node.op_type,
            node.module or "-",
            str(node.attrs.get("output_shape", "-")),
            f"{node.num_params:,}",
            ",".join(str(p) for p in graph.predecessors(i)),
        )
    return table
