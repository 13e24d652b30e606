"""Generate real learning curves: random macro CNNs trained with SGD and a step schedule on digits.

Each configuration draws a macro architecture (2-4 conv blocks, kernel 3 or 5, 8-48 channels,
optional batch norm, ReLU or GELU, max or average pooling after some blocks, global average
pooling and a linear head) and optimiser settings (SGD with momentum 0.9, learning rate
log-uniform in [3e-3, 0.2], weight decay 5e-4, batch size 32-128) and is trained from scratch on
the 8x8 digits (the split of ``generate_digits_curves.py``, random 1-pixel shifts) for
``--epochs`` epochs with a linear warm-up of 2 epochs and a **step** schedule (x0.1 at 50 % and
again at 75 % of the epochs). Output: ``nasassist_plugins/data/digits_cnn_curves.npz``
(:func:`nasassist_plugins.data.load_curve_set` ``("digits_cnn")``).

Usage (checkpoints to ``<out>.partial.jsonl`` and resumes)::

    nice -n 10 python benchmarks/generate_cnn_curves.py --n-configs 200 --epochs 30 --workers 1
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import curve_set_training  # noqa: E402


def sample_config(rng: np.random.Generator) -> dict:
    depth = int(rng.integers(2, 5))
    pools = sorted(rng.choice(depth, size=min(2, depth - 1), replace=False).tolist())
    return {
        "family": "macro_cnn",
        "channels": [int(rng.choice([8, 16, 24, 32, 48])) for _ in range(depth)],
        "kernels": [int(rng.choice([3, 5])) for _ in range(depth)],
        "pool_after": [int(p) for p in pools],
        "pool": str(rng.choice(["max", "avg"])),
        "batch_norm": bool(rng.random() < 0.7),
        "activation": str(rng.choice(["relu", "gelu"])),
        "optimiser": {"name": "sgd", "lr": float(np.exp(rng.uniform(np.log(3e-3), np.log(0.2)))),
                      "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"kind": "step", "milestones": [0.5, 0.75], "gamma": 0.1, "warmup": 2},
        "batch_size": int(rng.choice([32, 64, 128])),
        "augment": True,
    }


def build_model(conf: dict):
    from torch import nn

    act = {"relu": nn.ReLU, "gelu": nn.GELU}[conf["activation"]]
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[conf["pool"]]
    layers: list = []
    width = 1
    for i, (c, k) in enumerate(zip(conf["channels"], conf["kernels"])):
        layers.append(nn.Conv2d(width, c, k, padding=k // 2, bias=not conf["batch_norm"]))
        if conf["batch_norm"]:
            layers.append(nn.BatchNorm2d(c))
        layers.append(act())
        if i in conf["pool_after"]:
            layers.append(pool(2))
        width = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


def main(argv: list[str] | None = None) -> int:
    return curve_set_training.main(
        argv, script="generate_cnn_curves.py", description=__doc__.split("\n\n")[0], set_name="digits_cnn",
        sample_config=sample_config, build_model=build_model, defaults={"n_configs": 200, "epochs": 30},
        metadata={"network": "macro CNN: conv blocks + pooling + global average pooling + linear head (see configs)",
                  "optimiser": "SGD momentum 0.9, weight decay 5e-4, 2-epoch linear warm-up, x0.1 at 50 % and 75 % "
                  "of the epochs; random 1-pixel shifts"},
    )


if __name__ == "__main__":
    raise SystemExit(main())
