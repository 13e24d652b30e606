"""Layer relevance inside repeated blocks: folding-matched reference vs the plain baseline.

The predictor folds identical consecutive blocks (``cells.1..4``, ``layer1.0/1``) into one.
Masking a layer inside such a block also breaks that folding, so "baseline minus masked"
mixes the layer's contribution with a change of representation. ``layer_relevance``
measures those layers against the baseline with their block kept apart instead
(``RelevanceRow.reference_mean``). This script shows how much that matters with the
shipped default predictor:

    python benchmarks/relevance_folding.py --out benchmarks/results/relevance_folding.json

Per model: layers, layers inside folded blocks, extra reference graphs, mean |drop| of the
affected layers both ways, their mean shift, and the Spearman correlation between the two
all-layer rankings (1.0 when no layer sits in a folded block).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr


def _models() -> dict:
    from graph_extraction import ResNet18  # benchmarks/graph_extraction.py, torchvision's layout

    from nasassist_plugins.adapters import nb201_network
    from nasassist_plugins.predictor.training.zoo import random_mobilenet, random_resnet

    return {
        "NB201 network (5 cells per stage)": nb201_network(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
        ),
        "ResNet-18": ResNet18(num_classes=10),
        "generated ResNet (zoo seed 1)": random_resnet(np.random.default_rng(1)),
        "generated MobileNet (zoo seed 2)": random_mobilenet(np.random.default_rng(2)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/relevance_folding.json"))
    args = parser.parse_args()

    from nasassist_plugins.adapters import from_torch
    from nasassist_plugins.predictor import Predictor
    from nasassist_plugins.predictor.coarsen import folded_blocks
    from nasassist_plugins.relevance import layer_relevance

    predictor = Predictor.load_default()
    rows = []
    for name, model in _models().items():
        graph = from_torch(model.eval(), (1, 3, 32, 32))
        started = time.perf_counter()
        table = layer_relevance(predictor, graph)
        seconds = time.perf_counter() - started
        matched = np.array([r.delta for r in table])
        plain = np.array([table.baseline_mean - r.masked_mean for r in table])
        affected = np.array([r.reference_mean != table.baseline_mean for r in table])
        rows.append({
            "model": name,
            "layers": len(table),
            "in_folded_blocks": int(affected.sum()),
            "reference_graphs": len(folded_blocks(graph)),
            "mean_abs_drop_matched": float(np.abs(matched[affected]).mean()) if affected.any() else 0.0,
            "mean_abs_drop_plain": float(np.abs(plain[affected]).mean()) if affected.any() else 0.0,
            "mean_shift_plain_minus_matched": float((plain - matched)[affected].mean()) if affected.any() else 0.0,
            "ranking_spearman": float(spearmanr(matched, plain)[0]) if affected.any() else 1.0,
            "relevance_seconds": seconds,
        })
    header = "| model | layers | in folded blocks | extra graphs | mean abs drop (matched) | (plain) | shift | ranking SRCC | time |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['layers']} | {r['in_folded_blocks']} | {r['reference_graphs']} "
            f"| {r['mean_abs_drop_matched']:.4f} | {r['mean_abs_drop_plain']:.4f} "
            f"| {r['mean_shift_plain_minus_matched']:+.4f} | {r['ranking_spearman']:.3f} | {r['relevance_seconds']:.2f} s |"
        )
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "markdown": "\n".join(lines)}, indent=1))


if __name__ == "__main__":
    main()
