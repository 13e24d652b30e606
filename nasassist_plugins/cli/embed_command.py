"""``nasassist embed``: t-SNE/PCA maps of benchmark architectures in the predictor's
embedding space, shaded by accuracy and GMM cluster, with an optional search path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasassist_plugins.cli.arguments import JOBS, SEED, integer
from nasassist_plugins.cli.outputs import add_output_arguments, report_paths
from nasassist_plugins.cli.score_command import add_weights_argument, load_predictor, make_console
from nasassist_plugins.errors import CommandError
from nasassist_plugins.graph import ComputationalGraph


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="map benchmark architectures' embeddings (t-SNE and PCA) by accuracy and GMM cluster",
        description=(
            "Each of --families is a task (nb101, nb201-c10, nb301, tnb101-class_object, ...) or a family "
            "(nb101, nb201, nb301, tnb101: its first task). --path is a JSON list of graph JSON files or "
            "SPEC strings, drawn as a connected line of arrows (a search trajectory)."
        ),
    )
    parser.add_argument("--data", type=Path, required=True, help="benchmark data directory (e.g. ../shared/data)")
    parser.add_argument("--families", default="nb201", help="families or tasks, comma-separated (default nb201)")
    parser.add_argument("--limit", type=integer(minimum=1), default=500, help="architectures per task (random subset; default 500)")
    add_weights_argument(parser)
    add_output_arguments(parser, png="embedding_map.png", json_name=None)
    parser.add_argument("--path", type=Path, help="JSON list of graph JSON files or SPEC strings to draw as a path")
    parser.add_argument("--input-shape", help="input shape for SPEC strings in --path (e.g. 1,3,32,32)")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--jobs", type=JOBS, default=1, help="processes for tracing uncached benchmark graphs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nasassist_plugins.relevance.report import embedding_map

    out, _ = report_paths(args, png="embedding_map.png")
    if out is None:
        raise CommandError("say where to write the map: --out-dir DIR (embedding_map.png there) or --out FILE.png")
    if args.limit is not None and args.limit < 2:
        raise CommandError(f"--limit must be at least 2, got {args.limit}")
    if not args.data.is_dir():
        raise CommandError(f"benchmark data directory not found: {args.data}")
    predictor = load_predictor(args.weights)
    path_graphs, path_names = load_path(args.path, args.input_shape) if args.path else ([], [])
    graphs, values, labels = load_benchmark_points(args.families, args.data, args.limit, args.seed, args.jobs)
    console = make_console()
    result = embedding_map(predictor, graphs, values, labels, out, path_graphs=path_graphs,
                           path_names=path_names, seed=args.seed,
                           title=f"Predictor embeddings of {', '.join(dict.fromkeys(labels))}")
    if path_graphs:
        console.print(_path_table(predictor, path_graphs, path_names))
    console.print(f"{len(graphs)} architectures, {len(set(result.clusters.tolist()))} GMM clusters; wrote {out}")
    return 0


def _path_table(predictor: Any, graphs: list[ComputationalGraph], names: list[str]):
    """The search path's steps (as numbered in the figure) with their predicted scores."""
    from rich.table import Table

    mean, std = predictor.predict(graphs)
    table = Table(title="Search path (numbers as in the figure)")
    table.add_column("step", justify="right")
    table.add_column("architecture", overflow="fold")
    table.add_column("predicted", justify="right", no_wrap=True)
    for k, (name, m, s) in enumerate(zip(names, mean, std)):
        table.add_row(str(k), name, f"{m:.4f} ± {s:.4f}")
    return table


def resolve_task_names(families: str) -> list[str]:
    """Family or task names -> task names (a family maps to its first task)."""
    from nasassist_plugins.predictor.training.tasks import FAMILY_TASKS, TASKS

    names: list[str] = []
    for item in (i.strip() for i in families.split(",") if i.strip()):
        if item in TASKS:
            names.append(item)
        elif item in FAMILY_TASKS:
            names.append(FAMILY_TASKS[item][0])
        else:
            raise CommandError(f"unknown family or task {item!r}; choose from {sorted(set(FAMILY_TASKS) | set(TASKS))}")
    if not names:
        raise CommandError("--families is empty")
    return list(dict.fromkeys(names))


def load_benchmark_points(
    families: str, data_dir: Path, limit: int | None, seed: int, jobs: int
) -> tuple[list[ComputationalGraph], list[float], list[str]]:
    """(graphs, values, task label per graph) of the requested tasks."""
    from nasassist_plugins.predictor.training.tasks import TASKS, load_task

    graphs: list[ComputationalGraph] = []
    values: list[float] = []
    labels: list[str] = []
    for name in resolve_task_names(families):
        labelled, _ = load_task(TASKS[name], data_dir, limit=limit, seed=seed, n_jobs=jobs)
        graphs += list(labelled.graphs)
        values += [float(v) for v in labelled.values]
        labels += [name] * len(labelled.graphs)
    return graphs, values, labels


def load_path(path_file: Path, input_shape: str | None) -> tuple[list[ComputationalGraph], list[str]]:
    """Graphs and names of a search path file: a JSON list of graph JSON files
    (relative to the path file's folder or the working directory), SPEC strings, or
    inline graph objects."""
    if not path_file.is_file():
        raise CommandError(f"path file not found: {path_file}")
    try:
        items = json.loads(path_file.read_text())
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path_file} is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise CommandError(f"{path_file} must hold a non-empty JSON list of graph files or SPEC strings")
    graphs, names = [], []
    for k, item in enumerate(items):
        graph, name = _path_step(item, path_file.parent, input_shape, k)
        graphs.append(graph)
        names.append(name)
    return graphs, names


def _path_step(item: Any, base: Path, input_shape: str | None, k: int) -> tuple[ComputationalGraph, str]:
    from nasassist_plugins.cli.spec import load_model_spec

    if isinstance(item, dict):
        return ComputationalGraph.from_dict(item), str(item.get("name", f"step {k}"))
    if not isinstance(item, str):
        raise CommandError(f"path step {k} is a {type(item).__name__}: expected a graph file name or a SPEC string")
    if item.lower().endswith(".json"):
        candidates = [Path(item), base / item]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CommandError(f"path step {k}: graph file not found: {item}")
        return ComputationalGraph.from_json(found), found.stem
    return load_model_spec(item, input_shape).graph, item
