"""NASAssistStrategy vs NNI's RegularizedEvolution and Random on NAS-Bench-201 (NNI 3.0).

    python benchmarks/nni_nb201.py --data ../shared/data --seeds 20 --trials 100

NB201 is written as a real NNI model space (:class:`NB201Space`: the benchmark's
skeleton with one ``LayerChoice`` of the 5 operations per cell edge, labels shared by the
15 cells), run through NNI's sequential execution engine (the engine a
``NasExperimentConfig('sequential', 'simplified')`` experiment creates) with a tabular
evaluator returning the 12-epoch CIFAR-10 validation accuracy of the sampled cell
(``../shared/data/nb201/nb201_all15625_12epoch.csv``). Every strategy sees the same
space, engine and evaluator; each (strategy, seed) is a fresh strategy and engine.

The predictor never saw NB201: ``benchmarks/results/predictor_nb101.safetensors`` was
trained on NB101 only (recreate it with ``nasassist train --data ../shared/data
--train-families nb101 --out DIR``). For speed NASAssistStrategy gets ``graph_fn``
mapping a frozen sample to the cached graph of that cell (the same graph
``from_torch(model.executable_model())`` gives; checked on a few samples at start-up and
recorded in the JSON), and the 15,625 cells are encoded once and cached.

Reports trials to reach the top 1 % of the space, best accuracy after 20 and 100
trials (mean ± sd over seeds), a regret-vs-trials plot; Markdown + JSON + PNG.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]  # (target node, source node), official order


def edge_label(target: int, source: int) -> str:
    return f"edge_{target}<-{source}"


def arch_of(sample: dict[str, Any]) -> str:
    """Official NB201 cell string of an NNI sample of :class:`NB201Space`."""
    nodes = []
    for target in (1, 2, 3):
        nodes.append("|" + "|".join(f"{sample[edge_label(target, s)]}~{s}" for s in range(target)) + "|")
    return "+".join(nodes)


# ---------------------------------------------------------------------------- the NNI model space
def build_space_class():
    """NB201 as an NNI ``ModelSpace`` (defined lazily: importing NNI takes seconds)."""
    import nasassist_plugins.nni  # noqa: F401  (environment checks, framework setup)
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from torch import nn

    from nasassist_plugins.adapters.cells import NB201_OPS
    from nasassist_plugins.adapters.cells._layers import named_sequential
    from nasassist_plugins.adapters.cells.nb201 import ResNetBasicBlock, _nb201_op

    class NB201SearchCell(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.edges = nn.ModuleDict()
            for target, source in EDGES:
                candidates = OrderedDict((op, _nb201_op(op, channels, channels, 1)) for op in NB201_OPS)
                self.edges[f"{target}<-{source}"] = LayerChoice(candidates, label=edge_label(target, source))

        def forward(self, x):
            nodes = [x]
            for target in (1, 2, 3):
                total = None
                for source in range(target):
                    out = self.edges[f"{target}<-{source}"](nodes[source])
                    total = out if total is None else total + out
                nodes.append(total)
            return nodes[3]

    class NB201Space(ModelSpace):
        """The NB201 skeleton (16 channels, 5 cells per stage, 10 classes) with searchable cells."""

        def __init__(self, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10) -> None:
            super().__init__()
            self.stem = named_sequential(conv=nn.Conv2d(3, channels, 3, padding=1, bias=False),
                                         bn=nn.BatchNorm2d(channels))
            self.cells = nn.ModuleList()
            c_prev = channels
            for stage in range(3):
                c_curr = channels * 2**stage
                if stage > 0:
                    self.cells.append(ResNetBasicBlock(c_prev, c_curr, 2))
                for _ in range(cells_per_stage):
                    self.cells.append(NB201SearchCell(c_curr))
                c_prev = c_curr
            self.lastact = named_sequential(bn=nn.BatchNorm2d(c_prev), relu=nn.ReLU(inplace=False))
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(c_prev, num_classes)

        def forward(self, x):
            x = self.stem(x)
            for cell in self.cells:
                x = cell(x)
            x = self.global_pool(self.lastact(x))
            return self.classifier(torch.flatten(x, 1))

    return NB201Space


def tabular_evaluator(accuracy_of: dict[str, float]):
    """An NNI evaluator that reports the table's accuracy of the sampled cell (no training)."""
    import nni
    from nni.nas.evaluator import FunctionalEvaluator

    def report(sample: dict[str, Any]) -> None:
        nni.report_final_result(accuracy_of[arch_of(sample)])

    class TabularEvaluator(FunctionalEvaluator):
        def _execute(self, model):  # skip instantiating the network: the table knows its accuracy
            return self.function(model.sample)

    return TabularEvaluator(report)


# ---------------------------------------------------------------------------- data and encodings
def load_benchmark(data: Path):
    from nasassist_plugins.families import load_family

    family = load_family("nb201", data, progress=False)
    accuracy = np.asarray(family.target("cifar10_val"), dtype=np.float64)
    return family, {arch: float(a) for arch, a in zip(family.specs, accuracy)}, accuracy


def encodings_for(predictor, family, weights: Path, log: logging.Logger):
    """Encodings of all NB201 cells with ``predictor`` (cached on disk next to the graph cache)."""
    from nasassist_plugins.families import default_cache_dir
    from nasassist_plugins.predictor import EncodedArchitectures

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("NASASSIST_CACHE") or default_cache_dir()) / f"nni_nb201_encodings-{digest}.pt"
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)  # tensors, strings and lists only: no unpickling
        if saved.get("specs") == list(family.specs):
            log.info("encodings loaded from %s", cache)
            return EncodedArchitectures(saved["embeddings"], saved["inputs"]), 0.0
    started = time.perf_counter()
    graphs = [family.graphs[i] for i in range(len(family))]
    chunks = [predictor.encode(graphs[i:i + 1000]) for i in range(0, len(graphs), 1000)]
    encoded = EncodedArchitectures(torch.cat([c.embeddings for c in chunks]), torch.cat([c.inputs for c in chunks]))
    seconds = time.perf_counter() - started
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"specs": list(family.specs), "embeddings": encoded.embeddings, "inputs": encoded.inputs}, cache)
    log.info("encoded %d cells in %.0f s (cached in %s)", len(graphs), seconds, cache)
    return encoded, seconds


def sample_of(arch: str) -> dict[str, str]:
    from nasassist_plugins.adapters.cells import parse_nb201_arch

    nodes = parse_nb201_arch(arch)
    return {edge_label(target, source): op for target, edges in enumerate(nodes, start=1) for op, source in edges}


def check_graphs(space_cls, family, n: int, seed: int) -> dict[str, Any]:
    """executable_model() of the NNI space vs the cached graph of the same cell."""
    import warnings

    from nni.nas.space import SimplifiedModelSpace

    from nasassist_plugins.adapters import from_torch

    space = SimplifiedModelSpace.from_model(space_cls(), None)
    rng = np.random.RandomState(seed)
    rows = []
    for index in rng.choice(len(family), size=n, replace=False):
        arch = family.specs[int(index)]
        module = space.freeze(sample_of(arch)).executable_model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = from_torch(module, (1, 3, 32, 32))
        cached = family.graphs[int(index)]
        rows.append({
            "arch": arch,
            "params_traced": int(sum(p.numel() for p in module.parameters())),
            "same_wl_hash": traced.wl_hash() == cached.wl_hash(),
            "nodes_traced": traced.num_nodes if hasattr(traced, "num_nodes") else len(traced.nodes),
            "nodes_cached": cached.num_nodes if hasattr(cached, "num_nodes") else len(cached.nodes),
        })
    return {"checked": len(rows), "all_same_wl_hash": all(r["same_wl_hash"] for r in rows), "rows": rows}


# ---------------------------------------------------------------------------- one run
def run_one(name: str, seed: int, trials: int, space_cls, evaluator, args, predictor, encoded, keys,
            graph_of_sample) -> dict[str, Any]:
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import SimplifiedModelSpace
    from nni.nas.strategy import RegularizedEvolution, Random

    from nasassist_plugins.nni import NASAssistStrategy
    from nasassist_plugins.search import PlannerConfig

    if name == "nasassist":
        config = PlannerConfig(population_size=args.population, tournament_size=args.sample_size,
                               min_candidates=args.n_candidates, max_candidates=args.n_candidates,
                               prune_quantile=args.prune_quantile, fine_tune_seconds=args.fine_tune_seconds,
                               n_exploration_trials=args.startup)
        strategy = NASAssistStrategy(predictor=predictor, config=config, seed=seed,
                                     graph_fn=lambda model: graph_of_sample(model.sample))
        strategy.surrogate.add_encodings(keys, encoded)
    elif name == "evolution":
        strategy = RegularizedEvolution(population_size=args.population, sample_size=args.sample_size, seed=seed)
    elif name == "evolution-default":
        strategy = RegularizedEvolution(seed=seed)
    elif name == "random":
        strategy = Random(seed=seed)
    else:
        raise ValueError(f"unknown strategy {name!r}")
    space = SimplifiedModelSpace.from_model(space_cls(), evaluator)
    engine = SequentialExecutionEngine(max_model_count=trials)
    started = time.perf_counter()
    strategy(space, engine)
    seconds = time.perf_counter() - started
    models = list(engine.list_models())
    values = [float(m.metric) for m in models if m.metric is not None]
    row: dict[str, Any] = {"strategy": name, "seed": seed, "values": values, "seconds": seconds}
    if name == "nasassist":
        row["fine_tuned_on"] = strategy.surrogate.n_fitted
        row["predicted"] = [r["predicted_mean"] for r in strategy.history]
        row["origins"] = [r["origin"] for r in strategy.history]
    return row


# ---------------------------------------------------------------------------- summary
def summarise(runs: list[dict[str, Any]], accuracy: np.ndarray, trials: int) -> dict[str, Any]:
    top1 = float(np.quantile(accuracy, 0.99))
    best = float(accuracy.max())
    out: dict[str, Any] = {"top1_threshold": top1, "global_best": best, "strategies": {}}
    for name in dict.fromkeys(r["strategy"] for r in runs):
        rows = [r for r in runs if r["strategy"] == name]
        curves = np.full((len(rows), trials), np.nan)
        hits = []
        for i, r in enumerate(rows):
            v = np.asarray(r["values"], dtype=np.float64)
            if v.size:
                running = np.maximum.accumulate(v)
                curves[i, : v.size] = running
                curves[i, v.size:] = running[-1]
            reached = np.flatnonzero(v >= top1)
            hits.append(int(reached[0]) + 1 if reached.size else None)
        found = [h for h in hits if h is not None]
        censored = np.asarray([h if h is not None else trials + 1 for h in hits], dtype=np.float64)
        regret = best - curves
        out["strategies"][name] = {
            "runs": len(rows),
            "trials_to_top1": hits,
            "hit_rate_top1": len(found) / len(rows),
            "trials_to_top1_median": float(np.median(censored)),
            "trials_to_top1_mean_censored": float(censored.mean()),
            "trials_to_top1_mean_of_hits": float(np.mean(found)) if found else None,
            "best_after_20_mean": float(np.nanmean(curves[:, min(20, trials) - 1])),
            "best_after_20_sd": float(np.nanstd(curves[:, min(20, trials) - 1])),
            "best_after_100_mean": float(np.nanmean(curves[:, trials - 1])),
            "best_after_100_sd": float(np.nanstd(curves[:, trials - 1])),
            "regret_mean": np.nanmean(regret, axis=0).tolist(),
            "regret_sd": np.nanstd(regret, axis=0).tolist(),
            "seconds_per_run_mean": float(np.mean([r["seconds"] for r in rows])),
            "trials_run_mean": float(np.mean([len(r["values"]) for r in rows])),
        }
    return out


LABELS = {"nasassist": "NASAssistStrategy", "evolution": "RegularizedEvolution (pop 20, sample 5)",
          "evolution-default": "RegularizedEvolution (NNI defaults: pop 100, sample 25)", "random": "Random"}


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    s = summary["strategies"]
    lines = [
        "# NASAssistStrategy on NAS-Bench-201 inside NNI 3.0",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"NB201 (15,625 cells) as an NNI model space, NNI's sequential engine, tabular evaluator = 12-epoch CIFAR-10 "
        f"validation accuracy (%). Top 1 % = accuracy ≥ {summary['top1_threshold']:.2f} (156 cells); global best "
        f"{summary['global_best']:.2f}. {meta['seeds']} seeds × {meta['trials']} trials per strategy. Predictor trained "
        f"on NB101 only (`{meta['weights']}`), never on NB201. Trials to top 1 %: runs that never reached it count as "
        f"{meta['trials'] + 1} in the median/mean (hit rate shown).",
        "",
        f"| strategy | hit rate top 1 % | trials to top 1 % (median) | mean (censored) | mean of hits | best after 20 | best after {meta['trials']} | s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in s.items():
        hits = "—" if r["trials_to_top1_mean_of_hits"] is None else f"{r['trials_to_top1_mean_of_hits']:.1f}"
        lines.append(
            f"| {LABELS.get(name, name)} | {r['hit_rate_top1']:.0%} | {r['trials_to_top1_median']:.1f} | "
            f"{r['trials_to_top1_mean_censored']:.1f} | {hits} | {r['best_after_20_mean']:.2f} ± {r['best_after_20_sd']:.2f} | "
            f"{r['best_after_100_mean']:.2f} ± {r['best_after_100_sd']:.2f} | {r['seconds_per_run_mean']:.1f} |"
        )
    if "nasassist" in s and "evolution" in s:
        ratio_med = s["evolution"]["trials_to_top1_median"] / s["nasassist"]["trials_to_top1_median"]
        ratio_mean = s["evolution"]["trials_to_top1_mean_censored"] / s["nasassist"]["trials_to_top1_mean_censored"]
        verdict = "reached" if ratio_med >= 5 else "**missed**"
        lines += [
            "",
            f"Speed-up to the top 1 % over RegularizedEvolution: {ratio_med:.2f}× (medians), {ratio_mean:.2f}× "
            f"(censored means). Target ≥ 5× — {verdict}.",
        ]
    if "evolution-default" in s:
        lines += ["", "With NNI's default population of 100, RegularizedEvolution only samples randomly during a "
                  "100-trial budget, so its runs equal Random's for the same seed."]
    lines += ["", f"Setup: {meta['setup']}", "", f"Graph check: {meta['graph_check_summary']}", ""]
    return "\n".join(lines)


def plot(summary: dict[str, Any], trials: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, trials + 1)
    for name, r in summary["strategies"].items():
        mean, sd = np.asarray(r["regret_mean"]), np.asarray(r["regret_sd"])
        ax.plot(x, mean, label=LABELS.get(name, name))
        ax.fill_between(x, np.maximum(mean - sd, 1e-3), mean + sd, alpha=0.15)
    gap = summary["global_best"] - summary["top1_threshold"]
    ax.axhline(gap, color="grey", ls="--", lw=1, label="top 1 % boundary")
    ax.set_yscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("regret (global best − best so far), accuracy points")
    ax.set_title("NB201 CIFAR-10 (12 epochs) in NNI 3.0, mean ± sd over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, default=REPO / "benchmarks/results/predictor_nb101.safetensors")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--strategies", default="nasassist,evolution,evolution-default,random")
    parser.add_argument("--n-candidates", type=int, default=64)
    parser.add_argument("--prune-quantile", type=float, default=0.5)
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--sample-size", type=int, default=5)
    parser.add_argument("--fine-tune-seconds", type=float, default=2.0)
    parser.add_argument("--startup", type=int, default=10, help="PlannerConfig.n_exploration_trials")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/nni_nb201")
    parser.add_argument("--log", type=Path, default=None, help="log file (default: OUT.log)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.log or args.out.with_suffix(".log")
    logging.basicConfig(filename=log_path, level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
    log = logging.getLogger("nni_nb201")
    if not args.weights.is_file():
        print(f"predictor weights {args.weights} not found; recreate them with: nasassist train --data {args.data} "
              "--train-families nb101 --out DIR", file=sys.stderr)
        return 2

    from nasassist_plugins.predictor import Predictor
    from nasassist_plugins.search import params_key

    t0 = time.perf_counter()
    family, accuracy_of, accuracy = load_benchmark(args.data)
    predictor = Predictor.load(args.weights)
    encoded, encode_seconds = encodings_for(predictor, family, args.weights, log)
    keys = [params_key(sample_of(arch)) for arch in family.specs]
    index_of = {arch: i for i, arch in enumerate(family.specs)}
    space_cls = build_space_class()
    for noisy in ("nni", "nasassist_plugins.nni"):  # after importing NNI, which sets up its own logging
        logging.getLogger(noisy).setLevel(logging.WARNING)
    evaluator = tabular_evaluator(accuracy_of)
    graph_check = check_graphs(space_cls, family, n=3, seed=0)

    def graph_of_sample(sample):
        return family.graphs[index_of[arch_of(sample)]]

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    runs = []
    for seed in range(args.seeds):
        for name in strategies:
            row = run_one(name, seed, args.trials, space_cls, evaluator, args, predictor, encoded, keys, graph_of_sample)
            runs.append(row)
            log.info("%s seed %d: best %.2f after %d trials (%.1f s)", name, seed, max(row["values"]),
                     len(row["values"]), row["seconds"])
            print(f"{name:>10} seed {seed:2d}: best {max(row['values']):.2f} in {len(row['values'])} trials, "
                  f"{row['seconds']:.1f} s", flush=True)
    summary = summarise(runs, accuracy, args.trials)
    meta = {
        "command": "python benchmarks/nni_nb201.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seeds": args.seeds, "trials": args.trials, "weights": str(args.weights.relative_to(REPO))
        if args.weights.is_relative_to(REPO) else str(args.weights),
        "setup": (f"NASAssistStrategy(config=PlannerConfig(min_candidates=max_candidates={args.n_candidates}, "
                  f"prune_quantile={args.prune_quantile}, population_size={args.population}, "
                  f"tournament_size={args.sample_size}, acquisition='ucb', fine_tune='gp', fine_tune_seconds="
                  f"{args.fine_tune_seconds}, n_exploration_trials={args.startup})); RegularizedEvolution(population_size="
                  f"{args.population}, sample_size={args.sample_size}, mutation_prob=0.05, dedup=True); Random(dedup=True). "
                  f"NNI {__import__('nni').__version__}, torch {torch.__version__}, 1 torch thread, {platform.machine()} CPU "
                  f"shared with other jobs. Encoding the 15,625 cells once: {encode_seconds:.0f} s (0 = cached)."),
        "graph_check_summary": (f"executable_model() of the NNI space traced with from_torch gives the cached graph "
                                f"(same WL hash) for {sum(r['same_wl_hash'] for r in graph_check['rows'])}/"
                                f"{graph_check['checked']} random cells"),
        "total_seconds": time.perf_counter() - t0,
    }
    payload = {"meta": meta, "graph_check": graph_check, "summary": summary, "runs": runs}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    args.out.with_suffix(".md").write_text(markdown(summary, meta))
    plot(summary, args.trials, args.out.with_suffix(".png"))
    print(markdown(summary, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
