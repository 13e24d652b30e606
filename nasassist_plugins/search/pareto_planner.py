"""The planner of a multi-objective (or budgeted) search: objectives per candidate, Pareto-aware choice.

:class:`ParetoPlanner` is the :class:`~nasassist_plugins.search.planner.Planner` with an
:class:`~nasassist_plugins.search.objectives.ObjectiveSet`:

1. the pool is built as in the single-objective planner (random draws, mutations of
   parents, proposals); every new candidate's graph-derived and measured objectives
   (parameters, FLOPs, latency timed here, callables) and the cost features of the
   device-latency predictors are computed once, when it is built, and cached by key;
2. ``"score"`` comes from the study surrogate (zero-shot, then fine-tuned on the study's
   finished values of that objective); device latencies from the predictors, adapted to
   the values the study stored for them;
3. candidates predicted to break a hard budget (``max_params``, ``max_latency_ms``) or a
   constraint (``feasibility``, e.g. Optuna's ``constraints_func`` evaluated on the
   predicted values) are never chosen;
4. :func:`~nasassist_plugins.search.pareto.select_pareto_candidate` (expected hypervolume
   improvement, or a random augmented-Chebyshev scalarisation per decision) orders the
   feasible candidates; the shortlist is re-scored from the built models (stage 2) and
   ordered again.

Parents for mutation are the finished architectures in non-dominated order. Values are in
the study's own units and directions (no sign flips outside :mod:`~nasassist_plugins.search.pareto`).

Example::

    objectives = ObjectiveSet(["score", "params"], ["maximize", "minimize"], max_params=1e6)
    planner = ParetoPlanner(StudySurrogate(), PlannerConfig(), objectives=objectives)
    planner.observe_values({"width": 32}, [0.91, 2.1e5])
    decision = planner.plan(space, source, np.random.RandomState(0), budget=1.0)
    planner.predicted[decision.key]          # (means, stds, violations) per objective
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from nasassist_plugins.errors import ObjectiveError, SearchError
from nasassist_plugins.search.candidates import params_key
from nasassist_plugins.search.objectives import ObjectiveSet
from nasassist_plugins.search.pareto import (
    PARETO_RULES,
    pareto_mask,
    select_pareto_candidate,
    to_minimization,
)
from nasassist_plugins.search.planner import Decision, Planner
from nasassist_plugins.search.source import CandidateSource, to_graph

__all__ = ["ParetoPlanner", "Prediction"]

_logger = logging.getLogger(__name__)

#: ``feasibility(params, predicted_values)``: constraint values (<= 0 feasible), or ``None`` when unknown.
Feasibility = Callable[[Mapping[str, Any], Sequence[float]], "Sequence[float] | None"]


class Prediction(NamedTuple):
    """One candidate's predicted objectives (study units, one entry per objective) and why it is infeasible."""

    mean: list[float]
    std: list[float]
    violations: list[str]


class ParetoPlanner(Planner):
    """Planner over several objectives (and budgets): see the module docstring.

    Args:
        surrogate, config, proposer: as for :class:`~nasassist_plugins.search.planner.Planner`.
        objectives: the study's :class:`~nasassist_plugins.search.objectives.ObjectiveSet`
            (with the study's directions).
        rule: ``"ehvi"`` (default) or ``"parego"`` (see :func:`~nasassist_plugins.search.pareto.select_pareto_candidate`).
        feasibility: optional ``(params, predicted_values) -> constraint values or None``;
            a candidate with a value > 0 is never chosen. Default ``None``.
    """

    def __init__(self, surrogate: Any, config: Any = None, *, objectives: ObjectiveSet, proposer: Any = None,
                 rule: str = "ehvi", feasibility: Feasibility | None = None) -> None:
        super().__init__(surrogate, config, proposer=proposer)
        if rule not in PARETO_RULES:
            raise SearchError(f"rule must be one of {', '.join(PARETO_RULES)}, got {rule!r}")
        self.objectives = objectives
        self.rule = rule
        self.feasibility = feasibility
        #: key -> the study's values of finished architectures
        self.values: dict[str, np.ndarray] = {}
        #: keys of finished architectures that broke a constraint
        self.infeasible: set[str] = set()
        #: key -> predicted (mean, std, violations) of the last decision's candidates
        self.predicted: dict[str, Prediction] = {}
        # key -> (exact objective values with NaN where predicted, budget values, cost features)
        self._computed: dict[str, tuple[np.ndarray, dict[str, float], np.ndarray | None]] = {}
        self._score = objectives.score_index
        self._score_sign = 1.0 if self._score is None or objectives.directions[self._score] == "maximize" else -1.0

    # ------------------------------------------------------------------ evidence
    def reset(self) -> None:
        super().reset()
        self.values.clear()
        self.infeasible.clear()

    def observe_values(self, params: Mapping[str, Any], values: Sequence[float], *, feasible: bool = True) -> None:
        """Record a finished architecture's values (study units, one per objective)."""
        row = np.asarray(values, dtype=np.float64).reshape(-1)
        if row.size != self.objectives.n_objectives or not np.all(np.isfinite(row)):
            self.mark_taken(params)
            return
        key = self.mark_taken(params)
        self.values[key] = row
        if not feasible:
            self.infeasible.add(key)
        if self._score is not None:
            self.observe(params, self._score_sign * float(row[self._score]))

    def parents(self) -> list[tuple[dict[str, Any], float]]:
        """Finished feasible architectures in non-dominated order (front 0 first), at most ``population_size``."""
        keys = [k for k in self.values if k not in self.infeasible] or list(self.values)
        if not keys:
            return []
        points = to_minimization(np.stack([self.values[k] for k in keys]), self.objectives.directions)
        rank = np.zeros(len(keys), dtype=int)
        left = np.arange(len(keys))
        level = 0
        while left.size:
            front = pareto_mask(points[left])
            rank[left[front]] = level
            left = left[~front]
            level += 1
        order = np.argsort(rank, kind="stable")[: self.config.population_size]
        return [(dict(self._params[keys[i]]), -float(rank[i])) for i in order]

    # ------------------------------------------------------------------ objectives of candidates
    def _admit(self, keys: list[str], built: list[Any], graphs: list[Any]) -> tuple[list[str], list[Any]]:
        kept_keys, kept_graphs = [], []
        for key, item, graph in zip(keys, built, graphs):
            if self._compute(key, item, graph):
                kept_keys.append(key)
                kept_graphs.append(graph)
        return kept_keys, kept_graphs

    def _compute(self, key: str, built: Any, graph: Any) -> bool:
        """Objectives, budget values and cost features of one built candidate (cached); whether they could be computed."""
        if key in self._computed:
            return True
        from nasassist_plugins.graph import ComputationalGraph

        model = None if isinstance(built, ComputationalGraph) else built
        try:
            mean, _ = self.objectives.evaluate(model, graph)
            budget = self.objectives.budget_values(mean, model, graph)
            features = self.objectives.features(graph)
        except ObjectiveError as exc:
            self.last_failures.append(str(exc))
            return False
        self._computed[key] = (mean, budget, features)
        return True

    def _ensure(self, keys: Sequence[str], params: Mapping[str, Mapping[str, Any]], source: CandidateSource) -> None:
        """Compute the objectives of candidates encoded without them (e.g. by a proposer, or finished elsewhere)."""
        for key in keys:
            if key in self._computed or key not in params:
                continue
            built = self._safe(source.complete, params[key])
            if built is None or params_key(built[0]) != key:
                continue
            try:
                graph = to_graph(built[1], source.example_input)
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot be traced is skipped, with the reason
                self.last_failures.append(str(exc))
                continue
            self._compute(key, built[1], graph)

    # ------------------------------------------------------------------ the decision
    def _predict(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Objective ``(mean, std)`` (keys × objectives, study units) of candidates with computed objectives."""
        objectives = self.objectives
        mean = np.stack([self._computed[k][0] for k in keys]).astype(np.float64)
        std = np.where(np.isnan(mean), np.nan, 0.0)
        if objectives.device_indices:
            done = [k for k in self.values if k in self._computed]
            if done:
                objectives.observe(np.stack([self._computed[k][2] for k in done]), np.stack([self.values[k] for k in done]))
            dev_mean, dev_std = objectives.predict_devices(np.stack([self._computed[k][2] for k in keys]))
            for i in objectives.device_indices:
                mean[:, i], std[:, i] = dev_mean[:, i], dev_std[:, i]
        if self._score is not None:
            score_mean, score_std = self.surrogate.predict(list(keys))
            mean[:, self._score] = self._score_sign * score_mean
            std[:, self._score] = score_std
        return mean, std

    def _observed(self) -> np.ndarray:
        """Values of the finished feasible architectures, on the scale of the predictions."""
        keys = [k for k in self.values if k not in self.infeasible]
        m = self.objectives.n_objectives
        if not keys:
            return np.zeros((0, m))
        rows = np.stack([self.values[k] for k in keys])
        if self._score is not None and not self.surrogate.is_fine_tuned:
            # zero-shot predictions are rank scores: compare with the observed architectures' own scores
            known = [i for i, k in enumerate(keys) if self.surrogate.has(k)]
            rows = rows[known]
            if known:
                rows[:, self._score] = self._score_sign * self.surrogate.predict([keys[i] for i in known])[0]
        return rows

    def _feasible(self, keys: Sequence[str], pool: Mapping[str, tuple[dict[str, Any], str]],
                  mean: np.ndarray) -> list[list[str]]:
        """Why each candidate is predicted infeasible (an empty list: feasible or not known before training)."""
        objectives, out = self.objectives, []
        latency_index = objectives.latency_budget_index
        for i, key in enumerate(keys):
            budget = dict(self._computed[key][1])
            if latency_index is not None and "latency_ms" in budget:
                budget["latency_ms"] = float(mean[i, latency_index])
            reasons = objectives.violations(budget)
            if self.feasibility is not None and np.all(np.isfinite(mean[i])):
                constraints = self.feasibility(pool[key][0], [float(v) for v in mean[i]])
                if constraints is not None and any(c > 0 for c in constraints):
                    reasons.append("constraints_func > 0: " + ", ".join(f"{c:.4g}" for c in constraints))
            out.append(reasons)
        return out

    def _decide(self, keys: list[str], pool: Mapping[str, tuple[dict[str, Any], str]], rng: np.random.RandomState,
                exclude_archs: set[str], source: CandidateSource, *, given: bool = False) -> Decision:
        config, surrogate = self.config, self.surrogate
        unique, exclude = self._unique(keys, exclude_archs)
        self._ensure(unique, {k: pool[k][0] for k in unique}, source)
        if self.objectives.device_indices:
            self._ensure(list(self.values), self._params, source)
        usable = [i for i, k in enumerate(unique) if k in self._computed]
        if not usable:
            why = "; ".join(dict.fromkeys(self.last_failures[:3])) or "no candidate could be built"
            raise ObjectiveError(f"the objectives of none of {len(unique)} candidates could be computed: {why}")
        unique, exclude = [unique[i] for i in usable], exclude[usable]
        observed = {k: v for k, (_, v) in self.observations.items()}
        surrogate.update(observed, {k: v for k, (_, v) in self.censored.items()})
        mean, std = self._predict(unique)
        reasons = self._feasible(unique, pool, mean)
        feasible = np.array([not r for r in reasons], dtype=bool)
        if given:
            order = [0]
        else:
            if not feasible.any():
                examples = "; ".join(sorted({r[0] for r in reasons if r})[:3])
                raise SearchError(f"none of the {len(unique)} candidates is predicted feasible ({examples})")
            order = self._order(mean, std, feasible, exclude, rng)
            shortlist = order[: config.shortlist_size]
            if config.use_predictor and self._score is not None and shortlist \
                    and self._rescore([unique[i] for i in shortlist], pool, source):  # fmt: skip
                mean, std = self._predict(unique)  # stage-2 scores of the shortlist
                order = self._order(mean, std, feasible, exclude, rng)
        self.predicted = {
            unique[i]: Prediction([float(v) for v in mean[i]], [float(v) for v in std[i]], reasons[i])
            for i in order[: 1 + max(config.shortlist_size, 8)]
        }
        score = self._score
        chosen_mean = (self._score_sign * mean[:, score]) if score is not None else np.full(len(unique), math.nan)
        chosen_std = std[:, score] if score is not None else np.full(len(unique), math.nan)
        return self._decision(unique, pool, order, chosen_mean, chosen_std, math.nan)

    def _order(self, mean: np.ndarray, std: np.ndarray, feasible: np.ndarray, exclude: np.ndarray,
               rng: np.random.RandomState) -> list[int]:
        """Feasible candidates, best first: at random while exploring, else by the Pareto acquisition."""
        if not self.config.use_predictor or len(self.values) < self.config.n_exploration_trials:
            eligible = np.flatnonzero(feasible & ~exclude) if (feasible & ~exclude).any() else np.flatnonzero(feasible)
            return [int(i) for i in rng.permutation(eligible)]
        choice = select_pareto_candidate(mean, std, directions=self.objectives.directions, observed=self._observed(),
                                         feasible=feasible, exclude=exclude, rule=self.rule, rng=rng)
        return list(choice.order)
