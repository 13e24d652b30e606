"""Generate real learning curves: narrow NAS-Bench-201 cell networks trained on scikit-learn digits.

Each of ``--n-archs`` distinct NB201 cell strings (uniform random draws, de-duplicated) is built
with the project's own cell code (``nasassist_plugins.adapters.cells.nb201_network``) as a narrow
network (``--channels`` 8, ``--cells-per-stage`` 1, a 1-channel stem for the 8x8 digits images,
10 classes) and trained from scratch for ``--epochs`` epochs on a fixed stratified train/validation
split of ``sklearn.datasets.load_digits``. Per epoch it records the validation accuracy, the mean
training loss and the wall time of the epoch. The result is a compact, pickle-free ``.npz``
(``np.load(..., allow_pickle=False)``) read by :func:`nasassist_plugins.data.load_digits_curves`
and replayed by ``benchmarks/pruning_curve_sets.py``.

The script imports only numpy, scikit-learn, torch and the cell code, so it also runs on a machine
without the rest of the package's dependencies (``PYTHONPATH=.`` from the repository root is enough,
even when the package is not installed).

Usage::

    python benchmarks/generate_digits_curves.py --n-archs 256 --epochs 40 --workers 14 \
        --out nasassist_plugins/data/digits_nb201_curves.npz
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _import_cells():
    """``nasassist_plugins.adapters.cells``, also from a plain checkout that is not pip-installed.

    The repository keeps the adapters in a top-level ``adapters/`` folder that setup.py installs
    as ``nasassist_plugins.adapters``; without the install we register that mapping by hand.
    """
    try:
        from nasassist_plugins.adapters import cells  # noqa: PLC0415

        return cells
    except ImportError:
        pass
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import nasassist_plugins  # noqa: F401, PLC0415  (docstring-only package init)

    spec = importlib.util.spec_from_file_location(
        "nasassist_plugins.adapters",
        REPO / "adapters" / "__init__.py",
        submodule_search_locations=[str(REPO / "adapters")],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["nasassist_plugins.adapters"] = module
    spec.loader.exec_module(module)
    from nasassist_plugins.adapters import cells  # noqa: PLC0415

    return cells


def load_split(seed: int, val_fraction: float):
    """Digits scaled to [0, 1] as (N, 1, 8, 8) float32, with a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=y)
    mean, std = float(x[tr].mean()), float(x[tr].std())
    x = (x - mean) / std
    return x[tr], y[tr], x[va], y[va]


# Worker state (set once per process by _init_worker).
_DATA: dict = {}


def _init_worker(cfg: dict) -> None:
    import torch

    torch.set_num_threads(1)
    xtr, ytr, xva, yva = load_split(cfg["split_seed"], cfg["val_fraction"])
    _DATA.update(
        cfg=cfg,
        xtr=torch.from_numpy(xtr),
        ytr=torch.from_numpy(ytr),
        xva=torch.from_numpy(xva),
        yva=torch.from_numpy(yva),
        cells=_import_cells(),
    )


def train_one(job: tuple[int, str]) -> dict:
    """Train one architecture; returns its per-epoch curves."""
    import torch
    from torch import nn

    index, arch = job
    cfg, cells = _DATA["cfg"], _DATA["cells"]
    xtr, ytr, xva, yva = _DATA["xtr"], _DATA["ytr"], _DATA["xva"], _DATA["yva"]
    seed = cfg["seed"] * 100_003 + index
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = cells.nb201_network(
        arch, channels=cfg["channels"], cells_per_stage=cfg["cells_per_stage"], num_classes=10, in_channels=1
    )
    n_params = int(sum(p.numel() for p in model.parameters()))
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["weight_decay"]
    )
    epochs, bs = cfg["epochs"], cfg["batch_size"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    n = len(ytr)
    val_acc = np.zeros(epochs, np.float32)
    train_loss = np.zeros(epochs, np.float32)
    epoch_time = np.zeros(epochs, np.float32)
    for ep in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for start in range(0, n, bs):
            b = perm[start : start + bs]
            xb = xtr[b]
            # light augmentation: random shifts of up to 1 pixel (keeps the task from saturating at once)
            if cfg["augment"]:
                dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), ytr[b])
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(b)
            count += len(b)
        sched.step()
        model.eval()
        with torch.no_grad():
            pred = model(xva).argmax(1)
        val_acc[ep] = float((pred == yva).float().mean())
        train_loss[ep] = total / count
        epoch_time[ep] = time.perf_counter() - t0
    return {
        "index": index,
        "arch": arch,
        "val_acc": val_acc,
        "train_loss": train_loss,
        "epoch_time": epoch_time,
        "n_params": n_params,
    }


def sample_archs(n: int, seed: int, cells) -> list[str]:
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(cells.random_nb201_arch(rng), None)
    return list(seen)


def _command_line(argv: list[str], out: Path) -> str:
    """The command as run, with an ``--out`` outside the repository shown as its repository path."""
    argv = list(argv)
    try:
        out.resolve().relative_to(REPO)
    except ValueError:
        if "--out" in argv:
            k = argv.index("--out")
            del argv[k : k + 2]
        argv += ["--out", "nasassist_plugins/data/digits_nb201_curves.npz"]
    return "python benchmarks/generate_digits_curves.py " + " ".join(shlex.quote(a) for a in argv)


def summarise(npz: Path, out_dir: Path) -> None:
    """Write ``digits_curves_summary.json`` and ``digits_curves.png`` (all curves) for a curves file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.load(npz, allow_pickle=False) as z:
        v, loss, t = z["val_acc"], z["train_loss"], z["epoch_time"]
        meta = json.loads(str(z["metadata"]))
        n_params = z["n_params"]
    final = v[:, -1]
    order = np.argsort(final)
    summary = {
        "file": str(npz.name), "n_archs": int(v.shape[0]), "n_epochs": int(v.shape[1]),
        "final_val_acc": {q: float(np.quantile(final, float(q))) for q in ("0", "0.1", "0.25", "0.5", "0.75", "0.9", "1")},
        "n_dead_archs_below_0.2": int((final < 0.2).sum()),
        "n_within_0.5pp_of_best": int((final >= final.max() - 0.005).sum()),
        "mean_epoch_seconds": float(t.mean()), "total_train_cpu_seconds": float(t.sum()),
        "params": {"min": int(n_params.min()), "max": int(n_params.max())},
        "metadata": meta,
    }
    with np.load(npz, allow_pickle=False) as z:
        summary["best_arch"] = str(z["arch_strs"][order[-1]])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "digits_curves_summary.json").write_text(json.dumps(summary, indent=1))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    epochs = np.arange(1, v.shape[1] + 1)
    cmap = plt.get_cmap("viridis")
    lo = np.quantile(final, 0.02)
    for rank, i in enumerate(order):
        c = cmap(rank / max(1, len(order) - 1))
        axes[0].plot(epochs, v[i], color=c, lw=0.5, alpha=0.5)
        axes[1].plot(epochs, v[i], color=c, lw=0.5, alpha=0.5)
        axes[2].semilogy(epochs, loss[i], color=c, lw=0.5, alpha=0.5)
    axes[0].set_title(f"validation accuracy, {v.shape[0]} NB201 nets (colour = final rank)")
    axes[1].set_ylim(lo, min(1.0, final.max() + 0.005))
    axes[1].set_title("zoom on the top")
    axes[2].set_title("training loss")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(out_dir / "digits_curves.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--summarise", type=Path, default=None, metavar="NPZ",
                    help="only write benchmarks/results/digits_curves_{summary.json,.png} for an existing file")
    ap.add_argument("--n-archs", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells-per-stage", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--no-augment", action="store_true", help="disable the random 1-pixel shifts")
    ap.add_argument("--val-fraction", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0, help="architecture sampling and training seeds")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument(
        "--max-seconds", type=float, default=0.0, help="stop after this long and keep the finished archs (0: no limit)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "nasassist_plugins" / "data" / "digits_nb201_curves.npz")
    args = ap.parse_args(argv)
    if args.summarise is not None:
        summarise(args.summarise, REPO / "benchmarks" / "results")
        return 0
    if args.n_archs < 1 or args.epochs < 1:
        ap.error("--n-archs and --epochs must be positive")

    import torch
    import sklearn

    cells = _import_cells()
    archs = sample_archs(args.n_archs, args.seed, cells)
    cfg = {
        "seed": args.seed,
        "split_seed": args.split_seed,
        "val_fraction": args.val_fraction,
        "channels": args.channels,
        "cells_per_stage": args.cells_per_stage,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "augment": not args.no_augment,
    }
    t_start = time.perf_counter()
    jobs = list(enumerate(archs))
    if args.workers > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
        with ctx.Pool(args.workers, initializer=_init_worker, initargs=(cfg,)) as pool:
            results = []
            for k, res in enumerate(pool.imap_unordered(train_one, jobs, chunksize=1)):
                results.append(res)
                if (k + 1) % 20 == 0 or k + 1 == len(jobs):
                    print(f"[{time.perf_counter() - t_start:7.1f}s] {k + 1}/{len(jobs)} trained", flush=True)
                if args.max_seconds and time.perf_counter() - t_start > args.max_seconds:
                    print(f"--max-seconds {args.max_seconds} reached: keeping {len(results)} archs", flush=True)
                    pool.terminate()
                    break
    else:
        _init_worker(cfg)
        results = []
        for k, job in enumerate(jobs):
            results.append(train_one(job))
            print(f"[{time.perf_counter() - t_start:7.1f}s] {k + 1}/{len(jobs)} trained", flush=True)
    elapsed = time.perf_counter() - t_start
    results.sort(key=lambda r: r["index"])
    # After a --max-seconds stop keep only the longest finished prefix of the (random) arch list, so
    # that the kept set is still a uniform sample and not biased towards archs that train fast.
    prefix = 0
    while prefix < len(results) and results[prefix]["index"] == prefix:
        prefix += 1
    results = results[:prefix]
    archs = [r["arch"] for r in results]

    _, _, _, yva = load_split(args.split_seed, args.val_fraction)
    n_train = 1797 - len(yva)
    metadata = {
        "dataset": "sklearn.datasets.load_digits (1797 8x8 grayscale images, 10 classes), scaled /16 then standardised",
        "split": f"stratified train/val, sklearn train_test_split(test_size={args.val_fraction}, "
        f"random_state={args.split_seed}): {n_train} train / {len(yva)} val",
        "n_val": int(len(yva)),
        "network": f"nasassist_plugins.adapters.cells.nb201_network(arch, channels={args.channels}, "
        f"cells_per_stage={args.cells_per_stage}, num_classes=10, in_channels=1)",
        "optimiser": f"SGD(lr={args.lr}, momentum=0.9, nesterov=True, weight_decay={args.weight_decay}), "
        f"CosineAnnealingLR(T_max={args.epochs}) stepped per epoch, batch size {args.batch_size}, cross-entropy",
        "augmentation": "one random shift of up to 1 pixel (torch.roll) per batch" if cfg["augment"] else "none",
        "epochs": args.epochs,
        "arch_sampling": f"uniform random NB201 cells (random_nb201_arch, numpy default_rng({args.seed})), de-duplicated",
        "seed": args.seed,
        "training_seed": "torch.manual_seed(seed * 100003 + arch_index) per architecture",
        "curves": "val_acc[i, e] = validation accuracy after epoch e+1 (fraction in [0, 1])",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "sklearn_version": sklearn.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, {args.workers} workers, "
        "torch.set_num_threads(1) per worker, CPU training",
        "generation_seconds": round(elapsed, 1),
        "generation_command": _command_line(sys.argv[1:] if argv is None else argv, args.out),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        arch_strs=np.array(archs, dtype="U"),
        val_acc=np.stack([r["val_acc"] for r in results]),
        train_loss=np.stack([r["train_loss"] for r in results]),
        epoch_time=np.stack([r["epoch_time"] for r in results]),
        n_params=np.array([r["n_params"] for r in results], dtype=np.int64),
        metadata=np.array(json.dumps(metadata, sort_keys=True)),
    )
    final = np.stack([r["val_acc"] for r in results])[:, -1]
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): {len(archs)} archs x {args.epochs} epochs "
        f"in {elapsed:.1f}s; final val acc min/median/max {final.min():.4f}/{np.median(final):.4f}/{final.max():.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
