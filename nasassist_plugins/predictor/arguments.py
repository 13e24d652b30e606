"""Argument checks of the :class:`~nasassist_plugins.predictor.Predictor` entry points.

Each public method calls one function here first, so a wrong argument (a bare module
instead of a list, ``batch_size=0``, a NaN learning rate) is refused with one clear
:class:`~nasassist_plugins.errors.NASAssistError` naming it, before any work starts.

Example::

    from nasassist_plugins.predictor.arguments import check_items

    items = check_items("predict", items, batch_size=512, seed=0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nasassist_plugins.errors import PredictorError
from nasassist_plugins.validation import check_integer, check_number

__all__ = ["check_fit_arguments", "check_items"]

#: Largest accepted ``batch_size`` / ``epochs`` (far above any real use; a bigger number is a typo).
_MAX_COUNT = 2**31


def check_items(method: str, items: Any, *, batch_size: int = 512, seed: int = 0) -> list[Any]:
    """The items as a list, after checking the container and the shared numeric arguments.

    Raises:
        PredictorError: ``items`` is a single model, graph, string or not iterable.
        ConfigurationError: ``batch_size`` is not a positive integer, ``seed`` not an integer.
    """
    from torch import nn

    from nasassist_plugins.graph import ComputationalGraph

    if isinstance(items, (nn.Module, ComputationalGraph)):
        raise PredictorError(
            f"{method} takes a list of models or graphs, got a single {type(items).__name__}; pass [item]")
    if isinstance(items, (str, bytes, dict)) or not _iterable(items):
        raise PredictorError(
            f"{method} takes a list of nn.Module or ComputationalGraph items, got {type(items).__name__}")
    check_integer("batch_size", batch_size, minimum=1, maximum=_MAX_COUNT)
    check_integer("seed", seed, minimum=0, maximum=2**63 - 1)
    return list(items)


def check_fit_arguments(values: Any, *, epochs: int, lr: float, max_seconds: float | None, seed: int) -> np.ndarray:
    """The target values of :meth:`Predictor.fit` as a float array, after checking every argument."""
    check_integer("epochs", epochs, minimum=1, maximum=_MAX_COUNT)
    check_number("lr", lr, low=0.0, low_open=True)
    check_number("max_seconds", max_seconds, low=0.0, low_open=True, optional=True)
    check_integer("seed", seed, minimum=0, maximum=2**63 - 1)
    if isinstance(values, (str, bytes)) or not _iterable(values):
        raise PredictorError(f"fit values must be a sequence of numbers, got {type(values).__name__}")
    try:
        y = np.asarray(list(values), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise PredictorError(f"fit values must be numbers: {exc}") from None
    if not np.all(np.isfinite(y)):
        raise PredictorError("fit values must be finite numbers (got NaN or inf)")
    if y.size and float(np.max(np.abs(y))) > 1e150:  # squared in the standardisation: would overflow
        raise PredictorError(f"fit values must be below 1e150 in magnitude, got {float(np.max(np.abs(y))):.3g}")
    return y


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True
