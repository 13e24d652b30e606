"""Pruning-at-initialisation saliencies used as proxies: SNIP, GraSP, Fisher, grad-norm.

Abdelfattah et al. (2021, "Zero-Cost Proxies for Lightweight NAS") turned these
per-weight pruning scores into architecture scores by summing them over all weights of
convolution and linear layers; NASLib stores those sums. All four evaluate the loss on
one labelled batch with the network in train mode.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, enable_all_grads, hooks, register_proxy, scored_layers

__all__ = ["snip", "grasp", "fisher", "grad_norm", "snip_per_parameter"]


def _loss_backward(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> None:
    """Train mode, every parameter trainable, one forward/backward of the loss."""
    model.train()
    enable_all_grads(model)
    loss_fn(model(inputs), targets).backward()


def snip_per_parameter(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
) -> dict[str, torch.Tensor]:
    """Per-parameter SNIP saliency ``|theta * dL/dtheta|`` of every parameter (by name).

    This equals SNIP's ``|dL/dc|`` for a multiplicative mask ``c = 1`` on each weight
    (Lee et al., 2019), without patching the layers' forward. Changes ``model``.
    """
    _loss_backward(model, inputs, targets, loss_fn)
    return {
        name: (p * p.grad).abs().detach() if p.grad is not None else torch.zeros_like(p)
        for name, p in model.named_parameters()
    }


@register_proxy("snip", uses_labels=True, summary="SNIP: sum |theta * dL/dtheta|")
def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> float:
    """SNIP connection sensitivity summed over conv and linear weights."""
    _loss_backward(model, inputs, targets, loss_fn)
    return sum(
        float((layer.weight.detach() * layer.weight.grad).abs().sum())
        for layer in scored_layers(model)
        if layer.weight.grad is not None
    )


@register_proxy("grasp", uses_labels=True, summary="GraSP: sum -theta * (H g)")
def grasp(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> float:
    """GraSP (Wang et al., 2020): ``sum(-theta * H g)`` over conv and linear weights.

    ``g`` is the loss gradient and ``H g`` the Hessian-gradient product, obtained by
    back-propagating ``g_detached . g`` (double backward, so about three times the
    cost of one backward pass). The sign follows NASLib,
    where it makes the score correlate positively with accuracy.
    """
    model.train()
    enable_all_grads(model)
    weights = [layer.weight for layer in scored_layers(model)]
    if not weights:
        raise ValueError("the model has no convolution or linear layers to score")
    # One pass: the gradient g of the same batch (NASLib computes it in a separate
    # pass that gives the same value) and its graph for the Hessian-gradient product.
    grads = torch.autograd.grad(loss_fn(model(inputs), targets), weights, create_graph=True, allow_unused=True)
    terms = [(g.detach() * g).sum() for g in grads if g is not None]
    if not terms:
        raise ValueError("the loss does not depend on any convolution or linear weight")
    z = torch.stack(terms).sum()
    if not z.requires_grad:  # a piecewise-linear network whose gradient is constant in the weights
        return 0.0
    z.backward()
    return sum(float((-w.detach() * w.grad).sum()) for w in weights if w.grad is not None)


@register_proxy("fisher", uses_labels=True, summary="Fisher: channel saliency (act * dL/dact)^2")
def fisher(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> float:
    """Fisher channel saliency (Theis et al., 2018; Turner et al., 2020) summed over layers.

    For every output channel ``k`` of a conv or linear layer with activation ``a`` and
    gradient ``g = dL/da``: ``0.5 * mean_n (sum_spatial a * g)^2``. Like NASLib, each
    channel's value is counted once per weight of that channel (multiplied by
    the number of weights per output channel) before summing, so the numbers match NASLib's.
    """
    model.train()
    enable_all_grads(model)
    totals: dict[int, torch.Tensor] = {}
    layers = scored_layers(model)

    def hook_for(layer: nn.Module):
        def on_forward(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not (isinstance(output, torch.Tensor) and output.requires_grad):
                return
            act = output.detach()

            def on_grad(grad: torch.Tensor) -> None:
                prod = act * grad
                if isinstance(layer, nn.Linear):  # channels last: sum over the middle dims
                    per_channel = prod.sum(dim=tuple(range(1, prod.dim() - 1))) if prod.dim() > 2 else prod
                else:  # convolutions: channels at dim 1, sum over spatial dims
                    per_channel = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
                saliency = per_channel.pow(2).mean(0).mul(0.5)
                key = id(layer)
                totals[key] = totals[key] + saliency if key in totals else saliency

            output.register_hook(on_grad)

        return on_forward

    with hooks([layer.register_forward_hook(hook_for(layer)) for layer in layers]):
        loss_fn(model(inputs), targets).backward()
    total = 0.0
    for layer in layers:
        if id(layer) in totals:
            channel_saliency = totals[id(layer)]
            per_weight = layer.weight.numel() / channel_saliency.numel()  # weights per output channel
            total += float(channel_saliency.abs().sum()) * per_weight
    return total


@register_proxy("grad_norm", uses_labels=True, summary="sum over layers of ||dL/dW||_2")
def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> float:
    """Sum over conv and linear layers of the Euclidean norm of the weight gradient."""
    _loss_backward(model, inputs, targets, loss_fn)
    return sum(float(layer.weight.grad.norm()) for layer in scored_layers(model) if layer.weight.grad is not None)
