"""Search logic shared by the Optuna sampler and the NNI strategy.

One implementation of "which candidate runs next" for every front end:

    StudySurrogate     zero-shot predictor → study-specific surrogate (fine-tuned on results)
    select_candidate   drop candidates predicted below a quantile, maximise an acquisition
    acquisition_values UCB / expected improvement / mean
    candidates         random draws and local mutations over Optuna distributions
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
