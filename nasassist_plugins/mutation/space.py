"""Search-space helpers on Optuna distributions: coercion of near misses, neighbours.

Membership (:func:`contains`) and keys come from :mod:`nasassist_plugins.search.candidates`.

"Neighbour" means the smallest change a parameter allows: the adjacent step of an int or
a float (a factor on a log scale), the adjacent choice of an *ordered* categorical (all
choices numeric), and any other choice of an unordered categorical.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from nasassist_plugins.search.candidates import contains, params_key

__all__ = ["contains", "coerce", "neighbours", "params_key"]

_LOG_FACTOR = 1.5


def _is_ordered(distribution: CategoricalDistribution) -> bool:
    return len(distribution.choices) > 1 and all(
        isinstance(c, (int, float)) and not isinstance(c, bool) for c in distribution.choices
    )


def coerce(distribution: BaseDistribution, value: Any) -> Any:
    """``value`` converted to the distribution's type when it is a near miss (``"3"`` → ``3``).

    Returns ``None`` when no sensible conversion exists.
    """
    if contains(distribution, value):
        if isinstance(distribution, IntDistribution):
            return int(value)
        if isinstance(distribution, FloatDistribution):
            return float(value)
        return next((c for c in distribution.choices if c == value), value) if isinstance(distribution, CategoricalDistribution) else value
    if isinstance(distribution, CategoricalDistribution):
        text = str(value)
        matches = [c for c in distribution.choices if str(c) == text]
        return matches[0] if len(matches) == 1 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if isinstance(distribution, IntDistribution) and number.is_integer():
        number = int(number)
    return number if contains(distribution, number) else None


def neighbours(distribution: BaseDistribution, value: Any, rng: np.random.RandomState, limit: int = 4) -> list[Any]:
    """Up to ``limit`` values next to ``value`` (see the module docstring); never ``value`` itself."""
    out: list[Any] = []
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        if _is_ordered(distribution) and value in choices:
            order = sorted(choices)
            i = order.index(value)
            out = [order[j] for j in (i - 1, i + 1) if 0 <= j < len(order)]
        else:
            others = [c for c in choices if not (c == value and type(c) is type(value))]
            if len(others) > limit:
                picks = rng.choice(len(others), size=limit, replace=False)
                others = [others[int(k)] for k in sorted(picks)]
            out = others
    elif isinstance(distribution, IntDistribution):
        v = int(value)
        if distribution.log:
            candidates = {max(distribution.low, int(math.floor(v / _LOG_FACTOR))), min(distribution.high, int(math.ceil(v * _LOG_FACTOR)))}
        else:
            candidates = {v - distribution.step, v + distribution.step}
        out = sorted(c for c in candidates if distribution.low <= c <= distribution.high and c != v)
    elif isinstance(distribution, FloatDistribution):
        v = float(value)
        if distribution.log:
            candidates = [v / _LOG_FACTOR, v * _LOG_FACTOR]
        elif distribution.step is not None:
            candidates = [v - distribution.step, v + distribution.step]
        else:
            width = (distribution.high - distribution.low) * 0.1
            candidates = [v - width, v + width]
        out = [min(max(c, distribution.low), distribution.high) for c in candidates]
        out = [c for c in dict.fromkeys(out) if not math.isclose(c, v)]
    return out[:limit]
