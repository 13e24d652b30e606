"""NASAssistSampler on NAS-Bench-201: 15,625 real cells, the objective looked up in the table.

    python examples/optuna_nb201.py --data ../shared/data [--trials 50] [--weights W]

Each trial chooses the six edge operations of an NB201 cell; ``build_model`` returns the
cell network's computational graph (traced once from the real PyTorch network and cached by
``nasassist_plugins.families``), and the objective reads the 12-epoch CIFAR-10 validation
accuracy from the benchmark table instead of training. Use ``--weights`` with predictor
weights trained without NB201 (e.g. ``nasassist train --data ../shared/data --train-families
nb101 --out DIR``) to see genuinely zero-shot behaviour; the shipped default weights have
seen NB201.
"""

from __future__ import annotations

import argparse

import optuna

from nasassist_plugins.families import load_family
from nasassist_plugins.optuna import NASAssistSampler
from nasassist_plugins.predictor import Predictor

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def edges_of(arch: str) -> tuple[str, ...]:
    return tuple(token.split("~")[0] for token in arch.replace("+", "").split("|") if token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--weights", help="predictor weights (default: the shipped ones)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    nb201 = load_family("nb201", args.data, n_jobs=2)
    row_of = {edges_of(arch): i for i, arch in enumerate(nb201.specs)}
    accuracy = nb201.target("cifar10_val")

    def build_model(trial):
        edges = tuple(trial.suggest_categorical(f"edge_{k}", OPS) for k in range(6))
        return nb201.graphs[row_of[edges]]

    def objective(trial):
        edges = tuple(trial.suggest_categorical(f"edge_{k}", OPS) for k in range(6))
        return float(accuracy[row_of[edges]])

    predictor = Predictor.load(args.weights) if args.weights else None
    study = optuna.create_study(direction="maximize",
                                sampler=NASAssistSampler(build_model=build_model, predictor=predictor, seed=args.seed))
    study.optimize(objective, n_trials=args.trials)
    rank = (accuracy > study.best_value).sum() + 1
    print(f"best 12-epoch CIFAR-10 val accuracy after {args.trials} trials: {study.best_value:.2f} "
          f"(rank {rank} of {len(accuracy)}; best possible {accuracy.max():.2f})")


if __name__ == "__main__":
    main()
