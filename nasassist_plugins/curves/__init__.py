"""Learning-curve extrapolation shared by the Optuna pruner and the NNI assessor.

Partial training curves are fitted with the parametric families of Domhan et al.
(2015), combined into a weighted ensemble, and turned into a forecast distribution at
the final step, from which :func:`should_stop` derives an early-stopping decision.

Public API:
    CURVE_MODELS                 the eleven curve families, keyed by name
    CurveModel                   one family (vectorised function, guesses, bounds, constraint)
    ObservedCurve, observe_curve the curve summary that guesses and bounds are derived from
    LearningCurveExtrapolator    fit(steps, values) / predict / probability_above / predict_samples
    should_stop                  the stop-if-unlikely-to-beat-the-best rule
    StopDecision, ModelFit       result records
    LearningCurveError           bad curve data (a ValueError)
    CurveFitError                no usable fit (a RuntimeError)
"""

from nasassist_plugins.curves.extrapolation import (
    CurveFitError,
    LearningCurveError,
    LearningCurveExtrapolator,
    ModelFit,
    StopDecision,
    should_stop,
)
from nasassist_plugins.curves.models import CURVE_MODELS, CurveModel, ObservedCurve, observe_curve

__all__ = [
    "CURVE_MODELS",
    "CurveModel",
    "ObservedCurve",
    "observe_curve",
    "LearningCurveExtrapolator",
    "should_stop",
    "StopDecision",
    "ModelFit",
    "LearningCurveError",
    "CurveFitError",
]
