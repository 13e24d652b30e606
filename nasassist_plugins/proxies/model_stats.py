"""Size proxies: trainable parameters and forward FLOPs.

Both are data-independent baselines that every zero-cost study reports, and that the
learned proxies have to beat (on NAS-Bench-201 they rank architectures about as well
as most gradient-based proxies).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from nasassist_plugins.proxies._base import LossFn, register_proxy

__all__ = ["params", "flops"]


@register_proxy("params", runs_model=False, uses_data=False, summary="trainable parameters")
def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn) -> float:
    """Number of trainable parameters (each shared parameter counted once).

    NASLib stores the same count in millions; ranks are identical.
    """
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


@register_proxy("flops", uses_data=False, summary="forward FLOPs of one sample")
def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn) -> float:
    """Forward floating-point operations for one sample, counted by ``FlopCounterMode``.

    Runs the model in eval mode on the first sample of ``inputs``. The counter counts
    matrix products and convolutions (2 FLOPs per multiply-accumulate); element-wise
    ops, normalisation and pooling are not counted, which is the usual convention and
    changes little in conv nets. NASLib stores MFLOPs.
    """
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(inputs[:1])
    return float(counter.get_total_flops())
