"""Proposals as Optuna trials: parameter sets via ``enqueue_trial``, source code via trial attributes.

Design (why the objective never runs generated code):

* **In-space proposals** are plain parameter dicts: :func:`enqueue_param_proposals`
  asks a :class:`~.base.ParameterProposer` for them from the study's finished trials and
  enqueues them; the objective builds them with its own code, as for any trial.
* **Out-of-space proposals** are model sources. :func:`enqueue_source_proposal` first
  builds the source in the sandbox (validation, instantiation, one forward pass in a
  limited child process) and enqueues a trial carrying, in its user attributes, the
  validated source, the entry class, the input shape, the sandbox's graph JSON, parameter
  count and output shape, the explanation and the prompt version. In the objective,
  :func:`get_source_proposal` returns a :class:`SourceProposal` (or ``None`` for an
  ordinary trial) whose :meth:`~SourceProposal.graph` is parsed from JSON, and whose
  :meth:`~SourceProposal.evaluate` trains and scores the model **inside a sandbox child**
  with a trusted trainer function named by import path (``"mypkg.train:fit"``). The
  objective only ever sees JSON: the graph, and the number the trainer returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.mutation.base import ParameterProposer, source_digest
from nasassist_plugins.mutation.errors import MutationError, ProposalRejected
from nasassist_plugins.mutation.prompts import PROMPT_VERSION
from nasassist_plugins.mutation.sandbox import Sandbox, SandboxLimits

__all__ = [
    "ATTR_PREFIX",
    "SourceProposal",
    "enqueue_param_proposals",
    "enqueue_source_proposal",
    "get_source_proposal",
    "study_parents",
]

#: Prefix of the trial user attributes that carry a source proposal.
ATTR_PREFIX = "nasassist:proposal:"
_KEYS = ("source", "entry", "input_shape", "graph", "num_params", "output_shape", "explanation", "predicted",
         "prompt_version", "digest", "origin")


@dataclass
class SourceProposal:
    """A sandbox-validated model source attached to a trial (see the module docstring)."""

    source: str
    entry: str
    input_shape: tuple[int, ...]
    graph_json: str
    num_params: int
    output_shape: tuple[int, ...]
    explanation: str = ""
    predicted: float | None = None
    prompt_version: str = PROMPT_VERSION
    origin: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return source_digest(self.source)

    def graph(self) -> ComputationalGraph:
        """The model's computational graph (from JSON; nothing runs)."""
        return ComputationalGraph.from_dict(json.loads(self.graph_json))

    def evaluate(self, trainer: str, trainer_kwargs: Mapping[str, Any] | None = None, *,
                 limits: SandboxLimits | None = None, sandbox: Sandbox | None = None, trusted: bool = False) -> Any:
        """Train/evaluate the model in a sandbox child with ``trainer(model, **trainer_kwargs)``.

        ``trainer`` is ``"package.module:function"`` (trusted code, importable in a fresh
        interpreter: put its directory, and its data, in the sandbox's ``extra_paths`` and
        ``read_paths``); its JSON-serialisable return value is returned here. ``trusted``
        (default False): the source is the user's own code, which may be trained without
        strong isolation; generated code is refused there.

        Raises:
            ProposalRejected: the model failed to build, or the trainer failed or ran out
                of its limits, or strong isolation is unavailable (the reason says which).
        """
        own = sandbox is None
        sandbox = sandbox or Sandbox(limits or SandboxLimits(cpu_s=3600, memory_mb=8192, wall_s=120, train_wall_s=3600))
        try:
            result = sandbox.train(self.source, self.input_shape, trainer, entry=self.entry,
                                   trainer_kwargs=trainer_kwargs, limits=limits, trusted=trusted)
        finally:
            if own:
                sandbox.close()
        result.raise_if_rejected()
        return result.value

    def to_attrs(self) -> dict[str, Any]:
        values = {"source": self.source, "entry": self.entry, "input_shape": list(self.input_shape),
                  "graph": self.graph_json, "num_params": self.num_params, "output_shape": list(self.output_shape),
                  "explanation": self.explanation, "predicted": self.predicted, "prompt_version": self.prompt_version,
                  "digest": self.digest, "origin": self.origin}
        return {ATTR_PREFIX + k: v for k, v in values.items()}


def enqueue_source_proposal(
    study: Any,
    source: str,
    *,
    input_shape: Sequence[int],
    entry: str | None = None,
    params: Mapping[str, Any] | None = None,
    explanation: str = "",
    predicted: float | None = None,
    origin: str = "",
    expected_output_shape: Sequence[int] | None = None,
    sandbox: Sandbox | None = None,
    trusted: bool = False,
) -> SourceProposal:
    """Validate ``source`` in the sandbox and enqueue it as a trial of ``study``.

    ``params`` are the trial's fixed parameters (e.g. the training hyper-parameters to use
    with this model; may be empty). ``trusted`` (default False): the source is the user's
    own code, which may be built without strong isolation. Raises
    :class:`ProposalRejected` (nothing enqueued) when the sandbox refuses the source or its
    output shape differs from ``expected_output_shape``.
    """
    if not hasattr(study, "enqueue_trial"):
        raise MutationError(f"expected an optuna.Study, got {type(study).__name__}")
    own = sandbox is None
    sandbox = sandbox or Sandbox()
    try:
        result = sandbox.check(source, tuple(input_shape), entry=entry, trusted=trusted).raise_if_rejected()
    finally:
        if own:
            sandbox.close()
    if expected_output_shape is not None and tuple(result.output_shape or ()) != tuple(expected_output_shape):
        raise ProposalRejected("wrong-output-shape",
                               f"output shape {tuple(result.output_shape or ())}, expected {tuple(expected_output_shape)}")
    graph = result.graph()
    proposal = SourceProposal(
        source=source, entry=entry or graph.name, input_shape=tuple(int(d) for d in input_shape),
        graph_json=result.graph_json or "", num_params=int(result.num_params or 0),
        output_shape=tuple(result.output_shape or ()), explanation=explanation, predicted=predicted, origin=origin,
    )
    study.enqueue_trial(dict(params or {}), user_attrs=proposal.to_attrs())
    return proposal


def get_source_proposal(trial: Any) -> SourceProposal | None:
    """The :class:`SourceProposal` a trial carries, or ``None`` for an ordinary trial.

    Works with ``optuna.Trial`` and ``FrozenTrial`` (anything with ``user_attrs``).
    Raises :class:`MutationError` when the attributes are present but incomplete.
    """
    attrs = getattr(trial, "user_attrs", None) or {}
    if ATTR_PREFIX + "source" not in attrs:
        return None
    missing = [k for k in ("source", "entry", "input_shape", "graph", "num_params", "output_shape") if ATTR_PREFIX + k not in attrs]
    if missing:
        raise MutationError(f"trial carries an incomplete source proposal (missing {', '.join(missing)})")
    get = lambda k, d=None: attrs.get(ATTR_PREFIX + k, d)  # noqa: E731
    return SourceProposal(
        source=str(get("source")), entry=str(get("entry")), input_shape=tuple(int(d) for d in get("input_shape")),
        graph_json=str(get("graph")), num_params=int(get("num_params")),
        output_shape=tuple(int(d) for d in get("output_shape")), explanation=str(get("explanation", "")),
        predicted=get("predicted"), prompt_version=str(get("prompt_version", PROMPT_VERSION)), origin=str(get("origin", "")),
    )


def study_parents(study: Any) -> tuple[list[tuple[dict[str, Any], float]], dict[str, Any]]:
    """Finished trials of ``study`` as ``(params, value)`` best first (larger is better), and their distributions."""
    import optuna

    direction = study.direction
    sign = 1.0 if direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    parents: list[tuple[dict[str, Any], float]] = []
    distributions: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.value is None:
            continue
        parents.append((dict(t.params), sign * float(t.value)))
        distributions.update(t.distributions)
    parents.sort(key=lambda pv: -pv[1])
    return parents, distributions


def enqueue_param_proposals(study: Any, proposer: ParameterProposer, n: int = 1, *, seed: int = 0,
                            distributions: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Ask ``proposer`` for ``n`` parameter sets from the study's finished trials and enqueue them."""
    parents, seen_distributions = study_parents(study)
    space = dict(distributions or seen_distributions)
    if not space:
        raise MutationError("the study has no finished trials with parameters and no distributions were given")
    proposals = proposer.propose_params(parents, space, n, np.random.RandomState(seed))
    for params in proposals:
        explain = getattr(proposer, "explain", None)
        attrs = {ATTR_PREFIX + "explanation": explain(params)} if callable(explain) and explain(params) else None
        study.enqueue_trial(params, user_attrs=attrs)
    return proposals
