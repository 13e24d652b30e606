"""The curve PFN behind the same calls as :class:`~nasassist_plugins.curves.LearningCurveExtrapolator`."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nasassist_plugins.curves.pfn import CurveForecast, CurvePFN, load_default_pfn
from nasassist_plugins.errors import (
    ConfigurationError,
    CurveFitError,
    LearningCurveError,
)

__all__ = ["PFNExtrapolator"]


# ----------------------------------------------------------------------------- extrapolator API
class PFNExtrapolator:
    """Learning-curve extrapolation with the curve PFN, same calls as :class:`LearningCurveExtrapolator`.

    Example::

        lce = PFNExtrapolator(max_step=40, upper_bound=1.0)
        lce.fit(steps=[1, 2, 3, 4, 5], values=[0.52, 0.66, 0.71, 0.75, 0.77])
        mean, std = lce.predict(40)
        low, high = lce.quantiles(40, (0.1, 0.9))
        p = lce.probability_better(0.85, 40)

    Args:
        max_step: Step of a full run: steps are divided by it (``t = step / max_step``). The
            network was trained on curves observed up to ``t = 1``.
        direction: ``"maximize"`` (default) or ``"minimize"``; inputs and outputs stay in the
            caller's units.
        lower_bound: Smallest value the metric can take (default ``None``).
        upper_bound: Largest value the metric can take (default ``None``); the bound on the good
            side (upper for maximisation) is given to the network and caps every forecast.
        model: A :class:`CurvePFN` (default ``None``: the shipped weights).
    """

    min_points = 2

    def __init__(
        self,
        *,
        max_step: float,
        direction: str = "maximize",
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        model: CurvePFN | None = None,
    ) -> None:
        if isinstance(max_step, bool) or not isinstance(max_step, (int, float)) or not math.isfinite(max_step) or max_step <= 0:
            raise ConfigurationError(f"max_step must be a finite number > 0, got {max_step!r}")
        if direction not in ("maximize", "minimize"):
            raise ConfigurationError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        for name, value in (("lower_bound", lower_bound), ("upper_bound", upper_bound)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise ConfigurationError(f"{name} must be a finite number or None, got {value!r}")
        if lower_bound is not None and upper_bound is not None and not lower_bound < upper_bound:
            raise ConfigurationError(f"lower_bound ({lower_bound}) must be below upper_bound ({upper_bound})")
        self.max_step = float(max_step)
        self.direction = direction
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.model = model
        self._t: np.ndarray | None = None
        self._y: np.ndarray | None = None

    @property
    def _sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0

    @property
    def _good_bound(self) -> float | None:
        bound = self.upper_bound if self.direction == "maximize" else self.lower_bound
        return None if bound is None else self._sign * float(bound)

    @property
    def _bad_bound(self) -> float | None:
        bound = self.lower_bound if self.direction == "maximize" else self.upper_bound
        return None if bound is None else self._sign * float(bound)

    def _prepare(self, steps: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Validated, normalised ``(t, y)``: steps / max_step, values in maximisation units, repeats averaged."""
        from nasassist_plugins.curves.extrapolation import _validate_curve

        x, y = _validate_curve(steps, values)
        ux, inv = np.unique(x, return_inverse=True)
        if len(ux) < 2:
            raise LearningCurveError("at least two distinct steps are needed to extrapolate")
        uy = np.bincount(inv, weights=y) / np.bincount(inv)
        return np.minimum(ux / self.max_step, 1.0), self._sign * uy

    def fit(self, steps: Sequence[float], values: Sequence[float]) -> PFNExtrapolator:
        """Store the observed curve (steps > 0, finite values, at least two distinct steps)."""
        self._t, self._y = self._prepare(steps, values)
        return self

    def _target(self, step: float) -> float:
        target = float(step) / self.max_step
        if not math.isfinite(target) or target <= 0:
            raise LearningCurveError(f"target step must be > 0, got {step!r}")
        return target

    def forecast(self, step: float) -> CurveForecast:
        """The predictive distribution at ``step`` in maximisation units (internal)."""
        if self._t is None or self._y is None:
            raise CurveFitError("call fit() before predicting")
        model = self.model or load_default_pfn()
        return model.forecast_batch([(self._t, self._y)], self._good_bound, np.array([self._target(step)]),
                                    self._bad_bound)[0][0]

    def forecast_many(self, curves: Sequence[tuple[Sequence[float], Sequence[float]]], step: float) -> list[CurveForecast]:
        """Forecasts at ``step`` (maximisation units) for several observed curves ``(steps, values)`` in one pass."""
        if not curves:
            return []
        model = self.model or load_default_pfn()
        prefixes = [self._prepare(s, v) for s, v in curves]
        query = np.array([self._target(step)])
        # batches of similar length: padding costs as much as real points
        order = sorted(range(len(prefixes)), key=lambda i: len(prefixes[i][0]))
        out: list[CurveForecast | None] = [None] * len(prefixes)
        for start in range(0, len(order), 16):
            chunk = order[start : start + 16]
            for i, f in zip(chunk, model.forecast_batch([prefixes[i] for i in chunk], self._good_bound, query,
                                                        self._bad_bound)):
                out[i] = f[0]
        return out  # type: ignore[return-value]

    def predict(self, step: float) -> tuple[float, float]:
        """Predictive mean and standard deviation of the value at ``step`` (caller's units)."""
        f = self.forecast(step)
        return self._sign * f.mean, f.std

    def quantiles(self, step: float, levels: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Predictive quantiles of the value at ``step`` (caller's units, in the order of ``levels``)."""
        f = self.forecast(step)
        if self.direction == "maximize":
            return np.array([f.quantile(q) for q in levels])
        return np.array([-f.quantile(1.0 - q) for q in levels])

    def probability_better(self, threshold: float, step: float) -> float:
        """P(value at ``step`` is better than ``threshold``) in the optimisation direction."""
        return self.forecast(step).probability_above(self._sign * float(threshold))
