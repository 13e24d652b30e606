"""What the sandbox answers about one source, and the checks every answer passes before it is believed.

An answer line from the child is untrusted input: :func:`result_from_answer` keeps a
reason only if it is a short category, sanitises the detail
(:func:`~nasassist_plugins.mutation.redact.redact`), and accepts ``ok`` only with a
parameter count within the limit, a well-formed output shape and a graph that parses and
holds no more parameters than the model reports; anything else becomes an
``inconsistent-result`` refusal.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.mutation.errors import ProposalRejected
from nasassist_plugins.mutation.redact import redact

if TYPE_CHECKING:  # pragma: no cover
    from nasassist_plugins.mutation.sandbox.runner import SandboxLimits

__all__ = ["SandboxResult", "refusal", "result_from_answer"]

_REASON = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass
class SandboxResult:
    """What the sandbox says about one source.

    ``ok`` is True when the model was built and ran; then ``graph_json``, ``num_params``
    (counted from the real tensors) and ``output_shape`` are set (and ``value`` in
    training mode). Otherwise ``reason`` is a short category (``forbidden-import``,
    ``timeout``, ``memory-limit``, ``cpu-limit``, ``too-many-parameters``,
    ``isolation-unavailable``, ...) and ``detail`` explains it in one sanitised line.
    """

    ok: bool
    reason: str = ""
    detail: str = ""
    graph_json: str | None = None
    num_params: int | None = None
    output_shape: tuple[int, ...] | None = None
    value: Any = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    _graph: ComputationalGraph | None = field(default=None, repr=False, compare=False)

    def graph(self) -> ComputationalGraph:
        """The traced graph (parsed from JSON and checked when the answer arrived; nothing of the model runs)."""
        if not self.ok or self.graph_json is None:
            raise ProposalRejected(self.reason or "no-graph", self.detail or "the sandbox returned no graph")
        if self._graph is None:
            self._graph = ComputationalGraph.from_dict(json.loads(self.graph_json))
        return self._graph

    def raise_if_rejected(self) -> "SandboxResult":
        if not self.ok:
            raise ProposalRejected(self.reason, self.detail)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("graph_json", None)
        data.pop("_graph", None)
        return data


def refusal(reason: str, detail: str) -> SandboxResult:
    return SandboxResult(False, reason, redact(detail, 500))


def result_from_answer(payload: Mapping[str, Any], limits: "SandboxLimits", seconds: float) -> SandboxResult:
    """A :class:`SandboxResult` from one answer line, after checking everything in it."""
    reason = payload.get("reason", "")
    reason = reason if isinstance(reason, str) and (reason == "" or _REASON.match(reason)) else "invalid-reason"
    detail = redact(payload.get("detail", "") if isinstance(payload.get("detail"), str) else "", 500)
    if payload.get("ok") is not True:
        count = payload.get("num_params")
        return SandboxResult(False, reason or "refused", detail, seconds=seconds,
                             num_params=count if isinstance(count, int) and not isinstance(count, bool) else None)
    graph_json, num_params, shape = payload.get("graph"), payload.get("num_params"), payload.get("output_shape")
    problem = ""
    if not isinstance(graph_json, str):
        problem = "no graph"
    elif not isinstance(num_params, int) or isinstance(num_params, bool) or not 0 <= num_params <= limits.max_params:
        problem = f"parameter count {num_params!r} outside 0..{limits.max_params:,}"
    elif (not isinstance(shape, list) or not 1 <= len(shape) <= 8
          or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)):
        problem = "malformed output shape"
    graph = None
    if not problem:
        try:
            graph = ComputationalGraph.from_dict(json.loads(graph_json))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            problem = f"the graph does not parse ({type(exc).__name__})"
        else:
            if graph.num_parameters > num_params:
                problem = (f"the graph holds {graph.num_parameters:,} parameters but the model reports "
                           f"{num_params:,}")
            elif graph.num_nodes < 2:
                problem = "the graph has no operations"
    if problem:
        return SandboxResult(False, "inconsistent-result", redact(problem, 300), seconds=seconds)
    suite = _suite_of(payload.get("suite"))
    return SandboxResult(True, reason, detail, graph_json=graph_json, num_params=num_params,
                         output_shape=tuple(shape), value=payload.get("value"), seconds=seconds,
                         extra={"suite": suite} if suite is not None else {}, _graph=graph)


def _suite_of(raw: Any) -> dict[str, float] | None:
    """The suite signals a child reported: known names with finite numbers only (NaN otherwise)."""
    from nasassist_plugins.proxies.suite import SUITE_SIGNALS

    if not isinstance(raw, Mapping):
        return None
    out = {}
    for name in SUITE_SIGNALS:
        value = raw.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        out[name] = float(value) if ok else math.nan
    return out
