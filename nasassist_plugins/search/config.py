"""One configuration for the planner, shared by the Optuna sampler, the NNI strategy and the NNI tuner.

Every front end takes a :class:`PlannerConfig` (``config=``), so a setting has one name,
one default and one validation everywhere. How the names map onto Optuna's own terms:

=========================  ==================================================================
``PlannerConfig``          closest Optuna / NNI term
=========================  ==================================================================
``max_candidates``         ``n_ei_candidates`` of ``TPESampler`` (candidates scored per trial)
``min_candidates``         —  (the pool never shrinks below it, even over the time budget)
``max_plan_seconds``       —  (wall-clock budget of one decision; default: a fraction of the
                           median trial duration, ``plan_time_fraction``)
``shortlist_size``         —  (candidates re-scored by the full zero-shot score, stage 2)
``prune_quantile``         ``percentile`` of ``PercentilePruner``, applied *before* training
``acquisition``, ``kappa`` the acquisition of ``GPSampler`` / BoTorch (``"ucb"``: mean + kappa·std)
``population_size``        ``population_size`` of ``NSGAIISampler`` and NNI's RegularizedEvolution
``tournament_size``        ``sample_size`` of NNI's RegularizedEvolution
``mutation_fraction``      —  (share of the pool made of mutations of the population)
``n_exploration_trials``   ``n_startup_trials`` of ``TPESampler`` / ``GPSampler``, except that
                           these trials are still drawn from the pruned pool, not at random
``fine_tune*``             —  (refits of the study-specific surrogate)
=========================  ==================================================================

``NASAssistSampler`` keeps Optuna's own ``n_startup_trials`` (trials left entirely to the
base sampler) as a sampler argument: it is not a planner setting.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from nasassist_plugins.errors import ConfigurationError, SearchError
from nasassist_plugins.validation import check_integer, check_number

__all__ = ["ACQUISITIONS", "FINE_TUNE_MODES", "PlannerConfig"]

ACQUISITIONS = ("ucb", "ei", "mean")
FINE_TUNE_MODES = ("gp", "moe")


@dataclass(frozen=True, kw_only=True)
class PlannerConfig:
    """Settings of the candidate planner (validated once, here).

    Args:
        max_candidates: the most candidates scored for one decision (stage 1). Default 1000.
        min_candidates: the pool is never smaller than this, whatever the time budget.
            Default 16.
        max_plan_seconds: wall-clock budget of one decision; the pool grows from
            ``min_candidates`` towards ``max_candidates`` until it is spent. ``None``
            (default): ``plan_time_fraction`` of the median duration of the finished
            trials (``min_candidates`` until a trial has finished).
        plan_time_fraction: see ``max_plan_seconds``. Default 0.02 (2 % of a trial).
        shortlist_size: the best candidates of stage 1 re-scored by the predictor on the
            built *models* (stage 2, where training-free proxies can join the score);
            ``0`` skips stage 2. Default 8.
        prune_quantile: candidates predicted below this quantile of the pool are never
            run (``None`` or ``0`` disables the filter). Default 0.5.
        acquisition: ``"ucb"`` (mean + kappa·std, default), ``"ei"`` (expected
            improvement) or ``"mean"`` (greedy).
        kappa: exploration weight of UCB. Default 1.0.
        mutation_fraction: share of the pool made of mutations of the population once
            results exist. Default 0.5.
        population_size: best finished architectures that can be parents. Default 20.
        tournament_size: tournament size when picking a parent to mutate. Default 5.
        n_proposals: proposals asked from a proposer per decision. Default 4.
        n_exploration_trials: until this many architectures have finished, the candidate
            is drawn uniformly among those at or above ``prune_quantile`` (a pruned but
            diverse initial design), not by acquisition. Default 10.
        fine_tune: how to learn from the study's results: ``"gp"`` (default; a Gaussian
            process on the predictor's features and zero-shot score), ``"moe"`` (retrain
            the predictor's regressor) or ``False`` (zero-shot only). ``True`` means ``"gp"``.
        fine_tune_every: refit after this many new results. Default 1.
        fine_tune_min_trials: results needed before the first refit (at least 2). Default 5.
        fine_tune_seconds: time budget of one ``"moe"`` refit. Default 5.0.
        use_predictor: ``False`` keeps the candidate machinery but picks uniformly at
            random (an ablation: what the predictor adds). Default ``True``.

    Example::

        from nasassist_plugins.search import PlannerConfig

        config = PlannerConfig(max_candidates=256, prune_quantile=0.75, acquisition="ei")
        config.replace(kappa=2.0)             # a validated copy with one setting changed
        PlannerConfig.from_mapping({"max_candidates": 64})   # e.g. from NNI's JSON class_args
    """

    max_candidates: int = 1000
    min_candidates: int = 16
    max_plan_seconds: float | None = None
    plan_time_fraction: float = 0.02
    shortlist_size: int = 8
    prune_quantile: float | None = 0.5
    acquisition: str = "ucb"
    kappa: float = 1.0
    mutation_fraction: float = 0.5
    population_size: int = 20
    tournament_size: int = 5
    n_proposals: int = 4
    n_exploration_trials: int = 10
    fine_tune: str | bool = "gp"
    fine_tune_every: int = 1
    fine_tune_min_trials: int = 5
    fine_tune_seconds: float = 5.0
    use_predictor: bool = True

    def __post_init__(self) -> None:
        for name, minimum in (("max_candidates", 1), ("min_candidates", 1), ("shortlist_size", 0),
                              ("population_size", 1), ("tournament_size", 1), ("n_proposals", 0),
                              ("n_exploration_trials", 0), ("fine_tune_every", 1), ("fine_tune_min_trials", 2)):
            _check_int(name, getattr(self, name), minimum)
        if self.min_candidates > self.max_candidates:
            raise ConfigurationError(
                f"min_candidates ({self.min_candidates}) must not exceed max_candidates ({self.max_candidates})")
        if self.tournament_size > self.population_size:
            raise ConfigurationError(
                f"tournament_size ({self.tournament_size}) must not exceed population_size ({self.population_size})")
        if self.max_plan_seconds is not None:
            _check_positive("max_plan_seconds", self.max_plan_seconds)
        _check_positive("plan_time_fraction", self.plan_time_fraction)
        if self.plan_time_fraction >= 1:
            raise ConfigurationError(f"plan_time_fraction must be in (0, 1), got {self.plan_time_fraction!r}")
        object.__setattr__(self, "prune_quantile",
                           check_quantile(self.prune_quantile, "prune_quantile", ConfigurationError))
        check_acquisition(self.acquisition, ConfigurationError)
        _check_number("kappa", self.kappa, minimum=0.0)
        _check_number("mutation_fraction", self.mutation_fraction, minimum=0.0, maximum=1.0)
        _check_positive("fine_tune_seconds", self.fine_tune_seconds)
        fine_tune = self.fine_tune
        if fine_tune is True:
            fine_tune = "gp"
        if fine_tune is None:
            fine_tune = False
        if fine_tune is not False and fine_tune not in FINE_TUNE_MODES:
            raise ConfigurationError(
                f"fine_tune must be one of {', '.join(map(repr, FINE_TUNE_MODES))}, True or False, got {self.fine_tune!r}")
        object.__setattr__(self, "fine_tune", fine_tune)
        if fine_tune == "moe":
            from nasassist_plugins.experimental import warn_experimental

            warn_experimental("fine-tune-moe", "PlannerConfig(fine_tune='moe') (refitting the predictor's experts)")
        if not isinstance(self.use_predictor, bool):
            raise ConfigurationError(f"use_predictor must be True or False, got {self.use_predictor!r}")

    # ------------------------------------------------------------------ helpers
    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | "PlannerConfig" | None) -> "PlannerConfig":
        """A config from a dict (e.g. NNI ``class_args``); unknown names are a clear error."""
        if settings is None:
            return cls()
        if isinstance(settings, PlannerConfig):
            return settings
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"config must be a PlannerConfig or a dict of its settings, got {type(settings).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown planner setting(s) {', '.join(map(repr, unknown))}; PlannerConfig takes {', '.join(sorted(known))}")
        return cls(**dict(settings))

    def replace(self, **changes: Any) -> "PlannerConfig":
        """A validated copy with ``changes`` applied."""
        return PlannerConfig.from_mapping({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain settings (JSON-able)."""
        return asdict(self)


def check_acquisition(name: Any, error: type[Exception] = SearchError) -> str:
    """Validate an acquisition name (``"ucb"``, ``"ei"`` or ``"mean"``); ``error`` is raised otherwise."""
    if name not in ACQUISITIONS:
        raise error(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {name!r}")
    return name


def check_quantile(value: Any, what: str, error: type[Exception] = SearchError) -> float | None:
    """Validate a quantile in ``[0, 1)`` (``None`` disables the rule it controls); ``error`` is raised otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise error(f"{what} must be a number in [0, 1) or None, got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, minimum: int) -> None:
    check_integer(name, value, minimum=minimum)


def _check_number(name: str, value: Any, *, minimum: float, maximum: float = math.inf) -> None:
    check_number(name, value, low=minimum, high=maximum if math.isfinite(maximum) else None)


def _check_positive(name: str, value: Any) -> None:
    check_number(name, value, low=0.0, low_open=True)
