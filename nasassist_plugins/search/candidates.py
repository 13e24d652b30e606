"""Random draws and local mutations over Optuna distributions.

The Optuna sampler uses them directly; the NNI strategy converts its choices to
``CategoricalDistribution`` first, so both explore the same way. Values are returned
in external representation (what ``trial.suggest_*`` returns).
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Mapping

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from nasassist_plugins.errors import SearchError


def params_key(params: Mapping[str, Any]) -> str:
    """Canonical string of a parameter set (sorted JSON), used to cache and de-duplicate."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, default=repr)


def sample_value(distribution: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A uniform draw (log-uniform for ``log=True``) from an Optuna distribution."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(rng.randint(len(distribution.choices)))]
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            value = math.exp(rng.uniform(math.log(distribution.low), math.log(distribution.high + 1)))
            return int(min(max(math.floor(value), distribution.low), distribution.high))
        n_steps = (distribution.high - distribution.low) // distribution.step
        return int(distribution.low + distribution.step * rng.randint(n_steps + 1))
    if isinstance(distribution, FloatDistribution):
        if distribution.log:
            return float(math.exp(rng.uniform(math.log(distribution.low), math.log(distribution.high))))
        if distribution.step is not None:
            n_steps = int(round((distribution.high - distribution.low) / distribution.step))
            return float(distribution.low + distribution.step * rng.randint(n_steps + 1))
        return float(rng.uniform(distribution.low, distribution.high))
    raise SearchError(f"unsupported distribution {type(distribution).__name__}")


def _ordered_numeric(choices: tuple[Any, ...]) -> bool:
    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
    return numeric and list(choices) == sorted(choices)


def mutate_value(distribution: BaseDistribution, value: Any, rng: np.random.RandomState) -> Any:
    """A value near ``value``: an adjacent step/choice, or a small (log-)Gaussian move.

    Categorical choices that are sorted numbers (channel widths, kernel sizes) move to a
    neighbouring choice; other categoricals jump to a different random choice.
    """
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        if len(choices) == 1:
            return choices[0]
        try:
            index = choices.index(value)
        except ValueError:
            return sample_value(distribution, rng)
        if _ordered_numeric(choices):
            neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(choices)]
            return choices[neighbours[int(rng.randint(len(neighbours)))]]
        others = [i for i in range(len(choices)) if i != index]
        return choices[others[int(rng.randint(len(others)))]]
    if isinstance(distribution, IntDistribution):
        if distribution.low == distribution.high:
            return distribution.low
        if distribution.log:
            moved = math.exp(math.log(max(value, 1)) + rng.normal(0.0, 0.3 * math.log(distribution.high / distribution.low)))
            moved = int(round(moved))
        else:
            span = max(1, (distribution.high - distribution.low) // distribution.step)
            steps = max(1, int(round(abs(rng.normal(0.0, max(1.0, 0.15 * span))))))
            moved = value + distribution.step * steps * (1 if rng.rand() < 0.5 else -1)
        moved = min(max(moved, distribution.low), distribution.high)
        if distribution.step > 1 and not distribution.log:
            moved = distribution.low + distribution.step * round((moved - distribution.low) / distribution.step)
        return int(moved if moved != value else sample_value(distribution, rng))
    if isinstance(distribution, FloatDistribution):
        if distribution.low == distribution.high:
            return distribution.low
        if distribution.log:
            width = math.log(distribution.high) - math.log(distribution.low)
            moved = math.exp(math.log(value) + rng.normal(0.0, 0.15 * width))
        else:
            moved = value + rng.normal(0.0, 0.15 * (distribution.high - distribution.low))
        moved = min(max(moved, distribution.low), distribution.high)
        if distribution.step is not None:
            moved = distribution.low + distribution.step * round((moved - distribution.low) / distribution.step)
            moved = min(moved, distribution.high)
        return float(moved)
    raise SearchError(f"unsupported distribution {type(distribution).__name__}")


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a legal value of ``distribution``.

    Stricter than Optuna's own conversion, which would accept near misses: a bool or a
    string is not a number (``True`` and ``"3"`` are not in ``IntDistribution(1, 5)``), and
    a categorical choice matches by value and type first (``1.0`` still matches the choice
    ``1``, ``True`` does not).
    """
    try:
        if isinstance(distribution, CategoricalDistribution):
            return any(value == c and type(value) is type(c) for c in distribution.choices) or (
                value in distribution.choices and not isinstance(value, bool)
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        return bool(distribution._contains(distribution.to_internal_repr(value)))  # noqa: SLF001 - Optuna's own check
    except (ValueError, TypeError):  # a value that cannot be compared or converted
        return False
