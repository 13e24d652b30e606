"""``nasassist score SPEC``: predicted score ± uncertainty, GMM clusters, optional proxies.

Also home of :func:`load_predictor`, which the ``relevance`` and ``embed`` commands
share: it turns a missing ``--weights`` file or missing default weights into one clear
error line instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from nasassist_plugins.cli.arguments import integer
from nasassist_plugins.cli.outputs import check_writable
from nasassist_plugins.errors import CommandError, MissingWeightsError




def add_weights_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--weights`` option shared by the predictor-backed commands."""
    parser.add_argument(
        "--weights", type=Path, help="predictor weights file (.safetensors from `nasassist train`; default: the shipped ones)"
    )


def make_console():
    """A rich console; when output is not a terminal (a pipe, a file, a test), 120 columns
    wide rather than rich's default 80, so wide tables are not truncated."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    return console


def load_predictor(weights: Path | None):
    """The predictor of ``--weights``, or the default one, with a clear error when absent."""
    from nasassist_plugins.predictor import Predictor, default_predictor
    from nasassist_plugins.predictor.persistence import DEFAULT_WEIGHTS

    if weights is not None:
        if not Path(weights).is_file():
            raise MissingWeightsError(f"predictor weights not found: {weights}")
        return Predictor.load(weights)
    if not DEFAULT_WEIGHTS.is_file():
        raise MissingWeightsError(
            f"no default predictor weights are installed ({DEFAULT_WEIGHTS} is missing); "
            "pass --weights PATH to a weights file (train one with `nasassist train`)"
        )
    return default_predictor()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="predict a model's score with uncertainty, its GMM clusters and optional zero-cost proxies",
        description=(
            "SPEC is file.py:ClassOrFactory, package.module:attr, model.onnx, "
            "nb201:<arch_str>, nb101:<json>, darts:<json> or tnb101:<arch_str>."
        ),
    )
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--input-shape", help="example input shape, e.g. 1,3,32,32 (cells default to 1,3,32,32)")
    add_weights_argument(parser)
    parser.add_argument("--proxies", help="zero-cost proxies to compute, comma-separated (e.g. synflow,nwot), or 'all'")
    parser.add_argument("--proxy-batch", type=integer(minimum=1, maximum=4096), default=16, help="batch size of the proxies' synthetic batch (default 16)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nasassist_plugins.cli.spec import load_model_spec

    check_writable("--json", args.json)
    predictor = load_predictor(args.weights)
    resolved = load_model_spec(args.spec, args.input_shape)
    result = score_graph(predictor, resolved.graph, resolved.model, resolved.input_shape)
    if args.proxies:
        result["proxies"], result["proxy_errors"] = _proxies(resolved, args.proxies, args.proxy_batch)
    console = make_console()
    console.print(_score_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        console.print(f"wrote {args.json}")
    return 0


def score_graph(predictor: Any, graph, model: Any = None, input_shape: Any = None) -> dict[str, Any]:
    """Score, uncertainty, novelty, kind and top-3 GMM memberships of one model (or graph).

    A PyTorch model gets the fused zero-shot score (its training-free suite runs on a random
    batch of 16 of ``input_shape``), placed against the predictor's reference; a graph or an
    ONNX file gets the learned part only.
    """
    import torch

    item = model if model is not None and input_shape is not None else graph
    details = _quietly(predictor.score, [item], input_shape if item is model else None, population="reference")
    z = torch.from_numpy(predictor.embed([graph]))
    with torch.no_grad():
        memberships = predictor.clusterer.memberships(z).numpy()[0]
    top = np.argsort(-memberships, kind="stable")[:3]
    anchor = float(details.anchor[0])
    return {
        "graph": graph.name,
        "num_parameters": graph.num_parameters,
        "score": float(details.score[0]),
        "std": float(details.std[0]),
        "kind": details.kind[0],
        "anchor": anchor if math.isfinite(anchor) else None,
        "learned": float(details.learned[0]),
        "scale": predictor.target_description,
        "novelty": float(details.novelty[0]),
        "suite": {k: (v if math.isfinite(v) else None) for k, v in (details.signals[0] or {}).items()},
        "clusters": [{"cluster": int(k), "membership": float(memberships[k])} for k in top],
    }


def _proxies(resolved, names: str, batch: int) -> tuple[dict[str, float | None], dict[str, str]]:
    """Zero-cost proxies of the resolved model on a synthetic batch: values (``None`` for a
    proxy that failed) and the failure reasons."""
    from nasassist_plugins.proxies import available_proxies, run_proxies

    if resolved.model is None or resolved.input_shape is None:
        raise CommandError(f"{resolved.spec}: zero-cost proxies need a PyTorch model (not an ONNX file or graph)")
    wanted = available_proxies() if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in available_proxies()]
    if unknown or not wanted:
        raise CommandError(f"unknown proxies {unknown or names!r}; choose from {', '.join(available_proxies())} or 'all'")
    if batch < 1:
        raise CommandError(f"--proxy-batch must be positive, got {batch}")
    shape = (batch, *resolved.input_shape[1:])
    runs = _quietly(run_proxies, resolved.model, names=wanted, input_shape=shape, progress=False)
    values = {r.name: (float(r.value) if math.isfinite(r.value) else None) for r in runs}
    errors = {r.name: r.error for r in runs if r.error}
    return values, errors


def _quietly(function, *args, **kwargs):
    """Call ``function`` with the proxies' (and the graph-only notice's) warnings held back
    (the table shows what failed and which kind of score it is)."""
    loggers = [logging.getLogger(name) for name in ("nasassist_plugins.proxies", "nasassist_plugins.predictor")]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        return function(*args, **kwargs)
    finally:
        for lg, level in zip(loggers, previous):
            lg.setLevel(level)


def _score_table(result: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"Predicted score of {result['graph']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("score", f"{result['score']:.4f} ± {result['std']:.4f} ({result.get('kind', '-')})")
    if result.get("anchor") is not None:
        table.add_row("training-free anchor", f"{result['anchor']:.4f}")
    table.add_row("learned part", f"{result.get('learned', float('nan')):.4f}")
    table.add_row("scale", result["scale"] or "-")
    table.add_row("parameters", f"{result['num_parameters']:,}")
    table.add_row("novelty", f"{result['novelty']:.2f} (fraction of training architectures more typical; 1: unlike all)")
    table.add_row(
        "GMM clusters (top 3)", ", ".join(f"cluster {c['cluster']}: {c['membership']:.3f}" for c in result["clusters"])
    )
    for name, value in (result.get("suite") or {}).items():
        table.add_row(f"suite {name}", "failed" if value is None else f"{value:.6g}")
    errors = result.get("proxy_errors") or {}
    for name, value in (result.get("proxies") or {}).items():
        table.add_row(f"proxy {name}", f"failed: {errors.get(name, 'no value')}" if value is None else f"{value:.6g}")
    return table
