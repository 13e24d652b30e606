"""NASAssistSampler: score candidate architectures zero-shot, run only the promising ones.

For each new trial the sampler rebuilds its evidence from the study's storage and asks
the planner (:mod:`nasassist_plugins.search.planner`) for an architecture:

1. a pool of candidate parameter sets — random draws, mutations of the best finished
   trials, proposals of an optional proposer — each built once with the user's own
   ``build_model(trial)`` (called with a :class:`CandidateTrial`, so nothing is
   trained) and traced into a graph unless its encoding is cached; the pool grows until
   the time budget (a small fraction of the median trial) is spent;
2. stage 1 scores the whole pool from the graphs (the predictor's learned part, fitted to
   the study's finished *and pruned* trials as they arrive); stage 2 re-scores a
   shortlist from the built models;
3. candidates predicted below ``prune_quantile`` are never run; one is chosen by
   acquisition (UCB by default), reserved in the storage, and written as the trial's
   *plan*;
4. every ``suggest_*`` of the trial is answered from the plan. Parameters the builder does
   not read (learning rate, batch size, ...) go to the base sampler (TPE by default).

Everything lives in the study's storage (plan, predictions, reservation, the mutation
space as ``FrozenTrial.distributions``), so the sampler is correct with many workers (RDB
storage, ``n_jobs > 1``), after a restart, and in a worker that did not plan the parents.
Any failure inside the sampler marks the trial FAIL with the reason (system attr
``nasassist:error``) before the error is raised, never leaving it RUNNING.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasassist_plugins.errors import (
    ConfigurationError,
    ConfigurationTypeError,
    SearchError,
)
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.optuna._candidate_trial import CandidateTrial
from nasassist_plugins.optuna._heartbeat import beating
from nasassist_plugins.optuna._objectives import (
    is_feasible,
    objective_set,
    predicted_constraints,
    store_constraints,
    store_predictions,
)
from nasassist_plugins.search.candidates import contains, params_key
from nasassist_plugins.search.config import PlannerConfig
from nasassist_plugins.search.space import SearchSpace
from nasassist_plugins.validation import check_integer

_logger = logging.getLogger(__name__)

BuildModel = Callable[[Any], Any]

_PLAN_CACHE = 4096  # plans of trials this process asked about (sample_independent reads them often)


class NASAssistSampler(BaseSampler):
    """Optuna sampler that plans architecture parameters with a zero-shot predictor.

    Args:
        build_model: the function your objective uses to build the model from a trial
            (``build_model(trial) -> nn.Module``; a ``ComputationalGraph`` is also
            accepted). Without it (default ``None``) the sampler behaves as
            ``base_sampler`` and says so once.
        example_input: an input tensor (or shape tuple) for tracing the models. Default ``None``.
        config: the planner's settings, a :class:`~nasassist_plugins.search.PlannerConfig`
            or a dict of them (default ``PlannerConfig()``: pools of 16 to 1,000 candidates
            within 2 % of the median trial duration, UCB, ``prune_quantile=0.5``, GP fine-tuning).
        predictor: the zero-shot predictor (default ``None``: the shipped weights, loaded on
            first use).
        proposer: optional object with ``propose_params(parents, distributions, n, rng)``
            (e.g. :class:`nasassist_plugins.mutation.RelevanceGuidedMutator`); its proposals
            join the pool and are scored like the others. Default ``None``.
        base_sampler: sampler for the parameters the builder does not read (default
            ``TPESampler(seed=seed)``).
        n_startup_trials: trials sampled by ``base_sampler`` alone before planning starts
            (Optuna's meaning of the name). Default 0.
        seed: seed for reproducible studies. Default ``None``.
        objectives: one per study direction (*experimental*): ``"score"`` (the surrogate's
            prediction of the trained metric), ``"params"``, ``"flops"``, ``"latency"`` (ms
            timed here on ``example_input``), ``"latency:DEVICE"`` (predicted, see
            :func:`nasassist_plugins.hardware.latency_devices`), or a callable ``(model, graph)
            -> float``; computed for every pool candidate before a Pareto-aware choice.
            Default ``None``: single-objective (``["score"]`` when only budgets are given).
        max_params, max_latency_ms: hard budgets; candidates predicted over them never run
            (latency: the ``"latency"`` objective, else the first device latency, else timed
            on ``example_input``). Default ``None``.
        constraints_func: Optuna's ``constraints_func(frozen_trial)`` (values <= 0: feasible),
            evaluated on each candidate's predicted ``values`` and ``params`` before choosing
            (when it needs more, e.g. a user attr, the candidate counts as feasible) and on
            finished trials (system attr ``constraints``, as Optuna's samplers). Default ``None``.
        pareto_rule: ``"ehvi"`` (expected hypervolume improvement, default) or ``"parego"``.

    Example::

        import optuna
        from nasassist_plugins.optuna import NASAssistSampler
        from nasassist_plugins.search import PlannerConfig

        sampler = NASAssistSampler(build_model=build_model, example_input=(1, 3, 32, 32),
                                   config=PlannerConfig(prune_quantile=0.75), seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=50)   # objective calls build_model(trial) too

        sampler = NASAssistSampler(build_model=build_model, example_input=(1, 3, 32, 32),  # accuracy x latency
                                   objectives=["score", "latency"], max_params=1e6, seed=0)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    """

    def __init__(
        self,
        *,
        build_model: BuildModel | None = None,
        example_input: Any = None,
        config: PlannerConfig | Mapping[str, Any] | None = None,
        predictor: Any = None,
        proposer: Any = None,
        base_sampler: BaseSampler | None = None,
        n_startup_trials: int = 0,
        seed: int | None = None,
        objectives: Sequence[Any] | None = None,
        max_params: float | None = None,
        max_latency_ms: float | None = None,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        pareto_rule: str = "ehvi",
        **unknown: Any,
    ) -> None:
        if unknown:  # e.g. NASAssistSampler(kappa=2): name the argument, point planner settings to config
            raise _unknown_arguments(unknown)
        if build_model is not None and not callable(build_model):
            raise ConfigurationError(f"build_model must be a function of a trial, got {type(build_model).__name__}")
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int) or n_startup_trials < 0:
            raise ConfigurationError(f"n_startup_trials must be an integer >= 0, got {n_startup_trials!r}")
        if proposer is not None and not callable(getattr(proposer, "propose_params", None)):
            raise ConfigurationError("proposer must have a propose_params(parents, distributions, n, rng) method")
        if base_sampler is not None and not isinstance(base_sampler, BaseSampler):
            raise ConfigurationError(f"base_sampler must be an optuna sampler, got {type(base_sampler).__name__}")
        check_integer("seed", seed, minimum=0, maximum=2**32 - 1, optional=True)  # numpy's seed range
        if constraints_func is not None and not callable(constraints_func):
            raise ConfigurationError("constraints_func must be a function of a FrozenTrial returning a sequence of floats")
        from nasassist_plugins.search.pareto import PARETO_RULES

        if pareto_rule not in PARETO_RULES:
            raise ConfigurationError(f"pareto_rule must be one of {', '.join(PARETO_RULES)}, got {pareto_rule!r}")
        from nasassist_plugins.search.planner import Planner
        from nasassist_plugins.search.surrogate import StudySurrogate

        self._objectives = objective_set(objectives, example_input, max_params, max_latency_ms, constraints_func)
        if self._objectives is not None:
            from nasassist_plugins.experimental import warn_experimental

            warn_experimental("sampler-objectives", "NASAssistSampler's objectives, budgets and constraints_func")
        self._constraints_func = constraints_func
        self._pareto_rule = pareto_rule

        self.config = PlannerConfig.from_mapping(config)
        self._build_model = build_model
        self._example_input = example_input
        self._n_startup_trials = n_startup_trials
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._base_sampler = base_sampler or TPESampler(seed=seed)
        self.surrogate = StudySurrogate.from_config(predictor, self.config, seed=0 if seed is None else seed)
        self._proposer = proposer
        self.planner = Planner(self.surrogate, self.config, proposer=proposer)
        self._unplanned: dict[int, dict[str, Any] | None] = {}  # trial id -> builder params (finished trials)
        self._plans: dict[int, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._warned_no_builder = False
        self._space: SearchSpace | None = None

    # ------------------------------------------------------------------ BaseSampler contract
    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._base_sampler.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._base_sampler.infer_relative_search_space(study, trial)
        plan = self._plan_of(trial)
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
        plan = self._plan_of(trial)
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
        try:
            if self._objectives is not None:
                self._use_objectives(study)
            elif len(study.directions) > 1:
                raise ConfigurationError(
                    f"NASAssistSampler got a study with {len(study.directions)} directions but no objectives: pass "
                    "objectives=[...] with one entry per direction (e.g. ['score', 'latency'])"
                )
            if self._plan_of(trial) or _attrs.DECISION in trial.system_attrs:
                return  # planned already (e.g. a trial asked again)
            with self._lock, beating(study._storage, trial._trial_id):
                self._plan_trial(study, trial)
        except Exception as exc:
            _fail_trial(study, trial, exc)
            raise

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._plans.pop(trial._trial_id, None)
        try:
            if self._constraints_func is not None and state in (TrialState.COMPLETE, TrialState.PRUNED):
                store_constraints(self._constraints_func, study, trial, values)
        finally:
            self._base_sampler.after_trial(study, trial, state, values)

    def _use_objectives(self, study: Study) -> None:
        """The planner of this study's directions (the objective set is checked against them once)."""
        from nasassist_plugins.search.pareto_planner import ParetoPlanner

        directions = tuple(d.name.lower() for d in study.directions)
        assert self._objectives is not None
        if isinstance(self.planner, ParetoPlanner) and self._objectives.directions == directions:
            return
        objectives = self._objectives.with_directions(directions)
        self.planner = ParetoPlanner(self.surrogate, self.config, objectives=objectives, proposer=self._proposer,
                                     rule=self._pareto_rule,
                                     feasibility=self._feasibility if self._constraints_func is not None else None)

    def _feasibility(self, params: Mapping[str, Any], values: Sequence[float]) -> Sequence[float] | None:
        return predicted_constraints(self._constraints_func, params, values, self._space)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ planning
    def _trial_rng(self, number: int) -> np.random.RandomState:
        if self._seed is None:
            return np.random.RandomState(self._rng.randint(2**31 - 1))
        return np.random.RandomState(np.random.SeedSequence([self._seed, number]).generate_state(1)[0])

    def _plan_of(self, trial: FrozenTrial) -> dict[str, Any]:
        plan = self._plans.get(trial._trial_id)
        if plan is None:
            stored = _attrs.join_attr(trial.system_attrs, _attrs.PLAN)
            plan = dict(stored) if isinstance(stored, Mapping) else {}
            if plan:
                if len(self._plans) >= _PLAN_CACHE:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[trial._trial_id] = plan
        return plan

    def _plan_trial(self, study: Study, trial: FrozenTrial) -> None:
        started = time.perf_counter()
        # Like Optuna's own GPSampler and CmaEsSampler, write system attrs through the study's
        # storage: a sampler has no other way to attach data to a trial.
        storage, trial_id = study._storage, trial._trial_id
        trials = study.get_trials(deepcopy=False)
        completed = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
        if len(completed) < self._n_startup_trials:
            storage.set_trial_system_attr(trial_id, _attrs.DECISION, {_attrs.ORIGIN: "base-sampler"})
            return
        multi = self._objectives is not None
        sign = 1.0 if multi or study.direction == StudyDirection.MAXIMIZE else -1.0
        fixed = dict(trial.system_attrs.get("fixed_params", {}))
        space, durations, reserved = self._rebuild_evidence(trials, trial, sign)
        self._space = space
        from nasassist_plugins.search.planner import plan_budget

        source = _OptunaSource(self, fixed, trial.number, self._trial_rng(trial.number))
        forced = bool(fixed) and self._fully_fixed(source)
        if forced:  # an enqueued architecture (or a retry of a failed one): scored and run as given
            decision = self.planner.plan_given(source, fixed)
        else:
            decision = self.planner.plan(space, source, source.rng, budget=plan_budget(self.config, durations),
                                         exclude_archs=reserved)
        if decision is None:
            failures = self.planner.last_failures
            if failures and self.planner.n_built == 0 and not len(self.surrogate):
                raise SearchError(
                    f"NASAssistSampler could not build any of {len(failures)} candidate models for trial "
                    f"{trial.number} (build_model raised, returned a non-module, or tracing failed): "
                    + "; ".join(failures[:3])
                )
            _logger.warning("Trial %d: no architecture left that has not been run; the base sampler decides.",
                            trial.number)
            storage.set_trial_system_attr(trial_id, _attrs.DECISION, {_attrs.ORIGIN: "base-sampler"})
            return
        choice = decision if forced else self._reserve(study, trial, decision)
        fine_tuned = decision.fine_tuned_on > 0
        scale = f"fine-tuned on {decision.fine_tuned_on} trials" if fine_tuned else "zero-shot rank"
        decided = {
            _attrs.ORIGIN: "enqueued" if forced else choice.origin,
            _attrs.PREDICTED_MEAN: choice.predicted_mean,
            _attrs.PREDICTED_STD: choice.predicted_std,
            _attrs.PREDICTION_SCALE: scale,
            _attrs.CANDIDATES: decision.n_candidates,
            _attrs.THRESHOLD: decision.threshold,
            _attrs.PLAN_SECONDS: time.perf_counter() - started,
        }
        if multi:  # JSON-safe: no NaN in storages
            decided = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in decided.items()}
        attrs: dict[str, Any] = {
            **_attrs.split_attr(_attrs.PLAN, choice.params),
            _attrs.ARCH: choice.arch,
            _attrs.ZERO_SHOT: choice.zero_shot,
            _attrs.DECISION: decided,
        }
        for key, value in attrs.items():
            if not (key == _attrs.ARCH and not forced):  # _reserve wrote it already
                storage.set_trial_system_attr(trial_id, key, value)
        trial.system_attrs.update(attrs)  # the Trial object holds this frozen trial
        self._plans[trial_id] = dict(choice.params)
        shown_mean = sign * choice.predicted_mean if fine_tuned else choice.predicted_mean
        if multi:
            budgeted = self._objectives.has_budgets or self._constraints_func is not None  # type: ignore[union-attr]
            store_predictions(storage, trial_id, self.planner, choice.key, fine_tuned=self.surrogate.is_fine_tuned,
                              feasibility=budgeted)
        else:
            storage.set_trial_user_attr(trial_id, _attrs.USER_PREDICTED, shown_mean)
            storage.set_trial_user_attr(trial_id, _attrs.USER_UNCERTAINTY, choice.predicted_std)
        storage.set_trial_user_attr(trial_id, _attrs.USER_SCALE, scale)
        _logger.debug(
            "Trial %d: planned a %s candidate out of %d in %.2fs (predicted %.4f ± %.4f, %s).",
            trial.number, choice.origin, decision.n_candidates, decided[_attrs.PLAN_SECONDS], choice.predicted_mean,
            choice.predicted_std, scale,
        )

    def _rebuild_evidence(
        self, trials: Sequence[FrozenTrial], current: FrozenTrial, sign: float
    ) -> tuple[SearchSpace, list[float], set[str]]:
        """Evidence, mutation space and reservations, from the storage alone (any worker, any restart)."""
        planner = self.planner
        planner.reset()
        distributions: dict[str, BaseDistribution] = {}
        durations: list[float] = []
        reserved: set[str] = set()
        for t in trials:
            if t._trial_id == current._trial_id:
                continue
            params = self._plan_of(t) or (self._builder_params(t) if t.state.is_finished() else {})
            if t.state == TrialState.RUNNING and isinstance(t.system_attrs.get(_attrs.ARCH), str):
                reserved.add(t.system_attrs[_attrs.ARCH])
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.datetime_start and t.datetime_complete:
                durations.append((t.datetime_complete - t.datetime_start).total_seconds())
            if not params:
                continue
            distributions.update({k: t.distributions[k] for k in params if k in t.distributions})
            if self._objectives is not None:
                if t.state == TrialState.COMPLETE and t.values is not None:
                    planner.observe_values(params, t.values, feasible=is_feasible(t))
                else:
                    planner.mark_taken(params)
            elif t.state == TrialState.COMPLETE and t.value is not None:
                planner.observe(params, sign * float(t.value))
            elif t.state == TrialState.PRUNED and t.value is not None:
                planner.observe_censored(params, sign * float(t.value))  # its last value bounds what it would reach
            else:
                planner.mark_taken(params)
        return SearchSpace(distributions), durations, reserved

    def _reserve(self, study: Study, trial: FrozenTrial, decision: Any) -> Any:
        """Reserve the first choice no other trial holds: write it, then check the others' reservations.

        Each worker writes its reservation before reading the others', so of two workers
        planning the same architecture at least one sees the other and moves on.
        """
        storage, trial_id = study._storage, trial._trial_id
        choices = decision.choices()
        for choice in choices:
            storage.set_trial_system_attr(trial_id, _attrs.ARCH, choice.arch)
            # every other trial counts: one planned meanwhile may have finished already
            others = study.get_trials(deepcopy=False)
            if not any(t._trial_id != trial_id and t.system_attrs.get(_attrs.ARCH) == choice.arch for t in others):
                return choice
            _logger.debug("Trial %d: architecture %s is reserved by another worker; next choice.", trial.number,
                          choice.arch)
        _logger.warning("Trial %d: every ranked candidate is taken by another trial; running the first anyway.",
                        trial.number)
        storage.set_trial_system_attr(trial_id, _attrs.ARCH, choices[0].arch)
        return choices[0]

    @staticmethod
    def _fully_fixed(source: "_OptunaSource") -> bool:
        """Whether the enqueued parameters decide every parameter the builder reads."""
        try:
            params, _ = source.sample(np.random.RandomState(0))
        except Exception:  # noqa: BLE001 - planned normally; the planner reports the builder's error
            return False
        return set(params) <= set(source.fixed)

    def _builder_params(self, trial: FrozenTrial) -> dict[str, Any]:
        """The subset of a finished, unplanned trial's params the builder reads (built once per trial)."""
        if trial._trial_id not in self._unplanned:
            source = _OptunaSource(self, {}, trial.number, np.random.RandomState(0))
            try:
                built = source.complete(trial.params)
                complete = built is not None and all(name in trial.params for name in built[0])
                self._unplanned[trial._trial_id] = built[0] if complete else None  # type: ignore[index]
            except Exception:  # noqa: BLE001 - a trial the builder cannot rebuild is no evidence
                self._unplanned[trial._trial_id] = None
        return self._unplanned[trial._trial_id] or {}


class _OptunaSource:
    """Candidates of an Optuna study: ``build_model`` run on a :class:`CandidateTrial`."""

    def __init__(self, sampler: NASAssistSampler, fixed: Mapping[str, Any], number: int,
                 rng: np.random.RandomState) -> None:
        self._build_model = sampler._build_model
        self.example_input = sampler._example_input
        self.fixed = dict(fixed)
        self._number = number
        self.rng = rng

    def sample(self, rng: np.random.RandomState) -> tuple[dict[str, Any], Any]:
        return self._build(CandidateTrial(rng, forced=self.fixed, number=self._number))

    def complete(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        return self._build(CandidateTrial(self.rng, forced={**params, **self.fixed}, number=self._number))

    def _build(self, candidate: CandidateTrial) -> tuple[dict[str, Any], Any]:
        import optuna

        try:
            model = self._build_model(candidate)  # type: ignore[misc]
        except optuna.TrialPruned:
            raise SearchError("build_model raised TrialPruned") from None
        except Exception as exc:  # user code: the planner skips this candidate and says why
            raise SearchError(f"build_model raised {type(exc).__name__}: {exc}") from None
        return dict(candidate.params), model


def _unknown_arguments(unknown: Mapping[str, Any]) -> ConfigurationTypeError:
    names = sorted(unknown)
    planner = [n for n in names if n in PlannerConfig.__dataclass_fields__]
    hint = f"; planner settings go in config={{{planner[0]!r}: ...}} (see PlannerConfig)" if planner else ""
    return ConfigurationTypeError(f"NASAssistSampler got unexpected argument(s) {', '.join(names)}{hint}")


def _fail_trial(study: Study, trial: FrozenTrial, exc: BaseException) -> None:
    """Mark a trial FAIL with the reason, so that a sampler error never leaves it RUNNING."""
    reason = f"{type(exc).__name__}: {exc}"[: _attrs.MAX_ATTR_LENGTH]
    try:
        study._storage.set_trial_system_attr(trial._trial_id, _attrs.ERROR, reason)
    except Exception:  # noqa: BLE001 - e.g. the trial was failed meanwhile by another worker
        pass
    try:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    except Exception as tell_error:  # noqa: BLE001 - report the original error, not this one
        _logger.error("Trial %d could not be marked FAIL after a sampler error: %s", trial.number, tell_error)
    _logger.warning("Trial %d failed in NASAssistSampler: %s", trial.number, reason)


def plan_key(trial: FrozenTrial) -> str | None:
    """Canonical key of a trial's plan (``None`` when it has none)."""
    plan = _attrs.join_attr(trial.system_attrs, _attrs.PLAN)
    return params_key(plan) if isinstance(plan, Mapping) else None
