"""Argument checks shared by every public constructor and function, declared once.

Each returns the cleaned value or raises :class:`~nasassist_plugins.errors.ConfigurationError`
naming the argument (:class:`~nasassist_plugins.errors.ConfigurationTypeError`, also a
``TypeError``, when the type is wrong). NaN and infinities are never accepted where a number
is expected, and booleans never count as numbers.

Example::

    from nasassist_plugins.validation import check_integer, check_number

    n_candidates = check_integer("n_candidates", n_candidates, minimum=1)
    kappa = check_number("kappa", kappa, low=0.0)
    quantile = check_number("prune_quantile", quantile, low=0.0, high=1.0, high_open=True, optional=True)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from nasassist_plugins.errors import ConfigurationError, ConfigurationTypeError

__all__ = ["check_choice", "check_integer", "check_number"]


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> float | None:
    """A finite real number within ``[low, high]`` (bounds open when ``*_open``); ``None`` if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationTypeError(f"{name} must be a number, got {type(value).__name__} {value!r:.60}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigurationError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigurationError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value:g}")
    return value


def check_integer(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, optional: bool = False
) -> int | None:
    """An integer within ``[minimum, maximum]``; ``None`` if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r:.60}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """One of ``choices`` (compared with ``==``)."""
    options = tuple(choices)
    if value not in options:
        raise ConfigurationError(f"{name} must be one of {options}, got {value!r:.60}")
    return value
