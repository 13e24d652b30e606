"""A prior over learning curves, for training the curve PFN (:mod:`nasassist_plugins.curves.pfn`).

LC-PFN (Adriaensen et al., NeurIPS 2023) trains a transformer only on curves drawn from a
parametric prior (a weighted sum of pow3, ilog2 and janoschek curves with Gaussian noise,
``log(sigma) ~ N(-4, 1)``, increasing and inside [0, 1]). Real training curves do things that
prior never shows, and the real curve sets of this project (``nasassist_plugins.data``) have all
of them: the jump when a cosine or step schedule lowers the learning rate, warm-up, noise that
is large while the learning rate is large, a late decline (over-fitting), a flat start, and
runs that diverge. This prior keeps LC-PFN's idea (mixtures of the parametric families of
:data:`~nasassist_plugins.curves.models.CURVE_MODELS`) and adds those effects:

1. **Schedule.** A learning-rate multiplier ``s(t)`` over normalised time ``t`` in (0, 1]:
   constant, cosine (to zero), step (one to three drops by 0.1-0.5), linear decay or
   exponential decay, optionally after a linear warm-up. Training *progress* is the integral
   of ``s``: ``tau(t) = int_0^t s / int_0^1 s``, optionally delayed (a flat start).
2. **Shape.** The value a run would reach with the learning rate annealed at progress ``tau``
   is a mixture of two families of ``CURVE_MODELS`` (pow4, pow3, janoschek, weibull, mmf,
   ilog2, exp4, log_power), each written as ``y_inf - (y_inf - y0) * g(r * tau)`` with a
   random rate ``r`` (from barely started to converged in the first percent of the run).
3. **Learning-rate gap.** While the learning rate is high a run sits below that value:
   ``y(t) = shape(tau(t)) - A * s(t)`` (after the first few percent of progress). With a
   constant schedule the gap never closes; cosine and step schedules close it, which is the
   late jump.
4. **Over-fitting** (a late quadratic decline) and **divergence** (the run collapses to chance
   level at a random time and stays there) with small probabilities.
5. **Noise**: a floor plus a part proportional to the learning rate and to the distance from
   convergence, AR(1)-correlated from one report to the next, with occasional bad epochs.

Values are in maximisation units on [0, 1] (``upper bound 1``): chance level ``y0``, final
plateau ``y_inf`` drawn so that the headroom ``1 - y_inf`` is log-uniform (accuracies close to
100 % are common). Whether the metric's bound is *known* to the model is a separate flag
(:class:`CurveBatch.bounded`): without it the curve is scale-free (a loss of unknown minimum).

Everything is vectorised numpy: :func:`sample_curves` draws thousands of curves per
millisecond-scale call, so the PFN trains on fresh draws at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasassist_plugins.curves.models import CURVE_MODELS

__all__ = ["CurveBatch", "SCHEDULES", "SHAPES", "sample_curves", "sample_report_steps"]

SCHEDULES = ("constant", "cosine", "step", "linear", "exponential")
_SCHEDULE_P = np.array([0.35, 0.3, 0.2, 0.1, 0.05])
SHAPES = ("pow4", "pow3", "janoschek", "weibull", "mmf", "ilog2", "exp4", "log_power")
_GRID = 256  # resolution of the schedule integral


@dataclass(frozen=True)
class CurveBatch:
    """Curves drawn from the prior, observed at ``t`` (normalised steps, last one = 1).

    Attributes:
        t: ``(B, L)`` report positions in (0, 1], increasing along each row up to ``length``.
        y: ``(B, L)`` observed (noisy) values, maximisation units in [0, 1].
        clean: ``(B, L)`` the same curves without observation noise.
        length: ``(B,)`` number of valid reports per row (the rest is padding).
        bounded: ``(B,)`` whether the model is told the upper bound 1.
        schedule: ``(B,)`` index into :data:`SCHEDULES`.
        diverged: ``(B,)`` whether the run collapses.
    """

    t: np.ndarray
    y: np.ndarray
    clean: np.ndarray
    length: np.ndarray
    bounded: np.ndarray
    schedule: np.ndarray
    diverged: np.ndarray


def sample_report_steps(rng: np.random.Generator, n: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Where runs report: ``(t, length)`` with ``t`` of shape ``(n, max_len)``, last valid entry 1.

    Three patterns: every step of ``L`` (log-uniform in [4, 100] steps, thinned to ``max_len``
    evenly spaced reports when longer), a geometric ladder (factor 2-4, like NB101's 4/12/36/108
    epochs or Hyperband's rungs), and a random subset of the steps.
    """
    t = np.ones((n, max_len))
    length = np.empty(n, dtype=np.int64)
    kind = rng.choice(3, size=n, p=[0.7, 0.12, 0.18])
    total = np.exp(rng.uniform(np.log(4), np.log(100), size=n)).astype(int)
    for i in range(n):
        steps_total = max(int(total[i]), 3)
        if kind[i] == 0:
            k = min(steps_total, max_len)
            pos = np.round(np.linspace(1, steps_total, k)) / steps_total
        elif kind[i] == 1:
            eta = rng.uniform(2.0, 4.0)
            k = int(rng.integers(3, 9))
            pos = eta ** -np.arange(k - 1, -1, -1.0)
        else:
            k = int(rng.integers(3, min(steps_total, max_len) + 1))
            pos = np.sort(rng.choice(np.arange(1, steps_total), size=k - 1, replace=False)) / steps_total
            pos = np.append(pos, 1.0)
        pos = np.unique(np.clip(pos, 1e-4, 1.0))
        length[i] = len(pos)
        t[i, : len(pos)] = pos
        t[i, len(pos) :] = 1.0
    return t, length


def _schedule(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Learning-rate multipliers on a regular grid ``(n, _GRID)`` and the schedule kinds."""
    u = (np.arange(_GRID) + 0.5) / _GRID
    kind = rng.choice(len(SCHEDULES), size=n, p=_SCHEDULE_P)
    s = np.ones((n, _GRID))
    cos = 0.5 * (1 + np.cos(np.pi * u))
    s = np.where((kind == 1)[:, None], cos, s)
    # step: 1-3 milestones in (0.3, 0.95), each multiplying by gamma
    n_mile = rng.integers(1, 4, size=n)
    miles = np.sort(rng.uniform(0.3, 0.95, size=(n, 3)), axis=1)
    gamma = rng.choice([0.1, 0.2, 0.5], size=n)
    passed = np.zeros((n, _GRID))
    for j in range(3):
        passed += ((u[None, :] >= miles[:, j : j + 1]) & (j < n_mile)[:, None])
    s = np.where((kind == 2)[:, None], gamma[:, None] ** passed, s)
    floor = rng.uniform(0.0, 0.2, size=n)[:, None]
    s = np.where((kind == 3)[:, None], 1 - (1 - floor) * u[None, :], s)
    decay = rng.uniform(1.0, 5.0, size=n)[:, None]
    s = np.where((kind == 4)[:, None], np.exp(-decay * u[None, :]), s)
    warm = np.where(rng.random(n) < 0.3, rng.uniform(0.01, 0.12, size=n), 0.0)[:, None]
    s = np.where(u[None, :] < warm, s * (u[None, :] / np.maximum(warm, 1e-9)), s)
    return np.maximum(s, 0.0), kind


def _interp_rows(grid_values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation of values given at the cell centres of a regular grid."""
    g = grid_values.shape[1]
    pos = np.clip(t * g - 0.5, 0.0, g - 1.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, g - 1)
    frac = pos - lo
    rows = np.arange(grid_values.shape[0])[:, None]
    return grid_values[rows, lo] * (1 - frac) + grid_values[rows, hi] * frac


def _remaining(shape: np.ndarray, x: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Fraction of the rise still to come, ``g(x)`` with ``g(0) = 1``, through ``CURVE_MODELS``.

    Each family is evaluated as ``model(x', *theta)`` with ``y0 = 0`` and plateau 1, so
    ``g = 1 - model``; ``p1`` (in [0, 1]) and ``p2`` (in [0, 1]) pick the shape parameters.
    """
    out = np.empty_like(x)
    m = CURVE_MODELS
    for k, name in enumerate(SHAPES):
        rows = shape == k
        if not rows.any():
            continue
        xx, a, b = x[rows], p1[rows][:, None], p2[rows][:, None]
        if name == "pow4":  # c - g (s x' + 1 - s)^-alpha at x' = 1 + x: gap g = 1 at x = 0
            v = m["pow4"](1.0 + xx, 1.0, 1.0, 0.1 + 0.9 * b, 0.3 + 2.7 * a)
        elif name == "pow3":  # c - a x'^-alpha at x' = 1 + x
            v = m["pow3"](1.0 + xx, 1.0, 1.0, 0.2 + 1.8 * a)
        elif name == "janoschek":
            v = m["janoschek"](xx, 1.0, 0.0, 1.0, 0.5 + 1.5 * a)
        elif name == "weibull":
            v = m["weibull"](xx, 1.0, 0.0, 1.0, 0.6 + 2.4 * a)
        elif name == "mmf":
            v = m["mmf"](xx, 1.0, 0.0, 1.0, 0.5 + 2.5 * a)
        elif name == "ilog2":  # c - a / log(x' + 1) at x' = 1 + x, a = log 2: gap 1 at x = 0
            v = m["ilog2"](1.0 + xx, 1.0, np.log(2.0))
        elif name == "exp4":  # c - exp(-a x'^alpha + b) at x' = 1 + x, a = b = 1: gap 1 at x = 0
            v = m["exp4"](1.0 + xx, 1.0, 1.0, 1.0, 0.5 + 1.5 * a)
        else:  # log_power: a / (1 + (x / e^b)^c), c < 0, rises from 0 to a = 1
            v = m["log_power"](np.maximum(xx, 1e-12), 1.0, 2.0 * b - 1.0, -(0.5 + 2.0 * a))
        out[rows] = 1.0 - v
    return np.clip(out, 0.0, 1.0)


def sample_curves(
    rng: np.random.Generator,
    n: int,
    max_len: int = 48,
    *,
    t: np.ndarray | None = None,
    length: np.ndarray | None = None,
) -> CurveBatch:
    """Draw ``n`` curves from the prior, observed at ``t`` (drawn by :func:`sample_report_steps` if ``None``)."""
    if t is None:
        t, length = sample_report_steps(rng, n, max_len)
    assert length is not None
    lr, kind = _schedule(rng, n)
    cum = np.cumsum(lr, axis=1)
    cum = cum / np.maximum(cum[:, -1:], 1e-12)
    tau = _interp_rows(cum, t)
    delay = np.where(rng.random(n) < 0.15, rng.uniform(0.02, 0.3, size=n), 0.0)[:, None]
    tau = np.maximum(tau - delay, 0.0) / (1.0 - delay)
    s_t = _interp_rows(lr, t)

    # plateau, start, rate
    headroom = np.exp(rng.uniform(np.log(0.002), np.log(0.9), size=n))
    y_inf = 1.0 - headroom
    y0 = y_inf * rng.uniform(0.0, 0.9, size=n) ** 1.5
    rate = np.exp(rng.uniform(np.log(0.3), np.log(300.0), size=n))
    shape_a = rng.integers(0, len(SHAPES), size=n)
    shape_b = rng.integers(0, len(SHAPES), size=n)
    w = np.where(rng.random(n) < 0.5, 1.0, rng.uniform(0.2, 0.8, size=n))
    x = rate[:, None] * tau
    g = w[:, None] * _remaining(shape_a, x, rng.random(n), rng.random(n)) + (1 - w[:, None]) * _remaining(
        shape_b, x * np.exp(rng.normal(0, 0.7, size=n))[:, None], rng.random(n), rng.random(n)
    )
    span = (y_inf - y0)[:, None]
    clean = y_inf[:, None] - span * g

    # learning-rate gap: a run below its annealed value while the learning rate is high
    gap = np.where(rng.random(n) < 0.8, rng.uniform(0.0, 0.6, size=n) ** 1.5, 0.0) * (headroom + 0.3 * (y_inf - y0))
    gap = np.minimum(gap, 0.8 * (y_inf - y0))
    onset = np.clip(tau / 0.05, 0.0, 1.0)
    clean = clean - gap[:, None] * s_t * onset

    # over-fitting: a late decline after progress tau_o
    over = np.where(rng.random(n) < 0.2, rng.uniform(0.0, 0.5, size=n) * (y_inf - y0) * 0.2, 0.0)
    tau_o = rng.uniform(0.2, 0.9, size=n)
    clean = clean - over[:, None] * (np.maximum(tau - tau_o[:, None], 0.0) / (1 - tau_o[:, None])) ** 2

    # divergence: collapse to (below) chance level from a random time on
    diverged = rng.random(n) < 0.05
    t_div = rng.uniform(0.05, 1.0, size=n)
    collapsed = (t >= t_div[:, None]) & diverged[:, None]
    chance = y0 * rng.uniform(0.5, 1.0, size=n)
    clean = np.where(collapsed, chance[:, None], clean)

    # noise: floor + learning-rate and distance-to-convergence part, AR(1), bad epochs
    floor = np.exp(rng.uniform(np.log(2e-4), np.log(0.02), size=n)) * np.maximum(y_inf - y0, 0.05)
    lr_noise = np.exp(rng.uniform(np.log(1e-3), np.log(0.15), size=n)) * (y_inf - y0)
    distance = np.clip(g, 0.0, 1.0) ** 0.5
    sigma = floor[:, None] + lr_noise[:, None] * np.maximum(s_t, 0.05) * distance
    rho = rng.uniform(0.0, 0.8, size=n)[:, None]
    eps = rng.standard_normal(t.shape)
    ar = np.empty_like(eps)
    ar[:, 0] = eps[:, 0]
    for j in range(1, t.shape[1]):
        ar[:, j] = rho[:, 0] * ar[:, j - 1] + np.sqrt(1 - rho[:, 0] ** 2) * eps[:, j]
    noisy = clean + sigma * ar
    bad = rng.random(t.shape) < np.where(rng.random(n) < 0.3, 0.05, 0.0)[:, None]
    noisy = noisy - bad * rng.uniform(0.0, 0.3, size=t.shape) * (y_inf - y0)[:, None]
    noisy = np.clip(noisy, 0.0, 1.0)
    clean = np.clip(clean, 0.0, 1.0)
    bounded = rng.random(n) < 0.7
    return CurveBatch(t=t, y=noisy, clean=clean, length=length, bounded=bounded, schedule=kind, diverged=diverged)
