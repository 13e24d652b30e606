"""Search logic shared by the Optuna sampler and the NNI strategy.

One implementation of "which candidate runs next" for every front end:

    planner.Planner    candidate pool → scored decision (the loop every front end calls)
    StudySurrogate     zero-shot predictor → study-specific surrogate (fine-tuned on results)
    select_candidate   drop candidates predicted below a quantile, maximise an acquisition
    acquisition_values UCB / expected improvement / mean
    sample_value, mutate_value, params_key   draws, mutations and keys over Optuna distributions
    space.SearchSpace  a space as Optuna distributions (+ mutables without an equivalent)
    SearchError        bad search configuration (a ValueError)
"""

from nasassist_plugins.search.acquisition import (
    ACQUISITIONS,
    SearchError,
    Selection,
    acquisition_values,
    check_acquisition,
    check_quantile,
    select_candidate,
)
from nasassist_plugins.search.candidates import mutate_value, params_key, sample_value
from nasassist_plugins.search.surrogate import StudySurrogate

__all__ = [
    "ACQUISITIONS",
    "SearchError",
    "Selection",
    "StudySurrogate",
    "acquisition_values",
    "check_acquisition",
    "check_quantile",
    "mutate_value",
    "params_key",
    "sample_value",
    "select_candidate",
]
