"""Four worker processes on one PostgreSQL-backed study; a worker killed with SIGKILL mid-trial.

The server is a real PostgreSQL on 127.0.0.1 started by the test. Without PostgreSQL the
tests skip, unless ``NASASSIST_REQUIRE_POSTGRES=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nasassist_plugins.optuna import _attrs
from nasassist_plugins.predictor import Predictor
from nasassist_plugins.search import params_key
from optuna_space import EXAMPLE_INPUT, build_model

WORKER = Path(__file__).with_name("optuna_space.py")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    from nasassist_plugins.optuna import CandidateTrial

    torch.manual_seed(0)
    predictor = Predictor(hidden_dim=16, ensemble_size=2, seed=0)
    rng = np.random.RandomState(0)
    predictor.fit_gate(predictor.embed([build_model(CandidateTrial(rng)) for _ in range(8)], EXAMPLE_INPUT),
                       candidates=(1,))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    predictor.save(path)
    return str(path)


def _worker(url: str, name: str, weights: str, n_trials: int, seed: int, slow: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, name, weights, str(n_trials), str(seed), "1" if slow else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _storage(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=3)


def test_four_workers_share_one_postgres_study(postgres_url, weights):
    optuna.create_study(study_name="four-workers", storage=_storage(postgres_url), direction="maximize")
    workers = [_worker(postgres_url, "four-workers", weights, 5, seed, slow=False) for seed in range(4)]
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="four-workers", storage=_storage(postgres_url))
    trials = study.trials
    assert len(trials) == 20  # as many results as trials asked for: none lost
    assert sorted(t.number for t in trials) == list(range(20))  # none duplicated
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for trial in trials:  # every trial has its plan and took it
        plan = _attrs.join_attr(trial.system_attrs, _attrs.PLAN)
        assert {k: v for k, v in trial.params.items() if k != "lr"} == plan
        decided = _attrs.decision_of(trial.system_attrs)
        assert _attrs.PREDICTED_MEAN in decided and _attrs.CANDIDATES in decided
    # workers reserve plans in the storage before running them: no architecture runs twice
    keys = [params_key(_attrs.join_attr(t.system_attrs, _attrs.PLAN)) for t in trials]
    assert len(set(keys)) == 20
    assert len({t.system_attrs[_attrs.ARCH] for t in trials}) == 20


def test_killed_worker_is_marked_failed_by_heartbeat_and_the_study_completes(postgres_url, weights):
    optuna.create_study(study_name="killed", storage=_storage(postgres_url), direction="maximize")
    victim = _worker(postgres_url, "killed", weights, 50, 0, slow=True)
    deadline = time.time() + 300
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.3)
        study = optuna.load_study(study_name="killed", storage=_storage(postgres_url))
        running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING and t.intermediate_values]
        assert victim.poll() is None, victim.stderr.read()[-3000:]
    assert running, "the worker never started a trial"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    killed_number = running[0].number
    time.sleep(4)  # past the grace period: its heartbeat is stale

    survivor = _worker(postgres_url, "killed", weights, 3, 1, slow=False)
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="killed", storage=_storage(postgres_url))
    states = {t.number: t.state for t in study.trials}
    assert states[killed_number] == TrialState.FAIL
    assert TrialState.RUNNING not in states.values()
    assert sum(s == TrialState.COMPLETE for s in states.values()) >= 3
