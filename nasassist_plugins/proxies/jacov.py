"""Jacobian covariance (Mellor et al., 2021, first version of "NAS without training").

Networks whose input-output Jacobians are less correlated across the samples of a
batch tell the samples apart better at initialisation, and tend to train better.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import LossFn, register_proxy

__all__ = ["jacov"]

_EPS = 1e-5  # regulariser of the eigenvalues, as in NASLib


@register_proxy("jacov", summary="Jacobian covariance score")
def jacov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn) -> float:
    """``-sum_i (log(v_i + k) + 1 / (v_i + k))`` over eigenvalues ``v`` of the Jacobians' correlation.

    The Jacobian of each sample is ``d sum(output) / d input`` (one backward pass with
    an all-ones output gradient, train mode), flattened; ``k = 1e-5``. Follows
    NASLib's ``jacov``. Needs at least two samples; a network whose output ignores
    the input has undefined correlations and the proxy fails.
    """
    if inputs.shape[0] < 2:
        raise ValueError(f"jacov needs a batch of at least 2 samples, got {inputs.shape[0]}")
    model.train()
    x = inputs.detach().clone().requires_grad_(True)
    y = model(x)
    y.backward(torch.ones_like(y))
    if x.grad is None:
        raise ValueError("the output does not depend on the input")
    jacobians = x.grad.detach().reshape(x.shape[0], -1).double().cpu().numpy()
    if not np.all(np.std(jacobians, axis=1) > 0):
        raise ValueError("a sample's Jacobian is constant (the output does not depend on that input)")
    corr = np.corrcoef(jacobians)
    eigenvalues = np.clip(np.linalg.eigvalsh(corr), 0.0, None)  # symmetric PSD; clip round-off
    return float(-np.sum(np.log(eigenvalues + _EPS) + 1.0 / (eigenvalues + _EPS)))
