"""NASAssistSampler on multi-objective studies: objectives per candidate, budgets, constraints, storages.

Real Optuna studies on the small conditional CNN space of ``optuna_space.py``; the
"accuracy" is its deterministic stand-in score, parameters and FLOPs are exact, latency is
timed on this machine.
"""

from __future__ import annotations

import threading

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nasassist_plugins.errors import ConfigurationError, NASAssistError, SearchError
from nasassist_plugins.hardware import count_flops, count_params
from nasassist_plugins.optuna import NASAssistSampler, _attrs
from nasassist_plugins.search import PlannerConfig
from nasassist_plugins.search.pareto import pareto_mask, to_minimization
from optuna_space import EXAMPLE_INPUT, build_model, score, tiny_predictor

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
torch.set_num_threads(1)

MAX_PARAMS = 1500.0


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor()


def _sampler(predictor, objectives, builder=build_model, seed=0, **kwargs) -> NASAssistSampler:
    config = PlannerConfig(min_candidates=12, max_candidates=12, n_exploration_trials=2, shortlist_size=2)
    return NASAssistSampler(build_model=builder, example_input=EXAMPLE_INPUT, predictor=predictor,
                            objectives=objectives, config=config, seed=seed, **kwargs)


def _predicted(trial, name):
    return trial.user_attrs.get(f"{_attrs.USER_PREDICTED}_{name}")


def _acc_params(trial):
    model = build_model(trial)
    return score(model), count_params(model, None)


def test_two_objectives_mixed_directions_with_a_parameter_budget(predictor):
    sampler = _sampler(predictor, ["score", "params"], max_params=MAX_PARAMS)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(_acc_params, n_trials=10)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert t.values[1] <= MAX_PARAMS  # never run over the budget: parameters are known before training
        assert _predicted(t, "params") == t.values[1]  # exact from the candidate's model
        assert t.user_attrs[_attrs.USER_FEASIBLE] is True
    # the score is shown once the surrogate is fine-tuned on the study's trials (the metric's scale)
    assert any(_predicted(t, "score") is not None for t in study.trials[5:])
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == len(study.trials)  # no repeats
    # the front is a real Pareto front of what ran
    front = study.best_trials
    values = to_minimization([t.values for t in study.trials], ["maximize", "minimize"])
    assert len(front) == int(pareto_mask(values).sum()) >= 1


def test_three_objectives_with_a_callable_and_flops(predictor):
    def depth(model, graph):  # a callable objective (model, graph) -> float, maximised
        return float(sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()))

    def objective(trial):
        model = build_model(trial)
        graph = __import__("nasassist_plugins.adapters", fromlist=["from_torch"]).from_torch(model, EXAMPLE_INPUT)
        return score(model), count_flops(model, graph), depth(model, graph)

    sampler = _sampler(predictor, ["score", "flops", depth])
    study = optuna.create_study(directions=["maximize", "minimize", "maximize"], sampler=sampler)
    study.optimize(objective, n_trials=8)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert _predicted(t, "depth") == t.values[2]
        assert _predicted(t, "flops") == pytest.approx(t.values[1])
    decisions = [_attrs.decision_of(t.system_attrs) for t in study.trials]
    assert all(d[_attrs.CANDIDATES] >= 1 for d in decisions)


def test_constraints_func_is_applied_before_training_and_stored_after(predictor):
    def constraints(trial):  # parameters at most MAX_PARAMS: computable from the predicted values
        return (trial.values[1] - MAX_PARAMS,)

    sampler = _sampler(predictor, ["score", "params"], constraints_func=constraints, seed=1)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(_acc_params, n_trials=8)
    infeasible = [t for t in study.trials if t.values[1] > MAX_PARAMS]
    assert not infeasible, [t.values for t in infeasible]
    assert all(list(t.system_attrs["constraints"]) == [t.values[1] - MAX_PARAMS] for t in study.trials)

    # a constraint that needs what only the run gives (a user attr) cannot filter candidates:
    # trials run, and it is still evaluated and stored when they finish
    def from_user_attr(trial):
        return (trial.user_attrs["c"],)

    def objective(trial):
        trial.set_user_attr("c", 1.0)
        return _acc_params(trial)

    sampler = _sampler(predictor, ["score", "params"], constraints_func=from_user_attr)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert all(list(t.system_attrs["constraints"]) == [1.0] for t in study.trials)
    assert study.best_trials == []  # every trial infeasible, as Optuna reads the stored constraints


def test_measured_latency_objective_and_budget_on_a_tiny_model(predictor):
    from nasassist_plugins.hardware import measure_latency

    budget = 5.0  # ms: every candidate of this space is far faster; a budget that filters nothing real

    def objective(trial):
        model = build_model(trial)
        return score(model), measure_latency(model, EXAMPLE_INPUT, n_repeats=3)

    sampler = _sampler(predictor, ["score", "latency"], max_latency_ms=budget)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=4)
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert 0 < _predicted(t, "latency") <= budget  # timed on the candidate before it ran

    # an impossible budget: every candidate is predicted infeasible, so the trial fails, saying why
    sampler = _sampler(predictor, ["score", "latency"], max_latency_ms=1e-6)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.raises(SearchError, match="predicted feasible"):
        study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert "predicted feasible" in trial.system_attrs[_attrs.ERROR] and "max_latency_ms" in trial.system_attrs[_attrs.ERROR]


def test_single_objective_studies_with_a_budget_respect_it(predictor):
    sampler = _sampler(predictor, None, max_params=MAX_PARAMS)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: score(build_model(t)), n_trials=5)
    assert all(count_params(build_model(optuna.trial.FixedTrial(t.params)), None) <= MAX_PARAMS for t in study.trials)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objectives": ["score", "bogus"]}, "unknown objective 'bogus'"),
        ({"objectives": ["score", "latency"], "example_input": None}, "example_input"),
        ({"objectives": ["score", "latency:no-such-device"]}, "no-such-device"),
        ({"objectives": ["score", "score"]}, "'score' can be only one"),
        ({"objectives": "score"}, "objectives must be a list"),
        ({"objectives": ["score", "params"], "max_params": -1}, "max_params must be a positive number"),
        ({"objectives": ["score", "params"], "pareto_rule": "nsga"}, "pareto_rule must be one of"),
        ({"objectives": ["score", "params"], "constraints_func": 3}, "constraints_func must be a function"),
    ],
)
def test_bad_objectives_are_one_line_configuration_errors(predictor, kwargs, message):
    kwargs = {"build_model": build_model, "example_input": EXAMPLE_INPUT, "predictor": predictor, **kwargs}
    with pytest.raises(ConfigurationError, match=message) as info:
        NASAssistSampler(**kwargs)
    assert "\n" not in str(info.value)


def test_objectives_that_cannot_be_computed_fail_the_trial_with_the_reason(predictor):
    def run(sampler, directions, objective=_acc_params):
        study = optuna.create_study(directions=directions, sampler=sampler)
        with pytest.raises(NASAssistError):  # raised by the sampler, after failing the trial
            study.optimize(objective, n_trials=1)
        (trial,) = study.trials
        assert trial.state == TrialState.FAIL  # never left RUNNING
        return trial.system_attrs[_attrs.ERROR]

    # one objective per direction
    error = run(_sampler(predictor, ["score", "params"]), ["maximize", "minimize", "minimize"])
    assert "2 objectives (score, params) for a study with 3 directions" in error
    # several directions without objectives
    error = run(_sampler(predictor, None), ["maximize", "minimize"])
    assert "pass objectives=[...]" in error

    # a callable that fails on every candidate
    def broken(model, graph):
        raise RuntimeError("no power meter attached")

    error = run(_sampler(predictor, ["score", broken]), ["maximize", "minimize"])
    assert "objective 'broken' failed: RuntimeError: no power meter attached" in error

    # a builder that returns graphs: there is nothing to time
    from nasassist_plugins.adapters import from_torch

    def graph_builder(trial):
        return from_torch(build_model(trial), EXAMPLE_INPUT)

    error = run(_sampler(predictor, ["score", "latency"], builder=graph_builder), ["maximize", "minimize"])
    assert "latency: the builder returned a graph, not a model" in error


def _two_workers(url: str, predictor, n_trials: int = 3) -> optuna.Study:
    storage = optuna.storages.RDBStorage(url) if not url.startswith("sqlite") else url
    name = "mo-two-workers"
    optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    errors: list[BaseException] = []

    def worker(seed):
        try:
            sampler = _sampler(predictor, ["score", "params"], seed=seed, max_params=MAX_PARAMS)
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
            study.optimize(_acc_params, n_trials=n_trials)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.trials
    assert len(trials) == 2 * n_trials and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.values[1] <= MAX_PARAMS and _predicted(t, "params") == t.values[1] for t in trials)
    assert len({t.system_attrs[_attrs.ARCH] for t in trials}) == len(trials)  # reservations hold across workers
    return study


def test_two_workers_on_sqlite(tmp_path, predictor):
    _two_workers(f"sqlite:///{tmp_path / 'mo.db'}", predictor)


@pytest.mark.slow
def test_two_workers_on_postgresql(postgres_url, predictor):
    _two_workers(postgres_url, predictor)

