"""Offline mutator: search-space moves, relevance guidance, code edits, annotations, the loop, Optuna integration."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch.nn as nn
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mutation_models import SMALL_CNN, ParamWeightedPredictor
from nasassist_plugins.mutation import (
    MutationError,
    ProposalRejected,
    RelevanceGuidedMutator,
    Sandbox,
    SandboxLimits,
    enqueue_param_proposals,
    enqueue_source_proposal,
    get_source_proposal,
    improve,
    improve_params,
)
from nasassist_plugins.mutation.annotate import annotate_source, line_relevance
from nasassist_plugins.mutation.code_edits import generate_edits
from nasassist_plugins.mutation.offline import module_signatures
from nasassist_plugins.mutation.prompts import parse_params_reply, parse_source_reply
from nasassist_plugins.mutation.space import contains, neighbours

optuna.logging.set_verbosity(optuna.logging.WARNING)




class TwoBranch(nn.Module):
    def __init__(self, a: int, b: int, kernel: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, a, kernel, padding=kernel // 2)
        self.b = nn.Conv2d(a, b, 3, padding=1)
        self.fc = nn.Linear(b, 10)

    def forward(self, x):
        return self.fc(self.b(self.a(x)).mean(dim=(2, 3)))


def build_two_branch(trial) -> nn.Module:
    a = trial.suggest_categorical("a", [4, 8, 16])
    b = trial.suggest_categorical("b", [4, 8, 16])
    kernel = trial.suggest_categorical("kernel", [1, 3, 5])
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)  # not architectural
    return TwoBranch(a, b, kernel)


SPACE = {"a": CategoricalDistribution((4, 8, 16)), "b": CategoricalDistribution((4, 8, 16)),
         "kernel": CategoricalDistribution((1, 3, 5)), "lr": FloatDistribution(1e-4, 1e-1, log=True)}


# ----------------------------------------------------------------------------- space
def test_neighbours_are_adjacent_values_inside_the_distribution() -> None:
    rng = np.random.RandomState(0)
    assert neighbours(IntDistribution(8, 64, step=8), 16, rng) == [8, 24]
    assert neighbours(IntDistribution(8, 64, step=8), 64, rng) == [56]
    assert neighbours(CategoricalDistribution((1, 3, 5, 7)), 5, rng) == [3, 7]  # ordered
    assert sorted(neighbours(CategoricalDistribution(("a", "b", "c")), "a", rng)) == ["b", "c"]  # unordered
    lr = FloatDistribution(1e-4, 1e-1, log=True)
    assert all(contains(lr, v) and not math.isclose(v, 1e-3) for v in neighbours(lr, 1e-3, rng))
    assert neighbours(FloatDistribution(0.0, 1.0, step=0.25), 0.5, rng) == [0.25, 0.75]


def test_neighbourhood_mutation_without_builder_stays_in_the_space() -> None:
    mutator = RelevanceGuidedMutator()
    parents = [({"a": 8, "b": 8, "kernel": 3, "lr": 1e-3}, 1.0), ({"a": 4, "b": 8, "kernel": 3, "lr": 1e-3}, 0.5)]
    out = mutator.propose_params(parents, SPACE, 6, np.random.RandomState(1))
    assert len(out) == 6
    keys = {tuple(sorted(p.items())) for p in out}
    assert len(keys) == 6 and not keys & {tuple(sorted(p.items())) for p, _ in parents}
    for params in out:
        assert all(contains(SPACE[k], v) for k, v in params.items())
        changed = [k for k in params if params[k] != parents[0][0][k]]
        assert 1 <= len(changed) <= 2  # a neighbour of the best parent, not a random restart
    assert mutator.propose_params([], SPACE, 2, np.random.RandomState(0))  # no parents: random samples


# ----------------------------------------------------------------------------- relevance guidance
def test_guided_moves_change_the_least_relevant_parameter_first() -> None:
    # module "a" is worth 10x per parameter: high relevance; "b" (and the head) low relevance
    predictor = ParamWeightedPredictor({"a": 10.0, "b": 0.1, "fc": 0.1})
    mutator = RelevanceGuidedMutator(build_two_branch, (1, 3, 16, 16), predictor, focus=0.3)
    parent = {"a": 8, "b": 8, "kernel": 3, "lr": 1e-3}
    out = mutator.propose_params([(parent, 0.0)], SPACE, 2, np.random.RandomState(0))
    assert out, "no proposal"
    first = out[0]
    assert first["a"] == parent["a"] and first["kernel"] == parent["kernel"], first  # the relevant layer is kept
    assert first["b"] == 16  # the weak layer is changed, in the direction the predictor likes
    assert "relevance" in mutator.explain(first) and "b: 8 → 16" in mutator.explain(first)


def test_parameters_are_mapped_to_the_modules_they_change() -> None:
    from nasassist_plugins.adapters import from_torch

    g0 = from_torch(TwoBranch(8, 8, 3), (1, 3, 16, 16))
    g_kernel = from_torch(TwoBranch(8, 8, 5), (1, 3, 16, 16))
    g_b = from_torch(TwoBranch(8, 16, 3), (1, 3, 16, 16))
    s0, sk, sb = module_signatures(g0), module_signatures(g_kernel), module_signatures(g_b)
    assert {k for k in s0 if s0[k] != sk.get(k)} == {"a"}
    assert {k for k in s0 if s0[k] != sb.get(k)} == {"b", "fc"}  # b's width also changes the head's input


def test_guided_loop_reaches_the_threshold_and_beats_random_neighbourhood() -> None:
    predictor = ParamWeightedPredictor()
    seed = {"a": 4, "b": 4, "kernel": 1, "lr": 1e-3}
    def score(params):
        mutator_graph = guided.graph_of(params)
        return float(predictor.predict([mutator_graph])[0][0])

    guided = RelevanceGuidedMutator(build_two_branch, (1, 3, 16, 16), predictor)
    best = score({"a": 16, "b": 16, "kernel": 5, "lr": 1e-3})
    result = improve_params(seed, SPACE, score=score, proposer=guided, threshold=best * 0.9, max_iterations=10)
    assert result.converged and result.iterations <= 3, result.history
    assert result.predicted >= best * 0.9 and result.explanation
    blind = improve_params(seed, SPACE, score=score, proposer=RelevanceGuidedMutator(), threshold=best * 0.9,
                           max_iterations=3, rng=np.random.RandomState(0))
    assert blind.predicted < result.predicted  # single random steps cannot get there in 3 rounds


# ----------------------------------------------------------------------------- source: edits and annotations
def test_code_edits_cover_every_rule_and_keep_dependent_widths_consistent() -> None:
    edits = generate_edits(SMALL_CNN, {}, max_edits=100)
    rules = {e.rule for e in edits}
    assert {"widen", "narrow", "kernel", "remove", "bypass", "swap-pool", "add-skip"} <= rules, rules
    for e in edits:
        ast.parse(e.source)
        assert e.source != SMALL_CNN and e.explanation
    widen_conv1 = next(e for e in edits if e.rule == "widen" and "line 16" in e.explanation)
    assert "self.conv1 = nn.Conv2d(8, 12, 3, padding=1)" in widen_conv1.source
    assert "self.bn1 = nn.BatchNorm2d(12)" in widen_conv1.source
    assert "self.conv2 = nn.Conv2d(12, 16, 3, padding=1)" in widen_conv1.source
    grow = next(e for e in edits if e.rule == "kernel" and "from 3 to 5" in e.explanation)
    assert "5, padding=2" in grow.source


def test_annotations_and_edit_order_follow_relevance() -> None:
    @dataclass
    class Row:
        key: str
        signed_weight: float
        delta: float
        op_types: tuple = ("conv2d",)
        module: str | None = None

    rows = [Row("stem.0", 0.3, 0.03), Row("stem.1", -0.2, -0.02, ("batchnorm",)), Row("conv1", 0.5, 0.05),
            Row("head", 0.1, 0.01, ("linear",))]
    annotated = annotate_source(SMALL_CNN, "Net", rows)
    lines = annotated.splitlines()
    assert lines[11].strip().startswith("nn.Conv2d(3, 8, 3, padding=1),  # relevance +0.3000")
    assert "# relevance -0.2000 (batchnorm)" in lines[12]
    assert "# relevance +0.5000" in lines[15] and "self.conv1" in lines[15]
    assert ast.parse(annotated)  # comments keep it valid Python
    per_line = line_relevance(SMALL_CNN, "Net", rows)
    edits = generate_edits(SMALL_CNN, per_line)
    weak_first = edits[0]
    assert weak_first.relevance == pytest.approx(-0.2) and weak_first.line == 13  # the BatchNorm that hurts
    assert edits[1].relevance == pytest.approx(0.5)  # then the strongest layer gets strengthened


def test_reply_parsers() -> None:
    code, why = parse_source_reply("Sure!\n```python\nimport torch\nclass A: pass\n```\nExplanation: made it wider.")
    assert code.startswith("import torch") and why == "made it wider."
    assert parse_params_reply('[{"a": 1}]') == [{"a": 1}]
    assert parse_params_reply('text ```json\n{"a": 2}\n``` more') == [{"a": 2}]


# ----------------------------------------------------------------------------- source loop and Optuna
@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(cpu_s=10, wall_s=10, startup_s=90, memory_mb=1024),
                   extra_paths=[str(Path(__file__).resolve().parent)])


@pytest.mark.slow
def test_improve_with_offline_mutator_returns_a_better_source_and_a_diff(sandbox: Sandbox) -> None:
    predictor = ParamWeightedPredictor({"conv2": 3.0})  # the predictor likes a bigger conv2
    result = improve(SMALL_CNN, entry="Net", example_input=(1, 3, 16, 16), threshold=None, max_iterations=3,
                     predictor=predictor, sandbox=sandbox,
                     proposer=RelevanceGuidedMutator(predictor=predictor, sandbox=sandbox, max_source_edits=10))
    assert result.improved and result.predicted > result.baseline_predicted
    assert result.header() == f"predicted {result.baseline_predicted:.4f} → {result.predicted:.4f}"
    assert result.history[0].origin.startswith("offline:") and result.history[0].accepted
    diff = result.diff()
    assert diff.startswith("--- original") and "\n-" in diff and "\n+" in diff
    assert result.explanation and result.num_params != result.baseline_num_params
    assert len(result.history) == 3 and not result.converged


def test_improve_rejects_bad_inputs(sandbox: Sandbox) -> None:
    with pytest.raises(MutationError, match="example_input"):
        improve(SMALL_CNN, entry="Net", predictor=ParamWeightedPredictor(), sandbox=sandbox)
    with pytest.raises(MutationError, match="refused"):
        improve("import os\n" + SMALL_CNN, example_input=(1, 3, 16, 16), predictor=ParamWeightedPredictor(), sandbox=sandbox)
    with pytest.raises(MutationError, match="max_iterations"):
        improve(SMALL_CNN, example_input=(1, 3, 16, 16), max_iterations=0, predictor=ParamWeightedPredictor())
    with pytest.raises(MutationError, match="no nn.Module class 'Other'"):
        improve(SMALL_CNN, entry="Other", example_input=(1, 3, 16, 16), predictor=ParamWeightedPredictor())


@pytest.mark.slow
def test_source_proposal_travels_through_an_optuna_trial_and_trains_in_the_sandbox(sandbox: Sandbox) -> None:
    study = optuna.create_study(direction="maximize")
    proposal = enqueue_source_proposal(study, SMALL_CNN, input_shape=(1, 3, 16, 16), entry="Net", params={"lr": 0.01},
                                       explanation="a test proposal", expected_output_shape=(1, 10), sandbox=sandbox)
    with pytest.raises(ProposalRejected, match="forbidden-import"):
        enqueue_source_proposal(study, "import os\n" + SMALL_CNN, input_shape=(1, 3, 16, 16), sandbox=sandbox)
    with pytest.raises(ProposalRejected, match="wrong-output-shape"):
        enqueue_source_proposal(study, SMALL_CNN, input_shape=(1, 3, 16, 16), expected_output_shape=(1, 7), sandbox=sandbox)
    seen: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        got = get_source_proposal(trial)
        if got is None:
            return 0.0
        seen["graph_nodes"] = got.graph().num_nodes
        seen["lr"] = lr
        outcome = got.evaluate("mutation_trainer:one_step", {"batch": 2}, sandbox=sandbox)
        return -outcome["loss"]

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert seen["lr"] == 0.01 and seen["graph_nodes"] > 5
    assert trial.value is not None and trial.value < 0
    frozen = get_source_proposal(trial)
    assert frozen is not None and frozen.num_params == proposal.num_params and frozen.explanation == "a test proposal"
    assert len(study.trials) == 1  # the refused proposals were never enqueued


def test_parameter_proposals_are_enqueued_from_finished_trials() -> None:
    study = optuna.create_study(direction="minimize")
    study.optimize(lambda t: t.suggest_int("width", 8, 64, step=8) + t.suggest_int("depth", 1, 4), n_trials=4)
    proposals = enqueue_param_proposals(study, RelevanceGuidedMutator(), n=2, seed=0)
    assert len(proposals) == 2
    waiting = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == proposals
    best = study.best_params
    assert all(sum(p[k] != best[k] for k in p) <= 2 for p in proposals)  # moves around the best (minimised) trial
