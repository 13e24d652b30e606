"""``nasassist evaluate``: zero-shot (and few-shot) ranking quality of a predictor."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasassist_plugins.cli.arguments import JOBS, SEED, integer
from nasassist_plugins.cli.outputs import check_writable
from nasassist_plugins.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="Spearman/Kendall/NDCG@10/top-10%% precision on benchmark tasks")
    parser.add_argument("--weights", type=Path, help="predictor weights (default: the shipped ones)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--families", default="nb201,nb301,tnb101", help="families or tasks, comma-separated")
    parser.add_argument("--limit", type=integer(minimum=2),
                        help="architectures per task (random subset; at least 2: a ranking needs two)")
    parser.add_argument("--jobs", type=JOBS, default=2)
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_writable("--out", args.out)  # before any work
    from rich.console import Console
    from rich.table import Table

    from nasassist_plugins.cli.score_command import load_predictor
    from nasassist_plugins.predictor.metrics import ranking_metrics
    from nasassist_plugins.predictor.training.tasks import load_task, resolve_tasks

    predictor = load_predictor(args.weights)
    table = Table(title=f"Zero-shot ranking quality ({args.weights or 'default weights'})")
    for column in ("task", "n", "Spearman", "Kendall τ", "NDCG@10", "P@top10%"):
        table.add_column(column, justify="right")
    results = {}
    for task in resolve_tasks(args.families):
        labelled, _ = load_task(task, args.data, limit=args.limit, seed=args.seed, n_jobs=args.jobs)
        mean, _ = predictor.predict(labelled.graphs)
        if len(labelled.values) < 2:
            raise CommandError(f"{task.name}: {len(labelled.values)} labelled architecture(s) in {args.data}; "
                               "a ranking needs at least 2")
        m = ranking_metrics(mean, labelled.values)
        results[task.name] = m
        table.add_row(task.name, str(m["n"]), f"{m['spearman']:.3f}", f"{m['kendall']:.3f}",
                      f"{m['ndcg@10']:.3f}", f"{m['precision@10%']:.2f}")
    Console().print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0
