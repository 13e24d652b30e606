"""Optuna plugin: a sampler that plans architectures with the zero-shot predictor and a
pruner that stops trials by zero-shot score and learning-curve extrapolation::

    import optuna
    from nasassist_plugins.optuna import NASAssistSampler, NASAssistPruner

    study = optuna.create_study(
        direction="maximize",
        sampler=NASAssistSampler(build_model=build_model, example_input=torch.randn(1, 3, 32, 32)),
        pruner=NASAssistPruner(max_resource=epochs - 1, lower_bound=0.0, upper_bound=1.0),
    )

Public API::

    NASAssistSampler  BaseSampler: candidates → predictor → acquisition → the trial's plan
    NASAssistPruner   BasePruner: zero-shot pruning at step 0 + learning-curve extrapolation
    report_model      store a zero-shot score for a trial planned by another sampler
    CandidateTrial    the trial stand-in the sampler passes to your build_model
"""

from nasassist_plugins.optuna._candidate_trial import CandidateTrial
from nasassist_plugins.optuna.pruner import NASAssistPruner
from nasassist_plugins.optuna.reporting import report_model
from nasassist_plugins.optuna.sampler import NASAssistSampler

__all__ = ["NASAssistSampler", "NASAssistPruner", "report_model", "CandidateTrial"]
