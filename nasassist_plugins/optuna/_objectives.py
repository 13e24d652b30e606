"""The Optuna side of multi-objective planning: objectives, constraints and predictions in the storage.

Helpers of :class:`~nasassist_plugins.optuna.NASAssistSampler` (private module):

    objective_set          validate ``objectives=`` / budgets once, at construction
    predicted_constraints  ``constraints_func`` on a candidate's predicted values, before training
    store_constraints      ``constraints_func`` on a finished trial, stored as Optuna's samplers do
    is_feasible            whether a finished trial met its stored constraints
    store_predictions      the chosen candidate's predicted objectives as user attrs
"""

from __future__ import annotations

import copy
import datetime
import logging
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nasassist_plugins.errors import ConfigurationError
from nasassist_plugins.optuna import _attrs

_logger = logging.getLogger(__name__)
_UNKNOWN_BEFORE_TRAINING: set[int] = set()  # ids of the constraints_funcs already said to need the run

#: Optuna's system attr for constraint values (its samplers and ``study.best_trials`` read it).
CONSTRAINTS_KEY = "constraints"

ConstraintsFunc = Callable[[FrozenTrial], Sequence[float]]


def objective_set(objectives: Sequence[Any] | None, example_input: Any, max_params: Any, max_latency_ms: Any,
                  constraints_func: Any) -> Any:
    """The validated :class:`~nasassist_plugins.search.objectives.ObjectiveSet` (directions are set per
    study), or ``None`` for single-objective planning without budgets.

    Raises:
        ConfigurationError: anything :class:`ObjectiveSet` rejects, or ``objectives`` not a list.
    """
    if objectives is None and max_params is None and max_latency_ms is None and constraints_func is None:
        return None
    from nasassist_plugins.search.objectives import ObjectiveSet

    specs = ["score"] if objectives is None else objectives
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        raise ConfigurationError(f"objectives must be a list (one entry per study direction), got {specs!r}")
    return ObjectiveSet(specs, ["maximize"] * len(specs), example_input=example_input, max_params=max_params,
                        max_latency_ms=max_latency_ms)


def predicted_constraints(constraints_func: ConstraintsFunc, params: Mapping[str, Any], values: Sequence[float],
                          space: Any) -> list[float] | None:
    """The constraint values of a candidate from its predicted ``values``, or ``None`` when
    ``constraints_func`` needs more than a finished trial's values and params (e.g. a user attr;
    said once per process)."""
    distributions = space.distributions if space is not None else {}
    now = datetime.datetime.now()
    predicted = FrozenTrial(
        number=-1, state=TrialState.COMPLETE, value=None, values=list(values), datetime_start=now,
        datetime_complete=now, params=dict(params),
        distributions={k: distributions[k] for k in params if k in distributions},
        user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=-1,
    )
    try:
        constraints = [float(c) for c in constraints_func(predicted)]
    except Exception as exc:  # noqa: BLE001 - user code that reads what only the run gives
        if id(constraints_func) not in _UNKNOWN_BEFORE_TRAINING:
            _UNKNOWN_BEFORE_TRAINING.add(id(constraints_func))
            _logger.info("constraints_func cannot be evaluated before training (%s: %s); it is applied to "
                         "finished trials only.", type(exc).__name__, exc)
        return None
    return constraints if all(np.isfinite(constraints)) else None


def store_constraints(constraints_func: ConstraintsFunc, study: Study, trial: FrozenTrial,
                      values: Sequence[float] | None) -> None:
    """Evaluate ``constraints_func`` on a finished trial and store it under ``constraints``, as Optuna's
    samplers do (``None`` is stored when it raises; the error propagates)."""
    finished = copy.copy(trial)
    if values is not None and finished.values is None:
        finished.values = list(values)  # Optuna stores the values after after_trial
    constraints = None
    try:
        con = [float(c) for c in constraints_func(finished)]
        if any(np.isnan(con)):
            raise ConfigurationError("constraints_func returned NaN")
        constraints = tuple(con)
    finally:
        study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY, constraints)


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether a finished trial met its constraints (absent: feasible)."""
    constraints = trial.system_attrs.get(CONSTRAINTS_KEY)
    return constraints is None or all(float(c) <= 0 for c in constraints)


def store_predictions(storage: Any, trial_id: int, planner: Any, key: str, *, fine_tuned: bool,
                      feasibility: bool) -> None:
    """The chosen candidate's predicted objectives as user attrs (shown by optuna-dashboard):
    ``nasassist_predicted_<name>`` and ``nasassist_uncertainty_<name>`` per objective (the score only
    once fine-tuned, i.e. on the metric's scale), and ``nasassist_predicted_feasible`` when
    budgets or constraints apply."""
    prediction = planner.predicted.get(key)  # the chosen candidate (key of its parameters)
    if prediction is None:
        return
    for i, name in enumerate(planner.objectives.names):
        mean, std = prediction.mean[i], prediction.std[i]
        if not np.isfinite(mean) or (i == planner.objectives.score_index and not fine_tuned):
            continue
        storage.set_trial_user_attr(trial_id, f"{_attrs.USER_PREDICTED}_{name}", float(mean))
        if np.isfinite(std):
            storage.set_trial_user_attr(trial_id, f"{_attrs.USER_UNCERTAINTY}_{name}", float(std))
    if feasibility:
        storage.set_trial_user_attr(trial_id, _attrs.USER_FEASIBLE, not prediction.violations)
