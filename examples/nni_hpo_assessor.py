"""HPO with NNI 3.0: NASAssistTuner + NASAssistAssessor on scikit-learn's digits (offline, CPU).

    pip install "nasassist-plugins[nni]"
    python examples/nni_hpo_assessor.py --trials 8 --experiment-dir examples/output/nni-hpo

An ordinary NNI HPO experiment (local training service, one subprocess per trial, NNI's
web portal on a free port) whose search space mixes architecture parameters (channels,
kernel, hidden width, extra block) with a learning rate. Both algorithms are plugged in
with ``CustomAlgorithmConfig``:

* ``NASAssistTuner`` builds each candidate with :func:`build` (this file's model builder),
  ranks the graphs with the zero-shot predictor and proposes the best-ranked one;
* ``NASAssistAssessor`` extrapolates each trial's per-epoch validation accuracy and kills
  trials that are unlikely to beat the best finished one (the same learning-curve code as
  the Optuna pruner, :func:`nasassist_plugins.curves.should_stop`).

The same file is the trial (``--trial``) and the model builder the tuner imports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCHS = 10

SEARCH_SPACE = {
    "channels": {"_type": "choice", "_value": [4, 8, 16, 32]},
    "kernel": {"_type": "choice", "_value": [1, 3, 5]},
    "extra_block": {"_type": "choice", "_value": [0, 1]},
    "hidden": {"_type": "choice", "_value": [16, 64, 128]},
    "lr": {"_type": "loguniform", "_value": [1e-4, 3e-2]},
}


def build(params: dict):
    """The model a trial trains for ``params`` (also what the tuner scores before the trial runs)."""
    from torch import nn

    c, k = int(params["channels"]), int(params["kernel"])
    layers = [nn.Conv2d(1, c, k, padding=k // 2), nn.ReLU()]
    if int(params["extra_block"]):
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(c * 4, int(params["hidden"])), nn.ReLU(),
               nn.Linear(int(params["hidden"]), 10)]
    return nn.Sequential(*layers)


def trial() -> None:
    """One NNI trial: train ``build(params)`` on digits, report accuracy every epoch."""
    import nni
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    params = nni.get_next_parameter()
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype(np.float32)[:, None])
    y = torch.from_numpy(digits.target).long()
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    torch.manual_seed(0)
    model = build(params)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    accuracy = 0.0
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_val).argmax(1) == y_val).float().mean())
        nni.report_intermediate_result(accuracy)  # the assessor may kill the trial here
    nni.report_final_result(accuracy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trial", action="store_true", help="run one trial (NNI calls this)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--experiment-dir", type=Path, default=HERE / "output" / "nni-hpo")
    parser.add_argument("--port", type=int, default=None, help="web portal port (default: a free one)")
    args = parser.parse_args(argv)
    if args.trial:
        trial()
        return 0

    from nni.experiment import CustomAlgorithmConfig, Experiment

    from nasassist_plugins.nni import run_hpo_experiment

    args.experiment_dir.mkdir(parents=True, exist_ok=True)
    experiment = Experiment("local")
    config = experiment.config
    config.experiment_name = "nasassist-hpo-digits"
    config.trial_command = f"{sys.executable} {Path(__file__).name} --trial"
    config.trial_code_directory = str(HERE)
    config.search_space = SEARCH_SPACE
    config.tuner = CustomAlgorithmConfig(
        class_name="nasassist_plugins.nni.NASAssistTuner",
        code_directory=str(HERE),  # so the dispatcher can import this file's build()
        class_args={"model_builder": "nni_hpo_assessor:build", "example_input": [1, 1, 8, 8],
                    "optimize_mode": "maximize", "seed": 0,
                    "config": {"min_candidates": 16, "n_exploration_trials": 3},
                    "decision_log": str(args.experiment_dir / "tuner_decisions.jsonl")},
    )
    config.assessor = CustomAlgorithmConfig(
        class_name="nasassist_plugins.nni.NASAssistAssessor",
        class_args={"max_step": EPOCHS, "optimize_mode": "maximize", "lower_bound": 0.0, "upper_bound": 1.0,
                    "decision_log": str(args.experiment_dir / "assessor_decisions.jsonl")},
    )
    config.max_trial_number = args.trials
    config.trial_concurrency = args.concurrency
    config.experiment_working_directory = str(args.experiment_dir.resolve())
    config.training_service.use_active_gpu = False

    started = time.perf_counter()
    run_hpo_experiment(experiment, args.port)  # a free port unless --port; waits for NNI's manager
    jobs = experiment.list_trial_jobs()
    experiment.stop()
    print(f"\n{'trial':<7} {'status':<14} {'final acc':>9}  parameters")
    for job in sorted(jobs, key=lambda j: j.sequenceId):
        final = job.finalMetricData[0].data if job.finalMetricData else None
        final_text = "—" if final is None else f"{float(json.loads(final) if isinstance(final, str) else final):.3f}"
        params = job.hyperParameters[0].parameters if job.hyperParameters else {}
        print(f"{job.sequenceId:<7} {job.status:<14} {final_text:>9}  {params}")
    stopped = sum(j.status in ("EARLY_STOPPED", "USER_CANCELED") for j in jobs)
    print(f"\n{len(jobs)} trials in {time.perf_counter() - started:.0f} s, {stopped} stopped early by NASAssistAssessor.")
    print(f"Decisions: {args.experiment_dir / 'tuner_decisions.jsonl'}, {args.experiment_dir / 'assessor_decisions.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
