"""Import time of the Optuna plugin next to ``import torch, optuna`` (fresh interpreters, interleaved).

    python benchmarks/import_time.py --repeats 7

Target: ``import nasassist_plugins.optuna`` at most 1.5x ``import torch, optuna``, and no
torch_geometric / transformers at import (they load on first use). Writes
``benchmarks/results/import_time.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "import torch, optuna": "import torch, optuna",
    "import nasassist_plugins.optuna": "import nasassist_plugins.optuna",
    "from nasassist_plugins.optuna import NASAssistSampler, NASAssistPruner":
        "from nasassist_plugins.optuna import NASAssistSampler, NASAssistPruner",
}
HEAVY = ("torch_geometric", "transformers", "sklearn", "nasassist_plugins.predictor", "torch")


def run(code: str) -> tuple[float, list[str]]:
    probe = f"{code}\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/import_time.json"))
    args = parser.parse_args()
    for code in CASES.values():  # warm the file-system cache
        run(code)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    loaded: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, code in CASES.items():
            seconds, modules = run(code)
            times[name].append(seconds)
            loaded[name] = modules
    baseline = statistics.median(times["import torch, optuna"])
    rows = {name: {"median_s": statistics.median(t), "min_s": min(t), "ratio_to_torch_optuna":
                   statistics.median(t) / baseline, "heavy_modules_loaded": loaded[name]} for name, t in times.items()}
    print(f"{'command':72} {'median s':>9} {'min s':>7} {'ratio':>6}  heavy modules loaded")
    for name, row in rows.items():
        print(f"{name:72} {row['median_s']:9.2f} {row['min_s']:7.2f} {row['ratio_to_torch_optuna']:6.2f}  "
              f"{', '.join(row['heavy_modules_loaded']) or '-'}")
    worst = max(row["ratio_to_torch_optuna"] for name, row in rows.items() if name != "import torch, optuna")
    print(f"worst ratio {worst:.2f} (target <= 1.5: {'met' if worst <= 1.5 else 'MISSED'})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "rows": rows,
                                    "load_average": list(__import__('os').getloadavg())}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
