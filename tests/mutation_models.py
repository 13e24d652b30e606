"""Small model sources for the mutation tests (kept as text: they are built in the sandbox), and a stand-in predictor."""

import numpy as np

SMALL_CNN = '''\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    """A tiny CNN with a Sequential stem, a residual-able block and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))
'''


class ParamWeightedPredictor:
    """A transparent stand-in predictor: score = Σ weight(module) × parameters of its nodes / 1000.

    Masking a module removes its parameters, so layer relevance is proportional to the
    module's weight × size — a case where the right answer is known.
    """

    target_description = "test score"

    def __init__(self, weights: dict[str, float] | None = None, default: float = 1.0) -> None:
        self.weights = weights or {}
        self.default = default
        self.calls = 0

    def predict(self, graphs, example_input=None):
        self.calls += 1
        means = []
        for g in graphs:
            total = 0.0
            for node in g.nodes:
                root = (node.module or "").split(".")[0]
                total += self.weights.get(root, self.default) * node.num_params
            means.append(total / 1000.0)
        return np.array(means), np.zeros(len(means))
