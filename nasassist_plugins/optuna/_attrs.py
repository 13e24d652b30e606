"""Names of the trial attributes NAS-Assist writes into an Optuna study's storage.

Everything the sampler and pruner need to be correct with many workers and after a
restart lives in the storage under these keys, never only in process memory.
"""

PREFIX = "nasassist:"
PLAN = PREFIX + "plan"  # system attr: the parameter set the trial must take (JSON-able dict)
PREDICTED_MEAN = PREFIX + "predicted_mean"  # system attr: predicted score (larger is better)
PREDICTED_STD = PREFIX + "predicted_std"  # system attr: its uncertainty
ZERO_SHOT = PREFIX + "zero_shot"  # system attr: zero-shot rank score (comparable across trials)
ZERO_SHOT_KIND = PREFIX + "zero_shot_kind"  # system attr: "fused" or "learned-only" (report_model)
NOVELTY = PREFIX + "novelty"  # system attr: novelty of the architecture (0 typical .. 1 unlike the training families)
SUITE = PREFIX + "suite"  # system attr: training-free suite signals {name: value or None} (report_model)
PREDICTION_SCALE = PREFIX + "prediction_scale"  # system attr: "zero-shot rank" or "fine-tuned (n trials)"
CANDIDATES = PREFIX + "n_candidates"  # system attr: candidates scored for this trial
ORIGIN = PREFIX + "origin"  # system attr: "random", "mutation", "proposer", "enqueued" or "base-sampler"
THRESHOLD = PREFIX + "threshold"  # system attr: predicted mean below which candidates were dropped
LCE_PROBABILITY = PREFIX + "lce_probability"  # system attr: P(final beats the reference) at the last decision
LCE_FORECAST = PREFIX + "lce_forecast"  # system attr: [median, 10 %, 90 %] of the forecast final value
LCE_STEP = PREFIX + "lce_step"  # system attr: resource (step + 1) of the trial's last learning-curve decision
PRUNED_BY = PREFIX + "pruned_by"  # system attr: "wrapped", "zero-shot" or "learning-curve"

# user attrs, shown by optuna-dashboard
USER_PREDICTED = "nasassist_predicted"
USER_UNCERTAINTY = "nasassist_uncertainty"
USER_SCALE = "nasassist_prediction_scale"
