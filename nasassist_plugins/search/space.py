"""A search space as Optuna distributions: what random draws, mutations and proposers see.

Shared by every front end: the Optuna sampler builds one from the distributions its
model builder asked for; the NNI strategy and tuner convert NNI model spaces and HPO
search-space dicts into one (:mod:`nasassist_plugins.nni.space`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from optuna.distributions import BaseDistribution

from nasassist_plugins.search.candidates import contains, mutate_value, sample_value


@dataclass
class SearchSpace:
    """Dimensions of a search space, as Optuna distributions where possible.

    Attributes:
        distributions: name → Optuna distribution (what mutations and proposers use).
        other: name → NNI mutable without an Optuna equivalent (resampled when mutated).
        size: number of distinct points when the space is finite and known, else ``None``.
    """

    distributions: dict[str, BaseDistribution]
    other: dict[str, Any] = field(default_factory=dict)
    size: int | None = None

    @property
    def names(self) -> list[str]:
        return list(self.distributions) + list(self.other)

    def random(self, rng: np.random.RandomState) -> dict[str, Any]:
        """A uniform draw over every dimension."""
        params = {name: sample_value(dist, rng) for name, dist in self.distributions.items()}
        for name, mutable in self.other.items():
            params[name] = mutable.random(random_state=rng)
        return params

    def mutate(self, parent: Mapping[str, Any], rng: np.random.RandomState, rate: float | None = None) -> dict[str, Any]:
        """A copy of ``parent`` with a few dimensions moved (at least one).

        Each dimension changes with probability ``rate`` (default ``max(1/d, 0.2)``, the
        rule of the Optuna sampler); categorical choices that are sorted numbers move to a
        neighbouring value, other values jump (:func:`nasassist_plugins.search.mutate_value`).
        """
        names = [n for n in self.names if n in parent]
        child = dict(parent)
        if not names:
            return child
        rate = max(1.0 / len(names), 0.2) if rate is None else float(rate)
        chosen = [n for n in names if rng.rand() < rate] or [names[rng.randint(len(names))]]
        for name in chosen:
            if name in self.distributions:
                child[name] = mutate_value(self.distributions[name], parent[name], rng)
            else:
                child[name] = self.other[name].random(random_state=rng)
        return child

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` sets every Optuna-described dimension to a legal value."""
        return all(name in params and contains(dist, params[name]) for name, dist in self.distributions.items())


def to_builtin(value: Any) -> Any:
    """numpy scalars → Python scalars (NNI sends parameters as JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    return value
