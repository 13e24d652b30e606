"""Registry of zero-cost proxies and the helpers every proxy shares.

A proxy is a function ``(model, inputs, targets, loss_fn) -> float`` that scores an
untrained network from one batch. Proxies are registered with :func:`register_proxy`,
which wraps them so that they never change the caller's model: the wrapped function
runs on a deep copy (or, when the model cannot be deep-copied, on the model itself with
every parameter, buffer, ``requires_grad`` flag, gradient and train/eval flag restored
afterwards), and inside a forked random-number generator so that proxies which draw
random numbers (Zen-NAS re-initialises the weights) leave the caller's RNG untouched.

The conventions follow NASLib's and Samsung's ``zero-cost-nas`` measures: per-weight
scores are summed over the weights of convolution and linear layers (the layers those
implementations score), and data-dependent proxies run the network in train mode (batch
statistics in BatchNorm), as a freshly built network is.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasassist_plugins.errors import ProxyInputError, ProxyTypeError

__all__ = [
    "LossFn",
    "ProxyFn",
    "ProxyInputError",
    "ProxySpec",
    "ProxyTypeError",
    "available_proxies",
    "get_proxy",
    "register_proxy",
]

#: Logger of the proxies package; a failing proxy logs its reason here.
_logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ProxyFn = Callable[..., float]




@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy and what it needs from the batch.

    Attributes:
        name: registry name (``"synflow"``).
        fn: the isolating wrapper ``(model, inputs, targets=None, loss_fn=None) -> float``.
        runs_model: whether it runs a forward pass (``params`` does not).
        uses_data: whether the *values* of ``inputs`` matter (``flops``, ``synflow`` and
            ``zen`` only read its shape).
        uses_labels: whether it evaluates ``loss_fn(model(inputs), targets)``.
        summary: one line for tables and ``--help`` texts.
    """

    name: str
    fn: ProxyFn
    runs_model: bool
    uses_data: bool
    uses_labels: bool
    summary: str


_REGISTRY: dict[str, ProxySpec] = {}


def register_proxy(
    name: str, *, runs_model: bool = True, uses_data: bool = True, uses_labels: bool = False, summary: str = ""
) -> Callable[[Callable[..., float]], ProxyFn]:
    """Decorator: register ``fn`` under ``name`` and return its isolating wrapper.

    ``fn(model, inputs, targets, loss_fn)`` may change ``model`` freely (it receives a
    private copy); it returns a float. The returned wrapper checks argument types,
    fills in the default loss and isolates the caller's model and RNG.
    """

    def decorator(fn: Callable[..., float]) -> ProxyFn:
        if name in _REGISTRY:
            raise KeyError(f"proxy {name!r} is already registered")

        @functools.wraps(fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        def proxy(
            model: nn.Module,
            inputs: torch.Tensor,
            targets: Optional[torch.Tensor] = None,
            loss_fn: Optional[LossFn] = None,
            **kwargs: object,
        ) -> float:
            _check_model(model)
            _check_tensor("inputs", inputs)
            if uses_labels and targets is None:
                raise ProxyInputError(f"proxy {name!r} needs targets (class labels or regression targets)")
            loss = loss_fn if loss_fn is not None else default_loss
            with isolated(model) as work, forked_rng(inputs.device), torch.enable_grad():
                return float(fn(work, inputs, targets, loss, **kwargs))

        del proxy.__wrapped__  # show the wrapper's signature (optional targets and loss_fn)
        _REGISTRY[name] = ProxySpec(name, proxy, runs_model, uses_data, uses_labels, summary)
        return proxy

    return decorator


def available_proxies() -> list[str]:
    """Names of all registered proxies, in registration order.

    The built-in proxies register themselves when ``nasassist_plugins.proxies`` is
    imported (which importing this module always does first).
    """
    return list(_REGISTRY)


def get_proxy(name: str) -> ProxySpec:
    """The :class:`ProxySpec` registered under ``name`` (``ValueError`` listing the names otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; available: {', '.join(_REGISTRY)}") from None


# ----------------------------------------------------------------------------- checks
@torch.no_grad()
def reinitialise(model: nn.Module, weight_init: Callable[[torch.Tensor], object]) -> None:
    """Re-draw conv/linear weights with ``weight_init`` (biases 0); norm scales 1 and shifts 0."""
    for m in model.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            weight_init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        hint = " (did you pass the class instead of an instance?)" if isinstance(model, type) else ""
        raise ProxyTypeError(f"proxies expect a torch.nn.Module, got {type(model).__name__}{hint}")


def _check_tensor(what: str, value: object) -> None:
    if not isinstance(value, torch.Tensor):
        raise ProxyTypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}")


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` for log lines and error messages."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


# ----------------------------------------------------------------------------- losses
def default_loss(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for integer class labels, mean squared error for float targets."""
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        return F.cross_entropy(output, targets.long())
    return F.mse_loss(output, targets.to(output.dtype))


# ----------------------------------------------------------------------------- layers
def scored_layers(model: nn.Module) -> list[nn.Module]:
    """Convolution and linear layers, whose weights the per-weight proxies score.

    NASLib and zero-cost-nas score ``nn.Conv2d`` and ``nn.Linear``; every ``_ConvNd``
    (1-d/3-d/transposed convolutions) is included here so other model kinds are scored
    the same way. A module that appears twice (shared) is listed once.
    """
    seen: set[int] = set()
    layers = []
    for module in model.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and id(module) not in seen:
            seen.add(id(module))
            layers.append(module)
    return layers


def enable_all_grads(model: nn.Module) -> None:
    """Let every parameter receive a gradient (proxies score frozen layers too) and clear grads."""
    for param in model.parameters():
        param.requires_grad_(True)
        param.grad = None


@contextlib.contextmanager
def bypass_batchnorm(model: nn.Module) -> Iterator[None]:
    """Turn every BatchNorm into the identity while inside (SynFlow's ``bn=False``)."""
    patched = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and "forward" not in module.__dict__:
            module.forward = _identity  # type: ignore[method-assign]
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _identity(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return x


@contextlib.contextmanager
def hooks(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    """Remove the given hook handles (registered by the caller) on exit."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------- isolation
@contextlib.contextmanager
def forked_rng(device: torch.device) -> Iterator[None]:
    """Fork torch's CPU (and, for a CUDA input, that device's) RNG while inside."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@contextlib.contextmanager
def isolated(model: nn.Module) -> Iterator[nn.Module]:
    """Yield a model the caller may change freely; ``model`` itself comes back unchanged.

    Yields a deep copy. A model that cannot be deep-copied (it holds a lock, a file,
    a non-leaf tensor) is yielded itself after a snapshot, and everything a proxy may
    change is restored on exit: parameter values and dtypes, buffers, ``requires_grad``
    flags, gradients, and every module's train/eval flag.
    """
    try:
        work = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - any failure means "use snapshot/restore"
        _logger.debug("deepcopy of %s failed (%s); restoring its state instead", type(model).__name__, exc)
        snapshot = _Snapshot(model)
        try:
            yield model
        finally:
            snapshot.restore()
        return
    yield work


class _Snapshot:
    """Everything a proxy may change on a model, saved for :meth:`restore`."""

    def __init__(self, model: nn.Module) -> None:
        self._params = []
        for module in model.modules():
            for key, param in module._parameters.items():
                if param is not None:
                    grad = None if param.grad is None else param.grad.detach().clone()
                    self._params.append((module, key, param, param.detach().clone(), param.requires_grad, grad))
        self._buffers = [
            (module, key, buf, buf.detach().clone())
            for module in model.modules()
            for key, buf in module._buffers.items()
            if buf is not None
        ]
        self._modes = [(module, module.training) for module in model.modules()]

    @torch.no_grad()
    def restore(self) -> None:
        for module, key, param, data, requires_grad, grad in self._params:
            module._parameters[key] = param  # a proxy may have replaced the Parameter object
            param.data = data
            param.requires_grad_(requires_grad)
            param.grad = grad
        for module, key, buf, data in self._buffers:
            if buf.dtype == data.dtype and buf.shape == data.shape and buf.device == data.device:
                buf.copy_(data)
                module._buffers[key] = buf
            else:
                module._buffers[key] = data
        for module, training in self._modes:
            module.training = training
