"""Multi-objective NAS benchmark on NAS-Bench-201: accuracy × edge-GPU latency and accuracy × #params.

    python benchmarks/multi_objective.py --data ../shared/data --seeds 20 --trials 100 \
        --methods random,nsga2,tpe,gp --jobs 2

Every method runs real Optuna studies (``directions=["maximize", "minimize"]``) on the same
seeds over NB201's six edges (``edge_0`` … ``edge_5``, five operations each); the objective
looks the cell up in the tables instead of training:

* accuracy: CIFAR-10 validation accuracy after 12 epochs (``nb201/nb201_all15625_12epoch.csv``);
* latency: HW-NAS-Bench edge-GPU (Jetson TX2) latency in ms (``hw/hwnasbench_nb201_cifar10.csv``);
* #params: parameters of the CIFAR-10 network (millions), counted on the real PyTorch network.

Problems: ``acc-latency``, ``acc-params``, ``acc-latency-constrained`` (latency at most the
median architecture's) and ``acc-params-constrained`` (#params at most the median
architecture's: a constraint computable from the graph before training). Constraints are
passed as Optuna's ``constraints_func``; the constraint's value (the table's value minus the
median) is set as a user attr by the objective, so it is known when the trial ends.

Hypervolume: objectives are normalised by the ideal and nadir points of the true Pareto front
(computed from all 15,625 cells; for the constrained problem, from the feasible cells), both
turned into minimisation, reference point (1, 1); a study's hypervolume is that of its feasible
trials, divided by the true front's. Reported after 10, 20, 50 and 100 trials (mean ± std over
seeds), with the infeasible trials run in the constrained problem.

Methods: ``random`` (RandomSampler), ``nsga2`` (NSGAIISampler, default population 50),
``tpe`` (multi-objective TPESampler, ``multivariate=True``), ``gp`` (GPSampler, log-EHVI), and
the NAS-Assist sampler rows (``nasassist``: see ``--help``), and an acquisition ablation
(``ablation-ehvi``, ``ablation-parego``: :func:`nasassist_plugins.search.pareto.select_pareto_candidate`
on pools of 512 random cells, accuracy from a Gaussian process on the one-hot of the live
edges, the second objective and the constraint exact). Studies are checkpointed to
``<out-dir>/<name>.jsonl`` as they finish; a rerun skips the studies already there.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PROBLEMS = ("acc-latency", "acc-params", "acc-latency-constrained", "acc-params-constrained")
BASELINES = ("random", "nsga2", "tpe", "gp")
#: Acquisition ablation: the Pareto choice of nasassist_plugins.search.pareto with a generic surrogate
#: (a Gaussian process on the one-hot edges for accuracy; the second objective exact, as the graph gives it)
ABLATIONS = ("ablation-ehvi", "ablation-parego")
#: NAS-Assist's sampler (objectives per candidate, Pareto-aware choice) on the traced NB201 networks
NASASSIST = ("nasassist",)
#: the sampler's objectives per problem (the second objective predicted for the edge GPU, or exact from the graph)
NASASSIST_OBJECTIVES = {"acc-latency": ["score", "latency:edgegpu"], "acc-params": ["score", "params"]}
CHECKPOINTS = (10, 20, 50, 100)


# ---------------------------------------------------------------------- tables
def edges_of(arch: str) -> tuple[str, ...]:
    return tuple(token.split("~")[0] for token in arch.replace("+", "").split("|") if token)


def nb201_params(archs: list[str]) -> np.ndarray:
    """Parameters of the CIFAR-10 NB201 network of every cell (millions).

    A cell's parameters depend only on how many 3x3 and 1x1 convolutions it has (all edges
    of a stage have the same width), so one real network is built per (n3x3, n1x1) pair and
    its ``nn.Module`` parameters counted; three random cells per pair are built in full as a check.
    """
    from nasassist_plugins.adapters.cells import nb201_network

    def count(arch: str) -> int:
        return sum(p.numel() for p in nb201_network(arch).parameters())

    keys = [(e.count("nor_conv_3x3"), e.count("nor_conv_1x1")) for e in map(edges_of, archs)]
    by_key: dict[tuple[int, int], int] = {}
    rng = np.random.default_rng(0)
    for key in sorted(set(keys)):
        members = [a for a, k in zip(archs, keys) if k == key]
        by_key[key] = count(members[0])
        for arch in rng.choice(members, size=min(3, len(members)), replace=False):
            if count(str(arch)) != by_key[key]:
                raise SystemExit(f"parameter count of {arch} differs from its (n3x3, n1x1) class")
    return np.array([by_key[k] for k in keys], dtype=np.float64) / 1e6


@dataclass
class Problem:
    """A tabular bi-objective problem over the 15,625 NB201 cells."""

    name: str
    directions: tuple[str, str]
    values: np.ndarray  # (15625, 2) objective values in the study's units
    feasible: np.ndarray  # (15625,) bool
    constraint: np.ndarray | None  # (15625,) constraint value (<= 0 feasible), or None
    ideal: np.ndarray  # normalisation (minimisation form) of the true front
    nadir: np.ndarray
    true_hv: float
    front_rows: np.ndarray

    def value_constraint(self) -> "ValueConstraint | None":
        if self.constraint is None:
            return None
        # constraint = value - threshold for every cell
        return ValueConstraint(float(self.values[0, 1] - self.constraint[0]))

    def normalised(self, rows: np.ndarray) -> np.ndarray:
        from nasassist_plugins.search.pareto import to_minimization

        y = to_minimization(self.values[rows], self.directions)
        return (y - self.ideal) / (self.nadir - self.ideal)


def build_problems(data: str, names: list[str]) -> tuple[list[Problem], dict[str, Any]]:
    import pandas as pd

    from nasassist_plugins.search.pareto import hypervolume, pareto_mask, to_minimization

    acc_table = pd.read_csv(Path(data) / "nb201" / "nb201_all15625_12epoch.csv")
    hw = pd.read_csv(Path(data) / "hw" / "hwnasbench_nb201_cifar10.csv")
    if not (acc_table["arch_str"].values == hw["arch_str"].values).all():
        raise SystemExit("the NB201 accuracy and HW-NAS-Bench tables list the cells in different orders")
    archs = list(acc_table["arch_str"])
    accuracy = acc_table["cifar10-val"].to_numpy(dtype=np.float64)
    latency = hw["edgegpu_latency"].to_numpy(dtype=np.float64)
    if (latency < 0).any():
        raise SystemExit(f"{int((latency < 0).sum())} cells have no edge-GPU latency (-1)")
    params = nb201_params(archs)
    median_latency = float(np.median(latency))
    problems = []
    for name in names:
        constraint = None
        if name.startswith("acc-params"):
            values = np.stack([accuracy, params], axis=1)
            if name == "acc-params-constrained":
                constraint = params - float(np.median(params))
        else:
            values = np.stack([accuracy, latency], axis=1)
            if name == "acc-latency-constrained":
                constraint = latency - median_latency
        feasible = np.ones(len(archs), dtype=bool) if constraint is None else constraint <= 0
        directions = ("maximize", "minimize")
        y = to_minimization(values, directions)
        front = np.flatnonzero(feasible)[pareto_mask(y[feasible])]
        ideal, nadir = y[front].min(axis=0), y[front].max(axis=0)
        true_hv = hypervolume((y[front] - ideal) / (nadir - ideal), np.ones(2))
        problems.append(Problem(name, directions, values, feasible, constraint, ideal, nadir, true_hv, front))
    info = {"archs": archs, "index": {edges_of(a): i for i, a in enumerate(archs)}, "median_latency": median_latency}
    return problems, info


def study_hypervolume(problem: Problem, rows: list[int], n: int) -> float:
    """Normalised hypervolume of the feasible trials among the first ``n`` (1.0 = the true front)."""
    from nasassist_plugins.search.pareto import hypervolume

    picked = np.asarray(rows[:n], dtype=int)
    picked = picked[problem.feasible[picked]]
    if picked.size == 0:
        return 0.0
    return hypervolume(problem.normalised(picked), np.ones(2)) / problem.true_hv


# ---------------------------------------------------------------------- one study
_STATE: dict[str, Any] = {}


def _init_worker(data: str, names: list[str], methods: list[str] | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problems, info = build_problems(data, names)
    _STATE.update(problems={p.name: p for p in problems}, **info)


class ValueConstraint:
    """``constraints_func`` of the constrained problems: the second objective at most ``threshold``.

    It reads the trial's values, so a sampler that predicts the values of a candidate before
    running it (NAS-Assist) can evaluate it before training; for a finished trial it is the
    table's value minus the threshold (what the objective also stores as the user attr
    ``constraint``).
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, trial) -> tuple[float]:
        return (float(trial.values[1]) - self.threshold,)


def make_sampler(method: str, seed: int, constraint: "ValueConstraint | None"):
    import optuna

    constraints_func = constraint
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints_func)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constraints_func=constraints_func)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints_func)
    raise SystemExit(f"unknown method {method!r}")


_EDGE_ENDS = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target) of edge_0 ... edge_5


def _live_edges(arch: str) -> list[int]:
    """Op indices of a cell's edges, with edges on no input-to-output path set to ``none``."""
    ops = [NB201_OPS.index(op) for op in edges_of(arch)]
    on = [op != 0 for op in ops]
    reach_in = {0}
    for (s, t), active in zip(_EDGE_ENDS, on):
        if active and s in reach_in:
            reach_in.add(t)
    reach_out = {3}
    for (s, t), active in reversed(list(zip(_EDGE_ENDS, on))):
        if active and t in reach_out:
            reach_out.add(s)
    return [op if (s in reach_in and t in reach_out) else 0 for op, (s, t) in zip(ops, _EDGE_ENDS)]


def run_ablation(problem: Problem, rule: str, seed: int, n_trials: int, pool_size: int = 512,
                 n_initial: int = 10) -> list[int]:  # fmt: skip
    """The Pareto choice alone: GP(one-hot of the live edges) for accuracy, the second objective and constraint exact."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from nasassist_plugins.search.pareto import select_pareto_candidate

    edges = np.array([_live_edges(a) for a in _STATE["archs"]])
    onehot = (edges[:, :, None] == np.arange(len(NB201_OPS))).reshape(len(edges), -1).astype(float)
    rng = np.random.RandomState(seed)
    rows: list[int] = []
    seen = np.zeros(len(edges), dtype=bool)
    for t in range(n_trials):
        unseen = np.flatnonzero(~seen)
        pool = rng.choice(unseen, size=min(pool_size, unseen.size), replace=False)
        feasible = problem.feasible[pool]  # the constraint is computable before training here
        if t < n_initial:
            choices = pool[feasible] if feasible.any() else pool
            row = int(rng.choice(choices))
        else:
            obs = np.asarray(rows)
            gp = GaussianProcessRegressor(ConstantKernel() * Matern(nu=2.5) + WhiteKernel(), normalize_y=True,
                                          random_state=seed).fit(onehot[obs], problem.values[obs, 0])  # fmt: skip
            mu, sd = gp.predict(onehot[pool], return_std=True)
            mean = np.stack([mu, problem.values[pool, 1]], axis=1)
            std = np.stack([sd, np.zeros_like(sd)], axis=1)
            done = obs[problem.feasible[obs]]
            choice = select_pareto_candidate(mean, std, directions=problem.directions, observed=problem.values[done],
                                             feasible=feasible, rule=rule, rng=rng)  # fmt: skip
            row = int(pool[choice.index])
        rows.append(row)
        seen[row] = True
    return rows


def run_nasassist(problem: Problem, seed: int, n_trials: int) -> tuple[list[int], dict[str, Any]]:
    """NAS-Assist's sampler on a real Optuna study; its builder returns the cell's CIFAR-10 network (``nn.Module``).

    The accuracy is the zero-shot score fine-tuned on the study's trials; the second objective is
    ``"latency:edgegpu"`` (predicted from the graph's cost features, adapted to the study's stored
    latencies) or ``"params"`` (exact, from the graph). Constrained problems pass the budget
    (``max_latency_ms`` / ``max_params`` at the median architecture's value) and the same
    ``constraints_func`` as the baselines, evaluated on the predicted values.
    """
    import optuna

    from nasassist_plugins.optuna import NASAssistSampler
    from nasassist_plugins.search import PlannerConfig

    from nasassist_plugins.adapters.cells import nb201_network

    index, archs = _STATE["index"], _STATE["archs"]
    base = problem.name.replace("-constrained", "")
    params = base == "acc-params"
    scale = 1e6 if params else 1.0  # the sampler's "params" objective counts parameters, the table has millions

    def build_model(trial):
        # the real CIFAR-10 network: the sampler traces it and scores it like a user's model
        return nb201_network(archs[index[tuple(trial.suggest_categorical(f"edge_{k}", NB201_OPS) for k in range(6))]])

    rows: list[int] = []

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        row = index[tuple(trial.suggest_categorical(f"edge_{k}", NB201_OPS) for k in range(6))]
        rows.append(row)
        return float(problem.values[row, 0]), float(problem.values[row, 1] * scale)

    budgets: dict[str, Any] = {}
    constraint = problem.value_constraint()
    if constraint is not None:
        threshold = constraint.threshold * scale
        budgets = {"max_params": threshold} if params else {"max_latency_ms": threshold}
        budgets["constraints_func"] = ValueConstraint(threshold)
    sampler = NASAssistSampler(
        build_model=build_model, example_input=(1, 3, 32, 32), objectives=NASASSIST_OBJECTIVES[base], seed=seed,
        config=PlannerConfig(min_candidates=NASASSIST_POOL, max_candidates=NASASSIST_POOL,
                             n_exploration_trials=NASASSIST_EXPLORATION, shortlist_size=NASASSIST_SHORTLIST),
        **budgets,
    )
    study = optuna.create_study(directions=list(problem.directions), sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    failed = sum(t.state != optuna.trial.TrialState.COMPLETE for t in study.trials)
    return rows, {"failed_trials": failed}


NASASSIST_POOL = 16  # candidates built, traced and scored per trial (PlannerConfig's min_candidates; tracing costs ~0.1 s a network)
NASASSIST_SHORTLIST = 0  # stage 2 (the fused score from the built networks) off: too costly for this shared 2-core machine
NASASSIST_EXPLORATION = 2  # trials chosen at random before the Pareto acquisition takes over


def run_study(job: tuple[str, str, int, int]) -> dict[str, Any]:
    import optuna

    problem_name, method, seed, n_trials = job
    problem: Problem = _STATE["problems"][problem_name]
    if method in NASASSIST:
        started = time.perf_counter()
        rows, extra = run_nasassist(problem, seed, n_trials)
        return {"problem": problem_name, "method": method, "seed": seed, "rows": rows,
                "seconds": time.perf_counter() - started, **extra}
    if method in ABLATIONS:
        started = time.perf_counter()
        rows = run_ablation(problem, method.split("-", 1)[1], seed, n_trials)
        return {"problem": problem_name, "method": method, "seed": seed, "rows": rows,
                "seconds": time.perf_counter() - started}
    index = _STATE["index"]
    rows: list[int] = []

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        edges = tuple(trial.suggest_categorical(f"edge_{k}", NB201_OPS) for k in range(6))
        row = index[edges]
        rows.append(row)
        if problem.constraint is not None:
            trial.set_user_attr("constraint", float(problem.constraint[row]))
        return float(problem.values[row, 0]), float(problem.values[row, 1])

    started = time.perf_counter()
    sampler = make_sampler(method, seed, problem.value_constraint())
    study = optuna.create_study(directions=list(problem.directions), sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return {"problem": problem_name, "method": method, "seed": seed, "rows": rows,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------- summary
def summarise(problem: Problem, runs: list[dict[str, Any]], n_trials: int) -> dict[str, Any]:
    checkpoints = [c for c in CHECKPOINTS if c <= n_trials]
    out: dict[str, Any] = {"true_hv": problem.true_hv, "front_size": int(len(problem.front_rows)),
                           "ideal": problem.ideal.tolist(), "nadir": problem.nadir.tolist(), "methods": {}}
    for method in sorted({r["method"] for r in runs}, key=lambda m: (m not in BASELINES, m)):
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        row: dict[str, Any] = {"runs": len(mine), "seconds_per_study": float(np.mean([r["seconds"] for r in mine]))}
        length = min(n_trials, min(len(r["rows"]) for r in mine))  # a method run for fewer trials has no later checkpoints
        row["trials"] = length
        for c in checkpoints:
            if c > length:
                row[f"hv_{c}"] = None
                continue
            hv = [study_hypervolume(problem, r["rows"], c) for r in mine]
            row[f"hv_{c}"] = (float(np.mean(hv)), float(np.std(hv)))
            row[f"hv_{c}_per_seed"] = hv
        curves = np.array([[study_hypervolume(problem, r["rows"], n) for n in range(1, length + 1)] for r in mine])
        row["hv_curve"] = curves.mean(axis=0).tolist()
        if problem.constraint is not None:
            infeasible = [int((~problem.feasible[np.asarray(r["rows"][:length], dtype=int)]).sum()) for r in mine]
            first = [int((~problem.feasible[np.asarray(r["rows"][:20], dtype=int)]).sum()) for r in mine]
            row["infeasible_run"] = (float(np.mean(infeasible)), int(np.max(infeasible)))
            row["infeasible_first_20"] = (float(np.mean(first)), int(np.max(first)))
            row["infeasible_per_seed"] = infeasible
        out["methods"][method] = row
    return out


def markdown(summaries: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    checkpoints = [c for c in CHECKPOINTS if c <= args.trials]
    lines = [f"# Multi-objective NB201 benchmark ({args.seeds} seeds × {args.trials} trials)", "",
             "Normalised hypervolume (1.0 = the true Pareto front of all 15,625 cells), mean ± std over seeds.", ""]
    for name, summary in summaries.items():
        constrained = name.endswith("constrained")
        lines += [f"## {name} (true front: {summary['front_size']} cells)", "",
                  "| method | " + " | ".join(f"HV after {c}" for c in checkpoints)
                  + (" | infeasible run in 20 trials (mean / max) | in all trials" if constrained else "")
                  + " | seeds | s/study |",
                  "|---|" + "---|" * len(checkpoints) + ("---|---|" if constrained else "") + "---|---|"]
        for method, row in summary["methods"].items():
            cells = [f"{row[f'hv_{c}'][0]:.4f} ± {row[f'hv_{c}'][1]:.4f}" if row[f"hv_{c}"] else "–" for c in checkpoints]
            if constrained:
                cells.append(f"{row['infeasible_first_20'][0]:.1f} / {row['infeasible_first_20'][1]}")
                cells.append(f"{row['infeasible_run'][0]:.1f} / {row['infeasible_run'][1]} (of {row['trials']})")
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {row['runs']} | {row['seconds_per_study']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def plot(summaries: dict[str, dict[str, Any]], problems: dict[str, Problem], results: list[dict[str, Any]],
         out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 8.5), squeeze=False)
    methods = sorted({r["method"] for r in results}, key=lambda m: (m not in BASELINES, m))
    colours = {m: plt.get_cmap("tab10")(k) for k, m in enumerate(methods)}
    for col, name in enumerate(names):
        ax = axes[0][col]
        for method, row in summaries[name]["methods"].items():
            curve = 1.0 - np.asarray(row["hv_curve"])
            ax.plot(np.arange(1, curve.size + 1), np.maximum(curve, 1e-4), label=method, color=colours[method],
                    lw=2.2 if method.startswith("nasassist") else 1.2)
        ax.set_yscale("log")
        ax.set_xlabel("trials")
        ax.set_ylabel("1 − normalised hypervolume")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        # Pareto fronts found by seed 0 of each method after 20 trials vs the true front
        ax = axes[1][col]
        problem = problems[name]
        feas = np.flatnonzero(problem.feasible)
        ax.scatter(problem.values[feas, 1], problem.values[feas, 0], s=1, c="0.85", label="all feasible cells")
        front = problem.front_rows[np.argsort(problem.values[problem.front_rows, 1])]
        ax.step(problem.values[front, 1], problem.values[front, 0], where="post", color="k", lw=1, label="true front")
        for method in methods:
            run = next((r for r in results if r["problem"] == name and r["method"] == method and r["seed"] == 0), None)
            if run is None:
                continue
            rows = np.asarray(run["rows"][:20], dtype=int)
            rows = rows[problem.feasible[rows]]
            ax.scatter(problem.values[rows, 1], problem.values[rows, 0], s=14, color=colours[method], label=f"{method} (20 trials)")
        ax.set_xlabel("edge-GPU latency (ms)" if "latency" in name else "#params (M)")
        ax.set_ylabel("CIFAR-10 val. accuracy (%, 12 epochs)")
        ax.set_ylim(bottom=max(0.0, float(np.percentile(problem.values[:, 0], 5))))
        ax.legend(fontsize=6, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(BASELINES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="multi_objective")
    parser.add_argument("--summarise-only", action="store_true", help="only summarise the checkpointed studies")
    parser.add_argument("--include", nargs="*", type=Path, default=[],
                        help="more study logs (.jsonl of other runs of this script) to summarise with this one")
    args = parser.parse_args()
    names = [p.strip() for p in args.problems.split(",") if p.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = (set(names) - set(PROBLEMS)) | (set(methods) - set(BASELINES) - set(ABLATIONS) - set(NASASSIST))
    if unknown:
        raise SystemExit(f"unknown problems/methods {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    log = args.out_dir / f"{args.name}.jsonl"
    done = [json.loads(line) for path in [log, *args.include] if path.exists()
            for line in path.read_text().splitlines() if line.strip()]  # fmt: skip
    have = {(r["problem"], r["method"], r["seed"]) for r in done}
    jobs = [(p, m, s, args.trials) for s in range(args.seeds) for p in names for m in methods if (p, m, s) not in have]
    started = time.perf_counter()
    if jobs and not args.summarise_only:
        from tqdm.auto import tqdm

        print(f"{len(jobs)} studies to run ({len(have)} already in {log})", flush=True)
        with mp.get_context("spawn").Pool(args.jobs, initializer=_init_worker,
                                                 initargs=(args.data, names, methods)) as pool, \
                log.open("a") as sink:
            for result in tqdm(pool.imap_unordered(run_study, jobs), total=len(jobs), desc="studies", mininterval=30):
                sink.write(json.dumps(result) + "\n")
                sink.flush()
                done.append(result)
    problems, _ = build_problems(args.data, names)
    by_name = {p.name: p for p in problems}
    results = [r for r in done if r["problem"] in by_name and r["method"] in methods and r["seed"] < args.seeds]
    counts = Counter((r["problem"], r["method"]) for r in results)
    summaries = {p.name: summarise(p, [r for r in results if r["problem"] == p.name], args.trials) for p in problems}
    text = markdown(summaries, args)
    print(text)
    if any(c < args.seeds for c in counts.values()):
        print(f"note: incomplete cells {sorted(k for k, c in counts.items() if c < args.seeds)}")
    print(f"total {time.perf_counter() - started:.0f} s")
    (args.out_dir / f"{args.name}.md").write_text(text + "\n")
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "summaries": summaries}, indent=1))
    plot(summaries, by_name, results, args.out_dir / f"{args.name}.png")
    print(f"wrote {args.out_dir / args.name}.md/.json/.png (studies in {log})")


if __name__ == "__main__":
    main()
