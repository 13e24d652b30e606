"""A small conditional define-by-run CNN space shared by the Optuna tests and their worker processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna
import torch
from torch import nn

EXAMPLE_INPUT = torch.zeros(1, 1, 8, 8)


def build_model(trial) -> nn.Module:
    """Conditional space: the number of blocks decides which width/kernel parameters exist."""
    layers: list[nn.Module] = []
    channels = 1
    for i in range(trial.suggest_int("n_blocks", 1, 3)):
        width = trial.suggest_categorical(f"width_{i}", [4, 8, 16])
        kernel = trial.suggest_int(f"kernel_{i}", 1, 5, step=2)
        layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU()]
        channels = width
    if trial.suggest_categorical("head", ["linear", "mlp"]) == "mlp":
        hidden = trial.suggest_int("hidden", 8, 64, log=True)
        head = [nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    else:
        head = [nn.Linear(channels, 10)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head)


def tiny_predictor():
    """A small untrained predictor whose gate is fitted on a few models of the space (fast, deterministic)."""
    import numpy as np

    from nasassist_plugins.optuna import CandidateTrial
    from nasassist_plugins.predictor import Predictor

    torch.manual_seed(0)
    predictor = Predictor(hidden_dim=16, ensemble_size=2, seed=0)
    rng = np.random.RandomState(0)
    models = [build_model(CandidateTrial(rng)) for _ in range(12)]
    predictor.fit_gate(predictor.embed(models, EXAMPLE_INPUT), candidates=(1, 2))
    return predictor


def score(model: nn.Module) -> float:
    """A cheap deterministic stand-in for accuracy: rewards width and depth, not size alone."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return sum(m.out_channels * (1 + m.kernel_size[0] // 2) for m in convs) / 100.0 + 0.05 * len(convs)


def objective(trial: optuna.trial.Trial) -> float:
    model = build_model(trial)
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)  # not read by build_model: the base sampler plans it
    return score(model)


def slow_objective(trial: optuna.trial.Trial) -> float:
    """Reports a few steps with a pause so that a worker can be killed mid-trial."""
    value = objective(trial)
    for step in range(3):
        trial.report(value * (step + 1) / 3, step)
        time.sleep(0.3)
    return value


def run_worker(storage_url: str, study_name: str, weights: str, n_trials: int, seed: int, slow: bool) -> None:
    """Entry point of a worker process: NASAssistSampler + NASAssistPruner on a shared RDB study."""
    torch.set_num_threads(1)
    from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler
    from nasassist_plugins.predictor import Predictor

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url, heartbeat_interval=1, grace_period=3)
    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, predictor=Predictor.load(weights),
                               config={"min_candidates": 6, "max_candidates": 6}, seed=seed)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                              pruner=NASAssistPruner(max_resource=2, min_resource=3))
    study.optimize(slow_objective if slow else objective, n_trials=n_trials)
    print("worker done", flush=True)


if __name__ == "__main__":
    url, name, weights, trials, seed, slow = sys.argv[1:7]
    sys.path.insert(0, str(Path(__file__).parent))
    run_worker(url, name, weights, int(trials), int(seed), slow == "1")
