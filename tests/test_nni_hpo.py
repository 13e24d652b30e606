"""NNI plugin, HPO side: NASAssistTuner and NASAssistAssessor through CustomAlgorithmConfig.

The experiment test starts NNI's real manager with the local training service on a free
port, in a child process whose HOME is a temporary directory (NNI's manager keeps its
experiment list under ``$HOME/nni-experiments``), with a bounded number of trials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("nni", reason="NNI is not installed (pip install 'nasassist-plugins[nni]')")

from nni import NoMoreTrialError  # noqa: E402
from torch import nn  # noqa: E402

from nasassist_plugins.errors import ConfigurationError  # noqa: E402
from nasassist_plugins.nni import NASAssistTuner, NNIConfigError  # noqa: E402

BUILDER = '''
from torch import nn


def build(params):
    layers, width, d_in = [], int(params["width"]), 64
    for _ in range(int(params["depth"])):
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    layers.append(nn.Linear(d_in, 10))
    return nn.Sequential(*layers)
'''

# Trial 1 (sequence 1) learns badly: its curve is hopeless next to trial 0, which finished.
TRIAL = '''
import json, math, os, time
import nni

params = nni.get_next_parameter()
seq = nni.get_sequence_id()
final = 0.3 if seq == 1 else 0.85 + 0.01 * seq
record = {"seq": seq, "params": params, "reported": 0}
path = os.path.join(os.environ["NASASSIST_TRIAL_LOG"], f"trial-{seq}.json")
acc = 0.0
for epoch in range(1, 13):
    acc = final * (1 - math.exp(-epoch / 2.5))
    nni.report_intermediate_result(acc)
    record["reported"] = epoch
    with open(path, "w") as f:
        json.dump(record, f)
    time.sleep(0.4)
nni.report_final_result(acc)
'''

DRIVER = '''
import json, sys
from pathlib import Path
from nni.experiment import CustomAlgorithmConfig, Experiment
from nasassist_plugins.nni import run_hpo_experiment

here = Path(sys.argv[1])


def configure(experiment):
    c = experiment.config
    c.trial_command = f"{sys.executable} trial.py"
    c.trial_code_directory = str(here)
    c.search_space = {
        "width": {"_type": "choice", "_value": [8, 16, 32, 64]},
        "depth": {"_type": "choice", "_value": [1, 2, 3]},
        "lr": {"_type": "loguniform", "_value": [0.0001, 0.1]},
    }
    c.tuner = CustomAlgorithmConfig(
        class_name="nasassist_plugins.nni.NASAssistTuner", code_directory=str(here),
        class_args={"model_builder": "builder:build", "example_input": [1, 64], "seed": 0,
                    "config": {"min_candidates": 8, "max_candidates": 8, "prune_quantile": 0.5},
                    "decision_log": str(here / "tuner.jsonl")},
    )
    c.assessor = CustomAlgorithmConfig(
        class_name="nasassist_plugins.nni.NASAssistAssessor",
        class_args={"max_step": 12, "lower_bound": 0.0, "upper_bound": 1.0, "decision_log": str(here / "assessor.jsonl")},
    )
    c.max_trial_number = 4
    c.trial_concurrency = 1
    c.experiment_working_directory = str(here / "experiments")
    c.training_service.use_active_gpu = False


# run_hpo_experiment waits for NNI's manager. On a heavily loaded machine NNI can still fail
# to start (its manager gives the tuner process only 10 s to connect): then start a fresh
# experiment (new id and port) rather than fail the test.
ok = False
for attempt in range(3):
    experiment = Experiment("local")
    configure(experiment)
    try:
        ok = run_hpo_experiment(experiment, startup_timeout=120)
    except Exception as exc:
        print(f"attempt {attempt + 1}: NNI failed to start: {exc!r}", flush=True)
    if ok and experiment.list_trial_jobs():
        break
    try:
        experiment.stop()
    except Exception:
        pass
    for name in ("tuner.jsonl", "assessor.jsonl"):
        (here / name).unlink(missing_ok=True)
else:
    raise SystemExit("NNI's experiment did not start in 3 attempts")
jobs = [{"status": j.status, "seq": j.sequenceId} for j in experiment.list_trial_jobs()]
experiment.stop()
(here / "result.json").write_text(json.dumps({"ok": ok, "jobs": jobs}))
'''


def test_tuner_explains_what_it_needs():
    with pytest.raises(NNIConfigError, match=r"model_builder.*module:function"):
        NASAssistTuner()
    with pytest.raises(NNIConfigError, match="not a 'module:function' string"):
        NASAssistTuner(model_builder="nodots", example_input=[1, 64])
    with pytest.raises(NNIConfigError, match="example_input"):
        NASAssistTuner(model_builder="mymodels:build")
    with pytest.raises(ConfigurationError, match="unknown planner setting.*n_candidates"):
        NASAssistTuner(model_builder="mymodels:build", example_input=[1, 64], config={"n_candidates": 8})
    tuner = NASAssistTuner(model_builder="no_such_module_xyz:build", example_input=[1, 64])
    with pytest.raises(NNIConfigError, match="Importing 'no_such_module_xyz' failed"):
        tuner.update_search_space({"width": {"_type": "choice", "_value": [8, 16]}})


def _mlp(params):
    layers, d_in = [], 64
    for _ in range(params["depth"]):
        layers += [nn.Linear(d_in, params["width"]), nn.ReLU()]
        d_in = params["width"]
    return nn.Sequential(*layers, nn.Linear(d_in, 10))


def test_tuner_ranks_candidates_and_exhausts_a_finite_space():
    tuner = NASAssistTuner(model_builder=_mlp, example_input=[1, 64], seed=0,
                           config={"min_candidates": 6, "max_candidates": 6, "fine_tune": False,
                                   "n_exploration_trials": 2})
    tuner.update_search_space({"width": {"_type": "choice", "_value": [8, 16, 32]},
                               "depth": {"_type": "randint", "_value": [1, 3]}})
    seen = []
    for parameter_id in range(6):
        params = tuner.generate_parameters(parameter_id)
        assert params["width"] in (8, 16, 32) and params["depth"] in (1, 2)
        assert json.loads(json.dumps(params)) == params  # plain JSON for NNI
        seen.append((params["width"], params["depth"]))
        tuner.receive_trial_result(parameter_id, params, {"default": 0.5 + 0.01 * parameter_id})
    assert len(set(seen)) == 6
    for record in tuner.decisions:
        assert record["pool_quantile"] >= 0.5  # passed the pool's cut (stage-1 scores)
        if record["zero_shot_stage"] == 1:  # a stage-2 (model) score may be on another scale than the cut
            assert record["predicted_mean"] >= record["threshold"]
    assert len(tuner.planner.observations) == 6
    with pytest.raises(NoMoreTrialError):
        tuner.generate_parameters(6)


@pytest.mark.slow
def test_custom_tuner_and_assessor_run_in_an_hpo_experiment(tmp_path):
    (tmp_path / "builder.py").write_text(BUILDER)
    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), NASASSIST_TRIAL_LOG=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "driver.py", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=420)
    logs = sorted((tmp_path / "experiments").glob("*/log/dispatcher.log"))
    detail = proc.stdout[-3000:] + proc.stderr[-3000:] + (logs[0].read_text()[-3000:] if logs else "")
    assert proc.returncode == 0, detail
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["ok"], detail
    statuses = {job["seq"]: job["status"] for job in result["jobs"]}
    assert len(statuses) == 4, detail

    trials = {r["seq"]: r for r in (json.loads(p.read_text()) for p in tmp_path.glob("trial-*.json"))}
    # the assessor stopped the hopeless trial early and kept the good ones
    assert trials[1]["reported"] < 12 and statuses[1] != "SUCCEEDED", (trials, statuses)
    for seq in (0, 2, 3):
        assert trials[seq]["reported"] == 12 and statuses[seq] == "SUCCEEDED", (trials, statuses)
    stops = [json.loads(line) for line in (tmp_path / "assessor.jsonl").read_text().splitlines()]
    assert any(s["stop"] and s["trial"] for s in stops)

    # the tuner proposed 4 distinct, predictor-ranked parameter sets from the search space
    decisions = [json.loads(line) for line in (tmp_path / "tuner.jsonl").read_text().splitlines()]
    assert len(decisions) == 4
    assert len({d["key"] for d in decisions}) == 4
    for d in decisions:
        assert d["n_candidates"] >= 2 and d["pool_quantile"] >= 0.5
        assert d["params"]["width"] in (8, 16, 32, 64) and 1e-4 <= d["params"]["lr"] <= 0.1
    assert [t["params"] for _, t in sorted(trials.items())] == [d["params"] for d in decisions]
    # NNI's experiment list went to the temporary HOME, not the real one
    assert (home / "nni-experiments" / ".experiment").is_file()
