"""NASAssistSampler: plans on a conditional define-by-run space, honours Optuna's sampler contract."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from nasassist_plugins.optuna import NASAssistSampler, report_model
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.predictor import Predictor
from nasassist_plugins.search import SearchError, StudySurrogate, params_key, select_candidate
from nasassist_plugins.search.candidates import contains, mutate_value, sample_value
from optuna_space import EXAMPLE_INPUT, build_model, objective

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """A small untrained predictor whose gate is fitted on a few models of the space."""
    torch.manual_seed(0)
    predictor = Predictor(hidden_dim=16, ensemble_size=2, seed=0)
    rng = np.random.RandomState(0)
    from nasassist_plugins.optuna import CandidateTrial

    models = [build_model(CandidateTrial(rng)) for _ in range(12)]
    predictor.fit_gate(predictor.embed(models, EXAMPLE_INPUT), candidates=(1, 2))
    return predictor


@pytest.fixture(scope="module")
def weights_file(predictor, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    predictor.save(path)
    return str(path)


def _sampler(predictor, **kwargs) -> NASAssistSampler:
    kwargs.setdefault("n_candidates", 8)
    kwargs.setdefault("seed", 0)
    return NASAssistSampler(build_model, EXAMPLE_INPUT, predictor=predictor, **kwargs)


def test_plans_every_trial_of_a_conditional_space(predictor):
    sampler = _sampler(predictor)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=12)
    assert len(study.trials) == 12 and all(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        plan = trial.system_attrs[_attrs.PLAN]
        # the trial took exactly the planned architecture, conditional parameters included
        assert {k: v for k, v in trial.params.items() if k != "lr"} == plan
        assert all(f"width_{i}" in plan for i in range(plan["n_blocks"]))
        assert not any(f"width_{i}" in plan for i in range(plan["n_blocks"], 3))
        assert ("hidden" in plan) == (plan["head"] == "mlp")
        assert trial.system_attrs[_attrs.CANDIDATES] >= 2
        assert np.isfinite(trial.user_attrs[_attrs.USER_PREDICTED])
        assert "lr" in trial.params  # a parameter the builder never reads comes from the base sampler
    # de-duplication: no architecture is run twice while unseen candidates exist
    keys = [params_key(t.system_attrs[_attrs.PLAN]) for t in study.trials]
    assert len(set(keys)) == len(keys)
    assert {t.system_attrs[_attrs.ORIGIN] for t in study.trials} >= {"random", "mutation"}


def test_never_runs_a_candidate_below_the_quantile(predictor):
    sampler = _sampler(predictor, prune_quantile=0.75, fine_tune=False, n_candidates=12)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=6)
    for trial in study.trials:
        threshold = trial.system_attrs[_attrs.THRESHOLD]
        assert threshold is not None and trial.system_attrs[_attrs.PREDICTED_MEAN] >= threshold


def test_fine_tuning_changes_predictions_after_trials_finish(predictor):
    sampler = _sampler(predictor, fine_tune_min_trials=5)
    study = optuna.create_study(direction="minimize", sampler=sampler)  # a loss: direction must be respected
    study.optimize(lambda t: -objective(t), n_trials=10)
    scales = [t.system_attrs[_attrs.PREDICTION_SCALE] for t in study.trials]
    assert scales[0] == "zero-shot rank" and scales[-1].startswith("fine-tuned on")
    assert sampler.surrogate.is_fine_tuned
    keys = [params_key(t.system_attrs[_attrs.PLAN]) for t in study.trials]
    tuned, _ = sampler.surrogate.predict(keys)
    zero_shot = sampler.surrogate.predict_zero_shot(keys)
    assert not np.allclose(tuned, zero_shot)
    # the surrogate learned "larger is better" on the negated loss: it ranks the finished trials right
    from scipy.stats import spearmanr

    assert spearmanr(tuned, [-t.value for t in study.trials]).statistic > 0.5
    # shown to users on the objective's own scale (a loss, so negative of the internal score)
    last = study.trials[-1]
    assert last.user_attrs[_attrs.USER_PREDICTED] == pytest.approx(-last.system_attrs[_attrs.PREDICTED_MEAN])


def test_surrogate_fit_on_values_changes_and_improves_ranking(predictor):
    rng = np.random.RandomState(1)
    from nasassist_plugins.optuna import CandidateTrial
    from nasassist_plugins.adapters import from_torch
    from optuna_space import score

    models = [build_model(CandidateTrial(rng)) for _ in range(24)]
    graphs = [from_torch(m, EXAMPLE_INPUT) for m in models]
    keys = [f"m{i}" for i in range(24)]
    values = {k: score(m) for k, m in zip(keys, models)}
    for mode in ("gp", "moe"):
        surrogate = StudySurrogate(predictor, fine_tune=mode, min_fit_points=5, fit_seconds=3)
        surrogate.encode(keys, graphs)
        before, _ = surrogate.predict(keys[16:])
        assert surrogate.update({k: values[k] for k in keys[:16]})
        after, std = surrogate.predict(keys[16:])
        assert not np.allclose(before, after) and np.all(std >= 0)
        assert 0.5 * min(values.values()) < after.mean() < 2 * max(values.values())  # on the values' scale


def test_seed_makes_studies_reproducible(predictor):
    params = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=_sampler(predictor, seed=7))
        study.optimize(objective, n_trials=6)
        params.append([t.params for t in study.trials])
    assert params[0] == params[1]


def test_enqueued_parameters_are_kept_and_the_rest_planned(predictor):
    study = optuna.create_study(direction="maximize", sampler=_sampler(predictor))
    study.enqueue_trial({"n_blocks": 2, "width_0": 16})
    study.optimize(objective, n_trials=2)
    first = study.trials[0]
    assert first.params["n_blocks"] == 2 and first.params["width_0"] == 16
    assert first.system_attrs[_attrs.PLAN]["width_0"] == 16 and "width_1" in first.params


def test_ask_tell_interface_and_parallel_jobs(predictor):
    study = optuna.create_study(direction="maximize", sampler=_sampler(predictor))
    trial = study.ask()
    study.tell(trial, objective(trial))
    study.optimize(objective, n_trials=6, n_jobs=2)
    assert len(study.trials) == 7
    assert all(t.state == TrialState.COMPLETE and _attrs.PLAN in t.system_attrs for t in study.trials)


def test_without_a_builder_it_is_its_base_sampler_and_says_so_once(caplog):
    caplog.set_level(logging.WARNING)
    optuna.logging.enable_propagation()
    try:
        ours = optuna.create_study(sampler=NASAssistSampler(seed=3, base_sampler=optuna.samplers.RandomSampler(seed=3)))
        ours.optimize(objective, n_trials=4)
    finally:
        optuna.logging.disable_propagation()
    reference = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    reference.optimize(objective, n_trials=4)
    assert [t.params for t in ours.trials] == [t.params for t in reference.trials]
    assert sum("has no build_model" in r.getMessage() for r in caplog.records) == 1


def test_builder_failures_skip_candidates_and_all_failing_is_a_clear_error(predictor):
    def flaky(trial):
        if trial.suggest_int("n_blocks", 1, 3) == 3:
            raise RuntimeError("three blocks do not fit in memory")
        return build_model(trial)

    sampler = NASAssistSampler(flaky, EXAMPLE_INPUT, predictor=predictor, n_candidates=8, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: objective(t) if t.params.get("n_blocks", 1) < 3 else 0.0, n_trials=5)
    assert all(t.system_attrs[_attrs.PLAN]["n_blocks"] < 3 for t in study.trials)

    def broken(trial):
        trial.suggest_int("n_blocks", 1, 3)
        return "not a model"

    study = optuna.create_study(sampler=NASAssistSampler(broken, EXAMPLE_INPUT, predictor=predictor, n_candidates=4))
    with pytest.raises(SearchError, match="could not build any of .* candidate models.*returned str"):
        study.optimize(objective, n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL]  # no trial is left RUNNING


def test_multi_objective_and_bad_arguments_give_clear_errors(predictor):
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(predictor))
    with pytest.raises(SearchError, match="single-objective"):
        study.ask()
    with pytest.raises(SearchError, match="prune_quantile"):
        NASAssistSampler(build_model, EXAMPLE_INPUT, prune_quantile=1.5)
    with pytest.raises(SearchError, match="acquisition"):
        NASAssistSampler(build_model, EXAMPLE_INPUT, acquisition="thompson")
    with pytest.raises(SearchError, match="propose_params"):
        NASAssistSampler(build_model, EXAMPLE_INPUT, proposer=object())
    with pytest.raises(SearchError, match="build_model must be a function"):
        NASAssistSampler(build_model=42)
    with pytest.raises(SearchError, match="fine_tune"):
        StudySurrogate(fine_tune="xgboost")


def test_proposer_proposals_join_the_pool_and_a_failing_proposer_is_harmless(predictor):
    class Widen:
        calls = 0

        def propose_params(self, parents, distributions, n, rng):
            Widen.calls += 1
            assert parents[0][1] >= parents[-1][1]  # best first
            best = dict(parents[0][0])
            return [{**best, "width_0": 16, "n_blocks": 3}]

    study = optuna.create_study(direction="maximize", sampler=_sampler(predictor, proposer=Widen()))
    study.optimize(objective, n_trials=5)
    assert Widen.calls >= 3

    class Broken:
        def propose_params(self, parents, distributions, n, rng):
            raise ConnectionError("LLM endpoint down")

    study = optuna.create_study(direction="maximize", sampler=_sampler(predictor, proposer=Broken()))
    study.optimize(objective, n_trials=4)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_plan_persists_across_processes(tmp_path, weights_file):
    """A plan written by one process is in the storage for every other process."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="persist", storage=url, direction="maximize")
    code = (
        "import sys, json, optuna; sys.path.insert(0, %r)\n"
        "from optuna_space import build_model, EXAMPLE_INPUT\n"
        "from nasassist_plugins.optuna import NASAssistSampler\n"
        "from nasassist_plugins.predictor import Predictor\n"
        "s = NASAssistSampler(build_model, EXAMPLE_INPUT, predictor=Predictor.load(%r), n_candidates=4, seed=1)\n"
        "study = optuna.load_study(study_name='persist', storage=%r, sampler=s)\n"
        "trial = study.ask()\n"
        "print(json.dumps(study._storage.get_trial(trial._trial_id).system_attrs['nasassist:plan']))\n"
    ) % (str(Path(__file__).parent), weights_file, url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    study = optuna.load_study(study_name="persist", storage=url)
    (trial,) = study.trials
    assert trial.state == TrialState.RUNNING and trial.system_attrs[_attrs.PLAN] == plan
    # this process finishes the trial the other one planned, then plans new ones that differ from it
    study.tell(trial.number, 1.0)
    sampler = NASAssistSampler(build_model, EXAMPLE_INPUT, predictor=Predictor.load(weights_file), n_candidates=4, seed=2)
    study = optuna.load_study(study_name="persist", storage=url, sampler=sampler)
    study.optimize(objective, n_trials=2)
    assert all(params_key(t.system_attrs[_attrs.PLAN]) != params_key(plan) for t in study.trials[1:])


def test_report_model_stores_a_zero_shot_score(predictor):
    study = optuna.create_study()
    trial = study.ask()
    mean, std = report_model(trial, build_model(trial), EXAMPLE_INPUT, predictor=predictor)
    frozen = study.trials[0]
    assert frozen.system_attrs[_attrs.ZERO_SHOT] == pytest.approx(mean) and std > 0
    assert frozen.user_attrs[_attrs.USER_PREDICTED] == pytest.approx(mean)
    with pytest.raises(SearchError, match="running optuna Trial"):
        report_model(frozen, build_model(trial), EXAMPLE_INPUT, predictor=predictor)


@pytest.mark.parametrize(
    "distribution",
    [
        FloatDistribution(1e-5, 1.0, log=True),
        FloatDistribution(-2.0, 2.0, step=0.5),
        FloatDistribution(0.0, 1.0),
        IntDistribution(1, 1024, log=True),
        IntDistribution(2, 20, step=3),
        IntDistribution(5, 5),
        CategoricalDistribution([16, 32, 64, 128]),
        CategoricalDistribution(["relu", "gelu", None, True]),
    ],
)
def test_draws_and_mutations_stay_inside_every_distribution(distribution):
    rng = np.random.RandomState(0)
    for _ in range(200):
        value = sample_value(distribution, rng)
        assert contains(distribution, value)
        assert contains(distribution, mutate_value(distribution, value, rng))


def test_select_candidate_respects_quantile_exclusion_and_acquisition():
    mean, std = np.array([0.1, 0.9, 0.5, 0.8]), np.array([0.5, 0.01, 0.01, 0.3])
    assert select_candidate(mean, std, prune_quantile=0.5, rule="mean").index == 1
    assert select_candidate(mean, std, prune_quantile=0.5, rule="ucb", kappa=1.0).index == 3
    assert select_candidate(mean, std, prune_quantile=0.5, rule="mean", exclude=[False, True, False, False]).index == 3
    # the low-mean, high-uncertainty candidate is never chosen while it is below the quantile
    assert select_candidate(mean, std, prune_quantile=0.3, rule="ucb", kappa=10.0).index != 0
    with pytest.raises(SearchError):
        select_candidate([], [])
