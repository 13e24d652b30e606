"""NASAssistPruner: learning-curve extrapolation on curves with known asymptotes, step-0 pruning."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from nasassist_plugins.optuna import NASAssistPruner, _attrs
from nasassist_plugins.optuna.pruner import PRUNED_BY
from nasassist_plugins.search import SearchError

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 40


def curve(asymptote: float, seed: int, start: float = 0.1, rate: float = 0.8, noise: float = 0.005) -> np.ndarray:
    """A saturating accuracy curve a - (a - start) * t^-rate with small noise; its limit is known."""
    t = np.arange(1, EPOCHS + 1, dtype=float)
    return asymptote - (asymptote - start) * t ** (-rate) + np.random.RandomState(seed).normal(0, noise, EPOCHS)


def study_with_finished(pruner, asymptotes=(0.90, 0.88, 0.86, 0.85, 0.84)) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for k, a in enumerate(asymptotes):
        values = curve(a, k)
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(values[-1]),
                                     intermediate_values={s: float(v) for s, v in enumerate(values)},
                                     params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}))
    return study


def run_curve(study: optuna.Study, values: np.ndarray) -> int | None:
    """Report a curve; the step at which the trial was pruned, or None if it ran to the end."""
    pruned_at: list[int] = []

    def objective(trial):
        for step, value in enumerate(values):
            trial.report(float(value), step)
            if trial.should_prune():
                pruned_at.append(step)
                raise optuna.TrialPruned()
        return float(values[-1])

    study.optimize(objective, n_trials=1)
    return pruned_at[0] if pruned_at else None


def test_prunes_hopeless_curves_early_and_keeps_good_ones():
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, min_resource=5, lower_bound=0.0, upper_bound=1.0)
    bad_steps = [run_curve(study_with_finished(pruner), curve(a, 100 + k)) for k, a in enumerate((0.55, 0.62, 0.70))]
    assert all(step is not None and step <= 15 for step in bad_steps), bad_steps
    for k, a in enumerate((0.95, 0.93)):  # these beat the best finished trial (0.90): never pruned
        assert run_curve(study_with_finished(pruner), curve(a, 200 + k)) is None
    study = study_with_finished(pruner)
    run_curve(study, curve(0.5, 7))
    pruned = study.trials[-1]
    assert pruned.system_attrs[PRUNED_BY] == "learning-curve"
    assert pruned.system_attrs["nasassist:lce_probability"] < 0.05


def test_never_prunes_before_min_resource_or_without_finished_trials():
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, min_resource=10, lower_bound=0.0, upper_bound=1.0)
    step = run_curve(study_with_finished(pruner), curve(0.3, 3))
    assert step is not None and step >= 9
    lonely = optuna.create_study(direction="maximize", pruner=NASAssistPruner(max_resource=EPOCHS - 1))
    assert run_curve(lonely, curve(0.3, 4)) is None  # nothing finished to compare with


def test_minimize_direction_and_auto_max_resource():
    pruner = NASAssistPruner(max_resource="auto", min_resource=5, lower_bound=0.0)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    for k, a in enumerate((0.10, 0.12, 0.15, 0.2, 0.25)):  # losses
        values = 1.0 - curve(1.0 - a, k)
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(values[-1]),
                                     intermediate_values={s: float(v) for s, v in enumerate(values)}))
    assert run_curve(study, 1.0 - curve(0.5, 9)) is not None  # loss converging to 0.5: hopeless
    assert run_curve(study, 1.0 - curve(0.95, 10)) is None  # loss converging to 0.05: the best


def test_wrapped_pruner_is_consulted():
    pruner = NASAssistPruner(max_resource=None, wrapped_pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    assert run_curve(study, np.full(10, 0.2)) == 0
    assert study.trials[0].system_attrs[PRUNED_BY] == "wrapped"


def test_zero_shot_pruning_at_step_zero():
    pruner = NASAssistPruner(max_resource=None, zero_shot_quantile=0.5, n_warmup_trials=4)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for k, score in enumerate((0.2, 0.4, 0.6, 0.8)):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=score, system_attrs={_attrs.ZERO_SHOT: score}))
    outcomes = {}
    for score in (0.1, 0.9):
        def objective(trial, score=score):
            study._storage.set_trial_system_attr(trial._trial_id, _attrs.ZERO_SHOT, score)
            if trial.should_prune():  # before any training
                raise optuna.TrialPruned()
            return score

        study.optimize(objective, n_trials=1)
        outcomes[score] = study.trials[-1].state
    assert outcomes == {0.1: TrialState.PRUNED, 0.9: TrialState.COMPLETE}
    assert study.trials[-2].system_attrs[PRUNED_BY] == "zero-shot"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_resource": 0}, "max_resource"),
        ({"min_resource": 2}, "min_resource"),
        ({"threshold_probability": 1.0}, "threshold_probability"),
        ({"zero_shot_quantile": -0.1}, "zero_shot_quantile"),
        ({"lower_bound": 1.0, "upper_bound": 0.0}, "lower_bound"),
        ({"wrapped_pruner": "hyperband"}, "wrapped_pruner"),
    ],
)
def test_bad_arguments_give_clear_errors(kwargs, message):
    with pytest.raises(SearchError, match=message):
        NASAssistPruner(**kwargs)
