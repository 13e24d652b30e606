"""NAS with NNI 3.0 and NASAssistStrategy on scikit-learn's digits (offline, CPU, ~1-3 min).

    pip install "nasassist-plugins[nni]"
    python examples/nni_nas_quickstart.py --trials 12 --experiment-dir examples/output/nni

A small CNN model space (``nni.choice`` widths, ``LayerChoice`` kernels and activations,
an optional extra conv block) is searched on NNI's sequential engine. For every model it
trains, NASAssistStrategy scores a pool of candidates zero-shot on the graph of
``model.executable_model()`` and submits only the best-ranked one (never one predicted
below the pool's median); the evaluator trains each model for a few epochs with a fresh
optimizer and reports per-epoch validation accuracy, which NASAssistAssessor uses to
stop hopeless models early. NNI's logs and checkpoints go to ``--experiment-dir``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nasassist_plugins.nni as nasassist_nni  # checks the NNI install first

import nni  # noqa: E402
from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableBatchNorm2d, MutableConv2d, MutableLinear  # noqa: E402

from nasassist_plugins.search import PlannerConfig  # noqa: E402

EPOCHS = 6


class DigitsSpace(ModelSpace):
    """8x8 digit images: conv(c1, k) -> act -> [optional conv block] -> pool -> linear(h) -> 10."""

    def __init__(self) -> None:
        super().__init__()
        c1 = nni.choice("channels", [8, 16, 32])
        self.conv1 = LayerChoice({
            "conv3x3": MutableConv2d(1, c1, 3, padding=1),
            "conv5x5": MutableConv2d(1, c1, 5, padding=2),
            "conv1x1": MutableConv2d(1, c1, 1),
        }, label="kernel")
        self.act = LayerChoice({"relu": nn.ReLU(), "gelu": nn.GELU(), "tanh": nn.Tanh()}, label="activation")
        self.block = LayerChoice({
            "none": nn.Identity(),
            "conv": nn.Sequential(MutableConv2d(c1, c1, 3, padding=1), MutableBatchNorm2d(c1), nn.ReLU()),
        }, label="extra_block")
        self.pool = nn.AdaptiveAvgPool2d(2)
        hidden = nni.choice("hidden", [16, 64, 128])
        self.fc1 = MutableLinear(c1 * 4, hidden)
        self.fc2 = MutableLinear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block(self.act(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def load_digits_tensors(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_val, y_train, y_val = train_test_split(x, digits.target, test_size=0.25, random_state=seed,
                                                      stratify=digits.target)
    return (torch.from_numpy(x_train), torch.from_numpy(y_train).long(),
            torch.from_numpy(x_val), torch.from_numpy(y_val).long())


def make_evaluator(data, epochs: int = EPOCHS):
    x_train, y_train, x_val, y_val = data

    def train_and_evaluate(model: nn.Module) -> None:
        torch.manual_seed(0)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)  # a fresh optimizer per model
        accuracy = 0.0
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x_train))
            for start in range(0, len(order), 64):
                batch = order[start:start + 64]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = float((model(x_val).argmax(1) == y_val).float().mean())
            if not nasassist_nni.report_intermediate_result(accuracy):
                break  # NASAssistAssessor: this curve will not beat the best model
        nni.report_final_result(accuracy)

    return FunctionalEvaluator(train_and_evaluate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--experiment-dir", type=Path, default=Path("examples/output/nni"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("nni").setLevel(logging.WARNING)

    strategy = nasassist_nni.NASAssistStrategy(
        example_input=(1, 1, 8, 8),
        config=PlannerConfig(min_candidates=16, prune_quantile=0.5, n_exploration_trials=4),
        assessor=nasassist_nni.NASAssistAssessor(max_step=EPOCHS, lower_bound=0.0, upper_bound=1.0),
        seed=args.seed,
    )
    started = time.perf_counter()
    experiment = nasassist_nni.run_nas_experiment(
        DigitsSpace(), make_evaluator(load_digits_tensors(args.seed)), strategy,
        max_trials=args.trials, experiment_dir=args.experiment_dir,
    )
    seconds = time.perf_counter() - started

    print(f"\n{'#':>2} {'origin':<9} {'pool':>4} {'predicted':>9} {'val acc':>7}  stopped  architecture")
    for r in strategy.history:
        metric = "—" if r["metric"] is None else f"{r['metric']:.3f}"
        print(f"{r['trial']:>2} {r['origin']:<9} {r['n_candidates']:>4} {r['predicted_mean']:>9.3f} {metric:>7}  "
              f"{'yes' if r['stopped_early'] else 'no':<7}  {r['params']}")
    scored = sum(r["n_candidates"] for r in strategy.history)
    best = experiment.export_top_models(top_k=1, formatter="dict")[0]
    best_acc = max(r["metric"] for r in strategy.history if r["metric"] is not None and not r["stopped_early"])
    print(f"\nScored {scored} candidate architectures zero-shot, trained {len(strategy.history)} "
          f"({sum(r['stopped_early'] for r in strategy.history)} stopped early) in {seconds:.0f} s.")
    print(f"Best: {best} with validation accuracy {best_acc:.3f}")
    print(f"NNI logs and checkpoints: {args.experiment_dir.resolve() / experiment.id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
