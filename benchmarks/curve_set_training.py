"""Shared trainer of the real learning-curve sets (MLPs and macro CNNs on scikit-learn digits).

Used by ``benchmarks/generate_mlp_curves.py`` and ``benchmarks/generate_cnn_curves.py``; each of
those only says how to sample a configuration (architecture + optimiser settings) and how to build
the network. This module trains every configuration from scratch on the same fixed stratified
train/validation split of ``sklearn.datasets.load_digits`` as ``generate_digits_curves.py``
(``load_split`` is imported from there), records the validation accuracy, mean training loss and
wall time of every epoch, and writes one compact, pickle-free ``.npz`` read by
:func:`nasassist_plugins.data.load_curve_set`.

Long runs checkpoint: every finished configuration is appended to ``<out>.partial.jsonl``, and a
rerun with the same arguments resumes from it (``--workers 1`` with ``nice`` and one torch thread is
the intended way to run on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from generate_digits_curves import load_split  # noqa: E402  (same split as the NB201 digits set)

SampleConfig = Callable[[np.random.Generator], dict]
BuildModel = Callable[[dict], "object"]


def lr_factor(schedule: dict, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier of ``epoch`` (0-based) for a schedule description.

    ``{"kind": "constant"}``, ``{"kind": "cosine"}`` (to zero at the end), or
    ``{"kind": "step", "milestones": [fractions], "gamma": g}``; any of them may add
    ``"warmup": n`` (linear warm-up over the first ``n`` epochs).
    """
    warm = int(schedule.get("warmup", 0))
    if epoch < warm:
        return (epoch + 1) / (warm + 1)
    kind = schedule["kind"]
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        return 0.5 * (1.0 + np.cos(np.pi * (epoch - warm) / max(1, epochs - warm)))
    if kind == "step":
        passed = sum(1 for m in schedule["milestones"] if epoch >= round(m * epochs))
        return float(schedule["gamma"]) ** passed
    raise ValueError(f"unknown schedule {kind!r}")


_DATA: dict = {}


def _init_worker(cfg: dict) -> None:
    import torch

    torch.set_num_threads(1)
    xtr, ytr, xva, yva = load_split(cfg["split_seed"], cfg["val_fraction"])
    _DATA.update(cfg=cfg, xtr=torch.from_numpy(xtr), ytr=torch.from_numpy(ytr), xva=torch.from_numpy(xva),
                 yva=torch.from_numpy(yva))


def train_one(job: tuple[int, dict, BuildModel]) -> dict:
    """Train one configuration for ``cfg["epochs"]`` epochs; returns its per-epoch curves."""
    import torch
    from torch import nn

    index, conf, build = job
    cfg = _DATA["cfg"]
    xtr, ytr, xva, yva = _DATA["xtr"], _DATA["ytr"], _DATA["xva"], _DATA["yva"]
    seed = cfg["seed"] * 100_003 + index
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(conf)
    n_params = int(sum(p.numel() for p in model.parameters()))
    opt_conf = conf["optimiser"]
    if opt_conf["name"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=opt_conf["lr"], weight_decay=opt_conf["weight_decay"])
    elif opt_conf["name"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=opt_conf["lr"], momentum=opt_conf["momentum"],
                              weight_decay=opt_conf["weight_decay"])
    else:
        raise ValueError(f"unknown optimiser {opt_conf['name']!r}")
    epochs, bs = cfg["epochs"], int(conf["batch_size"])
    loss_fn = nn.CrossEntropyLoss()
    n = len(ytr)
    val_acc = np.zeros(epochs, np.float32)
    train_loss = np.zeros(epochs, np.float32)
    epoch_time = np.zeros(epochs, np.float32)
    for ep in range(epochs):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = opt_conf["lr"] * lr_factor(conf["schedule"], ep, epochs)
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for start in range(0, n, bs):
            b = perm[start : start + bs]
            xb = xtr[b]
            if conf.get("augment"):
                dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), ytr[b])
            loss.backward()
            opt.step()
            value = float(loss.item())
            total += (value if np.isfinite(value) else 1e3) * len(b)
            count += len(b)
        model.eval()
        with torch.no_grad():
            logits = model(xva)
            pred = torch.where(torch.isfinite(logits).all(1), logits.argmax(1), torch.full_like(yva, -1))
        val_acc[ep] = float((pred == yva).float().mean())
        train_loss[ep] = min(total / count, 1e3)
        epoch_time[ep] = time.perf_counter() - t0
    return {"index": index, "config": conf, "val_acc": val_acc.tolist(), "train_loss": train_loss.tolist(),
            "epoch_time": epoch_time.tolist(), "n_params": n_params}


def _command_line(script: str, argv: list[str], out: Path, default_out: str) -> str:
    argv = list(argv)
    try:
        out.resolve().relative_to(REPO)
    except ValueError:
        if "--out" in argv:
            k = argv.index("--out")
            del argv[k : k + 2]
        argv += ["--out", default_out]
    return f"python benchmarks/{script} " + " ".join(shlex.quote(a) for a in argv)


def main(
    argv: list[str] | None,
    *,
    script: str,
    description: str,
    set_name: str,
    sample_config: SampleConfig,
    build_model: BuildModel,
    defaults: dict,
    metadata: dict,
) -> int:
    """Command line shared by the generators: sample configurations, train them, write the set."""
    default_out = f"nasassist_plugins/data/{set_name}_curves.npz"
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--n-configs", type=int, default=defaults["n_configs"])
    ap.add_argument("--epochs", type=int, default=defaults["epochs"])
    ap.add_argument("--val-fraction", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0, help="configuration sampling and training seeds")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / default_out)
    args = ap.parse_args(argv)
    if args.n_configs < 1 or args.epochs < 2:
        ap.error("--n-configs must be >= 1 and --epochs >= 2")

    import sklearn
    import torch

    rng = np.random.default_rng(args.seed)
    configs = [sample_config(rng) for _ in range(args.n_configs)]
    cfg = {"seed": args.seed, "split_seed": args.split_seed, "val_fraction": args.val_fraction, "epochs": args.epochs}
    partial = args.out.with_suffix(".partial.jsonl")
    done: dict[int, dict] = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            rec = json.loads(line)
            run = {k: v for k, v in rec.get("run", {}).items() if k != "n_configs"}
            # configuration i is the i-th draw of the seeded sampler whatever --n-configs is, so a run
            # stopped early can be finished with a smaller --n-configs from the same checkpoint
            if run == cfg and rec["index"] < args.n_configs and rec["config"] == configs[rec["index"]]:
                done[rec["index"]] = rec
        print(f"resuming: {len(done)} of {args.n_configs} configurations already trained", flush=True)
    jobs = [(i, c, build_model) for i, c in enumerate(configs) if i not in done]
    t_start = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a") as log:
        def keep(res: dict) -> None:
            res["run"] = dict(cfg)
            done[res["index"]] = res
            log.write(json.dumps(res) + "\n")
            log.flush()
            k = len(done)
            if k % 10 == 0 or k == args.n_configs:
                print(f"[{time.perf_counter() - t_start:7.1f}s] {k}/{args.n_configs} trained "
                      f"(last final val acc {res['val_acc'][-1]:.4f})", flush=True)

        if args.workers > 1 and jobs:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(args.workers, initializer=_init_worker, initargs=(cfg,)) as pool:
                for res in pool.imap_unordered(train_one, jobs, chunksize=1):
                    keep(res)
        else:
            _init_worker(cfg)
            for job in jobs:
                keep(train_one(job))
    results = [done[i] for i in range(args.n_configs)]
    seconds = float(sum(sum(r["epoch_time"]) for r in results))
    _, _, _, yva = load_split(args.split_seed, args.val_fraction)
    meta = {
        **metadata,
        "name": set_name,
        "dataset": "sklearn.datasets.load_digits (1797 8x8 grayscale images, 10 classes), scaled /16 then "
        "standardised (the split and scaling of generate_digits_curves.py)",
        "split": f"stratified train/val, sklearn train_test_split(test_size={args.val_fraction}, "
        f"random_state={args.split_seed}): {1797 - len(yva)} train / {len(yva)} val",
        "n_val": int(len(yva)),
        "epochs": args.epochs,
        "seed": args.seed,
        "training_seed": "torch.manual_seed(seed * 100003 + config_index) per configuration",
        "curves": "val_acc[i, e] = validation accuracy after epoch e+1 (fraction in [0, 1]); a diverged "
        "network (non-finite logits) counts as wrong on every sample",
        "configs": "configs[i] = JSON of configuration i (architecture, optimiser, schedule, batch size)",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "sklearn_version": sklearn.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, {args.workers} workers, "
        "torch.set_num_threads(1) per worker, CPU training",
        "total_train_seconds": round(seconds, 1),
        "generation_command": _command_line(script, sys.argv[1:] if argv is None else argv, args.out, default_out),
    }
    np.savez_compressed(
        args.out,
        configs=np.array([json.dumps(r["config"], sort_keys=True) for r in results], dtype="U"),
        val_acc=np.array([r["val_acc"] for r in results], dtype=np.float32),
        train_loss=np.array([r["train_loss"] for r in results], dtype=np.float32),
        epoch_time=np.array([r["epoch_time"] for r in results], dtype=np.float32),
        n_params=np.array([r["n_params"] for r in results], dtype=np.int64),
        metadata=np.array(json.dumps(meta, sort_keys=True)),
    )
    final = np.array([r["val_acc"][-1] for r in results])
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): {len(results)} configs x {args.epochs} "
          f"epochs, {seconds:.0f} s of training; final val acc min/median/max "
          f"{final.min():.4f}/{np.median(final):.4f}/{final.max():.4f}", flush=True)
    partial.unlink()
    return 0
