"""NASAssistAssessor runs the very decision code of NASAssistPruner (nasassist_plugins.curves.StopRule)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("nni", reason="NNI is not installed (pip install 'nasassist-plugins[nni]')")

import optuna  # noqa: E402
from nni.assessor import AssessResult  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from nasassist_plugins.curves import StopRule  # noqa: E402
from nasassist_plugins.nni.assessor import NASAssistAssessor  # noqa: E402
from nasassist_plugins.errors import ConfigurationError, NNIConfigError  # noqa: E402
from nasassist_plugins.optuna import NASAssistPruner  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
EPOCHS = 24


def curve(asymptote: float, seed: int) -> np.ndarray:
    t = np.arange(1, EPOCHS + 1, dtype=float)
    return asymptote - (asymptote - 0.1) * t ** -0.8 + np.random.RandomState(seed).normal(0, 0.005, EPOCHS)


FINISHED = [curve(a, k) for k, a in enumerate((0.9, 0.88, 0.86, 0.85, 0.84))]
CANDIDATES = [curve(a, 50 + k) for k, a in enumerate((0.5, 0.8, 0.87, 0.95))]


def test_assessor_and_pruner_take_identical_decisions(tmp_path):
    log = tmp_path / "decisions.jsonl"
    assessor = NASAssistAssessor(max_step=EPOCHS, min_finished=5, lower_bound=0.0, upper_bound=1.0,
                                 decision_log=str(log))
    assert isinstance(assessor.rule, StopRule)
    for k, c in enumerate(FINISHED):
        for n in range(1, EPOCHS + 1):
            assessor.assess_trial(f"done{k}", list(c[:n]))
        assessor.trial_end(f"done{k}", True)
    pruner = NASAssistPruner(max_resource=EPOCHS - 1, n_warmup_trials=5, lower_bound=0.0, upper_bound=1.0)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for c in FINISHED:
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(c[-1]),
                                     intermediate_values={s: float(v) for s, v in enumerate(c)}))
    assert assessor.rule == pruner.rule  # the same configuration of the same class

    for j, c in enumerate(CANDIDATES):
        nni_probs, optuna_probs = [], []
        nni_stop = optuna_stop = None
        for n in range(1, EPOCHS):
            before = len(assessor.decisions)
            if assessor.assess_trial(f"cand{j}", list(c[:n])) == AssessResult.Bad and nni_stop is None:
                nni_stop = n
            if len(assessor.decisions) > before:
                nni_probs.append((n, assessor.decisions[-1]["probability"]))
            if nni_stop is not None:
                break

        def objective(trial, c=c):
            nonlocal optuna_stop
            for s in range(EPOCHS):
                trial.report(float(c[s]), s)
                before = pruner.last_decision
                prune = trial.should_prune()
                if pruner.last_decision is not before and pruner.last_decision.reason == "forecast":
                    optuna_probs.append((s + 1, pruner.last_decision.probability))
                if prune:
                    optuna_stop = s + 1
                    raise optuna.TrialPruned()
            return float(c[-1])

        study.optimize(objective, n_trials=1)
        assert nni_stop == optuna_stop, (j, nni_stop, optuna_stop)
        assert [n for n, _ in nni_probs] == [n for n, _ in optuna_probs]
        np.testing.assert_allclose([p for _, p in nni_probs], [p for _, p in optuna_probs], rtol=1e-12)
    assert any(json.loads(line)["stop"] for line in log.read_text().splitlines())
    assert not any(r["stop"] for r in assessor.decisions if r["trial"] == "cand3")


def test_assessor_warns_once_when_it_can_never_stop(caplog):
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.nni.assessor"):
        NASAssistAssessor(max_step=4, min_resource=5)
    assert sum("can never stop" in r.message for r in caplog.records) == 1
    caplog.clear()
    assessor = NASAssistAssessor(min_resource=1)  # max_step from the first finished trial: one report only
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.nni.assessor"):
        for k in range(3):
            assessor.assess_trial(f"t{k}", [0.5, 0.6])
            assessor.trial_end(f"t{k}", True)
    assert sum("can never stop" in r.message for r in caplog.records) == 1


def test_failed_or_stopped_trials_do_not_become_the_reference():
    assessor = NASAssistAssessor(max_step=EPOCHS, upper_bound=1.0)
    assessor.assess_trial("a", list(FINISHED[0]))
    assessor.trial_end("a", False)
    assert assessor.best_final is None
    assessor.assess_trial("b", list(FINISHED[1]))
    assessor.trial_end("b", True)
    assert assessor.best_final == pytest.approx(FINISHED[1][-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"max_step": 1}, "max_step"),
    ({"optimize_mode": "up"}, "optimize_mode"),
    ({"threshold_probability": 2.0}, "threshold_probability"),
    ({"min_resource": 0}, "min_resource"),
    ({"extrapolator": "magic"}, "extrapolator"),
])
def test_bad_arguments_give_clear_errors(kwargs, message):
    with pytest.raises(NNIConfigError, match=message) as info:
        NASAssistAssessor(**kwargs)
    assert isinstance(info.value, ConfigurationError)
