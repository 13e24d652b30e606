"""NASWOT: "Neural Architecture Search without Training" (Mellor et al., ICML 2021).

Every ReLU splits its input space into linear regions; a network whose ReLUs give the
samples of a batch different on/off patterns separates them better at initialisation.
The score is the log-determinant of the kernel ``K[i, j] = number of ReLU units on
which samples i and j agree``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, hooks, register_proxy

__all__ = ["nwot", "relu_modules"]


def relu_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose class name contains ``ReLU`` (``ReLU``, ``ReLU6``, ``LeakyReLU``), as in NASLib.

    Activations called functionally (``F.relu``) are invisible to module hooks.
    """
    return [m for m in model.modules() if "ReLU" in type(m).__name__]


@register_proxy("nwot", summary="NASWOT: log|K| of ReLU binary codes")
def nwot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn) -> float:
    """``log det K`` with ``K = sum over ReLU modules of C C^T + (1 - C)(1 - C)^T``.

    ``C`` holds the binary codes ``input > 0`` of one ReLU module (one row per sample),
    so ``K[i, j]`` counts the units where samples ``i`` and ``j`` have the same
    on/off state (number of units minus the Hamming distance). Train mode, one forward
    pass, as in NASLib's ``nwot``.

    Raises:
        ValueError: the model has no ReLU modules, or ``K`` is singular (two samples
            with identical codes everywhere, e.g. duplicate inputs).
    """
    relus = relu_modules(model)
    if not relus:
        raise ValueError("the model has no ReLU modules (functional F.relu calls are not seen by NASWOT)")
    n = inputs.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=inputs.device)

    def on_forward(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal kernel
        codes = (args[0].detach().reshape(n, -1) > 0).float()
        kernel = kernel + (codes @ codes.t()).double() + ((1.0 - codes) @ (1.0 - codes).t()).double()

    model.train()
    with torch.no_grad(), hooks([m.register_forward_hook(on_forward) for m in relus]):
        model(inputs)
    sign, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    if sign <= 0 or not np.isfinite(logdet):
        raise ValueError("the NASWOT kernel is singular (samples with identical ReLU codes)")
    return float(logdet)
