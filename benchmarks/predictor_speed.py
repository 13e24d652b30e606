"""Predictor inference speed: 1,000 NB201 graphs, and a PyTorch model to a score.

    python benchmarks/predictor_speed.py --weights benchmarks/results/predictor_nb101.safetensors \
        --data ../shared/data --out benchmarks/results/predictor_speed.json

Targets (issue): predict on 1,000 NB201 graphs <= 2 s on 2 CPU cores; a PyTorch model to a
score <= 20 ms median (tracing included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predictor_speed.json"))
    args = parser.parse_args()

    from nasassist_plugins.adapters import nb201_network
    from nasassist_plugins.predictor import Predictor
    from nasassist_plugins.predictor.training.tasks import TASKS, load_task

    predictor = Predictor.load(args.weights)
    labelled, _ = load_task(TASKS["nb201-c10-12ep"], args.data, limit=1000, seed=0, progress=False)
    graphs = list(labelled.graphs)
    predictor.predict(graphs[:10])  # warm-up
    batch_ms = _median_ms(lambda: predictor.predict(graphs), args.repeats)
    model = nb201_network("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    example = torch.randn(1, 3, 32, 32)
    single_ms = _median_ms(lambda: predictor.predict([model], example_input=example), 4 * args.repeats)
    from nasassist_plugins.adapters import from_torch

    trace_ms = _median_ms(lambda: from_torch(model, example), 4 * args.repeats)
    result = {
        "predict_1000_nb201_graphs_s": batch_ms / 1000,
        "model_to_score_median_ms": single_ms,
        "of_which_tracing_median_ms": trace_ms,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
