"""Compute the training-free suite on benchmark families (resumable, one JSON line per architecture).

For every architecture of a family (see :mod:`nasassist_plugins.predictor.training.suite_data`)
it builds the family's proxy network (or, with ``--config <family>-full``, the benchmark's
own network), runs :func:`nasassist_plugins.proxies.compute_suite` on a fixed-seed standard
normal batch of 16 and appends ``{"key", "values", "errors", "seconds", "fb_seconds"}`` to
``benchmarks/results/suite/<config>.jsonl``. ``fb_seconds`` (every ``--fb-every``-th
architecture) is one plain forward + backward of the same network on the same batch, the
cost unit of the issue's "suite <= 3x forward+backward" target. Interrupted runs resume;
``--shard i/k`` splits a configuration over k processes.

    nice -n 10 python benchmarks/zero_shot_suite.py --configs nb201,nb201-in16,nb101,tnb101
    nice -n 10 python benchmarks/zero_shot_suite.py --configs nb301,darts1k
    nice -n 10 python benchmarks/zero_shot_suite.py --configs nb201-full --n 200      # reduction study
    nice -n 10 python benchmarks/zero_shot_suite.py --configs nb201 --extended          # all 9,445 NB201 cells

The table (Spearman, Kendall, NDCG@10, precision@top-10 %, cost) is written by
``benchmarks/predictor_zero_shot.py``, which also adds the fused score.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from nasassist_plugins.predictor.training.suite_data import CONFIGS, family_keys, read_checkpoint
from nasassist_plugins.proxies.suite import compute_suite, suite_batch

RESULTS = Path(__file__).resolve().parent / "results" / "suite"


def _forward_backward_seconds(network: torch.nn.Module, batch: torch.Tensor) -> float:
    network.train()
    start = time.perf_counter()
    out = network(batch)
    out.float().sum().backward()
    return time.perf_counter() - start


def run(config_name: str, data_dir: str, *, n: int, extended: bool, shard: tuple[int, int], fb_every: int,
        out_dir: Path, seed: int) -> None:
    config = CONFIGS[config_name]
    if config.name.endswith("-full"):  # the first n of the family's standard selection
        keys = family_keys(config.family, data_dir, seed=seed)[:n]
    else:
        keys = family_keys(config.family, data_dir, n=n, seed=seed, extended=extended)
    index, count = shard
    keys = keys[index::count]
    path = out_dir / f"{config.name}.jsonl"
    done = read_checkpoint(path)
    todo = [(k, s) for k, s in keys if k not in done]
    print(f"{config.name}: {len(keys)} architectures, {len(keys) - len(todo)} done, {config.description}", flush=True)
    batch = suite_batch(config.input_shape, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for i, (key, spec) in enumerate(tqdm(todo, desc=config.name, mininterval=30, file=sys.stdout)):
            torch.manual_seed(seed)
            network = config.build(spec)
            result = compute_suite(network, batch, seed=seed, copy_model=False)
            fb = None
            if fb_every and (len(done) + i) % fb_every == 0:
                fb = _forward_backward_seconds(config.build(spec), batch)
            row = {"key": key, "values": {k: (v if math.isfinite(v) or v == -math.inf else None)
                                          for k, v in result.values.items()},
                   "errors": result.errors, "seconds": round(result.seconds, 4), "blocks": result.num_blocks,
                   "fb_seconds": None if fb is None else round(fb, 4)}
            handle.write(json.dumps(row) + "\n")
            handle.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--configs", default="nb201,nb201-in16,nb101,tnb101,nb301,darts1k",
                        help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--n", type=int, default=1000, help="architectures per family (full configs: the first n)")
    parser.add_argument("--extended", action="store_true", help="NB201: all 9,445 cells of the CIFAR-10 table")
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--fb-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    index, count = (int(x) for x in args.shard.split("/"))
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        if name not in CONFIGS:
            parser.error(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
        run(name, args.data, n=args.n, extended=args.extended, shard=(index, count), fb_every=args.fb_every,
            out_dir=Path(args.out), seed=args.seed)


if __name__ == "__main__":
    main()
