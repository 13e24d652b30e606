"""NASAssistSampler: score candidate architectures zero-shot, run only the promising ones.

For each new trial the sampler

1. builds a pool of candidate parameter sets: random draws, local mutations of the best
   finished trials, and proposals from a pluggable proposer (LLM or offline mutator);
2. turns each into a model with the user's own ``build_model(trial)`` (called with a
   :class:`~nasassist_plugins.optuna._candidate_trial.CandidateTrial`, so nothing is
   trained) and the model into a computational graph;
3. scores the graphs with the predictor — zero-shot at first, fine-tuned on the study's
   finished trials as they arrive (:class:`~nasassist_plugins.search.StudySurrogate`);
4. drops candidates predicted below ``prune_quantile``, picks one by acquisition
   (UCB by default), and writes it into the trial's system attrs as the *plan*;
5. answers every ``suggest_*`` of the trial from the plan. Parameters the builder does
   not read (learning rate, batch size, ...) go to the base sampler (TPE by default).

The plan, predictions and candidate count live in the study's storage, so the sampler is
correct with many workers (RDB storage, ``n_jobs > 1``) and after a restart; every
worker rebuilds its fine-tuned surrogate from the finished trials in the storage.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from nasassist_plugins.errors import NASAssistError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.optuna._candidate_trial import CandidateTrial
from nasassist_plugins.predictor import Predictor
from nasassist_plugins.search import SearchError, StudySurrogate, check_acquisition, check_quantile, params_key
from nasassist_plugins.search.candidates import contains
from nasassist_plugins.search.planner import Planner
from nasassist_plugins.search.space import SearchSpace

_logger = logging.getLogger(__name__)

BuildModel = Callable[[Any], "nn.Module | ComputationalGraph"]

_GRAPH_CACHE_SIZE = 20000


@dataclass
class _Candidate:
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    graph: ComputationalGraph

    @property
    def key(self) -> str:
        return params_key(self.params)


class NASAssistSampler(BaseSampler):
    """Optuna sampler that plans architecture parameters with a zero-shot predictor.

    Args:
        build_model: the function your objective uses to build the model from a trial
            (``build_model(trial) -> nn.Module``; a :class:`ComputationalGraph` is also
            accepted). Without it the sampler behaves as ``base_sampler`` and says so once.
        example_input: an input tensor (or shape tuple) for tracing the models.
        predictor: the zero-shot predictor (default: the shipped weights).
        n_candidates: candidates scored per trial.
        prune_quantile: candidates predicted below this quantile of the pool are never run
            (``None`` or ``0`` disables the filter).
        acquisition: ``"ucb"`` (mean + kappa·std), ``"ei"`` (expected improvement) or ``"mean"``.
        kappa: exploration weight of UCB.
        mutation_fraction: share of the pool made of mutations of the best finished trials.
        n_parents: the best finished trials that can be parents (a tournament of 5 picks one
            per mutation).
        proposer: optional object with ``propose_params(parents, distributions, n, rng)``
            (e.g. :class:`nasassist_plugins.mutation.RelevanceGuidedMutator`); its proposals
            join the pool and are scored like the others.
        n_proposals: proposals asked from ``proposer`` per trial.
        n_startup_trials: trials sampled by ``base_sampler`` alone before planning starts.
        n_exploration_trials: the first planned trials pick uniformly at random among the
            candidates above ``prune_quantile`` instead of maximising the acquisition, so
            that the study-specific fit starts from diverse, not only zero-shot-favoured,
            architectures.
        fine_tune: how to learn from the study's finished trials: ``"gp"`` (default, a
            Gaussian process on the predictor's features and zero-shot score), ``"moe"``
            (retrain the predictor's regressor), or ``False`` (zero-shot only).
        fine_tune_every, fine_tune_min_trials, fine_tune_seconds: when to refit, and the
            time budget of a ``"moe"`` refit.
        use_predictor: ``False`` keeps the candidate machinery but picks uniformly at random
            among candidates (an ablation: what the predictor adds).
        base_sampler: sampler for parameters the builder does not read (default TPE).
        seed: seed for reproducible studies.
    """

    def __init__(
        self,
        build_model: BuildModel | None = None,
        example_input: Any = None,
        *,
        predictor: Predictor | None = None,
        n_candidates: int = 32,
        prune_quantile: float | None = 0.5,
        acquisition: str = "ucb",
        kappa: float = 1.0,
        mutation_fraction: float = 0.5,
        n_parents: int = 20,
        proposer: Any = None,
        n_proposals: int = 4,
        n_startup_trials: int = 0,
        n_exploration_trials: int = 10,
        fine_tune: bool | str = "gp",
        fine_tune_every: int = 1,
        fine_tune_min_trials: int = 5,
        fine_tune_seconds: float = 5.0,
        use_predictor: bool = True,
        base_sampler: BaseSampler | None = None,
        seed: int | None = None,
    ) -> None:
        if build_model is not None and not callable(build_model):
            raise SearchError(f"build_model must be a function of a trial, got {type(build_model).__name__}")
        for name, value, minimum in (("n_candidates", n_candidates, 1), ("n_parents", n_parents, 1),
                                     ("n_proposals", n_proposals, 0), ("n_startup_trials", n_startup_trials, 0),
                                     ("n_exploration_trials", n_exploration_trials, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SearchError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not isinstance(mutation_fraction, (int, float)) or not 0.0 <= mutation_fraction <= 1.0:
            raise SearchError(f"mutation_fraction must be in [0, 1], got {mutation_fraction!r}")
        if proposer is not None and not callable(getattr(proposer, "propose_params", None)):
            raise SearchError("proposer must have a propose_params(parents, distributions, n, rng) method")
        if base_sampler is not None and not isinstance(base_sampler, BaseSampler):
            raise SearchError(f"base_sampler must be an optuna sampler, got {type(base_sampler).__name__}")
        self._build_model = build_model
        self._example_input = example_input
        self._prune_quantile = check_quantile(prune_quantile, "prune_quantile")
        check_acquisition(acquisition)
        self._n_startup_trials = n_startup_trials
        self._n_exploration_trials = n_exploration_trials
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._base_sampler = base_sampler or TPESampler(seed=seed)
        self.surrogate = StudySurrogate(
            predictor, fine_tune=fine_tune, fine_tune_every=fine_tune_every, min_fit_points=fine_tune_min_trials,
            fit_seconds=fine_tune_seconds, seed=0 if seed is None else seed,
        )
        self._planner = Planner(
            self.surrogate, n_candidates=n_candidates, prune_quantile=self._prune_quantile,
            acquisition=acquisition, kappa=float(kappa), mutation_fraction=float(mutation_fraction),
            population_size=n_parents, proposer=proposer, n_proposals=n_proposals,
            n_startup_trials=n_exploration_trials, use_predictor=bool(use_predictor),
        )
        self._built: dict[str, _Candidate] = {}
        self._unplanned: dict[int, dict[str, Any] | None] = {}  # trial id → builder params (finished trials only)
        self._lock = threading.RLock()
        self._warned_no_builder = False

    # ------------------------------------------------------------------ BaseSampler contract
    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._base_sampler.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._base_sampler.infer_relative_search_space(study, trial)
        plan = _plan_of(trial)
        return {name: dist for name, dist in space.items() if name not in plan}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        return self._base_sampler.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        plan = _plan_of(trial)
        if param_name in plan and contains(param_distribution, plan[param_name]):
            return plan[param_name]
        return self._base_sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base_sampler.before_trial(study, trial)
        if self._build_model is None:
            if not self._warned_no_builder:
                self._warned_no_builder = True
                _logger.warning(
                    "NASAssistSampler has no build_model: it samples like its base sampler (%s). Pass "
                    "build_model=<the function your objective uses to build the model> to plan architectures.",
                    type(self._base_sampler).__name__,
                )
            return
        if study._is_multi_objective():
            raise SearchError(
                "NASAssistSampler plans for single-objective studies; for several objectives use a "
                "multi-objective sampler (e.g. NSGAIISampler) and NASAssistPruner / report_model for zero-shot scores"
            )
        if _attrs.PLAN in trial.system_attrs:
            return
        with self._lock:
            self._plan_trial(study, trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._base_sampler.after_trial(study, trial, state, values)

    # ------------------------------------------------------------------ planning
    def _trial_rng(self, number: int) -> np.random.RandomState:
        if self._seed is None:
            return np.random.RandomState(self._rng.randint(2**31 - 1))
        return np.random.RandomState(np.random.SeedSequence([self._seed, number]).generate_state(1)[0])

    def _plan_trial(self, study: Study, trial: FrozenTrial) -> None:
        storage, trial_id = study._storage, trial._trial_id
        trials = study.get_trials(deepcopy=False)
        completed = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if len(completed) < self._n_startup_trials:
            storage.set_trial_system_attr(trial_id, _attrs.ORIGIN, "base-sampler")
            return
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        rng = self._trial_rng(trial.number)
        fixed = dict(trial.system_attrs.get("fixed_params", {}))

        # the planner's evidence is rebuilt from the storage for every trial: any worker,
        # any restart, the same plan
        planner = self._planner
        planner.observations.clear()
        planner.taken.clear()
        distributions: dict[str, BaseDistribution] = {}
        for t in trials:
            if t._trial_id == trial_id:
                continue
            params = _plan_of(t) or (self._builder_params(t) if t.state.is_finished() else None)
            if not params:
                continue
            built = self._built.get(params_key(params))
            if built is not None:
                distributions.update(built.distributions)
            if t in completed:
                planner.observe(params, sign * float(t.value))
            else:
                planner.mark_taken(params)
        failures: list[str] = []

        def build(params: Mapping[str, Any] | None) -> dict[str, Any]:
            candidate_trial = CandidateTrial(rng, forced={**(params or {}), **fixed}, number=trial.number)
            try:
                return self._build(candidate_trial).params
            except _BuildFailure as failure:
                failures.append(str(failure))
                raise

        decision = planner.plan(
            SearchSpace(distributions), rng, draw=lambda _: build(None), accept=build,
            graph_of=lambda params: self._build(CandidateTrial(rng, forced=params)).graph,
        )
        if decision is None:
            if failures and not self._built:
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
                raise SearchError(
                    f"NASAssistSampler could not build any of {len(failures)} candidate models for trial "
                    f"{trial.number} (build_model raised, returned a non-module, or tracing failed): "
                    + "; ".join(failures[:3])
                )
            _logger.warning("Trial %d: no architecture left that has not been run; the base sampler decides.",
                            trial.number)
            storage.set_trial_system_attr(trial_id, _attrs.ORIGIN, "base-sampler")
            return

        fine_tuned = decision.fine_tuned_on > 0
        scale = f"fine-tuned on {decision.fine_tuned_on} trials" if fine_tuned else "zero-shot rank"
        zero_shot = float(self.surrogate.predict_zero_shot([decision.key])[0])
        attrs = {
            _attrs.PLAN: decision.params,
            _attrs.PREDICTED_MEAN: decision.predicted_mean,
            _attrs.PREDICTED_STD: decision.predicted_std,
            _attrs.ZERO_SHOT: zero_shot,
            _attrs.PREDICTION_SCALE: scale,
            _attrs.CANDIDATES: decision.n_candidates,
            _attrs.ORIGIN: decision.origin,
            _attrs.THRESHOLD: decision.threshold,
        }
        for key, value in attrs.items():
            storage.set_trial_system_attr(trial_id, key, value)
        trial.system_attrs.update(attrs)  # the Trial object holds this frozen trial
        shown_mean = sign * decision.predicted_mean if fine_tuned else decision.predicted_mean
        storage.set_trial_user_attr(trial_id, _attrs.USER_PREDICTED, shown_mean)
        storage.set_trial_user_attr(trial_id, _attrs.USER_UNCERTAINTY, decision.predicted_std)
        storage.set_trial_user_attr(trial_id, _attrs.USER_SCALE, scale)
        _logger.debug(
            "Trial %d: planned a %s candidate out of %d (predicted %.4f ± %.4f, %s).",
            trial.number, decision.origin, decision.n_candidates, decision.predicted_mean,
            decision.predicted_std, scale,
        )

    def _builder_params(self, trial: FrozenTrial) -> dict[str, Any] | None:
        """The subset of a finished, unplanned trial's params the builder reads (built once per trial)."""
        if trial._trial_id not in self._unplanned:
            try:
                candidate = self._build(CandidateTrial(np.random.RandomState(0), forced=trial.params))
                complete = all(name in trial.params for name in candidate.params)
                self._unplanned[trial._trial_id] = candidate.params if complete else None
            except _BuildFailure:
                self._unplanned[trial._trial_id] = None
        return self._unplanned[trial._trial_id]

    # ------------------------------------------------------------------ building
    def _build(self, candidate_trial: CandidateTrial) -> "_Candidate":
        """Run the builder on a candidate trial; graph of the model it returns (cached)."""
        from nasassist_plugins.adapters import from_torch

        try:
            model = self._build_model(candidate_trial)  # type: ignore[misc]
        except optuna.TrialPruned:
            raise _BuildFailure("build_model raised TrialPruned") from None
        except Exception as exc:  # user code: skip this candidate, say why
            _logger.debug("build_model failed for %s: %r", candidate_trial.params, exc)
            raise _BuildFailure(f"build_model raised {type(exc).__name__}: {exc}") from None
        key = params_key(candidate_trial.params)
        if key in self._built:
            return self._built[key]
        if isinstance(model, ComputationalGraph):
            graph = model
        elif isinstance(model, nn.Module):
            if self._example_input is None:
                raise _BuildFailure("build_model returned an nn.Module but the sampler has no example_input to trace it")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    graph = from_torch(model, self._example_input)
            except NASAssistError as exc:
                raise _BuildFailure(f"tracing failed: {exc}") from None
        else:
            raise _BuildFailure(f"build_model returned {type(model).__name__}, not an nn.Module")
        candidate = _Candidate(dict(candidate_trial.params), dict(candidate_trial.distributions), graph)
        if len(self._built) >= _GRAPH_CACHE_SIZE:
            self._built.pop(next(iter(self._built)))
        self._built[key] = candidate
        return candidate


class _BuildFailure(Exception):
    """A candidate could not be turned into a graph (reason in the message)."""


def _plan_of(trial: FrozenTrial) -> dict[str, Any]:
    plan = trial.system_attrs.get(_attrs.PLAN)
    return dict(plan) if isinstance(plan, Mapping) else {}
