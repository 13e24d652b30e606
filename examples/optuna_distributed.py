"""Several worker processes on one PostgreSQL-backed study (NASAssistSampler + NASAssistPruner).

    export NASASSIST_STORAGE=postgresql+psycopg2://user@127.0.0.1:5432/optuna
    python examples/optuna_distributed.py --workers 4 --trials-per-worker 5

Every worker builds its own sampler; the plan of each trial, its predictions and the finished
results live in the storage, so workers never need to talk to each other, and a worker that
dies mid-trial is marked failed by the heartbeat while the others carry on. The search space
and training are those of ``examples/optuna_quickstart.py`` (digits, offline).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from pathlib import Path

import warnings

import optuna

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
sys.path.insert(0, str(Path(__file__).parent))
from optuna_quickstart import EXAMPLE_INPUT, build_model, load_data, make_objective  # noqa: E402


def storage(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)


def worker(url: str, study_name: str, n_trials: int, epochs: int, seed: int) -> None:
    import torch

    from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name, storage=storage(url),
        sampler=NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, seed=seed),
        pruner=NASAssistPruner(max_resource=epochs - 1, lower_bound=0.0, upper_bound=1.0),
    )
    study.optimize(make_objective(load_data(), epochs), n_trials=n_trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=os.environ.get("NASASSIST_STORAGE"),
                        help="SQLAlchemy URL of the RDB (default: $NASASSIST_STORAGE)")
    parser.add_argument("--study-name", default="nasassist-digits")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials-per-worker", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    if not args.storage:
        raise SystemExit("set NASASSIST_STORAGE (or --storage) to a database URL, e.g. "
                         "postgresql+psycopg2://user@127.0.0.1:5432/optuna")
    optuna.create_study(study_name=args.study_name, storage=storage(args.storage), direction="maximize",
                        load_if_exists=True)
    processes = [mp.get_context("spawn").Process(
        target=worker, args=(args.storage, args.study_name, args.trials_per_worker, args.epochs, seed))
        for seed in range(args.workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    study = optuna.load_study(study_name=args.study_name, storage=storage(args.storage))
    states = [t.state.name for t in study.trials]
    print({s: states.count(s) for s in sorted(set(states))}, f"best {study.best_value:.4f}")


if __name__ == "__main__":
    main()
