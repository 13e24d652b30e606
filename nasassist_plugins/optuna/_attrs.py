"""Names of the trial attributes NAS-Assist writes into an Optuna study's storage.

Everything the sampler and pruner need to be correct with many workers and after a
restart lives in the storage under these keys, never only in process memory.
"""

PREFIX = "nasassist:"
PLAN = PREFIX + "plan"  # system attr: the parameter set the trial must take (JSON-able dict)
PREDICTED_MEAN = PREFIX + "predicted_mean"  # DECISION field: predicted score (larger is better)
PREDICTED_STD = PREFIX + "predicted_std"  # DECISION field (and report_model's system attr): its uncertainty
ZERO_SHOT = PREFIX + "zero_shot"  # system attr: zero-shot rank score (comparable across trials)
ZERO_SHOT_KIND = PREFIX + "zero_shot_kind"  # system attr: "fused" or "learned-only" (report_model)
NOVELTY = PREFIX + "novelty"  # system attr: novelty of the architecture (0 typical .. 1 unlike the training families)
SUITE = PREFIX + "suite"  # system attr: training-free suite signals {name: value or None} (report_model)
LCE_PROBABILITY = PREFIX + "lce_probability"  # system attr: P(final beats the reference) at the last decision
LCE_FORECAST = PREFIX + "lce_forecast"  # system attr: [median, 10 %, 90 %] of the forecast final value
LCE_STEP = PREFIX + "lce_step"  # system attr: resource (step + 1) of the trial's last learning-curve decision
PRUNED_BY = PREFIX + "pruned_by"  # system attr: "wrapped", "zero-shot" or "learning-curve"
PREDICTION_SCALE = PREFIX + "prediction_scale"  # DECISION field: "zero-shot rank" or "fine-tuned (n trials)"
CANDIDATES = PREFIX + "n_candidates"  # DECISION field: candidates scored for this trial
ORIGIN = PREFIX + "origin"  # DECISION field: "random", "mutation", "proposer", "enqueued" or "base-sampler"
THRESHOLD = PREFIX + "threshold"  # DECISION field: predicted mean below which candidates were dropped

# user attrs, shown by optuna-dashboard
USER_PREDICTED = "nasassist_predicted"  # + "_<objective>" per objective in multi-objective studies
USER_UNCERTAINTY = "nasassist_uncertainty"
USER_SCALE = "nasassist_prediction_scale"
USER_FEASIBLE = "nasassist_predicted_feasible"  # whether budgets and constraints were predicted met

# the fast candidate path (issue 15)
ARCH = PREFIX + "arch"  # system attr: identity of the planned architecture, written first to reserve it
PLAN_SECONDS = PREFIX + "plan_seconds"  # DECISION field: wall time the sampler spent planning the trial
ERROR = PREFIX + "error"  # system attr: why the sampler failed the trial (the trial is FAIL)
#: system attr: one dict with the sampler's DECISION fields (one storage write instead of seven)
DECISION = PREFIX + "decision"


def decision_of(system_attrs: "dict[str, object]") -> "dict[str, object]":
    """The DECISION fields of a trial (``{}`` for a trial the sampler did not plan)."""
    value = system_attrs.get(DECISION)
    return dict(value) if isinstance(value, dict) else {}

#: RDB storages keep system attr values under 2,046 characters (Optuna's GPSampler and
#: CmaEsSampler split longer values at this length the same way).
MAX_ATTR_LENGTH = 2045


def split_attr(key: str, value: object) -> dict[str, object]:
    """System attrs storing ``value`` under ``key``: as is when its JSON fits, else in chunks.

    A long value becomes ``{key + ":0": text, key + ":1": text, ...}`` (its JSON, cut every
    :data:`MAX_ATTR_LENGTH` characters); :func:`join_attr` reads either form back.
    """
    import json

    text = json.dumps(value)
    if len(text) <= MAX_ATTR_LENGTH:
        return {key: value}
    return {f"{key}:{i // MAX_ATTR_LENGTH}": text[i : i + MAX_ATTR_LENGTH] for i in range(0, len(text), MAX_ATTR_LENGTH)}


def join_attr(system_attrs: "dict[str, object]", key: str) -> object:
    """The value :func:`split_attr` stored under ``key`` (``None`` when absent or incomplete)."""
    import json

    if key in system_attrs:
        return system_attrs[key]
    chunks = []
    while f"{key}:{len(chunks)}" in system_attrs:
        chunks.append(str(system_attrs[f"{key}:{len(chunks)}"]))
    if not chunks:
        return None
    try:
        return json.loads("".join(chunks))
    except ValueError:  # a plan whose last chunk was never written (worker killed mid-write)
        return None
