"""Turning the caller's arguments into one checked batch: inputs, targets and a loss.

Everything that would make *every* requested proxy fail for the same reason is
checked here, once, and raised as :class:`ProxyInputError` with a message naming the
problem: the model failing on the batch (wrong input shape, a bug in ``forward``), an
output that is not a tensor, and targets or a loss that do not fit the output. A proxy
that fails for its own reasons later yields NaN instead (see :mod:`.compute`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from nasassist_plugins.proxies._base import (
    LossFn,
    ProxyInputError,
    ProxyTypeError,
    default_loss,
    describe_exception,
    forked_rng,
    isolated,
)

__all__ = ["prepare_batch", "model_device"]


def model_device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter or buffer (CPU/float32 if none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _shape_text(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def _synthetic_inputs(model: nn.Module, input_shape: Sequence[int] | None, seed: int) -> torch.Tensor:
    if input_shape is None:
        raise ProxyInputError(
            "no inputs given: pass a batch (inputs=...) or its shape, e.g. input_shape=(64, 3, 32, 32)"
        )
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ProxyInputError(
            f"input_shape must be a sequence of ints such as (64, 3, 32, 32), got {input_shape!r}"
        ) from None
    if len(shape) < 2 or any(d <= 0 for d in shape):
        raise ProxyInputError(
            f"input_shape must include the batch dimension and have positive sizes, e.g. (64, 3, 32, 32); got {shape}"
        )
    device, dtype = model_device(model)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)


def _forward_once(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model's output on (the first two samples of) ``inputs``: eval mode, no grad, isolated.

    Two samples are enough to catch a wrong input shape and cost little next to the
    proxies; a model that only works at the full batch size is retried with it.
    """
    try:
        return _forward(model, inputs[:2])
    except ProxyInputError:
        if inputs.shape[0] <= 2:
            raise
        return _forward(model, inputs)


def _forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    name = type(model).__name__
    try:
        with isolated(model) as work, forked_rng(inputs.device), torch.no_grad():
            work.eval()
            output = work(inputs)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise ProxyInputError(
            f"{name} fails on the input batch of shape {_shape_text(inputs)} ({describe_exception(exc)}); "
            "every proxy that runs the model would fail: check inputs / input_shape"
        ) from exc
    if not isinstance(output, torch.Tensor):
        raise ProxyInputError(
            f"{name} returns {type(output).__name__}, not a tensor; the proxies need the logits as one tensor "
            "(wrap the model so that forward returns them)"
        )
    return output


def _synthetic_targets(output: torch.Tensor, batch_size: int, num_classes: Optional[int], seed: int) -> torch.Tensor:
    """Targets for ``batch_size`` samples of an output shaped like ``output`` (any batch size)."""
    generator = torch.Generator().manual_seed(seed + 1)
    if output.dim() == 2:
        classes = int(num_classes) if num_classes is not None else output.shape[1]
        if classes < 1 or classes > output.shape[1]:
            raise ProxyInputError(
                f"num_classes={num_classes} does not fit the model's output of shape {_shape_text(output)} "
                f"(it has {output.shape[1]} logits)"
            )
        return torch.randint(0, classes, (batch_size,), generator=generator).to(output.device)
    shape = (batch_size, *output.shape[1:])
    return torch.randn(shape, generator=generator).to(device=output.device, dtype=output.dtype)


def _check_targets(output: torch.Tensor, batch_size: int, targets: torch.Tensor, loss_fn: LossFn) -> None:
    """``targets`` has one entry per sample and ``loss_fn`` accepts them (checked on ``output``'s samples)."""
    if targets.dim() == 0 or targets.shape[0] != batch_size:
        raise ProxyInputError(
            f"targets of shape {_shape_text(targets)} do not match the batch of {batch_size} samples"
        )
    try:
        with torch.no_grad():
            loss = loss_fn(output, targets[: output.shape[0]])
    except Exception as exc:  # noqa: BLE001
        raise ProxyInputError(
            f"the loss fails on the model output {_shape_text(output)} and targets {_shape_text(targets)} "
            f"({describe_exception(exc)}); every label-based proxy would fail"
        ) from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ProxyInputError("loss_fn must return a scalar tensor")


def _check_class_range(output: torch.Tensor, targets: torch.Tensor) -> None:
    """Integer labels for the default cross-entropy must index the model's logits (all samples)."""
    if output.dim() != 2 or targets.is_floating_point() or targets.numel() == 0:
        return
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= output.shape[1]:
        raise ProxyInputError(
            f"targets hold class indices from {low} to {high}, but the model has {output.shape[1]} logits; "
            "every label-based proxy would fail"
        )


def prepare_batch(
    model: nn.Module,
    inputs: Optional[torch.Tensor],
    targets: Optional[torch.Tensor],
    *,
    input_shape: Sequence[int] | None,
    num_classes: Optional[int],
    loss_fn: Optional[LossFn],
    seed: int,
    runs_model: bool,
    uses_labels: bool,
) -> tuple[torch.Tensor, Optional[torch.Tensor], LossFn]:
    """Checked ``(inputs, targets, loss_fn)`` for the requested proxies.

    Synthetic inputs are standard normal of ``input_shape`` (batch dimension
    included). Synthetic targets, made only when a requested proxy uses labels, are
    uniform class indices for a 2-d output (``num_classes`` defaults to the number of
    logits) and standard normal regression targets for any other output shape. The
    default loss is cross-entropy for integer targets and MSE for float targets.

    Raises:
        ProxyTypeError: ``model`` is not a module, ``inputs``/``targets`` not tensors.
        ProxyInputError: see the module docstring.
    """
    if not isinstance(model, nn.Module):
        hint = " (did you pass the class instead of an instance?)" if isinstance(model, type) else ""
        raise ProxyTypeError(f"proxies expect a torch.nn.Module, got {type(model).__name__}{hint}")
    if inputs is None:
        inputs = _synthetic_inputs(model, input_shape, seed)
    elif not isinstance(inputs, torch.Tensor):
        raise ProxyTypeError(f"inputs must be a torch.Tensor (one batch), got {type(inputs).__name__}")
    elif input_shape is not None and tuple(inputs.shape) != tuple(input_shape):
        raise ProxyInputError(f"inputs have shape {_shape_text(inputs)} but input_shape={tuple(input_shape)}")
    if inputs.dim() == 0 or inputs.shape[0] < 1:
        raise ProxyInputError(f"inputs must be a batch with at least one sample, got shape {_shape_text(inputs)}")
    if targets is not None and not isinstance(targets, torch.Tensor):
        raise ProxyTypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    loss = loss_fn if loss_fn is not None else default_loss
    if not runs_model:
        return inputs, targets, loss
    output = _forward_once(model, inputs)
    if uses_labels:
        if targets is None:
            targets = _synthetic_targets(output, inputs.shape[0], num_classes, seed)
        targets = targets.to(output.device)
        _check_targets(output, inputs.shape[0], targets, loss)
        if loss_fn is None:
            _check_class_range(output, targets)
    return inputs, targets, loss
