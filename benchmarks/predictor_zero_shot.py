"""The zero-shot table: every suite signal, #params, FLOPs, AZ-NAS and the fused score, per
held-out family and task (leave-family-out for the fused score), worst held-out family first.

Inputs (both from one run):

* the fused training report, written by
  ``nasassist train --fused --data ../shared/data --suite benchmarks/results/suite --out DIR``
  (``DIR/fused_report.json``: leave-family-out predictions scored against the benchmarks);
* the suite checkpoints ``benchmarks/results/suite/*.jsonl`` (``benchmarks/zero_shot_suite.py``),
  for the cost per architecture and for the proxy-network vs full-network study.

    python benchmarks/predictor_zero_shot.py --report DIR/fused_report.json

Writes ``benchmarks/results/predictor_zero_shot.{json,md,png}`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FUSED = "fused (leave-family-out)"
SINGLE = ("expressivity", "progressivity", "trainability", "meco", "meco_opt", "swap", "nwot", "params", "flops",
          "swap (regularised)")


def _cost_rows(suite_dir: Path) -> list[dict[str, Any]]:
    from nasassist_plugins.predictor.training.suite_data import CONFIGS, read_checkpoint

    rows = []
    for name, config in CONFIGS.items():
        data = read_checkpoint(suite_dir / f"{name}.jsonl")
        if not data:
            continue
        seconds = np.array([r["seconds"] for r in data.values()])
        fb = np.array([r["fb_seconds"] for r in data.values() if r.get("fb_seconds")])
        rows.append({"config": name, "description": config.description, "n": len(data),
                     "suite_s": float(np.median(seconds)), "fb_s": float(np.median(fb)) if fb.size else math.nan,
                     "ratio": float(np.median(seconds) / np.median(fb)) if fb.size else math.nan})
    return rows


def _reduction_rows(suite_dir: Path, data_dir: str) -> list[dict[str, Any]]:
    """Spearman of every signal on the same architectures: proxy network vs benchmark-size network."""
    from scipy.stats import spearmanr

    from nasassist_plugins.predictor.training.suite_data import (
        CONFIGS,
        FAMILY_TARGETS,
        family_targets,
        read_checkpoint,
        signal_matrix,
    )
    from nasassist_plugins.predictor.fusion import anchor_weights
    from nasassist_plugins.predictor.training.fused import ANCHOR_CANDIDATES
    from nasassist_plugins.proxies.aggregate import log_rank_aggregate, signal_ranks
    from nasassist_plugins.proxies.suite import SUITE_SIGNALS

    rows = []
    for name, config in CONFIGS.items():
        if not name.endswith("-full"):
            continue
        full = read_checkpoint(suite_dir / f"{name}.jsonl")
        small = read_checkpoint(suite_dir / f"{config.family}.jsonl")
        keys = [k for k in full if k in small]
        if len(keys) < 20:
            continue
        task = FAMILY_TARGETS[config.family][0][0]
        y = family_targets(config.family, data_dir, keys)[task]
        ok = np.isfinite(y)
        for label, data in (("proxy network", small), ("benchmark network", full)):
            matrix = signal_matrix(data, keys, SUITE_SIGNALS)
            row = {"family": config.family, "task": task, "network": label, "n": int(ok.sum()),
                   "suite_s": float(np.median([data[k]["seconds"] for k in keys]))}
            for j, s in enumerate(SUITE_SIGNALS):
                x = np.where(np.isnan(matrix[ok, j]), -np.inf, matrix[ok, j])
                row[s] = float(spearmanr(x, y[ok])[0])
            for label, signals, weighting in ANCHOR_CANDIDATES:
                mask = np.array([s in signals for s in SUITE_SIGNALS])
                ranks = signal_ranks(matrix[ok])
                row[label] = float(spearmanr(log_rank_aggregate(ranks, anchor_weights(ranks, mask, weighting)), y[ok])[0])
            rows.append(row)
    return rows


def build(report: dict[str, Any], suite_dir: Path, data_dir: str) -> dict[str, Any]:
    table = report["table"]
    by_task: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in table:
        by_task[(row["family"], row["task"])][row["method"]] = row
    summary = []
    for (family, task), methods in by_task.items():
        baseline = max(methods[m]["spearman"] for m in SINGLE if m in methods and math.isfinite(methods[m]["spearman"]))
        fused = methods[FUSED]["spearman"]
        summary.append({"family": family, "task": task, "n": methods[FUSED]["n"], "fused": fused,
                        "best_simple": baseline, "margin": fused - baseline,
                        "novelty_mean": methods[FUSED].get("novelty_mean", math.nan)})
    family_worst = {f: min(s["margin"] for s in summary if s["family"] == f) for f in {s["family"] for s in summary}}
    summary.sort(key=lambda s: (family_worst[s["family"]], s["margin"]))
    return {"summary": summary, "table": table, "settings": report.get("settings"), "coverage": report.get("coverage"),
            "folds": report.get("folds"), "timings": report.get("timings"), "cost": _cost_rows(suite_dir),
            "reduction": _reduction_rows(suite_dir, data_dir)}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| held-out task | method | n | Spearman | Kendall | NDCG@10 | P@top-10 % |", "|---|---|---|---|---|---|---|"]
    by_task: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in result["table"]:
        by_task[(row["family"], row["task"])].append(row)
    for s in result["summary"]:
        rows = sorted(by_task[(s["family"], s["task"])], key=lambda r: -(r["spearman"] if math.isfinite(r["spearman"]) else -9))
        for row in rows:
            name = f"**{row['method']}**" if row["method"] == FUSED else row["method"]
            lines.append(f"| {row['task']} | {name} | {row['n']} | {row['spearman']:.3f} | {row['kendall']:.3f} | "
                         f"{row['ndcg@10']:.4f} | {row['precision@10%']:.2f} |")
    head = ["| held-out task (worst family first) | n | fused Spearman | best of #params, FLOPs, single signals | margin "
            "(target ≥ +0.05) | mean novelty |", "|---|---|---|---|---|---|"]
    for s in result["summary"]:
        mark = "✓" if s["margin"] >= 0.05 else "✗"
        head.append(f"| {s['task']} | {s['n']} | {s['fused']:.3f} | {s['best_simple']:.3f} | {s['margin']:+.3f} {mark} | "
                    f"{s['novelty_mean']:.2f} |")
    cost = ["| suite configuration | n | suite s/arch (median) | forward+backward s/arch | ratio |", "|---|---|---|---|---|"]
    for c in result["cost"]:
        cost.append(f"| {c['config']}: {c['description']} | {c['n']} | {c['suite_s']:.3f} | {c['fb_s']:.3f} | "
                    f"{c['ratio']:.2f}x |")
    red = []
    if result["reduction"]:
        from nasassist_plugins.predictor.training.fused import ANCHOR_CANDIDATES
        from nasassist_plugins.proxies.suite import SUITE_SIGNALS

        columns = list(SUITE_SIGNALS) + [c[0] for c in ANCHOR_CANDIDATES]
        red = ["| family / task | network | n | s/arch | " + " | ".join(columns) + " |",
               "|---" * (4 + len(columns)) + "|"]
        for r in result["reduction"]:
            red.append(f"| {r['family']} / {r['task']} | {r['network']} | {r['n']} | {r['suite_s']:.2f} | "
                       + " | ".join(f"{r[c]:.3f}" for c in columns) + " |")
    return "\n".join(["### Summary", "", *head, "", "### All methods", "", *lines, "", "### Cost per architecture",
                      "", *cost, "", "### Proxy networks vs benchmark networks (Spearman on the same architectures)",
                      "", *red, ""])


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    x = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(summary)), 4.5))
    ax.bar(x - 0.2, [s["best_simple"] for s in summary], 0.4, label="best of #params, FLOPs, single signals")
    ax.bar(x + 0.2, [s["fused"] for s in summary], 0.4, label="fused (leave-family-out)")
    ax.set_xticks(x, [s["task"] for s in summary], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Spearman")
    ax.set_title("Zero-shot ranking per held-out task (worst family first)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, required=True, help="fused_report.json from `nasassist train --fused`")
    parser.add_argument("--suite", type=Path, default=RESULTS / "suite")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--out", type=Path, default=RESULTS / "predictor_zero_shot")
    args = parser.parse_args(argv)
    result = build(json.loads(args.report.read_text()), args.suite, args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    plot(result, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
