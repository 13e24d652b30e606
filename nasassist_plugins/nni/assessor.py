"""NASAssistAssessor: learning-curve early stopping for NNI (HPO, and NAS through the strategy).

The decision is :meth:`nasassist_plugins.curves.StopRule.assess` — the very code the Optuna
pruner runs: at rungs ``min_resource * reduction_factor**k`` (in reports), the partial curve is
extrapolated to ``max_step`` by the learned curve extrapolator, recalibrated on the finished
trials' curves, and the trial is stopped when the probability that it ends better than the
``top_k``-th best finished trial is below ``threshold_probability``. NNI reports carry no step
numbers, so the ``k``-th report of a trial is step ``k`` (resource ``k``).

HPO (the assessor runs in NNI's dispatcher process; it imports neither PyTorch nor the
predictor, so the dispatcher connects in time)::

    config.assessor = CustomAlgorithmConfig(
        class_name="nasassist_plugins.nni.NASAssistAssessor",
        class_args={"max_step": 20, "optimize_mode": "maximize", "upper_bound": 1.0},
    )

NAS: ``NASAssistStrategy(assessor=NASAssistAssessor(max_step=20))`` and report with
:func:`nasassist_plugins.nni.report_intermediate_result` in the evaluator.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from nni.assessor import AssessResult, Assessor

from nasassist_plugins.curves.decision import ObservedRun, StopRule
from nasassist_plugins.errors import ConfigurationError, NNIConfigError
from nasassist_plugins.nni._util import scalar_metric

_logger = logging.getLogger(__name__)


class NASAssistAssessor(Assessor):
    """Stop trials whose extrapolated learning curve is unlikely to beat the best finished ones.

    Example::

        from nasassist_plugins.nni import NASAssistAssessor

        assessor = NASAssistAssessor(max_step=20, lower_bound=0.0, upper_bound=1.0)
        # HPO: CustomAlgorithmConfig(class_name="nasassist_plugins.nni.NASAssistAssessor",
        #                            class_args={"max_step": 20, "upper_bound": 1.0})

    All arguments are keyword-only (NNI passes ``class_args`` by name).

    Args:
        max_step: Number of intermediate reports of a full trial (e.g. epochs). Default ``None``:
            the longest curve of a finished trial (no decision before one has finished).
        optimize_mode: ``"maximize"`` (default; accuracy) or ``"minimize"`` (loss).
        threshold_probability: Stop when P(final better than the reference) is below this
            (default 0.15), in (0, 1). The probability is recalibrated on the finished trials.
        min_resource: The first rung, in reports (default 1; a forecast needs two reports).
        reduction_factor: Rung spacing (default 2): decisions at ``min_resource * reduction_factor**k`` reports.
        top_k: Compare with the ``top_k``-th best finished trial (default 1: the best).
        min_finished: Finished trials needed before any trial can be stopped (default 1).
        extrapolator: ``"pfn"`` (default; learned) or ``"parametric"`` (ensemble of curve families).
        calibrate: Recalibrate forecasts on the finished trials (default ``None``: on for ``"pfn"``).
        lower_bound: Smallest value of the metric (default ``None``; 0 for accuracies).
        upper_bound: Largest value of the metric (default ``None``; 1 for accuracies). Pass the
            bounds when known: they make forecasts much tighter.
        decision_log: Optional path of a JSON-lines file receiving every decision (default ``None``).

    Raises:
        NNIConfigError: an argument is invalid (a :class:`~nasassist_plugins.errors.ConfigurationError`
            message, raised as NNI's configuration error).
    """

    def __init__(
        self,
        *,
        max_step: int | None = None,
        optimize_mode: str = "maximize",
        threshold_probability: float = 0.15,
        min_resource: int = 1,
        reduction_factor: float = 2.0,
        top_k: int = 1,
        min_finished: int = 1,
        extrapolator: str = "pfn",
        calibrate: bool | None = None,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        decision_log: str | None = None,
    ) -> None:
        super().__init__()
        if max_step is not None and (isinstance(max_step, bool) or not isinstance(max_step, int) or max_step < 2):
            raise NNIConfigError(f"max_step must be an integer >= 2 or None, got {max_step!r}")
        if isinstance(min_resource, bool) or not isinstance(min_resource, int) or min_resource < 1:
            raise NNIConfigError(f"min_resource must be an integer >= 1, got {min_resource!r}")
        try:
            self.rule = StopRule(
                direction=optimize_mode, max_resource=None if max_step is None else float(max_step),
                min_resource=float(min_resource), reduction_factor=reduction_factor,
                threshold_probability=threshold_probability, top_k=top_k, min_finished=min_finished,
                extrapolator=extrapolator, calibrate=calibrate, lower_bound=lower_bound, upper_bound=upper_bound,
            )
        except ConfigurationError as exc:
            raise NNIConfigError(str(exc).replace("direction", "optimize_mode")) from exc
        self.max_step = max_step
        self.optimize_mode = optimize_mode
        self.decision_log = Path(decision_log) if decision_log else None
        self.decisions: list[dict[str, Any]] = []
        self.finished: list[ObservedRun] = []
        self._curves: dict[str, list[float]] = {}
        self._stopped: set[str] = set()
        self._assessed: dict[str, float] = {}
        self._warned_never = False
        if max_step is not None:
            self._warn_if_never_stops(float(max_step))

    @property
    def best_final(self) -> float | None:
        """Best final value of the finished trials (``None`` before one has finished)."""
        finals = [r.final for r in self.finished if r.final is not None]
        if not finals:
            return None
        return max(finals) if self.optimize_mode == "maximize" else min(finals)

    # ------------------------------------------------------------------ NNI contract
    def assess_trial(self, trial_job_id: str, trial_history: Sequence[Any]) -> AssessResult:
        values = [scalar_metric(h) for h in trial_history]
        self._curves[trial_job_id] = [v for v in values if v is not None]
        if trial_job_id in self._stopped:
            return AssessResult.Bad
        # report k (1-based) is step k; unusable reports keep their step but are skipped
        steps = [k + 1 for k, v in enumerate(values) if v is not None]
        run = ObservedRun.from_reports(trial_job_id, steps, [v for v in values if v is not None])
        decision = self.rule.assess(run, self.finished, assessed_up_to=self._assessed.get(trial_job_id, 0.0))
        if decision.reason != "forecast":
            return AssessResult.Good
        self._assessed[trial_job_id] = decision.step
        median, low, high = decision.forecast
        record = {
            "trial": trial_job_id, "step": decision.step, "max_step": self.max_step or self._longest(),
            "reference": decision.reference, "probability": decision.probability,
            "raw_probability": decision.raw_probability, "forecast_median": _finite(median),
            "forecast_low": _finite(low), "forecast_high": _finite(high), "stop": decision.stop,
        }
        self.decisions.append(record)
        self._log(record)
        if decision.stop:
            self._stopped.add(trial_job_id)
            _logger.info("Trial %s stopped at step %g: P(beats %.4f) = %.3f, forecast %.4f [%.4f, %.4f]",
                         trial_job_id, decision.step, decision.reference, decision.probability, median, low, high)
            return AssessResult.Bad
        return AssessResult.Good

    def trial_end(self, trial_job_id: str, success: bool, final_value: float | None = None) -> None:
        """Record a finished trial; its final value (default: its last report) joins the reference set."""
        curve = self._curves.pop(trial_job_id, [])
        self._assessed.pop(trial_job_id, None)
        stopped = trial_job_id in self._stopped
        self._stopped.discard(trial_job_id)
        if not success or stopped:
            return
        final = scalar_metric(final_value) if final_value is not None else (curve[-1] if curve else None)
        if final is None:
            return
        run = ObservedRun.from_reports(trial_job_id, range(1, len(curve) + 1), curve, final)
        self.finished.append(run)
        if self.max_step is None:
            self._warn_if_never_stops(self._longest(), run.steps)

    # ------------------------------------------------------------------ helpers
    def _longest(self) -> int:
        return max((len(r.steps) for r in self.finished), default=0)

    def _warn_if_never_stops(self, max_step: float, steps_seen: Sequence[float] = ()) -> None:
        if self._warned_never:
            return
        reason = self.rule.never_prunes(max_step, steps_seen)
        if reason is not None:
            self._warned_never = True
            _logger.warning("NASAssistAssessor can never stop a trial: %s.", reason)

    def _log(self, record: dict[str, Any]) -> None:
        if self.decision_log is None:
            return
        try:
            with self.decision_log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # logging must not kill the dispatcher
            _logger.warning("could not write the assessor log %s: %s", self.decision_log, exc)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
