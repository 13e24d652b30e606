"""Zero-shot scores for trials whose architecture was not planned by NASAssistSampler.

With any other sampler (TPE, random, NSGA-II, ...), call :func:`report_model` in the
objective right after building the model; :class:`NASAssistPruner` can then prune the
trial at step 0, before it costs a training run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import optuna

from nasassist_plugins.optuna import _attrs
from nasassist_plugins.search import SearchError

if TYPE_CHECKING:  # the predictor (and torch_geometric) load on first use, not on import
    from nasassist_plugins.predictor import Predictor


def _predictor(predictor: "Predictor | None") -> "Predictor":
    from nasassist_plugins.predictor import Predictor, default_predictor

    if predictor is not None:
        if not isinstance(predictor, Predictor):
            raise SearchError(f"predictor must be a nasassist_plugins.predictor.Predictor, got {type(predictor).__name__}")
        return predictor
    return default_predictor()


def report_model(
    trial: optuna.trial.Trial,
    model: Any,
    example_input: Any = None,
    predictor: Predictor | None = None,
    *,
    batch: Any = None,
) -> tuple[float, float]:
    """Score ``model`` zero-shot (step 0) and store the prediction in the trial.

    An ``nn.Module`` gets the fused zero-shot score: the training-free suite runs on
    ``batch`` (or a random batch of ``example_input``'s shape, at least 16 samples) and the
    model is placed against the predictor's reference, so the score of one trial does not
    depend on the others and compares across the study. A graph gets the learned part only.

    Args:
        trial: the running trial.
        model: an ``nn.Module`` (traced with ``example_input``) or a ComputationalGraph.
        example_input: input tensor or shape used to trace the model (and to shape the
            suite's random batch).
        predictor: predictor to use (default: the shipped weights, loaded once).
        batch: a batch of real inputs for the suite (default: random data).

    Returns:
        ``(score, std)``: the zero-shot rank score in [0, 1] and its calibrated uncertainty.
        They are stored as the trial's system attrs (for the pruner), with the score's kind
        (``fused`` or ``learned-only``), the novelty and the suite signals, and as user attrs
        (for optuna-dashboard).
    """
    if not isinstance(trial, optuna.trial.Trial):
        raise SearchError(f"report_model needs the running optuna Trial, got {type(trial).__name__}")
    result = _predictor(predictor).score([model], example_input, batch=batch, population="reference")
    m, s = float(result.score[0]), float(result.std[0])
    storage, trial_id = trial.storage, trial._trial_id
    storage.set_trial_system_attr(trial_id, _attrs.ZERO_SHOT, m)
    storage.set_trial_system_attr(trial_id, _attrs.PREDICTED_STD, s)
    storage.set_trial_system_attr(trial_id, _attrs.ZERO_SHOT_KIND, result.kind[0])
    storage.set_trial_system_attr(trial_id, _attrs.NOVELTY, float(result.novelty[0]))
    if result.signals and result.signals[0]:
        storage.set_trial_system_attr(trial_id, _attrs.SUITE, {k: (v if math.isfinite(v) else None)
                                                                for k, v in result.signals[0].items()})
    storage.set_trial_user_attr(trial_id, _attrs.USER_PREDICTED, m)
    storage.set_trial_user_attr(trial_id, _attrs.USER_UNCERTAINTY, s)
    storage.set_trial_user_attr(trial_id, _attrs.USER_SCALE, f"zero-shot rank ({result.kind[0]})")
    return m, s
