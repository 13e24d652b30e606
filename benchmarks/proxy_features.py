"""Do zero-cost proxies lift the predictor's zero-shot ranking? (NB101 -> NB201 CIFAR-10)

    python benchmarks/proxy_features.py --data ../shared/data \
        --cells benchmarks/results/proxies.jsonl \
        --weights benchmarks/results/predictor_nb101.safetensors \
        --out benchmarks/results/proxy_features.json

Reads the per-cell proxies computed by ``benchmarks/proxies.py`` (our implementation, one
synthetic CIFAR batch, random init) for NB101 cells (the training family) and NB201 cells
(the unseen family), scores the same cells with a predictor trained on NB101 only, and
reports the Spearman / Kendall / NDCG@10 / precision-of-top-10 % on the NB201 cells of:

* the predictor alone, and each proxy alone;
* an unweighted rank average of the predictor and a fixed proxy set chosen before
  looking at NB201 (NWOT, ZiCo, synflow: the strongest in the literature);
* a ridge stacker on per-family ranks [predictor, proxies], fitted on the NB101 cells;
* the predictor fine-tuned on the NB101 cells with ``Predictor.fit(..., features=...)``
  given the proxies' per-family ranks (proxies as predictor features), beside the same
  fine-tuning without them (control: only the proxies differ);
* few-shot: fine-tuned on 20/50/100 labelled NB201 cells with and without the raw
  proxies as features (mean over draws, evaluated on the other cells).

Proxies enter as ranks within their family's evaluated set (0 worst .. 1 best), because
their raw scales differ by orders of magnitude between NB101's and NB201's networks; a
sampler has the same information (it ranks a pool of candidates of one space). Nothing
here is fitted on NB201. Writes JSON + Markdown tables and prints a rich table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import RidgeCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxies as proxy_benchmark  # noqa: E402  (sibling benchmark script: its NB101/NB201 loaders)

from nasassist_plugins.predictor import Predictor  # noqa: E402
from nasassist_plugins.predictor.metrics import ranking_metrics  # noqa: E402

#: Proxies averaged with the predictor, fixed a priori (literature: strongest on NB201).
RANK_AVERAGE_SET = ("nwot", "zico", "synflow")


def _rank01(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1]; NaN (a failed proxy) gets the middle rank."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), 0.5)
    ok = np.isfinite(values)
    if ok.sum() >= 2:
        out[ok] = (rankdata(values[ok]) - 1) / (ok.sum() - 1)
    return out


def _table(space: str, cells: dict[str, dict[str, Any]], names: list[str], min_cells: int):
    """Keys, accuracies and proxy matrix of the cells that have every proxy in ``names``."""
    keys = [k for k, c in cells.items() if all(math.isfinite(c["ours"].get(n, math.nan)) for n in names)]
    if len(keys) < min_cells:
        raise SystemExit(f"{space}: only {len(keys)} cells have all of {names}; need {min_cells}")
    acc = np.array([cells[k]["val_acc"] for k in keys], dtype=np.float64)
    proxies = np.array([[cells[k]["ours"][n] for n in names] for k in keys], dtype=np.float64)
    return keys, acc, proxies


def _mean_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}


def _fine_tuned(predictor: Predictor, encoded, target: np.ndarray, features: np.ndarray | None, seed: int) -> Predictor:
    """A copy of the predictor fine-tuned on (encoded, target), with optional extra features."""
    return predictor.copy().fit(encoded, target, features=features, epochs=150, max_seconds=None, seed=seed)


def _few_shot(predictor: Predictor, encoded, acc: np.ndarray, proxies: np.ndarray, sizes: list[int], draws: int):
    """{size: (metrics without proxies, metrics with raw proxies as features)} on the held-out cells."""
    rows = {}
    for n in sizes:
        if n >= len(acc) - 20:
            continue
        plain, with_proxies = [], []
        for draw in range(draws):
            order = np.random.default_rng(1000 * draw + n).permutation(len(acc))
            train, held = order[:n], order[n:]
            tuned = _fine_tuned(predictor, encoded.subset(train), acc[train], None, draw)
            plain.append(ranking_metrics(tuned.predict_encoded(encoded.subset(held))[0], acc[held]))
            tuned = _fine_tuned(predictor, encoded.subset(train), acc[train], proxies[train], draw)
            held_encoded = encoded.subset(held)
            held_encoded.features = torch.tensor(proxies[held], dtype=torch.float32)
            with_proxies.append(ranking_metrics(tuned.predict_encoded(held_encoded)[0], acc[held]))
        rows[n] = (_mean_metrics(plain), _mean_metrics(with_proxies))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cells", type=Path, default=Path("benchmarks/results/proxies.jsonl"))
    parser.add_argument("--weights", type=Path, default=Path("benchmarks/results/predictor_nb101.safetensors"),
                        help="predictor trained on NB101 only (benchmarks/predictor_zero_shot.py writes it)")
    parser.add_argument("--proxies", nargs="+", default=["params", "flops", "synflow", "nwot", "zico", "jacov"],
                        help="proxies used as features (cells lacking one are left out)")
    parser.add_argument("--min-cells", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds / few-shot draws (mean reported)")
    parser.add_argument("--few-shot", default="20,50,100", help="labelled NB201 cells for the few-shot rows")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/proxy_features.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()

    names = list(args.proxies)
    predictor = Predictor.load(args.weights)
    sets = {}
    for space in ("nb101", "nb201"):
        cells = proxy_benchmark._read_checkpoint(args.cells, space)
        keys, acc, proxies = _table(space, cells, names, args.min_cells)
        encoded = predictor.encode(proxy_benchmark.cell_graphs(space, keys, args.data))
        zero_shot, _ = predictor.predict_encoded(encoded)
        sets[space] = {"keys": keys, "acc": acc, "proxies": proxies, "ranks": np.column_stack(
            [_rank01(proxies[:, j]) for j in range(len(names))]), "encoded": encoded, "zero_shot": zero_shot}
    train, test = sets["nb101"], sets["nb201"]
    y_train = _rank01(train["acc"])
    rows: dict[str, dict[str, float]] = {}
    rows["predictor (NB101 weights)"] = ranking_metrics(test["zero_shot"], test["acc"])
    for j, name in enumerate(names):
        rows[f"{name} (ours)"] = ranking_metrics(test["proxies"][:, j], test["acc"])
    average_cols = [names.index(n) for n in RANK_AVERAGE_SET if n in names]
    if average_cols:
        blend = (_rank01(test["zero_shot"]) + test["ranks"][:, average_cols].sum(1)) / (1 + len(average_cols))
        label = "+".join(names[j] for j in average_cols)
        rows[f"rank average: predictor+{label}"] = ranking_metrics(blend, test["acc"])
        proxies_only = test["ranks"][:, average_cols].mean(1)
        rows[f"rank average: {label} (no predictor)"] = ranking_metrics(proxies_only, test["acc"])

    def stack(s: dict[str, Any]) -> np.ndarray:
        return np.column_stack([_rank01(s["zero_shot"]), s["ranks"]])

    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(stack(train), y_train)
    rows["ridge stack on NB101: predictor+proxies"] = ranking_metrics(ridge.predict(stack(test)), test["acc"])
    ridge_weights = dict(zip(["predictor"] + names, map(float, ridge.coef_)))

    for label, use_proxies in (("predictor fine-tuned on the NB101 cells (control)", False),
                               ("predictor fine-tuned on the NB101 cells + proxy features", True)):
        metrics = []
        for seed in range(args.seeds):
            tuned = _fine_tuned(predictor, train["encoded"], y_train, train["ranks"] if use_proxies else None, seed)
            encoded = test["encoded"]
            if use_proxies:
                encoded = type(encoded)(encoded.embeddings, encoded.inputs, torch.tensor(test["ranks"], dtype=torch.float32))
            metrics.append(ranking_metrics(tuned.predict_encoded(encoded)[0], test["acc"]))
        rows[label] = _mean_metrics(metrics)
    sizes = [int(v) for v in args.few_shot.split(",") if v]
    for n, (plain, with_proxies) in _few_shot(predictor, test["encoded"], test["acc"], test["proxies"], sizes,
                                               args.seeds).items():
        rows[f"few-shot {n} NB201 labels"] = plain
        rows[f"few-shot {n} NB201 labels + proxy features"] = with_proxies

    payload = {
        "command": " ".join(["proxy_features.py"] + (argv if argv is not None else sys.argv[1:])),
        "train": {"family": "nb101", "cells": len(train["keys"])},
        "test": {"family": "nb201-c10 (200-epoch validation accuracy)", "cells": len(test["keys"])},
        "proxies": names,
        "ridge_weights": ridge_weights,
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    lines = [
        f"Zero-shot NB101 -> NB201-C10 on {len(test['keys'])} NB201 cells (fitted on {len(train['keys'])} NB101 cells)",
        "",
        "| method | Spearman | Kendall τ | NDCG@10 | P@top10% |",
        "|---|---|---|---|---|",
    ]
    for label, m in rows.items():
        lines.append(f"| {label} | {m['spearman']:.3f} | {m['kendall']:.3f} | {m['ndcg@10']:.4f} | {m['precision@10%']:.2f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"ridge weights: {json.dumps({k: round(v, 3) for k, v in ridge_weights.items()})}")
    return payload


if __name__ == "__main__":
    main()
