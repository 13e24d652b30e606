"""NASAssistStrategy: an NNI 3.0 multi-trial NAS strategy that trains only promising models.

For each free slot the strategy draws a pool of candidates (random samples of the model
space, mutations of the best finished models chosen by tournament, proposals of an
optional proposer), turns each into a computational graph from
``model.executable_model()`` — the concrete ``nn.Module`` NNI would train — scores the
graphs with the zero-shot predictor (fine-tuned on the experiment's finished models as
they arrive), never submits a candidate predicted below ``prune_quantile`` of the pool,
and submits the best one by acquisition (UCB by default). This is the
pruning-evolutionary hybrid of TG-NAS, and the same decision rule as the Optuna sampler
(:mod:`nasassist_plugins.search`).

Example::

    from nasassist_plugins.nni import NASAssistStrategy, run_nas_experiment

    strategy = NASAssistStrategy(example_input=(1, 64), seed=0)
    run_nas_experiment(MySpace(), FunctionalEvaluator(train_and_eval), strategy,
                       max_trials=20, experiment_dir="nni-runs")

Early stopping inside NAS: pass ``assessor=NASAssistAssessor(max_step=epochs)`` and, in
the evaluator, report with :func:`report_intermediate_result`, which returns ``False``
once the assessor judges the curve hopeless (sequential engine: the evaluator runs in
the strategy's process).
"""

from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from nasassist_plugins.nni._env import configure_framework

if TYPE_CHECKING:
    from nasassist_plugins.predictor import Predictor

configure_framework()

from nni.nas.execution import ExecutionEngine
from nni.nas.execution.event import IntermediateMetricEvent, ModelEventType, TrainingEndEvent
from nni.nas.space import ExecutableModelSpace, ModelStatus
from nni.nas.strategy.base import Strategy
from torch import nn

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.nni._util import check_mode, load_predictor, scalar_metric
from nasassist_plugins.nni.space import SearchSpace, nas_space
from nasassist_plugins.search import PlannerConfig, SearchError, params_key
from nasassist_plugins.search.planner import Decision, Planner, plan_budget
from nasassist_plugins.search.surrogate import StudySurrogate

_logger = logging.getLogger(__name__)

GraphFn = Callable[[ExecutableModelSpace], "nn.Module | ComputationalGraph"]

#: Models whose training the NAS-Assist assessor asked to stop (read by :func:`should_stop`).
_STOP_REQUESTED: "weakref.WeakSet[ExecutableModelSpace]" = weakref.WeakSet()

#: Consecutive planning rounds that found no new candidate before the strategy gives up.
_EMPTY_ROUNDS = 3


class NASAssistStrategy(Strategy):
    """NNI multi-trial strategy: score candidates zero-shot, submit only the promising ones.

    Args:
        predictor: zero-shot predictor (object or weights path; default ``None``: the shipped weights).
        config: the planner's settings, a :class:`~nasassist_plugins.search.PlannerConfig` or
            a dict of them (default ``PlannerConfig()``; the same settings as the Optuna
            sampler and the NNI tuner, e.g. ``population_size`` and ``tournament_size`` —
            NNI's RegularizedEvolution calls the latter ``sample_size``).
        example_input: input tensor or shape used to trace ``executable_model()`` into a
            graph (e.g. ``(1, 3, 32, 32)``). Needed unless ``graph_fn`` is given. Default ``None``.
        graph_fn: ``graph_fn(frozen_model) -> nn.Module | ComputationalGraph``, to build the
            graph another way (e.g. a benchmark's graph cache). Default ``None``:
            ``model.executable_model()`` traced with ``example_input``.
        proposer: optional object with ``propose_params(parents, distributions, n, rng)``
            (e.g. from :mod:`nasassist_plugins.mutation`); its proposals join the pool and
            are scored like the others. Its errors are logged, never fatal. Default ``None``.
        assessor: a :class:`~nasassist_plugins.nni.NASAssistAssessor` for learning-curve
            early stopping of models reported with :func:`report_intermediate_result`.
            Stopped models enter the surrogate as censored results (their last value
            bounds what they would reach). Default ``None``.
        optimize_mode: ``"maximize"`` (default; accuracy, NNI's NAS convention) or ``"minimize"``.
        seed: random seed. Default ``None``.

    Example::

        from nasassist_plugins.nni import NASAssistStrategy, run_nas_experiment
        from nasassist_plugins.search import PlannerConfig

        strategy = NASAssistStrategy(example_input=(1, 64), config=PlannerConfig(max_candidates=64), seed=0)
        run_nas_experiment(MySpace(), FunctionalEvaluator(train_and_eval), strategy,
                           max_trials=20, experiment_dir="nni-runs")
    """

    def __init__(
        self,
        *,
        predictor: Predictor | str | Path | None = None,
        config: PlannerConfig | Mapping[str, Any] | None = None,
        example_input: Any = None,
        graph_fn: GraphFn | None = None,
        proposer: Any = None,
        assessor: Any = None,
        optimize_mode: str = "maximize",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.config = PlannerConfig.from_mapping(config)
        if proposer is not None and not callable(getattr(proposer, "propose_params", None)):
            raise SearchError("proposer must have a propose_params(parents, distributions, n, rng) method")
        if graph_fn is not None and not callable(graph_fn):
            raise SearchError(f"graph_fn must be callable, got {type(graph_fn).__name__}")
        check_mode(optimize_mode)
        if assessor is not None and not callable(getattr(assessor, "assess_trial", None)):
            raise SearchError("assessor must be a NASAssistAssessor (an object with assess_trial)")
        self.example_input = example_input
        self.graph_fn = graph_fn
        self.assessor = assessor
        self.optimize_mode = optimize_mode
        self._sign = 1.0 if optimize_mode == "maximize" else -1.0
        self.seed = seed
        self._random_state = np.random.RandomState(seed)
        self.surrogate = StudySurrogate.from_config(load_predictor(predictor), self.config,
                                                    seed=0 if seed is None else int(seed))
        self.planner = Planner(self.surrogate, self.config, proposer=proposer)
        self.space: SearchSpace | None = None
        #: one record per submitted model: the decision, then metric / status / stopped
        self.history: list[dict[str, Any]] = []
        self._running: list[tuple[ExecutableModelSpace, dict[str, Any]]] = []
        self._curves: dict[str, list[float]] = {}
        self._durations: list[float] = []
        self._n_submitted = 0
        self.exhausted = False

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"max_candidates={c.max_candidates}, prune_quantile={c.prune_quantile}, acquisition={c.acquisition!r}, "
            f"population_size={c.population_size}, tournament_size={c.tournament_size}, fine_tune={c.fine_tune}"
        )

    # ------------------------------------------------------------------ NNI contract
    def _initialize(self, model_space: ExecutableModelSpace, engine: ExecutionEngine) -> ExecutableModelSpace:
        if self.graph_fn is None and self.example_input is None:
            raise SearchError(
                "NASAssistStrategy needs example_input (an input tensor or shape such as (1, 3, 32, 32)) to trace "
                "model.executable_model() into a graph, or graph_fn=<function of the frozen model returning an "
                "nn.Module or ComputationalGraph>"
            )
        self.space = nas_space(model_space.simplify())
        if not self.space.names:
            raise SearchError("the model space has no choices to search (simplify() found no mutable)")
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        if self.assessor is not None:
            engine.register_model_event_callback(ModelEventType.IntermediateMetric, self._on_intermediate)
        return model_space

    def _cleanup(self) -> None:
        self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        if self.assessor is not None:
            self.engine.unregister_model_event_callback(ModelEventType.IntermediateMetric, self._on_intermediate)

    def _run(self) -> None:
        empty_rounds = 0
        while self.wait_for_resource():
            started = time.perf_counter()
            decision = self._plan()
            if decision is None:
                if self.space is not None and self.space.size is not None and len(self.planner.taken) >= self.space.size:
                    _logger.info("All %d architectures of the space were submitted; the strategy stops.", self.space.size)
                    self.exhausted = True
                    break
                empty_rounds += 1
                if empty_rounds >= _EMPTY_ROUNDS:
                    _logger.warning(
                        "No new valid architecture found in %d rounds (%d submitted so far); the space looks "
                        "exhausted, the strategy stops.", empty_rounds, len(self.planner.taken),
                    )
                    self.exhausted = True
                    break
                continue
            empty_rounds = 0
            self.planner.mark_taken(decision.params)
            model = self.model_space.freeze(decision.params)
            self._n_submitted += 1
            record = {
                "trial": self._n_submitted,
                **decision.to_dict(),
                "plan_seconds": time.perf_counter() - started,
                "metric": None,
                "status": "running",
                "stopped_early": False,
                "_submitted": time.perf_counter(),
            }
            self.history.append(record)
            self._running.append((model, record))
            _logger.info(
                "[NAS-Assist %d] %s candidate of %d, predicted %.4f ± %.4f (threshold %s): %s",
                self._n_submitted, decision.origin, decision.n_candidates, decision.predicted_mean,
                decision.predicted_std, "none" if decision.threshold is None else f"{decision.threshold:.4f}",
                decision.params,
            )
            self.engine.submit_models(model)
        self.engine.wait_models()

    # ------------------------------------------------------------------ planning
    def _plan(self) -> Decision | None:
        assert self.space is not None
        keys = (params_key(model.sample) for model, _ in self._running)
        running = {self.surrogate.arch(k) for k in keys if self.surrogate.has(k)}
        return self.planner.plan(self.space, _NASSource(self), self._random_state,
                                 budget=plan_budget(self.config, self._durations), exclude_archs=running)

    # ------------------------------------------------------------------ engine events
    def _find_running(self, model: ExecutableModelSpace) -> int | None:
        for index, (running, _) in enumerate(self._running):
            if running is model:
                return index
        return None

    def _on_training_end(self, event: TrainingEndEvent) -> None:
        index = self._find_running(event.model)
        if index is None:
            _logger.debug("%s was not submitted by this strategy; ignored.", event.model)
            return
        model, record = self._running.pop(index)
        value = scalar_metric(model.metric)
        stopped = model in _STOP_REQUESTED
        _STOP_REQUESTED.discard(model)
        submitted = record.pop("_submitted", None)
        if submitted is not None:
            self._durations.append(time.perf_counter() - submitted)
        record.update(metric=value, status=getattr(event.status, "value", str(event.status)), stopped_early=stopped)
        trained = event.status == ModelStatus.Trained and value is not None
        trial_id = str(record["trial"])
        curve = self._curves.pop(trial_id, [])
        if trained and not stopped:
            self.planner.observe(model.sample, self._sign * value)
        elif stopped and (value is not None or curve):  # its last value bounds what it would have reached
            self.planner.observe_censored(model.sample, self._sign * (value if value is not None else curve[-1]))
        else:  # failed or metric-less models are no evidence, but are not run again
            self.planner.mark_taken(model.sample)
        if self.assessor is not None:
            self.assessor.trial_end(trial_id, trained and not stopped, final_value=value if value is not None else (
                curve[-1] if curve else None))

    def _on_intermediate(self, event: IntermediateMetricEvent) -> None:
        index = self._find_running(event.model)
        value = scalar_metric(event.metric)
        if index is None or value is None or self.assessor is None:
            return
        model, record = self._running[index]
        trial_id = str(record["trial"])
        curve = self._curves.setdefault(trial_id, [])
        curve.append(value)
        result = self.assessor.assess_trial(trial_id, list(curve))
        if getattr(result, "value", result) is False and model not in _STOP_REQUESTED:
            _STOP_REQUESTED.add(model)
            _logger.info("[NAS-Assist %s] learning curve judged hopeless after %d reports: stop requested.",
                         trial_id, len(curve))

    # ------------------------------------------------------------------ results / checkpoints
    @property
    def decisions(self) -> list[dict[str, Any]]:
        """Alias of :attr:`history` (one record per submitted model)."""
        return self.history

    def state_dict(self) -> dict:
        return {
            "random_state": self._random_state.get_state(),
            "planner": self.planner.state_dict(),
            "history": [dict(r) for r in self.history],
            "n_submitted": self._n_submitted,
            "num_running_models": len(self._running),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("num_running_models", 0):
            _logger.warning("The checkpoint has %d running models; they are not resubmitted.",
                            state_dict["num_running_models"])
        self._random_state.set_state(state_dict["random_state"])
        self.planner.load_state_dict(state_dict.get("planner", {}))
        self.history = [dict(r) for r in state_dict.get("history", [])]
        self._n_submitted = int(state_dict.get("n_submitted", len(self.history)))


class _NASSource:
    """Candidates of an NNI model space: random samples and frozen samples, built as NNI would."""

    def __init__(self, strategy: NASAssistStrategy) -> None:
        self._strategy = strategy
        self.example_input = strategy.example_input

    def sample(self, rng: np.random.RandomState) -> tuple[dict[str, Any], Any]:
        sample: dict[str, Any] = {}
        model = self._strategy.model_space.random(memo=sample, random_state=rng)
        return self._built(model)

    def complete(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        return self._built(self._strategy.model_space.freeze(dict(params)))  # raises SampleValidationError if invalid

    def _built(self, model: ExecutableModelSpace) -> tuple[dict[str, Any], Any]:
        graph_fn = self._strategy.graph_fn
        built = graph_fn(model) if graph_fn is not None else model.executable_model()
        return dict(model.sample), built


# ---------------------------------------------------------------------------- evaluator side
def should_stop() -> bool:
    """Inside an evaluator: whether the NAS-Assist assessor asked the current model to stop.

    Works with the sequential engine (the evaluator runs in the strategy's process); in a
    separate trial process it always returns ``False``.
    """
    import nni

    try:
        current = nni.get_current_parameter()
    except Exception:  # not inside a trial
        return False
    return isinstance(current, ExecutableModelSpace) and current in _STOP_REQUESTED


def report_intermediate_result(metric: Any) -> bool:
    """``nni.report_intermediate_result(metric)``, then ``True`` to continue, ``False`` to stop.

    Use in a NAS evaluator with a :class:`NASAssistStrategy` that has an assessor::

        for epoch in range(epochs):
            acc = train_one_epoch(model)
            if not report_intermediate_result(acc):
                break               # the curve is hopeless: save the rest of the budget
        nni.report_final_result(acc)
    """
    import nni

    nni.report_intermediate_result(metric)
    return not should_stop()
