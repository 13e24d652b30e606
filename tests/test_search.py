"""nasassist_plugins.search: the config, draws and mutations, the decision step, the surrogate and the planner."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nasassist_plugins.errors import ConfigurationError
from nasassist_plugins.optuna import CandidateTrial
from nasassist_plugins.search import (
    PlannerConfig,
    SearchError,
    StudySurrogate,
    params_key,
    rank_candidates,
    select_candidate,
)
from nasassist_plugins.search.candidates import contains, mutate_value, sample_value
from nasassist_plugins.search.planner import Planner, plan_budget
from nasassist_plugins.search.space import SearchSpace
from optuna_space import EXAMPLE_INPUT, build_model, score, tiny_predictor

torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor()


class Source:
    """The conditional CNN space of optuna_space as a candidate source (counts builds)."""

    example_input = EXAMPLE_INPUT

    def __init__(self, delay: float = 0.0) -> None:
        self.builds = 0
        self.delay = delay
        self.rng = np.random.RandomState(0)

    def _build(self, trial):
        self.builds += 1
        if self.delay:
            time.sleep(self.delay)
        model = build_model(trial)
        return dict(trial.params), model

    def sample(self, rng):
        return self._build(CandidateTrial(rng))

    def complete(self, params):
        if params.get("head") == "broken":
            raise ValueError("this head cannot be built")
        return self._build(CandidateTrial(self.rng, forced=params))


def _models(n: int, seed: int):
    rng = np.random.RandomState(seed)
    trials = [CandidateTrial(rng) for _ in range(n)]
    models = [build_model(t) for t in trials]
    return [dict(t.params) for t in trials], models


# ---------------------------------------------------------------------------- config
def test_config_validates_once_with_clear_messages():
    config = PlannerConfig(max_candidates=64, prune_quantile=0.25, fine_tune=True)
    assert config.fine_tune == "gp" and config.replace(kappa=2.0).kappa == 2.0
    assert PlannerConfig.from_mapping({"max_candidates": 8, "min_candidates": 8}).min_candidates == 8
    assert PlannerConfig.from_mapping(config) is config and PlannerConfig.from_mapping(None) == PlannerConfig()
    for bad, match in (({"prune_quantile": 1.5}, "prune_quantile"), ({"acquisition": "thompson"}, "acquisition"),
                       ({"max_candidates": 0}, "max_candidates"), ({"min_candidates": 9, "max_candidates": 8},
                                                                    "min_candidates"),
                       ({"tournament_size": 30}, "tournament_size"), ({"fine_tune": "xgboost"}, "fine_tune"),
                       ({"max_plan_seconds": -1.0}, "max_plan_seconds"), ({"kappa": float("nan")}, "kappa"),
                       ({"n_candidates": 32}, "unknown planner setting")):
        with pytest.raises(ConfigurationError, match=match):
            PlannerConfig.from_mapping(bad)
    with pytest.raises(TypeError):
        PlannerConfig(64)  # keyword-only


def test_plan_budget_is_a_fraction_of_the_median_trial():
    config = PlannerConfig(plan_time_fraction=0.05)
    assert plan_budget(config, []) is None
    assert plan_budget(config, [10.0, 20.0, 1000.0]) == pytest.approx(1.0)
    assert plan_budget(config.replace(max_plan_seconds=0.3), [10.0]) == 0.3


# ---------------------------------------------------------------------------- draws and mutations
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


# ---------------------------------------------------------------------------- decision step
def test_select_candidate_respects_quantile_exclusion_and_acquisition():
    mean, std = np.array([0.1, 0.9, 0.5, 0.8]), np.array([0.5, 0.01, 0.01, 0.3])
    assert select_candidate(mean, std, prune_quantile=0.5, rule="mean").index == 1
    assert select_candidate(mean, std, prune_quantile=0.5, rule="ucb", kappa=1.0).index == 3
    assert select_candidate(mean, std, prune_quantile=0.5, rule="mean", exclude=[False, True, False, False]).index == 3
    # the low-mean, high-uncertainty candidate is never chosen while it is below the quantile
    assert select_candidate(mean, std, prune_quantile=0.3, rule="ucb", kappa=10.0).index != 0
    with pytest.raises(SearchError):
        select_candidate([], [])


def test_ranking_orders_eligible_then_rest_and_never_raises_on_values():
    mean, std = np.array([0.1, 0.9, np.nan, 0.5, 0.8]), np.full(5, 0.1)
    ranking = rank_candidates(mean, std, prune_quantile=0.5, rule="mean", exclude=[False, False, False, False, True])
    assert list(ranking.order) == [1, 3, 0, 4, 2]  # eligible by value, below the quantile, excluded, unscored
    assert ranking.n_eligible == 2 and ranking.threshold == pytest.approx(0.5)
    explore = rank_candidates(mean, std, prune_quantile=0.5, explore=True, rng=np.random.RandomState(0))
    assert set(explore.order[:3]) == {1, 3, 4}  # random order, but only among the eligible
    # no finite prediction (an objective of 1e200 made a fit blow up, say): a ranking, not an error
    assert sorted(rank_candidates([np.inf, np.nan], [1.0, 1.0]).order) == [0, 1]
    ei = rank_candidates([1e200, 0.5, 0.2], [1.0, 1.0, 1.0], rule="ei", best=1e200)
    assert ei.order[0] == 0 and np.isfinite(ei.values).all()


# ---------------------------------------------------------------------------- surrogate
def test_surrogate_fit_on_values_changes_and_improves_ranking(predictor):
    from nasassist_plugins.adapters import from_torch

    _, models = _models(24, 1)
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


def test_censored_pruned_results_pull_predictions_down(predictor):
    """A pruned trial's last value bounds its result: the surrogate must rank such architectures low."""
    from nasassist_plugins.adapters import from_torch
    from scipy.stats import spearmanr

    _, models = _models(40, 2)
    keys = [f"m{i}" for i in range(40)]
    values = np.array([score(m) for m in models])
    surrogate = StudySurrogate(predictor, fine_tune="gp", min_fit_points=5)
    surrogate.encode(keys, [from_torch(m, EXAMPLE_INPUT) for m in models])
    order = np.argsort(values)
    weak, strong = order[:12], order[-12:]  # the weak ones were pruned at a low intermediate value
    done = {keys[i]: values[i] for i in strong[:8]}
    bounds = {keys[i]: float(values.min()) * 0.5 for i in weak[:8]}
    assert surrogate.update(done, force=True)
    without, _ = surrogate.predict([keys[i] for i in weak[8:]])
    assert surrogate.update(done, bounds, force=True) and surrogate.n_fitted == 16
    held_out = [keys[i] for i in np.r_[weak[8:], strong[8:]]]
    mean, _ = surrogate.predict(held_out)
    assert mean[:4].mean() < without.mean()  # pruned neighbours pulled the weak architectures down
    assert mean[:4].max() < mean[4:].min()  # unseen weak architectures rank below unseen strong ones
    assert spearmanr(mean, values[np.r_[weak[8:], strong[8:]]]).statistic > 0.5


def test_extreme_values_do_not_break_the_fit(predictor):
    from nasassist_plugins.adapters import from_torch

    _, models = _models(8, 3)
    keys = [f"m{i}" for i in range(8)]
    surrogate = StudySurrogate(predictor, fine_tune="gp", min_fit_points=3)
    surrogate.encode(keys, [from_torch(m, EXAMPLE_INPUT) for m in models])
    assert surrogate.update({keys[0]: 1e200, keys[1]: 0.5, keys[2]: 0.4, keys[3]: 0.3}, force=True)
    mean, std = surrogate.predict(keys)
    assert np.isfinite(mean).all() and np.isfinite(std).all()


def test_isomorphic_graphs_share_an_architecture_identity(predictor):
    from nasassist_plugins.adapters import from_torch

    params, models = _models(6, 4)
    surrogate = StudySurrogate(predictor)
    graphs = [from_torch(m, EXAMPLE_INPUT) for m in models]
    surrogate.encode(["a", "b"], [graphs[0], graphs[0].copy()])
    surrogate.encode([f"g{i}" for i in range(1, 6)], graphs[1:])
    assert surrogate.arch("a") == surrogate.arch("b")
    distinct = {params_key(p) for p in params[1:]}
    assert len({surrogate.arch(f"g{i}") for i in range(1, 6)}) == len(distinct)


# ---------------------------------------------------------------------------- planner
def test_planner_pool_grows_with_the_budget_and_encodes_each_architecture_once(predictor):
    config = PlannerConfig(min_candidates=4, max_candidates=400, shortlist_size=2, fine_tune=False)
    source = Source(delay=0.01)
    planner = Planner(StudySurrogate(predictor, fine_tune=False), config)
    small = planner.plan(SearchSpace({}), source, np.random.RandomState(0), budget=None)
    assert small is not None and small.n_candidates <= 4
    # the same planner (warm: first calls of the encoder are slow) with a budget
    large = planner.plan(SearchSpace({}), Source(delay=0.01), np.random.RandomState(1), budget=1.5)
    assert large is not None and large.n_candidates > 3 * config.min_candidates
    # a decision with the first pool's random state reuses every encoding: nothing is traced again
    built = planner.n_built
    again = planner.plan(SearchSpace({}), Source(), np.random.RandomState(1), budget=None)
    assert planner.n_built == built and again.n_candidates <= config.min_candidates


def test_planner_never_returns_what_was_run_and_mutates_parents(predictor):
    params, _ = _models(10, 5)
    planner = Planner(StudySurrogate(predictor, fine_tune=False),
                      PlannerConfig(min_candidates=16, max_candidates=16, mutation_fraction=1.0, fine_tune=False))
    distributions = {}
    for p in params:
        trial = CandidateTrial(np.random.RandomState(0), forced=p)
        build_model(trial)
        distributions.update(trial.distributions)
        planner.observe(p, float(len(p)))
    decision = planner.plan(SearchSpace(distributions), Source(), np.random.RandomState(1))
    assert decision is not None and decision.key not in {params_key(p) for p in params}
    assert decision.pool_origins.get("mutation", 0) >= 8
    assert all(c.key not in planner.taken for c in decision.choices())
    assert len({c.arch for c in decision.choices()}) == len(decision.choices())  # isomorphic copies count once


def test_two_stage_scoring_probes_once_and_reuses_stage_one(predictor):
    """Stage 2 re-scores the shortlist from models; when the predictor's model score equals
    its graph score (today's predictor), the planner notices once and stops paying for it."""
    calls = []
    counting = predictor.copy()
    original = counting.predict

    def predict(items, example_input=None, **kwargs):
        calls.append(len(items))
        return original(items, example_input, **kwargs)

    counting.predict = predict
    planner = Planner(StudySurrogate(counting, fine_tune=False), PlannerConfig(min_candidates=8, max_candidates=8,
                                                                               shortlist_size=3, fine_tune=False))
    first = planner.plan(SearchSpace({}), Source(), np.random.RandomState(0))
    assert calls == [3] and first.zero_shot_stage == 2
    planner.plan(SearchSpace({}), Source(), np.random.RandomState(1))
    assert calls == [3]  # same scores as stage 1: not asked again

    fused = predictor.copy()
    base_predict = fused.predict
    fused.predict = lambda items, example_input=None, **kw: tuple(
        np.asarray(a) + (10.0 if k == 0 else 0.0) for k, a in enumerate(base_predict(items, example_input, **kw)))
    planner = Planner(StudySurrogate(fused, fine_tune=False), PlannerConfig(min_candidates=8, max_candidates=8,
                                                                            shortlist_size=3, fine_tune=False))
    decision = planner.plan(SearchSpace({}), Source(), np.random.RandomState(0))
    stage1 = planner.surrogate.zero_shot([c.key for c in decision.choices()[3:]])[0]
    assert decision.zero_shot_stage == 2 and decision.zero_shot > stage1.max()  # the refined score decides


def test_proposer_gets_the_planners_builder_and_surrogate(predictor):
    seen = {}

    class Proposer:
        def propose_params(self, parents, distributions, n, rng, context=None):
            best = dict(parents[0][0])
            moved = {**best, "n_blocks": 1 if best["n_blocks"] > 1 else 2}
            seen["graph"] = context.graph_of(moved)
            seen["score"] = context.score([moved, {**moved, "head": "broken"}])
            return [moved]

    params, _ = _models(6, 6)
    source = Source()
    planner = Planner(StudySurrogate(predictor, fine_tune=False),
                      PlannerConfig(min_candidates=4, max_candidates=4, fine_tune=False), proposer=Proposer())
    for p in params:
        planner.observe(p, 1.0)
    decision = planner.plan(SearchSpace({}), source, np.random.RandomState(0))
    assert seen["graph"] is not None and np.isfinite(seen["score"][0][0]) and np.isnan(seen["score"][0][1])
    assert decision.pool_origins.get("proposer") == 1


def test_offline_mutator_scores_with_the_planners_surrogate(predictor):
    from nasassist_plugins.mutation import RelevanceGuidedMutator

    params, _ = _models(8, 7)
    distributions = {}
    for p in params:
        trial = CandidateTrial(np.random.RandomState(0), forced=p)
        build_model(trial)
        distributions.update(trial.distributions)
    mutator = RelevanceGuidedMutator()  # no builder, no predictor of its own
    planner = Planner(StudySurrogate(predictor, fine_tune=False),
                      PlannerConfig(min_candidates=4, max_candidates=4, n_proposals=3, fine_tune=False),
                      proposer=mutator)
    for k, p in enumerate(params):
        planner.observe(p, float(k))
    decision = planner.plan(SearchSpace(distributions), Source(), np.random.RandomState(0))
    assert decision.pool_origins.get("proposer", 0) >= 1
    assert mutator.graph_builds > 0 and mutator._predictor is None  # it built and scored through the planner
    assert any("relevance" in e or "predicted" in e for e in mutator.explanations.values())
