"""Parametric learning-curve families (Domhan et al., 2015) used for extrapolation.

Each family describes a curve that rises towards a plateau (or keeps growing slowly)
as training goes on. The ensemble in :mod:`nasassist_plugins.curves.extrapolation`
fits every family to a partial curve and mixes their forecasts.

Conventions shared by all families:

* **Values are maximised.** A loss must be negated first (the extrapolator does this
  for you with ``direction="minimize"``).
* **The x axis is normalised** by the first observed step: ``x = step / first_step``,
  so the first observation sits at ``x = 1``. With epochs counted from 1 this is the
  paper's own axis; with other units (iterations, seconds) it is the number of "first
  intervals" elapsed, so initial guesses and bounds can be written once. All families
  except ``ilog2`` are closed under this rescaling (it changes their parameters, not
  their shape).
* **Functions are vectorised**: ``model(x, *theta)`` broadcasts, so ``x`` of shape
  ``(G,)`` with each parameter of shape ``(S, 1)`` yields an ``(S, G)`` array. This is
  how the extrapolator evaluates thousands of parameter samples at once.
* **Sanity constraint**: :meth:`CurveModel.is_valid` tells which parameter vectors
  describe a non-decreasing curve whose asymptote (for families that have one) lies
  inside the fitting bounds; the bounds cap the asymptote at the caller's
  ``upper_bound`` (e.g. 1.0 for accuracies). This plays the role of the prior of
  Domhan et al. that rejects decreasing or out-of-range curves.

Deviations from the paper:

* ``ilog2`` uses ``log(x + 1)`` instead of ``log(x)``, which is singular at the first
  observation ``x = 1``.
* ``pow4`` is written ``c - g * (s * x + 1 - s)^(-alpha)``: the same curves as the
  paper's ``c - (a * x + b)^(-alpha)`` with ``a, b >= 0`` (``g = (a + b)^(-alpha)`` is
  the gap to the plateau at ``x = 1`` and ``s = a / (a + b)``), with bounded and far
  better conditioned parameters: the paper's form made the optimiser crawl along a
  flat valley for tens of times longer than any other family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["CURVE_MODELS", "CurveModel", "ObservedCurve", "observe_curve"]

ArrayFunction = Callable[..., np.ndarray]

# Largest decay rate allowed per first-step interval: beyond this the curve is already
# flat at the first observation, which no family needs. _MAX_SCALE bounds the kappa of
# the sigmoidal families likewise.
_MAX_RATE = 50.0
_MAX_SCALE = 1e3
# exp() overflows beyond ~709: families that exponentiate values stop before that.
_MAX_LOG_VALUE = 700.0
_MAX_EXPONENT = 10.0
_MIN_EXPONENT = 1e-3


@dataclass(frozen=True)
class ObservedCurve:
    """Summary of an observed (normalised, maximised) curve used for guesses and bounds.

    Attributes:
        x: Normalised steps, sorted (the extrapolator divides by the first step, so
            they start at 1).
        y: Observed values (to be maximised), aligned with ``x``.
        y_first: Value at the first step.
        y_last: Value at the last step.
        y_min: Smallest observed value.
        y_max: Largest observed value.
        span: ``y_max - y_min`` (never zero: a tiny positive floor is used).
        asymptote_low: Lowest plateau a fit may have (``y_min``).
        asymptote_high: Highest plateau a fit may have: the caller's upper bound, or a
            data-derived headroom above ``y_max`` when none was given.
    """

    x: np.ndarray
    y: np.ndarray
    y_first: float
    y_last: float
    y_min: float
    y_max: float
    span: float
    asymptote_low: float
    asymptote_high: float

    @property
    def x_first(self) -> float:
        """Smallest normalised step (1 for curves built by the extrapolator)."""
        return float(self.x[0])

    @property
    def x_last(self) -> float:
        """Largest normalised step."""
        return float(self.x[-1])

    @property
    def depth(self) -> float:
        """Largest plausible gap between the plateau and an observed value."""
        return self.asymptote_high - self.y_min + self.span


def observe_curve(
    x: np.ndarray, y: np.ndarray, upper_bound: float | None = None, headroom: float = 5.0
) -> ObservedCurve:
    """Summarise a normalised curve; ``upper_bound`` caps every family's plateau.

    Without ``upper_bound`` the plateau may lie at most ``headroom`` observed ranges
    above the best observed value: a weak guard, so give a real bound when the metric
    has one (1.0 for accuracies).
    """
    y_min, y_max = float(np.min(y)), float(np.max(y))
    span = max(y_max - y_min, 1e-9 * max(1.0, abs(y_max)))
    high = float(upper_bound) if upper_bound is not None else y_max + headroom * span
    # Keep the plateau bounds a non-empty interval even when the best value equals the cap.
    high = max(high, y_max + 1e-9 * max(1.0, abs(y_max)))
    return ObservedCurve(
        x=x, y=y, y_first=float(y[0]), y_last=float(y[-1]), y_min=y_min, y_max=y_max,
        span=span, asymptote_low=y_min, asymptote_high=high,
    )


@dataclass(frozen=True)
class CurveModel:
    """One parametric learning-curve family.

    Attributes:
        name: Registry key (``"pow3"``, ``"weibull"``, ...).
        param_names: Names of ``theta`` in the order ``function`` takes them.
        function: Vectorised ``f(x, *theta)``.
        formula: Human-readable formula, for documentation and reprs.
        requires_positive: Whether the family can only produce positive values
            (``exp``-based forms); it is skipped when an observed value is ``<= 0``.
        max_value: Largest observed value the family can work with (``log_log_linear``
            exponentiates the values); it is skipped beyond.
    """

    name: str
    param_names: tuple[str, ...]
    function: ArrayFunction
    formula: str
    _guesses: Callable[[ObservedCurve], list[np.ndarray]]
    _bounds: Callable[[ObservedCurve], tuple[np.ndarray, np.ndarray]]
    _monotone: Callable[..., np.ndarray]
    requires_positive: bool = False
    max_value: float = math.inf

    @property
    def n_params(self) -> int:
        """Number of free parameters."""
        return len(self.param_names)

    def __call__(self, x: np.ndarray | float, *theta: np.ndarray | float) -> np.ndarray:
        """Evaluate the curve, silencing overflow/invalid warnings (results may be inf/NaN)."""
        with np.errstate(all="ignore"):
            return self.function(np.asarray(x, dtype=float), *theta)

    def applicable(self, curve: ObservedCurve) -> bool:
        """Whether the family can represent ``curve`` at all (sign and range limits)."""
        if self.requires_positive and curve.y_min <= 0.0:
            return False
        return curve.asymptote_high < self.max_value

    def bounds(self, curve: ObservedCurve) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper parameter bounds derived from the observed curve."""
        lower, upper = self._bounds(curve)
        return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)

    def initial_guesses(self, curve: ObservedCurve) -> list[np.ndarray]:
        """Starting points for the least-squares fit, moved strictly inside the bounds.

        Several starts are returned for families whose fit depends on where the plateau
        is first assumed to be; the best resulting fit is kept.
        """
        lower, upper = self.bounds(curve)
        width = upper - lower
        # Start strictly inside the box: the bound transform is flat on its edges.
        inner_lo, inner_hi = lower + 1e-6 * width, upper - 1e-6 * width
        guesses = []
        for guess in self._guesses(curve):
            guess = np.asarray(guess, dtype=float)
            guess = np.where(np.isfinite(guess), guess, (lower + upper) / 2.0)
            guesses.append(np.clip(guess, inner_lo, inner_hi))
        return guesses

    def is_valid(self, theta: np.ndarray, curve: ObservedCurve) -> np.ndarray:
        """Sanity constraint for parameter vectors (rows of ``theta``, shape ``(S, P)``).

        True where the parameters lie inside :meth:`bounds` (which cap the plateau) and
        describe a non-decreasing curve.
        """
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        lower, upper = self.bounds(curve)
        inside = np.all((theta >= lower) & (theta <= upper), axis=1)
        with np.errstate(all="ignore"):
            rising = np.asarray(self._monotone(*theta.T), dtype=bool)
        return inside & np.broadcast_to(rising, inside.shape) & np.all(np.isfinite(theta), axis=1)

    def __repr__(self) -> str:
        return f"CurveModel({self.name!r}: {self.formula})"


# --------------------------------------------------------------------------- helpers
# Where fits start looking for the plateau, in observed ranges above the last value.
_PLATEAU_STARTS = (0.1, 1.0)


def _plateau_guesses(curve: ObservedCurve) -> list[float]:
    """Plausible plateaus to start from: just above the last value, and higher up."""
    return [min(curve.y_last + k * curve.span, curve.asymptote_high) for k in _PLATEAU_STARTS]


def _safe_log(value: float, floor: float = 1e-12) -> float:
    return float(np.log(max(value, floor)))


def _gap(curve: ObservedCurve, plateau: float, value: float) -> float:
    """Positive distance from ``value`` up to ``plateau`` (never zero)."""
    return max(plateau - value, 1e-3 * curve.span)


def _always(*theta: np.ndarray) -> np.ndarray:
    return np.ones_like(theta[0], dtype=bool)


# --------------------------------------------------------------------------- families
# Amplitudes below (pow3's a, pow4's g, ilog2's a) are gaps to the plateau at the first
# observation x = 1, so at most ``curve.depth``; rates are per first-step interval.
def _remaining_fraction(curve: ObservedCurve, plateau: float, start: float) -> float:
    """Fraction of the rise from ``start`` to ``plateau`` still left at the last step."""
    fraction = _gap(curve, plateau, curve.y_last) / max(plateau - start, 1e-12)
    return min(max(fraction, 1e-6), 1.0 - 1e-6)


def _pow3(x, c, a, alpha):
    return c - a * x ** (-alpha)


def _pow3_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    guesses = []
    for c in _plateau_guesses(curve):
        a = _gap(curve, c, curve.y_first)
        # a * x_last^-alpha = gap at the last observation.
        alpha = np.log(a / _gap(curve, c, curve.y_last)) / max(np.log(curve.x_last), 1e-12)
        guesses.append(np.array([c, a, alpha]))
    return guesses


def _pow3_bounds(curve: ObservedCurve):
    return (
        [curve.asymptote_low, 0.0, _MIN_EXPONENT],
        [curve.asymptote_high, 2.0 * curve.depth, _MAX_EXPONENT],
    )


def _pow4(x, c, g, s, alpha):
    return c - g * (s * x + 1.0 - s) ** (-alpha)


def _pow4_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    return [np.array([c, _gap(curve, c, curve.y_first), 0.5, 0.5]) for c in _plateau_guesses(curve)]


def _pow4_bounds(curve: ObservedCurve):
    # alpha is capped lower than for pow3: large alpha with small s only mimics an
    # exponential (exp3 covers that limit) and makes the fit crawl along a flat valley.
    return (
        [curve.asymptote_low, 0.0, 0.0, _MIN_EXPONENT],
        [curve.asymptote_high, 2.0 * curve.depth, 1.0, 3.0],
    )


def _log_power(x, a, b, c):
    return a / (1.0 + (x / np.exp(b)) ** c)


def _log_power_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    c = -1.0
    guesses = []
    for a in _plateau_guesses(curve):
        a = max(a, curve.y_last * (1.0 + 1e-3))
        # At the last step: (x_last / e^b)^c = a / y_last - 1.
        b = np.log(curve.x_last) - _safe_log(a / curve.y_last - 1.0) / c
        guesses.append(np.array([a, b, c]))
    return guesses


def _log_power_bounds(curve: ObservedCurve):
    low_a = max(curve.asymptote_low, 1e-12)
    high_a = max(curve.asymptote_high, 2 * low_a)
    return ([low_a, -30.0, -_MAX_EXPONENT], [high_a, 30.0, -_MIN_EXPONENT])


def _exp3(x, c, a, b):
    return c - np.exp(-a * x + b)


def _exp3_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    guesses = []
    for c in _plateau_guesses(curve):
        # Rate that leaves the observed fraction of the rise at the last step.
        a = -np.log(_remaining_fraction(curve, c, curve.y_first)) / max(curve.x_last - 1.0, 1e-12)
        guesses.append(np.array([c, a, _safe_log(_gap(curve, c, curve.y_first)) + a]))
    return guesses


def _exp_b_bounds(curve: ObservedCurve) -> tuple[float, float]:
    # b = log(gap at x = 1) + a * 1^alpha.
    return -60.0, _safe_log(2.0 * curve.depth) + _MAX_RATE


def _exp3_bounds(curve: ObservedCurve):
    b_lo, b_hi = _exp_b_bounds(curve)
    return ([curve.asymptote_low, 0.0, b_lo], [curve.asymptote_high, _MAX_RATE, b_hi])


def _exp4(x, c, a, b, alpha):
    return c - np.exp(-a * x**alpha + b)


def _exp4_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    return [np.append(g, 1.0) for g in _exp3_guesses(curve)]


def _exp4_bounds(curve: ObservedCurve):
    b_lo, b_hi = _exp_b_bounds(curve)
    return (
        [curve.asymptote_low, 0.0, b_lo, 0.05],
        [curve.asymptote_high, _MAX_RATE, b_hi, _MAX_EXPONENT / 2],
    )


def _janoschek(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-kappa * x**delta)


def _weibull(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-((kappa * x) ** delta))


def _mmf(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta)


def _sigmoidal_guesses(kind: str) -> Callable[[ObservedCurve], list[np.ndarray]]:
    """Guesses for the (alpha, beta, kappa, delta) families, with delta = 1."""

    def guesses(curve: ObservedCurve) -> list[np.ndarray]:
        out = []
        beta = curve.y_first - 0.5 * curve.span
        for alpha in _plateau_guesses(curve):
            remaining = _remaining_fraction(curve, alpha, beta)
            if kind == "mmf":
                kappa = (1.0 / remaining - 1.0) / curve.x_last
            else:  # exp(-kappa * x_last) = remaining
                kappa = -np.log(remaining) / curve.x_last
            out.append(np.array([alpha, beta, kappa, 1.0]))
        return out

    return guesses


def _sigmoidal_bounds(curve: ObservedCurve):
    return (
        [curve.asymptote_low, curve.y_min - 10.0 * curve.span, 0.0, 0.05],
        [curve.asymptote_high, curve.y_max, _MAX_SCALE, _MAX_EXPONENT],
    )


def _sigmoidal_monotone(alpha, beta, kappa, delta):
    return (alpha >= beta) & (kappa >= 0) & (delta > 0)


def _ilog2(x, c, a):
    return c - a / np.log(x + 1.0)


def _ilog2_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    # Linear in (c, a): solve by least squares on the observed points.
    design = np.column_stack([np.ones_like(curve.x), -1.0 / np.log(curve.x + 1.0)])
    (c, a), *_ = np.linalg.lstsq(design, curve.y, rcond=None)
    return [np.array([c, a])]


def _ilog2_bounds(curve: ObservedCurve):
    # a / log(2) is the gap at x = 1.
    return ([curve.asymptote_low, 0.0], [curve.asymptote_high, 2.0 * curve.depth])


def _vapor_pressure(x, a, b, c):
    return np.exp(a + b / x + c * np.log(x))


def _vapor_pressure_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    # log y = a + b / x + c log x is linear in (a, b, c).
    design = np.column_stack([np.ones_like(curve.x), 1.0 / curve.x, np.log(curve.x)])
    theta, *_ = np.linalg.lstsq(design, np.log(np.maximum(curve.y, 1e-12)), rcond=None)
    return [theta]


def _vapor_pressure_bounds(curve: ObservedCurve):
    top = _safe_log(curve.asymptote_high)
    return ([-100.0, -100.0, -_MAX_EXPONENT], [top + 100.0, 100.0, _MAX_EXPONENT])


def _log_log_linear(x, a, b):
    return np.log(a * np.log(x) + b)


def _log_log_linear_guesses(curve: ObservedCurve) -> list[np.ndarray]:
    # exp(y) = a log x + b is linear in (a, b); b = exp(y) at x = 1.
    design = np.column_stack([np.log(curve.x), np.ones_like(curve.x)])
    scale = np.exp(curve.y_max)
    (a, b), *_ = np.linalg.lstsq(design, np.exp(curve.y - curve.y_max), rcond=None)
    return [np.array([a * scale, b * scale])]


def _log_log_linear_bounds(curve: ObservedCurve):
    scale = float(np.exp(min(curve.y_max + curve.depth, _MAX_LOG_VALUE)))
    return ([0.0, 1e-300], [scale, scale])


def _nonneg(index: int) -> Callable[..., np.ndarray]:
    return lambda *theta: theta[index] >= 0


CURVE_MODELS: dict[str, CurveModel] = {
    model.name: model
    for model in (
        CurveModel(
            "pow3", ("c", "a", "alpha"), _pow3, "c - a * x^(-alpha)",
            _pow3_guesses, _pow3_bounds, lambda c, a, alpha: (a >= 0) & (alpha > 0),
        ),
        CurveModel(
            "pow4", ("c", "g", "s", "alpha"), _pow4, "c - g * (s * x + 1 - s)^(-alpha)",
            _pow4_guesses, _pow4_bounds,
            lambda c, g, s, alpha: (g >= 0) & (s >= 0) & (s <= 1) & (alpha > 0),
        ),
        CurveModel(
            "log_power", ("a", "b", "c"), _log_power, "a / (1 + (x / exp(b))^c)",
            _log_power_guesses, _log_power_bounds, lambda a, b, c: (a > 0) & (c < 0),
            requires_positive=True,
        ),
        CurveModel(
            "exp3", ("c", "a", "b"), _exp3, "c - exp(-a * x + b)",
            _exp3_guesses, _exp3_bounds, _nonneg(1),
        ),
        CurveModel(
            "janoschek", ("alpha", "beta", "kappa", "delta"), _janoschek,
            "alpha - (alpha - beta) * exp(-kappa * x^delta)",
            _sigmoidal_guesses("janoschek"), _sigmoidal_bounds, _sigmoidal_monotone,
        ),
        CurveModel(
            "weibull", ("alpha", "beta", "kappa", "delta"), _weibull,
            "alpha - (alpha - beta) * exp(-(kappa * x)^delta)",
            _sigmoidal_guesses("weibull"), _sigmoidal_bounds, _sigmoidal_monotone,
        ),
        CurveModel(
            "mmf", ("alpha", "beta", "kappa", "delta"), _mmf,
            "alpha - (alpha - beta) / (1 + (kappa * x)^delta)",
            _sigmoidal_guesses("mmf"), _sigmoidal_bounds, _sigmoidal_monotone,
        ),
        CurveModel(
            "ilog2", ("c", "a"), _ilog2, "c - a / log(x + 1)",
            _ilog2_guesses, _ilog2_bounds, _nonneg(1),
        ),
        CurveModel(
            "vapor_pressure", ("a", "b", "c"), _vapor_pressure, "exp(a + b / x + c * log(x))",
            _vapor_pressure_guesses, _vapor_pressure_bounds, _always,
            requires_positive=True,
        ),
        CurveModel(
            "log_log_linear", ("a", "b"), _log_log_linear, "log(a * log(x) + b)",
            _log_log_linear_guesses, _log_log_linear_bounds, _nonneg(0),
            max_value=_MAX_LOG_VALUE,
        ),
        CurveModel(
            "exp4", ("c", "a", "b", "alpha"), _exp4, "c - exp(-a * x^alpha + b)",
            _exp4_guesses, _exp4_bounds, lambda c, a, b, alpha: (a >= 0) & (alpha > 0),
        ),
    )
}
"""All eleven families of Domhan et al. (2015), keyed by name."""
