"""Search a small CNN space on scikit-learn's digits with NASAssistSampler + NASAssistPruner.

Offline, no API key, a few minutes on 2 CPU cores:

    python examples/optuna_quickstart.py [--trials 30] [--epochs 15] [--out examples/output]

The objective is an ordinary define-by-run Optuna objective with conditional
parameters; ``build_model`` is the one function both the objective and the sampler use.
The sampler scores candidate architectures with the zero-shot predictor (fine-tuned on
the finished trials as the study goes) and plans only promising ones; the pruner stops
trainings whose learning curve is unlikely to beat the best trial. It prints a results
table (zero-shot scores and fine-tuned predictions in separate columns) and writes two
plots: the optimisation history (pruned trials marked where they stopped) and
predicted-vs-actual accuracy.
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

from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler

EXAMPLE_INPUT = torch.zeros(1, 1, 8, 8)


def build_model(trial: optuna.trial.Trial) -> nn.Module:
    """A CNN for 8×8 digit images whose depth, widths, kernels and blocks come from the trial."""
    layers: list[nn.Module] = []
    channels = 1
    for i in range(trial.suggest_int("n_blocks", 1, 3)):
        width = trial.suggest_categorical(f"width_{i}", [8, 16, 32, 64])
        kernel = trial.suggest_categorical(f"kernel_{i}", [1, 3, 5])
        layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2)]
        if trial.suggest_categorical(f"batchnorm_{i}", [True, False]):
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU())
        if trial.suggest_categorical(f"pool_{i}", ["none", "max"]) == "max":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    hidden = trial.suggest_categorical("hidden", [0, 32, 128])
    if hidden:
        layers += [nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    else:
        layers.append(nn.Linear(channels, 10))
    return nn.Sequential(*layers)


def load_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=digits.target)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def make_objective(data: tuple[torch.Tensor, ...], epochs: int):
    x_train, y_train, x_val, y_val = data

    def objective(trial: optuna.trial.Trial) -> float:
        torch.manual_seed(trial.number)
        model = build_model(trial)
        lr = trial.suggest_float("lr", 1e-3, 3e-2, log=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        accuracy = 0.0
        for epoch in range(epochs):
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
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    return objective


def describe(params: dict) -> str:
    """Compact architecture string, e.g. ``16k3+bn/max → 32k5 | fc128``."""
    blocks = []
    for i in range(params.get("n_blocks", 0)):
        block = f"{params[f'width_{i}']}k{params[f'kernel_{i}']}"
        block += "+bn" if params[f"batchnorm_{i}"] else ""
        block += "/max" if params[f"pool_{i}"] == "max" else ""
        blocks.append(block)
    return " → ".join(blocks) + f" | fc{params.get('hidden', 0)} | lr {params.get('lr', float('nan')):.4f}"


def _zero_shot(trial: optuna.trial.FrozenTrial) -> float | None:
    """The trial's zero-shot rank score (comparable across trials), if the sampler planned it."""
    value = trial.system_attrs.get("nasassist:zero_shot")
    return None if value is None else float(value)


def _fine_tuned(trial: optuna.trial.FrozenTrial) -> float | None:
    """The fine-tuned predictor's predicted accuracy, only when the prediction was fine-tuned."""
    if not str(trial.user_attrs.get("nasassist_prediction_scale", "")).startswith("fine-tuned"):
        return None
    value = trial.user_attrs.get("nasassist_predicted")
    return None if value is None else float(value)


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def summarise(study: optuna.Study, epochs: int, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    trials = study.trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    epochs_run = sum(len(t.intermediate_values) for t in trials)
    table = Table(title="NAS-Assist on digits: top trials",
                  caption="zero-shot: the pre-trained predictor's rank score (larger is better; comparable "
                          "across trials, not an accuracy); fine-tuned: predicted val accuracy once the predictor "
                          "has learnt from finished trials (– before)")
    for column in ("trial", "val acc", "zero-shot score", "fine-tuned pred.", "origin", "architecture"):
        table.add_column(column, justify="right" if column not in ("origin", "architecture") else "left")
    for t in sorted(complete, key=lambda t: -t.value)[:8]:
        table.add_row(str(t.number), f"{t.value:.4f}", _cell(_zero_shot(t)), _cell(_fine_tuned(t)),
                      str(t.system_attrs.get("nasassist:decision", {}).get("nasassist:origin", "-")),
                      describe(t.params))
    console = Console(width=130)
    console.print(table)
    console.print(
        f"{len(trials)} trials ({len(complete)} complete, {len(pruned)} pruned) in {seconds:.0f} s; "
        f"{epochs_run} of {len(trials) * epochs} epochs trained ({epochs_run / (len(trials) * epochs):.0%}); "
        f"best val accuracy {study.best_value:.4f} (trial {study.best_trial.number})"
    )


def plot_history(study: optuna.Study, out: Path) -> Path:
    """Optimisation history with every trial: completed trials' accuracy, pruned trials at the
    accuracy of the epoch they were stopped at (marked ×, with the epoch), and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    try:
        ax.scatter([t.number for t in complete], [t.value for t in complete], s=26, color="#4C72B0",
                   label=f"completed ({len(complete)})", zorder=3)
        if pruned:
            last = [max(t.intermediate_values) for t in pruned]
            ax.scatter([t.number for t in pruned], [t.intermediate_values[k] for t, k in zip(pruned, last)], s=40,
                       marker="x", color="#D1495B", label=f"pruned ({len(pruned)}): accuracy when stopped", zorder=3)
            for t, k in zip(pruned, last):
                ax.annotate(f"ep {k + 1}", (t.number, t.intermediate_values[k]), xytext=(3, -10),
                            textcoords="offset points", fontsize=6, color="#D1495B")
        if complete:
            best, line = -np.inf, []
            for t in study.trials:
                if t.state == optuna.trial.TrialState.COMPLETE:
                    best = max(best, t.value)
                line.append(best if np.isfinite(best) else np.nan)
            ax.step(range(len(line)), line, where="post", color="#2a9d8f", lw=1.5, label="best so far", zorder=2)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial")
        ax.set_ylabel("validation accuracy")
        ax.set_title("Optimisation history (NASAssistSampler + NASAssistPruner)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
        path = out / "optuna_quickstart_history.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot(study: optuna.Study, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    history = plot_history(study, out)

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    zero = [(_zero_shot(t), t.value) for t in complete if _zero_shot(t) is not None]
    tuned = [(_fine_tuned(t), t.value) for t in complete if _fine_tuned(t) is not None]
    for ax, points, title, xlabel in (
        (axes[0], zero, "zero-shot score vs accuracy", "zero-shot rank score"),
        (axes[1], tuned, "fine-tuned prediction vs accuracy", "predicted val accuracy"),
    ):
        if points:
            p, v = np.array(points).T
            ax.scatter(p, v, s=18, alpha=0.8)
            if len(points) > 2:
                from scipy.stats import spearmanr

                title += f" (Spearman {spearmanr(p, v).statistic:.2f}, n={len(points)})"
        else:
            ax.text(0.5, 0.5, "no trial yet", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation accuracy")
    scatter = out / "optuna_quickstart_predicted_vs_actual.png"
    fig.tight_layout()
    fig.savefig(scatter, dpi=120)
    plt.close(fig)
    return [history, scatter]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("examples/output"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, seed=args.seed)
    pruner = NASAssistPruner(max_resource=args.epochs - 1, min_resource=1, n_warmup_trials=5,
                             lower_bound=0.0, upper_bound=1.0, zero_shot_quantile=None)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name="digits-quickstart")
    started = time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(total=args.trials, desc="trials") as bar:
        study.optimize(make_objective(load_data(args.seed), args.epochs), n_trials=args.trials,
                       callbacks=[lambda study, trial: bar.update(1)])
    summarise(study, args.epochs, time.perf_counter() - started)
    for path in plot(study, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
