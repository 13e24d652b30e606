"""Generate real learning curves: random MLPs trained with Adam at a constant learning rate on digits.

Each configuration draws an architecture (1-4 hidden layers, widths 16-256, ReLU/tanh/GELU/ELU,
dropout, optional batch norm) and optimiser settings (Adam, learning rate log-uniform in
[1e-4, 3e-2], weight decay, batch size) and is trained from scratch on the flattened 8x8 digits
(the split of ``generate_digits_curves.py``) for ``--epochs`` epochs at a **constant** learning
rate, no augmentation. Large learning rates diverge or oscillate, small ones are still rising at
the end: both are part of the set on purpose. Output: ``nasassist_plugins/data/digits_mlp_curves.npz``
(:func:`nasassist_plugins.data.load_curve_set` ``("digits_mlp")``).

Usage (checkpoints to ``<out>.partial.jsonl`` and resumes)::

    nice -n 10 python benchmarks/generate_mlp_curves.py --n-configs 250 --epochs 50 --workers 1
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import curve_set_training  # noqa: E402

ACTIVATIONS = ("relu", "tanh", "gelu", "elu")


def sample_config(rng: np.random.Generator) -> dict:
    depth = int(rng.integers(1, 5))
    return {
        "family": "mlp",
        "hidden": [int(rng.choice([16, 32, 64, 128, 256])) for _ in range(depth)],
        "activation": str(rng.choice(ACTIVATIONS)),
        "dropout": float(rng.choice([0.0, 0.1, 0.25, 0.5])),
        "batch_norm": bool(rng.random() < 0.3),
        "optimiser": {"name": "adam", "lr": float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-2)))),
                      "weight_decay": float(rng.choice([0.0, 1e-5, 1e-4]))},
        "schedule": {"kind": "constant"},
        "batch_size": int(rng.choice([32, 64, 128])),
        "augment": False,
    }


def build_model(conf: dict):
    from torch import nn

    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU}[conf["activation"]]
    layers: list = [nn.Flatten()]
    width = 64
    for h in conf["hidden"]:
        layers.append(nn.Linear(width, h))
        if conf["batch_norm"]:
            layers.append(nn.BatchNorm1d(h))
        layers.append(act())
        if conf["dropout"]:
            layers.append(nn.Dropout(conf["dropout"]))
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def main(argv: list[str] | None = None) -> int:
    return curve_set_training.main(
        argv, script="generate_mlp_curves.py", description=__doc__.split("\n\n")[0], set_name="digits_mlp",
        sample_config=sample_config, build_model=build_model, defaults={"n_configs": 250, "epochs": 50},
        metadata={"network": "MLP on the flattened 64 pixels (see configs)",
                  "optimiser": "Adam, constant learning rate (per config), no augmentation"},
    )


if __name__ == "__main__":
    raise SystemExit(main())
