"""One call that scores a model with many zero-cost proxies: :func:`compute_proxies`.

Each proxy runs isolated (see :func:`._base.isolated`), with torch's RNG seeded by
``seed`` so results do not depend on which other proxies run or in what order. A proxy
that raises, or returns NaN/inf, yields ``nan`` and logs the reason on the
``nasassist_plugins.proxies`` logger; it never stops the others. Problems that would
make every proxy fail (the model raising on the batch, targets that do not fit) are
raised up front instead, as :class:`ProxyInputError` (see :mod:`._batch`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from nasassist_plugins.proxies._base import (
    LossFn,
    ProxySpec,
    available_proxies,
    describe_exception,
    forked_rng,
    get_proxy,
)

from nasassist_plugins.proxies._batch import prepare_batch

_logger = logging.getLogger(__name__)

__all__ = ["ProxyRun", "compute_proxies", "run_proxies"]


@dataclass(frozen=True)
class ProxyRun:
    """Outcome of one proxy: its value (``nan`` on failure), wall time and failure reason."""

    name: str
    value: float
    seconds: float
    error: Optional[str] = None


def _resolve(names: Optional[Sequence[str]]) -> list[ProxySpec]:
    if names is None:
        return [get_proxy(n) for n in available_proxies()]
    if isinstance(names, str):
        names = [names]
    specs = [get_proxy(n) for n in names]  # ValueError listing the names for an unknown one
    if len({s.name for s in specs}) != len(specs):
        raise ValueError(f"proxy names repeat: {list(names)}")
    return specs


def _run_one(
    spec: ProxySpec, model: nn.Module, inputs: torch.Tensor, targets: Optional[torch.Tensor], loss_fn: LossFn, seed: int
) -> ProxyRun:
    start = time.perf_counter()
    error: Optional[str] = None
    try:
        with forked_rng(inputs.device):
            torch.manual_seed(seed)
            value = float(spec.fn(model, inputs, targets if spec.uses_labels else None, loss_fn))
        if not math.isfinite(value):
            error, value = f"non-finite value {value!r}", math.nan
    except Exception as exc:  # noqa: BLE001 - a failing proxy must not stop the others
        error, value = describe_exception(exc), math.nan
    seconds = time.perf_counter() - start
    if error is not None:
        _logger.warning("proxy %r failed on %s: %s", spec.name, type(model).__name__, error)
    return ProxyRun(spec.name, value, seconds, error)


def run_proxies(
    model: nn.Module,
    inputs: Optional[torch.Tensor] = None,
    targets: Optional[torch.Tensor] = None,
    *,
    names: Optional[Sequence[str]] = None,
    input_shape: Optional[Sequence[int]] = None,
    num_classes: Optional[int] = None,
    loss_fn: Optional[LossFn] = None,
    progress: bool = True,
    seed: int = 0,
) -> list[ProxyRun]:
    """Like :func:`compute_proxies`, but returns each proxy's time and failure reason too."""
    specs = _resolve(names)
    inputs, targets, loss = prepare_batch(
        model,
        inputs,
        targets,
        input_shape=input_shape,
        num_classes=num_classes,
        loss_fn=loss_fn,
        seed=seed,
        runs_model=any(s.runs_model for s in specs),
        uses_labels=any(s.uses_labels for s in specs),
    )
    runs = []
    bar = tqdm(specs, desc="zero-cost proxies", unit="proxy", disable=not progress, leave=False)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        runs.append(_run_one(spec, model, inputs, targets, loss, seed))
    return runs


def compute_proxies(
    model: nn.Module,
    inputs: Optional[torch.Tensor] = None,
    targets: Optional[torch.Tensor] = None,
    *,
    names: Optional[Sequence[str]] = None,
    input_shape: Optional[Sequence[int]] = None,
    num_classes: Optional[int] = None,
    loss_fn: Optional[LossFn] = None,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Score ``model`` with zero-cost proxies on one batch; ``{name: value}``.

    Args:
        model: any ``nn.Module`` whose forward takes one tensor and returns one tensor.
            It is never changed (weights, buffers, grads, ``requires_grad``, modes).
        inputs: one batch. ``None``: standard normal data of ``input_shape``.
        targets: labels for the label-based proxies (snip, grasp, fisher, grad_norm,
            zico). ``None``: random class indices (or normal targets for a non-2-d output).
        names: proxies to compute (default: all, see :func:`available_proxies`).
        input_shape: shape of the synthetic batch, batch dimension included, e.g.
            ``(64, 3, 32, 32)``; needed when ``inputs`` is ``None``.
        num_classes: classes of the synthetic labels (default: the model's logits).
        loss_fn: ``loss_fn(output, targets) -> scalar`` (default: cross-entropy for
            integer targets, MSE otherwise).
        progress: show a progress bar over the proxies.
        seed: seeds the synthetic data and each proxy's randomness.

    Returns:
        One float per requested proxy, in the order requested; ``nan`` for a proxy that
        failed (the reason is logged on the ``nasassist_plugins.proxies`` logger).

    Raises:
        ValueError: an unknown proxy name.
        ProxyTypeError: ``model`` is not a module, or ``inputs``/``targets`` not tensors.
        ProxyInputError: no inputs and no ``input_shape``; the model fails on the batch
            (e.g. wrong shape); targets/loss that do not fit the output.
    """
    runs = run_proxies(
        model,
        inputs,
        targets,
        names=names,
        input_shape=input_shape,
        num_classes=num_classes,
        loss_fn=loss_fn,
        progress=progress,
        seed=seed,
    )
    return {run.name: run.value for run in runs}
