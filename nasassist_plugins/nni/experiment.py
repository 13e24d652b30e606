"""Running NNI experiments where you choose: experiment directory, port, engine.

NNI writes logs, checkpoints and an experiment manifest (``.experiment``) under
``~/nni-experiments`` and serves its web portal on port 8080 unless told otherwise. The
helpers here put everything of a NAS experiment under one directory of your choice
(tests use a temporary one) and find a free port for experiments that start NNI's
manager.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from nasassist_plugins.errors import NNIConfigError
from nasassist_plugins.nni._env import configure_framework


def free_port() -> int:
    """A TCP port that is free on localhost right now (for ``experiment.run(port)``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def experiment_manifest_dir(directory: str | Path) -> Iterator[Path]:
    """Make NNI's Python side write its experiment manifest (``.experiment``) into ``directory``.

    NNI keeps a list of experiments in ``~/nni-experiments/.experiment``; a NAS experiment
    on the sequential engine only touches it from Python, so redirecting it here keeps
    the home directory clean. (Experiments that start NNI's Node.js manager also write
    the list from there, under ``$HOME/nni-experiments``.)
    """
    from nni.tools.nnictl import config_utils

    path = Path(directory).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    init = config_utils.Experiments.__init__
    previous = init.__defaults__
    init.__defaults__ = (str(path),)
    try:
        yield path
    finally:
        init.__defaults__ = previous


@contextlib.contextmanager
def patient_manager_start(timeout: float = 120.0) -> Iterator[None]:
    """Let NNI's launcher wait until its manager has really started (HPO, ``ts`` NAS engine).

    NNI 3.0's launcher polls ``/check-status`` about four times, one second apart, and
    accepts any answer; but while the Node.js manager is still initialising, a fallback
    router answers that URL with the text ``INITIALIZING`` and every other request with
    404, so on a busy machine the experiment fails with "Create experiment failed:
    Expecting value". Inside this context the launcher waits (up to ``timeout`` seconds)
    for a real status instead.
    """
    from nni.experiment import launcher, rest

    def check(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                rest.get(port, "/check-status", url_prefix)  # JSON only once the manager is up
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    original = launcher._check_rest_server
    launcher._check_rest_server = check
    try:
        yield
    finally:
        launcher._check_rest_server = original


def run_hpo_experiment(experiment: Any, port: int | None = None, *, startup_timeout: float = 120.0) -> bool | None:
    """``experiment.run(port)`` for an HPO ``nni.experiment.Experiment``, robust on busy machines.

    Uses a free port unless ``port`` is given and waits for NNI's manager to be really up
    (:func:`patient_manager_start`). The experiment is left running so that
    ``list_trial_jobs()`` / ``export_data()`` work; call ``experiment.stop()`` after.
    """
    with patient_manager_start(startup_timeout):
        return experiment.run(port if port is not None else free_port())


def run_nas_experiment(
    model_space: Any,
    evaluator: Any,
    strategy: Any,
    *,
    max_trials: int,
    experiment_dir: str | Path | None = None,
    engine: str = "sequential",
    model_format: str = "simplified",
    port: int | None = None,
    max_duration: str | None = None,
    debug: bool = False,
    stop: bool = True,
) -> Any:
    """Create and run a NAS experiment to completion; returns the ``NasExperiment``.

    Args:
        model_space: an ``nni.nas.nn.pytorch.ModelSpace``.
        evaluator: e.g. ``FunctionalEvaluator(fn)`` (use a fresh trainer per model: NNI's
            Lightning ``Classification`` evaluator breaks on the second model of a
            sequential experiment).
        strategy: the exploration strategy (e.g. :class:`NASAssistStrategy`).
        max_trials: models to train at most.
        experiment_dir: where logs, checkpoints and the experiment manifest go
            (default: NNI's ``~/nni-experiments``).
        engine: ``"sequential"`` (in-process, offline; the default) or ``"ts"`` (one
            subprocess per trial through NNI's manager and training service).
        model_format: ``"simplified"`` (default), ``"raw"`` or ``"graph"``.
        port: web-portal port for the ``"ts"`` engine (default: a free one).
        max_duration: e.g. ``"10m"``; optional budget in time.
        stop: stop the experiment when the strategy is done (final checkpoint, manifest
            marked stopped, log files closed). NNI's ``run()`` otherwise leaves that to an
            ``atexit`` hook. The finished models stay available
            (``experiment.export_top_models``, ``strategy.list_models``).
    """
    configure_framework()
    from nni.nas.experiment import NasExperiment, NasExperimentConfig

    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise NNIConfigError(f"max_trials must be a positive integer, got {max_trials!r}")
    config = NasExperimentConfig(engine, model_format)
    config.max_trial_number = max_trials
    if max_duration is not None:
        config.max_trial_duration = max_duration
    if engine != "sequential":
        config.trial_concurrency = 1
        config.training_service.use_active_gpu = False
    if experiment_dir is not None:
        config.experiment_working_directory = str(Path(experiment_dir).expanduser().resolve())
    experiment = NasExperiment(model_space, evaluator, strategy, config)
    chosen_port = port if port is not None else (free_port() if engine != "sequential" else 8080)
    manifest = experiment_manifest_dir(experiment_dir) if experiment_dir is not None else contextlib.nullcontext()
    patience = patient_manager_start() if engine != "sequential" else contextlib.nullcontext()
    with manifest, patience:
        try:
            experiment.run(port=chosen_port, debug=debug)
        finally:
            if stop:
                experiment.stop()
    return experiment
