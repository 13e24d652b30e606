"""Per-module saliency: how much each layer contributes to a proxy (for layer relevance).

The per-parameter scores of SynFlow or SNIP are summed per module, so a layer whose
output never reaches the network's output (a dead branch, a branch multiplied by 0)
scores exactly 0, and layers can be ranked by their share of the total.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, forked_rng, isolated
from nasassist_plugins.proxies._batch import prepare_batch
from nasassist_plugins.proxies.pruning import snip_per_parameter
from nasassist_plugins.proxies.synflow import synflow_per_parameter

__all__ = ["module_saliency", "SALIENCY_METHODS"]

SALIENCY_METHODS = ("synflow", "snip")


def module_saliency(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[int],
    targets: Optional[torch.Tensor] = None,
    *,
    method: str = "synflow",
    loss_fn: Optional[LossFn] = None,
    num_classes: Optional[int] = None,
    seed: int = 0,
) -> dict[str, float]:
    """Saliency of every module that owns parameters, keyed by qualified name.

    Each module's value is the sum of the per-parameter saliency of its own
    parameters (not its children's): in practice the leaf layers (convolutions,
    linear layers, norms). Parameter-free modules are not listed; a parameter shared
    by several modules counts for the first one only.

    Args:
        model: the network; never changed.
        inputs: a batch, or its shape (batch dimension included) for standard normal data.
        targets: labels for ``method="snip"`` (random class indices when ``None``).
        method: ``"synflow"`` (``|theta * dR/dtheta|`` on absolute weights, all-ones
            input, BatchNorm bypassed, so BatchNorm parameters score 0) or ``"snip"``
            (``|theta * dL/dtheta|`` on the batch, train mode).
        loss_fn: loss for ``"snip"`` (default: cross-entropy / MSE by target dtype).
        num_classes: classes of the synthetic labels.
        seed: seeds synthetic data.

    Raises:
        ValueError: an unknown ``method``.
        ProxyInputError / ProxyTypeError: as :func:`compute_proxies` for a bad batch.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"method must be one of {SALIENCY_METHODS}, got {method!r}")
    tensor = inputs if isinstance(inputs, torch.Tensor) else None
    shape = None if tensor is not None else inputs
    batch, targets, loss = prepare_batch(
        model,
        tensor,
        targets,
        input_shape=shape,
        num_classes=num_classes,
        loss_fn=loss_fn,
        seed=seed,
        runs_model=True,
        uses_labels=method == "snip",
    )
    with isolated(model) as work, forked_rng(batch.device), torch.enable_grad():
        torch.manual_seed(seed)
        if method == "synflow":
            per_param = synflow_per_parameter(work, batch.shape)
        else:
            per_param = snip_per_parameter(work, batch, targets, loss)
        return _per_module(work, per_param)


def _per_module(model: nn.Module, per_param: dict[str, torch.Tensor]) -> dict[str, float]:
    """Sum ``per_param`` (keyed like ``named_parameters``) over each module's own parameters."""
    result: dict[str, float] = {}
    for module_name, module in model.named_modules():
        own = [key for key, p in module._parameters.items() if p is not None]
        if not own:
            continue
        keys = [f"{module_name}.{key}" if module_name else key for key in own]
        present = [per_param[k] for k in keys if k in per_param]
        if present:
            result[module_name] = float(sum(float(t.sum()) for t in present))
    return result
