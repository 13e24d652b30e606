"""Graph extraction speed: ``from_torch`` per model, and the NAS-Bench-201 graph cache.

Measures

* for a NAS-Bench-201 network, a ResNet-18 (torchvision's architecture, written out here
  because torchvision is not a dependency) and a small ``nn.TransformerEncoder`` model,
  side by side in one loop (interleaved, so machine load hits all alike): one plain
  forward pass (``torch.no_grad``, eval mode), ``from_torch`` with the one-pass tracer
  (the default), and the previous two-step path (``torch.fx`` symbolic trace + a
  shape-recording forward; torchview where fx cannot trace), with medians, the ratio
  trace / forward, and whether the two graphs are equal;
* where the NB201 extraction time goes (``--profile``: cProfile of the main phases);
* the time to trace and cache all 15,625 NB201 graphs, the cache's size on disk, the
  time to open it again and the time to decode every graph from it
  (``--skip-cache-build`` omits this; it takes minutes).

Usage::

    python benchmarks/graph_extraction.py --data ../shared/data --repeats 20 \\
        --out benchmarks/results/graph_extraction.json [--skip-cache-build] [--profile]

Targets: tracing at most 3x one forward pass of the same model, and at most 20 ms for
the NB201 network on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from nasassist_plugins.adapters.cells import nb201_network
from nasassist_plugins.adapters.torch_adapter import from_torch

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TARGET_NB201_MS = 20.0
TARGET_RATIO = 3.0


# ----------------------------------------------------------------------------- models
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 (11.7M parameters for 1000 classes)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SmallTransformer(nn.Module):
    """Token projection, 2-layer ``nn.TransformerEncoder`` (d=64, 4 heads), mean pool, head."""

    def __init__(self, d_model: int = 64, nhead: int = 4, layers: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(32, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=4 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "nb201_network": (lambda: nb201_network(NB201_ARCH), (1, 3, 32, 32)),
    "resnet18": (ResNet18, (1, 3, 224, 224)),
    "transformer_encoder": (SmallTransformer, (1, 16, 32)),
}


# ----------------------------------------------------------------------------- measuring
def _old_path(model: nn.Module, shape: tuple[int, ...]) -> Any:
    try:
        return from_torch(model, shape, method="fx")
    except Exception:  # noqa: BLE001 - fx cannot trace it: the old fallback
        return from_torch(model, shape, method="torchview")


def time_extraction(model: nn.Module, shape: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """Forward pass, one-pass trace and the previous path, interleaved ``repeats`` times."""
    example = torch.randn(shape)
    graph, old = from_torch(model, example), _old_path(model, example)  # warm-up; tracers and sizes
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(example)

    runs: dict[str, list[float]] = {"forward": [], "one_pass": [], "previous_path": []}
    cpu: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, call in (("forward", forward), ("one_pass", lambda: from_torch(model, example)),
                            ("previous_path", lambda: _old_path(model, example))):
            t0, c0 = time.perf_counter(), time.thread_time()
            call()
            runs[label].append((time.perf_counter() - t0) * 1000)
            cpu[label].append((time.thread_time() - c0) * 1000)
    median = {label: statistics.median(times) for label, times in runs.items()}
    cpu_median = {label: statistics.median(times) for label, times in cpu.items()}
    same = graph.to_dict()["nodes"] == old.to_dict()["nodes"] and graph.edges == old.edges
    return {
        "input_shape": list(shape),
        "tracer": graph.metadata.get("tracer"),
        "previous_tracer": old.metadata.get("tracer"),
        "equal_to_previous_graph": same,
        "nodes": graph.num_nodes,
        "edges": graph.num_edges,
        "parameters": graph.num_parameters,
        "repeats": repeats,
        "median_ms": median["one_pass"],
        "min_ms": min(runs["one_pass"]),
        "p90_ms": sorted(runs["one_pass"])[min(repeats - 1, int(0.9 * repeats))],
        "forward_median_ms": median["forward"],
        "previous_path_median_ms": median["previous_path"],
        "trace_over_forward": median["one_pass"] / median["forward"],
        "previous_over_forward": median["previous_path"] / median["forward"],
        # CPU time of this thread: what the wall time would be on an idle core (the machine is shared)
        "cpu_median_ms": cpu_median["one_pass"],
        "forward_cpu_median_ms": cpu_median["forward"],
        "previous_path_cpu_median_ms": cpu_median["previous_path"],
        "trace_over_forward_cpu": cpu_median["one_pass"] / cpu_median["forward"],
    }


_PHASES = {
    # label: (file suffix, function name) in cProfile's table
    "the model's forward (under the tracer)": ("cells/nb201.py", "forward"),
    "  of which conv2d kernels": ("~", "<built-in method torch.conv2d>"),
    "  of which batch_norm kernels": ("~", "<built-in method torch.batch_norm>"),
    "layer nodes (OnePassTracer: leaf wrapper)": ("_torch_trace.py", "leaf"),
    "functional nodes (OnePassTracer.__torch_function__)": ("_torch_trace.py", "__torch_function__"),
    "  of which ComputationalGraph.add_node/add_edge": ("computational_graph.py", "add_node|add_edge"),
    "validation (_checked)": ("torch_adapter.py", "_checked"),
    "from_torch total": ("torch_adapter.py", "from_torch"),
}


def profile_nb201(repeats: int) -> dict[str, Any]:
    """cProfile of from_torch on the NB201 network: cumulative seconds per phase."""
    model = nb201_network(NB201_ARCH)
    from_torch(model, (1, 3, 32, 32))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        from_torch(model, (1, 3, 32, 32))
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    phases: dict[str, float] = {}
    for label, (suffix, func) in _PHASES.items():
        total = 0.0
        for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.items():
            if name in func.split("|") and filename.replace("\\", "/").endswith(suffix):
                total += ct
        phases[label] = total / repeats * 1000
    top = sorted(
        ((ct / repeats * 1000, f"{Path(fn).name}:{ln}({name})") for (fn, ln, name), (_c, _n, _t, ct, _k) in stats.items()),
        reverse=True,
    )[:25]
    return {"per_call_ms_under_profiler": phases, "top_cumulative_ms": [[label, ms] for ms, label in top]}


def time_builder(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        nb201_network(NB201_ARCH)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def cache_build(data: Path, cache_dir: Path | None, n_jobs: int) -> dict[str, Any]:
    from nasassist_plugins.families import load_family

    temporary = cache_dir is None
    directory = Path(tempfile.mkdtemp(prefix="nasassist-cache-")) if temporary else cache_dir
    try:
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        family = load_family("nb201", data, cache_dir=directory, n_jobs=n_jobs, progress=True)
        build_s, build_cpu_s = time.perf_counter() - t0, _cpu_seconds() - cpu0
        info = dict(family.metadata["cache"])
        path = Path(info["cache_path"])
        t0 = time.perf_counter()
        again = load_family("nb201", data, cache_dir=directory, progress=False)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        nodes = sum(g.num_nodes for g in again.graphs)
        decode_s = time.perf_counter() - t0
        return {
            "graphs": len(family),
            "built": info["built"],
            "n_jobs": n_jobs,
            "build_and_cache_s": build_s,
            # CPU seconds of this process and its (finished) workers: on a shared machine
            # the wall time depends on other load, the CPU time hardly does.
            "build_cpu_s": build_cpu_s,
            "cpu_ms_per_graph": build_cpu_s / max(1, info["built"]) * 1000,
            "projected_wall_s_on_idle_cores": build_cpu_s / max(1, n_jobs),
            "cache_file": str(path) if not temporary else path.name,
            "cache_size_mb": path.stat().st_size / 2**20,
            "load_from_cache_s": load_s,
            "decode_all_graphs_s": decode_s,
            "total_nodes": nodes,
        }
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


# ----------------------------------------------------------------------------- output
def print_table(results: dict[str, Any]) -> None:
    rows = [
        (name, r["tracer"], f"{r['nodes']}", f"{r['forward_median_ms']:.1f}", f"{r['median_ms']:.1f}",
         f"{r['trace_over_forward']:.2f}", f"{r['forward_cpu_median_ms']:.1f} / {r['cpu_median_ms']:.1f}",
         f"{r['previous_path_median_ms']:.1f} ({r['previous_tracer']})", f"{r['previous_over_forward']:.2f}",
         "yes" if r["equal_to_previous_graph"] else "no")
        for name, r in results["extraction"].items()
    ]
    columns = ("model", "tracer", "nodes", "forward ms", "trace ms", "trace/forward", "CPU ms fwd / trace",
               "previous path ms", "previous/forward", "same graph")
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="from_torch extraction time (medians, interleaved)")
        for col in columns:
            table.add_column(col, justify="left" if col in ("model", "tracer", "previous path ms") else "right")
        for row in rows:
            table.add_row(*row)
        Console(width=160).print(table)
    except ImportError:  # pragma: no cover
        print(" | ".join(columns))
        for row in rows:
            print(" | ".join(row))
    nb = results["extraction"]["nb201_network"]
    worst = max(r["trace_over_forward"] for r in results["extraction"].values())
    print(f"NB201 network: median {nb['median_ms']:.1f} ms wall, {nb['cpu_median_ms']:.1f} ms CPU "
          f"(target {TARGET_NB201_MS:.0f} ms on a quiet machine: "
          f"{'met' if nb['cpu_median_ms'] <= TARGET_NB201_MS else 'MISSED'} as CPU time); "
          f"{results['nb201_network_construction_ms']:.1f} ms to construct the network")
    print(f"worst trace/forward {worst:.2f} (target {TARGET_RATIO:.0f}x: {'met' if worst <= TARGET_RATIO else 'MISSED'})")
    if "nb201_profile" in results:
        print("Where the NB201 extraction time goes (cProfile, ms per call, profiler overhead included):")
        for label, ms in results["nb201_profile"]["per_call_ms_under_profiler"].items():
            print(f"  {label:40} {ms:8.1f}")
    cache = results.get("nb201_cache")
    if cache:
        print(
            f"NB201 cache: {cache['graphs']} graphs built and cached in {cache['build_and_cache_s']:.0f} s "
            f"(n_jobs={cache['n_jobs']}; {cache['cpu_ms_per_graph']:.0f} CPU-ms per graph, i.e. "
            f"~{cache['projected_wall_s_on_idle_cores'] / 60:.1f} min on {cache['n_jobs']} idle cores), "
            f"{cache['cache_size_mb']:.1f} MB on disk, "
            f"reloaded in {cache['load_from_cache_s']:.2f} s, all graphs decoded in {cache['decode_all_graphs_s']:.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="benchmark data folder")
    parser.add_argument("--repeats", type=int, default=20, help="timed from_torch calls per model")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/graph_extraction.json"))
    parser.add_argument("--skip-cache-build", action="store_true", help="omit building the 15,625-graph NB201 cache")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="build the NB201 cache here (default: a temporary folder, i.e. a cold build)")  # fmt: skip
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes for the cache build")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads while timing from_torch")
    parser.add_argument("--profile", action="store_true", help="also break the NB201 extraction time down (cProfile)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(),
        },
        "target_nb201_median_ms": TARGET_NB201_MS,
        "extraction": {},
    }
    for name, (factory, shape) in MODELS.items():
        results["extraction"][name] = time_extraction(factory(), shape, args.repeats)
        print(f"{name}: {results['extraction'][name]['median_ms']:.1f} ms", file=sys.stderr)
    results["nb201_network_construction_ms"] = time_builder(args.repeats)
    if args.profile:
        results["nb201_profile"] = profile_nb201(max(5, args.repeats // 2))
    if not args.skip_cache_build:
        results["nb201_cache"] = cache_build(args.data, args.cache_dir, args.n_jobs)
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
