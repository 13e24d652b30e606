"""Fit and evaluate the device latency predictor on NAS-Bench-201 (HELP + HW-NAS-Bench tables).

    python benchmarks/latency_predictor.py --data ../shared/data            # evaluate + write package data
    python benchmarks/latency_predictor.py --data ../shared/data --no-write # evaluate only

Devices: HELP's 27 device/batch settings (``hw/nb201_latency_ms.csv``) and HW-NAS-Bench's edge GPU
(Jetson TX2) and Edge TPU latencies (``hw/hwnasbench_nb201_cifar10.csv``; −1 = missing). HW-NAS-Bench's
Raspberry Pi 4, Pixel 3, Eyeriss and FPGA columns are the same measurements as HELP's and are not
used twice. Graphs are the traced NB201 networks (``nasassist_plugins.families``, cached).

Evaluations (Spearman's rho between predicted and measured latency over all 15,625 cells, the
adaptation cells excluded):

1. **leave-one-hardware-out**: for each target setting, the source models are fitted on every
   *other piece of hardware* (all batch sizes of the target GPU are held out with it), then the
   predictor is adapted with k = 0 (generic), 5, 10, 20 cells measured on the target, drawn at
   random (``--draws`` draws per k). Baselines: FLOPs, and a ridge regression on the graph
   features fitted on the same k cells only.
2. **HELP's split**: sources = HELP's meta-training and meta-validation devices, targets = its six
   meta-test devices, k = 10, next to HELP's published Table 3 (10 samples).
3. **within device** (the shipped predictor's own devices): 5-fold cross-validation over cells.

Then the predictor is fitted on every device and every cell and written to
``nasassist_plugins/hardware/data/latency_nb201.json`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

GPU_FAMILIES = ("1080ti", "2080ti", "titan_rtx", "titanxp", "titanx")
HELP_TRAIN = ("1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
              "essential_ph_1", "samsung_s7", "titanx_1", "titanx_32", "titanx_256", "gold_6240")  # fmt: skip
HELP_TEST = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
#: HELP's Table 3 (NB201, 10 samples from the target device), from github.com/HayeonLee/HELP README.
HELP_TABLE3 = {"titan_rtx_256": 0.987, "gold_6226": 0.989, "fpga": 0.985, "pixel2": 0.802, "raspi4": 0.890,
               "eyeriss": 0.940}  # fmt: skip
HELP_FLOPS = {"titan_rtx_256": 0.950, "gold_6226": 0.826, "fpga": 0.900, "pixel2": 0.765, "raspi4": 0.846,
              "eyeriss": 0.437}  # fmt: skip
KS = (5, 10, 20)
PACKAGE_FILE = Path(__file__).resolve().parents[1] / "nasassist_plugins" / "hardware" / "data" / "latency_nb201.json"


def hardware_of(device: str) -> str:
    for family in GPU_FAMILIES:
        if device.startswith(family + "_"):
            return family
    return device


def load_tables(data: str, limit: int | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    import pandas as pd

    help_table = pd.read_csv(Path(data) / "hw" / "nb201_latency_ms.csv")
    hw = pd.read_csv(Path(data) / "hw" / "hwnasbench_nb201_cifar10.csv")
    if not (help_table["arch_str"].values == hw["arch_str"].values).all():
        raise SystemExit("HELP and HW-NAS-Bench tables list the NB201 cells in different orders")
    rows = slice(0, limit)
    latencies = {c: help_table[c].to_numpy(dtype=np.float64)[rows] for c in help_table.columns[2:]}
    for device in ("edgegpu", "edgetpu"):
        values = hw[f"{device}_latency"].to_numpy(dtype=np.float64)[rows]
        latencies[device] = np.where(values > 0, values, np.nan)
    return list(help_table["arch_str"])[rows], latencies


def load_features(data: str, archs: list[str], cache: Path | None) -> np.ndarray:
    from nasassist_plugins.families import load_family
    from nasassist_plugins.hardware import FEATURE_NAMES, hardware_feature_matrix

    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if stored["x"].shape == (len(archs), len(FEATURE_NAMES)) and list(stored["names"]) == list(FEATURE_NAMES):
            return stored["x"]
    family = load_family("nb201", data, n_jobs=1, limit=len(archs))  # the table's first rows (a random order)
    row = {arch: i for i, arch in enumerate(family.specs)}
    from tqdm.auto import tqdm

    x = hardware_feature_matrix(tqdm((family.graphs[row[a]] for a in archs), total=len(archs), desc="features",
                                     mininterval=10))  # fmt: skip
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=x, names=np.asarray(FEATURE_NAMES))
    return x


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def evaluate_transfer(x: np.ndarray, latencies: dict[str, np.ndarray], targets: list[str], sources_of, draws: int,
                      seed: int) -> dict[str, Any]:  # fmt: skip
    from nasassist_plugins.hardware import FEATURE_NAMES, LatencyPredictor

    flops = x[:, FEATURE_NAMES.index("all_flops")]
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for target in targets:
        y = latencies[target]
        ok = np.flatnonzero(np.isfinite(y) & (y > 0))
        sources = sources_of(target)
        predictor = LatencyPredictor().fit(x, {d: latencies[d] for d in sources})
        row: dict[str, Any] = {"sources": len(sources), "flops": spearman(flops[ok], y[ok]),
                               "k0": spearman(predictor.predict_log(x[ok], "generic")[0], y[ok])}  # fmt: skip
        for k in KS:
            ours, direct = [], []
            for _ in range(draws):
                sample = rng.choice(ok, size=k, replace=False)
                rest = np.setdiff1d(ok, sample)
                adapted = predictor.adapt(x[sample], y[sample], device="target")
                ours.append(spearman(adapted.predict_log(x[rest])[0], y[rest]))
                alone = LatencyPredictor(alpha=10.0).fit(x[sample], {"target": y[sample]})
                direct.append(spearman(alone.predict_log(x[rest], "target")[0], y[rest]))
            row[f"k{k}"] = float(np.mean(ours))
            row[f"k{k}_p10"] = float(np.percentile(ours, 10))
            row[f"k{k}_direct"] = float(np.mean(direct))
        out[target] = row
        print(f"  {target:15s} flops {row['flops']:.3f}  k0 {row['k0']:.3f}  "
              + "  ".join(f"k{k} {row[f'k{k}']:.3f} (direct {row[f'k{k}_direct']:.3f})" for k in KS), flush=True)
    return out


def evaluate_within(x: np.ndarray, latencies: dict[str, np.ndarray], seed: int) -> dict[str, float]:
    from nasassist_plugins.hardware import LatencyPredictor

    rng = np.random.default_rng(seed)
    folds = rng.integers(0, 5, size=x.shape[0])
    out = {}
    for device, y in latencies.items():
        pred = np.full(y.shape, np.nan)
        for f in range(5):
            train, test = folds != f, folds == f
            p = LatencyPredictor().fit(x[train], {device: y[train]})
            pred[test] = p.predict_log(x[test], device)[0]
        ok = np.isfinite(y) & (y > 0)
        out[device] = spearman(pred[ok], y[ok])
    return out


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    lodo = results["leave_one_hardware_out"]
    order = sorted(lodo, key=lambda d: lodo[d]["k20"])
    lines = ["# Device latency predictor on NAS-Bench-201", "",
             f"Spearman's rho over {results['cells']:,} NB201 cells (adaptation cells excluded); {args.draws} random draws of "
             "the k measured cells per entry (mean; p10 = 10th percentile over draws).", "",
             "## Leave one piece of hardware out (worst first)", "",
             "| target | FLOPs | k=0 (generic) | k=5 | k=10 | k=20 (p10) | ridge on the k=20 only |",
             "|---|---|---|---|---|---|---|"]
    for d in order:
        r = lodo[d]
        lines.append(f"| {d} | {r['flops']:.3f} | {r['k0']:.3f} | {r['k5']:.3f} | {r['k10']:.3f} | "
                     f"{r['k20']:.3f} ({r['k20_p10']:.3f}) | {r['k20_direct']:.3f} |")
    means = {c: np.mean([lodo[d][c] for d in lodo]) for c in ("flops", "k0", "k5", "k10", "k20", "k20_direct")}
    lines.append(f"| **mean of {len(lodo)}** | {means['flops']:.3f} | {means['k0']:.3f} | {means['k5']:.3f} | "
                 f"{means['k10']:.3f} | {means['k20']:.3f} | {means['k20_direct']:.3f} |")
    reached = [d for d in lodo if lodo[d]["k20"] >= 0.9]
    lines += ["", f"Spearman >= 0.9 after 20 measurements: {len(reached)} of {len(lodo)} settings.", "",
              "## HELP's split (sources: its 13 meta-train/valid settings; 10 target measurements)", "",
              "| target | FLOPs (HELP's table) | HELP, 10 samples (published) | ours, k=10 | ours, k=20 |",
              "|---|---|---|---|---|"]
    split = results["help_split"]
    for d in HELP_TEST:
        lines.append(f"| {d} | {HELP_FLOPS[d]:.3f} | {HELP_TABLE3[d]:.3f} | {split[d]['k10']:.3f} | {split[d]['k20']:.3f} |")
    lines.append(f"| **mean** | {np.mean(list(HELP_FLOPS.values())):.3f} | {np.mean(list(HELP_TABLE3.values())):.3f} | "
                 f"{np.mean([split[d]['k10'] for d in HELP_TEST]):.3f} | {np.mean([split[d]['k20'] for d in HELP_TEST]):.3f} |")
    within = results["within_device"]
    lines += ["", "## The shipped predictor's own devices (5-fold cross-validation over cells)", "",
              "| device | Spearman |", "|---|---|"]
    for d in sorted(within, key=within.get):
        lines.append(f"| {d} | {within[d]:.3f} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lodo = results["leave_one_hardware_out"]
    order = sorted(lodo, key=lambda d: lodo[d]["k20"])
    fig, ax = plt.subplots(figsize=(12, 4.2))
    xs = np.arange(len(order))
    for key, label, marker in (("flops", "FLOPs", "x"), ("k0", "k=0 (generic)", "v"), ("k5", "k=5", "s"),
                               ("k10", "k=10", "D"), ("k20", "k=20", "o"), ("k20_direct", "ridge on 20 only", "+")):
        ax.plot(xs, [lodo[d][key] for d in order], marker=marker, ls="", label=label)
    ax.axhline(0.9, color="k", lw=0.8, ls="--")
    ax.set_xticks(xs, order, rotation=70, fontsize=7)
    ax.set_ylabel("Spearman (held-out hardware)")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=7, ncol=6, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--limit", type=int, help="use the first N cells of the tables (NB201's index order is random)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features-cache", type=Path, default=Path("build/nb201_hardware_features.npz"))
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="latency_predictor")
    parser.add_argument("--no-write", action="store_true", help="do not write the package data file")
    args = parser.parse_args()
    started = time.perf_counter()
    archs, latencies = load_tables(args.data, args.limit)
    x = load_features(args.data, archs, args.features_cache)
    devices = list(latencies)
    print("leave one piece of hardware out:", flush=True)
    lodo = evaluate_transfer(x, latencies, devices, lambda t: [d for d in devices if hardware_of(d) != hardware_of(t)],
                             args.draws, args.seed)  # fmt: skip
    print("HELP's split:", flush=True)
    split = evaluate_transfer(x, latencies, list(HELP_TEST), lambda t: list(HELP_TRAIN), args.draws, args.seed)
    print("within device:", flush=True)
    within = evaluate_within(x, latencies, args.seed)
    results = {"cells": len(archs), "leave_one_hardware_out": lodo, "help_split": split, "within_device": within,
               "seconds": time.perf_counter() - started}  # fmt: skip
    text = markdown(results, args)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.md").write_text(text + "\n")
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out_dir / f"{args.name}.png")
    if not args.no_write:
        from nasassist_plugins.hardware import LatencyPredictor

        predictor = LatencyPredictor().fit(x, latencies)
        predictor.metadata = {
            "family": f"nb201 ({len(archs):,} cells, CIFAR-10 network, input 1x3x32x32)",
            "sources": "HELP nb201_latency_ms.csv (27 settings); HW-NAS-Bench edgegpu/edgetpu latency (MIT)",
            "fitted_by": "benchmarks/latency_predictor.py",
            "within_device_spearman_5fold": {d: round(v, 4) for d, v in within.items()},
        }
        PACKAGE_FILE.parent.mkdir(parents=True, exist_ok=True)
        predictor.save(PACKAGE_FILE)
        print(f"wrote {PACKAGE_FILE} ({PACKAGE_FILE.stat().st_size / 1024:.0f} KiB)")
    print(f"wrote {args.out_dir / args.name}.md/.json/.png in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
