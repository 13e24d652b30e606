"""Learning-curve extrapolation: families, ensemble forecasts, stop rule, input checks."""

from __future__ import annotations

import json
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


# ============================================================================= learned extrapolator (PFN)
from nasassist_plugins.curves import (  # noqa: E402
    CurvePFN,
    ObservedRun,
    PFNExtrapolator,
    StopRule,
    load_default_pfn,
)
from nasassist_plugins.curves.pfn import DEFAULT_WEIGHTS, BarDistribution  # noqa: E402
from nasassist_plugins.errors import ConfigurationError  # noqa: E402


def _weights_path():
    from importlib import resources

    return resources.files("nasassist_plugins.curves").joinpath("weights", DEFAULT_WEIGHTS)


def _saturating(asymptote, start, rate, epochs=40, noise=0.003, seed=0):
    """start -> asymptote along 1 - exp(-t / rate) with small noise; the limit is known."""
    t = np.arange(1, epochs + 1, dtype=float)
    clean = asymptote - (asymptote - start) * np.exp(-t / rate)
    return t, clean + np.random.default_rng(seed).normal(0.0, noise, epochs), clean


def test_shipped_weights_are_small_safetensors_and_load_validated():
    path = _weights_path()
    with open(path, "rb") as fh:
        header = fh.read(8)
    assert int.from_bytes(header, "little") < 100_000  # a safetensors header, not a pickle
    size = path.stat().st_size
    assert 100_000 < size <= 5_000_000
    pfn = load_default_pfn()
    assert pfn.config["n_layers"] >= 2 and len(pfn.borders) == pfn.config["n_buckets"] + 1
    assert "command" in json.loads(__import__("safetensors").safe_open(str(path), "numpy").metadata()["training"])


def test_corrupt_or_foreign_weights_are_refused_before_use(tmp_path):
    from safetensors.numpy import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(bad), metadata={"format": "something-else"})
    with pytest.raises(ConfigurationError, match="not curve PFN weights"):
        CurvePFN.load(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ConfigurationError, match="unreadable"):
        CurvePFN.load(junk)
    with pytest.raises(ConfigurationError, match="not found"):
        CurvePFN.load(tmp_path / "missing.safetensors")


def test_numpy_forward_matches_the_torch_training_module():
    pytest.importorskip("torch")
    from nasassist_plugins.curves.train_pfn import build_module, check_equivalence

    config = {"d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 48, "n_buckets": 64, "max_observed": 48}
    module = build_module(config)
    module.config = config
    import torch

    module.borders.copy_(torch.linspace(-6, 6, 65))
    assert check_equivalence(module, n=4) < 1e-4


@pytest.mark.parametrize("asymptote, start, rate", [(0.95, 0.2, 6.0), (0.8, 0.1, 10.0), (0.6, 0.3, 4.0)])
def test_pfn_forecast_of_a_known_asymptote(asymptote, start, rate):
    t, y, clean = _saturating(asymptote, start, rate)
    k = 20  # half of the run
    lce = PFNExtrapolator(max_step=40, upper_bound=1.0, lower_bound=0.0).fit(t[:k], y[:k])
    median, low, high = lce.quantiles(40, (0.5, 0.05, 0.95))
    assert low <= clean[-1] <= high
    assert abs(median - clean[-1]) < 0.03
    mean, std = lce.predict(40)
    assert abs(mean - clean[-1]) < 0.03 and 0 < std < 0.15
    assert high <= 1.0 and low >= 0.0  # inside the known bounds
    # probabilities agree with the quantiles
    q10, q90 = lce.quantiles(40, (0.1, 0.9))
    assert lce.probability_better(q10, 40) == pytest.approx(0.9, abs=0.02)
    assert lce.probability_better(q90, 40) == pytest.approx(0.1, abs=0.02)


def test_pfn_intervals_cover_known_asymptotes_on_a_family_of_curves():
    """From 25 % of the run, 80 % intervals cover most true final values and the median beats the last value."""
    rng = np.random.default_rng(7)
    hits, errors, naive = [], [], []
    for seed in range(30):
        a, s0, r = rng.uniform(0.6, 0.98), rng.uniform(0.05, 0.4), rng.uniform(3.0, 12.0)
        t, y, clean = _saturating(a, s0, r, noise=0.005, seed=seed)
        lce = PFNExtrapolator(max_step=40, upper_bound=1.0).fit(t[:10], y[:10])
        low, med, high = lce.quantiles(40, (0.1, 0.5, 0.9))
        hits.append(low <= clean[-1] <= high)
        errors.append(abs(med - clean[-1]))
        naive.append(abs(y[9] - clean[-1]))
    assert np.mean(hits) >= 0.7, np.mean(hits)
    assert np.median(errors) < 0.5 * np.median(naive), (np.median(errors), np.median(naive))


def test_pfn_minimize_mirrors_maximize_and_sparse_steps_work():
    t, y, _ = _saturating(0.9, 0.2, 8.0)
    sparse = np.array([1, 4, 8, 16, 32]) - 1
    up = PFNExtrapolator(max_step=40, upper_bound=1.0).fit(t[sparse], y[sparse])
    down = PFNExtrapolator(max_step=40, direction="minimize", lower_bound=-1.0).fit(t[sparse], -y[sparse])
    assert up.predict(40)[0] == pytest.approx(-down.predict(40)[0], abs=1e-9)
    assert up.probability_better(0.85, 40) == pytest.approx(down.probability_better(-0.85, 40), abs=1e-9)
    q = up.quantiles(40, (0.1, 0.5, 0.9))
    assert q[0] <= q[1] <= q[2]


def test_pfn_extrapolator_validates_its_input():
    with pytest.raises(ConfigurationError, match="max_step"):
        PFNExtrapolator(max_step=float("nan"))
    with pytest.raises(ConfigurationError, match="lower_bound"):
        PFNExtrapolator(max_step=10, lower_bound=1.0, upper_bound=0.0)
    with pytest.raises(LearningCurveError, match="two distinct"):
        PFNExtrapolator(max_step=10).fit([3, 3], [0.5, 0.6])
    with pytest.raises(LearningCurveError, match="finite"):
        PFNExtrapolator(max_step=10).fit([1, 2], [0.5, float("nan")])
    with pytest.raises(CurveFitError, match="fit"):
        PFNExtrapolator(max_step=10).predict(10)


def test_bar_distribution_cdf_and_quantile_are_inverse():
    bars = BarDistribution(np.array([-1.0, 0.0, 0.5, 2.0]), np.array([0.2, 0.5, 0.3]))
    assert bars.cdf(-2) == 0.0 and bars.cdf(3) == 1.0
    for q in (0.1, 0.2, 0.45, 0.7, 0.95):
        assert bars.cdf(bars.quantile(q)) == pytest.approx(q)
    assert bars.mean() == pytest.approx(0.2 * -0.5 + 0.5 * 0.25 + 0.3 * 1.25)


# ============================================================================= the shared decision rule
def _finished_runs(n=6, epochs=40):
    runs = []
    for k in range(n):
        t, y, _ = _saturating(0.90 - 0.01 * k, 0.2, 6.0, epochs=epochs, seed=100 + k)
        runs.append(ObservedRun.from_reports(k, t, y, final=float(y[-1])))
    return runs


def test_rule_decides_at_rungs_by_step_not_by_report_count():
    rule = StopRule(max_resource=40, min_resource=1, reduction_factor=2, upper_bound=1.0)
    assert list(rule.rungs(40)) == [1, 2, 4, 8, 16, 32]
    finished = _finished_runs()
    t, y, _ = _saturating(0.5, 0.1, 6.0, seed=3)
    # dense reports: decisions only when a rung is reached
    reasons = [rule.assess(ObservedRun.from_reports("x", t[:k], y[:k]), finished).reason for k in range(1, 12)]
    assert reasons[0] == "too-few-points"  # one report at the first rung: the forecast waits for a second
    assert [k + 1 for k, r in enumerate(reasons) if r == "forecast"] == [2, 4, 8]
    # sparse reports (Optuna steps 0, 3, 7, 15, 31 = resources 1, 4, 8, 16, 32): every one after the first is judged
    sparse = np.array([1, 4, 8, 16, 32])
    for k in range(2, 6):
        d = rule.assess(ObservedRun.from_reports("s", sparse[:k], y[sparse[:k] - 1]), finished)
        assert d.reason in ("forecast",) and d.stop, (k, d)


def test_rule_stops_hopeless_runs_and_keeps_good_ones():
    rule = StopRule(max_resource=40, upper_bound=1.0, lower_bound=0.0)
    finished = _finished_runs()
    t, bad, _ = _saturating(0.6, 0.1, 6.0, seed=11)
    t, good, _ = _saturating(0.97, 0.2, 6.0, seed=12)
    d_bad = rule.assess(ObservedRun.from_reports("bad", t[:8], bad[:8]), finished)
    d_good = rule.assess(ObservedRun.from_reports("good", t[:8], good[:8]), finished)
    assert d_bad.stop and d_bad.probability < rule.threshold_probability
    assert not d_good.stop and d_good.probability > 0.2
    median, low, high = d_bad.forecast
    assert low <= median <= high < d_bad.reference


def test_rule_waits_for_finished_trials_and_explains_when_it_can_never_stop():
    rule = StopRule(max_resource=40, min_finished=5, upper_bound=1.0)
    t, y, _ = _saturating(0.5, 0.1, 6.0)
    assert rule.assess(ObservedRun.from_reports("x", t[:8], y[:8]), _finished_runs(3)).reason == "warm-up"
    assert "min_resource" in StopRule(min_resource=5, max_resource=4).never_prunes(4)
    assert "report 1 step" in StopRule(min_resource=1).never_prunes(4, steps_seen=[2, 4])
    assert StopRule(min_resource=1).never_prunes(40, steps_seen=range(1, 41)) is None


def test_zero_shot_rank_tilts_the_probability():
    rule = StopRule(max_resource=40, upper_bound=1.0)
    finished = _finished_runs()
    t, y, _ = _saturating(0.86, 0.2, 6.0, seed=5)
    run = ObservedRun.from_reports("z", t[:16], y[:16])
    low, mid, high = (rule.assess(run, finished, zero_shot_rank=r).probability for r in (0.0, 0.5, 1.0))
    base = rule.assess(run, finished).probability
    assert mid == pytest.approx(base)
    assert low < mid < high


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold_probability": float("nan")}, "threshold_probability must be finite"),
    ({"threshold_probability": 1.0}, "threshold_probability"),
    ({"reduction_factor": 1.0}, "reduction_factor"),
    ({"min_resource": 0}, "min_resource"),
    ({"top_k": 0}, "top_k"),
    ({"top_k": 1.5}, "top_k must be an integer"),
    ({"extrapolator": "magic"}, "extrapolator"),
    ({"max_resource": float("inf")}, "max_resource must be finite"),
    ({"lower_bound": 1.0, "upper_bound": 0.0}, "lower_bound"),
    ({"direction": "up"}, "direction"),
])
def test_rule_arguments_are_validated_once(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        StopRule(**kwargs)


def test_calibrated_intervals_cover_held_out_real_curves():
    """Coverage of the rule's calibrated 80 % interval on held-out digits runs (the other half play finished trials)."""
    from nasassist_plugins.data import load_curve_set

    data = load_curve_set("digits_nb201")
    rng = np.random.default_rng(0)
    idx = rng.permutation(data.n_runs)
    calib, held = idx[:120], idx[120:240]
    epochs = np.arange(1, data.n_epochs + 1, dtype=float)
    finished = [ObservedRun.from_reports(int(i), epochs, data.val_acc[i], float(data.val_acc[i, -1])) for i in calib]
    rule = StopRule(max_resource=float(data.n_epochs), upper_bound=1.0, lower_bound=0.0)
    for k in (10, 20):
        hits = []
        for i in held:
            pred = rule.predictive(ObservedRun.from_reports(int(i), epochs[:k], data.val_acc[i, :k]),
                                   float(data.n_epochs), finished)
            hits.append(pred.quantile(0.1) <= data.val_acc[i, -1] <= pred.quantile(0.9))
        assert 0.7 <= np.mean(hits) <= 0.92, (k, np.mean(hits))


def test_rule_falls_back_to_the_parametric_ensemble_when_the_pfn_cannot_load(monkeypatch, caplog):
    import logging

    import nasassist_plugins.curves.pfn as pfn_module

    def broken():
        raise ConfigurationError("curve PFN weights not found: (test)")

    monkeypatch.setattr(pfn_module, "load_default_pfn", broken)
    rule = StopRule(max_resource=40, upper_bound=1.0, lower_bound=0.0)
    t, bad, _ = _saturating(0.5, 0.1, 6.0, seed=11)
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.curves.decision"):
        d1 = rule.assess(ObservedRun.from_reports("a", t[:8], bad[:8]), _finished_runs())
        d2 = rule.assess(ObservedRun.from_reports("b", t[:16], bad[:16]), _finished_runs())
    assert d1.reason == d2.reason == "forecast" and d2.stop
    assert sum("parametric ensemble instead" in r.message for r in caplog.records) == 1
