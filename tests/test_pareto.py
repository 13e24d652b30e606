"""Pareto-aware candidate choice: fronts, hypervolume, EHVI / ParEGO selection, feasibility."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasassist_plugins.errors import SearchError
from nasassist_plugins.search.pareto import (
    hypervolume,
    pareto_mask,
    select_pareto_candidate,
    to_minimization,
)


def _brute_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Inclusion–exclusion over boxes (exact, exponential: small sets only)."""
    total = 0.0
    n = len(points)
    for r in range(1, n + 1):
        for subset in itertools.combinations(range(n), r):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (r + 1) * float(np.prod(np.clip(reference - corner, 0, None)))
    return total


def test_pareto_mask_keeps_non_dominated_and_duplicates():
    pts = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2], [6, 6]], dtype=float)
    assert pareto_mask(pts).tolist() == [True, True, True, False, True, False]
    assert pareto_mask(np.zeros((0, 2))).size == 0


def test_hypervolume_by_hand_2d_and_3d():
    assert hypervolume([[1, 5], [2, 2], [5, 1]], [6, 6]) == pytest.approx(5 * 1 + 4 * 3 + 1 * 1)
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == pytest.approx(6.0)
    # a point outside the reference box adds nothing
    assert hypervolume([[0.5, 0.5], [2.0, 0.1]], [1, 1]) == pytest.approx(0.25)
    with pytest.raises(SearchError, match="reference point"):
        hypervolume([[1, 2, 3]], [1, 2])


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(1, 7), st.integers(0, 10_000))
def test_hypervolume_matches_inclusion_exclusion(m, n, seed):
    rng = np.random.default_rng(seed)
    pts = rng.random((n, m))
    ref = np.full(m, 1.05)
    assert hypervolume(pts, ref) == pytest.approx(_brute_hypervolume(pts, ref), rel=1e-9, abs=1e-12)


def test_to_minimization_flips_maximised_objectives():
    out = to_minimization([[0.9, 3.0]], ["maximize", "minimize"])
    assert out.tolist() == [[-0.9, 3.0]]
    with pytest.raises(SearchError, match="direction"):
        to_minimization([[1.0]], ["up"])


@pytest.mark.parametrize("rule", ["ehvi", "parego"])
def test_chooses_the_candidate_that_extends_the_front(rule):
    # accuracy (max) x latency (min): candidate 1 dominates every observed point
    observed = np.array([[0.80, 5.0], [0.70, 3.0], [0.90, 9.0]])
    mean = np.array([[0.75, 6.0], [0.95, 2.0], [0.60, 8.0], [0.85, 9.5]])
    choice = select_pareto_candidate(mean, np.zeros_like(mean), directions=["maximize", "minimize"],
                                     observed=observed, rule=rule, rng=0)  # fmt: skip
    assert choice.index == 1
    assert choice.acquisition > 0
    assert choice.rule == rule


def test_infeasible_candidates_are_never_chosen():
    observed = np.array([[0.80, 5.0]])
    mean = np.array([[0.99, 1.0], [0.81, 4.0], [0.50, 9.0]])
    choice = select_pareto_candidate(mean, directions=["maximize", "minimize"], observed=observed,
                                     feasible=[False, True, True])  # fmt: skip
    assert choice.index == 1
    assert choice.n_feasible == 2
    assert choice.order[0] == 1 and sorted(choice.order) == [1, 2]  # fallbacks: feasible ones only
    with pytest.raises(SearchError, match="feasible"):
        select_pareto_candidate(mean, directions=["maximize", "minimize"], feasible=[False] * 3)


def test_uncertainty_counts_when_means_tie():
    observed = np.array([[0.8, 3.0], [0.6, 2.0]])
    mean = np.array([[0.7, 4.0], [0.7, 4.0]])
    std = np.array([[0.0, 0.0], [0.1, 0.5]])
    # a dominated mean: only the uncertain candidate has a chance to improve the front
    choice = select_pareto_candidate(mean, std, directions=["maximize", "minimize"], observed=observed, rng=1)
    assert choice.index == 1


def test_exclude_and_empty_observations():
    mean = np.array([[0.9, 3.0], [0.5, 1.0]])
    choice = select_pareto_candidate(mean, directions=["maximize", "minimize"], exclude=[True, False])
    assert choice.index == 1
    # excluding everything is ignored rather than failing
    assert select_pareto_candidate(mean, directions=["maximize", "minimize"], exclude=[True, True]).index in (0, 1)


def test_three_objectives_mixed_directions():
    rng = np.random.RandomState(0)
    observed = rng.rand(12, 3)
    mean = rng.rand(200, 3) * 0.8 + 0.1
    mean[17] = [1.5, -0.5, -0.5]  # maximise the first, minimise the others: dominates everything
    choice = select_pareto_candidate(mean, np.full_like(mean, 0.01), directions=["maximize", "minimize", "minimize"],
                                     observed=observed, rng=0)  # fmt: skip
    assert choice.index == 17


def test_parego_draws_reproducible_weights():
    mean = np.random.RandomState(1).rand(30, 2)
    a = select_pareto_candidate(mean, directions=["minimize", "minimize"], rule="parego", rng=5, observed=mean[:3])
    b = select_pareto_candidate(mean, directions=["minimize", "minimize"], rule="parego", rng=5, observed=mean[:3])
    assert a == b and a.weights is not None and sum(a.weights) == pytest.approx(1.0)


def test_bad_arguments_are_clear():
    with pytest.raises(SearchError, match="rule"):
        select_pareto_candidate([[1.0, 2.0]], directions=["minimize", "minimize"], rule="nsga")
    with pytest.raises(SearchError, match="2 directions given for 3 objectives"):
        select_pareto_candidate([[1.0, 2.0, 3.0]], directions=["minimize", "minimize"])
    with pytest.raises(SearchError, match="std has shape"):
        select_pareto_candidate([[1.0, 2.0]], [[1.0]], directions=["minimize", "minimize"])
