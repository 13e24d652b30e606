"""The planner's decision step: a pool of candidates with predicted (mean, std) → a ranking.

:func:`rank_candidates` is a pure function (no study, no graphs): every front end decides
through it, and a different rule (e.g. a Pareto-aware acquisition for several objectives)
can replace it without touching how pools are built or scored. All scores are oriented so
that larger is better (callers negate losses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nasassist_plugins.errors import SearchError
from nasassist_plugins.search.config import ACQUISITIONS, check_acquisition, check_quantile

__all__ = ["ACQUISITIONS", "Ranking", "Selection", "acquisition_values", "check_acquisition", "check_quantile",
           "rank_candidates", "select_candidate"]

_ERF = np.frompyfunc(math.erf, 1, 1)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _ERF(z / math.sqrt(2.0)).astype(np.float64))


def _norm_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def acquisition_values(
    mean: np.ndarray, std: np.ndarray, rule: str = "ucb", *, kappa: float = 1.0, best: float | None = None
) -> np.ndarray:
    """Acquisition value of each candidate (larger is better).

    ``ucb``: ``mean + kappa * std``. ``ei``: expected improvement over ``best`` (the best
    value observed so far on the predictor's scale; the best predicted mean when unknown).
    ``mean``: greedy on the prediction.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.maximum(np.nan_to_num(np.asarray(std, dtype=np.float64), nan=0.0), 1e-12)
    check_acquisition(rule)
    if rule == "mean":
        return mean.copy()
    if rule == "ucb":
        return mean + kappa * std
    finite = mean[np.isfinite(mean)]
    incumbent = (float(np.max(finite)) if finite.size else 0.0) if best is None else float(best)
    with np.errstate(invalid="ignore", over="ignore"):
        z = (mean - incumbent) / std
        return (mean - incumbent) * _norm_cdf(z) + std * _norm_pdf(z)


@dataclass(frozen=True)
class Ranking:
    """The pool in order of preference, and why.

    Attributes:
        order: candidate indices, preferred first: eligible candidates (finite, not
            excluded, at or above the threshold), then the rest of the finite ones, then
            excluded ones, then those without a finite prediction. Front ends run
            ``order[0]`` and fall back down the list when another worker reserved it.
        threshold: predicted mean below which candidates were not eligible (``-inf``: none).
        n_eligible: candidates that passed the quantile and de-duplication filters.
        values: the acquisition value of every candidate (``-inf`` where not finite).
    """

    order: np.ndarray
    threshold: float
    n_eligible: int
    values: np.ndarray


def rank_candidates(
    mean: Sequence[float],
    std: Sequence[float],
    *,
    prune_quantile: float | None = 0.5,
    rule: str = "ucb",
    kappa: float = 1.0,
    best: float | None = None,
    exclude: Sequence[bool] | None = None,
    reference: Sequence[float] | None = None,
    explore: bool = False,
    rng: np.random.RandomState | None = None,
) -> Ranking:
    """Rank a scored pool: drop candidates predicted below the quantile, order by acquisition.

    Args:
        mean, std: predictions for the pool (larger is better); non-finite means rank last.
        prune_quantile: candidates whose predicted mean is below this quantile are never
            preferred. The quantile is taken over ``reference`` when given, else over the pool.
        rule, kappa, best: the acquisition (:func:`acquisition_values`).
        exclude: ``True`` for candidates that should not run (already run elsewhere); they
            rank after every other finite candidate, so they are chosen only when nothing
            else is left.
        explore: order the eligible candidates at random (``rng``) instead of by
            acquisition: the initial design of a study.

    Never raises on the values themselves: a pool without any finite prediction is
    ordered at random (or as given).
    """
    mean_arr = np.asarray(mean, dtype=np.float64)
    std_arr = np.asarray(std, dtype=np.float64)
    if mean_arr.ndim != 1 or mean_arr.size == 0 or std_arr.shape != mean_arr.shape:
        raise SearchError("rank_candidates needs non-empty 1-D mean and std arrays of equal length")
    n = mean_arr.size
    rng = rng if rng is not None else np.random.RandomState(0)
    finite = np.isfinite(mean_arr)
    excluded = np.zeros(n, dtype=bool) if exclude is None else np.asarray(exclude, dtype=bool)
    candidates = finite & ~excluded
    if not candidates.any():
        candidates = finite
    threshold = -np.inf
    eligible = candidates.copy()
    if prune_quantile is not None and prune_quantile > 0 and candidates.any():
        pool = np.asarray(reference if reference is not None and len(reference) else mean_arr[candidates],
                          dtype=np.float64)
        pool = pool[np.isfinite(pool)]
        if pool.size:
            threshold = float(np.quantile(pool, prune_quantile))
            above = candidates & (mean_arr >= threshold)
            # if every candidate is below the study's quantile, prefer the best of them, never a worse one
            eligible = above if above.any() else candidates & (mean_arr == np.max(mean_arr[candidates]))
    with np.errstate(invalid="ignore", over="ignore"):
        values = acquisition_values(np.where(finite, mean_arr, 0.0), std_arr, rule, kappa=kappa, best=best)
    values = np.where(finite & np.isfinite(values), values, np.where(finite, mean_arr, -np.inf))
    values = np.where(np.isfinite(values), values, -np.inf)

    def by_value(mask: np.ndarray) -> np.ndarray:
        index = np.flatnonzero(mask)
        return index[np.argsort(-values[index], kind="stable")]

    first = rng.permutation(np.flatnonzero(eligible)) if explore else by_value(eligible)
    rest = by_value(candidates & ~eligible)
    late = by_value(finite & ~candidates)
    unscored = np.flatnonzero(~finite)
    if not finite.any():
        unscored = rng.permutation(unscored)
    order = np.concatenate([first, rest, late, unscored]).astype(np.int64)
    return Ranking(order=order, threshold=threshold, n_eligible=int(eligible.sum()), values=values)


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and why (the first entry of a :class:`Ranking`).

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
    """The best candidate of :func:`rank_candidates` (same arguments)."""
    ranking = rank_candidates(mean, std, prune_quantile=prune_quantile, rule=rule, kappa=kappa, best=best,
                              exclude=exclude, reference=reference)
    index = int(ranking.order[0])
    return Selection(index=index, threshold=ranking.threshold, n_eligible=ranking.n_eligible,
                     acquisition=float(ranking.values[index]))
