"""The proposer protocols and the data that flows between a proposer and the improvement loop.

Two kinds of proposals:

* **parameter sets** inside an Optuna/NNI search space — :class:`ParameterProposer`, the
  hook the Optuna sampler and the NNI strategy call (they duck-type it);
* **source code** outside any search space — :class:`SourceProposer`, called by
  :func:`~nasassist_plugins.mutation.loop.improve` with a :class:`SourceRequest` and
  answering with a :class:`SourceCandidate`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from nasassist_plugins.mutation.annotate import LineRelevance
    from nasassist_plugins.mutation.prompts import Attempt, Constraints
    from nasassist_plugins.mutation.sandbox import Sandbox, SandboxResult

__all__ = ["ParameterProposer", "SourceCandidate", "SourceProposer", "SourceRequest", "source_digest"]


@runtime_checkable
class ParameterProposer(Protocol):
    """Proposes new parameter sets from finished trials.

    ``parents`` are finished ``(params, value)`` pairs sorted best first, with ``value``
    oriented so that larger is better; ``distributions`` has an Optuna distribution for
    every parameter seen. Returns up to ``n`` new dicts whose values lie in the
    distributions (parameters may be omitted; the caller fills them randomly).

    A proposer whose method also accepts a ``context`` keyword gets the planner's
    :class:`~nasassist_plugins.search.source.ProposalContext`: build graphs with its
    ``graph_of`` and score with its ``score`` (the study's surrogate) instead of a
    builder and predictor of its own.
    """

    def propose_params(
        self,
        parents: Sequence[tuple[dict[str, Any], float]],
        distributions: Mapping[str, "BaseDistribution"],
        n: int,
        rng: np.random.RandomState,
    ) -> list[dict[str, Any]]: ...


@dataclass
class SourceRequest:
    """Everything a source proposer may use to propose the next model.

    Attributes:
        source: the current model's source (the best so far).
        entry: name of the ``nn.Module`` class to build.
        annotated_source: ``source`` with a relevance comment on each layer's line.
        line_relevance: ``{line: LineRelevance}`` behind those comments.
        predicted: the current model's predicted score.
        constraints: shapes and parameter budget a proposal must keep.
        attempts: earlier proposals with their predicted scores or refusal reasons.
        seen: digests of every source already evaluated (do not propose them again).
        rng: randomness for the proposer.
        predictor, sandbox: shared with the loop, so an offline proposer can pre-screen.
        target: description of the score's scale, for prompts.
        trusted_source: ``source`` is the user's model or offline edits of it (no
            generated code), so edits of it may be built without strong isolation.
    """

    source: str
    entry: str
    annotated_source: str
    line_relevance: Mapping[int, "LineRelevance"]
    predicted: float
    constraints: "Constraints"
    attempts: Sequence["Attempt"] = ()
    seen: set[str] = field(default_factory=set)
    rng: np.random.RandomState = field(default_factory=lambda: np.random.RandomState(0))
    predictor: Any = None
    sandbox: "Sandbox | None" = None
    target: str = ""
    trusted_source: bool = False


@dataclass
class SourceCandidate:
    """A proposed model: its source, why, where it came from, and (if already built) the sandbox verdict."""

    source: str
    explanation: str
    origin: str
    sandbox_result: "SandboxResult | None" = None
    predicted: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return source_digest(self.source)


@runtime_checkable
class SourceProposer(Protocol):
    """Proposes a new model source for a :class:`SourceRequest` (``None``: nothing left to propose)."""

    def propose_source(self, request: SourceRequest) -> SourceCandidate | None: ...


def source_digest(source: str) -> str:
    """A short digest of a source, ignoring trailing whitespace on lines."""
    text = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
