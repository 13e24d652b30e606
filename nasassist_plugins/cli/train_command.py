"""``nasassist train``: train the zero-shot predictor on benchmark families."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from nasassist_plugins.cli.arguments import JOBS, POSITIVE, SEED, integer
from nasassist_plugins.cli.outputs import check_writable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the predictor (encoder pre-training, GMM gate, mixture of experts)",
        description="Train on labelled benchmark families read from --data; --leave-out drops one family "
        "so that it can be used for zero-shot evaluation.",
    )
    parser.add_argument("--data", type=Path, required=True, help="benchmark data directory (e.g. ../shared/data)")
    parser.add_argument("--train-families", default="all", help="families or tasks, comma-separated (default: all)")
    parser.add_argument("--leave-out", help="family to exclude from training (leave-family-out)")
    parser.add_argument("--out", type=Path, required=True, help="output directory for predictor.safetensors")
    parser.add_argument("--limit-per-task", type=integer(minimum=1), default=3000, help="labelled architectures per task (random)")
    parser.add_argument("--tnb-limit", type=integer(minimum=1), default=1000,
                        help="architectures per TransNAS-Bench-101 task (its 7 tasks share the same cells)")
    parser.add_argument("--unlabelled", type=integer(minimum=0), default=500, help="random unlabelled cells per family for pre-training")
    parser.add_argument("--zoo", type=integer(minimum=0), default=100, help="generated ResNet/MobileNet/Inception/MLP/ViT models")
    parser.add_argument("--pretrain-epochs", type=integer(minimum=0), default=3)
    parser.add_argument("--supervised-epochs", type=integer(minimum=1), default=6)
    parser.add_argument("--max-minutes", type=POSITIVE, default=50.0, help="overall time budget for the training steps")
    parser.add_argument("--jobs", type=JOBS, default=2, help="processes for tracing benchmark graphs")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--fused", action="store_true",
                        help="train the fused zero-shot score (training-free anchor + learned correction) from the "
                             "suite values in --suite, with a leave-family-out report; the other size options above "
                             "do not apply")
    parser.add_argument("--suite", type=Path, default=Path("benchmarks/results/suite"),
                        help="folder of suite checkpoints from benchmarks/zero_shot_suite.py (with --fused)")
    parser.add_argument("--families", default="nb101,nb201,nb301,tnb101,darts1k",
                        help="families for --fused (comma-separated)")
    parser.add_argument("--no-report", action="store_true",
                        help="with --fused: skip the leave-family-out report and the choice of the shrinkage and "
                             "calibration it drives (their defaults are kept); faster, for weights used on graphs "
                             "alone, where the learned part is the whole score")
    parser.set_defaults(func=run)


def run_fused(args: argparse.Namespace) -> int:
    from nasassist_plugins.errors import CommandError
    from nasassist_plugins.predictor.training.fused import FusedConfig, load_tasks, train_fused

    started = time.perf_counter()
    if not args.suite.is_dir():
        raise CommandError(f"--suite {args.suite} is not a folder of suite checkpoints (run benchmarks/zero_shot_suite.py)")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    tasks, graphs = load_tasks(str(args.data), str(args.suite), families, progress=True)
    if not tasks:
        raise CommandError(f"no family in {families} has suite values in {args.suite}")
    load_s = time.perf_counter() - started
    config = FusedConfig(pretrain_epochs=args.pretrain_epochs, zoo=args.zoo, seed=args.seed,
                         pretrain_max_minutes=min(8.0, 0.2 * args.max_minutes))
    predictor, report = train_fused(tasks, graphs, config, evaluate=not args.no_report, progress=True)
    predictor.training_info["timings"]["load_and_trace_s"] = load_s
    predictor.training_info["command"] = "nasassist " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report["timings"]["load_and_trace_s"] = load_s
    args.out.mkdir(parents=True, exist_ok=True)
    weights = predictor.save(args.out / "predictor.safetensors")
    (args.out / "training_info.json").write_text(json.dumps(predictor.training_info, indent=1))
    (args.out / "fused_report.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and fused_report.json; "
          f"{len(tasks)} tasks of {', '.join(families)} in {time.perf_counter() - started:.0f} s")
    return 0


def run(args: argparse.Namespace) -> int:
    check_writable("--out", args.out, folder=True)
    if args.fused:
        return run_fused(args)
    from nasassist_plugins.families import sample_graphs
    from nasassist_plugins.predictor.training.tasks import load_task, resolve_tasks
    from nasassist_plugins.predictor.training.pipeline import TrainingConfig, train_predictor
    from nasassist_plugins.predictor.training.zoo import sample_zoo_graphs

    started = time.perf_counter()
    tasks = resolve_tasks(args.train_families, leave_out=args.leave_out)
    if not tasks:
        from nasassist_plugins.errors import NASAssistError

        raise NASAssistError("no training tasks left after --leave-out")
    labelled = [
        load_task(t, args.data, limit=args.tnb_limit if t.family == "tnb101" else args.limit_per_task,
                  seed=args.seed, n_jobs=args.jobs)[0]
        for t in tasks
    ]
    families = sorted({t.family for t in tasks})
    unlabelled = [g for fam in families for g in sample_graphs(fam, args.unlabelled, seed=args.seed + 1, n_jobs=args.jobs)]
    unlabelled += sample_zoo_graphs(args.zoo, seed=args.seed)
    data_s = time.perf_counter() - started
    budget = max(args.max_minutes, 1.0)
    config = TrainingConfig(
        pretrain_epochs=args.pretrain_epochs,
        pretrain_max_minutes=0.35 * budget,
        supervised_epochs=args.supervised_epochs,
        supervised_max_minutes=0.4 * budget,
        regressor_max_minutes=0.25 * budget,
        seed=args.seed,
        notes={"leave_out": args.leave_out, "tasks": [t.name for t in tasks]},
    )
    predictor = train_predictor(labelled, unlabelled, config)
    predictor.training_info["timings"]["load_and_trace_s"] = data_s
    predictor.training_info["command"] = "nasassist " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    weights = predictor.save(args.out / "predictor.safetensors")
    (args.out / "training_info.json").write_text(json.dumps(predictor.training_info, indent=1))
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB); trained on {', '.join(t.name for t in tasks)} "
          f"in {time.perf_counter() - started:.0f} s")
    return 0
