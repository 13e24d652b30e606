"""Which architecture runs next: the one planning loop of every front end.

The Optuna sampler, the NNI strategy and the NNI tuner all call :meth:`Planner.plan`
with their :class:`~nasassist_plugins.search.source.CandidateSource`, so they explore and
exploit the same way. One decision:

1. **Pool** (stage 1): proposals of an optional proposer, mutations of parents chosen by
   tournament among the best finished architectures, and random draws. The pool grows in
   batches from ``min_candidates`` until the time budget is spent (or ``max_candidates``);
   candidates already run are skipped. Each new candidate is built once by the source,
   turned into a graph (:func:`~nasassist_plugins.search.source.to_graph`) only when its
   key was never encoded, and encoded in one batch by the surrogate (the one cache).
2. **De-duplication**: candidates the predictor cannot tell apart (isomorphic graphs)
   count once, and those identical to an architecture already run or reserved by a
   running trial rank after every other candidate.
3. **Scores**: the :class:`~nasassist_plugins.search.StudySurrogate`, fitted on the
   finished results and the censored (pruned) ones, predicts every candidate.
4. **Decision**: :func:`~nasassist_plugins.search.rank_candidates` drops the candidates
   predicted below ``prune_quantile`` and orders the rest by acquisition (at random during
   the first ``n_exploration_trials``).
5. **Shortlist** (stage 2): the first ``shortlist_size`` are rebuilt and re-scored from
   their models (:func:`~nasassist_plugins.search.scoring.score_models`), predicted again
   and ranked again; the front end runs the first and falls back down the list when
   another worker has reserved it.

The planner knows nothing of Optuna or NNI: parameters are plain dicts, values are
"larger is better" floats.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from nasassist_plugins.errors import SearchError
from nasassist_plugins.search.acquisition import rank_candidates
from nasassist_plugins.search.candidates import params_key
from nasassist_plugins.search.config import PlannerConfig
from nasassist_plugins.search.decision import Choice, Decision
from nasassist_plugins.search.scoring import score_models
from nasassist_plugins.search.source import CandidateSource, ProposalContext, to_graph
from nasassist_plugins.search.space import SearchSpace, to_builtin
from nasassist_plugins.search.surrogate import StudySurrogate

__all__ = ["Choice", "Decision", "Planner", "plan_budget"]

_logger = logging.getLogger(__name__)

#: Random draws / mutations tried per pool slot before the space counts as exhausted.
_ATTEMPTS_PER_SLOT = 3


def plan_budget(config: PlannerConfig, trial_seconds: Iterable[float]) -> float | None:
    """Wall-clock budget of one decision: ``max_plan_seconds``, else a fraction of the median trial."""
    if config.max_plan_seconds is not None:
        return float(config.max_plan_seconds)
    durations = [d for d in trial_seconds if d is not None and math.isfinite(d) and d > 0]
    return config.plan_time_fraction * float(np.median(durations)) if durations else None


class Planner:
    """Candidate pool + surrogate + decision, shared by the Optuna sampler and the NNI strategy and tuner.

    Args:
        surrogate: the study surrogate (zero-shot predictor, fine-tuned on results; the one cache).
        config: the planner's settings (:class:`~nasassist_plugins.search.PlannerConfig`).
        proposer: optional object with ``propose_params(parents, distributions, n, rng)``;
            when its method also takes ``context``, it gets a
            :class:`~nasassist_plugins.search.source.ProposalContext` (the planner's
            builder and surrogate).

    Example::

        planner = Planner(StudySurrogate(predictor), PlannerConfig(max_candidates=256))
        planner.observe({"width": 64, "depth": 3}, 0.91)
        decision = planner.plan(space, source, np.random.RandomState(0), budget=0.5)
    """

    def __init__(self, surrogate: StudySurrogate, config: PlannerConfig | None = None, *, proposer: Any = None) -> None:
        if proposer is not None and not callable(getattr(proposer, "propose_params", None)):
            raise SearchError("proposer must have a propose_params(parents, distributions, n, rng) method")
        self.surrogate = surrogate
        self.config = config or PlannerConfig()
        self.proposer = proposer
        self._proposer_takes_context = _takes_context(proposer)
        #: key -> (params, value) of finished architectures (larger is better)
        self.observations: dict[str, tuple[dict[str, Any], float]] = {}
        #: key -> (params, upper bound) of architectures stopped early (pruned)
        self.censored: dict[str, tuple[dict[str, Any], float]] = {}
        #: keys of everything submitted (running, finished, failed, stopped)
        self.taken: set[str] = set()
        self._params: dict[str, dict[str, Any]] = {}
        #: why candidates were skipped in the last decision (builder errors, tracing failures)
        self.last_failures: list[str] = []
        self.n_built = 0  # candidates turned into graphs by this planner (all decisions)
        self._stage2_adds: bool | None = None  # whether model scores differ from graph scores

    # ------------------------------------------------------------------ evidence
    def reset(self) -> None:
        """Forget the evidence (the cache of encodings stays): before rebuilding it from a study."""
        self.observations.clear()
        self.censored.clear()
        self.taken.clear()
        self._params.clear()

    def mark_taken(self, params: Mapping[str, Any]) -> str:
        """Record a submitted architecture (never drawn again)."""
        key = params_key(params)
        self.taken.add(key)
        self._params[key] = dict(params)
        return key

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        """Record a finished architecture's value (larger is better); non-finite values are ignored."""
        key = self.mark_taken(params)
        if value is None or not math.isfinite(float(value)):
            return
        self.censored.pop(key, None)
        self.observations[key] = (dict(params), float(value))

    def observe_censored(self, params: Mapping[str, Any], bound: float) -> None:
        """Record an architecture stopped early: ``bound`` is an upper bound of its value (larger is better)."""
        key = self.mark_taken(params)
        if bound is None or not math.isfinite(float(bound)) or key in self.observations:
            return
        self.censored[key] = (dict(params), float(bound))

    def parents(self) -> list[tuple[dict[str, Any], float]]:
        """The population: best finished architectures first, at most ``population_size``."""
        rows = sorted(self.observations.values(), key=lambda row: -row[1])
        return rows[: self.config.population_size]

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        space: SearchSpace,
        source: CandidateSource,
        rng: np.random.RandomState,
        *,
        budget: float | None = None,
        exclude_archs: Iterable[str] = (),
    ) -> Decision | None:
        """Choose the next candidate, or ``None`` when no new candidate could be built.

        Args:
            space: dimensions (for mutations and the proposer's distributions).
            source: draws and builds candidates for this front end.
            rng: random state of this decision.
            budget: wall-clock seconds for the pool (``None``: ``min_candidates`` only).
            exclude_archs: architectures reserved by running trials (ranked last).
        """
        started = time.perf_counter()
        config = self.config
        self.last_failures = []
        self._encode_evidence(source)
        parents = self.parents()
        pool: dict[str, tuple[dict[str, Any], str]] = {}
        pending: dict[str, Any] = {}  # key -> built model/graph, until encoded

        def add(built: tuple[dict[str, Any], Any] | None, origin: str) -> bool:
            if built is None:
                return False
            params, model = built
            key = params_key(params)
            if key in self.taken or key in pool:
                return False
            pool[key] = (dict(params), origin)
            if not self.surrogate.has(key):
                pending[key] = model
            return True

        context = self._context(source) if self._proposer_takes_context else None
        for proposal in self._proposals(parents, space, rng, context):
            merged = {**(parents[0][0] if parents else {}), **proposal}
            add(self._safe(source.complete, merged), "proposer")

        deadline = None if budget is None else started + budget
        target = max(config.min_candidates, len(pool))
        while True:
            batch_started = time.perf_counter()
            added = self._grow(pool, target, parents, space, source, rng, add)
            self._encode_pending(pending, source)
            now = time.perf_counter()
            if len(pool) >= config.max_candidates or added == 0 or deadline is None or now >= deadline:
                break
            per_candidate = (now - batch_started) / max(added, 1)
            more = int((deadline - now) / max(per_candidate, 1e-6))
            if more < 1:
                break
            # at most doubling per batch: the budget is checked again before long
            target = min(config.max_candidates, len(pool) + min(more, max(64, len(pool))))

        keys = [key for key in pool if self.surrogate.has(key)]
        if not keys:
            if self.last_failures:
                _logger.debug("no candidate could be built: %s", self.last_failures[:3])
            return None
        decision = self._decide(keys, pool, rng, set(exclude_archs), source)
        decision.plan_seconds = time.perf_counter() - started
        return decision

    def plan_given(self, source: CandidateSource, params: Mapping[str, Any], *, origin: str = "enqueued") -> Decision | None:
        """Score one given candidate (e.g. an enqueued trial's parameters): a decision without a choice.

        Returns ``None`` when the source cannot build it (the reason is in :attr:`last_failures`).
        """
        started = time.perf_counter()
        self.last_failures = []
        self._encode_evidence(source)
        built = self._safe(source.complete, params)
        if built is None:
            return None
        key = params_key(built[0])
        pool = {key: (dict(built[0]), origin)}
        if not self.surrogate.has(key):
            self._encode_pending({key: built[1]}, source)
            if not self.surrogate.has(key):
                return None
        decision = self._decide([key], pool, np.random.RandomState(0), set(), source, given=True)
        decision.plan_seconds = time.perf_counter() - started
        return decision

    def _grow(self, pool: dict, target: int, parents: Sequence[tuple[dict[str, Any], float]], space: SearchSpace,
              source: CandidateSource, rng: np.random.RandomState, add: Callable[..., bool]) -> int:
        """Add random draws and mutations until the pool has ``target`` candidates; how many were added."""
        added, attempts = 0, 0
        need = target - len(pool)
        while len(pool) < target and attempts < _ATTEMPTS_PER_SLOT * max(need, 1):
            attempts += 1
            if parents and rng.rand() < self.config.mutation_fraction:
                parent = self._tournament(parents, rng)
                ok = add(self._safe(source.complete, space.mutate(parent, rng)), "mutation")
            else:
                ok = add(self._safe(source.sample, rng), "random")
            added += bool(ok)
        return added

    def _decide(self, keys: list[str], pool: Mapping[str, tuple[dict[str, Any], str]], rng: np.random.RandomState,
                exclude_archs: set[str], source: CandidateSource, *, given: bool = False) -> Decision:
        """Score the pool and rank it (``given``: one candidate to score, not to choose)."""
        config, surrogate = self.config, self.surrogate
        unique, exclude = self._unique(keys, exclude_archs)
        observed = {k: v for k, (_, v) in self.observations.items()}
        censored = {k: v for k, (_, v) in self.censored.items()}
        surrogate.update(observed, censored)
        mean, std = surrogate.predict(unique)
        explore = not given and len(observed) + len(censored) < config.n_exploration_trials
        best = max(observed.values()) if (observed and surrogate.is_fine_tuned) else None
        stage1 = None
        if config.use_predictor or given:
            ranking = rank_candidates(mean, std, prune_quantile=None if given else config.prune_quantile,
                                      rule=config.acquisition,
                                      kappa=config.kappa, best=best, exclude=exclude, explore=explore, rng=rng)
            order, threshold = list(ranking.order), ranking.threshold
            shortlist = order[: config.shortlist_size]
            if shortlist and self._rescore([unique[i] for i in shortlist], pool, source):
                mean_s, std_s = surrogate.predict([unique[i] for i in shortlist])
                # the shortlist passed the pool's cut on the stage-1 scores; stage 2 (possibly on another
                # scale, e.g. the fused score) only re-orders it, and the pool statistics stay on stage 1
                stage1 = mean
                mean, std = mean.copy(), std.copy()
                mean[shortlist], std[shortlist] = mean_s, std_s
                if not explore:  # re-rank the shortlist with the refined scores
                    inner = rank_candidates(mean_s, std_s, prune_quantile=None, rule=config.acquisition,
                                            kappa=config.kappa, best=best, exclude=exclude[shortlist], rng=rng)
                    order = [shortlist[i] for i in inner.order] + order[len(shortlist):]
        else:  # ablation: the candidate machinery without the predictor's choice
            order, threshold = list(rng.permutation(len(unique))), -np.inf
        return self._decision(unique, pool, order, mean, std, threshold, stage1)

    def _unique(self, keys: list[str], exclude_archs: set[str]) -> tuple[list[str], np.ndarray]:
        """Isomorphic candidates count once; flags for the copies of what ran or runs (ranked last)."""
        surrogate = self.surrogate
        seen: set[str] = set()
        unique: list[str] = []
        for key in keys:
            arch = surrogate.arch(key)
            if arch not in seen:
                seen.add(arch)
                unique.append(key)
        done_archs = {surrogate.arch(k) for k in self.taken if surrogate.has(k)} | exclude_archs
        return unique, np.array([surrogate.arch(k) in done_archs for k in unique], dtype=bool)

    def _decision(self, unique: list[str], pool: Mapping[str, tuple[dict[str, Any], str]], order: Sequence[int],
                  mean: np.ndarray, std: np.ndarray, threshold: float, stage1: np.ndarray | None = None) -> Decision:
        """The :class:`Decision` for ``order`` (ranked positions in ``unique``; ``mean``/``std`` per position;
        ``stage1``: the pool's stage-1 scores, which ``threshold`` and the pool quantile refer to)."""
        surrogate = self.surrogate
        zero_shot, _ = surrogate.zero_shot(unique)
        origins: dict[str, int] = {}
        for key in unique:
            origins[pool[key][1]] = origins.get(pool[key][1], 0) + 1

        def choice(i: int) -> Choice:
            key = unique[i]
            return Choice(params=to_builtin(pool[key][0]), key=key, arch=surrogate.arch(key), origin=pool[key][1],
                          predicted_mean=float(mean[i]), predicted_std=float(std[i]),
                          zero_shot=float(zero_shot[i]), zero_shot_stage=surrogate.zero_shot_stage(key))

        first = order[0]
        pool_mean = np.asarray(mean if stage1 is None else stage1)
        finite = pool_mean[np.isfinite(pool_mean)]
        return Decision(
            **asdict(choice(first)),
            threshold=float(threshold) if threshold is not None and np.isfinite(threshold) else None,
            n_candidates=len(unique),
            fine_tuned_on=surrogate.n_fitted,
            pool_quantile=float(np.mean(finite <= pool_mean[first])) if finite.size else 1.0,
            pool_origins=origins,
            alternatives=[choice(i) for i in order[1: 1 + max(self.config.shortlist_size, 8)]],
        )

    # ------------------------------------------------------------------ building and scoring
    def _safe(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """Run a draw / completion; invalid or failing candidates give ``None`` (reason kept)."""
        try:
            return fn(arg)
        except Exception as exc:  # user model code, NNI's SampleValidationError, ...
            self.last_failures.append(f"{type(exc).__name__}: {exc}")
            return None

    def _encode_pending(self, pending: dict[str, Any], source: CandidateSource) -> None:
        models = dict(pending)
        keys, graphs = [], []
        for key, built in pending.items():
            try:
                graphs.append(to_graph(built, source.example_input))
                keys.append(key)
            except Exception as exc:  # noqa: BLE001 - a model that cannot be traced is skipped, with the reason
                self.last_failures.append(str(exc))
        pending.clear()
        keys, graphs = self._admit(keys, [models[k] for k in keys], graphs)
        if keys:
            self.surrogate.encode(keys, graphs)
            self.n_built += len(keys)

    def _admit(self, keys: list[str], built: list[Any], graphs: list[Any]) -> tuple[list[str], list[Any]]:
        """Hook for subclasses: the new candidates (built model or graph, and graph) that join the pool."""
        return keys, graphs

    def _encode_evidence(self, source: CandidateSource) -> None:
        """Encode (and score from their models) the architectures the fit learns from."""
        missing = [(k, p) for k, (p, _) in [*self.observations.items(), *self.censored.items()]
                   if not self.surrogate.has(k)]
        if not missing:
            return
        keys, built = [], []
        for key, params in missing:
            result = self._safe(source.complete, params)
            if result is not None and params_key(result[0]) == key:
                keys.append(key)
                built.append(result[1])
        graphs, kept, models = [], [], []
        for key, model in zip(keys, built):
            try:
                graphs.append(to_graph(model, source.example_input))
                kept.append(key)
                models.append(model)
            except Exception as exc:  # noqa: BLE001 - a finished model whose graph cannot be rebuilt is not evidence
                _logger.debug("no graph for finished architecture %s: %r", key, exc)
        if kept:
            self.surrogate.encode(kept, graphs)
            self.n_built += len(kept)
            if self.config.shortlist_size and self.config.use_predictor:
                self._score_models(kept, models, source)

    def _rescore(self, keys: list[str], pool: Mapping[str, tuple[dict[str, Any], str]], source: CandidateSource) -> bool:
        """Stage 2: re-score shortlisted candidates from their rebuilt models; whether any score changed."""
        todo = [k for k in keys if self.surrogate.zero_shot_stage(k) < 2]
        if not todo or self._stage2_adds is False:
            return bool(not todo)
        kept, models = [], []
        for key in todo:
            result = self._safe(source.complete, pool[key][0])
            if result is not None:
                kept.append(key)
                models.append(result[1])
        return bool(kept) and self._score_models(kept, models, source)

    def _score_models(self, keys: list[str], models: list[Any], source: CandidateSource) -> bool:
        if self._stage2_adds is False:
            return False
        try:
            mean, std = score_models(self.surrogate.predictor, models, source.example_input)
        except Exception as exc:  # noqa: BLE001 - stage 2 refines; stage 1 scores stand without it
            _logger.warning("Stage-2 scoring failed (%s: %s); keeping the graph scores.", type(exc).__name__, exc)
            return False
        if self._stage2_adds is None:
            # A predictor whose model score is its graph score gains nothing from stage 2: measured
            # once, on the first candidates, then stage 2 is skipped (it would trace them again).
            before, _ = self.surrogate.zero_shot(keys)
            self._stage2_adds = not np.allclose(before, mean, rtol=1e-5, atol=1e-6)
            if not self._stage2_adds:
                _logger.debug("the predictor scores built models as their graphs: stage 2 is skipped")
        self.surrogate.set_zero_shot(keys, mean, std)
        return True

    # ------------------------------------------------------------------ parents and proposals
    def _tournament(self, parents: Sequence[tuple[dict[str, Any], float]], rng: np.random.RandomState) -> dict[str, Any]:
        k = min(self.config.tournament_size, len(parents))
        picks = rng.choice(len(parents), size=k, replace=False)
        return parents[int(min(picks))][0]  # parents are sorted best first

    def _context(self, source: CandidateSource) -> ProposalContext:
        resolved: dict[str, str | None] = {}  # proposed params -> key of the completed candidate

        def build(params: Mapping[str, Any]) -> tuple[str, Any] | None:
            result = self._safe(source.complete, params)
            if result is None:
                resolved[params_key(params)] = None
                return None
            key = params_key(result[0])
            resolved[params_key(params)] = key
            return key, result[1]

        def graph_of(params: Mapping[str, Any]) -> Any:
            built = build(params)
            if built is None:
                return None
            try:
                graph = to_graph(built[1], source.example_input)
            except Exception:  # noqa: BLE001 - the proposer skips what cannot be built
                return None
            self.surrogate.encode([built[0]], [graph])
            return graph

        def score(params_list: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
            keys = []
            for params in params_list:
                given = params_key(params)
                if given not in resolved:
                    built = build(params)
                    if built is not None and not self.surrogate.has(built[0]):
                        self._encode_pending({built[0]: built[1]}, source)
                key = resolved.get(given)
                keys.append(key if key is not None and self.surrogate.has(key) else None)
            known = [k for k in keys if k is not None]
            mean, std = self.surrogate.predict(known) if known else (np.zeros(0), np.zeros(0))
            by_key = {k: (m, s) for k, m, s in zip(known, mean, std)}
            nan = (float("nan"), float("nan"))
            return (np.array([by_key.get(k, nan)[0] for k in keys], dtype=np.float64),
                    np.array([by_key.get(k, nan)[1] for k in keys], dtype=np.float64))

        return ProposalContext(graph_of=graph_of, score=score, predictor=self.surrogate.predictor)

    def _proposals(self, parents: Sequence[tuple[dict[str, Any], float]], space: SearchSpace,
                   rng: np.random.RandomState, context: ProposalContext | None) -> list[dict[str, Any]]:
        if self.proposer is None or self.config.n_proposals == 0 or not parents:
            return []
        try:
            args = (list(parents), dict(space.distributions), self.config.n_proposals, rng)
            proposals = (self.proposer.propose_params(*args, context=context) if context is not None
                         else self.proposer.propose_params(*args))
        except Exception as exc:  # a proposer (LLM, mutator) must never break the search
            _logger.warning("Proposer %s failed: %s; continuing without its proposals.", type(self.proposer).__name__, exc)
            return []
        return [dict(p) for p in proposals or [] if isinstance(p, Mapping)]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "observations": [[params, value] for params, value in self.observations.values()],
            "censored": [[params, bound] for params, bound in self.censored.values()],
            "taken": [self._params.get(key) for key in sorted(self.taken) if key in self._params],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for params in state.get("taken", []):
            if params is not None:
                self.mark_taken(params)
        for params, value in state.get("observations", []):
            self.observe(params, value)
        for params, bound in state.get("censored", []):
            self.observe_censored(params, bound)


def _takes_context(proposer: Any) -> bool:
    method = getattr(proposer, "propose_params", None)
    if method is None:
        return False
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "context" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
