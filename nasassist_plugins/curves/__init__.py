"""Learning-curve extrapolation and the early-stopping rule shared by the Optuna pruner and the NNI assessor.

Two extrapolators: a small prior-fitted transformer (:class:`PFNExtrapolator`, after LC-PFN;
trained only on curves from ``nasassist_plugins.curves.prior``, shipped as package weights,
one numpy forward pass per forecast) and the weighted ensemble of the parametric families of
Domhan et al. (2015) (:class:`LearningCurveExtrapolator`). :class:`StopRule` turns either into
the stop-or-continue decision both plugins use.

Public API:
    StopRule, ObservedRun, Decision   the shared decision rule (rungs, study calibration, zero-shot prior)
    PFNExtrapolator              fit(steps, values) / predict / quantiles / probability_better (learned)
    CurvePFN, load_default_pfn   the network itself; CurveForecast, its predictive distribution
    CURVE_MODELS                 the eleven curve families, keyed by name
    CurveModel                   one family (vectorised function, guesses, bounds, constraint)
    ObservedCurve, observe_curve the curve summary that guesses and bounds are derived from
    LearningCurveExtrapolator    fit(steps, values) / predict / probability_above / predict_samples
    should_stop                  the stop-if-unlikely-to-beat-the-best rule
    StopDecision, ModelFit       result records
    LearningCurveError           bad curve data (a ValueError)
    CurveFitError                no usable fit (a RuntimeError)
"""

from nasassist_plugins.curves.decision import Decision, ObservedRun, StopRule
from nasassist_plugins.curves.extrapolation import (
    CurveFitError,
    LearningCurveError,
    LearningCurveExtrapolator,
    ModelFit,
)
from nasassist_plugins.curves.models import (
    CURVE_MODELS,
    CurveModel,
    ObservedCurve,
    observe_curve,
)
from nasassist_plugins.curves.pfn import BarDistribution, CurveForecast, CurvePFN, load_default_pfn
from nasassist_plugins.curves.pfn_extrapolator import PFNExtrapolator
from nasassist_plugins.curves.stop import StopDecision, should_stop

__all__ = [
    "StopRule",
    "ObservedRun",
    "Decision",
    "PFNExtrapolator",
    "CurvePFN",
    "CurveForecast",
    "BarDistribution",
    "load_default_pfn",
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
