"""NASAssistPruner: learned learning-curve extrapolation, rungs by step, warnings, step-0 pruning."""

from __future__ import annotations

import logging
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from nasassist_plugins.errors import ConfigurationError
from nasassist_plugins.optuna import NASAssistPruner, _attrs

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
EPOCHS = 40


def curve(asymptote: float, seed: int, start: float = 0.1, rate: float = 0.8, noise: float = 0.005,
          epochs: int = EPOCHS) -> np.ndarray:
    """A saturating accuracy curve a - (a - start) * t^-rate with small noise; its limit is known."""
    t = np.arange(1, epochs + 1, dtype=float)
    return asymptote - (asymptote - start) * t ** (-rate) + np.random.RandomState(seed).normal(0, noise, epochs)


def study_with_finished(pruner, asymptotes=(0.90, 0.88, 0.86, 0.85, 0.84), steps=None,
                        direction="maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction, pruner=pruner)
    steps = list(range(EPOCHS)) if steps is None else list(steps)
    for k, a in enumerate(asymptotes):
        values = curve(a, k)
        if direction == "minimize":
            values = 1.0 - values
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(values[steps[-1]]),
                                     intermediate_values={s: float(values[s]) for s in steps},
                                     params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}))
    return study


def run_curve(study: optuna.Study, values: np.ndarray, steps=None) -> int | None:
    """Report a curve at ``steps``; the step at which the trial was pruned, or None if it ran to the end."""
    steps = list(range(len(values))) if steps is None else list(steps)
    pruned_at: list[int] = []

    def objective(trial):
        for step in steps:
            trial.report(float(values[step]), step)
            if trial.should_prune():
                pruned_at.append(step)
                raise optuna.TrialPruned()
        return float(values[steps[-1]])

    study.optimize(objective, n_trials=1)
    return pruned_at[0] if pruned_at else None


def test_prunes_hopeless_curves_early_and_keeps_good_ones():
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, lower_bound=0.0, upper_bound=1.0)
    bad_steps = [run_curve(study_with_finished(pruner), curve(a, 100 + k)) for k, a in enumerate((0.55, 0.62, 0.70))]
    assert all(step is not None and step <= 8 for step in bad_steps), bad_steps
    for k, a in enumerate((0.95, 0.93)):  # these beat the best finished trial (0.90): never pruned
        assert run_curve(study_with_finished(pruner), curve(a, 200 + k)) is None
    study = study_with_finished(pruner)
    run_curve(study, curve(0.5, 7))
    pruned = study.trials[-1]
    assert pruned.system_attrs[_attrs.PRUNED_BY] == "learning-curve"
    assert pruned.system_attrs[_attrs.LCE_PROBABILITY] < pruner.rule.threshold_probability
    median, low, high = pruned.system_attrs[_attrs.LCE_FORECAST]
    assert low <= median <= high < 0.9


def test_min_resource_one_is_accepted_and_the_forecast_waits_for_a_second_report():
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, min_resource=1, upper_bound=1.0)
    study = study_with_finished(pruner)
    values = curve(0.3, 3)
    reasons: dict[int, str] = {}

    def objective(trial):
        for step in range(EPOCHS):
            trial.report(float(values[step]), step)
            before = pruner.last_decision
            prune = trial.should_prune()
            if pruner.last_decision is not before:
                reasons[step] = pruner.last_decision.reason
            if prune:
                raise optuna.TrialPruned()
        return float(values[-1])

    study.optimize(objective, n_trials=1)
    assert reasons[0] == "too-few-points"  # resource 1 is a rung, but one report is no curve
    assert reasons[1] == "forecast"  # the second report (resource 2) is judged
    assert study.trials[-1].state == TrialState.PRUNED and max(reasons) <= 7


def test_min_resource_delays_the_first_decision_in_steps():
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, min_resource=10, upper_bound=1.0)
    step = run_curve(study_with_finished(pruner), curve(0.3, 3))
    assert step == 9  # resource 10 = step 9


def test_sparse_steps_get_forecasts():
    """Reports at steps 0, 3, 7, 15, 31 only: every report after the first is judged (steps, not counts)."""
    sparse = [0, 3, 7, 15, 31, 39]
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, upper_bound=1.0)
    study = study_with_finished(pruner, steps=sparse)
    step = run_curve(study, curve(0.5, 21), steps=sparse)
    assert step == 3
    probe = NASAssistPruner(max_resource=EPOCHS - 1, upper_bound=1.0, threshold_probability=1e-9)
    study = study_with_finished(probe, steps=sparse)
    assert run_curve(study, curve(0.87, 22), steps=sparse) is None
    assert _attrs.LCE_PROBABILITY in study.trials[-1].system_attrs


def test_rungs_passed_between_should_prune_calls_are_judged():
    """Reports every epoch, should_prune() only every fifth: rungs 4, 8, 16 passed in between still count."""
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, upper_bound=1.0, threshold_probability=1e-9)
    study = study_with_finished(pruner)
    values = curve(0.86, 31)
    decided: list[int] = []

    def objective(trial):
        for step in range(EPOCHS):
            trial.report(float(values[step]), step)
            if step % 5 == 4:
                before = pruner.last_decision
                if trial.should_prune():
                    raise optuna.TrialPruned()
                if pruner.last_decision is not before and pruner.last_decision.reason == "forecast":
                    decided.append(step)
        return float(values[-1])

    study.optimize(objective, n_trials=1)
    assert decided == [4, 9, 19, 34]  # resources 5, 10, 20, 35 pass rungs 4, 8, 16, 32
    assert study.trials[-1].system_attrs[_attrs.LCE_STEP] == 35.0


def test_never_prunes_configuration_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.optuna.pruner"):
        NASAssistPruner(max_resource=3, min_resource=5)
    assert sum("can never prune" in r.message for r in caplog.records) == 1
    caplog.clear()
    # "auto": four reported epochs and min_resource=5, found out from the first finished trials
    pruner = NASAssistPruner(max_resource="auto", min_resource=5, upper_bound=1.0)
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.optuna.pruner"):
        study = study_with_finished(pruner, steps=range(4))
        for k in range(3):
            run_curve(study, curve(0.5, 30 + k)[:4])
    messages = [r.message for r in caplog.records if "can never prune" in r.message]
    assert len(messages) == 1 and "min_resource (5)" in messages[0]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_minimize_direction_and_auto_max_resource():
    pruner = NASAssistPruner(max_resource="auto", lower_bound=0.0, upper_bound=1.0)
    study = study_with_finished(pruner, direction="minimize")
    assert run_curve(study, 1.0 - curve(0.5, 9)) is not None  # loss converging to 0.5: hopeless
    assert run_curve(study, 1.0 - curve(0.95, 10)) is None  # loss converging to 0.05: the best


def test_top_k_compares_with_a_lower_reference():
    finals = (0.90, 0.88, 0.86, 0.85, 0.84)
    strict = NASAssistPruner(max_resource=EPOCHS - 1, upper_bound=1.0)
    lenient = NASAssistPruner(max_resource=EPOCHS - 1, upper_bound=1.0, top_k=5)
    candidate = curve(0.875, 40)
    s1, s2 = study_with_finished(strict, finals), study_with_finished(lenient, finals)
    run_curve(s1, candidate)
    run_curve(s2, candidate)
    assert s2.trials[-1].state == TrialState.COMPLETE
    assert strict.last_decision.reference == pytest.approx(s1.trials[0].intermediate_values[EPOCHS - 1])


def test_parametric_extrapolator_is_an_option():
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, extrapolator="parametric", lower_bound=0.0, upper_bound=1.0)
    step = run_curve(study_with_finished(pruner), curve(0.4, 5))
    assert step is not None and step <= 15


def test_wrapped_pruner_is_consulted():
    pruner = NASAssistPruner(max_resource=None, wrapped_pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    assert run_curve(study, np.full(10, 0.2)) == 0
    assert study.trials[0].system_attrs[_attrs.PRUNED_BY] == "wrapped"


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
    assert study.trials[-2].system_attrs[_attrs.PRUNED_BY] == "zero-shot"


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        NASAssistPruner(39)  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_resource": -1}, "max_resource"),
        ({"max_resource": 3.5}, "max_resource"),
        ({"min_resource": 0}, "min_resource"),
        ({"threshold_probability": 1.0}, "threshold_probability"),
        ({"threshold_probability": math.nan}, "threshold_probability must be finite"),
        ({"reduction_factor": 1.0}, "reduction_factor"),
        ({"top_k": 0}, "top_k"),
        ({"n_warmup_trials": "5"}, "n_warmup_trials"),
        ({"zero_shot_quantile": -0.1}, "zero_shot_quantile"),
        ({"zero_shot_weight": math.inf}, "zero_shot_weight"),
        ({"lower_bound": 1.0, "upper_bound": 0.0}, "lower_bound"),
        ({"upper_bound": math.nan}, "upper_bound"),
        ({"extrapolator": "lcpfn"}, "extrapolator"),
        ({"calibrate": "yes"}, "calibrate"),
        ({"wrapped_pruner": "hyperband"}, "wrapped_pruner"),
    ],
)
def test_bad_arguments_give_clear_errors(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        NASAssistPruner(**kwargs)
