"""Zero-shot predictor benchmark (thesis protocol): train on NB101, rank unseen families.

    python benchmarks/predictor_zero_shot.py --data ../shared/data --out-dir benchmarks/results

Trains a predictor on NB101 only (or loads ``--weights``), then on each evaluation task
(NB201 CIFAR-10 / ImageNet16-120 at 200 epochs, CIFAR-100 at 12 epochs, NB301,
TransNAS-Bench-101 micro tasks) reports Spearman, Kendall tau, NDCG@10 and precision of
the top 10 %, beside baselines computed on the same architectures: #params, FLOPs, the
stored synflow and NWOT where the data has them, and GRAF-style graph features + a
random forest trained on the same NB101 architectures. Few-shot rows fine-tune on
20/50/100 labelled architectures of the target task (mean over 3 draws, evaluated on
the rest). Writes Markdown + JSON tables and a predicted-vs-true scatter plot.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nasassist_plugins.predictor import Predictor
from nasassist_plugins.predictor.graph_features import graph_feature_matrix
from nasassist_plugins.predictor.metrics import ranking_metrics
from nasassist_plugins.predictor.training.tasks import TASKS, load_task
from nasassist_plugins.predictor.training.pipeline import TrainingConfig, rank_normalise, train_predictor

THESIS = {  # zero-shot from NB101 (thesis Table 3.5): Spearman, NDCG@10
    "nb201-c10": (0.8685, 0.9851),
    "nb301": (0.6570, 0.9217),
}
EVAL_TASKS = ("nb201-c10", "nb201-in16", "nb201-c100-12ep", "nb301", "tnb101-class_object", "tnb101-class_scene",
              "tnb101-jigsaw", "tnb101-segmentsemantic", "tnb101-autoencoder", "tnb101-normal", "tnb101-room_layout")


def _train(args: argparse.Namespace):
    from nasassist_plugins.families import sample_graphs
    from nasassist_plugins.predictor.training.zoo import sample_zoo_graphs

    train_set, _ = load_task(TASKS["nb101"], args.data, limit=args.train_limit, seed=args.seed, n_jobs=args.jobs)
    if args.weights:
        return Predictor.load(args.weights), train_set, 0.0
    unlabelled = sample_graphs("nb101", args.unlabelled, seed=args.seed + 1, n_jobs=args.jobs)
    unlabelled += sample_zoo_graphs(args.zoo, seed=args.seed)
    started = time.perf_counter()
    config = TrainingConfig(pretrain_epochs=args.pretrain_epochs, supervised_epochs=args.supervised_epochs,
                            pretrain_max_minutes=args.max_minutes * 0.35, supervised_max_minutes=args.max_minutes * 0.45,
                            seed=args.seed, notes={"benchmark": "predictor_zero_shot", "train": "nb101"})
    predictor = train_predictor([train_set], unlabelled, config)
    seconds = time.perf_counter() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    predictor.save(args.out_dir / "predictor_nb101.safetensors")
    return predictor, train_set, seconds


def _few_shot(predictor: Predictor, encoded, values, sizes, seed: int) -> dict[str, dict[str, float]]:
    rows = {}
    for n in sizes:
        if n >= len(values) - 10:
            continue
        metrics = []
        for draw in range(3):
            rng = np.random.default_rng(seed + 100 * draw + n)
            idx = rng.permutation(len(values))
            train, test = idx[:n], idx[n:]
            tuned = predictor.copy().fit(encoded.subset(train), values[train], seed=draw)
            mean, _ = tuned.predict_encoded(encoded.subset(test))
            metrics.append(ranking_metrics(mean, values[test]))
        rows[f"few-shot {n}"] = {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--weights", type=Path, help="skip training: use these NB101-only weights")
    parser.add_argument("--train-limit", type=int, default=3000)
    parser.add_argument("--eval-limit", type=int, default=None, help="architectures per task (default: all)")
    parser.add_argument("--tnb-limit", type=int, default=1000, help="architectures per TransNAS task")
    parser.add_argument("--tasks", default=",".join(EVAL_TASKS))
    parser.add_argument("--unlabelled", type=int, default=1000)
    parser.add_argument("--zoo", type=int, default=100)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--supervised-epochs", type=int, default=6)
    parser.add_argument("--max-minutes", type=float, default=40.0)
    parser.add_argument("--few-shot", default="20,50,100")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    predictor, train_set, train_seconds = _train(args)
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=2, n_jobs=args.jobs, random_state=args.seed)
    forest.fit(graph_feature_matrix(train_set.graphs), rank_normalise(train_set.values))

    results: dict[str, dict[str, dict[str, float]]] = {}
    scatter: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sizes = [int(s) for s in args.few_shot.split(",") if s]
    for name in [t for t in args.tasks.split(",") if t]:
        task = TASKS[name]
        limit = args.tnb_limit if task.family == "tnb101" else args.eval_limit
        labelled, proxies = load_task(task, args.data, limit=limit, seed=args.seed, n_jobs=args.jobs)
        graphs, y = list(labelled.graphs), labelled.values
        started = time.perf_counter()
        encoded = predictor.encode(graphs)
        mean, _ = predictor.predict_encoded(encoded)
        predict_s = time.perf_counter() - started
        rows = {"NAS-Assist zero-shot": ranking_metrics(mean, y)}
        rows["NAS-Assist zero-shot"]["predict_s_per_1000"] = 1000 * predict_s / len(y)
        rows["#params"] = ranking_metrics(np.array([g.num_parameters for g in graphs], float), y)
        rows["FLOPs"] = ranking_metrics(np.array([g.flops for g in graphs], float), y)
        for proxy in ("synflow", "nwot"):
            key = next((k for k in proxies if k == proxy or k.endswith("/" + proxy)), None)
            if key is not None and np.isfinite(proxies[key]).sum() > 10:
                ok = np.isfinite(proxies[key])
                rows[f"{proxy} (stored)"] = ranking_metrics(proxies[key][ok], y[ok])
        rows["GRAF features + RF (NB101)"] = ranking_metrics(forest.predict(graph_feature_matrix(graphs)), y)
        if name in ("nb201-c10", "nb301"):
            rows.update(_few_shot(predictor, encoded, y, sizes, args.seed))
        results[name] = rows
        scatter[name] = (mean, y)
        print(f"{name:24s} n={len(y):5d}  NAS-Assist SRCC {rows['NAS-Assist zero-shot']['spearman']:.3f}  "
              f"GRAF+RF {rows['GRAF features + RF (NB101)']['spearman']:.3f}  "
              f"#params {rows['#params']['spearman']:.3f}", flush=True)

    lines = ["| task | method | n | Spearman | Kendall τ | NDCG@10 | P@top10% | thesis SRCC / NDCG@10 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for method, m in rows.items():
            thesis = THESIS.get(name) if method == "NAS-Assist zero-shot" else None
            lines.append(
                f"| {name} | {method} | {m['n']:.0f} | {m['spearman']:.3f} | {m['kendall']:.3f} | {m['ndcg@10']:.4f} | "
                f"{m['precision@10%']:.2f} | {'%.4f / %.4f' % thesis if thesis else ''} |"
            )
    table = "\n".join(lines)
    print(table)
    (args.out_dir / "predictor_zero_shot.md").write_text(table + "\n")
    payload = {"results": results, "train": {"task": "nb101", "n": len(train_set.values), "seconds": train_seconds,
                                             "info": predictor.training_info}}
    (args.out_dir / "predictor_zero_shot.json").write_text(json.dumps(payload, indent=1, default=float))
    _scatter(scatter, args.out_dir / "predictor_zero_shot.png")


def _scatter(data: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(data)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, (name, (pred, true)) in zip(axes.flat, data.items()):
        ax.scatter(true, pred, s=3, alpha=0.4)
        m = ranking_metrics(pred, true)
        ax.set_title(f"{name}\nSRCC {m['spearman']:.3f}", fontsize=9)
        ax.set_xlabel("true value")
        ax.set_ylabel("predicted score")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("NAS-Assist predictor trained on NB101 only: zero-shot predictions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
