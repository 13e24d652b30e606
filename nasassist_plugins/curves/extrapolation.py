"""Learning-curve extrapolation (LCE) with a weighted ensemble of parametric families.

This is the one implementation shared by the Optuna pruner and the NNI assessor, so
it knows nothing about either framework: it takes plain ``steps``/``values`` arrays
and answers "what will the value be at step ``T``, and how sure are we?".

Method (after Domhan et al., 2015, made cheap enough to run at every report):

1. Every family of :data:`~nasassist_plugins.curves.models.CURVE_MODELS` is fitted by
   box-bounded least squares (:func:`scipy.optimize.curve_fit`; the bounds are
   enforced by a sine reparametrisation so the fast compiled Levenberg-Marquardt
   solver can be used), from one or two data-derived starting points, with an
   evaluation cap and a wall-clock timeout so that no single fit can hang.
2. Fits that fail, are non-finite, or break the family's sanity constraint are
   dropped. At prediction time a fit is also dropped when its forecast leaves the
   plausible range ``[max(lower_bound, min observed - observed range), upper_bound]``
   or when the curve would have to decrease on the way there.
3. The survivors are averaged with inverse-residual-variance weights (default), BIC
   weights ``exp(-BIC / 2)``, or uniform weights. BIC weights pick the best in-sample
   family almost exclusively (they scale like ``(sigma_best / sigma)^n``), which made
   forecasts overconfident on synthetic curves where several families fit the
   observed part equally well but diverge later; ``1 / sigma^2`` still silences bad
   fits while keeping the between-family spread that extrapolation needs.
4. Uncertainty: each family contributes parameter draws from its *Laplace*
   approximation (Gaussian around the least-squares fit with the noise-scaled
   ``(J^T J)^+`` covariance, widened by :data:`_PROPOSAL_SCALE`), restricted to the
   family's sanity constraint and re-weighted by importance sampling towards the exact
   posterior (Gaussian likelihood of the observed points, flat prior on valid
   parameters). Gaussian observation noise with the family's residual variance is
   added on top, and the mixture over families adds the between-model spread.

Why this rather than a residual bootstrap or MCMC: a bootstrap needs one refit per
resample and family (hundreds of fits, seconds per curve) and the MCMC of Domhan et
al. takes longer still, while pruning decisions are made at every intermediate
report. One fit per family plus a vectorised evaluation of a few hundred draws costs
a few milliseconds. The plain Laplace Gaussian alone was tried first and was badly
biased for sloppy families (a plateau on a bound, a near-degenerate exponent): many of
its draws no longer fit the observed points. The importance weights fix exactly that,
and the truncation to valid parameters reproduces the paper's prior (increasing
curves, bounded plateau). ``emcee`` is therefore not needed. Limitation: with very
few points a family's importance weights can concentrate on a handful of draws, so
its own spread is then underestimated; the between-family spread still remains.

Conventions:

* Values are **maximised** internally; ``direction="minimize"`` negates losses on the
  way in and out, so callers always work in their own units.
* Steps must be finite and ``> 0`` (power laws are singular at 0). Frameworks that count
  from 0 should pass ``step + 1`` (and ``max_step + 1``). Steps are sorted; repeated
  steps are kept as repeated measurements.
* Too few points: :meth:`LearningCurveExtrapolator.fit` raises
  :class:`LearningCurveError` (a ``ValueError``) naming ``min_points``, while
  :func:`should_stop` returns an "unknown" decision (never stop) instead, because a
  pruner must not stop a trial for lack of evidence.
* Constant curves (all values equal) are extrapolated as that constant with zero
  spread: they give no evidence of change.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Iterable, Literal, NamedTuple, Sequence, Union, overload

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import ndtr

from nasassist_plugins.curves.models import CURVE_MODELS, CurveModel, ObservedCurve, observe_curve
from nasassist_plugins.errors import CurveFitError, LearningCurveError

__all__ = [
    "CurveFitError",
    "LearningCurveError",
    "LearningCurveExtrapolator",
    "ModelFit",
    "StopDecision",
    "should_stop",
]

Direction = Literal["maximize", "minimize"]
Weighting = Literal["bic", "inverse_variance", "uniform"]
RandomState = Union[int, np.random.Generator, None]
ArrayLike = Union[Sequence[float], np.ndarray]

_WEIGHTINGS = ("inverse_variance", "bic", "uniform")
_DIRECTIONS = ("maximize", "minimize")
# Grid used to check that a forecast rises monotonically from the first observation.
_GRID_SIZE = 24
# A family needs at least this fraction of its parameter draws to survive the checks
# at a target step; otherwise its predictive is too distorted by truncation to trust.
_MIN_ACCEPTANCE = 0.05
# Relative tolerances of the least-squares solver: far below the noise of any real
# learning curve, and much cheaper than scipy's 1e-8 default.
_TOLERANCE = 1e-6
# Width of the importance-sampling proposal relative to the Laplace approximation.
_PROPOSAL_SCALE = 1.5




@dataclass(frozen=True)
class ModelFit:
    """Result of fitting one family to the observed curve (in maximised units).

    Attributes:
        name: Family name (key of :data:`CURVE_MODELS`).
        params: Least-squares parameters, in the family's ``param_names`` order.
        covariance: Noise-scaled parameter covariance ``sigma^2 (J^T J)^+`` at ``params``.
        noise_std: Residual standard deviation (with a tiny floor for exact fits).
        bic: Bayesian information criterion ``n log(RSS / n) + k log n``.
        weight: Ensemble weight (sums to 1 over all fits).
    """

    name: str
    params: np.ndarray
    covariance: np.ndarray
    noise_std: float
    bic: float
    weight: float


class StopDecision(NamedTuple):
    """Outcome of :func:`should_stop`; unpacks as ``stop, probability, (mean, std)``.

    ``probability`` and ``prediction`` are NaN when the decision is "unknown" (too few
    points or no usable fit); ``stop`` is then ``False``.
    """

    stop: bool
    probability: float
    prediction: tuple[float, float]


@dataclass(frozen=True)
class _Posterior:
    """Importance-weighted parameter draws of one family (see :func:`_draw_parameters`)."""

    draws: np.ndarray
    log_weights: np.ndarray


@dataclass(frozen=True)
class _Component:
    """One family's predictive at a target step: weighted draw forecasts plus noise."""

    weight: float
    forecasts: np.ndarray
    probabilities: np.ndarray
    noise_std: float

    @property
    def mean(self) -> float:
        return float(self.probabilities @ self.forecasts)

    @property
    def variance(self) -> float:
        """Variance of a new observation: parameter spread plus observation noise."""
        spread = float(self.probabilities @ (self.forecasts - self.mean) ** 2)
        return spread + self.noise_std**2


class _FitTimeout(Exception):
    """Raised from inside the objective when a fit exceeds its time budget."""


class LearningCurveExtrapolator:
    """Forecast where a partially observed learning curve will end up.

    Example::

        lce = LearningCurveExtrapolator(upper_bound=1.0, random_state=0)
        lce.fit(steps=[1, 2, ..., 30], values=accuracies)
        mean, std = lce.predict(100)
        p = lce.probability_above(0.85, 100)

    Args:
        models: Families to use: names from :data:`CURVE_MODELS` or :class:`CurveModel`
            objects. ``None`` uses all eleven.
        min_points: Fewest observations :meth:`fit` accepts (at least 3: the smallest
            families have two parameters and need one residual degree of freedom).
            Families with as many parameters as points are skipped.
        n_samples: Parameter draws per family for the predictive distribution.
        random_state: Seed or generator for the draws. An ``int`` makes every
            :meth:`fit` reproducible.
        direction: ``"maximize"`` (accuracy) or ``"minimize"`` (loss). Inputs and
            outputs are always in the caller's units.
        lower_bound: Smallest value the metric can take (e.g. 0.0), or ``None``.
        upper_bound: Largest value the metric can take (e.g. 1.0 for accuracy), or
            ``None``. The bound on the *good* side (upper for maximisation, lower for
            minimisation) caps every forecast and plateau; without it forecasts may
            reach five observed ranges beyond the best value, so pass it when known.
        weighting: How fits are weighted: ``"inverse_variance"`` (default,
            ``1 / residual variance``), ``"bic"`` (``exp(-BIC / 2)``, sharper but
            overconfident when families disagree) or ``"uniform"``.
        timeout: Wall-clock seconds allowed per family fit (all starts together); a
            safety net only, since ``maxfev`` normally ends a bad fit much sooner.
        maxfev: Cap on model evaluations per ``curve_fit`` call (Jacobian included);
            a fit that hits it is discarded.
    """

    def __init__(
        self,
        models: Iterable[str | CurveModel] | None = None,
        min_points: int = 3,
        n_samples: int = 500,
        random_state: RandomState = None,
        *,
        direction: Direction = "maximize",
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        weighting: Weighting = "inverse_variance",
        timeout: float = 1.0,
        maxfev: int = 1000,
    ) -> None:
        self.models = _resolve_models(models)
        self._model_by_name = {model.name: model for model in self.models}
        self.min_points = _check_int("min_points", min_points, minimum=3)
        self.n_samples = _check_int("n_samples", n_samples, minimum=10)
        self.direction = _check_choice("direction", direction, _DIRECTIONS)
        self.weighting = _check_choice("weighting", weighting, _WEIGHTINGS)
        self.lower_bound = _check_optional_float("lower_bound", lower_bound)
        self.upper_bound = _check_optional_float("upper_bound", upper_bound)
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and not self.lower_bound < self.upper_bound
        ):
            raise ValueError(
                f"lower_bound ({self.lower_bound}) must be smaller than upper_bound ({self.upper_bound})."
            )
        self.timeout = _check_positive_float("timeout", timeout)
        self.maxfev = _check_int("maxfev", maxfev, minimum=10)
        if random_state is not None and not isinstance(random_state, (int, np.integer, np.random.Generator)):
            raise TypeError(
                f"random_state must be None, an int or a numpy Generator, got {type(random_state).__name__}."
            )
        self.random_state = random_state
        self._reset()

    # ------------------------------------------------------------------ public API
    def fit(self, steps: ArrayLike, values: ArrayLike) -> LearningCurveExtrapolator:
        """Fit every family to the observed curve; returns ``self``.

        Args:
            steps: Training progress of each observation (epochs, iterations, ...),
                finite and ``> 0``. Need not be sorted.
            values: Observed metric at each step, in the caller's units.

        Raises:
            LearningCurveError: Mismatched lengths, NaN/inf, non-positive steps, fewer
                than ``min_points`` observations, a single distinct step, or values
                beyond ``lower_bound``/``upper_bound``.
            CurveFitError: No family could be fitted.
        """
        x_raw, y_user = _validate_curve(steps, values)
        _check_enough_points(len(y_user), self.min_points)
        self._check_values_within_bounds(y_user)
        self._reset()
        y = self._to_internal(y_user)
        curve = observe_curve(x_raw / x_raw[0], y, upper_bound=self._internal_cap())
        if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
            self._constant = float(y[0])
        else:
            rng = np.random.default_rng(self.random_state)
            fits, samples = self._fit_all(curve, rng)
            if not fits:
                raise CurveFitError(
                    "no learning-curve family could be fitted to the observed values "
                    f"({len(y)} points); check that the curve is roughly increasing in "
                    "the optimisation direction"
                )
            self._fits, self._samples, self._rng = fits, samples, rng
        self._curve, self._x_scale = curve, float(x_raw[0])
        return self

    @property
    def fits_(self) -> tuple[ModelFit, ...]:
        """The surviving fits from the last :meth:`fit` (empty for constant curves)."""
        self._require_fitted()
        return tuple(self._fits)

    @property
    def x_scale_(self) -> float:
        """First observed step: the unit of the normalised axis the families see."""
        self._require_fitted()
        return self._x_scale

    @overload
    def predict(self, step: float) -> tuple[float, float]: ...

    @overload
    def predict(self, step: ArrayLike) -> tuple[np.ndarray, np.ndarray]: ...

    def predict(self, step):
        """Predictive mean and standard deviation of the value at ``step``.

        Scalars give floats; an array of steps gives two arrays of the same shape. The
        standard deviation includes observation noise, parameter uncertainty and the
        spread between families.

        Raises:
            CurveFitError: Not fitted, or every family's forecast is implausible at ``step``.
        """
        targets = self._check_steps(step)
        means, stds = np.empty(targets.shape), np.empty(targets.shape)
        for index, target in np.ndenumerate(targets):
            means[index], stds[index] = self._moments(float(target))
        means = self._from_internal(means)
        if np.ndim(step) == 0:
            return float(means), float(stds)
        return means, stds

    def predict_samples(self, step: float, n_samples: int | None = None) -> np.ndarray:
        """Draws from the predictive distribution of the value at ``step``.

        Args:
            step: Target step (``> 0``).
            n_samples: Number of draws; defaults to the constructor's ``n_samples``.

        Returns:
            A 1-D array of draws in the caller's units. Successive calls continue the
            random stream, so they differ unless the extrapolator is re-fitted.
        """
        target = self._check_scalar_step(step)
        size = self.n_samples if n_samples is None else _check_int("n_samples", n_samples, minimum=1)
        if self._constant is not None:
            return self._from_internal(np.full(size, self._constant))
        components = self._components(target)
        weights = np.array([c.weight for c in components])
        choice = self._rng.choice(len(components), size=size, p=weights)
        draws = np.empty(size)
        for k, component in enumerate(components):
            picked = choice == k
            count = int(picked.sum())
            if count:
                base = self._rng.choice(component.forecasts, size=count, p=component.probabilities)
                draws[picked] = base + self._rng.normal(0.0, component.noise_std, size=count)
        return self._from_internal(draws)

    def probability_above(self, threshold: float, step: float) -> float:
        """Probability that the value observed at ``step`` exceeds ``threshold``.

        Literal, in the caller's units, for either direction (for a loss this is the
        probability of being *worse* than ``threshold``; see :meth:`probability_better`).
        Computed exactly from the mixture (Gaussian noise around each parameter draw),
        not by counting samples, so it is smooth in ``threshold``.
        """
        threshold = _check_float("threshold", threshold)
        better = self.probability_better(threshold, step)
        return better if self.direction == "maximize" else 1.0 - better

    def probability_better(self, threshold: float, step: float) -> float:
        """Probability that the value at ``step`` is better than ``threshold``.

        "Better" follows ``direction``: above for maximisation, below for minimisation.
        This is the quantity :func:`should_stop` compares with its threshold.
        """
        threshold = self._to_internal(_check_float("threshold", threshold))
        target = self._check_scalar_step(step)
        if self._constant is not None:
            return 1.0 if self._constant > threshold else 0.0
        total = 0.0
        for component in self._components(target):
            z = (component.forecasts - threshold) / component.noise_std
            total += component.weight * float(component.probabilities @ ndtr(z))
        return min(max(total, 0.0), 1.0)

    def __repr__(self) -> str:
        names = ", ".join(model.name for model in self.models)
        return f"{type(self).__name__}(models=[{names}], direction={self.direction!r})"

    # ------------------------------------------------------------------ fitting
    def _fit_all(
        self, curve: ObservedCurve, rng: np.random.Generator
    ) -> tuple[list[ModelFit], dict[str, _Posterior]]:
        raw = []
        for model in self.models:
            if model.n_params >= len(curve.y) or not model.applicable(curve):
                continue
            result = _fit_model(model, curve, self.maxfev, self.timeout)
            if result is not None:
                raw.append((model, *result))
        if not raw:
            return [], {}
        weights = _ensemble_weights(
            [bic for *_, bic in raw], [noise for _, _, _, noise, _ in raw], self.weighting
        )
        fits, samples = [], {}
        for (model, params, cov, noise, bic), weight in zip(raw, weights):
            fits.append(ModelFit(model.name, params, cov, noise, bic, float(weight)))
            samples[model.name] = _draw_parameters(model, curve, params, cov, noise, self.n_samples, rng)
        return fits, samples

    # ------------------------------------------------------------------ prediction
    def _moments(self, target: float) -> tuple[float, float]:
        """Mixture mean and standard deviation (internal units) at a normalised step."""
        if self._constant is not None:
            return self._constant, 0.0
        components = self._components(target)
        weights = np.array([c.weight for c in components])
        means = np.array([c.mean for c in components])
        variances = np.array([c.variance for c in components])
        mean = float(weights @ means)
        variance = float(weights @ (variances + (means - mean) ** 2))
        return mean, math.sqrt(max(variance, 0.0))

    def _components(self, target: float) -> list[_Component]:
        """Per-family predictives at a normalised target step (cached per step)."""
        cached = self._cache.get(target)
        if cached is not None:
            return cached
        curve = self._curve
        low, high = self._plausible_range()
        grid = np.unique(np.append(np.geomspace(curve.x_first, max(target, curve.x_last), _GRID_SIZE), target))
        at_target = int(np.searchsorted(grid, target))
        kept: list[tuple[float, np.ndarray, np.ndarray, float]] = []
        for fit in self._fits:
            model = self._model_by_name[fit.name]
            # The least-squares fit itself must be plausible, or the family is dropped.
            if not self._plausible(model(grid, *fit.params)[None, :], at_target, low, high)[0]:
                continue
            posterior = self._samples[fit.name]
            values = model(grid, *posterior.draws.T[:, :, None])
            ok = self._plausible(values, at_target, low, high)
            log_w = np.where(ok, posterior.log_weights, -np.inf)
            if not ok.any() or ok.mean() < _MIN_ACCEPTANCE:
                continue
            w = np.exp(log_w - log_w.max())
            kept.append((fit.weight, values[ok, at_target], w[ok] / w[ok].sum(), fit.noise_std))
        if not kept:
            raise CurveFitError(
                f"every fitted curve family forecasts an implausible value at step "
                f"{target * self._x_scale:g} (plausible range in maximised units: "
                f"[{low:g}, {high:g}])"
            )
        total = sum(item[0] for item in kept)
        components = [_Component(w / total, f, p, noise) for w, f, p, noise in kept]
        self._cache[target] = components
        return components

    def _plausible(self, values: np.ndarray, at_target: int, low: float, high: float) -> np.ndarray:
        """Rows of ``values`` (curves on the check grid) that are finite, do not
        decrease, and land inside ``[low, high]`` at the target."""
        tolerance = 1e-6 * self._curve.span
        ok = np.all(np.isfinite(values), axis=1)
        ok &= np.all(np.diff(values, axis=1) >= -tolerance, axis=1)
        return ok & (values[:, at_target] >= low) & (values[:, at_target] <= high)

    def _plausible_range(self) -> tuple[float, float]:
        """Range a forecast must fall in (internal units): not far below the worst
        observation, not beyond the metric's bounds or the plateau cap."""
        curve = self._curve
        low = curve.y_min - curve.span
        floor = self._internal_floor()
        if floor is not None:
            low = max(low, floor)
        return low, curve.asymptote_high

    # ------------------------------------------------------------------ units & checks
    def _to_internal(self, values):
        """Caller's units -> maximised units (negation is its own inverse)."""
        return values if self.direction == "maximize" else -values

    def _from_internal(self, values):
        """Maximised units -> caller's units."""
        return self._to_internal(values)

    def _internal_cap(self) -> float | None:
        """The good-side bound in maximised units."""
        if self.direction == "maximize":
            return self.upper_bound
        return None if self.lower_bound is None else -self.lower_bound

    def _internal_floor(self) -> float | None:
        """The bad-side bound in maximised units."""
        if self.direction == "maximize":
            return self.lower_bound
        return None if self.upper_bound is None else -self.upper_bound

    def _check_values_within_bounds(self, values: np.ndarray) -> None:
        if self.upper_bound is not None and np.max(values) > self.upper_bound:
            raise LearningCurveError(
                f"values exceed upper_bound={self.upper_bound} (max {np.max(values):g})."
            )
        if self.lower_bound is not None and np.min(values) < self.lower_bound:
            raise LearningCurveError(
                f"values are below lower_bound={self.lower_bound} (min {np.min(values):g})."
            )

    def _check_steps(self, step) -> np.ndarray:
        self._require_fitted()
        targets = np.asarray(step, dtype=float)
        if not np.all(np.isfinite(targets)) or np.any(targets <= 0):
            raise ValueError(f"step must be finite and > 0, got {step!r}.")
        return targets / self._x_scale

    def _check_scalar_step(self, step: float) -> float:
        if np.ndim(step) != 0:
            raise ValueError(f"step must be a scalar, got shape {np.shape(step)}.")
        return float(self._check_steps(step))

    def _require_fitted(self) -> None:
        if self._curve is None:
            raise CurveFitError(f"this {type(self).__name__} is not fitted yet; call fit(steps, values) first.")

    def _reset(self) -> None:
        self._curve: ObservedCurve | None = None
        self._x_scale = 1.0
        self._constant: float | None = None
        self._fits: list[ModelFit] = []
        self._samples: dict[str, _Posterior] = {}
        self._cache: dict[float, list[_Component]] = {}
        self._rng = np.random.default_rng(self.random_state)


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
    threshold_probability = _check_float("threshold_probability", threshold_probability)
    if not 0.0 <= threshold_probability <= 1.0:
        raise ValueError(f"threshold_probability must be in [0, 1], got {threshold_probability}.")
    best_final_value = _check_float("best_final_value", best_final_value)
    max_step = _check_positive_float("max_step", max_step)
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


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return float(value)


def _check_optional_float(name: str, value: object) -> float | None:
    return None if value is None else _check_float(name, value)


def _check_positive_float(name: str, value: object) -> float:
    value = _check_float(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    return value


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return str(value)
