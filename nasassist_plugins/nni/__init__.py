"""NAS-Assist inside NNI 3.0: a NAS strategy, an HPO tuner and an assessor.

    NASAssistStrategy         multi-trial NAS: score candidates zero-shot, submit the promising ones
    NASAssistAssessor         learning-curve early stopping (HPO; NAS through the strategy)
    NASAssistTuner            HPO tuner ranking architecture parameter sets with the predictor
    report_intermediate_result, should_stop   early stopping inside a NAS evaluator
    run_nas_experiment        run a NAS experiment in a directory of your choice (sequential engine)
    run_hpo_experiment        experiment.run() on a free port, waiting until NNI's manager is really up
    free_port                 a free port for experiments that start NNI's manager

Needs ``pip install "nasassist-plugins[nni]"`` (``nni==3.0`` with ``filelock<3.12`` and
``typeguard<4.1.3``); importing this package checks those pins and says what to install.
``import nasassist_plugins`` alone never imports NNI.

Names are imported on first use: NNI starts a custom tuner or assessor in its dispatcher
process and gives it 10 seconds to connect, so ``NASAssistAssessor`` must not pull in
PyTorch or the predictor, and ``NASAssistTuner`` loads them only once connected.
"""

from __future__ import annotations

import importlib
from typing import Any

from nasassist_plugins.errors import NNIConfigError, NNIEnvironmentError
from nasassist_plugins.nni._env import INSTALL_HINT, check_environment

check_environment()

_EXPORTS = {
    "NASAssistAssessor": "nasassist_plugins.nni.assessor",
    "NASAssistStrategy": "nasassist_plugins.nni.strategy",
    "report_intermediate_result": "nasassist_plugins.nni.strategy",
    "should_stop": "nasassist_plugins.nni.strategy",
    "NASAssistTuner": "nasassist_plugins.nni.tuner",
    "run_nas_experiment": "nasassist_plugins.nni.experiment",
    "experiment_manifest_dir": "nasassist_plugins.nni.experiment",
    "free_port": "nasassist_plugins.nni.experiment",
    "patient_manager_start": "nasassist_plugins.nni.experiment",
    "run_hpo_experiment": "nasassist_plugins.nni.experiment",
    "SearchSpace": "nasassist_plugins.nni.space",
    "hpo_space": "nasassist_plugins.nni.space",
    "nas_space": "nasassist_plugins.nni.space",
}

__all__ = ["INSTALL_HINT", "NNIConfigError", "NNIEnvironmentError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
