"""Multi-objective search: the objective set (budgets, adaptation) and the samplers' use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasassist_plugins.adapters import from_torch
from nasassist_plugins.errors import ConfigurationError, ObjectiveError
from nasassist_plugins.hardware import LatencyPredictor
from nasassist_plugins.search.objectives import ObjectiveSet

X = torch.randn(1, 3, 16, 16)


def _cnn(width: int = 8, depth: int = 1) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


def test_objective_set_evaluates_mixed_objectives_and_budgets():
    model = _cnn(8, 2)
    graph = from_torch(model, X)
    objectives = ObjectiveSet(["score", "params", "flops", "latency"], ["maximize", "minimize", "minimize", "minimize"],
                              example_input=X, max_params=500, max_latency_ms=10_000)  # fmt: skip
    assert objectives.names == ("score", "params", "flops", "latency")
    assert objectives.score_index == 0 and objectives.needs_model
    mean, std = objectives.evaluate(model, graph)
    assert np.isnan(mean[0]) and np.isnan(std[0])
    assert mean[1] == sum(p.numel() for p in model.parameters()) and mean[2] == graph.flops and mean[3] > 0
    assert std[1:].tolist() == [0.0, 0.0, 0.0] and objectives.features(graph) is None
    budget = objectives.budget_values(mean, model, graph)
    assert budget == {"params": mean[1], "latency_ms": mean[3]}
    assert objectives.violations(budget) == [f"params {mean[1]:.4g} > max_params 500"]


def test_objective_set_configuration_errors():
    with pytest.raises(ConfigurationError, match="2 objectives for 3 study directions"):
        ObjectiveSet(["score", "params"], ["maximize", "minimize", "minimize"])
    with pytest.raises(ConfigurationError, match="only one"):
        ObjectiveSet(["score", "score"], ["maximize", "maximize"])
    with pytest.raises(ConfigurationError, match="max_params must be a positive number"):
        ObjectiveSet(["score", "params"], ["maximize", "minimize"], max_params=-1)
    with pytest.raises(ConfigurationError, match="max_latency_ms without a latency objective"):
        ObjectiveSet(["score", "params"], ["maximize", "minimize"], max_latency_ms=5)
    with pytest.raises(ConfigurationError, match="'latency' objective times the model"):
        ObjectiveSet(["score", "latency"], ["maximize", "minimize"])
    with pytest.raises(ConfigurationError, match="unknown objective 'accuracy'"):
        ObjectiveSet(["accuracy", "params"], ["maximize", "minimize"])
    with pytest.raises(ConfigurationError, match="direction"):
        ObjectiveSet(["score"], ["up"])


def test_measured_latency_needs_a_model():
    objectives = ObjectiveSet(["score", "latency"], ["maximize", "minimize"], example_input=X)
    with pytest.raises(ObjectiveError, match="nothing to time"):
        objectives.evaluate(None, from_torch(_cnn(), X))


def test_device_latency_objective_adapts_to_the_study_values():
    rng = np.random.default_rng(0)
    graphs = [from_torch(_cnn(int(w), int(d)), X) for w, d in zip(rng.choice([4, 8, 16, 32], 12), rng.integers(1, 4, 12))]
    base = LatencyPredictor().fit(graphs, {"a": [g.flops for g in graphs], "b": [g.num_nodes for g in graphs]})
    objectives = ObjectiveSet(["score", base.for_new_device("phone")], ["maximize", "minimize"], max_latency_ms=1e9)
    assert objectives.names == ("score", "latency:phone") and objectives.device_indices == (1,)
    features = np.stack([objectives.features(g) for g in graphs])
    mean, std = objectives.predict_devices(features)
    assert np.isnan(mean).all()  # unknown until the study has finished a few trials
    assert objectives.violations(objectives.budget_values(mean[0])) == []
    measured = np.array([2.0 * g.flops / 1e5 + 1.0 for g in graphs])
    objectives.observe(features[:8], np.stack([np.zeros(8), measured[:8]], axis=1))
    mean, std = objectives.predict_devices(features[8:])
    assert np.isnan(mean[:, 0]).all() and np.all(np.isfinite(mean[:, 1])) and np.all(std[:, 1] > 0)
    assert np.corrcoef(mean[:, 1], measured[8:])[0, 1] > 0.8
