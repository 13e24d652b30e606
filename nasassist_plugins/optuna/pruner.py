"""NASAssistPruner: zero-shot pruning at step 0 and learning-curve extrapolation.

Two rules, each optional, plus an optional wrapped pruner (prune if any says so):

* **Zero-shot** (``zero_shot_quantile``): a trial whose zero-shot score (written by
  :class:`NASAssistSampler` or :func:`report_model`) is below that quantile of the
  other scored trials is pruned at its first ``should_prune()``, before training.
* **Learning-curve extrapolation** (Domhan et al. 2015): the intermediate values are
  fitted with an ensemble of eleven parametric curve families
  (:mod:`nasassist_plugins.curves`), extrapolated to ``max_resource`` with uncertainty,
  and the trial is pruned when the probability of beating the best finished trial is
  below ``threshold_probability``. Never before ``min_resource`` steps nor before
  ``min_fraction`` of ``max_resource``: forecasts from the first few epochs are biased
  low and overconfident (on the digits curves of ``benchmarks/optuna_pruning.py`` they
  are 17.6 pp too low from 5 of 40 epochs), so deciding that early prunes good trials.

The intermediate values must measure the same thing as the best trial's (e.g. the
validation accuracy per epoch); the comparison uses the best finished trial's last
intermediate value, or its objective value when it reported none.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasassist_plugins.curves import LearningCurveError, should_stop
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.search import SearchError, check_quantile

_logger = logging.getLogger(__name__)

LCE_PROBABILITY = _attrs.PREFIX + "lce_probability"
PRUNED_BY = _attrs.PREFIX + "pruned_by"


class NASAssistPruner(BasePruner):
    """Prune by zero-shot score at step 0 and by learning-curve extrapolation.

    Args:
        max_resource: the last step a full trial reports (e.g. ``epochs - 1`` when steps
            count from 0); ``"auto"`` takes the largest last step of the finished trials;
            ``None`` disables learning-curve extrapolation.
        min_resource: never extrapolate from fewer reported steps than this (≥ 3).
        min_fraction: nor before this fraction of ``max_resource`` has been reported.
        threshold_probability: prune when P(final value beats the best finished) is lower.
        zero_shot_quantile: prune trials whose zero-shot score is below this quantile of
            the other scored trials (``None`` disables zero-shot pruning).
        n_warmup_trials: finished trials (for extrapolation) and scored trials (for
            zero-shot) needed before the rule prunes anything.
        lower_bound, upper_bound: bounds of the metric (e.g. 0 and 1 for accuracy); they
            keep extrapolations physical.
        wrapped_pruner: another pruner (e.g. ``HyperbandPruner``) consulted first.
        interval_steps: extrapolate only every this many steps (each fit takes ~0.2 s).
    """

    def __init__(
        self,
        max_resource: int | Literal["auto"] | None = "auto",
        min_resource: int = 5,
        min_fraction: float = 0.15,
        threshold_probability: float = 0.05,
        zero_shot_quantile: float | None = None,
        n_warmup_trials: int = 5,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        wrapped_pruner: BasePruner | None = None,
        interval_steps: int = 1,
    ) -> None:
        if max_resource is not None and max_resource != "auto":
            if isinstance(max_resource, bool) or not isinstance(max_resource, int) or max_resource < 1:
                raise SearchError(f"max_resource must be a positive integer, 'auto' or None, got {max_resource!r}")
        for name, value, minimum in (("min_resource", min_resource, 3), ("n_warmup_trials", n_warmup_trials, 1),
                                     ("interval_steps", interval_steps, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SearchError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not isinstance(min_fraction, (int, float)) or not 0.0 <= min_fraction < 1.0:
            raise SearchError(f"min_fraction must be in [0, 1), got {min_fraction!r}")
        if not isinstance(threshold_probability, (int, float)) or not 0.0 < threshold_probability < 1.0:
            raise SearchError(f"threshold_probability must be in (0, 1), got {threshold_probability!r}")
        if lower_bound is not None and upper_bound is not None and not lower_bound < upper_bound:
            raise SearchError(f"lower_bound ({lower_bound}) must be below upper_bound ({upper_bound})")
        if wrapped_pruner is not None and not isinstance(wrapped_pruner, BasePruner):
            raise SearchError(f"wrapped_pruner must be an optuna pruner, got {type(wrapped_pruner).__name__}")
        self._max_resource = max_resource
        self._min_resource = min_resource
        self._min_fraction = float(min_fraction)
        self._unknown_streak = 0
        self._warned_inactive = False
        self._threshold = float(threshold_probability)
        self._zero_shot_quantile = check_quantile(zero_shot_quantile, "zero_shot_quantile")
        self._n_warmup_trials = n_warmup_trials
        self._lower_bound = lower_bound
        self._upper_bound = upper_bound
        self._wrapped = wrapped_pruner
        self._interval_steps = interval_steps

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if study._is_multi_objective():
            raise SearchError("NASAssistPruner supports single-objective studies (as Optuna's own pruners do)")
        if self._wrapped is not None and self._wrapped.prune(study, trial):
            self._mark(study, trial, "wrapped")
            return True
        others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        if self._zero_shot_quantile is not None and self._prune_zero_shot(trial, others):
            self._mark(study, trial, "zero-shot")
            return True
        if self._max_resource is not None and self._prune_by_curve(study, trial, others):
            self._mark(study, trial, "learning-curve")
            return True
        return False

    # ------------------------------------------------------------------ zero-shot rule
    def _prune_zero_shot(self, trial: FrozenTrial, others: list[FrozenTrial]) -> bool:
        score = trial.system_attrs.get(_attrs.ZERO_SHOT)
        if score is None or len(trial.intermediate_values) > 1:
            return False  # only before training has really started
        scored = [t.system_attrs[_attrs.ZERO_SHOT] for t in others if _attrs.ZERO_SHOT in t.system_attrs]
        if len(scored) < self._n_warmup_trials:
            return False
        return float(score) < float(np.quantile(scored, self._zero_shot_quantile))

    # ------------------------------------------------------------------ learning-curve rule
    def _prune_by_curve(self, study: Study, trial: FrozenTrial, others: list[FrozenTrial]) -> bool:
        step = trial.last_step
        if step is None or len(trial.intermediate_values) < self._min_resource:
            return False
        if (len(trial.intermediate_values) - self._min_resource) % self._interval_steps:
            return False
        completed = [t for t in others if t.state == TrialState.COMPLETE]
        if len(completed) < self._n_warmup_trials:
            return False
        max_resource = self._resolve_max_resource(completed)
        if max_resource is None or step >= max_resource:
            return False
        if len(trial.intermediate_values) < self._min_fraction * (max_resource + 1):
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        finals = [_final_value(t) for t in completed]
        finals = [v for v in finals if v is not None and math.isfinite(v)]
        if not finals:
            return False
        best = max(finals) if maximize else min(finals)
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        if not all(math.isfinite(v) for v in values):
            return False  # a NaN curve is the objective's business, not a forecast's
        current = max(values) if maximize else min(values)
        if (current >= best) if maximize else (current <= best):
            return False  # already as good as the best finished trial: no forecast needed (each costs ~0.2 s)
        try:
            decision = should_stop(
                np.asarray(steps, dtype=float) + 1.0, values, best, float(max_resource) + 1.0,
                threshold_probability=self._threshold, min_points=self._min_resource,
                direction="maximize" if maximize else "minimize",
                lower_bound=self._lower_bound, upper_bound=self._upper_bound,
            )
        except LearningCurveError as exc:
            _logger.warning("Trial %d: learning-curve extrapolation skipped: %s", trial.number, exc)
            return False
        if math.isfinite(decision.probability):
            self._unknown_streak = 0
            study._storage.set_trial_system_attr(trial._trial_id, LCE_PROBABILITY, float(decision.probability))
        else:
            self._unknown_streak += 1
            if self._unknown_streak >= 20 and not self._warned_inactive:
                self._warned_inactive = True
                _logger.warning(
                    "NASAssistPruner: the last %d learning-curve forecasts gave no usable fit, so the "
                    "extrapolation rule is not pruning (too few or too noisy points?). Consider "
                    "wrapped_pruner=HyperbandPruner(...) for short budgets.", self._unknown_streak,
                )
        return bool(decision.stop)

    def _resolve_max_resource(self, completed: list[FrozenTrial]) -> int | None:
        if self._max_resource != "auto":
            return int(self._max_resource)  # type: ignore[arg-type]
        last_steps = [t.last_step for t in completed if t.last_step is not None]
        return max(last_steps) if last_steps else None

    @staticmethod
    def _mark(study: Study, trial: FrozenTrial, rule: str) -> None:
        study._storage.set_trial_system_attr(trial._trial_id, PRUNED_BY, rule)


def _final_value(trial: FrozenTrial) -> float | None:
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None if trial.value is None else float(trial.value)
