"""A trial-like object that lets the user's model builder run without a real trial.

The sampler calls ``build_model(candidate_trial)`` to turn a parameter set into a model
(and then a graph) before anything is trained. :class:`CandidateTrial` answers each
``suggest_*`` call from, in order: forced values (an enqueued trial, a proposer, the
mutated values of a parent), the parent's other values, or a random draw; and records
what was asked so the planned parameter set is complete, conditional parameters included.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from nasassist_plugins.search.candidates import contains, sample_value


class CandidateTrial:
    """Stand-in for :class:`optuna.trial.Trial` while a candidate architecture is built.

    Args:
        rng: random state for draws and mutations.
        forced: values to use whenever the builder asks for them (if legal).
        parent: values to keep when not forced (the rest of a mutated parent).
        number: the trial number the builder sees.
    """

    def __init__(
        self,
        rng: np.random.RandomState,
        *,
        forced: Mapping[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        number: int = 0,
    ) -> None:
        self._rng = rng
        self._forced = dict(forced or {})
        self._parent = dict(parent or {})
        self.number = number
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}
        self.user_attrs: dict[str, Any] = {}
        self.system_attrs: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    # ----------------------------------------------------------------- suggest API
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return self._suggest(name, FloatDistribution(low, high, step=step, log=log))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._suggest(name, IntDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._suggest(name, CategoricalDistribution(choices))

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        if name in self.params:  # Optuna returns the first value for a repeated name
            return self.params[name]
        if name in self._forced and contains(distribution, self._forced[name]):
            value, origin = self._forced[name], "forced"
        elif name in self._parent and contains(distribution, self._parent[name]):
            value, origin = self._parent[name], "parent"
        else:
            value, origin = sample_value(distribution, self._rng), "random"
        self.params[name] = value
        self.distributions[name] = distribution
        self.origin[name] = origin
        return value

    # ----------------------------------------------------------------- the rest of the Trial surface
    def report(self, value: float, step: int) -> None:  # builders rarely report; accept and ignore
        return None

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def set_system_attr(self, key: str, value: Any) -> None:
        self.system_attrs[key] = value
