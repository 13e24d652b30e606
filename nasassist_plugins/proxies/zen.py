"""Zen-NAS score (Lin et al., ICCV 2021).

Measures the expressivity of a network by how much its pre-pooling feature map moves
under a small Gaussian perturbation of the input, with the weights re-drawn from a
standard normal and the growth absorbed by BatchNorm added back as ``log`` of the
BatchNorm scales. Uses random inputs of the batch's shape, never the data.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, hooks, register_proxy, reinitialise

__all__ = ["zen", "gaussian_init"]

_MIXUP_GAMMA = 1e-2
_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


@torch.no_grad()
def gaussian_init(model: nn.Module) -> None:
    """Zen-NAS initialisation: conv/linear weights ~ N(0, 1), biases 0, norm scales 1 and shifts 0."""
    reinitialise(model, nn.init.normal_)


class _FeatureTap:
    """Records the pre-global-pooling features and the BatchNorm batch variances of a forward.

    The features are the input of the last global average pooling module that runs
    (Zen-NAS's ``forward_pre_GAP``); a model without one falls back to the input of its
    last linear layer, and then to its output.
    """

    def __init__(self, model: nn.Module) -> None:
        self.pooled: torch.Tensor | None = None
        self.linear: torch.Tensor | None = None
        self.bn_log_scales: list[torch.Tensor] = []
        self.handles = []
        for m in model.modules():
            if isinstance(m, _GLOBAL_POOLS):
                self.handles.append(m.register_forward_hook(self._on_pool))
            elif isinstance(m, nn.Linear):
                self.handles.append(m.register_forward_hook(self._on_linear))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                self.handles.append(m.register_forward_hook(self._on_bn))

    def _on_pool(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.pooled = args[0]

    def _on_linear(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.linear = args[0]

    def _on_bn(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        x = args[0]
        dims = [d for d in range(x.dim()) if d != 1]
        variance = x.double().var(dim=dims, unbiased=False).mean()
        if variance > 0:  # a BatchNorm fed a constant (a dead branch) scales nothing
            self.bn_log_scales.append(0.5 * torch.log(variance))

    def features(self, output: torch.Tensor) -> torch.Tensor:
        for candidate in (self.pooled, self.linear, output):
            if candidate is not None:
                return candidate
        return output  # pragma: no cover


@register_proxy("zen", uses_data=False, summary="Zen-NAS: log E|f(x) - f(x + 0.01 e)| + sum log sigma_BN")
def zen(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn) -> float:
    """``log E_n ||f(x) - f(x + 0.01 e)||_1 + sum_BN log sigma_BN`` (one repeat).

    ``f`` is the pre-global-pooling feature map, ``x`` and ``e`` are standard normal
    tensors of the batch's shape, and the weights are re-drawn by :func:`gaussian_init`,
    so the score depends only on the architecture and the random draw. ``sigma_BN`` is
    the square root of the mean over channels of a BatchNorm's batch variance on the
    clean input (the paper's definition; ZenNAS's code reads ``running_var`` after a
    forward with momentum 0.1, which mixes in the initial value 1).
    """
    model.train()
    gaussian_init(model)
    x = torch.randn(inputs.shape, dtype=inputs.dtype, device=inputs.device)
    noise = torch.randn(inputs.shape, dtype=inputs.dtype, device=inputs.device)
    with torch.no_grad():
        tap = _FeatureTap(model)
        with hooks(tap.handles):
            clean = tap.features(model(x)).double()
            log_scale = sum(float(s) for s in tap.bn_log_scales)
            tap.pooled = tap.linear = None
            tap.bn_log_scales = []
            mixed = tap.features(model(x + _MIXUP_GAMMA * noise)).double()
    dims = tuple(range(1, clean.dim()))
    distance = (clean - mixed).abs().sum(dim=dims).mean() if dims else (clean - mixed).abs().mean()
    if distance <= 0:
        raise ValueError("the features do not change with the input (no path from input to output)")
    return float(torch.log(distance) + log_scale)
