"""Pareto-aware choice among candidates: which architecture to run next in a multi-objective study.

Pure functions on arrays, shared by the Optuna sampler and the NNI strategy:

    pareto_mask            which points are non-dominated
    hypervolume            exact dominated hypervolume (2-D sweep, n-D slicing)
    to_minimization        flip maximised objectives so that smaller is better everywhere
    select_pareto_candidate  the candidate to run: feasible candidates only, then maximise
                           expected hypervolume improvement (``"ehvi"``) or the expected
                           improvement of a random augmented-Chebyshev scalarisation drawn
                           for this decision (``"parego"``)

Each candidate comes with a predicted mean and standard deviation per objective (a
standard deviation of 0 for exact objectives such as parameters or FLOPs). Both rules
integrate the uncertainty by Monte Carlo with common random numbers, so candidates are
compared on the same draws.

Example::

    import numpy as np
    from nasassist_plugins.search.pareto import select_pareto_candidate

    mean = np.array([[0.90, 5.0], [0.80, 2.0], [0.70, 9.0]])   # accuracy, latency (ms)
    std = np.array([[0.02, 0.0], [0.02, 0.0], [0.02, 0.0]])
    observed = np.array([[0.85, 6.0], [0.60, 1.0]])
    choice = select_pareto_candidate(mean, std, directions=["maximize", "minimize"], observed=observed)
    print(choice.index, choice.acquisition)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from nasassist_plugins.errors import SearchError

__all__ = [
    "PARETO_RULES",
    "ParetoSelection",
    "hypervolume",
    "pareto_mask",
    "select_pareto_candidate",
    "to_minimization",
]

#: Multi-objective acquisition rules.
PARETO_RULES = ("ehvi", "parego")

_MC_POINTS = 2048  # Monte Carlo points of the non-dominated region (3+ objectives)
_SHORTLIST = 32  # candidates whose expected improvement is integrated by Monte Carlo (3+ objectives)


# ----------------------------------------------------------------------------- basics
def _direction_signs(directions: Sequence[Any], m: int) -> np.ndarray:
    if len(directions) != m:
        raise SearchError(f"{len(directions)} directions given for {m} objectives")
    signs = []
    for d in directions:
        name = str(getattr(d, "name", d)).lower()
        if name in ("maximize", "maximise", "max"):
            signs.append(-1.0)
        elif name in ("minimize", "minimise", "min"):
            signs.append(1.0)
        else:
            raise SearchError(f"a direction must be 'minimize' or 'maximize', got {d!r}")
    return np.asarray(signs)


def to_minimization(values: Any, directions: Sequence[Any]) -> np.ndarray:
    """``values`` (n × m) with maximised objectives negated, so that smaller is better."""
    arr = np.atleast_2d(np.asarray(values, dtype=np.float64))
    return arr * _direction_signs(directions, arr.shape[1])


def pareto_mask(points: Any) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n × m, minimisation).

    Duplicated non-dominated points are all kept.
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    n = pts.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    keep = np.ones(n, dtype=bool)
    order = np.lexsort(pts.T[::-1])  # by first objective, ties by the next ones
    front: list[int] = []
    for i in order:
        p = pts[i]
        if front:
            f = pts[front]
            if np.any(np.all(f <= p, axis=1) & np.any(f < p, axis=1)):
                keep[i] = False
                continue
        front.append(int(i))
    return keep


def _hv2d(points: np.ndarray, reference: np.ndarray) -> float:
    pts = points[np.all(points < reference, axis=1)]
    if pts.size == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    volume, best_y = 0.0, reference[1]
    for x, y in pts:
        if y < best_y:
            volume += (reference[0] - x) * (best_y - y)
            best_y = y
    return float(volume)


def _hv(points: np.ndarray, reference: np.ndarray) -> float:
    m = points.shape[1]
    pts = points[np.all(points < reference, axis=1)]
    if pts.size == 0:
        return 0.0
    if m == 1:
        return float(reference[0] - pts[:, 0].min())
    if m == 2:
        return _hv2d(pts, reference)
    pts = pts[pareto_mask(pts)]
    # slice along the last objective: between consecutive levels the dominated set is the
    # (m-1)-dimensional hypervolume of the points at or below that level
    order = np.argsort(pts[:, -1])
    pts = pts[order]
    levels = np.append(pts[:, -1], reference[-1])
    volume = 0.0
    for k in range(len(pts)):
        height = levels[k + 1] - levels[k]
        if height > 0:
            volume += height * _hv(pts[: k + 1, :-1], reference[:-1])
    return float(volume)


def hypervolume(points: Any, reference: Any) -> float:
    """Exact hypervolume dominated by ``points`` (n × m, minimisation) up to ``reference``.

    Points not strictly better than the reference in every objective add nothing.
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if pts.size == 0:
        return 0.0
    if pts.shape[1] != ref.size:
        raise SearchError(f"points have {pts.shape[1]} objectives but the reference point has {ref.size}")
    if not np.all(np.isfinite(pts)) or not np.all(np.isfinite(ref)):
        raise SearchError("hypervolume needs finite points and a finite reference point")
    return _hv(pts, ref)


# ----------------------------------------------------------------------------- improvement
def _hvi_2d(samples: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Exact hypervolume improvement of each row of ``samples`` (… × 2) over ``front``."""
    a = np.minimum(samples[..., 0], reference[0])
    b = np.minimum(samples[..., 1], reference[1])
    if front.size:
        front = front[np.all(front < reference, axis=1)]
    if front.size:
        front = front[pareto_mask(front)]
        front = front[np.argsort(front[:, 0])]
    # staircase of the dominated region: for x in [x_j, x_{j+1}) everything above s_j is dominated
    xs = np.concatenate(([-np.inf], front[:, 0] if front.size else [], [reference[0]]))
    ys = np.concatenate(([reference[1]], np.minimum(front[:, 1], reference[1]) if front.size else []))
    left = np.maximum(xs[:-1], a[..., None])
    width = np.clip(xs[1:] - left, 0.0, None)
    height = np.clip(ys - b[..., None], 0.0, None)
    return np.sum(width * height, axis=-1)


def _hvi_mc(samples: np.ndarray, front: np.ndarray, reference: np.ndarray, lower: np.ndarray,
            rng: np.random.RandomState) -> np.ndarray:
    """Monte Carlo hypervolume improvement (3+ objectives): the share of uniform points of the box
    ``[lower, reference]`` that are not dominated by ``front`` but are dominated by each sample."""
    m = reference.size
    lower = np.minimum(lower, reference - 1e-12)
    box = float(np.prod(reference - lower))
    u = lower + rng.random_sample((_MC_POINTS * 4, m)) * (reference - lower)
    if front.size:
        dominated = np.zeros(len(u), dtype=bool)
        for f in front:
            dominated |= np.all(u >= f, axis=1)
        free = u[~dominated]
    else:
        free = u
    if free.shape[0] == 0:
        return np.zeros(samples.shape[:-1])
    weight = box * free.shape[0] / u.shape[0] / min(free.shape[0], _MC_POINTS)
    free = free[:_MC_POINTS]
    flat = samples.reshape(-1, m)
    out = np.empty(flat.shape[0])
    for start in range(0, flat.shape[0], 256):
        chunk = flat[start : start + 256]
        out[start : start + 256] = np.all(chunk[:, None, :] <= free[None, :, :], axis=2).sum(axis=1) * weight
    return out.reshape(samples.shape[:-1])


@dataclass(frozen=True)
class ParetoSelection:
    """The candidate chosen by :func:`select_pareto_candidate` and why.

    Attributes:
        index: position of the chosen candidate.
        acquisition: its acquisition value (expected hypervolume improvement in normalised
            units, or the expected improvement of the drawn scalarisation).
        rule: ``"ehvi"`` or ``"parego"``.
        n_feasible: candidates predicted feasible (the only ones that can be chosen).
        weights: the scalarisation weights drawn for this decision (``"parego"`` only).
        order: every eligible candidate, best acquisition first (``index`` is ``order[0]``),
            for a front end that falls back when its first choice was taken meanwhile.
    """

    index: int
    acquisition: float
    rule: str
    n_feasible: int
    weights: tuple[float, ...] | None = None
    order: tuple[int, ...] = ()


def select_pareto_candidate(
    mean: Any,
    std: Any = None,
    *,
    directions: Sequence[Any],
    observed: Any = None,
    feasible: Sequence[bool] | None = None,
    p_feasible: Sequence[float] | None = None,
    exclude: Sequence[bool] | None = None,
    rule: str = "ehvi",
    n_samples: int = 64,
    rho: float = 0.05,
    rng: np.random.RandomState | int | None = None,
) -> ParetoSelection:
    """Pick the candidate that most improves the observed Pareto front.

    Args:
        mean, std: predicted objective values of the pool (n × m; ``std`` defaults to 0,
            i.e. exact objectives), in the study's own units and directions.
        directions: ``"maximize"`` / ``"minimize"`` (or ``StudyDirection``) per objective.
        observed: objective values of finished, feasible trials (k × m; may be empty).
        feasible: ``False`` for candidates predicted to violate a constraint or budget:
            they are never chosen. If none is feasible, :class:`SearchError` is raised.
        p_feasible: probability that each candidate is feasible (multiplies the acquisition).
        exclude: ``True`` for candidates not to choose (duplicates); ignored when it would
            exclude every feasible candidate.
        rule: ``"ehvi"`` (expected hypervolume improvement; exact in 2-D, Monte Carlo
            volume in 3+ dimensions) or ``"parego"`` (a random augmented Chebyshev
            scalarisation per decision, Knowles 2006, maximising its expected improvement).
        n_samples: Monte Carlo draws from the predictive distribution (default 64).
        rho: weight of the linear term of the augmented Chebyshev scalarisation.
        rng: random state (scalarisation weights, draws).

    Objectives are normalised by the range of the observed values and predicted means
    together; the reference point lies 10 % of that range beyond the worst value of each
    objective, so candidates that extend the front at its ends still score.
    """
    if rule not in PARETO_RULES:
        raise SearchError(f"rule must be one of {', '.join(PARETO_RULES)}, got {rule!r}")
    mu = np.atleast_2d(np.asarray(mean, dtype=np.float64))
    n, m = mu.shape
    if n == 0 or m == 0:
        raise SearchError("select_pareto_candidate needs a non-empty (candidates × objectives) array of means")
    sd = np.zeros_like(mu) if std is None else np.nan_to_num(np.atleast_2d(np.asarray(std, dtype=np.float64)), nan=0.0)
    if sd.shape != mu.shape:
        raise SearchError(f"std has shape {sd.shape}, mean has {mu.shape}")
    signs = _direction_signs(directions, m)
    obs = np.zeros((0, m)) if observed is None else np.asarray(observed, dtype=np.float64).reshape(-1, m)
    obs = obs[np.all(np.isfinite(obs), axis=1)]
    rng = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)

    eligible = np.all(np.isfinite(mu), axis=1)
    if feasible is not None:
        eligible &= np.asarray(feasible, dtype=bool)
    n_feasible = int(eligible.sum())
    if n_feasible == 0:
        raise SearchError(f"none of the {n} candidates is predicted feasible (constraints and budgets) with finite objectives")
    if exclude is not None:
        keep = eligible & ~np.asarray(exclude, dtype=bool)
        eligible = keep if keep.any() else eligible

    # normalised minimisation space
    y_mu = mu * signs
    y_obs = obs * signs
    both = np.vstack([y_obs, y_mu[eligible]])
    lo, hi = both.min(axis=0), both.max(axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    y_mu = (y_mu - lo) / span
    y_sd = sd / span
    y_obs = (y_obs - lo) / span
    reference = np.full(m, 1.1)
    idx = np.flatnonzero(eligible)
    z = rng.standard_normal((n_samples, m))  # common random numbers for every candidate
    samples = y_mu[idx][:, None, :] + y_sd[idx][:, None, :] * z[None, :, :]  # (candidates, draws, m)

    weights = None
    if rule == "ehvi":
        front = y_obs[pareto_mask(y_obs)] if len(y_obs) else np.zeros((0, m))
        if m == 2:
            improvement = _hvi_2d(samples, front, reference)
        else:
            lower = np.minimum(samples.reshape(-1, m).min(axis=0), 0.0)
            # Monte Carlo volumes are costly: shortlist by the improvement of the optimistic point
            optimistic = _hvi_mc((y_mu[idx] - y_sd[idx])[:, None, :], front, reference, lower, rng)[:, 0]
            short = np.argsort(-optimistic, kind="stable")[:_SHORTLIST]
            improvement = np.zeros(samples.shape[:2])
            improvement[short] = _hvi_mc(samples[short], front, reference, lower, rng)
        acq = improvement.mean(axis=1)
    else:
        w = rng.dirichlet(np.ones(m))
        weights = tuple(float(v) for v in w)

        def scalarise(y: np.ndarray) -> np.ndarray:
            return np.max(w * y, axis=-1) + rho * np.sum(w * y, axis=-1)

        best = float(scalarise(y_obs).min()) if len(y_obs) else None
        s = scalarise(samples)  # (candidates, draws)
        acq = np.maximum(best - s, 0.0).mean(axis=1) if best is not None else -s.mean(axis=1)
    if p_feasible is not None:
        acq = acq * np.clip(np.asarray(p_feasible, dtype=np.float64)[idx], 0.0, 1.0)
    # nothing improves in expectation (or to break ties among zeros): the candidate closest to
    # the front, i.e. with the smallest additive epsilon that would make its mean non-dominated
    if len(y_obs):
        gap = np.max(y_mu[idx][:, None, :] - y_obs[None, :, :], axis=2).min(axis=1)
    else:
        gap = np.max(y_mu[idx], axis=1)
    ranked = np.lexsort((gap, -acq))  # by acquisition, then by closeness to the front
    pick = int(ranked[0])
    return ParetoSelection(
        index=int(idx[pick]), acquisition=float(acq[pick]), rule=rule, n_feasible=n_feasible, weights=weights,
        order=tuple(int(idx[i]) for i in ranked),
    )
