"""Sandbox escape suite and sandbox cost: every hostile payload, end to end, and honest builds timed.

Three parts, all on this machine in one run:

A. **Every payload** of ``tests/sandbox_payloads.py`` straight into the sandbox: the
   realistic ones through every layer (AST filter, restricted builtins, operating-system
   isolation), the ``raw`` ones with the Python-level checks switched off, so that only
   the operating system stands between them and the caller. For each: the verdict, the
   caller's wall time against the deadline + 5 s, the caller's memory growth against
   200 MB, and every canary (files, sockets, signals, a canary process, the environment,
   the canary key in the verdict, surviving sandbox processes).
B. **End to end through ``nasassist improve``** against a real OpenAI-compatible server on
   127.0.0.1 that answers with the realistic payloads one round after another, the canary
   key in the command's environment: the key must appear in no output, no written file
   and no request body (only in the ``Authorization`` header), the canaries must hold,
   and the command must finish.
C. **Honest builds**: for a few real models, the model's own forward pass in this process
   versus a sandboxed build of the same source (warm sandbox: fork, build, forward, trace,
   checks), and the one-off cost of starting a sandbox.

Usage::

    python benchmarks/sandbox_escape.py            # writes benchmarks/results/sandbox_escape.{json,png}

Prints one line per payload, then the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from nasassist_plugins.mutation import Sandbox, SandboxLimits, validate_source  # noqa: E402
from sandbox_payloads import (  # noqa: E402
    CANARY_KEY,
    KEY_NAME,
    PAYLOADS,
    Canaries,
    descendants,
    processes_of_uid,
    rss_mb,
    run_payload,
    substitute,
)

LIMITS = SandboxLimits(cpu_s=5, wall_s=5, startup_s=180, memory_mb=1024, max_params=20_000_000, max_result_mb=16)

HONEST_MODELS: dict[str, tuple[str, tuple[int, ...]]] = {
    "small CNN": ("""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv1 = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))
""", (1, 3, 32, 32)),
    "ResNet-18": ("""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers = []
        cin = 64
        for cout, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
            layers.append(Block(cin, cout, stride))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
""", (1, 3, 32, 32)),
    "MobileNetV2-style": ("""
import torch
import torch.nn as nn


class Inverted(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_res else y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6), (96, 1, 6),
               (160, 2, 6), (320, 1, 6)]
        blocks = []
        cin = 32
        for cout, stride, expand in cfg:
            blocks.append(Inverted(cin, cout, stride, expand))
            cin = cout
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))
""", (1, 3, 64, 64)),
    "Transformer encoder (6 layers)": ("""
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(64, 256)
        layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)
        self.head = nn.Linear(256, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))
""", (1, 128, 64)),
}


def _exec_trusted(source: str) -> Any:
    """Build one of *our* honest models in this process (for the in-process reference timings only)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<honest>", "exec"), namespace)  # noqa: S102 - our own benchmark models
    return namespace["Net"]


def honest_timings(repeats: int) -> list[dict[str, Any]]:
    from nasassist_plugins.adapters.torch_adapter import from_torch

    rows = []
    torch.set_num_threads(1)
    started = time.monotonic()
    sandbox = Sandbox(LIMITS)
    print(f"isolation: {sandbox.isolation.summary()}", flush=True)
    cold = time.monotonic() - started
    for name, (source, shape) in HONEST_MODELS.items():
        cls = _exec_trusted(source)
        forward, build = [], []
        for _ in range(repeats):
            torch.manual_seed(0)
            t0 = time.perf_counter()
            model = cls().eval()
            example = torch.randn(*shape)
            t1 = time.perf_counter()
            with torch.no_grad():
                model(example)
            t2 = time.perf_counter()
            from_torch(model, example, name="Net")
            t3 = time.perf_counter()
            forward.append(t2 - t1)
            build.append(t3 - t0)
        sandboxed = []
        for k in range(repeats):
            t0 = time.perf_counter()
            result = sandbox.check(source + "\n" * (k + 1), shape, entry="Net")  # a new source: no cache
            sandboxed.append(time.perf_counter() - t0)
            assert result.ok, (name, result.reason, result.detail)
        row = {"model": name, "params": result.num_params, "input_shape": list(shape),
               "forward_s": statistics.median(forward), "in_process_build_trace_s": statistics.median(build),
               "sandboxed_s": statistics.median(sandboxed), "sandboxed_max_s": max(sandboxed)}
        row["overhead_over_forward_s"] = row["sandboxed_s"] - row["forward_s"]
        row["overhead_over_in_process_s"] = row["sandboxed_s"] - row["in_process_build_trace_s"]
        rows.append(row)
        print(f"  {name:32s} forward {row['forward_s']:.3f} s, in-process build+trace {row['in_process_build_trace_s']:.3f} s,"
              f" sandboxed {row['sandboxed_s']:.3f} s (max {row['sandboxed_max_s']:.3f})", flush=True)
    sandbox.close()
    return [{"cold_start_s": cold}, *rows]


def part_a(canaries: Canaries) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    nobody_before = processes_of_uid(65534)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_start = rss_mb()
    boxes = {False: Sandbox(LIMITS), True: Sandbox(LIMITS, python_checks=False)}
    for box in boxes.values():
        if not box.isolation.strong:
            raise SystemExit(f"strong isolation unavailable: {box.isolation.summary()}")
    rows = []
    for k, payload in enumerate(PAYLOADS, 1):
        outcome = run_payload(boxes[payload.raw], payload, canaries)
        layer = "raw (OS only)" if payload.raw else "all layers"
        if outcome.escaped:
            status = "ESCAPED"
        elif outcome.ok:
            status = "own verdict misreported" if payload.residual else "built, verdict truthful"
        elif not payload.raw and not validate_source(substitute(payload.source, canaries.values())).ok:
            status = "refused statically"
        else:
            status = "contained in the sandbox"
        rows.append({"name": payload.name, "class": payload.kind, "layer": layer, "status": status,
                     "reason": outcome.reason, "detail": outcome.detail[:160], "seconds": round(outcome.seconds, 3),
                     "rss_delta_mb": round(outcome.rss_delta_mb, 1), "violations": outcome.violations})
        print(f"[{k:3d}/{len(PAYLOADS)}] {status:24s} {outcome.seconds:6.2f} s  {payload.name[:48]:48s} "
              f"{outcome.reason}", flush=True)
    pids = [b.pid for b in boxes.values()]
    for box in boxes.values():
        box.close()
    time.sleep(0.3)
    survivors = sorted(processes_of_uid(65534) - nobody_before)
    summary = {
        "payloads": len(rows), "raw": sum(r["layer"].startswith("raw") for r in rows),
        "escaped": sum(r["status"] == "ESCAPED" for r in rows),
        "residual_own_verdict": sum(r["status"] == "own verdict misreported" for r in rows),
        "max_caller_wall_s": max(r["seconds"] for r in rows), "deadline_s": LIMITS.wall_s,
        "max_caller_rss_delta_mb": max(r["rss_delta_mb"] for r in rows),
        "caller_rss_growth_whole_run_mb": round(rss_mb() - rss_start, 1),
        "caller_peak_rss_growth_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - peak_before, 1),
        "surviving_processes": len(survivors) + sum(1 for p in pids if p and os.path.exists(f"/proc/{p}")),
        "classes": sorted({r["class"] for r in rows}),
    }
    return rows, summary


def part_b(canaries: Canaries, workdir: Path) -> dict[str, Any]:
    """The realistic payloads as LLM replies to ``nasassist improve``, the canary key in its environment."""
    from pytest_httpserver import HTTPServer
    from werkzeug import Request, Response

    replies = [substitute(p.source, canaries.values()) for p in PAYLOADS if not p.raw]
    bodies: list[str] = []
    headers: list[str] = []

    def handler(request: Request) -> Response:
        bodies.append(request.get_data(as_text=True))
        headers.append(request.headers.get("Authorization", ""))
        code = replies[min(len(bodies) - 1, len(replies) - 1)]
        text = f"```python\n{code.rstrip()}\n```\nExplanation: payload {len(bodies)}."
        body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
        return Response(json.dumps(body), status=200, content_type="application/json")

    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(handler)
    out_json, out_py = workdir / "improve.json", workdir / "best.py"
    env = {**os.environ, KEY_NAME: CANARY_KEY, "PYTHONPATH": str(ROOT / "tests")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nasassist_plugins.cli", "improve", f"{ROOT / 'tests' / 'mutation_cli_model.py'}:Net",
         "--input-shape", "1,3,16,16", "--max-iter", str(len(replies)), "--llm-model", "m",
         "--base-url", server.url_for("/v1"), "--llm-timeout", "30", "--max-llm-calls", str(2 * len(replies)),
         "--sandbox-timeout", str(LIMITS.wall_s), "--sandbox-memory-mb", str(LIMITS.memory_mb),
         "--json", str(out_json), "--out", str(out_py)],
        capture_output=True, text=True, env=env, timeout=1800, cwd=workdir)
    seconds = time.monotonic() - started
    server.stop()
    channels = {"stdout": proc.stdout, "stderr": proc.stderr, "request bodies": "\n".join(bodies)}
    for path in workdir.rglob("*"):
        if path.is_file():
            channels[str(path.relative_to(workdir))] = path.read_text(errors="replace")
    leaks = sorted(name for name, text in channels.items() if CANARY_KEY in text or CANARY_KEY[3:20] in text)
    report = json.loads(out_json.read_text()) if out_json.exists() else {}
    reasons: dict[str, int] = {}
    for row in report.get("history", []):
        key = row["reason"].split(":")[0] if row["reason"] else ("accepted" if row["accepted"] else "?")
        reasons[key] = reasons.get(key, 0) + 1
    result = {"returncode": proc.returncode, "seconds": round(seconds, 1), "llm_requests": len(bodies),
              "rounds": len(report.get("history", [])), "verdicts": reasons, "key_found_in": leaks,
              "key_only_in_authorization_header": all(h == f"Bearer {CANARY_KEY}" for h in headers) and bool(headers),
              "canary_violations": canaries.violations(*channels.values()), "traceback": "Traceback" in proc.stderr}
    print(f"end to end: exit {proc.returncode}, {result['rounds']} rounds in {seconds:.0f} s, verdicts {reasons}, "
          f"key leaked in {leaks or 'nothing'}, canary violations {result['canary_violations'] or 'none'}", flush=True)
    return result


def plot(rows: list[dict[str, Any]], honest: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    classes = sorted({r["class"] for r in rows})
    statuses = ["refused statically", "contained in the sandbox", "built, verdict truthful",
                "own verdict misreported", "ESCAPED"]
    colours = ["#4c72b0", "#55a868", "#8172b2", "#ccb974", "#c44e52"]
    bottom = [0] * len(classes)
    for status, colour in zip(statuses, colours):
        counts = [sum(r["class"] == c and r["status"] == status for r in rows) for c in classes]
        if any(counts):
            ax1.bar(classes, counts, bottom=bottom, label=status, color=colour)
            bottom = [b + c for b, c in zip(bottom, counts)]
    ax1.set_title(f"{len(rows)} hostile payloads: outcome by class")
    ax1.set_ylabel("payloads")
    ax1.tick_params(axis="x", rotation=30)
    ax1.legend(fontsize=8)
    models = [h for h in honest if "model" in h]
    y = range(len(models))
    ax2.barh([i + 0.27 for i in y], [m["forward_s"] for m in models], height=0.27, label="forward pass (in process)")
    ax2.barh(list(y), [m["in_process_build_trace_s"] for m in models], height=0.27,
             label="build + forward + trace (in process)")
    ax2.barh([i - 0.27 for i in y], [m["sandboxed_s"] for m in models], height=0.27, label="sandboxed build (warm)")
    ax2.set_yticks(list(y), [m["model"] for m in models])
    ax2.set_xlabel("seconds (median)")
    ax2.set_title(f"honest builds (sandbox start-up once: {honest[0]['cold_start_s']:.1f} s)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-prefix", type=Path, default=ROOT / "benchmarks" / "results" / "sandbox_escape")
    parser.add_argument("--repeats", type=int, default=5, help="honest builds per model (default 5)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    os.environ[KEY_NAME] = CANARY_KEY
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nasassist-escape-bench-") as tmp:
        root = Path(tmp)
        (root / "canaries").mkdir()
        (root / "improve").mkdir()
        with Canaries(root / "canaries") as canaries:
            print("A. payloads straight into the sandbox", flush=True)
            rows, summary = part_a(canaries)
            end_to_end = None if args.skip_end_to_end else part_b(canaries, root / "improve")
    print("C. honest builds", flush=True)
    honest = honest_timings(args.repeats)
    record = {"summary": summary, "end_to_end": end_to_end, "honest_builds": honest, "payloads": rows,
              "limits": LIMITS.to_worker(), "torch": torch.__version__, "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "seconds": round(time.monotonic() - started, 1)}
    args.out_prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out_prefix}.json").write_text(json.dumps(record, indent=1))
    plot(rows, honest, Path(f"{args.out_prefix}.png"))
    print("\n| outcome | payloads |\n|---|---:|")
    for status in sorted({r["status"] for r in rows}):
        print(f"| {status} | {sum(r['status'] == status for r in rows)} |")
    print(f"\nescaped {summary['escaped']} of {summary['payloads']} ({summary['raw']} with the Python checks off); "
          f"max caller wall {summary['max_caller_wall_s']:.2f} s (deadline {LIMITS.wall_s:g} s); max caller RSS growth "
          f"{summary['max_caller_rss_delta_mb']:.1f} MB per payload, peak growth {summary['caller_peak_rss_growth_mb']:.1f} MB; "
          f"surviving processes {summary['surviving_processes']}")
    print("\n| model | params | forward | in-process build+trace | sandboxed (warm) | overhead over forward |")
    print("|---|---:|---:|---:|---:|---:|")
    for h in honest[1:]:
        print(f"| {h['model']} | {h['params']:,} | {h['forward_s']:.3f} s | {h['in_process_build_trace_s']:.3f} s | "
              f"{h['sandboxed_s']:.3f} s | {h['overhead_over_forward_s']:+.3f} s |")
    print(f"\nsandbox start-up (once per Sandbox): {honest[0]['cold_start_s']:.2f} s; load average {os.getloadavg()[0]:.1f}")
    print(f"wrote {args.out_prefix}.json and {args.out_prefix}.png")
    return 0 if summary["escaped"] == 0 and (end_to_end is None or not (end_to_end["key_found_in"]
                                                                         or end_to_end["canary_violations"])) else 1


if __name__ == "__main__":
    sys.exit(main())
