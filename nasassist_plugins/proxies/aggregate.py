"""Turning suite signals of a population into one training-free score (AZ-NAS's aggregation).

AZ-NAS (Lee & Ham, CVPR 2024) ranks every architecture of the evaluated set by each
proxy and sums the logarithms of the normalised ranks: ``sum_m log(rank_m(i) / N)``
(rank N = best). The logarithm makes the sum non-linear: an architecture ranked low by
*any* proxy is pulled down, so architectures ranked high by all of them come first.

Ranks need a population. :func:`signal_ranks` ranks each signal within the rows given
(the AZ-NAS setting), or places each row against a **reference** sample of that signal
(a single model, or a few, still get a score in (0, 1]): the reference gives the empirical
distribution function, with mid-ranks for ties; beyond the reference's smallest and largest
values the rank keeps decreasing/increasing smoothly (exponentially in signed-log units,
at the reference's interquartile scale), so architectures much smaller or larger than
every reference one keep their order instead of tying. A failed signal (NaN) ranks below
every value.

SWAP's regularised score (Peng et al., ICLR 2024) multiplies the count of activation
patterns by ``exp(-(P - mu)^2 / sigma)`` of the parameter count ``P``; ``mu`` and ``sigma``
steer the model size and come from the population here (:func:`swap_regularised`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "AZNAS_SIGNALS",
    "aznas_score",
    "log_rank_aggregate",
    "signal_ranks",
    "spectral_weights",
    "swap_regularised",
]

#: AZ-NAS's four components: expressivity, progressivity, trainability and complexity (FLOPs).
AZNAS_SIGNALS: tuple[str, ...] = ("expressivity", "progressivity", "trainability", "flops")


def _column_ranks(column: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    x = np.asarray(column, dtype=np.float64)
    failed = np.isnan(x)
    if reference is None:
        n = len(x)
        out = np.full(n, 0.5 / max(n, 1))
        ok = ~failed
        if ok.any():
            # failed rows take the lowest ranks; valid rows ranks failed+1 .. n (ties: average)
            out[ok] = (rankdata(x[ok]) + failed.sum()) / n
            out[failed] = (failed.sum() + 1) / 2 / n
        return out
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    ref = ref[~np.isnan(ref)]
    r = len(ref)
    if r == 0:
        return np.full(len(x), 0.5)
    below = np.searchsorted(ref, np.where(failed, -np.inf, x), side="left")
    upto = np.searchsorted(ref, np.where(failed, -np.inf, x), side="right")
    u = (0.5 * (below + upto) + 0.5) / (r + 1)
    # beyond the reference's range the ranks keep falling/rising smoothly (in signed-log units),
    # so models larger or smaller than every reference architecture still keep their order
    edge = 0.5 / (r + 1)
    g, g_ref = _signed_log(x), _signed_log(ref)
    finite_ref = g_ref[np.isfinite(g_ref)]
    scale = max(float(np.subtract(*np.percentile(finite_ref, [75, 25]))) if finite_ref.size else 1.0, 1e-6)
    with np.errstate(invalid="ignore", over="ignore"):
        low = np.isfinite(g) & (g < g_ref[0]) if np.isfinite(g_ref[0]) else np.zeros(len(x), bool)
        high = np.isfinite(g) & (g > g_ref[-1]) if np.isfinite(g_ref[-1]) else np.zeros(len(x), bool)
        u[low] = edge * np.exp(-(g_ref[0] - g[low]) / scale)
        u[high] = 1.0 - edge * np.exp(-(g[high] - g_ref[-1]) / scale)
    u[np.isneginf(x)] = 0.5 * edge * 1e-6
    u[failed] = 0.25 * edge * 1e-6
    return np.clip(u, 1e-300, 1.0)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def signal_ranks(values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Normalised ranks in (0, 1] of each column of ``values`` (n rows, k signals).

    Args:
        values: one row per architecture; NaN marks a failed signal (ranked lowest).
        reference: ``None`` to rank within ``values`` (rank/n, AZ-NAS), or a sample of
            each signal (m rows, k columns; NaN entries ignored) to place every row against.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if reference is not None:
        reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
        if reference.shape[1] != values.shape[1]:
            raise ValueError(f"reference has {reference.shape[1]} signals, values {values.shape[1]}")
    return np.column_stack([
        _column_ranks(values[:, j], None if reference is None else reference[:, j]) for j in range(values.shape[1])
    ]) if values.shape[1] else np.zeros((values.shape[0], 0))


def log_rank_aggregate(ranks: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """``sum_j w_j log(rank_j)`` per row (AZ-NAS's non-linear aggregation; weights default to 1)."""
    ranks = np.atleast_2d(np.asarray(ranks, dtype=np.float64))
    w = np.ones(ranks.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    return (np.log(np.clip(ranks, 1e-12, 1.0)) * w).sum(axis=1)


def spectral_weights(ranks: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Label-free weights of the signals of a population (spectral meta-learner).

    If every signal is the true quality plus independent noise, the correlation matrix of
    the signals over the population is rank one off its diagonal: ``C[i, j] = a_i a_j``
    with ``a_i`` the (unknown) correlation of signal ``i`` with the truth (Parisi et al.,
    PNAS 2014). ``a`` is estimated from the off-diagonal entries of the rank correlation
    matrix (the diagonal is refilled with ``a_i^2`` until it settles) and turned into the
    weights ``a / (1 - a^2)`` of the optimal Gaussian combination; signals that disagree
    with the consensus (``a <= 0``) get weight 0. No measured accuracy is used: the weights
    adapt to each population (search space, task) on their own.
    """
    u = np.atleast_2d(np.asarray(ranks, dtype=np.float64))
    k = u.shape[1]
    if k == 0 or u.shape[0] < 3:
        return np.ones(k)
    std = u.std(axis=0)
    z = (u - u.mean(axis=0)) / np.where(std > 0, std, 1.0)
    c = np.nan_to_num(z.T @ z / u.shape[0])
    v = np.zeros(k)
    for _ in range(iterations):
        values, vectors = np.linalg.eigh(c)
        v = vectors[:, -1] * math.sqrt(max(values[-1], 0.0))
        np.fill_diagonal(c, v ** 2)
    if v.sum() < 0:
        v = -v
    a = np.clip(v, 0.0, 0.99)
    return a / (1.0 - a ** 2)


def aznas_score(signals: Mapping[str, Sequence[float]], names: Sequence[str] = AZNAS_SIGNALS) -> np.ndarray:
    """AZ-NAS score of a population: ``sum log(rank/N)`` over ``names`` (default: the four components)."""
    matrix = np.column_stack([np.asarray(signals[n], dtype=np.float64) for n in names])
    return log_rank_aggregate(signal_ranks(matrix))


def swap_regularised(swap: Sequence[float], params: Sequence[float], mu: float | None = None,
                     sigma: float | None = None) -> np.ndarray:
    """SWAP-Score times ``exp(-(P - mu)^2 / sigma)`` (parameters ``P`` in millions).

    ``mu`` defaults to the largest model of the population (so the factor penalises models
    much smaller than the largest candidates) and ``sigma`` to the population's variance of
    ``P``; pass them to target a model size.
    """
    s = np.asarray(swap, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64) / 1e6
    finite = p[np.isfinite(p)]
    if mu is None:
        mu = float(finite.max()) if finite.size else 0.0
    if sigma is None:
        sigma = float(finite.var()) if finite.size > 1 else 1.0
    sigma = sigma if sigma > 0 and math.isfinite(sigma) else 1.0
    return s * np.exp(-((p - mu) ** 2) / sigma)
