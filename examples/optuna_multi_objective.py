"""Accuracy × latency on scikit-learn's digits: a multi-objective NAS-Assist study.

Offline, a few minutes on 2 CPU cores (``--trials 4 --epochs 2`` for a smoke test):

    python examples/optuna_multi_objective.py [--trials 24] [--epochs 8] [--max-latency-ms 0.5] [--out examples/output]

The study has two directions, ``["maximize", "minimize"]``: validation accuracy and the
forward-pass latency of the model measured on this machine (ms, batch of 32 images).
``NASAssistSampler(objectives=["score", "latency"])`` predicts both for every candidate
before anything is trained — the accuracy with the zero-shot predictor fine-tuned on the
finished trials, the latency by timing the candidate's forward pass — drops candidates over
the optional latency budget, and runs the one with the largest expected hypervolume
improvement. The objective reports the *measured* values, which are what the study stores.

It prints the Pareto-optimal trials (predicted and measured objectives side by side) and
writes ``optuna_multi_objective_pareto.png``: the measured front, the front of the predictions
made before training, every trial's predicted point joined to its measured one, and the budget.
The sampler times each candidate before choosing it; the objective times it again after
training, so on a busy machine a measured point can land beyond the budget its prediction met.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from nasassist_plugins.hardware import measure_latency
from nasassist_plugins.optuna import NASAssistSampler
from nasassist_plugins.search.pareto import pareto_mask, to_minimization

EXAMPLE_INPUT = torch.zeros(32, 1, 8, 8)  # latency is measured at this shape (a batch of 32 images)


def build_model(trial: optuna.trial.Trial) -> nn.Module:
    """A CNN for 8×8 digit images whose depth, widths and kernels come from the trial."""
    layers: list[nn.Module] = []
    channels = 1
    for i in range(trial.suggest_int("n_blocks", 1, 3)):
        width = trial.suggest_categorical(f"width_{i}", [8, 16, 32, 64, 128])
        kernel = trial.suggest_categorical(f"kernel_{i}", [1, 3, 5])
        layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU()]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    hidden = trial.suggest_categorical("hidden", [0, 64, 256])
    layers += [nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 10)] if hidden else [nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


def load_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=digits.target)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def make_objective(data: tuple[torch.Tensor, ...], epochs: int):
    x_train, y_train, x_val, y_val = data

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        torch.manual_seed(trial.number)
        model = build_model(trial)
        latency_ms = measure_latency(model, EXAMPLE_INPUT)  # what the study stores for the second objective
        optimizer = torch.optim.Adam(model.parameters(), lr=trial.suggest_float("lr", 2e-3, 2e-2, log=True))
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(y_train))
            for start in range(0, len(order), 64):
                idx = order[start : start + 64]
                loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
        return accuracy, latency_ms

    return objective


def describe(params: dict) -> str:
    blocks = [f"{params[f'width_{i}']}k{params[f'kernel_{i}']}" for i in range(params.get("n_blocks", 0))]
    return " → ".join(blocks) + f" | fc{params.get('hidden', 0)}"


def predicted(trial: optuna.trial.FrozenTrial, name: str) -> float | None:
    value = trial.user_attrs.get(f"nasassist_predicted_{name}")
    return None if value is None else float(value)


def summarise(study: optuna.Study, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    front = sorted(study.best_trials, key=lambda t: t.values[1])
    table = Table(title="Pareto-optimal trials (measured; predicted before training in brackets)",
                  caption="predicted accuracy: the fine-tuned surrogate (– while it is still zero-shot)")
    for column in ("trial", "val acc", "latency ms", "architecture"):
        table.add_column(column, justify="left" if column == "architecture" else "right")
    for t in front:
        acc, lat = predicted(t, "score"), predicted(t, "latency")
        table.add_row(str(t.number), f"{t.values[0]:.4f} [{'–' if acc is None else f'{acc:.3f}'}]",
                      f"{t.values[1]:.3f} [{'–' if lat is None else f'{lat:.3f}'}]", describe(t.params))
    console = Console(width=120)
    console.print(table)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    console.print(f"{len(complete)} trials in {seconds:.0f} s; {len(front)} on the Pareto front")


def plot(study: optuna.Study, out: Path, budget: float | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    try:
        ax.scatter([t.values[1] for t in complete], [t.values[0] for t in complete], s=22, color="#4C72B0",
                   label="measured (trained)", zorder=3)
        pairs = [(t, predicted(t, "latency"), predicted(t, "score")) for t in complete]
        pairs = [(t, lat, acc) for t, lat, acc in pairs if lat is not None and acc is not None]
        if pairs:
            ax.scatter([p[1] for p in pairs], [p[2] for p in pairs], s=22, marker="x", color="#D1495B",
                       label="predicted before training", zorder=3)
            for t, lat, acc in pairs:
                ax.plot([lat, t.values[1]], [acc, t.values[0]], color="0.75", lw=0.7, zorder=1)
            points = np.array([[lat, acc] for _, lat, acc in pairs])
            on_front = pareto_mask(to_minimization(points[:, ::-1], ["maximize", "minimize"]))
            predicted_front = points[on_front][np.argsort(points[on_front, 0])]
            ax.step(predicted_front[:, 0], predicted_front[:, 1], where="post", color="#D1495B", lw=1.2, ls=":",
                    label="predicted Pareto front", zorder=2)
        if front:
            ax.step([t.values[1] for t in front], [t.values[0] for t in front], where="post", color="#2a9d8f",
                    lw=1.6, label="measured Pareto front", zorder=2)
        if budget is not None:
            ax.axvline(budget, color="k", ls="--", lw=0.8, label=f"budget {budget:g} ms")
        ax.set_xlabel(f"latency (ms, batch of {EXAMPLE_INPUT.shape[0]}, this machine)")
        ax.set_ylabel("validation accuracy")
        ax.set_title("Accuracy × latency with NASAssistSampler(objectives=['score', 'latency'])", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        path = out / "optuna_multi_objective_pareto.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max-latency-ms", type=float, help="hard latency budget: slower candidates never run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("examples/output"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, objectives=["score", "latency"],
                               max_latency_ms=args.max_latency_ms, config={"max_candidates": 24}, seed=args.seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, study_name="digits-mo")
    started = time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(total=args.trials, desc="trials") as bar:
        study.optimize(make_objective(load_data(args.seed), args.epochs), n_trials=args.trials,
                       callbacks=[lambda study, trial: bar.update(1)])
    summarise(study, time.perf_counter() - started)
    print(f"wrote {plot(study, args.out, args.max_latency_ms)}")


if __name__ == "__main__":
    main()
