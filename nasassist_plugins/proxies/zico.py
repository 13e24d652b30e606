"""ZiCo: zero-shot NAS via inverse coefficient of variation on gradients (Li et al., ICLR 2023).

Networks whose gradients are large and consistent across mini-batches train faster
and generalise better. The score sums, over layers, the log of the summed
``mean |g| / std g`` of every weight, with statistics taken across mini-batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, enable_all_grads, register_proxy, scored_layers

__all__ = ["zico"]


@register_proxy("zico", uses_labels=True, summary="ZiCo: sum_layers log sum(mean|g| / std g)")
def zico(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn, *, num_splits: int = 2
) -> float:
    """ZiCo score from ``num_splits`` mini-batches cut from ``inputs`` (default 2 halves).

    For every conv and linear layer, the weight gradient is taken on each mini-batch
    (train mode); per weight, ``mean |g|`` and ``std g`` (population std) across the
    mini-batches; the layer contributes ``log(sum over weights with std > 0 of
    mean|g| / std)``, and layers whose sum is 0 contribute nothing, as in the authors'
    code.
    """
    if num_splits < 2:
        raise ValueError(f"ZiCo needs at least 2 mini-batches, got num_splits={num_splits}")
    if inputs.shape[0] < num_splits:
        raise ValueError(f"ZiCo needs at least {num_splits} samples to form {num_splits} mini-batches")
    model.train()
    enable_all_grads(model)
    layers = scored_layers(model)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for x, y in zip(torch.tensor_split(inputs, num_splits), torch.tensor_split(targets, num_splits)):
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        for i, layer in enumerate(layers):
            g = layer.weight.grad
            if g is None:  # the layer does not reach the loss
                g = torch.zeros_like(layer.weight)
            grads[i].append(g.detach().flatten().double())
    score = 0.0
    for per_batch in grads:
        stacked = torch.stack(per_batch)
        std = stacked.std(dim=0, unbiased=False)
        nonzero = std != 0
        total = float((stacked.abs().mean(dim=0)[nonzero] / std[nonzero]).sum())
        if total != 0.0:
            score += math.log(total)
    return score
