"""Fitting helpers of the parametric learning-curve ensemble (least squares, Laplace posterior, sampling)."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from nasassist_plugins.curves.models import CURVE_MODELS, CurveModel, ObservedCurve
from nasassist_plugins.errors import LearningCurveError

ArrayLike = Union[Sequence[float], np.ndarray]


# Relative tolerances of the least-squares solver: far below the noise of any real
# learning curve, and much cheaper than scipy's 1e-8 default.
_TOLERANCE = 1e-6


# Width of the importance-sampling proposal relative to the Laplace approximation.
_PROPOSAL_SCALE = 1.5


@dataclass(frozen=True)
class _Posterior:
    """Importance-weighted parameter draws of one family (see :func:`_draw_parameters`)."""

    draws: np.ndarray
    log_weights: np.ndarray


class _FitTimeout(Exception):
    """Raised from inside the objective when a fit exceeds its time budget."""


# ---------------------------------------------------------------------- fitting helpers
def _fit_model(
    model: CurveModel, curve: ObservedCurve, maxfev: int, timeout: float
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Best least-squares fit of one family over its starting points.

    Returns ``(params, covariance, noise_std, bic)`` or ``None`` when every start
    failed, timed out, or produced a non-finite or constraint-breaking fit.
    """
    box = _BoxTransform(*model.bounds(curve))
    deadline = time.perf_counter() + timeout
    # Non-finite model values become a huge residual, so the optimiser backs off
    # instead of crashing on NaN (e.g. the log of a negative number).
    penalty = curve.y_max + 1e6 * (curve.span + abs(curve.y_max))

    def objective(x: np.ndarray, *free: float) -> np.ndarray:
        if time.perf_counter() > deadline:
            raise _FitTimeout
        values = model(x, *box.to_params(np.asarray(free)))
        return np.where(np.isfinite(values), values, penalty)

    best: tuple[float, np.ndarray] | None = None
    for start in model.initial_guesses(curve):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                free, _ = curve_fit(
                    objective, curve.x, curve.y, p0=box.to_free(start), method="lm",
                    maxfev=maxfev, ftol=_TOLERANCE, xtol=_TOLERANCE,
                )
        except _FitTimeout:
            break
        except (RuntimeError, ValueError, TypeError, FloatingPointError, np.linalg.LinAlgError):
            continue  # maxfev reached or the solver gave up: try the next start
        params = box.to_params(free)
        rss = _rss(model, curve, params)
        if np.isfinite(rss) and (best is None or rss < best[0]):
            best = (rss, params)
    if best is None:
        return None
    rss, params = best
    if not model.is_valid(params, curve)[0]:
        return None
    cov = _parameter_covariance(model, curve, params, box)
    return _noise_and_covariance(model, curve, rss, params, cov)


class _BoxTransform:
    """Map box-bounded parameters to free ones: ``theta = mid + half * sin(u)``.

    This is how the fit is bounded: Levenberg-Marquardt (MINPACK, compiled) on the free
    parameters is several times faster than scipy's pure-Python bounded
    trust-region solver, and the sine map (as in MINUIT) never gets stuck at a bound
    the way a logistic map does.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
            raise ValueError(f"curve-model bounds must be finite and ordered, got {lower} and {upper}.")
        self.lower, self.upper = lower, upper
        self.mid, self.half = (lower + upper) / 2.0, (upper - lower) / 2.0

    def to_params(self, free: np.ndarray) -> np.ndarray:
        return self.mid + self.half * np.sin(free)

    def to_free(self, params: np.ndarray) -> np.ndarray:
        return np.arcsin(np.clip((params - self.mid) / self.half, -1.0, 1.0))


def _rss(model: CurveModel, curve: ObservedCurve, params: np.ndarray) -> float:
    residuals = curve.y - model(curve.x, *params)
    return float(residuals @ residuals) if np.all(np.isfinite(residuals)) else math.inf


def _parameter_covariance(
    model: CurveModel, curve: ObservedCurve, params: np.ndarray, box: _BoxTransform
) -> np.ndarray:
    """Unscaled covariance ``(J^T J)^+`` of the parameters themselves (not the free ones).

    The Jacobian is taken by forward differences stepping into the box, so a parameter
    sitting on a bound keeps its real sensitivity (the free parameters' Jacobian would
    vanish there). The pseudo-inverse drops directions the data cannot determine, as
    ``curve_fit`` does.
    """
    base = model(curve.x, *params)
    jacobian = np.empty((len(curve.x), len(params)))
    for j, value in enumerate(params):
        step = 1.5e-8 * max(abs(value), box.half[j] * 1e-3)
        if value + step > box.upper[j]:
            step = -step
        shifted = params.copy()
        shifted[j] = value + step
        jacobian[:, j] = (model(curve.x, *shifted) - base) / step
    if not np.all(np.isfinite(jacobian)):
        return np.full((len(params), len(params)), np.inf)
    _, singular, vt = np.linalg.svd(jacobian, full_matrices=False)
    if not singular[0] > 0:  # the curve does not respond to any parameter
        return np.full((len(params), len(params)), np.inf)
    keep = singular > np.finfo(float).eps * max(jacobian.shape) * singular[0]
    singular, vt = singular[keep], vt[keep]
    with np.errstate(all="ignore"):
        cov = (vt.T / singular**2) @ vt
    return cov if np.all(np.isfinite(cov)) else np.full_like(cov, np.inf)


def _noise_and_covariance(
    model: CurveModel, curve: ObservedCurve, rss: float, params: np.ndarray, cov: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Residual noise (floored for exact fits), the noise-scaled covariance, and the BIC."""
    n, k = len(curve.y), model.n_params
    floor = (1e-6 * max(curve.span, 1e-12)) ** 2
    if not np.all(np.isfinite(cov)):
        return None
    variance = max(rss / (n - k), floor)
    bic = n * math.log(max(rss, n * floor) / n) + k * math.log(n)
    return params, cov * variance, math.sqrt(variance), bic


def _ensemble_weights(bics: list[float], noise_stds: list[float], weighting: str) -> np.ndarray:
    """Normalised ensemble weights from fit quality."""
    if weighting == "bic":
        scores = -0.5 * (np.asarray(bics) - min(bics))
        weights = np.exp(scores)
    elif weighting == "inverse_variance":
        weights = 1.0 / np.square(np.asarray(noise_stds))
    else:
        weights = np.ones(len(bics))
    return weights / weights.sum()


def _draw_parameters(
    model: CurveModel,
    curve: ObservedCurve,
    params: np.ndarray,
    cov: np.ndarray,
    noise_std: float,
    n_samples: int,
    rng: np.random.Generator,
) -> _Posterior:
    """Posterior draws by importance sampling with a widened Laplace proposal.

    Draws come from ``N(params, s^2 cov)`` (``s`` = :data:`_PROPOSAL_SCALE`, wider than
    the Laplace approximation so its tails are covered) and are weighted by
    ``likelihood / proposal density``, with the Gaussian likelihood of the observed
    curve at the fitted noise level and a flat prior over the parameters that pass the
    family's sanity constraint. The weights undo the Gaussian's errors where the curve
    is far from linear in its parameters (draws that no longer fit the observed points
    count for little) at the cost of one vectorised model evaluation per draw.
    """
    eigenvalues, eigenvectors = np.linalg.eigh((cov + cov.T) / 2.0)
    keep = eigenvalues > 1e-12 * max(float(eigenvalues.max()), 1e-300)
    root = eigenvectors[:, keep] * np.sqrt(eigenvalues[keep]) * _PROPOSAL_SCALE
    z = rng.standard_normal((n_samples, int(keep.sum())))
    draws = params + z @ root.T
    valid = model.is_valid(draws, curve)
    draws, z = draws[valid], z[valid]
    residuals = curve.y - model(curve.x, *draws.T[:, :, None])
    rss = np.sum(residuals**2, axis=1)
    log_weights = -0.5 * rss / noise_std**2 + 0.5 * np.sum(z**2, axis=1)
    log_weights = np.where(np.isfinite(log_weights), log_weights, -np.inf)
    finite = np.isfinite(log_weights)
    return _Posterior(draws[finite], log_weights[finite])


# ---------------------------------------------------------------------- validation helpers
def _validate_curve(steps: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check and sort an observed curve; returns ``(steps, values)`` as float arrays."""
    x = _as_1d_float("steps", steps)
    y = _as_1d_float("values", values)
    if x.shape != y.shape:
        raise LearningCurveError(
            f"steps and values must have the same length, got {len(x)} steps and {len(y)} values."
        )
    if not np.all(np.isfinite(y)):
        bad = np.flatnonzero(~np.isfinite(y)).tolist()
        raise LearningCurveError(f"values must be finite; NaN/inf at positions {bad}.")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise LearningCurveError(
            "steps must be finite and > 0 (if your steps start at 0, pass step + 1)."
        )
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if len(x) and x[0] == x[-1]:
        raise LearningCurveError("steps must contain at least two distinct values to extrapolate.")
    return x, y


def _check_enough_points(n: int, min_points: int) -> None:
    if n < min_points:
        raise LearningCurveError(
            f"at least min_points={min_points} observations are needed to extrapolate, got {n}."
        )


def _as_1d_float(name: str, data: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise LearningCurveError(f"{name} must be a sequence of numbers: {exc}") from exc
    if array.ndim != 1:
        raise LearningCurveError(f"{name} must be one-dimensional, got shape {array.shape}.")
    return array


def _resolve_models(models: Iterable[str | CurveModel] | None) -> tuple[CurveModel, ...]:
    if models is None:
        return tuple(CURVE_MODELS.values())
    if isinstance(models, (str, CurveModel)):
        models = [models]
    resolved = []
    for item in models:
        if isinstance(item, CurveModel):
            resolved.append(item)
        elif isinstance(item, str) and item in CURVE_MODELS:
            resolved.append(CURVE_MODELS[item])
        else:
            raise ValueError(f"unknown curve model {item!r}; choose from {sorted(CURVE_MODELS)}.")
    names = [model.name for model in resolved]
    if not resolved:
        raise ValueError("models must name at least one curve family.")
    if len(set(names)) != len(names):
        raise ValueError(f"models must not repeat a family, got {names}.")
    return tuple(resolved)
