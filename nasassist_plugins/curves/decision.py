"""The early-stopping decision shared by the Optuna pruner and the NNI assessor.

:class:`StopRule` holds the configuration (validated once) and answers one question for a
running trial: stop it now? Both plugins only translate their framework's data into
:class:`ObservedRun` records and call :meth:`StopRule.assess`; the rule itself knows nothing of
Optuna or NNI, so the two can never drift apart.

The rule, in order:

1. **Steps, not report counts.** Steps are *resource* units (epochs done, > 0). A decision is
   taken only when a report crosses a **rung** ``min_resource * reduction_factor**k`` below the
   full budget (``max_resource``), as in successive halving: sparse reports (steps 1, 4, 8, 16,
   32) are judged at every rung they cross, dense ones at the rungs only, which keeps the number
   of tests (and so the chance of a wrong stop) low. At least two reports are needed for a
   forecast; with ``min_resource=1`` the rule simply waits for the second.
2. **Study-aware reference.** The trial is compared with the ``top_k``-th best final value of the
   finished trials (``top_k=1``: the best), once ``min_finished`` trials have finished. A trial
   whose best report already beats the reference is never stopped.
3. **Forecast.** The learned curve extrapolator (:class:`~nasassist_plugins.curves.pfn.PFNExtrapolator`,
   default) or the parametric ensemble (:class:`~nasassist_plugins.curves.LearningCurveExtrapolator`,
   the fallback) gives the predictive distribution ``F`` of the final value, and
   ``p = P(final better than reference)``.
4. **Calibration on the study itself.** A forecaster trained on a prior can be biased on a given
   study (a cosine schedule's late jump is invisible in the first epochs). For every finished
   trial the rule forecasts its final value from its own reports up to the same step and takes
   the probability integral transform ``u_j = F_j(final_j)``; if forecasts were calibrated these
   would be uniform. Their empirical distribution ``G`` (with ``prior_strength`` pseudo-trials of
   a uniform) recalibrates every probability and interval: ``P(final > b) = 1 - G(F(b))``
   (Kuleshov et al., 2018, "Accurate uncertainties for deep learning using calibrated
   regression"). The coverage this gives on held-out real curves is measured in
   ``benchmarks/pruning_curve_sets.py`` and tested in ``tests/test_curves.py``.
5. **Zero-shot prior.** With the trial's zero-shot rank ``r`` in [0, 1] among scored trials
   (from the predictor at step 0), the odds of beating the reference are multiplied by
   ``2 ** (zero_shot_weight * (2 r - 1))``: a top-ranked architecture needs stronger evidence
   to be stopped, a bottom-ranked one less.
6. **Stop** when the resulting probability is below ``threshold_probability``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Hashable, Literal, Sequence

import numpy as np

from nasassist_plugins.errors import (
    ConfigurationError,
    CurveFitError,
    LearningCurveError,
)
from nasassist_plugins.validation import check_integer, check_number

__all__ = ["Decision", "ObservedRun", "StopRule"]

_logger = logging.getLogger(__name__)

Extrapolator = Literal["pfn", "parametric"]
_EPS = 1e-9


@dataclass(frozen=True)
class ObservedRun:
    """One trial's reports in resource units (``steps`` > 0, increasing) and, when finished, its final value.

    Attributes:
        key: Identifier used to cache per-trial forecasts (a trial number or job id).
        steps: Resource consumed at each report (e.g. epochs done).
        values: Reported values, in the caller's units.
        final: Final value of a finished trial (``None`` while running).
    """

    key: Hashable
    steps: np.ndarray
    values: np.ndarray
    final: float | None = None

    @classmethod
    def from_reports(cls, key: Hashable, steps: Sequence[float], values: Sequence[float],
                     final: float | None = None) -> ObservedRun:
        """Sorted, finite reports only (NaN/inf reports are dropped: they are the objective's business)."""
        s = np.asarray(steps, dtype=float)
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(s) & np.isfinite(v) & (s > 0)
        order = np.argsort(s[ok], kind="stable")
        return cls(key, s[ok][order], v[ok][order], final)


@dataclass(frozen=True)
class Decision:
    """What :meth:`StopRule.assess` decided, and why.

    Attributes:
        stop: Whether to stop the trial now.
        reason: Short machine-readable reason (``"forecast"``, ``"between-rungs"``, ``"too-few-points"``,
            ``"warm-up"``, ``"beats-reference"``, ``"finished"``, ``"no-budget"``, ``"no-forecast"``).
        probability: Calibrated probability that the final value beats ``reference`` (NaN without a forecast).
        raw_probability: The extrapolator's own probability, before calibration and zero-shot prior.
        reference: The final value the trial is compared with.
        forecast: ``(median, low, high)`` of the calibrated predictive distribution of the final
            value (80 % interval), in the caller's units; NaNs without a forecast.
        step: The resource at which the decision was taken.
    """

    stop: bool
    reason: str
    probability: float = math.nan
    raw_probability: float = math.nan
    reference: float = math.nan
    forecast: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    step: float = math.nan


class _Calibration:
    """Recalibration map ``G``: the empirical CDF of PIT values mixed with ``strength`` pseudo-observations
    of a uniform, ``G(p) = (strength * p + #{u_j <= p}) / (strength + n)``, tabulated on a fine grid
    (linear in between, which also smooths its jumps) so that ``G`` and its inverse are one interpolation each.
    """

    _GRID = np.linspace(0.0, 1.0, 4097)

    def __init__(self, pits: np.ndarray, strength: float) -> None:
        self.pits = np.sort(np.asarray(pits, dtype=float))
        counts = np.searchsorted(self.pits, self._GRID, side="right")
        self._g = (strength * self._GRID + counts) / (strength + len(self.pits))

    def cdf(self, p: float) -> float:
        return float(np.interp(p, self._GRID, self._g))

    def inverse(self, q: float) -> float:
        return float(np.interp(q, self._g, self._GRID))


@dataclass
class StopRule:
    """Stop a trial whose forecast final value is unlikely to beat the ``top_k``-th best finished one.

    Example::

        rule = StopRule(max_resource=40, upper_bound=1.0)
        finished = [ObservedRun.from_reports(k, range(1, 41), curve, final=curve[-1])
                    for k, curve in enumerate(finished_curves)]
        run = ObservedRun.from_reports("t7", range(1, 9), partial_curve)
        decision = rule.assess(run, finished)
        decision.stop, decision.probability, decision.forecast

    Args:
        direction: ``"maximize"`` (default) or ``"minimize"``.
        max_resource: Resource of a full run (e.g. 40 epochs); default ``None`` = the largest last
            step of the finished runs (no decision before one has finished).
        min_resource: First rung (default 1): no decision before this much resource.
        reduction_factor: Rung spacing (default 2): decisions at ``min_resource * reduction_factor**k``.
        threshold_probability: Stop when the calibrated P(final beats the reference) is below this (default
            0.15; chosen on the digits NB201, digits MLP and NB101 sets, see benchmarks/README.md).
        top_k: Compare with the ``top_k``-th best finished trial (default 1, the best).
        min_finished: Finished trials needed before anything is stopped (default 5).
        extrapolator: ``"pfn"`` (default, the learned extrapolator) or ``"parametric"`` (the
            ensemble of eleven curve families; about 0.2 s per forecast). If the PFN weights
            cannot be loaded the rule falls back to ``"parametric"`` with one warning.
        calibrate: Recalibrate forecasts on the finished trials (default ``None`` = on for the PFN,
            off for the parametric ensemble, whose forecasts cost too much to repeat per trial).
        prior_strength: Pseudo-trials of a calibrated (uniform) forecaster in that recalibration
            (default 4).
        zero_shot_weight: Strength of the zero-shot prior (default 1: odds x2 for the top-ranked
            architecture, /2 for the bottom one; 0 disables it).
        lower_bound: Smallest value the metric can take (default ``None``).
        upper_bound: Largest value the metric can take (default ``None``; pass 1.0 for accuracies).

    Raises:
        ConfigurationError: an argument has the wrong type, is NaN/inf, or is out of range.
    """

    direction: str = "maximize"
    max_resource: float | None = None
    min_resource: float = 1.0
    reduction_factor: float = 2.0
    threshold_probability: float = 0.15
    top_k: int = 1
    min_finished: int = 5
    extrapolator: Extrapolator = "pfn"
    calibrate: bool | None = None
    prior_strength: float = 4.0
    zero_shot_weight: float = 1.0
    lower_bound: float | None = None
    upper_bound: float | None = None
    _pit_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _pfn_unavailable: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ConfigurationError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        if self.max_resource is not None:
            self.max_resource = check_number("max_resource", self.max_resource, low=0.0, low_open=True)
        self.min_resource = check_number("min_resource", self.min_resource, low=0.0, low_open=True)
        self.reduction_factor = check_number("reduction_factor", self.reduction_factor, low=1.0, low_open=True)
        self.threshold_probability = check_number("threshold_probability", self.threshold_probability, low=0.0,
                                             high=1.0, low_open=True, high_open=True)
        self.top_k = check_integer("top_k", self.top_k, minimum=1)
        self.min_finished = check_integer("min_finished", self.min_finished, minimum=1)
        if self.extrapolator not in ("pfn", "parametric"):
            raise ConfigurationError(f"extrapolator must be 'pfn' or 'parametric', got {self.extrapolator!r}")
        if self.calibrate is not None and not isinstance(self.calibrate, bool):
            raise ConfigurationError(f"calibrate must be True, False or None, got {self.calibrate!r}")
        self.prior_strength = check_number("prior_strength", self.prior_strength, low=0.0, low_open=True)
        self.zero_shot_weight = check_number("zero_shot_weight", self.zero_shot_weight, low=0.0)
        for name in ("lower_bound", "upper_bound"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, check_number(name, value))
        if self.lower_bound is not None and self.upper_bound is not None and not self.lower_bound < self.upper_bound:
            raise ConfigurationError(f"lower_bound ({self.lower_bound}) must be below upper_bound ({self.upper_bound})")

    # ------------------------------------------------------------------ public
    @property
    def calibrating(self) -> bool:
        return self.calibrate if self.calibrate is not None else self.extrapolator == "pfn"

    def rungs(self, max_resource: float) -> np.ndarray:
        """Resources at which decisions are taken (all below ``max_resource``)."""
        out, r = [], self.min_resource
        while r < max_resource - _EPS and len(out) < 10_000:
            out.append(r)
            r *= self.reduction_factor
        return np.asarray(out)

    def crosses_rung(self, prev: float, last: float, max_resource: float) -> bool:
        """Whether a report moving from resource ``prev`` to ``last`` reaches or passes a rung."""
        if last < self.min_resource - _EPS or last >= max_resource - _EPS:
            return False
        k = math.floor(math.log(last / self.min_resource) / math.log(self.reduction_factor) + 1e-9)
        rung = self.min_resource * self.reduction_factor ** max(k, 0)
        return prev < rung - _EPS <= last

    def never_prunes(self, max_resource: float | None, steps_seen: Sequence[float] = ()) -> str | None:
        """Why this configuration can never stop a trial, or ``None`` when it can.

        ``steps_seen``: steps (resource units) of one finished trial, when known: a trial that
        reports fewer than two steps before the last one can never get a forecast.
        """
        if max_resource is None:
            return None
        if self.min_resource >= max_resource - _EPS:
            return (f"min_resource ({self.min_resource:g}) is not below the full budget ({max_resource:g}), so no "
                    "rung is ever reached before a trial ends")
        steps = np.asarray(sorted(steps_seen), dtype=float)
        if len(steps):
            before = steps[steps < max_resource - _EPS]
            if len(before) < 2 or not np.any(before >= self.min_resource - _EPS):
                return (f"finished trials report {len(before)} step(s) before the last one "
                        f"({', '.join(f'{s:g}' for s in before[:6])}), and a forecast needs two of them at or after "
                        f"min_resource ({self.min_resource:g})")
        return None

    def assess(
        self,
        run: ObservedRun,
        finished: Sequence[ObservedRun],
        *,
        zero_shot_rank: float | None = None,
        assessed_up_to: float | None = None,
    ) -> Decision:
        """Decide whether to stop ``run`` now, given the ``finished`` runs of the same study.

        ``assessed_up_to``: the resource at which this run last got a forecast decision (0 or ``None``
        if never; callers keep it, e.g. in the trial's storage). A decision is due when a rung lies
        above it and at or below the latest report, so a rung passed between two calls is judged at
        the next one. Without it the previous report stands in (right when every report is assessed).
        """
        if len(run.steps) == 0:
            return Decision(False, "too-few-points")
        last = float(run.steps[-1])
        done = [f for f in finished if f.final is not None and math.isfinite(f.final)]
        max_res = self.max_resource
        if max_res is None:
            lasts = [float(f.steps[-1]) for f in done if len(f.steps)]
            if not lasts:
                return Decision(False, "no-budget", step=last)
            max_res = max(lasts)
        if last >= max_res - _EPS:
            return Decision(False, "finished", step=last)
        if assessed_up_to is not None:
            prev = float(assessed_up_to)
        else:
            prev = float(run.steps[-2]) if len(run.steps) > 1 else 0.0
        if not self.crosses_rung(prev, last, max_res):
            return Decision(False, "between-rungs", step=last)
        if len(run.steps) < self._min_points:
            return Decision(False, "too-few-points", step=last)
        if len(done) < self.min_finished:
            return Decision(False, "warm-up", step=last)
        sign = 1.0 if self.direction == "maximize" else -1.0
        finals = np.sort(sign * np.array([f.final for f in done], dtype=float))[::-1]
        reference = sign * float(finals[min(self.top_k, len(finals)) - 1])
        if float(np.max(sign * run.values)) >= sign * reference:
            return Decision(False, "beats-reference", reference=reference, step=last)
        try:
            forecast = self._forecast(run.steps, run.values, max_res)
        except (CurveFitError, LearningCurveError) as exc:
            _logger.debug("no forecast for %s: %s", run.key, exc)
            return Decision(False, "no-forecast", reference=reference, step=last)
        p_raw = forecast.probability_above(sign * reference)
        calibration = self._calibration(done, last, max_res) if self.calibrating else None
        p = p_raw if calibration is None else 1.0 - calibration.cdf(1.0 - p_raw)
        if zero_shot_rank is not None and self.zero_shot_weight > 0 and 0.0 < p < 1.0:
            r = min(max(float(zero_shot_rank), 0.0), 1.0)
            odds = p / (1.0 - p) * 2.0 ** (self.zero_shot_weight * (2.0 * r - 1.0))
            p = odds / (1.0 + odds)
        levels = (0.5, 0.1, 0.9)
        qs = [forecast.quantile(q if calibration is None else calibration.inverse(q)) for q in levels]
        if sign < 0:
            qs = [-qs[0], -qs[2], -qs[1]]
        return Decision(bool(p < self.threshold_probability), "forecast", float(p), float(p_raw), reference,
                        (float(qs[0]), float(qs[1]), float(qs[2])), last)

    def predictive(self, run: ObservedRun, max_resource: float, finished: Sequence[ObservedRun] = ()):
        """The (calibrated, when finished runs are given) predictive distribution of ``run``'s final value.

        Returns an object with ``cdf(y)`` and ``quantile(q)`` in the caller's units.
        """
        forecast = self._forecast(run.steps, run.values, max_resource)
        done = [f for f in finished if f.final is not None]
        calibration = self._calibration(done, float(run.steps[-1]), max_resource) if done and self.calibrating else None
        return _CallerPredictive(forecast, calibration, 1.0 if self.direction == "maximize" else -1.0)

    # ------------------------------------------------------------------ internals
    @property
    def _min_points(self) -> int:
        return 2 if self._kind == "pfn" else 3

    @property
    def _kind(self) -> str:
        """The extrapolator in use: ``"pfn"`` unless its weights cannot be loaded (tried once per rule)."""
        if self.extrapolator == "pfn" and not self._pfn_unavailable:
            try:
                from nasassist_plugins.curves.pfn import load_default_pfn

                load_default_pfn()
            except (ConfigurationError, OSError, ImportError) as exc:
                self._pfn_unavailable = True
                _logger.warning("curve PFN unavailable (%s); using the parametric ensemble instead", exc)
        return "parametric" if self._pfn_unavailable else self.extrapolator

    def _forecast(self, steps: np.ndarray, values: np.ndarray, max_resource: float):
        """Forecast in maximisation units: an object with ``probability_above``, ``cdf``, ``quantile``."""
        if self._kind == "pfn":
            from nasassist_plugins.curves.pfn_extrapolator import PFNExtrapolator

            lce = PFNExtrapolator(max_step=max_resource, direction=self.direction,
                                  lower_bound=self.lower_bound, upper_bound=self.upper_bound)
            return lce.fit(steps, values).forecast(max_resource)
        return _ParametricForecast(steps, values, max_resource, self)

    def _forecast_many(self, prefixes: list[tuple[np.ndarray, np.ndarray]], max_resource: float) -> list:
        """Forecasts of several prefixes (one batched pass for the PFN); ``None`` where none is possible."""
        if self._kind == "pfn":
            from nasassist_plugins.curves.pfn_extrapolator import PFNExtrapolator

            lce = PFNExtrapolator(max_step=max_resource, direction=self.direction,
                                  lower_bound=self.lower_bound, upper_bound=self.upper_bound)
            return lce.forecast_many(prefixes, max_resource)
        out = []
        for steps, values in prefixes:
            try:
                out.append(self._forecast(steps, values, max_resource))
            except (CurveFitError, LearningCurveError):
                out.append(None)
        return out

    def _calibration(self, done: Sequence[ObservedRun], horizon: float, max_res: float) -> _Calibration:
        """PIT values of the finished runs forecast from their reports up to ``horizon`` (cached per run)."""
        sign = 1.0 if self.direction == "maximize" else -1.0
        keys = [(f.key, round(horizon, 9), round(max_res, 9), len(f.steps)) for f in done]
        todo = []
        for key, f in zip(keys, done):
            if key in self._pit_cache:
                continue
            keep = f.steps <= horizon + _EPS
            if keep.sum() >= self._min_points and f.steps[keep][-1] < max_res - _EPS:
                todo.append((key, f, keep))
            else:
                self._pit_cache[key] = math.nan
        if todo:
            forecasts = self._forecast_many([(f.steps[keep], f.values[keep]) for _, f, keep in todo], max_res)
            for (key, f, _), forecast in zip(todo, forecasts):
                self._pit_cache[key] = math.nan if forecast is None else forecast.cdf(sign * float(f.final))
        pits = [self._pit_cache[key] for key in keys if math.isfinite(self._pit_cache[key])]
        return _Calibration(np.asarray(pits, dtype=float), self.prior_strength)


class _CallerPredictive:
    """A forecast (maximisation units) with optional recalibration, seen in the caller's units."""

    def __init__(self, forecast, calibration: _Calibration | None, sign: float) -> None:
        self._f, self._c, self._sign = forecast, calibration, sign

    def _cal_cdf(self, y_max: float) -> float:
        p = self._f.cdf(y_max)
        return p if self._c is None else self._c.cdf(p)

    def cdf(self, y: float) -> float:
        """P(final <= y) in the caller's units."""
        if self._sign > 0:
            return self._cal_cdf(y)
        return 1.0 - self._cal_cdf(-y)

    def quantile(self, q: float) -> float:
        level = q if self._sign > 0 else 1.0 - q
        if self._c is not None:
            level = self._c.inverse(level)
        return self._sign * self._f.quantile(level)


class _ParametricForecast:
    """The parametric ensemble behind the same small interface as the PFN's forecasts."""

    def __init__(self, steps: np.ndarray, values: np.ndarray, max_resource: float, rule: StopRule) -> None:
        from nasassist_plugins.curves.extrapolation import LearningCurveExtrapolator

        self._sign = 1.0 if rule.direction == "maximize" else -1.0
        self._target = float(max_resource)
        self._lce = LearningCurveExtrapolator(min_points=3, random_state=0, direction=rule.direction,
                                              lower_bound=rule.lower_bound, upper_bound=rule.upper_bound)
        self._lce.fit(steps, values)
        self._samples: np.ndarray | None = None

    def probability_above(self, y: float) -> float:
        """P(final > y), ``y`` in maximisation units."""
        return float(self._lce.probability_better(self._sign * y, self._target))

    def cdf(self, y: float) -> float:
        return 1.0 - self.probability_above(y)

    def quantile(self, q: float) -> float:
        if self._samples is None:
            self._samples = np.sort(self._sign * self._lce.predict_samples(self._target, 2000))
        return float(np.quantile(self._samples, min(max(q, 0.0), 1.0)))
