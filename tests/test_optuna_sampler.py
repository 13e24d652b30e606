"""NASAssistSampler: plans on a conditional define-by-run space, honours Optuna's sampler contract,
keeps its state in the storage (plans, reservations, the mutation space) and never leaves a trial RUNNING."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nasassist_plugins.errors import ConfigurationError
from nasassist_plugins.optuna import NASAssistSampler, report_model
from nasassist_plugins.optuna import _attrs
from nasassist_plugins.search import PlannerConfig, SearchError, params_key
from optuna_space import EXAMPLE_INPUT, build_model, objective, tiny_predictor

optuna.logging.set_verbosity(optuna.logging.WARNING)
torch.set_num_threads(1)  # tiny models: threads only add contention on a shared machine
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def space_predictor():
    """A small untrained predictor whose gate is fitted on this space (see ``optuna_space.tiny_predictor``)."""
    return tiny_predictor()


@pytest.fixture(scope="module")
def weights_file(space_predictor, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    space_predictor.save(path)
    return str(path)


def _sampler(predictor, builder=build_model, seed=0, **settings) -> NASAssistSampler:
    settings.setdefault("min_candidates", 8)
    settings.setdefault("max_candidates", 8)
    return NASAssistSampler(build_model=builder, example_input=EXAMPLE_INPUT, predictor=predictor,
                            config=PlannerConfig(**settings), seed=seed)


def _plan(trial) -> dict:
    return _attrs.join_attr(trial.system_attrs, _attrs.PLAN)


def _decided(trial, field: str):
    return _attrs.decision_of(trial.system_attrs)[field]


def test_plans_every_trial_of_a_conditional_space(space_predictor):
    study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor))
    study.optimize(objective, n_trials=12)
    assert len(study.trials) == 12 and all(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        plan = _plan(trial)
        # the trial took exactly the planned architecture, conditional parameters included
        assert {k: v for k, v in trial.params.items() if k != "lr"} == plan
        assert all(f"width_{i}" in plan for i in range(plan["n_blocks"]))
        assert not any(f"width_{i}" in plan for i in range(plan["n_blocks"], 3))
        assert ("hidden" in plan) == (plan["head"] == "mlp")
        decided = _attrs.decision_of(trial.system_attrs)
        assert decided[_attrs.CANDIDATES] >= 2 and decided[_attrs.PLAN_SECONDS] > 0
        assert np.isfinite(trial.user_attrs[_attrs.USER_PREDICTED])
        assert "lr" in trial.params  # a parameter the builder never reads comes from the base sampler
    # de-duplication: no architecture is run twice while unseen candidates exist
    assert len({params_key(_plan(t)) for t in study.trials}) == 12
    assert len({t.system_attrs[_attrs.ARCH] for t in study.trials}) == 12
    assert {_decided(t, _attrs.ORIGIN) for t in study.trials} >= {"random", "mutation"}


def test_never_runs_a_candidate_below_the_quantile(space_predictor):
    sampler = _sampler(space_predictor, prune_quantile=0.75, fine_tune=False, min_candidates=12, max_candidates=12,
                       n_exploration_trials=0, shortlist_size=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=6)
    for trial in study.trials:
        key = params_key(_plan(trial))
        threshold = _decided(trial, _attrs.THRESHOLD)
        # the stored prediction is recomputed from the surrogate, not copied from the decision
        assert threshold is not None and sampler.surrogate.predict([key])[0][0] >= threshold - 1e-12


def test_fine_tuning_changes_predictions_after_trials_finish(space_predictor):
    sampler = _sampler(space_predictor, fine_tune_min_trials=5)
    study = optuna.create_study(direction="minimize", sampler=sampler)  # a loss: direction must be respected
    study.optimize(lambda t: -objective(t), n_trials=10)
    scales = [_decided(t, _attrs.PREDICTION_SCALE) for t in study.trials]
    assert scales[0] == "zero-shot rank" and scales[-1].startswith("fine-tuned on")
    assert sampler.surrogate.is_fine_tuned
    keys = [params_key(_plan(t)) for t in study.trials]
    tuned, _ = sampler.surrogate.predict(keys)
    zero_shot = sampler.surrogate.predict_zero_shot(keys)
    assert not np.allclose(tuned, zero_shot)
    # the surrogate learned "larger is better" on the negated loss: it ranks the finished trials right
    from scipy.stats import spearmanr

    assert spearmanr(tuned, [-t.value for t in study.trials]).statistic > 0.5
    # shown to users on the objective's own scale (a loss, so negative of the internal score)
    last = study.trials[-1]
    assert last.user_attrs[_attrs.USER_PREDICTED] == pytest.approx(-_decided(last, _attrs.PREDICTED_MEAN))


def test_pruned_trials_are_censored_evidence(space_predictor):
    """With a pruner on, weak architectures are pruned; the surrogate must still learn from them."""

    def objective_with_curve(trial):
        value = objective(trial)
        for step in range(3):
            trial.report(value * (step + 1) / 3, step)
            if step == 1 and value < 0.4:  # weak ones stop after two steps (a pruner's decision)
                raise optuna.TrialPruned()
        return value

    sampler = _sampler(space_predictor, fine_tune_min_trials=4, n_exploration_trials=6)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective_with_curve, n_trials=14)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    # the last fit counted every finished trial, pruned ones included
    assert sampler.surrogate.n_fitted == len(study.trials) - 1
    mean_pruned = sampler.surrogate.predict([params_key(_plan(t)) for t in pruned])[0]
    mean_complete = sampler.surrogate.predict([params_key(_plan(t)) for t in complete])[0]
    assert np.median(mean_pruned) < np.median(mean_complete)


def test_seed_makes_studies_reproducible(space_predictor):
    params = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor, seed=7))
        study.optimize(objective, n_trials=6)
        params.append([t.params for t in study.trials])
    assert params[0] == params[1]


def test_enqueued_parameters_are_kept_and_the_rest_planned(space_predictor):
    study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor))
    study.enqueue_trial({"n_blocks": 2, "width_0": 16})
    study.optimize(objective, n_trials=2)
    first = study.trials[0]
    assert first.params["n_blocks"] == 2 and first.params["width_0"] == 16
    assert _plan(first)["width_0"] == 16 and "width_1" in first.params
    # a fully enqueued architecture is run as given, even one that ran before (e.g. a retry)
    arch = {k: v for k, v in study.trials[1].params.items() if k != "lr"}
    study.enqueue_trial(arch)
    study.optimize(objective, n_trials=1)
    again = study.trials[-1]
    assert _plan(again) == arch and _decided(again, _attrs.ORIGIN) == "enqueued"
    assert np.isfinite(_decided(again, _attrs.PREDICTED_MEAN))


def test_ask_tell_interface_and_parallel_jobs(space_predictor):
    study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor))
    trial = study.ask()
    study.tell(trial, objective(trial))
    study.optimize(objective, n_trials=6, n_jobs=2)
    assert len(study.trials) == 7
    assert all(t.state == TrialState.COMPLETE and _plan(t) for t in study.trials)


def test_without_a_builder_it_is_its_base_sampler_and_says_so_once(caplog):
    caplog.set_level(logging.WARNING)
    sampler = NASAssistSampler(seed=3, base_sampler=optuna.samplers.RandomSampler(seed=3))
    ours = optuna.create_study(sampler=sampler)
    ours.optimize(objective, n_trials=4)
    reference = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    reference.optimize(objective, n_trials=4)
    assert [t.params for t in ours.trials] == [t.params for t in reference.trials]
    assert sum("has no build_model" in r.getMessage() for r in caplog.records) == 1


def test_builder_failures_skip_candidates_and_all_failing_is_a_clear_error(space_predictor):
    def flaky(trial):
        if trial.suggest_int("n_blocks", 1, 3) == 3:
            raise RuntimeError("three blocks do not fit in memory")
        return build_model(trial)

    study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor, flaky))
    study.optimize(lambda t: objective(t) if t.params.get("n_blocks", 1) < 3 else 0.0, n_trials=5)
    assert all(_plan(t)["n_blocks"] < 3 for t in study.trials)

    def broken(trial):
        trial.suggest_int("n_blocks", 1, 3)
        return "not a model"

    study = optuna.create_study(sampler=_sampler(space_predictor, broken, min_candidates=4, max_candidates=4))
    with pytest.raises(SearchError, match="could not build any of .* candidate models.*returned str"):
        study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL and "could not build" in trial.system_attrs[_attrs.ERROR]


def test_every_sampler_error_marks_the_trial_fail_not_running(space_predictor):
    # multi-objective without objectives=[...]: a clear error, and the trial is FAIL, not RUNNING
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(space_predictor))
    with pytest.raises(ConfigurationError, match="no objectives"):
        study.ask()
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert "pass objectives=[...]" in study.trials[0].system_attrs[_attrs.ERROR]

    # an unexpected error deep inside planning (here: the predictor breaks after three trials)
    broken = space_predictor.copy()
    sampler = _sampler(broken)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=3)

    def fail(*args, **kwargs):
        raise RuntimeError("GPU fell off the bus")

    broken.encode = fail
    with pytest.raises(RuntimeError, match="fell off the bus"):
        study.optimize(objective, n_trials=1)
    assert study.trials[-1].state == TrialState.FAIL
    assert "fell off the bus" in study.trials[-1].system_attrs[_attrs.ERROR]
    assert TrialState.RUNNING not in {t.state for t in study.trials}

    # a finite but enormous objective value is no error at all
    study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor, fine_tune_min_trials=3))
    study.optimize(lambda t: 1e200 if t.number == 1 else objective(t), n_trials=8)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert np.isfinite(_decided(study.trials[-1], _attrs.PREDICTED_MEAN))


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ConfigurationError, match="prune_quantile"):
        NASAssistSampler(build_model=build_model, config={"prune_quantile": 1.5})
    with pytest.raises(ConfigurationError, match="acquisition"):
        NASAssistSampler(build_model=build_model, config=PlannerConfig.from_mapping({"acquisition": "thompson"}))
    with pytest.raises(ConfigurationError, match="propose_params"):
        NASAssistSampler(build_model=build_model, proposer=object())
    with pytest.raises(ConfigurationError, match="build_model must be a function"):
        NASAssistSampler(build_model=42)
    with pytest.raises(ConfigurationError, match="unknown planner setting"):
        NASAssistSampler(build_model=build_model, config={"n_candidates": 32})
    with pytest.raises(TypeError):
        NASAssistSampler(build_model, EXAMPLE_INPUT)  # keyword-only, like Optuna's samplers


def test_proposer_proposals_join_the_pool_and_a_failing_proposer_is_harmless(space_predictor):
    class Widen:
        calls = 0

        def propose_params(self, parents, distributions, n, rng):
            Widen.calls += 1
            assert parents[0][1] >= parents[-1][1]  # best first
            best = dict(parents[0][0])
            return [{**best, "width_0": 16, "n_blocks": 3}]

    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, predictor=space_predictor,
                               proposer=Widen(), config={"min_candidates": 8, "max_candidates": 8}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=5)
    assert Widen.calls >= 3

    class Broken:
        def propose_params(self, parents, distributions, n, rng):
            raise ConnectionError("LLM endpoint down")

    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, predictor=space_predictor,
                               proposer=Broken(), config={"min_candidates": 8, "max_candidates": 8}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=4)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


# ---------------------------------------------------------------------------- state in the storage
_WORKER = """
import sys, json, optuna
sys.path.insert(0, {tests!r})
from optuna_space import build_model, objective, EXAMPLE_INPUT
from nasassist_plugins.optuna import NASAssistSampler
from nasassist_plugins.predictor import Predictor
optuna.logging.set_verbosity(optuna.logging.WARNING)
s = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, predictor=Predictor.load({weights!r}),
                     config={config!r}, seed={seed})
study = optuna.load_study(study_name={name!r}, storage={url!r}, sampler=s)
{body}
"""


def _run_worker(tmp_path, weights, url, name, body, config, seed=1):
    code = _WORKER.format(tests=str(TESTS), weights=weights, url=url, name=name, body=body, config=config, seed=seed)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow
def test_restart_in_a_second_process_mutates_parents_and_plans_persist(tmp_path, weights_file):
    """Everything the sampler needs is in the storage: a fresh process mutates parents it never
    planned (the mutation space comes from ``FrozenTrial.distributions``), and a plan it writes
    is there for this process to finish."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    config = {"min_candidates": 8, "max_candidates": 8, "fine_tune": False, "mutation_fraction": 1.0,
              "n_exploration_trials": 0}
    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, predictor=tiny_predictor(),
                               config=config, seed=1)
    optuna.create_study(study_name="restart", storage=url, direction="maximize", sampler=sampler).optimize(
        objective, n_trials=4)
    stdout = _run_worker(tmp_path, weights_file, url, "restart",
                         "study.optimize(objective, n_trials=3)\ntrial = study.ask()\n"
                         "print(json.dumps(study.trials[-1].system_attrs['nasassist:plan']))", config, seed=2)
    study = optuna.load_study(study_name="restart", storage=url)
    first, second, running = study.trials[:4], study.trials[4:7], study.trials[7]
    assert all(t.state == TrialState.COMPLETE for t in first + second)
    assert [_decided(t, _attrs.ORIGIN) for t in second] == ["mutation"] * 3  # pools made of mutations only
    parents = [{k: v for k, v in t.params.items() if k != "lr"} for t in first]
    for trial in second:  # each keeps much of one of the parents
        plan = _plan(trial)
        assert max(sum(p.get(k) == v for k, v in plan.items()) / len(plan) for p in parents) >= 0.4
    # the other process' plan is in the storage: this process finishes that trial, then plans others
    plan = json.loads(stdout.strip().splitlines()[-1])
    assert running.state == TrialState.RUNNING and _plan(running) == plan
    study.tell(running.number, 1.0)
    study = optuna.load_study(study_name="restart", storage=url, sampler=sampler)
    study.optimize(objective, n_trials=2)
    assert all(params_key(_plan(t)) != params_key(plan) for t in study.trials[8:])


def test_a_reserved_architecture_is_not_planned_again(space_predictor):
    clone = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor, seed=5))
    clone.ask()
    clone.ask()
    wanted = clone.trials[1].system_attrs[_attrs.ARCH]  # what trial 1 takes after trial 0
    study = optuna.create_study(direction="maximize", sampler=_sampler(space_predictor, seed=5))
    first = study.ask()
    assert _plan(study.trials[0]) == _plan(clone.trials[0])  # same seed, same plans so far
    # trial 0 is still running and holds the architecture trial 1 would take: trial 1 takes another
    study._storage.set_trial_system_attr(first._trial_id, _attrs.ARCH, wanted)
    study.ask()
    assert study.trials[1].system_attrs[_attrs.ARCH] != wanted


def test_two_concurrent_workers_never_plan_the_same_architecture(space_predictor):
    """Two workers plan at the same time on one storage; every architecture runs once."""

    def small(trial):  # 6 architectures, all in every pool: both workers rank the same candidates
        width = trial.suggest_categorical("width", [4, 8, 16])
        kernel = trial.suggest_categorical("kernel", [1, 3])
        return torch.nn.Sequential(torch.nn.Conv2d(1, width, kernel), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(width, 10))

    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="race", storage=storage, direction="maximize")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(seed):
        try:
            sampler = _sampler(space_predictor, small, seed=seed, min_candidates=12, max_candidates=12, fine_tune=False,
                               n_exploration_trials=0, shortlist_size=0)
            study = optuna.load_study(study_name="race", storage=storage, sampler=sampler)
            for _ in range(3):
                barrier.wait()
                trial = study.ask()
                small(trial)
                study.tell(trial, float(trial.params["width"]))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (0, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    trials = optuna.load_study(study_name="race", storage=storage).trials
    archs = [(t.params["width"], t.params["kernel"]) for t in trials]
    assert len(trials) == 6 and len(set(archs)) == 6


def test_long_plans_are_split_across_system_attrs(tmp_path, space_predictor):
    def wide(trial):  # 120 parameters with long names: the plan's JSON is far over 2,045 characters
        widths = [trial.suggest_categorical(f"a_rather_long_parameter_name_for_block_{i:03d}", [2, 4])
                  for i in range(120)]
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, widths[0] + widths[-1]))

    url = f"sqlite:///{tmp_path / 'long.db'}"
    sampler = _sampler(space_predictor, wide, min_candidates=4, max_candidates=4)
    study = optuna.create_study(storage=url, direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(sum(t.params.values())) if wide(t) is not None else 0.0, n_trials=2)
    trial = optuna.load_study(study_name=study.study_name, storage=url).trials[0]
    chunks = [k for k in trial.system_attrs if k.startswith(_attrs.PLAN + ":")]
    assert len(chunks) >= 3 and all(len(trial.system_attrs[k]) <= _attrs.MAX_ATTR_LENGTH for k in chunks)
    assert _plan(trial) == trial.params and len(trial.params) == 120


def test_report_model_stores_a_zero_shot_score(space_predictor):
    study = optuna.create_study()
    trial = study.ask()
    mean, std = report_model(trial, build_model(trial), EXAMPLE_INPUT, predictor=space_predictor)
    frozen = study.trials[0]
    assert frozen.system_attrs[_attrs.ZERO_SHOT] == pytest.approx(mean) and std > 0
    assert frozen.user_attrs[_attrs.USER_PREDICTED] == pytest.approx(mean)
    with pytest.raises(SearchError, match="running optuna Trial"):
        report_model(frozen, build_model(trial), EXAMPLE_INPUT, predictor=space_predictor)


def test_importing_the_optuna_plugin_is_light():
    """No torch_geometric or transformers (nor the predictor) at import; they load on first use."""
    code = ("import sys; import nasassist_plugins.optuna\n"
            "from nasassist_plugins.optuna import NASAssistSampler, NASAssistPruner, report_model\n"
            "heavy = [m for m in ('torch_geometric', 'transformers', 'nasassist_plugins.predictor', 'sklearn')"
            " if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
