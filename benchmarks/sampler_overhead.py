"""How much of a trial the sampler costs: NASAssistSampler next to TPE, in real studies.

    python benchmarks/sampler_overhead.py digits --trials 30 --epochs 15
    python benchmarks/sampler_overhead.py postgres --trials 40 --epochs 10 --workers 4
    python benchmarks/sampler_overhead.py nb201-pool --data ../shared/data --weights W --trials 40 --pool 1000

* ``digits``: the Optuna quickstart (``examples/optuna_quickstart.py``: conditional CNNs on
  scikit-learn's digits, NASAssistSampler + NASAssistPruner with their defaults), and the
  same objective under TPESampler + MedianPruner, studies interleaved on the same seeds.
* ``postgres``: the same objective in a study on a real PostgreSQL server (started on
  127.0.0.1 by this script, as the tests do) shared by ``--workers`` worker processes.
* ``nb201-pool``: NAS-Bench-201 cells (``build_model`` returns the traced graph from the
  family cache) with a fixed pool of ``--pool`` candidates per trial; no encoding is
  precomputed, so the figure includes encoding every new candidate.

Sampler time of a trial = seconds spent inside the sampler's methods for that trial (the
plan in ``before_trial``, then ``sample_*``), measured by a timing wrapper; trial time =
``datetime_complete - datetime_start`` (which includes the plan). Writes
``benchmarks/results/sampler_overhead_<mode>.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "tests"))


# ---------------------------------------------------------------------------- timing wrapper
def timed(sampler: Any) -> Any:
    """A sampler that delegates to ``sampler`` and adds its seconds to ``seconds[trial number]``."""
    from optuna.samplers import BaseSampler

    class Timed(BaseSampler):
        def __init__(self) -> None:
            self.inner = sampler
            self.seconds: dict[int, float] = defaultdict(float)
            self.cpu: dict[int, float] = defaultdict(float)  # CPU time of the calling thread
            self.trial_cpu: dict[int, float] = {}  # from before_trial to after_trial, this thread
            self._started: dict[int, float] = {}
            self._lock = threading.Lock()

        def _time(self, number: int, fn: Any, *args: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self.seconds[number] += time.perf_counter() - started
                    self.cpu[number] += time.thread_time() - cpu

        def infer_relative_search_space(self, study, trial):
            return self._time(trial.number, self.inner.infer_relative_search_space, study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._time(trial.number, self.inner.sample_relative, study, trial, search_space)

        def sample_independent(self, study, trial, name, distribution):
            return self._time(trial.number, self.inner.sample_independent, study, trial, name, distribution)

        def before_trial(self, study, trial):
            self._started[trial.number] = time.thread_time()
            return self._time(trial.number, self.inner.before_trial, study, trial)

        def after_trial(self, study, trial, state, values):
            result = self._time(trial.number, self.inner.after_trial, study, trial, state, values)
            if trial.number in self._started:
                self.trial_cpu[trial.number] = time.thread_time() - self._started.pop(trial.number)
            return result

        def reseed_rng(self):
            self.inner.reseed_rng()

    return Timed()


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    sampler = np.array([r["sampler_s"] for r in rows])
    trial = np.array([r["trial_s"] for r in rows])
    cpu_rows = [r for r in rows if r.get("trial_cpu_s")]
    steady = [r for r in rows if r["number"] > min(x["number"] for x in rows)]  # one-time imports excluded
    return {
        # CPU time of the worker's thread: what a quiet machine would show (waits on the database excluded)
        "overhead_share_cpu": float(sum(r["sampler_cpu_s"] for r in cpu_rows) / sum(r["trial_cpu_s"] for r in cpu_rows))
        if cpu_rows else None,
        "overhead_share_steady": float(sum(r["sampler_s"] for r in steady) / sum(r["trial_s"] for r in steady))
        if steady else None,
        "trials": len(rows),
        "sampler_s_median": float(np.median(sampler)), "sampler_s_p90": float(np.percentile(sampler, 90)),
        "sampler_s_mean": float(sampler.mean()), "sampler_s_max": float(sampler.max()),
        "trial_s_median": float(np.median(trial)), "trial_s_mean": float(trial.mean()),
        "overhead_share": float(sampler.sum() / trial.sum()),  # of all trial time
        "overhead_share_median": float(np.median(sampler / trial)),
        "sampler_s_first_half": float(np.median(sampler[: len(sampler) // 2])) if len(sampler) > 1 else None,
        "sampler_s_second_half": float(np.median(sampler[len(sampler) // 2:])) if len(sampler) > 1 else None,
    }


def _rows(study: Any, seconds: dict[int, float], cpu: dict[int, float] | None = None,
          trial_cpu: dict[int, float] | None = None) -> list[dict[str, float]]:
    rows = []
    for t in study.trials:
        if t.datetime_start and t.datetime_complete and t.number in seconds:
            rows.append({"number": t.number, "state": t.state.name, "sampler_s": seconds[t.number],
                         "sampler_cpu_s": (cpu or {}).get(t.number), "trial_cpu_s": (trial_cpu or {}).get(t.number),
                         "trial_s": (t.datetime_complete - t.datetime_start).total_seconds(),
                         "plan_s": t.system_attrs.get("nasassist:decision", {}).get("nasassist:plan_seconds"),
                         "pool": t.system_attrs.get("nasassist:decision", {}).get("nasassist:n_candidates")})
    return rows


# ---------------------------------------------------------------------------- digits (one process)
def _samplers(method: str, seed: int, epochs: int) -> tuple[Any, Any]:
    import optuna

    from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler
    from optuna_quickstart import EXAMPLE_INPUT, build_model

    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed), optuna.pruners.MedianPruner(n_startup_trials=5)
    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, seed=seed)
    pruner = NASAssistPruner(max_resource=epochs - 1, min_resource=5, n_warmup_trials=5,
                             lower_bound=0.0, upper_bound=1.0, zero_shot_quantile=None)
    return sampler, pruner


def run_digits(args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    import torch

    from optuna_quickstart import load_data, make_objective

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = make_objective(load_data(0), args.epochs)
    results: dict[str, Any] = {}
    for seed in range(args.seeds):
        for method in ("nasassist", "tpe"):
            sampler, pruner = _samplers(method, seed, args.epochs)
            wrapper = timed(sampler)
            study = optuna.create_study(direction="maximize", sampler=wrapper, pruner=pruner)
            started = time.perf_counter()
            study.optimize(objective, n_trials=args.trials)
            rows = _rows(study, wrapper.seconds, wrapper.cpu, wrapper.trial_cpu)
            entry = results.setdefault(method, {"rows": [], "best": [], "seconds": []})
            entry["rows"] += rows
            entry["best"].append(study.best_value)
            entry["seconds"].append(time.perf_counter() - started)
            print(f"seed {seed} {method}: {summarise(rows)['overhead_share']:.1%} of trial time in the sampler, "
                  f"best {study.best_value:.4f}, {time.perf_counter() - started:.0f} s", flush=True)
    return {m: {**summarise(e["rows"]), "best_values": e["best"], "study_seconds": e["seconds"], "rows": e["rows"]}
            for m, e in results.items()}


# ---------------------------------------------------------------------------- PostgreSQL, several workers
def _pg_worker(url: str, name: str, method: str, seed: int, epochs: int, trials: int, out: str) -> None:
    import optuna
    import torch

    from optuna_quickstart import load_data, make_objective

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler, pruner = _samplers(method, seed, epochs)
    wrapper = timed(sampler)
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
    study = optuna.load_study(study_name=name, storage=storage, sampler=wrapper, pruner=pruner)
    study.optimize(make_objective(load_data(0), epochs),
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=None)])
    Path(out).write_text(json.dumps({"seconds": wrapper.seconds, "cpu": wrapper.cpu, "trial_cpu": wrapper.trial_cpu}))


def run_postgres(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from postgres_server import PostgresServer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = {}
    ctx = mp.get_context("spawn")
    with PostgresServer() as url:
        for method in ("nasassist", "tpe"):
            name = f"overhead-{method}"
            storage = optuna.storages.RDBStorage(url)
            optuna.create_study(study_name=name, storage=storage, direction="maximize")
            outs = [f"/tmp/nasassist_overhead_{method}_{k}.json" for k in range(args.workers)]
            started = time.perf_counter()
            procs = [ctx.Process(target=_pg_worker, args=(url, name, method, k, args.epochs, args.trials, outs[k]))
                     for k in range(args.workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            seconds: dict[int, float] = {}
            cpu: dict[int, float] = {}
            trial_cpu: dict[int, float] = {}
            for out in outs:
                data = json.loads(Path(out).read_text())
                seconds.update({int(k): v for k, v in data["seconds"].items()})
                cpu.update({int(k): v for k, v in data["cpu"].items()})
                trial_cpu.update({int(k): v for k, v in data["trial_cpu"].items()})
            study = optuna.load_study(study_name=name, storage=storage)
            rows = _rows(study, seconds, cpu, trial_cpu)
            results[method] = {**summarise(rows), "rows": rows, "wall_s": time.perf_counter() - started,
                               "best_value": study.best_value}
            print(f"{method}: {results[method]['overhead_share']:.1%} of trial time in the sampler "
                  f"(median {results[method]['sampler_s_median']:.2f} s per trial), best {study.best_value:.4f}",
                  flush=True)
    return results


# ---------------------------------------------------------------------------- NB201, pool of 1,000
def run_nb201_pool(args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    import torch

    from nasassist_plugins.families import load_family
    from nasassist_plugins.optuna import NASAssistSampler
    from nasassist_plugins.predictor import Predictor
    from nasassist_plugins.search import PlannerConfig

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    family = load_family("nb201", args.data, progress=False)
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    edges = [tuple(tok.split("~")[0] for tok in s.replace("+", "").split("|") if tok) for s in family.specs]
    index = {e: i for i, e in enumerate(edges)}
    values = np.asarray(family.target("cifar10_val"))
    graphs = family.graphs

    def build_model(trial):
        return graphs[index[tuple(trial.suggest_categorical(f"edge_{k}", ops) for k in range(6))]]

    def objective(trial):
        return float(values[index[tuple(trial.suggest_categorical(f"edge_{k}", ops) for k in range(6))]])

    results = {}
    for seed in range(args.seeds):
        sampler = NASAssistSampler(build_model=build_model, predictor=Predictor.load(args.weights), seed=seed,
                                   config=PlannerConfig(min_candidates=args.pool, max_candidates=args.pool))
        wrapper = timed(sampler)
        study = optuna.create_study(direction="maximize", sampler=wrapper)
        study.optimize(objective, n_trials=args.trials)
        rows = _rows(study, wrapper.seconds, wrapper.cpu)
        for r in rows:  # a table lookup takes microseconds: the sampler is the whole trial here
            r["trial_s"] = max(r["trial_s"], r["sampler_s"])
        entry = results.setdefault("nasassist", {"rows": []})
        entry["rows"] += rows
        s = [r["sampler_s"] for r in rows]
        c = [r["sampler_cpu_s"] for r in rows]
        print(f"seed {seed}: pool {statistics.median(r['pool'] for r in rows):.0f}, sampler per trial median "
              f"{statistics.median(s):.2f} s ({statistics.median(c):.2f} s CPU), first {s[0]:.2f} s, "
              f"mean {np.mean(s):.2f} s", flush=True)
    rows = results["nasassist"]["rows"]
    s = np.array([r["sampler_s"] for r in rows])
    # CPU time of the sampler's thread: on a shared machine wall time also counts waits for a core
    cpu = np.array([r["sampler_cpu_s"] for r in rows])
    steady = cpu[[r["number"] > 0 for r in rows]]  # the first plan of a process also imports the predictor stack
    return {"nasassist": {"trials": len(rows), "sampler_s_median": float(np.median(s)),
                          "sampler_s_mean": float(s.mean()), "sampler_s_p90": float(np.percentile(s, 90)),
                          "sampler_cpu_s_median": float(np.median(cpu)), "sampler_cpu_s_p90": float(np.percentile(cpu, 90)),
                          "sampler_cpu_s_max_steady": float(steady.max()) if steady.size else None,
                          "sampler_s_first_trial": [r["sampler_s"] for r in rows if r["number"] == 0],
                          "pool_median": float(np.median([r["pool"] for r in rows])), "rows": rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("digits", "postgres", "nb201-pool"))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--weights", default="benchmarks/results/predictor_lofo_nb201.safetensors")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    load = os.getloadavg()
    result = {"digits": run_digits, "postgres": run_postgres, "nb201-pool": run_nb201_pool}[args.mode](args)
    out = args.out or Path(f"benchmarks/results/sampler_overhead_{args.mode.replace('-', '_')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args) | {"out": str(out)}, "load_average_start": load,
                               "load_average_end": os.getloadavg(), "seconds": time.perf_counter() - started,
                               "results": result}, indent=1, default=str) + "\n")
    for method, row in result.items():
        keys = ("trials", "sampler_s_median", "sampler_s_p90", "sampler_cpu_s_median", "sampler_cpu_s_p90",
                "sampler_cpu_s_max_steady", "trial_s_median", "overhead_share",
                "overhead_share_steady", "overhead_share_cpu",
                "sampler_s_first_half", "sampler_s_second_half", "pool_median")
        print(method, {k: round(row[k], 4) if isinstance(row.get(k), float) else row.get(k) for k in keys if k in row})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
