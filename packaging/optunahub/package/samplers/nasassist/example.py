"""NAS-Assist from OptunaHub: search a small CNN on scikit-learn's digits (offline, CPU, ~20 s).

The sampler traces each candidate architecture ``build_model`` returns into a graph, scores
it zero-shot with a pre-trained predictor and plans the trial on the most promising one; the
pruner stops trainings whose learning curve is unlikely to beat the best trial.
"""

from __future__ import annotations

import optuna
import optunahub
import torch
from sklearn.datasets import load_digits
from torch import nn

module = optunahub.load_module(package="samplers/nasassist")
NASAssistSampler = module.NASAssistSampler
NASAssistPruner = module.NASAssistPruner

EPOCHS = 4


def build_model(trial: optuna.trial.Trial) -> nn.Module:
    """A CNN for 8x8 digit images: depth, widths and kernels come from the trial."""
    layers: list[nn.Module] = []
    channels = 1
    for i in range(trial.suggest_int("n_blocks", 1, 2)):
        width = trial.suggest_categorical(f"width_{i}", [8, 16, 32])
        kernel = trial.suggest_categorical(f"kernel_{i}", [1, 3])
        layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU()]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


digits = load_digits()
x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
y = torch.tensor(digits.target, dtype=torch.long)
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]


def objective(trial: optuna.trial.Trial) -> float:
    torch.manual_seed(trial.number)
    model = build_model(trial)
    optimizer = torch.optim.Adam(model.parameters(), lr=trial.suggest_float("lr", 3e-3, 3e-2, log=True))
    accuracy = 0.0
    for epoch in range(EPOCHS):
        for start in range(0, len(y_train), 64):
            loss = nn.functional.cross_entropy(model(x_train[start : start + 64]), y_train[start : start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


if __name__ == "__main__":
    torch.set_num_threads(1)
    sampler = NASAssistSampler(build_model=build_model, example_input=torch.zeros(1, 1, 8, 8), seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=NASAssistPruner())
    study.optimize(objective, n_trials=6)
    best = study.best_trial
    print(f"best val accuracy {best.value:.4f} (trial {best.number}): {best.params}")
    print("predicted:", best.user_attrs.get("nasassist_predicted"), best.user_attrs.get("nasassist_prediction_scale"))
