"""Which architecture runs next: the one planning loop of every front end.

The Optuna sampler, the NNI strategy and the NNI tuner all call :meth:`Planner.plan`, so
they explore and exploit the same way:

1. a pool of candidates: proposals of an optional proposer, mutations of parents chosen
   by tournament among the best finished architectures, and random draws;
2. candidates already submitted are never drawn again (de-duplication);
3. every new candidate becomes a graph (the caller's ``graph_of``) and is scored by the
   :class:`~nasassist_plugins.search.StudySurrogate` (zero-shot, then fine-tuned on the
   finished results);
4. :func:`~nasassist_plugins.search.select_candidate` drops the candidates predicted
   below ``prune_quantile`` of the pool and maximises the acquisition (UCB by default).

The planner knows nothing of Optuna or NNI: parameters are plain dicts, values are
"larger is better" floats, and the front end supplies how to draw, complete and trace a
candidate.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.search.acquisition import SearchError, select_candidate
from nasassist_plugins.search.candidates import params_key
from nasassist_plugins.search.space import SearchSpace, to_builtin
from nasassist_plugins.search.surrogate import StudySurrogate

_logger = logging.getLogger(__name__)

_GRAPH_CACHE_SIZE = 4096


@dataclass
class Decision:
    """One planned candidate and why it was chosen (all plain data, for logs and checkpoints).

    Attributes:
        params: the sample / hyper-parameters to run.
        key: canonical key of ``params`` (:func:`nasassist_plugins.search.params_key`).
        origin: ``"random"``, ``"mutation"`` or ``"proposer"``.
        predicted_mean, predicted_std: the surrogate's prediction (zero-shot rank score, or
            the metric's scale once fine-tuned; larger is better).
        threshold: the quantile below which candidates were excluded (``None``: no filter).
        n_candidates: size of the scored pool.
        fine_tuned_on: finished results the surrogate was fine-tuned on (0: zero-shot).
        pool_quantile: share of the pool predicted no better than the chosen candidate
            (at least ``prune_quantile`` whenever the predictor chose).
        pool_origins: how many pool candidates came from each origin.
    """

    params: dict[str, Any]
    key: str
    origin: str
    predicted_mean: float
    predicted_std: float
    threshold: float | None
    n_candidates: int
    fine_tuned_on: int
    pool_quantile: float = 1.0
    pool_origins: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_builtin(asdict(self))


class Planner:
    """Candidate pool + surrogate + acquisition, shared by the Optuna sampler and the NNI strategy and tuner.

    Args:
        surrogate: the study surrogate (zero-shot predictor, fine-tuned on results).
        n_candidates: random draws and mutations scored per decision.
        prune_quantile: candidates predicted below this quantile of the pool are never chosen.
        acquisition, kappa: acquisition rule (``"ucb"``, ``"ei"``, ``"mean"``) and UCB weight.
        mutation_fraction: share of the pool made of mutations once results exist.
        population_size: the best finished architectures that can be parents.
        sample_size: tournament size when picking a parent from the population.
        proposer: optional ``propose_params(parents, distributions, n, rng)`` object.
        n_proposals: proposals asked per decision.
        n_startup_trials: until this many architectures have finished, the candidate is
            drawn uniformly among those predicted at or above the quantile (a pruned but
            diverse initial design for the fine-tuning to learn from) instead of by acquisition.
        use_predictor: ``False`` picks uniformly among the pool (ablation).
    """

    def __init__(
        self,
        surrogate: StudySurrogate,
        *,
        n_candidates: int = 32,
        prune_quantile: float | None = 0.5,
        acquisition: str = "ucb",
        kappa: float = 1.0,
        mutation_fraction: float = 0.5,
        population_size: int = 20,
        sample_size: int = 5,
        proposer: Any = None,
        n_proposals: int = 4,
        n_startup_trials: int = 0,
        use_predictor: bool = True,
    ) -> None:
        self.surrogate = surrogate
        self.n_candidates = n_candidates
        self.prune_quantile = prune_quantile
        self.acquisition = acquisition
        self.kappa = kappa
        self.mutation_fraction = mutation_fraction
        self.population_size = population_size
        self.sample_size = sample_size
        self.proposer = proposer
        self.n_proposals = n_proposals
        self.n_startup_trials = n_startup_trials
        self.use_predictor = use_predictor
        #: key -> (params, value) of finished architectures usable as evidence (larger is better)
        self.observations: dict[str, tuple[dict[str, Any], float]] = {}
        #: keys of everything submitted (running, finished, failed, stopped)
        self.taken: set[str] = set()
        self._params: dict[str, dict[str, Any]] = {}
        self._graphs: OrderedDict[str, ComputationalGraph] = OrderedDict()
        self._graph_fn: Callable[[dict[str, Any]], ComputationalGraph] | None = None

    # ------------------------------------------------------------------ bookkeeping
    def mark_taken(self, params: Mapping[str, Any]) -> str:
        key = params_key(params)
        self.taken.add(key)
        self._params[key] = dict(params)
        return key

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        """Record a finished architecture's value (larger is better); non-finite values are ignored."""
        key = self.mark_taken(params)
        if value is None or not math.isfinite(float(value)):
            return
        self.observations[key] = (dict(params), float(value))

    def parents(self) -> list[tuple[dict[str, Any], float]]:
        """The population: best finished architectures first, at most ``population_size``."""
        rows = sorted(self.observations.values(), key=lambda row: -row[1])
        return rows[: self.population_size]

    # ------------------------------------------------------------------ graphs
    def _graph(self, key: str, params: Mapping[str, Any] | None = None) -> ComputationalGraph | None:
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        params = params if params is not None else self._params.get(key)
        if params is None or self._graph_fn is None:
            return None
        graph = self._graph_fn(dict(params))
        self._graphs[key] = graph
        while len(self._graphs) > _GRAPH_CACHE_SIZE:
            self._graphs.popitem(last=False)
        return graph

    def _graph_or_none(self, key: str) -> ComputationalGraph | None:
        try:
            return self._graph(key)
        except Exception as exc:  # a finished model whose graph cannot be rebuilt is not evidence
            _logger.debug("no graph for finished architecture %s: %r", key, exc)
            return None

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        space: SearchSpace,
        rng: np.random.RandomState,
        *,
        draw: Callable[[np.random.RandomState], dict[str, Any] | None],
        accept: Callable[[dict[str, Any]], dict[str, Any] | None],
        graph_of: Callable[[dict[str, Any]], ComputationalGraph],
    ) -> Decision | None:
        """Choose the next candidate, or ``None`` when no new candidate could be found.

        Args:
            space: dimensions (for mutations and the proposer's distributions).
            rng: random state of this decision.
            draw: a random sample of the space (``None`` if the draw failed).
            accept: validates / completes a mutated or proposed sample (``None``: invalid).
            graph_of: the computational graph of a sample (may raise: the candidate is skipped).
        """
        self._graph_fn = graph_of
        pool: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        parents = self.parents()

        def add(params: dict[str, Any] | None, origin: str) -> None:
            if params is None:
                return
            key = params_key(params)
            if key in self.taken or key in pool:
                return
            pool[key] = (params, origin)

        for proposal in self._proposals(parents, space, rng):
            merged = {**(parents[0][0] if parents else {}), **proposal}
            add(_safe(accept, merged), "proposer")
        n_mutations = int(round(self.n_candidates * self.mutation_fraction)) if parents else 0
        for _ in range(n_mutations):
            parent = self._tournament(parents, rng)
            add(_safe(accept, space.mutate(parent, rng)), "mutation")
        attempts = 0
        while len(pool) < self.n_candidates and attempts < 3 * self.n_candidates:
            attempts += 1
            add(_safe(draw, rng), "random")
        if not pool:
            return None

        keys, candidates, failures = [], [], []
        for key, (params, origin) in pool.items():
            if not self.surrogate.has(key):
                try:
                    graph = self._graph(key, params)
                except Exception as exc:  # user model code: skip the candidate, say why
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.surrogate.encode([key], [graph])
            keys.append(key)
            candidates.append((params, origin))
        if not keys:
            raise SearchError(
                f"none of the {len(pool)} candidate architectures could be turned into a graph: "
                + "; ".join(failures[:3])
            )
        if failures:
            _logger.debug("%d candidate(s) skipped: %s", len(failures), failures[:3])

        observed = {k: v for k, (_, v) in self.observations.items()}
        self.surrogate.update(observed, graph_of=self._graph_or_none)
        mean, std = self.surrogate.predict(keys)
        if self.use_predictor:
            best = max(observed.values()) if (observed and self.surrogate.is_fine_tuned) else None
            selection = select_candidate(
                mean, std, prune_quantile=self.prune_quantile, rule=self.acquisition, kappa=self.kappa, best=best
            )
            index, threshold = selection.index, selection.threshold
            if len(observed) < self.n_startup_trials:  # initial design: any candidate above the quantile
                eligible = np.flatnonzero(np.asarray(mean) >= threshold) if np.isfinite(threshold) else np.arange(len(keys))
                if eligible.size:
                    index = int(eligible[rng.randint(eligible.size)])
        else:
            index, threshold = int(rng.randint(len(keys))), -np.inf
        params, origin = candidates[index]
        key = self.mark_taken(params)
        origins: dict[str, int] = {}
        for _, o in candidates:
            origins[o] = origins.get(o, 0) + 1
        return Decision(
            params=to_builtin(params),
            key=key,
            origin=origin,
            predicted_mean=float(mean[index]),
            predicted_std=float(std[index]),
            threshold=float(threshold) if np.isfinite(threshold) else None,
            n_candidates=len(keys),
            fine_tuned_on=self.surrogate.n_fitted,
            pool_quantile=float(np.mean(np.asarray(mean) <= mean[index])),
            pool_origins=origins,
        )

    def _tournament(self, parents: Sequence[tuple[dict[str, Any], float]], rng: np.random.RandomState) -> dict[str, Any]:
        k = min(self.sample_size, len(parents))
        picks = rng.choice(len(parents), size=k, replace=False)
        return parents[int(min(picks))][0]  # parents are sorted best first

    def _proposals(
        self, parents: Sequence[tuple[dict[str, Any], float]], space: SearchSpace, rng: np.random.RandomState
    ) -> list[dict[str, Any]]:
        if self.proposer is None or self.n_proposals == 0 or not parents:
            return []
        try:
            proposals = self.proposer.propose_params(list(parents), dict(space.distributions), self.n_proposals, rng)
        except Exception as exc:  # a proposer (LLM, mutator) must never break the search
            _logger.warning("Proposer %s failed: %s; continuing without its proposals.", type(self.proposer).__name__, exc)
            return []
        return [dict(p) for p in proposals or [] if isinstance(p, Mapping)]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "observations": [[params, value] for params, value in self.observations.values()],
            "taken": [self._params.get(key) for key in sorted(self.taken) if key in self._params],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for params in state.get("taken", []):
            if params is not None:
                self.mark_taken(params)
        for params, value in state.get("observations", []):
            self.observe(params, value)


def _safe(fn: Callable[..., dict[str, Any] | None], arg: Any) -> dict[str, Any] | None:
    """Run a draw/validation; invalid samples (NNI's SampleValidationError, ...) give ``None``."""
    try:
        return fn(arg)
    except SearchError:
        raise
    except Exception as exc:
        _logger.debug("candidate rejected: %r", exc)
        return None
