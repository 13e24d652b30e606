"""NASAssistTuner: an NNI HPO tuner that ranks candidate architectures with the predictor.

For HPO search spaces that describe an architecture (widths, depths, kernel sizes, ...)
and a *model builder* — a function ``build(params) -> nn.Module`` that turns one
parameter set into the model the trial will train — the tuner builds every candidate of
a pool (random draws + mutations of the best finished trials), scores its graph with
the zero-shot predictor (fine-tuned on the finished trials), never proposes candidates
predicted below ``prune_quantile`` of the pool, and picks one by acquisition. Parameters
the builder ignores (learning rate, ...) are drawn and mutated like the others.

It runs in NNI's dispatcher process, so everything is given as JSON ``class_args``::

    from nni.experiment import Experiment, CustomAlgorithmConfig
    experiment.config.tuner = CustomAlgorithmConfig(
        class_name="nasassist_plugins.nni.NASAssistTuner",
        code_directory=".",                          # where the builder's module lives
        class_args={"model_builder": "my_models:build", "example_input": [1, 64],
                    "optimize_mode": "maximize", "seed": 0},
    )
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from nni import NoMoreTrialError
from nni.tuner import Tuner

from nasassist_plugins.errors import NNIConfigError
from nasassist_plugins.nni._util import check_mode, load_predictor, scalar_metric

# PyTorch, the predictor and the planner are imported in update_search_space(), i.e. after
# NNI's dispatcher has connected: NNI gives a custom tuner only 10 seconds to start.

_logger = logging.getLogger(__name__)

_NEEDS_BUILDER = (
    "NASAssistTuner ranks candidate architectures with a graph predictor, so it needs to turn a parameter set "
    "into a model before the trial runs. Pass class_args={{'model_builder': 'module:function', "
    "'example_input': [1, 3, 32, 32]}}, where function(params: dict) returns the torch.nn.Module (or a "
    "nasassist_plugins ComputationalGraph) the trial would train, and module is importable from the tuner's "
    "code_directory. {detail}For search spaces without architecture parameters use a built-in tuner "
    "(e.g. TPE) with NASAssistAssessor."
)


def _split_builder(builder: Any) -> tuple[str, str]:
    if builder is None:
        raise NNIConfigError(_NEEDS_BUILDER.format(detail="No model_builder was given. "))
    if not isinstance(builder, str) or not builder.strip():
        raise NNIConfigError(_NEEDS_BUILDER.format(detail=f"model_builder={builder!r} is not a 'module:function' string. "))
    text = builder.strip()
    module_name, sep, attr = text.partition(":")
    if not sep:
        module_name, _, attr = text.rpartition(".")
    if not module_name or not attr:
        raise NNIConfigError(_NEEDS_BUILDER.format(detail=f"model_builder={builder!r} is not a 'module:function' string. "))
    return module_name, attr


def resolve_builder(builder: str | Callable[[dict], Any] | None) -> Callable[[dict], Any]:
    """The model builder from a callable or a ``"module:function"`` / ``"module.function"`` string."""
    if callable(builder):
        return builder
    module_name, attr = _split_builder(builder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise NNIConfigError(
            _NEEDS_BUILDER.format(detail=f"Importing {module_name!r} failed ({type(exc).__name__}: {exc}). ")
        ) from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise NNIConfigError(_NEEDS_BUILDER.format(detail=f"{module_name!r} has no function {attr!r}. "))
    return function


class NASAssistTuner(Tuner):
    """NNI tuner: predictor-ranked candidates for architecture search spaces.

    Args:
        model_builder: ``"module:function"`` (or a callable when used from Python) building
            the trial's model from a parameter dict. Required.
        example_input: input shape (list) or tensor for tracing the built models. Required.
        optimize_mode: ``"maximize"`` (default) or ``"minimize"`` (the trial's final metric).
        predictor: weights path of the predictor (default ``None``: the shipped weights).
        config: the planner's settings as a dict (JSON ``class_args``) or a
            :class:`~nasassist_plugins.search.PlannerConfig` — the same settings, names and
            defaults as the Optuna sampler and the NNI strategy. Default ``None``: ``PlannerConfig()``.
        seed: random seed. Default ``None``.
        decision_log: optional JSON-lines file receiving every decision (parameters,
            prediction, quantile threshold, pool size). Default ``None``.

    Example::

        experiment.config.tuner = CustomAlgorithmConfig(
            class_name="nasassist_plugins.nni.NASAssistTuner", code_directory=".",
            class_args={"model_builder": "my_models:build", "example_input": [1, 64],
                        "config": {"max_candidates": 64, "prune_quantile": 0.5}, "seed": 0},
        )
    """

    def __init__(
        self,
        *,
        model_builder: str | Callable[[dict], Any] | None = None,
        example_input: Any = None,
        optimize_mode: str = "maximize",
        predictor: str | None = None,
        config: Any = None,
        seed: int | None = None,
        decision_log: str | None = None,
    ) -> None:
        super().__init__()
        if not callable(model_builder):
            _split_builder(model_builder)  # a clear error now; the module is imported once connected
        if example_input is None:
            raise NNIConfigError(_NEEDS_BUILDER.format(detail="No example_input (input shape for tracing) was given. "))
        check_mode(optimize_mode)
        from nasassist_plugins.search.config import PlannerConfig

        self.config = PlannerConfig.from_mapping(config)
        self.model_builder = model_builder
        self.example_input = tuple(example_input) if isinstance(example_input, list) else example_input
        self.optimize_mode = optimize_mode
        self._sign = 1.0 if optimize_mode == "maximize" else -1.0
        self._rng = np.random.RandomState(seed)
        self._predictor = predictor
        self._seed = 0 if seed is None else int(seed)
        self.build: Callable[[dict], Any] | None = None
        self.planner: Any = None
        self.space: Any = None
        self.decision_log = Path(decision_log) if decision_log else None
        self.decisions: list[dict[str, Any]] = []
        self._issued: dict[int, tuple[dict[str, Any], float]] = {}
        self._durations: list[float] = []
        self._pending: list[tuple[dict[str, Any], float | None]] = []

    def _setup(self) -> None:
        """Import PyTorch, the builder and the predictor (once the dispatcher is connected)."""
        if self.planner is not None:
            return
        from nasassist_plugins.search.planner import Planner
        from nasassist_plugins.search.surrogate import StudySurrogate

        self.build = resolve_builder(self.model_builder)
        surrogate = StudySurrogate.from_config(load_predictor(self._predictor), self.config, seed=self._seed)
        self.planner = Planner(surrogate, self.config)
        for params, value in self._pending:
            if value is None:
                self.planner.mark_taken(params)
            else:
                self.planner.observe(params, value)
        self._pending.clear()

    @property
    def surrogate(self) -> Any:
        self._setup()
        return self.planner.surrogate

    def _record(self, params: dict[str, Any], value: float | None) -> None:
        if self.planner is None:
            self._pending.append((dict(params), value))
        elif value is None:
            self.planner.mark_taken(params)
        else:
            self.planner.observe(params, value)

    # ------------------------------------------------------------------ NNI contract
    def update_search_space(self, search_space: dict) -> None:
        from nasassist_plugins.nni.space import hpo_space

        self.space = hpo_space(search_space)
        self._setup()

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict:
        from nasassist_plugins.search.space import to_builtin
        from nasassist_plugins.search.planner import plan_budget

        if self.space is None:
            raise NNIConfigError("NASAssistTuner got no search space (update_search_space was not called)")
        self._setup()
        decision = self.planner.plan(self.space, _HPOSource(self), self._rng,
                                     budget=plan_budget(self.config, self._durations))
        if decision is None:
            _logger.info("No new parameter set left in the search space (%d issued).", len(self.planner.taken))
            raise NoMoreTrialError("NASAssistTuner: every parameter set of the search space was issued")
        self.planner.mark_taken(decision.params)
        record = {"parameter_id": parameter_id, **decision.to_dict()}
        self.decisions.append(record)
        self._issued[parameter_id] = (decision.params, time.perf_counter())
        self._log(record)
        _logger.info("parameter %d: %s candidate of %d, predicted %.4f ± %.4f", parameter_id, decision.origin,
                     decision.n_candidates, decision.predicted_mean, decision.predicted_std)
        return to_builtin(decision.params)

    def receive_trial_result(self, parameter_id: int, parameters: dict, value: Any, **kwargs: Any) -> None:
        issued = self._issued.get(parameter_id)
        if issued is not None:
            self._durations.append(time.perf_counter() - issued[1])
        metric = scalar_metric(value)
        if metric is None:
            _logger.warning("parameter %d reported a non-numeric final result %r; ignored.", parameter_id, value)
            self._record(parameters, None)
            return
        self._record(parameters, self._sign * metric)

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        issued = self._issued.pop(parameter_id, None)
        if issued is not None:
            self._record(issued[0], None)

    def import_data(self, data: Sequence[dict]) -> None:
        for entry in data:
            metric = scalar_metric(entry.get("value"))
            params = entry.get("parameter")
            if isinstance(params, dict) and metric is not None:
                self._record(params, self._sign * metric)

    # ------------------------------------------------------------------ helpers
    def _log(self, record: dict[str, Any]) -> None:
        if self.decision_log is None:
            return
        try:
            with self.decision_log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            _logger.warning("could not write the tuner log %s: %s", self.decision_log, exc)


class _HPOSource:
    """Candidates of an HPO search space: draws of the space, built by the model builder."""

    def __init__(self, tuner: NASAssistTuner) -> None:
        self._tuner = tuner
        self.example_input = tuner.example_input

    def sample(self, rng: np.random.RandomState) -> tuple[dict[str, Any], Any]:
        return self._built(self._tuner.space.random(rng))

    def complete(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any] | None:
        return self._built(dict(params)) if self._tuner.space.contains(params) else None

    def _built(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        assert self._tuner.build is not None
        return params, self._tuner.build(dict(params))
