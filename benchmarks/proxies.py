"""Benchmark our zero-cost proxies on real NAS-Bench-201 / NAS-Bench-101 networks.

For a random sample of cells from NASLib's proxy tables it builds the real network
(``nasassist_plugins.adapters.cells``), computes our proxies on one synthetic
CIFAR-shaped batch (the true data is not available; every cell sees the same
fixed-seed standard normal batch and random labels), and reports

(a) Spearman rank correlation between our value and NASLib's stored value of the same
    proxy (the data-independent ``params``/``flops``/``synflow`` should agree almost
    perfectly; the data-dependent ones see different data and a different random init);
(b) each proxy's zero-shot Spearman against the trained validation accuracy, ours and
    NASLib's stored values on the same cells (and stored on the whole table), beside the
    published NAS-Bench-Suite-Zero figures;
(c) mean wall time per architecture per proxy.

Data-dependent proxies cost one or more forward/backward passes of a batch each, so on
a few CPU cores they dominate the run time: ``--n`` cells get every proxy, and
``--n-cheap`` (default ``--n``) cells get the data-independent ``params``, ``flops`` and
``synflow``; likewise ``--n101``/``--n101-cheap`` for NB101 (NASLib's 292 distinct
cells first, then cells of the 30k labelled extract). Every finished cell is appended
to a JSON-lines checkpoint (``--checkpoint``), so a run resumes where it stopped, a
later run with more ``--proxies`` adds only the missing ones, and ``--shard i/k`` splits
the cells over k processes; a final run without a shard gathers everything. With
``--weights`` a predictor row is added per space (Spearman on the same cells and the
median model-to-score time). Writes a JSON summary, a Markdown table, a compact
``*_cells.json`` with every per-cell value, prints a table and writes a PNG bar chart.
At ``--batch-size 16`` on one CPU thread a NB201 cell takes ~5 s with every proxy and a
NB101 cell ~15-25 s (grasp alone about 40 %).

The figures in the README came from (two processes per space for NB101)::

    python benchmarks/proxies.py --spaces nb201 --n 500 --batch-size 16
    python benchmarks/proxies.py --spaces nb101 --n101 500 --batch-size 16 --shard 0/2   # and --shard 1/2
    python benchmarks/proxies.py --n 500 --n101 500 --batch-size 16 \
        --weights benchmarks/results/predictor_nb101.safetensors --out benchmarks/results/proxies.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from nasassist_plugins.proxies import available_proxies, run_proxies

#: Proxies that only read the input shape and are cheap (one sample or no forward at all).
CHEAP = ("params", "flops", "synflow")
#: NASLib writes this for a failed proxy.
NASLIB_FAILED = -1e8
#: Spearman vs validation accuracy on NB201 CIFAR-10 published in NAS-Bench-Suite-Zero
#: (Krishnakumar et al., NeurIPS 2022 Datasets & Benchmarks), as given in the task brief.
PUBLISHED_NB201_C10 = {"nwot": 0.77, "synflow": 0.73}
NB201_CSV = Path("nb201") / "nb201_cifar10_zc_proxies_valacc.csv"
NB101_CSV = Path("nb101") / "nb101_cifar10_zc.csv"
NB101_LABELLED_CSV = Path("nb101") / "nb101_30k_with_arch.csv"


# ----------------------------------------------------------------------------- data
def _floats(row: dict[str, str], names: Iterable[str]) -> dict[str, float]:
    """The numeric columns of a row (NaN for empty cells and NASLib's failure marker)."""
    out = {}
    for name in names:
        text = row.get(name)
        try:
            value = float(text) if text not in (None, "") else math.nan
        except ValueError:
            continue  # a text column (arch string, adjacency)
        out[name] = math.nan if value <= NASLIB_FAILED / 10 else value
    return out


def _load_nb201(data: Path) -> list[dict[str, Any]]:
    path = data / NB201_CSV
    if not path.is_file():
        raise SystemExit(f"missing {path} (pass --data pointing at the shared benchmark data)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "key": r["arch_str"],
            "arch_str": r["arch_str"],
            "val_acc": float(r["val_accs"]),
            "stored": _floats(r, r.keys()),
        }
        for r in rows
    ]


def _load_nb101(data: Path, extra: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """One record per distinct cell: NASLib's proxy table, plus ``extra`` labelled cells.

    NASLib's table has 292 distinct cells (``nb101_hash``; duplicates' stored values are
    averaged) with stored proxies. To reach more architectures, ``extra`` further cells
    are drawn (fixed seed) from the 30k labelled extract, without stored proxies; their
    108-epoch validation accuracy (0..1) is put on NASLib's percent scale.
    """
    path = data / NB101_CSV
    if not path.is_file():
        raise SystemExit(f"missing {path} (pass --data pointing at the shared benchmark data)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[r["nb101_hash"]].append(r)
    records = []
    for key, members in groups.items():
        stored_rows = [_floats(r, r.keys()) for r in members]
        stored = {name: _nanmean([s[name] for s in stored_rows]) for name in stored_rows[0]}
        first = members[0]
        records.append(
            {
                "key": key,
                "adjacency": json.loads(first["adjacency"]),
                "ops": json.loads(first["ops"]),
                "val_acc": stored["val_accuracy"],
                "stored": stored,
                "duplicates": len(members),
                "source": "naslib_zc",
            }
        )
    if extra > 0:
        labelled = data / NB101_LABELLED_CSV
        if not labelled.is_file():
            raise SystemExit(f"missing {labelled} (needed for --n101 above {len(records)})")
        with labelled.open(newline="") as fh:
            candidates = [r for r in csv.DictReader(fh) if r["hash"] not in groups]
        picked = np.random.default_rng(seed).permutation(len(candidates))[:extra]
        for i in picked:
            r = candidates[int(i)]
            records.append(
                {
                    "key": r["hash"],
                    "adjacency": json.loads(r["adjacency"]),
                    "ops": json.loads(r["ops"]),
                    "val_acc": 100.0 * float(r["val_acc_108"]),
                    "stored": {},
                    "duplicates": 1,
                    "source": "nb101_30k",
                }
            )
    return records


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _builders() -> dict[str, Callable[[dict[str, Any]], torch.nn.Module]]:
    from nasassist_plugins.adapters.cells import nb101_network, nb201_network

    return {
        "nb201": lambda rec: nb201_network(rec["arch_str"]),
        "nb101": lambda rec: nb101_network(rec["adjacency"], rec["ops"]),
    }


# ----------------------------------------------------------------------------- scoring
def _score_space(
    space: str,
    records: list[dict[str, Any]],
    n_full: int,
    build: Callable[[dict[str, Any]], torch.nn.Module],
    names: list[str],
    batch: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    checkpoint: Path | None = None,
    shard: tuple[int, int] = (0, 1),
    gather_only: bool = False,
) -> list[dict[str, Any]]:
    """Our proxies for every record (all ``names`` for the first ``n_full``, CHEAP ones after).

    Each finished cell is appended to ``checkpoint`` (JSON lines); proxies already there
    for a cell are not recomputed, so an interrupted run resumes and a later run with more
    proxies adds only the missing ones. With
    ``shard=(i, k)`` only every k-th cell from the i-th is scored, so k processes sharing
    one checkpoint split the work; a last run without a shard gathers them. With
    ``gather_only`` nothing is computed: cells and proxies missing from the checkpoint
    are left out (each proxy's row reports its own number of cells).
    """
    cheap = [n for n in names if n in CHEAP]
    done = _read_checkpoint(checkpoint, space)
    results = []
    bar = tqdm(records, desc=f"{space} cells", unit="cell", dynamic_ncols=True)
    for i, rec in enumerate(bar):
        if i % shard[1] != shard[0]:
            continue
        wanted = names if i < n_full else cheap
        previous = done.get(rec["key"])
        missing = [n for n in wanted if previous is None or n not in previous["ours"]]
        if not missing or gather_only:
            if previous is not None:
                results.append(previous)
            continue
        torch.manual_seed(seed + i)  # the random init of this cell
        model = build(rec)
        start = time.perf_counter()
        runs = run_proxies(model, *batch, names=missing, progress=False, seed=seed)
        result = {
            "space": space,
            "key": rec["key"],
            "source": rec.get("source", space),
            "val_acc": rec["val_acc"],
            "ours": {r.name: r.value for r in runs},
            "seconds": {r.name: r.seconds for r in runs},
            "errors": {r.name: r.error for r in runs if r.error},
            "stored": {n: rec["stored"].get(n, math.nan) for n in names},
        }
        if checkpoint is not None:
            with checkpoint.open("a") as fh:
                fh.write(json.dumps(_clean(result), separators=(",", ":")) + "\n")
        results.append(_merge_cell(previous, result) if previous is not None else result)
        bar.set_postfix_str(f"{time.perf_counter() - start:.1f}s/cell")
    return results


def _merge_cell(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One cell's record from two runs that computed different proxies (later values win)."""
    merged = dict(new)
    for field in ("ours", "seconds", "errors", "stored"):
        merged[field] = {**old.get(field, {}), **new.get(field, {})}
    return merged


def _read_checkpoint(path: Path | None, space: str) -> dict[str, dict[str, Any]]:
    """Cells of ``space`` already scored in an earlier (interrupted) run, by key."""
    if path is None or not path.is_file():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            cell = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the interruption
        if cell.get("space") == space:
            for field in ("ours", "stored"):
                cell[field] = {k: (math.nan if v is None else v) for k, v in cell[field].items()}
            key = cell["key"]
            done[key] = _merge_cell(done[key], cell) if key in done else cell
    return done


def cell_graphs(space: str, keys: list[str], data: Path, records: dict[str, dict[str, Any]] | None = None) -> list:
    """Traced graphs of benchmark cells: NB201 from the family cache, NB101 traced from its specs.

    ``records`` (NB101 records by key) saves re-reading the NB101 tables when the caller has them.
    """
    from nasassist_plugins.families import load_family, spec_graph

    if space == "nb201":
        family = load_family("nb201", data, variant="zc-cifar10", progress=False)
        index = {spec: i for i, spec in enumerate(family.specs)}
        return [family.graphs[index[k]] for k in keys]
    records = records or {r["key"]: r for r in _load_nb101(data, extra=100_000, seed=0)}
    return [spec_graph("nb101", (records[k]["adjacency"], records[k]["ops"])) for k in keys]


def _predictor_row(
    space: str, results: list[dict[str, Any]], weights: Path, data: Path, build: Callable, timed: int
) -> dict[str, Any]:
    """The predictor beside the proxies: Spearman on the same cells, and model-to-score time.

    The time is the median over ``timed`` cells of tracing the built network and predicting
    it alone (what scoring one new candidate costs), like the proxies' per-cell times.
    """
    from nasassist_plugins.adapters import from_torch
    from nasassist_plugins.predictor import Predictor

    predictor = Predictor.load(weights)
    keys = [r["key"] for r in results]
    records = {r["key"]: r for r in (_load_nb201(data) if space == "nb201" else _load_nb101(data, extra=100_000))}
    mean, _ = predictor.predict(cell_graphs(space, keys, data, records if space == "nb101" else None))
    rho, n = _spearman(list(mean), [r["val_acc"] for r in results])
    example = torch.randn(1, 3, 32, 32)
    seconds = []
    for key in keys[:timed]:
        model = build(records[key])
        start = time.perf_counter()
        predictor.predict([from_torch(model, example)])
        seconds.append(time.perf_counter() - start)
    families = predictor.training_info.get("families") or []
    trained_on = "+".join(sorted({f["family"] for f in families})) or "?"
    return {
        "space": space,
        "proxy": "predictor",
        "predictor": f"{weights.name}, trained on {trained_on}",
        "n": n,
        "failed": 0,
        "ours_vs_stored": None,
        "ours_vs_val_acc": rho,
        "stored_vs_val_acc": None,
        "stored_vs_val_acc_all": None,
        "n_all": 0,
        "published_vs_val_acc": None,
        "mean_seconds": float(np.median(seconds)) if seconds else None,
    }


def _spearman(a: list[float], b: list[float]) -> tuple[float | None, int]:
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return None, len(pairs)
    xs, ys = zip(*pairs)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, len(pairs)
    rho = spearmanr(xs, ys).statistic
    return (float(rho) if math.isfinite(rho) else None), len(pairs)


def _summarise(
    space: str, results: list[dict[str, Any]], all_records: list[dict[str, Any]], names: list[str]
) -> list[dict[str, Any]]:
    """One row per proxy: Spearman correlations (ours/stored/accuracy), time, failures."""
    rows = []
    for name in names:
        scored = [r for r in results if name in r["ours"]]
        if not scored:
            continue
        ours = [r["ours"][name] for r in scored]
        stored = [r["stored"].get(name, math.nan) for r in scored]
        acc = [r["val_acc"] for r in scored]
        has_stored = any(math.isfinite(v) for v in stored)
        rho_os, n_os = _spearman(ours, stored)
        rho_oa, n_oa = _spearman(ours, acc)
        rho_sa, _ = _spearman(stored, acc)
        all_stored = [rec["stored"].get(name, math.nan) for rec in all_records]
        rho_sa_all, n_all = _spearman(all_stored, [rec["val_acc"] for rec in all_records])
        seconds = [r["seconds"][name] for r in scored]
        rows.append(
            {
                "space": space,
                "proxy": name,
                "n": len(scored),
                "failed": sum(1 for v in ours if not math.isfinite(v)),
                "ours_vs_stored": rho_os if has_stored else None,
                "ours_vs_val_acc": rho_oa,
                "stored_vs_val_acc": rho_sa if has_stored else None,
                "stored_vs_val_acc_all": rho_sa_all if has_stored else None,
                "n_all": n_all if has_stored else 0,
                "published_vs_val_acc": PUBLISHED_NB201_C10.get(name) if space == "nb201" else None,
                "mean_seconds": float(np.mean(seconds)) if seconds else None,
            }
        )
    return rows


# ----------------------------------------------------------------------------- output
def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_table(summary: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Zero-cost proxies: ours vs NASLib (Spearman rho)")
    columns = (
        "space", "proxy", "n", "ours~stored", "ours~val", "stored~val", "stored~val (all)", "published", "s/cell",
        "failed",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("space", "proxy") else "right")
    for row in summary:
        table.add_row(
            row["space"],
            row["proxy"],
            str(row["n"]),
            _fmt(row["ours_vs_stored"]),
            _fmt(row["ours_vs_val_acc"]),
            _fmt(row["stored_vs_val_acc"]),
            _fmt(row["stored_vs_val_acc_all"]),
            _fmt(row["published_vs_val_acc"], 2),
            _fmt(row["mean_seconds"], 2),
            str(row["failed"]),
        )
    Console(width=150).print(table)


def _markdown(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (Spearman rho; seconds per cell)."""
    lines = [
        "| space | proxy | n | ours vs stored | ours vs val. acc. | stored vs val. acc. (same cells) | published | s/cell |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        lines.append(
            f"| {row['space']} | {row['proxy']} | {row['n']} | {_fmt(row['ours_vs_stored'])} | "
            f"{_fmt(row['ours_vs_val_acc'])} | {_fmt(row['stored_vs_val_acc'])} | "
            f"{_fmt(row['published_vs_val_acc'], 2)} | {_fmt(row['mean_seconds'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def _plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Spearman bars per space, and a panel of mean seconds per cell per proxy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = list(dict.fromkeys(r["space"] for r in summary))
    fig, axes = plt.subplots(len(spaces) + 1, 1, figsize=(11, 3.8 * len(spaces) + 3.2), squeeze=False)
    series = [
        ("ours_vs_val_acc", "ours vs val. acc.", "#1f77b4"),
        ("stored_vs_val_acc", "NASLib stored vs val. acc. (same cells)", "#ff7f0e"),
        ("ours_vs_stored", "ours vs NASLib stored", "#2ca02c"),
    ]
    width = 0.26
    values_all = [r[key] for r in summary for key, _, _ in series if r[key] is not None]
    bottom = min(-0.25, min(values_all, default=0.0) - 0.1)
    for ax, space in zip(axes[:-1, 0], spaces):
        rows = [r for r in summary if r["space"] == space]
        x = np.arange(len(rows))
        for k, (key, label, color) in enumerate(series):
            values = [r[key] if r[key] is not None else np.nan for r in rows]
            ax.bar(x + (k - 1) * width, values, width, label=label, color=color)
        published = [
            (i, r["published_vs_val_acc"]) for i, r in enumerate(rows) if r["published_vs_val_acc"] is not None
        ]
        if published:
            ax.scatter(
                [i - width for i, _ in published], [v for _, v in published], marker="D", color="black", zorder=3,
                label="published vs val. acc. (NB-Suite-Zero)",
            )
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r['proxy']}\n(n={r['n']})" for r in rows], fontsize=8)
        ax.set_ylim(bottom, 1.05)
        ax.set_ylabel("Spearman rho")
        ax.set_title(f"{space.upper()} CIFAR-10: zero-cost proxies on a synthetic batch")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left", ncol=2)
    ax = axes[-1, 0]
    proxies = list(dict.fromkeys(r["proxy"] for r in summary))
    x = np.arange(len(proxies))
    step = 0.8 / len(spaces)
    for k, space in enumerate(spaces):
        times = {r["proxy"]: r["mean_seconds"] for r in summary if r["space"] == space}
        offsets = x + (k - (len(spaces) - 1) / 2) * step
        ax.bar(offsets, [times.get(p) or np.nan for p in proxies], step, label=space.upper())
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(proxies, fontsize=8)
    ax.set_ylabel("seconds per cell")
    ax.set_title("Mean time per architecture per proxy (CPU)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write(out: Path, payload: dict[str, Any], compact: bool = False) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if compact:
        out.write_text(json.dumps(_clean(payload), separators=(",", ":")))
    else:
        out.write_text(json.dumps(_clean(payload), indent=1) + "\n")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# ----------------------------------------------------------------------------- main
def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared benchmark data directory")
    p.add_argument("--n", type=int, default=500, help="NB201 cells that get every proxy")
    p.add_argument("--n-cheap", type=int, default=None, help="NB201 cells that get params/flops/synflow (default: --n)")
    p.add_argument("--spaces", default="nb201,nb101", help="comma-separated spaces to score")
    p.add_argument(
        "--n101",
        type=int,
        default=20,
        help="distinct NB101 cells that get every proxy (NASLib's 292 first, then cells of the 30k extract)",
    )
    p.add_argument(
        "--n101-cheap", type=int, default=None, help="distinct NB101 cells for params/flops/synflow (default: --n101)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="synthetic CIFAR batch size")
    p.add_argument("--proxies", nargs="+", default=None, help="proxies to compute (default: all)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared, busy CPU several OpenMP threads per "
        "process oversubscribe the cores and run 10x slower)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/proxies.json"))
    p.add_argument("--png", type=Path, default=None, help="bar chart (default: --out with .png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="JSON-lines file of finished cells, read to resume and appended to (default: --out with .jsonl)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="also score the cells with this predictor (Spearman and model-to-score time per cell)",
    )
    p.add_argument(
        "--gather-only",
        action="store_true",
        help="compute nothing: summarise the cells and proxies already in --checkpoint",
    )
    p.add_argument("--timed", type=int, default=20, help="cells timed for the predictor row")
    p.add_argument(
        "--shard", default="0/1", help="i/k: score every k-th cell from the i-th (k processes share --checkpoint)"
    )
    args = p.parse_args(argv)
    try:
        index, count = (int(part) for part in args.shard.split("/"))
        if not 0 <= index < count:
            raise ValueError
    except ValueError:
        p.error(f"--shard must look like i/k with 0 <= i < k, got {args.shard!r}")
    args.shard = (index, count)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = args.proxies or available_proxies()
    unknown = sorted(set(names) - set(available_proxies()))
    if unknown:
        raise SystemExit(f"unknown proxies {unknown}; available: {available_proxies()}")
    generator = torch.Generator().manual_seed(args.seed)
    batch = (
        torch.randn(args.batch_size, 3, 32, 32, generator=generator),
        torch.randint(0, 10, (args.batch_size,), generator=generator),
    )
    builders = _builders()
    spaces = [name for name in args.spaces.split(",") if name]
    unknown_spaces = sorted(set(spaces) - set(builders))
    if unknown_spaces:
        raise SystemExit(f"unknown spaces {unknown_spaces}; available: {sorted(builders)}")
    checkpoint = args.checkpoint or args.out.with_suffix(".jsonl")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    plan = []
    if "nb201" in spaces:
        plan.append(("nb201", _load_nb201(args.data), args.n, args.n_cheap))
    if "nb101" in spaces and (args.n101 > 0 or (args.n101_cheap or 0) > 0):
        records = _load_nb101(args.data)
        extra = max(args.n101, args.n101_cheap or 0) - len(records)
        if extra > 0:
            records = _load_nb101(args.data, extra=extra, seed=args.seed)
        plan.append(("nb101", records, args.n101, args.n101_cheap))
    started = time.perf_counter()
    summary: list[dict[str, Any]] = []
    per_cell: dict[str, list[dict[str, Any]]] = {}
    for space, records, n_full, n_cheap in plan:
        rng = np.random.default_rng(args.seed)
        total = min(len(records), max(n_full, n_cheap or 0))
        sample = [records[i] for i in rng.permutation(len(records))[:total]]
        results = _score_space(
            space, sample, min(n_full, total), builders[space], names, batch, args.seed, checkpoint, args.shard, args.gather_only
        )
        per_cell[space] = results
        summary += _summarise(space, results, records, names)
        if args.weights is not None:
            summary.append(_predictor_row(space, results, args.weights, args.data, builders[space], args.timed))
    if not summary:
        raise SystemExit(f"no cells scored (is {checkpoint} the checkpoint you meant?)")
    payload = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "settings": {
            "seed": args.seed,
            "batch": [args.batch_size, 3, 32, 32],
            "data": "synthetic standard normal inputs, uniform random labels (fixed seed)",
            "proxies": names,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.platform(),
            "wall_seconds": time.perf_counter() - started,
        },
        "published_source": "NAS-Bench-Suite-Zero (Krishnakumar et al., 2022), NB201 CIFAR-10, Spearman vs val. acc.",
        "summary": summary,
    }
    cells_path = args.out.with_name(args.out.stem + "_cells.json")
    payload["cells_file"] = cells_path.name
    _write(args.out, payload)
    _write(cells_path, per_cell, compact=True)
    png = args.png or args.out.with_suffix(".png")
    _plot(summary, png)
    _print_table(summary)
    args.out.with_suffix(".md").write_text(_markdown(summary))
    print(f"wrote {args.out} (+ .md), {cells_path} and {png} in {payload['settings']['wall_seconds']:.0f}s")
    return payload


if __name__ == "__main__":
    main()
