"""``nasassist relevance SPEC``: per-layer relevance (predictor masking, optionally beside
data-driven saliency) as a terminal table, a bar-chart PNG and JSON."""

from __future__ import annotations

import argparse
import json

from nasassist_plugins.cli.arguments import integer
from nasassist_plugins.cli.outputs import add_output_arguments, report_paths
from nasassist_plugins.cli.score_command import add_weights_argument, load_predictor, make_console
from nasassist_plugins.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relevance",
        help="rank a model's layers by how much masking each lowers the predicted score",
        description=(
            "Masks one layer (module) at a time, re-predicts, and reports each layer's predicted drop and "
            "share (drop / sum of |drop| over all layers; the chart's bars show the same share). Layers are "
            "sorted by share, largest first; # is the layer's position in graph order. Files are written "
            "only where you say: --out-dir DIR (relevance.png and relevance.json there), or --out / --json. "
            "SPEC is file.py:ClassOrFactory, package.module:attr, model.onnx, "
            "nb201:<arch_str>, nb101:<json>, darts:<json> or tnb101:<arch_str>."
        ),
    )
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--input-shape", help="example input shape, e.g. 1,3,32,32 (cells default to 1,3,32,32)")
    add_weights_argument(parser)
    parser.add_argument("--data-driven", choices=("synflow", "snip"), help="also compute per-module saliency")
    parser.add_argument("--saliency-batch", type=integer(minimum=1), default=8, help="batch size for --data-driven (default 8)")
    add_output_arguments(parser, png="relevance.png", json_name="relevance.json")
    parser.add_argument("--top", type=integer(minimum=1), default=40, help="layers shown in the table and chart (largest |drop|; default 40)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nasassist_plugins.cli.spec import load_model_spec
    from nasassist_plugins.relevance import data_driven_relevance, layer_relevance
    from nasassist_plugins.relevance.report import plot_relevance, relevance_rich_table

    png, json_path = report_paths(args, png="relevance.png", json_name="relevance.json")
    if args.top is not None and args.top < 1:
        raise CommandError(f"--top must be positive, got {args.top}")
    predictor = load_predictor(args.weights)
    resolved = load_model_spec(args.spec, args.input_shape)
    table = layer_relevance(predictor, resolved.graph)
    saliency = None
    if args.data_driven:
        if resolved.model is None or resolved.input_shape is None:
            raise CommandError(f"{args.spec}: --data-driven needs a PyTorch model (not an ONNX file)")
        if args.saliency_batch < 1:
            raise CommandError(f"--saliency-batch must be positive, got {args.saliency_batch}")
        batch_shape = (args.saliency_batch, *resolved.input_shape[1:])
        saliency = data_driven_relevance(resolved.model, batch_shape, method=args.data_driven)
    console = make_console()
    console.print(relevance_rich_table(table, saliency, top=args.top))
    if png is not None:
        plot_relevance(table, png, saliency, top=args.top)
        console.print(f"wrote {png}")
    if json_path is not None:
        payload = table.to_dict()
        if saliency is not None:
            payload["data_driven"] = saliency.to_dict()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=1))
        console.print(f"wrote {json_path}")
    if png is None and json_path is None:
        console.print("(nothing written: --out-dir DIR saves the bar chart and the JSON tables)")
    return 0

