"""SynFlow (Tanaka et al., 2020; as a NAS proxy: Abdelfattah et al., 2021).

The score is the sum over weights of ``|theta * dR/dtheta|`` where
``R = sum(f_|theta|(1))``: the network with every weight replaced by its absolute
value, BatchNorm bypassed and evaluated on an all-ones input. It needs no data and no
labels, only the input shape. The score grows exponentially with depth (``1e30``-``1e70``
for NAS-Bench cells), so values that overflow float32 are recomputed in float64, and
the proxy reports ``log(score)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, bypass_batchnorm, enable_all_grads, register_proxy, scored_layers

__all__ = ["synflow", "synflow_per_parameter"]


def synflow_per_parameter(model: nn.Module, input_shape: torch.Size | tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Per-parameter SynFlow saliency ``|theta * dR/dtheta|`` of every parameter (by name).

    Changes ``model`` (absolute weights, eval mode, dtype): call it on a copy. A
    parameter that receives no gradient (it does not reach the output, or it belongs
    to a bypassed BatchNorm) gets zeros.

    Precision: with absolute weights and an all-ones input every activation is
    non-negative, so nothing cancels and float32 is accurate to ~1e-6 relative; it
    only fails by overflowing (scores above ~1e38). The pass therefore runs in
    float32 first and is repeated in float64 when any value overflows (float64
    convolutions are several times slower on CPU).

    Args:
        model: the network (a private copy).
        input_shape: shape of one batch; SynFlow uses a single all-ones sample of it.
    """
    model.eval()  # dropout off; BatchNorm is bypassed below
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_floating_point():
                tensor.abs_()
    dtypes = [torch.float64]
    if all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in model.parameters()):
        dtypes.insert(0, torch.float32)
    for dtype in dtypes:
        scores = _synflow_pass(model, input_shape, dtype)
        if all(bool(torch.isfinite(t).all()) for t in scores.values()):
            break
    return scores


def _synflow_pass(
    model: nn.Module, input_shape: torch.Size | tuple[int, ...], dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """One forward/backward of ``sum(f(1))`` in ``dtype`` (weights already absolute)."""
    model.to(dtype)
    enable_all_grads(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    ones = torch.ones((1, *tuple(input_shape)[1:]), dtype=dtype, device=device)
    with bypass_batchnorm(model):
        torch.sum(model(ones)).backward()
    return {
        name: (p * p.grad).abs().detach() if p.grad is not None else torch.zeros_like(p)
        for name, p in model.named_parameters()
    }


@register_proxy("synflow", uses_data=False, summary="log SynFlow: |theta * dR/dtheta| on |weights|, all-ones input")
def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn) -> float:
    """Natural log of the SynFlow score, summed over conv and linear weights.

    The log is what NASLib stores (``log(score)``, and ``0.0`` for a score of exactly
    zero: a network whose output does not depend on any scored weight).
    """
    per_parameter = synflow_per_parameter(model, inputs.shape)
    names = {id(p): name for name, p in model.named_parameters()}
    total = 0.0
    for layer in scored_layers(model):
        total += float(per_parameter[names[id(layer.weight)]].double().sum())
    if total == 0.0:
        return 0.0
    return math.log(total)
