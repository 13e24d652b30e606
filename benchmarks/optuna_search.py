"""Search benchmark on tabular NAS benchmarks: NASAssistSampler vs Optuna's samplers.

    python benchmarks/optuna_search.py --data ../shared/data \
        --weights benchmarks/results/predictor_lofo_nb201.safetensors --seeds 20 --trials 100

Every method runs real Optuna studies on the same seeds; the objective looks the
architecture up in the benchmark table (NB201: 12-epoch CIFAR-10 validation accuracy of
all 15,625 cells, CIFAR-10 test accuracy reported; TransNAS-Bench-101 micro: 4,096
cells, one study per task, including non-classification tasks). The predictor must not
have seen the benchmark's family: for NB201, weights trained with NB201 left out
(``nasassist train --data ../shared/data --leave-out nb201 --out DIR``); TransNAS-Bench-101
needs weights trained without it (``--leave-out tnb101``) for a zero-shot claim. Fused weights
without NB201: ``nasassist train --fused --families nb101,nb301,tnb101,darts1k --out DIR``.
``--checkpoint FILE`` appends every finished study to FILE and skips those already there.

Methods: RandomSampler, TPESampler, GPSampler, NASAssistSampler zero-shot only
(``fine_tune=False``), NASAssistSampler with fine-tuning, and NASAssistSampler with the
predictor off (same candidate machinery, random choice: an ablation).

Reports per method: trials to reach the top 1 % (first trial whose validation value is
in the space's top 1 %; studies that never reach it count as ``trials + 1`` and are
listed), best validation (and test) value after 20 and 100 trials, and writes a
regret-vs-trials plot, Markdown and JSON to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
TNB_TASKS = ("class_object", "autoencoder", "room_layout")
METHODS = ("random", "tpe", "gp", "nasassist-zeroshot", "nasassist", "nasassist-nopredictor", "nasassist-moe")
DEFAULT_METHODS = METHODS[:6]


@dataclass
class Space:
    """A tabular search space: parameter names, choices, and the lookup from params to row."""

    name: str
    choices: tuple[Any, ...]
    index: dict[tuple, int]
    values: np.ndarray  # objective (validation) per row
    report: np.ndarray | None  # reported (test) value per row, if any
    keys: list[str]


def _nb201_edges(arch: str) -> tuple[str, ...]:
    return tuple(token.split("~")[0] for token in arch.replace("+", "").split("|") if token)


def _tnb_edges(spec: str) -> tuple[int, ...]:
    cell = spec.split("-")[-1].replace("_", "")
    return tuple(int(c) for c in cell)


def build_spaces(
    data: str, tasks: list[str], n_jobs: int = 1, graphs: bool = True
) -> tuple[list[Space], dict[str, Any]]:
    """The search spaces; ``graphs=False`` reads only the tables (enough for the baselines)."""
    from types import SimpleNamespace

    from nasassist_plugins.families import load_family
    from nasassist_plugins.families._base import read_table
    from nasassist_plugins.search import params_key

    spaces, families = [], {}
    for family_name in sorted({"nb201" if t == "nb201" else "tnb101" for t in tasks}):
        if graphs:
            family = load_family(family_name, data, n_jobs=n_jobs)
        else:
            table = read_table(family_name, data)[3]
            family = SimpleNamespace(name=family_name, specs=table.specs,
                                     target=lambda name, table=table: table.targets[name])
        families[family_name] = family
    for task in tasks:
        if task == "nb201":
            family = families["nb201"]
            edges = [_nb201_edges(s) for s in family.specs]
            choices = NB201_OPS
            values, report = np.asarray(family.target("cifar10_val")), np.asarray(family.target("cifar10_test"))
        else:
            family = families["tnb101"]
            edges = [_tnb_edges(s) for s in family.specs]
            choices = (0, 1, 2, 3)
            values, report = np.asarray(family.target(task)), None
        index = {e: i for i, e in enumerate(edges)}
        keys = [params_key({f"edge_{k}": op for k, op in enumerate(e)}) for e in edges]
        spaces.append(Space("nb201-c10-12ep" if task == "nb201" else f"tnb101-{task}", choices, index, values, report, keys))
    return spaces, families


# ---------------------------------------------------------------------- one study
_STATE: dict[str, Any] = {}


def _init_worker(data: str, tasks: list[str], weights: str, threads: int, graphs: bool) -> None:
    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spaces, families = build_spaces(data, tasks, graphs=graphs)
    _STATE.update(spaces={s.name: s for s in spaces})
    if not graphs:
        return
    from nasassist_plugins.predictor import Predictor

    predictor = Predictor.load(weights)
    encoded = {}
    for space in spaces:
        family = families["nb201" if space.name.startswith("nb201") else "tnb101"]
        if family.name not in encoded:
            encoded[family.name] = predictor.encode(list(family.graphs))
        space.encoded = encoded[family.name]  # type: ignore[attr-defined]
        space.graphs = family.graphs  # type: ignore[attr-defined]
    _STATE.update(spaces={s.name: s for s in spaces}, predictor=predictor)


def _make_sampler(method: str, seed: int, space: Space, n_candidates: int, settings: dict[str, Any]):
    import optuna

    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    from nasassist_plugins.optuna import NASAssistSampler
    from nasassist_plugins.search import PlannerConfig

    def build_model(trial):
        edges = tuple(trial.suggest_categorical(f"edge_{k}", space.choices) for k in range(6))
        return space.graphs[space.index[edges]]  # type: ignore[attr-defined]

    config = PlannerConfig(**{"min_candidates": n_candidates, "max_candidates": n_candidates,
                              "fine_tune": {"nasassist": "gp", "nasassist-moe": "moe"}.get(method, False),
                              "use_predictor": method != "nasassist-nopredictor", **settings})
    sampler = NASAssistSampler(build_model=build_model, predictor=_STATE["predictor"], seed=seed, config=config)
    # every cell's graph was encoded once per worker process (the planner's cache, filled ahead)
    sampler.surrogate.add_encodings(space.keys, space.encoded)  # type: ignore[attr-defined]
    return sampler


def run_study(job: tuple[str, str, int, int, int]) -> dict[str, Any]:
    import optuna

    space_name, method, seed, n_trials, n_candidates, settings = job
    space: Space = _STATE["spaces"][space_name]
    rows: list[int] = []

    def objective(trial: optuna.trial.Trial) -> float:
        edges = tuple(trial.suggest_categorical(f"edge_{k}", space.choices) for k in range(6))
        row = space.index[edges]
        rows.append(row)
        return float(space.values[row])

    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=_make_sampler(method, seed, space, n_candidates, settings))
    study.optimize(objective, n_trials=n_trials)
    return {"space": space_name, "method": method, "seed": seed, "rows": rows, "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------- summary
def summarise(space: Space, results: list[dict[str, Any]], n_trials: int) -> dict[str, Any]:
    top1 = float(np.quantile(space.values, 0.99))
    best_possible = float(space.values.max())
    summary: dict[str, Any] = {"top1_threshold": top1, "best_possible": best_possible, "methods": {}}
    for method in METHODS:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        curves, hits, at20, at100, test20, test100 = [], [], [], [], [], []
        for run in runs:
            vals = space.values[run["rows"]]
            best_so_far = np.maximum.accumulate(vals)
            curves.append(best_possible - best_so_far)
            reached = np.nonzero(vals >= top1)[0]
            hits.append(int(reached[0]) + 1 if reached.size else n_trials + 1)
            for n, bucket, test_bucket in ((20, at20, test20), (n_trials, at100, test100)):
                rows = run["rows"][:n]
                best_row = rows[int(np.argmax(space.values[rows]))]
                bucket.append(float(space.values[best_row]))
                if space.report is not None:
                    test_bucket.append(float(space.report[best_row]))
        hits_arr = np.array(hits)
        summary["methods"][method] = {
            "trials_to_top1_mean": float(hits_arr.mean()),
            "trials_to_top1_median": float(np.median(hits_arr)),
            "reached_top1": int((hits_arr <= n_trials).sum()),
            "runs": len(runs),
            "best_at_20": (float(np.mean(at20)), float(np.std(at20))),
            f"best_at_{n_trials}": (float(np.mean(at100)), float(np.std(at100))),
            "test_at_20": (float(np.mean(test20)), float(np.std(test20))) if test20 else None,
            f"test_at_{n_trials}": (float(np.mean(test100)), float(np.std(test100))) if test100 else None,
            "regret_curve": np.mean(curves, axis=0).tolist(),
            "seconds_per_study": float(np.mean([r["seconds"] for r in runs])),
            "trials_to_top1": hits,
        }
    return summary


def markdown(summaries: dict[str, dict[str, Any]], n_trials: int, args: argparse.Namespace) -> str:
    lines = [f"# Optuna search benchmark ({args.seeds} seeds × {n_trials} trials, predictor: {args.weights})", ""]
    for name, summary in summaries.items():
        lines += [f"## {name} (top 1 % threshold {summary['top1_threshold']:.4g}, best {summary['best_possible']:.4g})", "",
                  f"| method | trials to top 1 % (mean / median) | reached | best after 20 | best after {n_trials} | "
                  f"test after 20 | test after {n_trials} | s/study |",
                  "|---|---|---|---|---|---|---|---|"]
        tpe = summary["methods"].get("tpe", {}).get("trials_to_top1_mean")
        for method, row in summary["methods"].items():
            ratio = f" ({tpe / row['trials_to_top1_mean']:.1f}× vs TPE)" if tpe and method.startswith("nasassist") else ""
            test20 = "—" if row["test_at_20"] is None else f"{row['test_at_20'][0]:.3f} ± {row['test_at_20'][1]:.3f}"
            testn = "—" if row[f"test_at_{n_trials}"] is None else \
                f"{row[f'test_at_{n_trials}'][0]:.3f} ± {row[f'test_at_{n_trials}'][1]:.3f}"
            lines.append(
                f"| {method} | {row['trials_to_top1_mean']:.1f} / {row['trials_to_top1_median']:.0f}{ratio} | "
                f"{row['reached_top1']}/{row['runs']} | {row['best_at_20'][0]:.3f} ± {row['best_at_20'][1]:.3f} | "
                f"{row[f'best_at_{n_trials}'][0]:.3f} ± {row[f'best_at_{n_trials}'][1]:.3f} | {test20} | {testn} | "
                f"{row['seconds_per_study']:.1f} |")
        lines.append("")
    lines.append("Studies that never reached the top 1 % count as trials + 1 in the mean.")
    return "\n".join(lines)


def plot(summaries: dict[str, dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(5 * len(summaries), 4), squeeze=False)
    colours = {m: plt.get_cmap("tab10")(k) for k, m in enumerate(METHODS)}
    for ax, (name, summary) in zip(axes[0], summaries.items()):
        for method, row in summary["methods"].items():
            curve = np.maximum(np.asarray(row["regret_curve"]), 1e-4)  # 1e-4: regret 0 on a log axis
            ax.plot(np.arange(1, curve.size + 1), curve, label=method, color=colours[method],
                    lw=2.2 if method == "nasassist" else 1.2)
        ax.legend(fontsize=7)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("trials")
        ax.set_ylabel("regret (best possible − best so far)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--weights", default="benchmarks/results/predictor_lofo_nb201.safetensors",
                        help="predictor weights trained without the benchmark's family")
    parser.add_argument("--tasks", default="nb201," + ",".join(TNB_TASKS),
                        help="nb201 and/or TransNAS-Bench-101 micro tasks, comma-separated")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--n-candidates", type=int, default=1000,
                        help="pool size per trial (a fixed pool: a table lookup gives no trial time to budget by)")
    parser.add_argument("--config", default="{}",
                        help='PlannerConfig settings for the NAS-Assist rows, as JSON (e.g. \'{"kappa": 2.0}\')')
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="optuna_search")
    parser.add_argument("--merge", nargs="+", type=Path,
                        help="summarise the runs of earlier JSON outputs together instead of running studies")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="JSON-lines file: each finished study is appended; studies already in it are not rerun "
                             "(resume after an interruption)")
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    logging.basicConfig(level=logging.WARNING)
    if args.merge:
        merged = [run for path in args.merge for run in json.loads(path.read_text())["runs"]]
        tasks = sorted({"nb201" if r["space"].startswith("nb201") else r["space"].split("-", 1)[1] for r in merged})
        args.seeds = len({r["seed"] for r in merged})
        spaces, _ = build_spaces(args.data, tasks, graphs=False)
        _write(args, spaces, merged, time.perf_counter())
        return
    need_graphs = any(m.startswith("nasassist") for m in methods)
    if need_graphs and not Path(args.weights).is_file():
        raise SystemExit(f"no predictor weights at {args.weights}: create them with `nasassist train --data {args.data} "
                         "--leave-out nb201 --out DIR` (the benchmark family must not be in the training data)")
    spaces, _ = build_spaces(args.data, tasks, n_jobs=args.jobs, graphs=need_graphs)  # traces/caches graphs once
    names = [s.name for s in spaces]
    settings = json.loads(args.config)
    jobs = [(name, method, seed, args.trials, args.n_candidates, settings) for name in names for seed in range(args.seeds)
            for method in methods]
    from tqdm.auto import tqdm

    started = time.perf_counter()
    results = _read_checkpoint(args.checkpoint, {(name, method, seed) for name, method, seed, *_ in jobs})
    done = {(r["space"], r["method"], r["seed"]) for r in results}
    todo = [job for job in jobs if tuple(job[:3]) not in done]
    if results:
        print(f"resuming: {len(results)} studies read from {args.checkpoint}, {len(todo)} to run")
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_init_worker, initargs=(args.data, tasks, args.weights, 1, need_graphs)) as pool:
        for result in tqdm(pool.imap_unordered(run_study, todo), total=len(todo), desc="studies"):
            results.append(result)
            if args.checkpoint is not None:
                with args.checkpoint.open("a") as fh:
                    fh.write(json.dumps(result) + "\n")
    _write(args, spaces, results, started)


def _read_checkpoint(path: Path | None, wanted: set[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Finished studies of this run's jobs from a checkpoint file (a torn last line is ignored)."""
    if path is None or not path.is_file():
        return []
    results = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (row["space"], row["method"], row["seed"]) in wanted:
            results.append(row)
    return results


def _write(args: argparse.Namespace, spaces: list[Space], results: list[dict[str, Any]], started: float) -> None:
    summaries = {s.name: summarise(s, [r for r in results if r["space"] == s.name], args.trials) for s in spaces}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(summaries, args.trials, args)
    print(text)
    print(f"total {time.perf_counter() - started:.0f} s")
    (args.out_dir / f"{args.name}.md").write_text(text + "\n")
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "summaries": summaries,
         "runs": [{k: r[k] for k in ("space", "method", "seed", "rows", "seconds")} for r in results]}, indent=1))
    plot(summaries, args.out_dir / f"{args.name}.png")
    print(f"wrote {args.out_dir / args.name}.md/.json/.png")


if __name__ == "__main__":
    main()
