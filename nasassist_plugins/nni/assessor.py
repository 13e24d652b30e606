"""NASAssistAssessor: learning-curve early stopping for NNI (HPO, and NAS through the strategy).

The decision is :func:`nasassist_plugins.curves.should_stop` — the one implementation the
Optuna pruner uses too: the partial curve is extrapolated to ``max_step`` with the
weighted ensemble of parametric curve families, and the trial is stopped when the
probability that it ends better than the best finished trial is below
``threshold_probability``.

HPO (the assessor runs in NNI's dispatcher process)::

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

from nasassist_plugins.curves import should_stop
from nasassist_plugins.errors import NNIConfigError
from nasassist_plugins.nni._util import scalar_metric

_logger = logging.getLogger(__name__)


class NASAssistAssessor(Assessor):
    """Stop trials whose extrapolated learning curve is unlikely to beat the best finished one.

    Args:
        max_step: number of intermediate reports of a full trial (e.g. epochs). ``None``:
            the longest curve of a finished trial (no decision before one has finished).
        optimize_mode: ``"maximize"`` (accuracy) or ``"minimize"`` (loss).
        threshold_probability: stop when P(final better than the best) is below this.
        min_points: reports needed before the first decision (at least 3).
        gap: decide every ``gap`` new reports of a trial.
        lower_bound, upper_bound: bounds of the metric (e.g. 0 and 1 for accuracy); pass
            them when known, they make forecasts much tighter.
        min_finished: finished trials needed before any trial can be stopped.
        decision_log: optional path of a JSON-lines file receiving every decision.
    """

    def __init__(
        self,
        max_step: int | None = None,
        optimize_mode: str = "maximize",
        threshold_probability: float = 0.05,
        min_points: int = 5,
        gap: int = 1,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        min_finished: int = 1,
        decision_log: str | None = None,
    ) -> None:
        super().__init__()
        if max_step is not None and (isinstance(max_step, bool) or not isinstance(max_step, int) or max_step < 2):
            raise NNIConfigError(f"max_step must be an integer >= 2 or None, got {max_step!r}")
        if optimize_mode not in ("maximize", "minimize"):
            raise NNIConfigError(f"optimize_mode must be 'maximize' or 'minimize', got {optimize_mode!r}")
        if not isinstance(threshold_probability, (int, float)) or not 0.0 <= threshold_probability <= 1.0:
            raise NNIConfigError(f"threshold_probability must be in [0, 1], got {threshold_probability!r}")
        for name, value, minimum in (("min_points", min_points, 3), ("gap", gap, 1), ("min_finished", min_finished, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise NNIConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
        self.max_step = max_step
        self.optimize_mode = optimize_mode
        self.threshold_probability = float(threshold_probability)
        self.min_points = min_points
        self.gap = gap
        self.lower_bound = None if lower_bound is None else float(lower_bound)
        self.upper_bound = None if upper_bound is None else float(upper_bound)
        self.min_finished = min_finished
        self.decision_log = Path(decision_log) if decision_log else None
        self.best_final: float | None = None
        self.n_finished = 0
        self.longest_finished = 0
        self.decisions: list[dict[str, Any]] = []
        self._curves: dict[str, list[float]] = {}
        self._last_assessed: dict[str, int] = {}
        self._stopped: set[str] = set()

    # ------------------------------------------------------------------ NNI contract
    def assess_trial(self, trial_job_id: str, trial_history: Sequence[Any]) -> AssessResult:
        values = [v for v in (scalar_metric(h) for h in trial_history) if v is not None]
        self._curves[trial_job_id] = values
        n = len(values)
        if trial_job_id in self._stopped:
            return AssessResult.Bad
        if self.best_final is None or self.n_finished < self.min_finished or n < self.min_points:
            return AssessResult.Good
        last = self._last_assessed.get(trial_job_id)
        if last is not None and n - last < self.gap:
            return AssessResult.Good
        max_step = self.max_step or self.longest_finished
        if max_step <= n:
            return AssessResult.Good
        self._last_assessed[trial_job_id] = n
        decision = should_stop(
            list(range(1, n + 1)), values, self.best_final, max_step,
            threshold_probability=self.threshold_probability, min_points=self.min_points,
            direction=self.optimize_mode, lower_bound=self.lower_bound, upper_bound=self.upper_bound,
        )
        record = {
            "trial": trial_job_id, "step": n, "max_step": max_step, "best_final": self.best_final,
            "probability": None if math.isnan(decision.probability) else decision.probability,
            "forecast_mean": None if math.isnan(decision.prediction[0]) else decision.prediction[0],
            "forecast_std": None if math.isnan(decision.prediction[1]) else decision.prediction[1],
            "stop": decision.stop,
        }
        self.decisions.append(record)
        self._log(record)
        if decision.stop:
            self._stopped.add(trial_job_id)
            _logger.info(
                "Trial %s stopped at step %d/%d: P(beats %.4f) = %.3f, forecast %.4f ± %.4f",
                trial_job_id, n, max_step, self.best_final, decision.probability, *decision.prediction,
            )
            return AssessResult.Bad
        return AssessResult.Good

    def trial_end(self, trial_job_id: str, success: bool, final_value: float | None = None) -> None:
        """Record a finished trial; its final value (default: its last report) can become the best."""
        curve = self._curves.pop(trial_job_id, [])
        self._last_assessed.pop(trial_job_id, None)
        stopped = trial_job_id in self._stopped
        self._stopped.discard(trial_job_id)
        if not success or stopped:
            return
        final = scalar_metric(final_value) if final_value is not None else (curve[-1] if curve else None)
        if final is None:
            return
        self.n_finished += 1
        self.longest_finished = max(self.longest_finished, len(curve))
        if self.best_final is None:
            self.best_final = final
        elif self.optimize_mode == "maximize":
            self.best_final = max(self.best_final, final)
        else:
            self.best_final = min(self.best_final, final)

    # ------------------------------------------------------------------ helpers
    def _log(self, record: dict[str, Any]) -> None:
        if self.decision_log is None:
            return
        try:
            with self.decision_log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # logging must not kill the dispatcher
            _logger.warning("could not write the assessor log %s: %s", self.decision_log, exc)
