"""NASAssistPruner: zero-shot pruning at step 0 and learned learning-curve extrapolation.

Two rules, each optional, plus an optional wrapped pruner (prune if any says so):

* **Zero-shot** (``zero_shot_quantile``): a trial whose zero-shot score (written by
  :class:`NASAssistSampler` or :func:`report_model`) is below that quantile of the other scored
  trials is pruned before training (while it has reported nothing beyond step 0).
* **Learning curve** (``max_resource``): :class:`nasassist_plugins.curves.StopRule`, the same code
  the NNI assessor runs. At rungs ``min_resource * reduction_factor**k`` (in steps, whatever the
  number of reports), the curve so far is extrapolated to ``max_resource`` by a small
  prior-fitted transformer (:mod:`nasassist_plugins.curves.pfn`; the parametric ensemble of
  eleven curve families is the option and the fallback), the forecast is recalibrated on the
  study's finished trials, tilted by the trial's zero-shot rank, and the trial is pruned when
  the probability of beating the ``top_k``-th best finished trial is below
  ``threshold_probability``.

Resource convention: a report at step ``s`` stands for ``s + 1`` units of training (steps count
from 0, as in Optuna's examples), so ``min_resource=5`` means "not before step 4" and
``max_resource`` is the last step a full trial reports (``epochs - 1``).

The intermediate values must measure the same thing as the best trial's (e.g. the validation
accuracy per epoch); the comparison uses the finished trials' last intermediate values (their
objective value when they reported none).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Literal

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasassist_plugins.curves.decision import Decision, ObservedRun, StopRule
from nasassist_plugins.errors import ConfigurationError
from nasassist_plugins.experimental import warn_experimental
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.validation import check_integer, check_number

_logger = logging.getLogger(__name__)

# Kept importable from here for existing callers; the names live in _attrs.
LCE_PROBABILITY = _attrs.LCE_PROBABILITY
PRUNED_BY = _attrs.PRUNED_BY



class NASAssistPruner(BasePruner):
    """Prune by zero-shot score at step 0 and by learned learning-curve extrapolation.

    Example:

        .. code-block:: python

            import optuna
            from nasassist_plugins.optuna import NASAssistPruner

            def objective(trial):
                lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
                for epoch in range(40):
                    accuracy = train_one_epoch(lr)  # your training step
                    trial.report(accuracy, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return accuracy

            study = optuna.create_study(
                direction="maximize",
                pruner=NASAssistPruner(max_resource=39, lower_bound=0.0, upper_bound=1.0),
            )
            study.optimize(objective, n_trials=100)

    All arguments are keyword-only.

    Args:
        max_resource: The last step a full trial reports (e.g. ``epochs - 1`` when steps count from
            0). Default ``"auto"``: the largest last step of the finished trials (nothing is pruned
            by the curve rule before one trial has finished). ``None`` disables the curve rule.
        min_resource: The first rung, in units of training (a report at step ``s`` stands for
            ``s + 1``). Default 1: decisions may start at step 0, and the forecast simply waits for
            the second report.
        reduction_factor: Rung spacing (default 2): decisions are taken when a report reaches or
            passes ``min_resource * reduction_factor**k``; between rungs nothing is computed.
        threshold_probability: Prune when P(final value beats the reference) is below this
            (default 0.15), in (0, 1). The probability is calibrated on the study (see above), so this
            is the chance a pruned trial would still have won.
        top_k: The reference is the ``top_k``-th best final value of the finished trials
            (default 1: the best). Larger values prune less.
        n_warmup_trials: Finished trials (for the curve rule) and scored trials (for the
            zero-shot rule) needed before anything is pruned (default 5).
        extrapolator: ``"pfn"`` (default; the learned extrapolator, ~1 ms per decision) or
            ``"parametric"`` (the ensemble of eleven curve families, ~0.2 s per decision).
            Experimental: the learned extrapolator and its calibration are still settling.
        calibrate: Recalibrate forecasts on the study's finished trials (default ``None``: on for
            ``"pfn"``, off for ``"parametric"``).
        zero_shot_quantile: Prune at step 0 trials whose zero-shot score is below this quantile
            of the other scored trials, in [0, 1) (default ``None``: off).
        zero_shot_weight: How much a trial's zero-shot rank tilts the curve rule (default 1.0:
            the odds of the top-ranked architecture are doubled, those of the bottom one halved;
            0 ignores the score).
        lower_bound: Smallest value the metric can take (default ``None``; 0 for accuracies).
        upper_bound: Largest value the metric can take (default ``None``; 1 for accuracies).
            The bound on the good side is given to the extrapolator and caps its forecasts.
        wrapped_pruner: Another pruner (e.g. ``HyperbandPruner``) consulted first (default ``None``).

    Raises:
        ConfigurationError: an argument has the wrong type, is NaN/inf or is out of range.

    Trial system attributes written (names in :mod:`nasassist_plugins.optuna._attrs`):
    ``nasassist:lce_probability`` (the calibrated probability at the last decision),
    ``nasassist:lce_forecast`` (median and 80 % interval of the final value), ``nasassist:lce_step``
    (the resource of that decision: later rungs are judged even if ``should_prune()`` skipped them) and
    ``nasassist:pruned_by`` (``"wrapped"``, ``"zero-shot"`` or ``"learning-curve"``).
    """

    def __init__(
        self,
        *,
        max_resource: int | Literal["auto"] | None = "auto",
        min_resource: int = 1,
        reduction_factor: float = 2.0,
        threshold_probability: float = 0.15,
        top_k: int = 1,
        n_warmup_trials: int = 5,
        extrapolator: Literal["pfn", "parametric"] = "pfn",
        calibrate: bool | None = None,
        zero_shot_quantile: float | None = None,
        zero_shot_weight: float = 1.0,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        wrapped_pruner: BasePruner | None = None,
    ) -> None:
        if max_resource is not None and max_resource != "auto":
            if isinstance(max_resource, bool) or not isinstance(max_resource, (int, np.integer)) or max_resource < 0:
                raise ConfigurationError(
                    f"max_resource must be an integer >= 0 (the last step of a full trial), 'auto' or None, "
                    f"got {max_resource!r}"
                )
        min_resource = check_integer("min_resource", min_resource, minimum=1)
        n_warmup_trials = check_integer("n_warmup_trials", n_warmup_trials, minimum=1)
        if zero_shot_quantile is not None:
            zero_shot_quantile = check_number("zero_shot_quantile", zero_shot_quantile, low=0.0, high=1.0, high_open=True)
        if wrapped_pruner is not None and not isinstance(wrapped_pruner, BasePruner):
            raise ConfigurationError(f"wrapped_pruner must be an optuna pruner, got {type(wrapped_pruner).__name__}")
        self._rule = StopRule(
            max_resource=None if max_resource in (None, "auto") else float(max_resource) + 1.0,
            min_resource=float(min_resource), reduction_factor=reduction_factor,
            threshold_probability=threshold_probability, top_k=top_k, min_finished=n_warmup_trials,
            extrapolator=extrapolator, calibrate=calibrate, zero_shot_weight=zero_shot_weight,
            lower_bound=lower_bound, upper_bound=upper_bound,
        )
        self._rules = {"maximize": self._rule}
        self._max_resource = max_resource
        self._n_warmup_trials = n_warmup_trials
        self._zero_shot_quantile = zero_shot_quantile
        self._wrapped = wrapped_pruner
        self._finished: dict[int, ObservedRun] = {}
        self._warned_never = False
        self.last_decision: Decision | None = None
        if max_resource is None and zero_shot_quantile is None and wrapped_pruner is None:
            _logger.warning("NASAssistPruner: max_resource=None, zero_shot_quantile=None and no wrapped_pruner: "
                            "this pruner never prunes anything")
        elif max_resource not in (None, "auto"):
            self._warn_if_never_prunes(float(max_resource) + 1.0)
        if max_resource is not None and extrapolator == "pfn":
            warn_experimental("pruner-pfn", "NASAssistPruner's learned curve extrapolator (extrapolator='pfn')")

    @property
    def rule(self) -> StopRule:
        """The :class:`~nasassist_plugins.curves.StopRule` this pruner applies (shared with NNI), for maximisation."""
        return self._rule

    def _rule_for(self, study: Study) -> StopRule:
        direction = "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"
        if direction not in self._rules:
            self._rules[direction] = dataclasses.replace(self._rule, direction=direction)
        return self._rules[direction]

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if len(study.directions) > 1:
            raise ConfigurationError("NASAssistPruner supports single-objective studies (as Optuna's own pruners do)")
        if self._wrapped is not None and self._wrapped.prune(study, trial):
            self._mark(study, trial, "wrapped")
            return True
        if self._zero_shot_quantile is not None and self._prune_zero_shot(study, trial):
            self._mark(study, trial, "zero-shot")
            return True
        if self._max_resource is not None and self._prune_by_curve(study, trial):
            self._mark(study, trial, "learning-curve")
            return True
        return False

    # ------------------------------------------------------------------ zero-shot rule
    def _scores(self, study: Study, trial: FrozenTrial) -> tuple[float | None, list[float]]:
        score = trial.system_attrs.get(_attrs.ZERO_SHOT)
        others = [float(t.system_attrs[_attrs.ZERO_SHOT]) for t in study.get_trials(deepcopy=False)
                  if t.number != trial.number and _attrs.ZERO_SHOT in t.system_attrs]
        return (None if score is None else float(score)), others

    def _prune_zero_shot(self, study: Study, trial: FrozenTrial) -> bool:
        if trial.last_step is not None and trial.last_step > 0:
            return False  # only before training has really started
        score, others = self._scores(study, trial)
        if score is None or len(others) < self._n_warmup_trials:
            return False
        return score < float(np.quantile(others, self._zero_shot_quantile))

    # ------------------------------------------------------------------ learning-curve rule
    def _prune_by_curve(self, study: Study, trial: FrozenTrial) -> bool:
        if not trial.intermediate_values:
            return False
        steps = np.fromiter(trial.intermediate_values.keys(), dtype=float) + 1.0
        last = float(steps.max())
        prev = float(trial.system_attrs.get(_attrs.LCE_STEP, 0.0))  # rungs passed between calls still count
        rule = self._rule_for(study)
        max_res = rule.max_resource
        finished = None
        if max_res is None:
            finished = self._finished_runs(study)
            lasts = [float(r.steps[-1]) for r in finished if len(r.steps)]
            if not lasts:
                return False
            max_res = max(lasts)
            self._warn_if_never_prunes(max_res, finished)
        if last >= max_res or not rule.crosses_rung(prev, last, max_res):
            return False
        run = ObservedRun.from_reports(trial.number, steps, list(trial.intermediate_values.values()))
        finished = self._finished_runs(study) if finished is None else finished
        rank = None
        if trial.system_attrs.get(_attrs.ZERO_SHOT) is not None:
            score, others = self._scores(study, trial)
            if len(others) >= self._n_warmup_trials:
                rank = (sum(o < score for o in others) + 0.5 * sum(o == score for o in others)) / len(others)
        decision = rule.assess(run, finished, zero_shot_rank=rank, assessed_up_to=prev)
        self.last_decision = decision
        if decision.reason == "forecast":
            storage = study._storage
            storage.set_trial_system_attr(trial._trial_id, _attrs.LCE_PROBABILITY, float(decision.probability))
            storage.set_trial_system_attr(trial._trial_id, _attrs.LCE_FORECAST, [float(x) for x in decision.forecast])
            storage.set_trial_system_attr(trial._trial_id, _attrs.LCE_STEP, float(decision.step))
        return decision.stop

    def _finished_runs(self, study: Study) -> list[ObservedRun]:
        """The study's completed trials as runs (cached: a finished trial never changes)."""
        runs = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            run = self._finished.get(t.number)
            if run is None:
                final = _final_value(t)
                steps = np.fromiter(t.intermediate_values.keys(), dtype=float) + 1.0
                run = ObservedRun.from_reports(t.number, steps, list(t.intermediate_values.values()),
                                               None if final is None or not math.isfinite(final) else final)
                self._finished[t.number] = run
            runs.append(run)
        return runs

    def _warn_if_never_prunes(self, max_res: float, finished: list[ObservedRun] | None = None) -> None:
        if self._warned_never:
            return
        seen = finished[0].steps if finished else ()
        reason = self._rule.never_prunes(max_res, seen)
        if reason is not None:
            self._warned_never = True
            _logger.warning("NASAssistPruner can never prune by learning curve: %s. Lower min_resource, report "
                            "more steps, or wrap HyperbandPruner for such short budgets.", reason)

    @staticmethod
    def _mark(study: Study, trial: FrozenTrial, rule: str) -> None:
        study._storage.set_trial_system_attr(trial._trial_id, _attrs.PRUNED_BY, rule)


def _final_value(trial: FrozenTrial) -> float | None:
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None if trial.value is None else float(trial.value)
