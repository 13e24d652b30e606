"""Where candidates come from, and the one way a built candidate becomes a graph.

Every front end hands the planner a :class:`CandidateSource`: the Optuna sampler builds
with the user's ``build_model(trial)``, the NNI strategy freezes its model space, the NNI
tuner calls its model builder. A source returns ``(params, built)`` pairs — the complete
parameter set and what the builder made of it (an ``nn.Module`` or a
:class:`ComputationalGraph`) — and :func:`to_graph` turns ``built`` into the graph. The
planner calls :func:`to_graph` only for architectures it has not encoded yet, and keeps
one cache (the surrogate's encodings), so nothing is traced twice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from nasassist_plugins.errors import NASAssistError, SearchError

__all__ = ["Built", "CandidateSource", "ProposalContext", "to_graph"]

#: A complete parameter set and what the front end's builder made of it.
Built = tuple[dict[str, Any], Any]


@runtime_checkable
class CandidateSource(Protocol):
    """A front end's way of drawing and building candidates.

    Attributes:
        example_input: what :func:`to_graph` traces built ``nn.Module`` objects with.

    ``sample(rng)`` returns a random candidate; ``complete(params)`` validates and
    completes a mutated or proposed parameter set (conditional parameters included) and
    builds it. Both return ``(params, built)``, or ``None`` / raise for an invalid
    candidate (the planner skips it and records why).
    """

    example_input: Any

    def sample(self, rng: np.random.RandomState) -> Built | None: ...

    def complete(self, params: Mapping[str, Any]) -> Built | None: ...


def to_graph(built: Any, example_input: Any) -> Any:
    """The computational graph of what a builder returned (an ``nn.Module`` or a graph).

    Raises:
        SearchError: naming the problem (not a module, no example input, tracing failed).
    """
    from nasassist_plugins.graph import ComputationalGraph

    if isinstance(built, ComputationalGraph):
        return built
    from torch import nn

    if not isinstance(built, nn.Module):
        raise SearchError(f"the builder returned {type(built).__name__}, not an nn.Module or a ComputationalGraph")
    if example_input is None:
        raise SearchError("the builder returned an nn.Module but there is no example_input to trace it with")
    from nasassist_plugins.adapters.torch_adapter import from_torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return from_torch(built, example_input)
    except NASAssistError as exc:
        raise SearchError(f"tracing failed: {exc}") from None


@dataclass(frozen=True)
class ProposalContext:
    """What the planner lends a proposer, so that it scores with the study's surrogate.

    Passed as ``propose_params(..., context=...)`` to proposers whose method accepts a
    ``context`` keyword (see :class:`nasassist_plugins.mutation.base.ParameterProposer`).

    Attributes:
        graph_of: the graph of a parameter set, built the planner's way (``None`` if the
            builder rejects it); its encoding is kept, so the planner never rebuilds it.
        score: ``(mean, std)`` of the study surrogate for parameter sets (larger is
            better; fine-tuned on the study once it has results; NaN where unbuildable).
        predictor: the zero-shot predictor (for layer relevance).
    """

    graph_of: Callable[[Mapping[str, Any]], Any]
    score: Callable[[Sequence[Mapping[str, Any]]], tuple[np.ndarray, np.ndarray]]
    predictor: Any
