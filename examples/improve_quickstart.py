"""Improve a small CNN with the relevance-guided loop, then hand the result to an Optuna study.

Runs offline with the shipped predictor (no API key). To use an LLM instead, set
``NASASSIST_LLM_BASE_URL`` and ``NASASSIST_LLM_MODEL`` (and ``NASASSIST_LLM_API_KEY`` if the
server needs one), e.g. an Ollama server: ``http://localhost:11434/v1`` and ``qwen2.5-coder:7b``.

    python examples/improve_quickstart.py
"""

from __future__ import annotations

import os

import optuna
import torch

from nasassist_plugins.mutation import (
    LLMConfig,
    LLMProposer,
    RelevanceGuidedMutator,
    Sandbox,
    enqueue_source_proposal,
    get_source_proposal,
    improve,
)
from nasassist_plugins.predictor import Predictor

SOURCE = '''\
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


def main() -> None:
    torch.set_num_threads(1)
    predictor = Predictor.load_default()
    sandbox = Sandbox()
    proposer: object = RelevanceGuidedMutator(predictor=predictor, sandbox=sandbox)
    if os.environ.get("NASASSIST_LLM_BASE_URL") and os.environ.get("NASASSIST_LLM_MODEL"):
        config = LLMConfig(model=os.environ["NASASSIST_LLM_MODEL"], base_url=os.environ["NASASSIST_LLM_BASE_URL"])
        proposer = LLMProposer(config, fallback=proposer)  # falls back to the offline mutator on any failure

    result = improve(SOURCE, entry="Net", example_input=(1, 3, 32, 32), max_iterations=5, proposer=proposer,
                     predictor=predictor, sandbox=sandbox,
                     on_iteration=lambda h: print(f"  round {h.iteration}: {h.origin} "
                                                  f"{'%.4f' % h.predicted if h.accepted else 'refused: ' + h.reason}"))
    print(result.header(), f"({result.baseline_num_params:,} → {result.num_params:,} parameters)")
    print(result.diff() or "(no proposal beat the original)")
    print("Explanation:", result.explanation or "-")

    # The improved source goes into an Optuna study as a trial; the objective only sees JSON.
    study = optuna.create_study(direction="maximize")
    # trusted: only offline edits of our own model (generated code needs bubblewrap's isolation to be built)
    enqueue_source_proposal(study, result.source, input_shape=(1, 3, 32, 32), entry="Net",
                            explanation=result.explanation, predicted=result.predicted, sandbox=sandbox,
                            trusted=not isinstance(proposer, LLMProposer))

    def objective(trial: optuna.Trial) -> float:
        proposal = get_source_proposal(trial)
        if proposal is None:
            return 0.0
        # In a real study: proposal.evaluate("mypkg.train:fit_and_score", {...}) trains it in the sandbox.
        mean, _ = predictor.predict([proposal.graph()])
        return float(mean[0])

    study.optimize(objective, n_trials=1)
    print(f"Optuna trial 0 scored the proposal at {study.trials[0].value:.4f} "
          f"({study.trials[0].user_attrs['nasassist:proposal:num_params']:,} parameters)")


if __name__ == "__main__":
    main()
