"""The shipped fused zero-shot score downstream: no credit for deleting BatchNorms and
activations or collapsing a CNN, in predict, relevance, step-0 reporting and the improve loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import torch.nn as nn

from nasassist_plugins.mutation import RelevanceGuidedMutator, Sandbox, SandboxLimits, improve
from nasassist_plugins.mutation.offline import predict_sandboxed
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.optuna.reporting import report_model
from nasassist_plugins.predictor import Predictor
from nasassist_plugins.relevance import layer_relevance

SHAPE = (1, 3, 32, 32)

#: The CNN of examples/improve_quickstart.py and its degraded versions.
CNN_SOURCE = '''\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(64, 10)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))
'''
PLAIN_SOURCE = "\n".join(line for line in CNN_SOURCE.splitlines()
                         if "BatchNorm2d" not in line and "nn.ReLU()" not in line) + "\n"
COLLAPSED_SOURCE = CNN_SOURCE.split("        self.features = nn.Sequential(")[0] + '''\
        self.features = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1))
        self.classifier = nn.Linear(64, 10)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))
'''


class CNN(nn.Module):
    def __init__(self, widths=(16, 32, 64), bn: bool = True, act: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for k, w in enumerate(widths):
            layers.append(nn.Conv2d(c, w, 3, padding=1))
            layers += [nn.BatchNorm2d(w)] if bn else []
            layers += [nn.ReLU()] if act else []
            if k < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


@pytest.fixture(scope="module")
def shipped_predictor(default_predictor) -> Predictor:
    """The shipped default predictor, which must hold the fused zero-shot score."""
    if not default_predictor.has_fusion:
        pytest.fail("the shipped weights must hold the fused zero-shot score")
    return default_predictor


@pytest.mark.parametrize("widths", [(16, 32, 64), (32, 64), (8, 16, 32, 64)])
@pytest.mark.parametrize("population", ["reference", "batch"])
def test_deleting_batchnorm_and_activations_or_collapsing_is_never_an_improvement(shipped_predictor, widths, population):
    models = [CNN(widths), CNN(widths, bn=False, act=False), CNN(widths, bn=False), CNN(widths, act=False),
              CNN((widths[-1],))]
    result = shipped_predictor.score(models, example_input=SHAPE, population=population)
    assert result.kind == ["fused"] * len(models)
    assert np.all(result.score[0] > result.score[1:]), result.score


def test_relevance_of_a_module_uses_the_fused_score(shipped_predictor):
    model = CNN()
    table = layer_relevance(shipped_predictor, model, SHAPE)
    alone = shipped_predictor.score([model], example_input=SHAPE, population="reference")
    assert table.baseline_mean == pytest.approx(float(alone.score[0]))
    assert len(table.rows) >= 8 and all(np.isfinite(r.delta) for r in table.rows)


def test_report_model_stores_the_fused_score_its_kind_and_suite(shipped_predictor):
    study = optuna.create_study()
    trial = study.ask()
    score, std = report_model(trial, CNN(), SHAPE, predictor=shipped_predictor)
    stored = study.trials[0].system_attrs
    assert 0.0 <= score <= 1.0 and std > 0
    assert stored[_attrs.ZERO_SHOT] == score and stored[_attrs.ZERO_SHOT_KIND] == "fused"
    assert set(stored[_attrs.SUITE]) >= {"expressivity", "swap", "meco"}
    # the same model reported again scores the same (independent of the study's other trials)
    assert report_model(study.ask(), CNN(), SHAPE, predictor=shipped_predictor)[0] == pytest.approx(score)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(cpu_s=30, wall_s=30, startup_s=120, memory_mb=2048),
                   extra_paths=[str(Path(__file__).resolve().parent)])


def test_sandboxed_models_are_scored_with_their_suite(shipped_predictor, sandbox):
    results = sandbox.check_many([CNN_SOURCE, PLAIN_SOURCE, COLLAPSED_SOURCE], SHAPE, entries=["Net"] * 3)
    assert all(r.ok and r.extra.get("suite") for r in results)
    mean, std = predict_sandboxed(shipped_predictor, [r.graph() for r in results], [r.extra["suite"] for r in results])
    assert mean[0] > mean[1] and mean[0] > mean[2] and np.all(std > 0)


@pytest.mark.slow
def test_improve_never_accepts_deleting_the_batchnorms_and_relus(shipped_predictor, sandbox):
    proposer = RelevanceGuidedMutator(predictor=shipped_predictor, sandbox=sandbox, max_source_edits=12)
    result = improve(CNN_SOURCE, entry="Net", example_input=SHAPE, max_iterations=4, proposer=proposer,
                     predictor=shipped_predictor, sandbox=sandbox)
    assert result.source.count("BatchNorm2d(") == 3 and result.source.count("nn.ReLU()") == 3, result.diff()
