"""Learning-curve extrapolation: families, ensemble forecasts, stop rule, input checks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nasassist_plugins.curves import (
    CURVE_MODELS,
    CurveFitError,
    LearningCurveError,
    LearningCurveExtrapolator,
    StopDecision,
    observe_curve,
    should_stop,
)
from nasassist_plugins.errors import NASAssistError

MAX_STEP = 100
STEPS = np.arange(1, 31)  # the first 30 % of a 100-step run


def _rising(t):
    """Accuracy that keeps rising towards 0.9 (0.895 at step 100)."""
    return 0.9 - 0.8 * np.exp(-np.asarray(t, dtype=float) / 20.0)


def _plateau(t):
    """Accuracy that has nearly stopped improving below 0.5 (0.484 at step 100)."""
    return 0.5 - 0.4 * np.asarray(t, dtype=float) ** -0.7


def _loss(t):
    """Loss falling towards 0.2."""
    return 0.2 + 1.5 * np.exp(-np.asarray(t, dtype=float) / 20.0)


def _noisy(curve, seed: int, noise: float = 0.005, steps=STEPS):
    return curve(steps) + np.random.default_rng(seed).normal(0.0, noise, len(steps))


def _fitted(values, **kwargs) -> LearningCurveExtrapolator:
    kwargs.setdefault("random_state", 0)
    return LearningCurveExtrapolator(**kwargs).fit(STEPS, values)


@pytest.fixture(scope="module")
def rising() -> LearningCurveExtrapolator:
    return _fitted(_noisy(_rising, seed=1), lower_bound=0.0, upper_bound=1.0)


@pytest.fixture(scope="module")
def plateau() -> LearningCurveExtrapolator:
    return _fitted(_noisy(_plateau, seed=2), lower_bound=0.0, upper_bound=1.0)


# ----------------------------------------------------------------------------- families
# Parameters that give an accuracy-like rising curve for each family (x = step).
TRUE_PARAMS = {
    "pow3": (0.9, 0.6, 0.5),
    "pow4": (0.85, 0.7, 0.3, 0.8),
    "log_power": (0.9, np.log(5.0), -1.2),
    "exp3": (0.88, 0.08, np.log(0.8) + 0.08),
    "janoschek": (0.9, 0.1, 0.1, 0.8),
    "weibull": (0.85, 0.1, 0.05, 1.2),
    "mmf": (0.9, 0.05, 0.08, 1.5),
    "ilog2": (0.95, 0.4),
    "vapor_pressure": (-0.2, -1.5, 0.02),
    "log_log_linear": (0.25, 1.2),
    "exp4": (0.9, 0.2, np.log(0.8) + 0.2, 0.7),
}


def test_registry_holds_the_eleven_domhan_families():
    assert set(CURVE_MODELS) == set(TRUE_PARAMS)
    for name, model in CURVE_MODELS.items():
        assert model.name == name
        assert model.n_params == len(model.param_names) == len(TRUE_PARAMS[name])


@pytest.mark.parametrize("name", sorted(TRUE_PARAMS))
def test_family_is_vectorised_rising_and_its_guesses_lie_in_bounds(name):
    model = CURVE_MODELS[name]
    theta = np.array(TRUE_PARAMS[name])
    grid = np.linspace(1.0, 100.0, 7)
    batch = model(grid, *np.tile(theta, (4, 1)).T[:, :, None])
    assert batch.shape == (4, grid.size)
    assert np.allclose(batch, model(grid, *theta))
    assert np.all(np.diff(batch, axis=1) > 0)

    curve = observe_curve(STEPS.astype(float), model(STEPS, *theta), upper_bound=1.0)
    lower, upper = model.bounds(curve)
    assert model.is_valid(theta, curve)[0]
    for guess in model.initial_guesses(curve):
        assert np.all((guess > lower) & (guess < upper))


@pytest.mark.parametrize("name", sorted(TRUE_PARAMS))
def test_every_family_recovers_the_final_value_of_its_own_curve(name):
    model = CURVE_MODELS[name]
    theta = TRUE_PARAMS[name]
    values = model(STEPS, *theta) + np.random.default_rng(0).normal(0.0, 0.002, STEPS.size)
    lce = _fitted(values, models=[name], upper_bound=1.0)
    truth = float(model(MAX_STEP, *theta))
    mean, std = lce.predict(MAX_STEP)
    assert abs(mean - truth) < 0.02
    assert abs(mean - truth) <= 3 * std
    assert [fit.name for fit in lce.fits_] == [name]


def test_sanity_constraint_rejects_decreasing_parameters():
    curve = observe_curve(STEPS.astype(float), _rising(STEPS), upper_bound=1.0)
    pow3 = CURVE_MODELS["pow3"]
    rows = np.array([[0.9, 0.5, 0.5], [0.9, -0.5, 0.5], [1.5, 0.5, 0.5]])
    # rising / falling (a < 0) / plateau above the upper bound
    assert pow3.is_valid(rows, curve).tolist() == [True, False, False]


# ----------------------------------------------------------------------------- forecasts
@pytest.mark.parametrize("fixture, truth", [("rising", _rising), ("plateau", _plateau)])
def test_forecast_at_max_step_is_close_and_covers_the_truth(fixture, truth, request):
    lce = request.getfixturevalue(fixture)
    mean, std = lce.predict(MAX_STEP)
    true_final = float(truth(MAX_STEP))
    # Typical error ~0.015; over 20 noise seeds the largest was ~0.04 (always within 2 std).
    assert abs(mean - true_final) < 0.05
    assert mean - 2 * std <= true_final <= mean + 2 * std
    assert 0.0 < std < 0.1


def test_should_stop_drops_the_plateau_and_keeps_the_rising_curve():
    best = 0.85
    bounds = dict(lower_bound=0.0, upper_bound=1.0)
    keep = should_stop(STEPS, _noisy(_rising, seed=1), best, MAX_STEP, **bounds)
    stop = should_stop(STEPS, _noisy(_plateau, seed=2), best, MAX_STEP, **bounds)
    assert isinstance(keep, StopDecision)
    assert keep.stop is False and keep.probability > 0.5
    assert stop.stop is True and stop.probability < 0.05
    stop_flag, probability, (mean, std) = stop
    assert stop_flag and probability == stop.probability and mean < 0.55 and std > 0


def test_minimisation_works_on_loss_curves():
    values = _noisy(_loss, seed=3, noise=0.01)
    lce = _fitted(values, direction="minimize", lower_bound=0.0)
    mean, std = lce.predict(MAX_STEP)
    true_final = float(_loss(MAX_STEP))
    assert abs(mean - true_final) < 0.08
    assert mean - 2 * std <= true_final <= mean + 2 * std
    # "better" means lower for a loss; probability_above stays literal.
    assert lce.probability_better(0.5, MAX_STEP) > 0.9
    assert lce.probability_above(0.5, MAX_STEP) == pytest.approx(1 - lce.probability_better(0.5, MAX_STEP))

    assert not should_stop(STEPS, values, 0.3, MAX_STEP, direction="minimize", lower_bound=0.0).stop
    stuck = 1.0 + 0.6 * STEPS.astype(float) ** -1.0 + np.random.default_rng(4).normal(0, 0.005, STEPS.size)
    assert should_stop(STEPS, stuck, 0.3, MAX_STEP, direction="minimize", lower_bound=0.0).stop


def test_minimize_mirrors_maximize():
    values = _noisy(_rising, seed=5)
    subset = ["pow3", "exp3", "mmf"]
    up = _fitted(values, models=subset)
    down = _fitted(-values, models=subset, direction="minimize")
    assert down.predict(MAX_STEP)[0] == pytest.approx(-up.predict(MAX_STEP)[0])
    assert down.predict(MAX_STEP)[1] == pytest.approx(up.predict(MAX_STEP)[1])
    assert down.probability_better(-0.85, MAX_STEP) == pytest.approx(up.probability_above(0.85, MAX_STEP))


def test_predictive_samples_agree_with_moments_and_probabilities(rising):
    mean, std = rising.predict(MAX_STEP)
    samples = rising.predict_samples(MAX_STEP, n_samples=4000)
    assert samples.shape == (4000,)
    assert np.mean(samples) == pytest.approx(mean, abs=0.3 * std)
    assert np.std(samples) == pytest.approx(std, rel=0.25)
    threshold = mean - 0.5 * std
    assert rising.probability_above(threshold, MAX_STEP) == pytest.approx(np.mean(samples > threshold), abs=0.05)
    probabilities = [rising.probability_above(t, MAX_STEP) for t in (0.7, 0.8, 0.9, 0.95)]
    assert probabilities == sorted(probabilities, reverse=True)


def test_predict_accepts_arrays_and_is_reproducible(rising):
    means, stds = rising.predict([40, 70, 100])
    assert means.shape == stds.shape == (3,)
    assert means[2] == pytest.approx(rising.predict(100)[0])
    assert np.all(np.diff(means) > 0)
    assert stds[-1] > stds[0]  # further out = less sure
    again = _fitted(_noisy(_rising, seed=1), lower_bound=0.0, upper_bound=1.0)
    assert again.predict(MAX_STEP) == rising.predict(MAX_STEP)


def test_unsorted_steps_are_sorted_first():
    values = _noisy(_rising, seed=6)
    order = np.random.default_rng(0).permutation(STEPS.size)
    subset = ["pow3", "exp3"]
    shuffled = LearningCurveExtrapolator(models=subset, random_state=0).fit(STEPS[order], values[order])
    assert shuffled.predict(MAX_STEP) == _fitted(values, models=subset).predict(MAX_STEP)


def test_constant_curve_is_extrapolated_as_constant():
    lce = _fitted(np.full(STEPS.size, 0.3))
    assert lce.predict(MAX_STEP) == (0.3, 0.0)
    assert lce.probability_above(0.2, MAX_STEP) == 1.0
    assert lce.probability_above(0.4, MAX_STEP) == 0.0
    assert np.all(lce.predict_samples(MAX_STEP, 5) == 0.3)
    assert should_stop(STEPS, np.full(STEPS.size, 0.3), 0.85, MAX_STEP).stop


def test_fitting_all_families_on_fifty_points_is_fast():
    steps = np.arange(1, 51)
    values = _noisy(_rising, seed=7, steps=steps)
    start = time.perf_counter()
    LearningCurveExtrapolator(random_state=0, upper_bound=1.0).fit(steps, values).predict(MAX_STEP)
    # ~0.1-0.3 s on a busy 2-core machine; the bound only catches hangs and regressions.
    assert time.perf_counter() - start < 3.0


def test_timeout_discards_fits_instead_of_hanging():
    with pytest.raises(CurveFitError, match="no learning-curve family could be fitted"):
        LearningCurveExtrapolator(timeout=1e-9).fit(STEPS, _noisy(_rising, seed=8))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "steps, values, message",
    [
        (STEPS, np.r_[_rising(STEPS[:-1]), np.nan], r"values must be finite; NaN/inf at positions \[29\]"),
        (STEPS, np.r_[np.inf, _rising(STEPS[1:])], r"values must be finite"),
        (STEPS[:-1], _rising(STEPS), r"same length, got 29 steps and 30 values"),
        (STEPS[:2], _rising(STEPS[:2]), r"at least min_points=3 observations .* got 2"),
        (STEPS - 1, _rising(STEPS), r"steps must be finite and > 0 \(if your steps start at 0, pass step \+ 1\)"),
        (np.ones(5), _rising(STEPS[:5]), r"at least two distinct"),
        (STEPS, np.vstack([_rising(STEPS)] * 2), r"values must be one-dimensional"),
        (STEPS, ["a"] * STEPS.size, r"values must be a sequence of numbers"),
    ],
)
def test_bad_curves_raise_clear_errors(steps, values, message):
    with pytest.raises(LearningCurveError, match=message) as info:
        LearningCurveExtrapolator().fit(steps, values)
    assert isinstance(info.value, ValueError) and isinstance(info.value, NASAssistError)


def test_min_points_is_named_and_configurable():
    with pytest.raises(LearningCurveError, match="min_points=10"):
        LearningCurveExtrapolator(min_points=10).fit(STEPS[:9], _rising(STEPS[:9]))


def test_values_beyond_the_declared_bounds_are_rejected():
    with pytest.raises(LearningCurveError, match="exceed upper_bound=1.0"):
        LearningCurveExtrapolator(upper_bound=1.0).fit(STEPS, _rising(STEPS) + 0.5)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(models=["pow3", "nope"]), ValueError, r"unknown curve model 'nope'"),
        (dict(models=[]), ValueError, r"at least one curve family"),
        (dict(min_points=2), ValueError, r"min_points must be >= 3"),
        (dict(min_points=3.0), TypeError, r"min_points must be an int"),
        (dict(n_samples=5), ValueError, r"n_samples must be >= 10"),
        (dict(direction="max"), ValueError, r"direction must be one of"),
        (dict(weighting="aic"), ValueError, r"weighting must be one of"),
        (dict(lower_bound=1.0, upper_bound=0.0), ValueError, r"lower_bound .* smaller than upper_bound"),
        (dict(upper_bound=float("nan")), ValueError, r"upper_bound must be finite"),
        (dict(timeout=0), ValueError, r"timeout must be > 0"),
        (dict(random_state="seed"), TypeError, r"random_state must be None, an int or a numpy Generator"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        LearningCurveExtrapolator(**kwargs)


def test_using_an_unfitted_extrapolator_raises():
    with pytest.raises(CurveFitError, match=r"not fitted yet; call fit\(steps, values\) first"):
        LearningCurveExtrapolator().predict(MAX_STEP)


def test_predict_rejects_non_positive_steps(rising):
    with pytest.raises(ValueError, match="step must be finite and > 0"):
        rising.predict(0)


def test_should_stop_is_unknown_with_too_few_points_but_rejects_bad_data():
    decision = should_stop(STEPS[:4], _rising(STEPS[:4]), 0.85, MAX_STEP)  # default min_points=5
    assert decision.stop is False
    assert np.isnan(decision.probability) and np.isnan(decision.prediction).all()
    with pytest.raises(LearningCurveError, match="values must be finite"):
        should_stop(STEPS[:4], [0.1, np.nan, 0.3, 0.4], 0.85, MAX_STEP)
    with pytest.raises(ValueError, match=r"threshold_probability must be in \[0, 1\]"):
        should_stop(STEPS, _rising(STEPS), 0.85, MAX_STEP, threshold_probability=1.5)
    with pytest.raises(ValueError, match="max_step must be > 0"):
        should_stop(STEPS, _rising(STEPS), 0.85, 0)
