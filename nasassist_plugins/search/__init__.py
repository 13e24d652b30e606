"""Search logic shared by the Optuna sampler and the NNI strategy and tuner.

One implementation of "which candidate runs next" for every front end:

    PlannerConfig        the planner's settings (one name and default per concept)
    planner.Planner      candidate pool → two-stage scores → ranked decision
    decision.Decision    what a decision returns: the choice and its ranked fallbacks
    StudySurrogate       zero-shot predictor → study-specific surrogate (the one cache)
    rank_candidates      the decision step: quantile filter + acquisition ranking
    select_candidate     the first of that ranking
    acquisition_values   UCB / expected improvement / mean
    source.CandidateSource, source.to_graph   how a front end builds candidates; built → graph
    scoring              the stage-1 (graphs) and stage-2 (models) zero-shot scoring calls
    sample_value, mutate_value, params_key   draws, mutations and keys over Optuna distributions
    space.SearchSpace    a space as Optuna distributions (+ mutables without an equivalent)
    SearchError          no usable candidate, bad search input (a ValueError)

Importing this package is light (no PyTorch model code, no torch_geometric):
:class:`StudySurrogate` and the planner load the predictor on first use.
"""

from typing import Any

from nasassist_plugins.errors import SearchError
from nasassist_plugins.search.acquisition import (
    ACQUISITIONS,
    Ranking,
    Selection,
    acquisition_values,
    check_acquisition,
    check_quantile,
    rank_candidates,
    select_candidate,
)
from nasassist_plugins.search.candidates import mutate_value, params_key, sample_value
from nasassist_plugins.search.config import PlannerConfig

__all__ = [
    "ACQUISITIONS",
    "PlannerConfig",
    "Ranking",
    "SearchError",
    "Selection",
    "StudySurrogate",
    "acquisition_values",
    "check_acquisition",
    "check_quantile",
    "mutate_value",
    "params_key",
    "rank_candidates",
    "sample_value",
    "select_candidate",
]


def __getattr__(name: str) -> Any:
    if name == "StudySurrogate":
        from nasassist_plugins.search.surrogate import StudySurrogate

        return StudySurrogate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
