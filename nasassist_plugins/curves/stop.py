"""The one-shot stop rule on the parametric ensemble: stop when unlikely to beat the best."""

from __future__ import annotations

import math
from typing import NamedTuple

from nasassist_plugins.curves._fitting import ArrayLike, _validate_curve
from nasassist_plugins.curves.extrapolation import Direction, LearningCurveExtrapolator
from nasassist_plugins.errors import CurveFitError
from nasassist_plugins.validation import check_number

__all__ = ["StopDecision", "should_stop"]


class StopDecision(NamedTuple):
    """Outcome of :func:`should_stop`; unpacks as ``stop, probability, (mean, std)``.

    ``probability`` and ``prediction`` are NaN when the decision is "unknown" (too few
    points or no usable fit); ``stop`` is then ``False``.
    """

    stop: bool
    probability: float
    prediction: tuple[float, float]


def should_stop(
    steps: ArrayLike,
    values: ArrayLike,
    best_final_value: float,
    max_step: float,
    *,
    threshold_probability: float = 0.05,
    min_points: int = 5,
    direction: Direction = "maximize",
    lower_bound: float | None = None,
    upper_bound: float | None = None,
    extrapolator: LearningCurveExtrapolator | None = None,
) -> StopDecision:
    """Decide whether a partially trained run is unlikely to beat the best finished one.

    The rule shared by the Optuna pruner and the NNI assessor: extrapolate the curve to
    ``max_step`` and stop when ``P(value at max_step is better than best_final_value)``
    is below ``threshold_probability``.

    Args:
        steps: Steps observed so far (``> 0``; pass ``step + 1`` if counting from 0).
        values: Values observed so far, in the caller's units.
        best_final_value: Final value of the best completed run.
        max_step: Step at which runs finish (e.g. the maximum resource / epochs).
        threshold_probability: Stop when the probability of beating the best is lower.
        min_points: With fewer observations the decision is "unknown" (no stop); at
            least 3.
        direction: ``"maximize"`` or ``"minimize"``.
        lower_bound, upper_bound: Bounds of the metric (e.g. 0 and 1 for accuracy).
        extrapolator: A configured extrapolator to use instead of a default one; its
            own ``direction``/bounds/``min_points`` then apply and the three arguments
            above are ignored.

    Returns:
        ``StopDecision(stop, probability, (mean, std))`` with the forecast at
        ``max_step`` in the caller's units; ``(False, nan, (nan, nan))`` when there are
        too few points or no family gives a plausible forecast. The default
        extrapolator is seeded, so the same curve always gives the same decision.

    Raises:
        LearningCurveError: Invalid data (NaN/inf values, mismatched lengths, ...).
        ValueError: Invalid arguments.
    """
    threshold_probability = check_number("threshold_probability", threshold_probability)
    if not 0.0 <= threshold_probability <= 1.0:
        raise ValueError(f"threshold_probability must be in [0, 1], got {threshold_probability}.")
    best_final_value = check_number("best_final_value", best_final_value)
    max_step = check_number("max_step", max_step, low=0.0, low_open=True)
    if extrapolator is None:
        extrapolator = LearningCurveExtrapolator(
            min_points=min_points,
            random_state=0,
            direction=direction,
            lower_bound=lower_bound,
            upper_bound=upper_bound,
        )
    elif not isinstance(extrapolator, LearningCurveExtrapolator):
        raise TypeError(
            f"extrapolator must be a LearningCurveExtrapolator, got {type(extrapolator).__name__}."
        )
    unknown = StopDecision(False, math.nan, (math.nan, math.nan))
    _, checked = _validate_curve(steps, values)
    if len(checked) < extrapolator.min_points:
        return unknown
    try:
        extrapolator.fit(steps, values)
        probability = extrapolator.probability_better(best_final_value, max_step)
        prediction = extrapolator.predict(max_step)
    except CurveFitError:
        return unknown
    return StopDecision(bool(probability < threshold_probability), probability, prediction)
