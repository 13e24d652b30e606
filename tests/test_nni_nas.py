"""NNI plugin, NAS side: NASAssistStrategy and the assessor inside real NNI 3.0 experiments.

Experiments run on NNI's sequential engine, offline, in a temporary experiment directory
(logs, checkpoints and the experiment manifest all go there).
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("nni", reason="NNI is not installed (pip install 'nasassist-plugins[nni]')")

import torch  # noqa: E402

torch.set_num_threads(1)

import nni  # noqa: E402

from nasassist_plugins.nni import (  # noqa: E402
    NASAssistAssessor,
    NASAssistStrategy,
    NNIConfigError,
    NNIEnvironmentError,
    hpo_space,
    nas_space,
    report_intermediate_result,
    run_nas_experiment,
)
from nasassist_plugins.nni import _env  # noqa: E402
from nasassist_plugins.errors import ConfigurationError  # noqa: E402
from nasassist_plugins.search import PlannerConfig, SearchError  # noqa: E402
from nni.assessor import AssessResult  # noqa: E402
from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.execution import SequentialExecutionEngine  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableLinear  # noqa: E402
from nni.nas.space import SimplifiedModelSpace  # noqa: E402
from torch import nn  # noqa: E402


# ---------------------------------------------------------------------------- spaces and evaluators
class MLPSpace(ModelSpace):
    """4 widths x 3 activations x 2 depths = 24 architectures on 64 inputs (digits-sized)."""

    def __init__(self):
        super().__init__()
        width = nni.choice("width", [8, 16, 32, 64])
        self.fc1 = MutableLinear(64, width)
        self.act = LayerChoice([nn.ReLU(), nn.Tanh(), nn.Identity()], label="act")
        self.extra = LayerChoice([nn.Identity(), nn.Sequential(MutableLinear(width, width), nn.ReLU())], label="extra")
        self.fc2 = MutableLinear(width, 10)

    def forward(self, x):
        return self.fc2(self.extra(self.act(self.fc1(x))))


class TinySpace(ModelSpace):
    """Only 3 architectures: the strategy must stop instead of spinning."""

    def __init__(self):
        super().__init__()
        self.fc = MutableLinear(64, nni.choice("width", [4, 8, 16]))
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(x)


def _pool(n: int, **settings) -> PlannerConfig:
    return PlannerConfig(min_candidates=n, max_candidates=n, **settings)


def count_parameters(model):
    nni.report_final_result(float(sum(p.numel() for p in model.parameters())))


def _distinct(strategy):
    keys = [r["key"] for r in strategy.history]
    return len(set(keys)) == len(keys)


# ---------------------------------------------------------------------------- packaging / environment
def test_importing_the_core_package_does_not_import_nni():
    code = "import sys, nasassist_plugins, nasassist_plugins.curves; print('nni' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_environment_check_names_the_fix(monkeypatch):
    versions = {"nni": "3.0", "filelock": "3.11.0", "typeguard": "4.1.2"}
    monkeypatch.setattr(_env.metadata, "version", lambda name: versions[name])
    _env.check_environment()  # the supported combination passes

    versions["filelock"] = "3.12.2"
    with pytest.raises(NNIEnvironmentError, match=r'filelock<3\.12.*hangs|hangs.*filelock<3\.12'):
        _env.check_environment()
    versions["filelock"] = "3.11.0"
    versions["typeguard"] = "4.1.3"
    with pytest.raises(NNIEnvironmentError, match=r"typeguard<4\.1\.3"):
        _env.check_environment()
    versions["typeguard"] = "4.1.2"
    versions["nni"] = "2.10"
    with pytest.raises(NNIEnvironmentError, match="NNI 3.0"):
        _env.check_environment()

    monkeypatch.setattr(_env.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NNIEnvironmentError, match=r"not installed.*pip install"):
        _env.check_environment()
    assert issubclass(NNIEnvironmentError, ImportError)


# ---------------------------------------------------------------------------- search-space conversion
def test_model_space_choices_become_optuna_distributions():
    space = nas_space(SimplifiedModelSpace.from_model(MLPSpace(), None).simplify())
    assert space.size == 24
    assert list(space.distributions["width"].choices) == [8, 16, 32, 64]
    assert list(space.distributions["act"].choices) == [0, 1, 2]
    rng = np.random.RandomState(0)
    parent = space.random(rng)
    child = space.mutate(parent, rng)
    assert child != parent and space.contains(child)


def test_hpo_search_space_conversion_and_errors():
    space = hpo_space({
        "width": {"_type": "choice", "_value": [16, 32]},
        "depth": {"_type": "randint", "_value": [1, 4]},
        "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
        "drop": {"_type": "quniform", "_value": [0.0, 0.5, 0.1]},
    })
    depth = space.distributions["depth"]
    assert (depth.low, depth.high) == (1, 3)  # NNI's randint upper bound is exclusive
    assert space.distributions["lr"].log
    assert space.size is None
    with pytest.raises(SearchError, match="'noise'.*normal.*not supported"):
        hpo_space({"noise": {"_type": "normal", "_value": [0, 1]}})
    with pytest.raises(SearchError, match="nested"):
        hpo_space({"block": {"_type": "choice", "_value": [{"_name": "a"}, {"_name": "b"}]}})


# ---------------------------------------------------------------------------- the strategy in experiments
def test_strategy_runs_a_sequential_experiment_and_never_submits_below_the_quantile(tmp_path, default_predictor):
    config = PlannerConfig(min_candidates=8, max_candidates=8, prune_quantile=0.5, population_size=4,
                           tournament_size=2, fine_tune_min_trials=4, fine_tune_every=2, fine_tune_seconds=1.0,
                           n_exploration_trials=3)
    strategy = NASAssistStrategy(predictor=default_predictor, example_input=(1, 64), config=config, seed=0)
    experiment = run_nas_experiment(MLPSpace(), FunctionalEvaluator(count_parameters), strategy,
                                    max_trials=10, experiment_dir=tmp_path / "exp")
    assert len(strategy.history) == 10
    assert all(r["status"] == "trained" and r["metric"] is not None for r in strategy.history)
    assert _distinct(strategy)
    for record in strategy.history:
        assert record["threshold"] is not None
        if record["zero_shot_stage"] == 1:  # a stage-2 (model) score may be on another scale than the cut
            assert record["predicted_mean"] >= record["threshold"] - 1e-9
        assert record["pool_quantile"] >= 0.5  # the chosen one passed the pool's median cut (stage-1 scores)
    assert max(r["n_candidates"] for r in strategy.history) > 1
    assert any(r["origin"] == "mutation" for r in strategy.history)
    # fine-tuning started once enough models finished
    assert strategy.surrogate.is_fine_tuned
    # everything NNI wrote is under the chosen directory
    exp_dir = tmp_path / "exp" / experiment.id
    assert (exp_dir / "checkpoint" / "config.json").is_file()
    assert list((exp_dir / "checkpoint").glob("state.ckpt*"))  # the strategy's state_dict was saved
    assert (exp_dir / "log" / "experiment.log").is_file()
    assert (tmp_path / "exp" / ".experiment").is_file()
    top = experiment.export_top_models(top_k=1, formatter="dict")[0]
    assert top == max(strategy.history, key=lambda r: r["metric"])["params"]


def test_strategy_stops_on_an_exhausted_small_space(tmp_path, default_predictor):
    strategy = NASAssistStrategy(predictor=default_predictor, example_input=(1, 64), config=_pool(8), seed=1)
    started = time.perf_counter()
    run_nas_experiment(TinySpace(), FunctionalEvaluator(count_parameters), strategy, max_trials=10,
                       experiment_dir=tmp_path)
    assert time.perf_counter() - started < 60
    assert len(strategy.history) == 3 and _distinct(strategy)
    assert strategy.exhausted


def test_strategy_checkpoint_resumes_without_repeating(default_predictor):
    def run(strategy, trials, state=None):
        space = SimplifiedModelSpace.from_model(MLPSpace(), FunctionalEvaluator(count_parameters))
        engine = SequentialExecutionEngine(max_model_count=trials)
        strategy.initialize(space, engine)
        if state is not None:
            strategy.load_state_dict(state)
        strategy.run()
        return engine

    first = NASAssistStrategy(predictor=default_predictor, example_input=(1, 64), config=_pool(6, fine_tune=False), seed=3)
    run(first, 5)
    state = first.state_dict()
    assert len(state["planner"]["observations"]) == 5
    second = NASAssistStrategy(predictor=default_predictor, example_input=(1, 64), config=_pool(6, fine_tune=False), seed=3)
    engine = run(second, 4, state)
    new = [m.sample for m in engine.list_models()]
    assert len(new) == 4
    old = [r["params"] for r in first.history]
    assert not any(sample in old for sample in new)
    assert len(second.history) == 9


class RecordingProposer:
    def __init__(self, fail=False):
        self.calls = []
        self.fail = fail

    def propose_params(self, parents, distributions, n, rng):
        self.calls.append((parents, distributions, n))
        if self.fail:
            raise RuntimeError("LLM unavailable")
        best = dict(parents[0][0])
        best["width"] = 64 if best["width"] != 64 else 8
        return [best]


@pytest.mark.parametrize("fail", [False, True])
def test_proposer_hook_adds_candidates_and_never_breaks_the_search(tmp_path, default_predictor, fail):
    proposer = RecordingProposer(fail=fail)
    strategy = NASAssistStrategy(predictor=default_predictor, example_input=(1, 64), proposer=proposer,
                                 config=_pool(4, n_proposals=2, fine_tune=False), seed=4)
    run_nas_experiment(MLPSpace(), FunctionalEvaluator(count_parameters), strategy, max_trials=5,
                       experiment_dir=tmp_path)
    assert len(strategy.history) == 5
    assert len(proposer.calls) == 4  # every decision after the first finished model
    parents, distributions, n = proposer.calls[-1]
    assert n == 2 and parents[0][1] >= parents[-1][1]
    assert set(distributions) == {"width", "act", "extra"}
    with_proposals = [r["pool_origins"].get("proposer", 0) for r in strategy.history[1:]]
    if fail:
        assert sum(with_proposals) == 0
    else:
        assert sum(with_proposals) > 0


def test_strategy_configuration_errors():
    with pytest.raises(ConfigurationError, match="tournament_size"):
        NASAssistStrategy(config={"population_size": 2, "tournament_size": 5})
    with pytest.raises(SearchError, match="propose_params"):
        NASAssistStrategy(proposer=object())
    with pytest.raises(ConfigurationError, match="max_candidates"):
        NASAssistStrategy(config={"max_candidates": 0})
    with pytest.raises(TypeError):
        NASAssistStrategy(None)  # keyword-only arguments
    strategy = NASAssistStrategy()
    space = SimplifiedModelSpace.from_model(MLPSpace(), FunctionalEvaluator(count_parameters))
    with pytest.raises(SearchError, match="example_input"):
        strategy.initialize(space, SequentialExecutionEngine(max_model_count=1))


# ---------------------------------------------------------------------------- assessor
def _curve(final, epochs, rate=3.0):
    return [final * (1 - np.exp(-(e + 1) / rate)) for e in range(epochs)]


def test_assessor_stops_a_hopeless_curve_and_keeps_a_good_one():
    assessor = NASAssistAssessor(max_step=20, lower_bound=0.0, upper_bound=1.0)
    good = _curve(0.9, 20)
    assert assessor.assess_trial("a", good[:6]) is AssessResult.Good  # nothing finished yet: never stop
    assert assessor.assess_trial("a", good) is AssessResult.Good
    assessor.trial_end("a", True)
    assert assessor.best_final == pytest.approx(good[-1])
    hopeless = _curve(0.3, 20)
    assert assessor.assess_trial("b", hopeless[:1]) is AssessResult.Good  # one report: no curve yet
    assert assessor.assess_trial("b", hopeless[:4]) is AssessResult.Bad  # judged at the next rung
    better = _curve(0.95, 20)
    assert assessor.assess_trial("c", better[:6]) is AssessResult.Good
    assessor.trial_end("b", False)
    assert assessor.best_final == pytest.approx(good[-1])  # a stopped trial never becomes the best
    # loss curves: minimise
    losses = NASAssistAssessor(max_step=20, optimize_mode="minimize", lower_bound=0.0)
    losses.assess_trial("x", [1.0 - v for v in good])
    losses.trial_end("x", True)
    assert losses.assess_trial("y", [1.0 - v for v in hopeless[:8]]) is AssessResult.Bad
    with pytest.raises(NNIConfigError, match="max_step"):
        NASAssistAssessor(max_step=1)


def test_assessor_inside_a_nas_experiment(tmp_path, default_predictor):
    """Trial 1 learns well, trial 2 is hopeless (stopped early), trial 3 learns well (kept)."""
    epochs = 12
    finals = {1: 0.9, 2: 0.3, 3: 0.92}
    reported = {}

    def train(model):
        trial = len(reported) + 1
        reported[trial] = 0
        acc = 0.0
        for acc in _curve(finals.get(trial, 0.5), epochs):
            reported[trial] += 1
            if not report_intermediate_result(acc):
                break
        nni.report_final_result(acc)

    assessor = NASAssistAssessor(max_step=epochs, lower_bound=0.0, upper_bound=1.0)
    strategy = NASAssistStrategy(predictor=default_predictor, example_input=(1, 64), assessor=assessor,
                                 config=_pool(4, fine_tune=False), seed=5)
    run_nas_experiment(MLPSpace(), FunctionalEvaluator(train), strategy, max_trials=3, experiment_dir=tmp_path)
    assert reported[1] == epochs and reported[3] == epochs
    assert 2 <= reported[2] < epochs  # judged from the second report on (rungs 2, 4, 8)
    assert [r["stopped_early"] for r in strategy.history] == [False, True, False]
    # a stopped model is censored evidence: its last value bounds what it would have reached
    assert len(strategy.planner.observations) == 2 and len(strategy.planner.censored) == 1
    (bound,) = [b for _, b in strategy.planner.censored.values()]
    assert bound == pytest.approx(_curve(0.3, epochs)[reported[2] - 1])
    assert assessor.best_final == pytest.approx(_curve(0.92, epochs)[-1])
