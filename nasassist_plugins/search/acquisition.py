"""Acquisition rules: turn predicted (mean, std) into the one candidate to run next.

Shared by the Optuna sampler and the NNI strategy so both pick candidates the same way.
All scores here are oriented so that larger is better (callers negate losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from nasassist_plugins.errors import SearchError

ACQUISITIONS = ("ucb", "ei", "mean")



def check_acquisition(name: str) -> str:
    """Validate an acquisition name (``"ucb"``, ``"ei"`` or ``"mean"``)."""
    if name not in ACQUISITIONS:
        raise SearchError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {name!r}")
    return name


def check_quantile(value: float | None, what: str) -> float | None:
    """Validate a quantile in ``[0, 1)`` (``None`` disables the rule it controls)."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) < 1.0:
        raise SearchError(f"{what} must be a number in [0, 1) or None, got {value!r}")
    return float(value)


def acquisition_values(
    mean: np.ndarray, std: np.ndarray, rule: str = "ucb", *, kappa: float = 1.0, best: float | None = None
) -> np.ndarray:
    """Acquisition value of each candidate (larger is better).

    ``ucb``: ``mean + kappa * std``. ``ei``: expected improvement over ``best`` (the best
    value observed so far on the predictor's scale; the best predicted mean when unknown).
    ``mean``: greedy on the prediction.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    check_acquisition(rule)
    if rule == "mean":
        return mean.copy()
    if rule == "ucb":
        return mean + kappa * std
    incumbent = float(np.max(mean)) if best is None else float(best)
    z = (mean - incumbent) / std
    return (mean - incumbent) * stats.norm.cdf(z) + std * stats.norm.pdf(z)


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and why.

    Attributes:
        index: position of the chosen candidate in the pool.
        threshold: predicted mean below which candidates were excluded (``-inf`` if none).
        n_eligible: candidates left after the quantile and de-duplication filters.
        acquisition: acquisition value of the chosen candidate.
    """

    index: int
    threshold: float
    n_eligible: int
    acquisition: float


def select_candidate(
    mean: Sequence[float],
    std: Sequence[float],
    *,
    prune_quantile: float | None = 0.5,
    rule: str = "ucb",
    kappa: float = 1.0,
    best: float | None = None,
    exclude: Sequence[bool] | None = None,
    reference: Sequence[float] | None = None,
) -> Selection:
    """Pick the candidate to run: drop those predicted below the quantile, maximise acquisition.

    Args:
        mean, std: predictions for the pool (larger is better).
        prune_quantile: candidates whose predicted mean is below this quantile are never
            chosen. The quantile is taken over ``reference`` (e.g. the predictions of every
            candidate the study has seen) when given, else over the pool.
        exclude: ``True`` for candidates that must not be chosen (duplicates of trials
            already run); ignored when it would exclude every candidate.
    """
    mean_arr = np.asarray(mean, dtype=np.float64)
    std_arr = np.asarray(std, dtype=np.float64)
    if mean_arr.ndim != 1 or mean_arr.size == 0 or std_arr.shape != mean_arr.shape:
        raise SearchError("select_candidate needs non-empty 1-D mean and std arrays of equal length")
    eligible = np.isfinite(mean_arr)
    if exclude is not None:
        keep = eligible & ~np.asarray(exclude, dtype=bool)
        eligible = keep if keep.any() else eligible
    threshold = -np.inf
    if prune_quantile is not None and prune_quantile > 0:
        pool = np.asarray(reference if reference is not None and len(reference) else mean_arr[eligible], dtype=np.float64)
        pool = pool[np.isfinite(pool)]
        if pool.size:
            threshold = float(np.quantile(pool, prune_quantile))
            above = eligible & (mean_arr >= threshold)
            # if every candidate is below the study's quantile, run the best of them, never a worse one
            eligible = above if above.any() else eligible & (mean_arr == np.max(mean_arr[eligible]))
    if not eligible.any():
        raise SearchError("no candidate has a finite prediction")
    values = acquisition_values(mean_arr, np.nan_to_num(std_arr, nan=0.0), rule, kappa=kappa, best=best)
    values = np.where(eligible, values, -np.inf)
    index = int(np.argmax(values))
    return Selection(index=index, threshold=threshold, n_eligible=int(eligible.sum()), acquisition=float(values[index]))
