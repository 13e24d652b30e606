"""Zero-shot scores for trials whose architecture was not planned by NASAssistSampler.

With any other sampler (TPE, random, NSGA-II, ...), call :func:`report_model` in the
objective right after building the model; :class:`NASAssistPruner` can then prune the
trial at step 0, before it costs a training run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from nasassist_plugins.optuna import _attrs
from nasassist_plugins.search import SearchError
from nasassist_plugins.search.scoring import score_models

if TYPE_CHECKING:  # the predictor (and torch_geometric) load on first use, not on import
    from nasassist_plugins.predictor import Predictor

_default_predictor: "Predictor | None" = None


def _predictor(predictor: "Predictor | None") -> "Predictor":
    global _default_predictor
    from nasassist_plugins.predictor import Predictor

    if predictor is not None:
        if not isinstance(predictor, Predictor):
            raise SearchError(f"predictor must be a nasassist_plugins.predictor.Predictor, got {type(predictor).__name__}")
        return predictor
    if _default_predictor is None:
        _default_predictor = Predictor.load_default()
    return _default_predictor


def report_model(
    trial: optuna.trial.Trial, model: Any, example_input: Any = None, predictor: "Predictor | None" = None
) -> tuple[float, float]:
    """Score ``model`` zero-shot and store the prediction in the trial.

    Args:
        trial: the running trial.
        model: an ``nn.Module`` (traced with ``example_input``) or a ComputationalGraph.
        example_input: input tensor or shape used to trace the model.
        predictor: predictor to use (default: the shipped weights, loaded once).

    Returns:
        ``(mean, std)``: the zero-shot rank score (0 worst .. 1 best of a training family)
        and its uncertainty. They are stored as the trial's system attrs (for the pruner)
        and user attrs (for optuna-dashboard).
    """
    if not isinstance(trial, optuna.trial.Trial):
        raise SearchError(f"report_model needs the running optuna Trial, got {type(trial).__name__}")
    mean, std = score_models(_predictor(predictor), [model], example_input)
    m, s = float(mean[0]), float(std[0])
    storage, trial_id = trial.storage, trial._trial_id
    storage.set_trial_system_attr(trial_id, _attrs.ZERO_SHOT, m)
    storage.set_trial_system_attr(trial_id, _attrs.PREDICTED_STD, s)
    storage.set_trial_user_attr(trial_id, _attrs.USER_PREDICTED, m)
    storage.set_trial_user_attr(trial_id, _attrs.USER_UNCERTAINTY, s)
    storage.set_trial_user_attr(trial_id, _attrs.USER_SCALE, "zero-shot rank")
    return m, s
