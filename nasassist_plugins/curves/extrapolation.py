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
from dataclasses import dataclass
from typing import Iterable, Literal, Union, overload

import numpy as np
from scipy.special import ndtr

from nasassist_plugins.curves._fitting import (
    ArrayLike,
    _check_enough_points,
    _draw_parameters,
    _ensemble_weights,
    _fit_model,
    _Posterior,
    _resolve_models,
    _validate_curve,
)
from nasassist_plugins.curves.models import CurveModel, ObservedCurve, observe_curve
from nasassist_plugins.errors import CurveFitError, LearningCurveError
from nasassist_plugins.validation import check_choice, check_integer, check_number

__all__ = [
    "CurveFitError",
    "LearningCurveError",
    "LearningCurveExtrapolator",
    "ModelFit",
]

Direction = Literal["maximize", "minimize"]
Weighting = Literal["bic", "inverse_variance", "uniform"]
RandomState = Union[int, np.random.Generator, None]

_WEIGHTINGS = ("inverse_variance", "bic", "uniform")
_DIRECTIONS = ("maximize", "minimize")
# Grid used to check that a forecast rises monotonically from the first observation.
_GRID_SIZE = 24
# A family needs at least this fraction of its parameter draws to survive the checks
# at a target step; otherwise its predictive is too distorted by truncation to trust.
_MIN_ACCEPTANCE = 0.05


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
        self.min_points = check_integer("min_points", min_points, minimum=3)
        self.n_samples = check_integer("n_samples", n_samples, minimum=10)
        self.direction = check_choice("direction", direction, _DIRECTIONS)
        self.weighting = check_choice("weighting", weighting, _WEIGHTINGS)
        self.lower_bound = check_number("lower_bound", lower_bound, optional=True)
        self.upper_bound = check_number("upper_bound", upper_bound, optional=True)
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and not self.lower_bound < self.upper_bound
        ):
            raise ValueError(
                f"lower_bound ({self.lower_bound}) must be smaller than upper_bound ({self.upper_bound})."
            )
        self.timeout = check_number("timeout", timeout, low=0.0, low_open=True)
        self.maxfev = check_integer("maxfev", maxfev, minimum=10)
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
        size = self.n_samples if n_samples is None else check_integer("n_samples", n_samples, minimum=1)
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
        threshold = check_number("threshold", threshold)
        better = self.probability_better(threshold, step)
        return better if self.direction == "maximize" else 1.0 - better

    def probability_better(self, threshold: float, step: float) -> float:
        """Probability that the value at ``step`` is better than ``threshold``.

        "Better" follows ``direction``: above for maximisation, below for minimisation.
        This is the quantity :func:`should_stop` compares with its threshold.
        """
        threshold = self._to_internal(check_number("threshold", threshold))
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


