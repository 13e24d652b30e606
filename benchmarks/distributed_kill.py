"""A 4-worker PostgreSQL study of 200 trials, one worker killed with SIGKILL mid-trial.

    python benchmarks/distributed_kill.py --trials 200 --workers 4 --kill-after 60

A real PostgreSQL server is started on 127.0.0.1 (as the tests do). Four worker processes
share one study (NASAssistSampler, the conditional CNN space of ``tests/optuna_space.py``,
an objective that reports three steps over about ``--step-seconds`` each, heartbeats with
``RetryFailedTrialCallback``). Once ``--kill-after`` trials have finished, one worker is
killed with SIGKILL while a trial of it is running and a replacement worker starts; the
study runs until ``--trials`` trials have finished. Checked and written to
``benchmarks/results/distributed_kill.json``:

* lost: finished trials short of ``--trials``; the killed worker's trial must be FAIL
  (stale heartbeat) and retried to completion by another worker;
* duplicated architectures: finished trials whose plan (or architecture identity) another
  finished trial also ran, the retry of the killed trial excepted;
* stuck: trials left RUNNING at the end;
* without plan: trials lacking ``nasassist:plan`` (or its chunks) and ``nasassist:arch``;
* sampler time per trial (``nasassist:plan_seconds``) against trial time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def worker(url: str, name: str, weights: str | None, seed: int, trials: int, step_seconds: float) -> None:
    import optuna
    import torch

    from nasassist_plugins.optuna import NASAssistSampler
    from nasassist_plugins.predictor import Predictor
    from optuna_space import EXAMPLE_INPUT, build_model, objective

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=5,
                                         failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1))
    predictor = Predictor.load(weights) if weights else None
    sampler = NASAssistSampler(build_model=build_model, example_input=EXAMPLE_INPUT, predictor=predictor, seed=seed)
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)

    def slow(trial: optuna.trial.Trial) -> float:
        value = objective(trial)
        for step in range(3):
            trial.report(value * (step + 1) / 3, step)
            time.sleep(step_seconds)
        return value

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    study.optimize(slow, callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=60)
    parser.add_argument("--step-seconds", type=float, default=0.7)
    parser.add_argument("--weights", default=None, help="predictor weights (default: the shipped ones)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed_kill.json"))
    args = parser.parse_args()

    import optuna
    from optuna.trial import TrialState

    from nasassist_plugins.optuna import _attrs
    from nasassist_plugins.search import params_key
    from postgres_server import PostgresServer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = mp.get_context("spawn")
    started = time.perf_counter()
    with PostgresServer() as url:
        name = "kill-test"
        optuna.create_study(study_name=name, storage=optuna.storages.RDBStorage(url), direction="maximize")

        def spawn(seed: int) -> Any:
            process = ctx.Process(target=worker, args=(url, name, args.weights, seed, args.trials, args.step_seconds))
            process.start()
            return process

        procs = [spawn(seed) for seed in range(args.workers)]
        storage = optuna.storages.RDBStorage(url)
        killed = False
        while not killed and any(p.is_alive() for p in procs):
            time.sleep(0.5)
            study = optuna.load_study(study_name=name, storage=storage)
            trials = study.get_trials(deepcopy=False)
            done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            if done >= args.kill_after and any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
                victim = procs[0]  # every worker is mid-trial nearly all the time
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()
                killed = True
                print(f"killed worker pid {victim.pid} after {done} finished trials", flush=True)
                procs[0] = spawn(args.workers)  # a replacement keeps the workers busy
        for process in procs:
            process.join(timeout=3600)
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.trials

    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    stuck = [t for t in trials if t.state == TrialState.RUNNING]
    plans = {t.number: _attrs.join_attr(t.system_attrs, _attrs.PLAN) for t in trials}
    without_plan = [t.number for t in trials if not isinstance(plans[t.number], dict) or _attrs.ARCH not in t.system_attrs]
    keys: dict[str, list[int]] = {}
    archs: dict[str, list[int]] = {}
    for t in finished:
        if isinstance(plans[t.number], dict):
            keys.setdefault(params_key(plans[t.number]), []).append(t.number)
            archs.setdefault(t.system_attrs.get(_attrs.ARCH), []).append(t.number)
    duplicated = [numbers for numbers in list(keys.values()) + list(archs.values()) if len(numbers) > 1]
    plan_s = np.array([_attrs.decision_of(t.system_attrs).get(_attrs.PLAN_SECONDS, np.nan) for t in finished],
                      dtype=float)
    trial_s = np.array([(t.datetime_complete - t.datetime_start).total_seconds() for t in finished])
    report = {
        "trials_total": len(trials), "finished": len(finished), "failed": [t.number for t in failed],
        "failed_with_a_finished_retry": sorted(
            t.system_attrs["failed_trial"] for t in finished if "failed_trial" in t.system_attrs),
        "lost": max(0, args.trials - len(finished)), "duplicated_architectures": duplicated,
        "stuck_running": [t.number for t in stuck], "without_plan": without_plan,
        "plan_seconds_median": float(np.nanmedian(plan_s)), "plan_seconds_p90": float(np.nanpercentile(plan_s, 90)),
        "trial_seconds_median": float(np.median(trial_s)),
        "plan_share_of_trial_time": float(np.nansum(plan_s) / trial_s.sum()),
        "wall_seconds": time.perf_counter() - started, "args": vars(args) | {"out": str(args.out)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "args"}, indent=1))
    ok = (report["lost"] == 0 and not duplicated and not stuck and not without_plan and killed and failed
          and sorted(t.number for t in failed) == report["failed_with_a_finished_retry"])
    print("all checks passed" if ok else "CHECKS FAILED")


if __name__ == "__main__":
    main()
