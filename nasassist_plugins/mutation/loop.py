"""The improvement loop (the thesis's Algorithm 3), for model source and for parameter sets.

Algorithm 3: for up to ``MAX_ITERATION`` rounds, get a proposal, estimate its score with
the predictor; stop as soon as a proposal reaches the threshold, otherwise keep the best
so far. Here each round proposes from the *best model so far* (whose relevance table is
recomputed when it changes), and earlier attempts — with their predicted scores or the
reason they were refused — are fed back to the proposer.

:func:`improve` works on ``nn.Module`` source: proposals are validated and built in the
sandbox (generated code never runs in this process), must keep the input/output shapes
and stay within the parameter budget, and are scored from the graph the sandbox returns.
The result carries the best source, not a live model, for that reason.

:func:`improve_params` runs the same loop on parameter sets of a search space with any
:class:`~.base.ParameterProposer` (the benchmark's setting).
"""

from __future__ import annotations

import difflib
import inspect
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.mutation.annotate import annotate_source, line_relevance
from nasassist_plugins.mutation.base import ParameterProposer, SourceProposer, SourceRequest, source_digest
from nasassist_plugins.mutation.errors import MutationError, ProposalRejected
from nasassist_plugins.mutation.prompts import PROMPT_VERSION, Attempt, Constraints
from nasassist_plugins.mutation.redact import redact
from nasassist_plugins.mutation.sandbox import Sandbox, check_source
from nasassist_plugins.relevance import layer_relevance

__all__ = ["HistoryEntry", "ImproveResult", "ParamsResult", "improve", "improve_params"]


@dataclass
class HistoryEntry:
    """One round of the loop."""

    iteration: int
    origin: str
    explanation: str
    predicted: float | None
    accepted: bool
    reason: str = ""
    num_params: int | None = None
    digest: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImproveResult:
    """Outcome of :func:`improve`.

    Attributes:
        source: the best model's source (the original when nothing beat it).
        original_source, entry: what the loop started from.
        predicted, baseline_predicted: predicted scores of the best and the original.
        threshold: the target score (``None``: no early stop).
        converged: whether a proposal reached the threshold.
        iterations: rounds run.
        explanation: why the best model differs from the original: the explanations of each
            accepted step on the way to it, numbered when there are several ("" when unchanged).
        history: every round, accepted or refused.
        graph: the best model's graph; ``num_params`` its parameter count.
        prompt_version: version of the prompts used.
    """

    source: str
    original_source: str
    entry: str
    predicted: float
    baseline_predicted: float
    threshold: float | None
    converged: bool
    iterations: int
    explanation: str
    history: list[HistoryEntry]
    graph: ComputationalGraph
    num_params: int
    baseline_num_params: int
    prompt_version: str = PROMPT_VERSION

    @property
    def improved(self) -> bool:
        return self.predicted > self.baseline_predicted

    def diff(self, fromfile: str = "original", tofile: str = "improved") -> str:
        """Unified diff from the original source to the best one."""
        return "".join(difflib.unified_diff(self.original_source.splitlines(keepends=True),
                                            self.source.splitlines(keepends=True), fromfile, tofile))

    def header(self) -> str:
        """``predicted 0.8539 → 0.8646`` (the thesis's Figure 3.8 header)."""
        return f"predicted {self.baseline_predicted:.4f} → {self.predicted:.4f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry, "predicted": self.predicted, "baseline_predicted": self.baseline_predicted,
            "threshold": self.threshold, "converged": self.converged, "iterations": self.iterations,
            "explanation": self.explanation, "num_params": self.num_params, "baseline_num_params": self.baseline_num_params,
            "prompt_version": self.prompt_version, "source": self.source, "diff": self.diff(),
            "history": [h.to_dict() for h in self.history],
        }


@dataclass
class ParamsResult:
    """Outcome of :func:`improve_params`: best parameters, scores, rounds, history."""

    params: dict[str, Any]
    predicted: float
    baseline_params: dict[str, Any]
    baseline_predicted: float
    threshold: float | None
    converged: bool
    iterations: int
    explanation: str
    history: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- source loop
def improve(
    model_or_source: nn.Module | str,
    *,
    threshold: float | None = None,
    max_iterations: int = 10,
    proposer: SourceProposer | None = None,
    predictor: Any = None,
    example_input: Any = None,
    entry: str | None = None,
    sandbox: Sandbox | None = None,
    param_budget: float = 0.5,
    seed: int = 0,
    on_iteration: Callable[[HistoryEntry], None] | None = None,
) -> ImproveResult:
    """Improve a model's predicted score by proposals from ``proposer`` (Algorithm 3).

    Args:
        model_or_source: an ``nn.Module`` instance (its class's source file is used) or
            the source text of a module defining the model class.
        threshold: stop as soon as a proposal's predicted score reaches it (``None``: run
            all ``max_iterations`` rounds and keep the best).
        max_iterations: the thesis's MAX_ITERATION.
        proposer: a :class:`~.base.SourceProposer` (default: the offline
            :class:`~.offline.RelevanceGuidedMutator`).
        predictor: scores graphs (default: the shipped predictor).
        example_input: input shape (or a tensor whose shape is used), e.g. ``(1, 3, 32, 32)``.
        entry: the model class in the source (default: the instance's class, or the last
            ``nn.Module`` class of the source).
        sandbox: where sources are built (default: :class:`~.sandbox.Sandbox` with default limits).
        param_budget: proposals must keep the parameter count within ±this fraction.
        seed: seeds the proposer's randomness.
        on_iteration: called with each round's :class:`HistoryEntry` (progress reporting).

    Raises:
        MutationError: bad arguments, or a starting model that cannot be built.
    """
    if not isinstance(max_iterations, int) or max_iterations < 1:
        raise MutationError(f"max_iterations must be a positive int, got {max_iterations!r}")
    if not 0 < param_budget:
        raise MutationError(f"param_budget must be positive, got {param_budget!r}")
    source, entry = _source_and_entry(model_or_source, entry)
    input_shape = _input_shape(example_input, model_or_source)
    own_sandbox = sandbox is None
    sandbox = sandbox or Sandbox()
    try:
        if predictor is None:
            from nasassist_plugins.predictor import default_predictor

            predictor = default_predictor()
        if proposer is None:
            from nasassist_plugins.mutation.offline import RelevanceGuidedMutator

            proposer = RelevanceGuidedMutator(predictor=predictor, sandbox=sandbox)
        if not hasattr(proposer, "propose_source"):
            raise MutationError(f"{type(proposer).__name__} cannot propose source (it has no propose_source method)")

        base = sandbox.check(source, input_shape, entry=entry, trusted=True)  # the user's own model
        if not base.ok:
            raise MutationError(f"the starting model {entry} cannot be built in the sandbox on an input of shape {input_shape} "
                                f"({base.reason}): {base.detail}")
        base_graph = base.graph()
        base_pred = _predict_one(predictor, base_graph, base.extra.get("suite"))
        constraints = Constraints(entry, input_shape, tuple(base.output_shape or ()), int(base.num_params or 0), param_budget)
        target = str(getattr(predictor, "target_description", ""))

        best = {"source": source, "graph": base_graph, "pred": base_pred, "params": int(base.num_params or 0), "lineage": [],
                "trusted": True}  # the user's model, or offline edits of it: no generated code
        best_request: SourceRequest | None = None
        history: list[HistoryEntry] = []
        attempts: list[Attempt] = []
        seen = {source_digest(source)}
        rng = np.random.RandomState(seed)
        converged = False
        for iteration in range(1, max_iterations + 1):
            started = time.monotonic()
            if best_request is None or best_request.source != best["source"]:
                table = layer_relevance(predictor, best["graph"])
                per_line = line_relevance(best["source"], entry, table.rows)
                best_request = SourceRequest(
                    source=best["source"], entry=entry, annotated_source=annotate_source(best["source"], entry, table.rows),
                    line_relevance=per_line, predicted=best["pred"], constraints=constraints, seen=seen, rng=rng,
                    predictor=predictor, sandbox=sandbox, target=target, trusted_source=bool(best["trusted"]),
                )
            best_request.attempts = list(attempts)
            candidate = proposer.propose_source(best_request)
            if candidate is None:
                history.append(HistoryEntry(iteration, "none", "the proposer had nothing left to propose", None, False,
                                            "exhausted", seconds=time.monotonic() - started))
                if on_iteration:
                    on_iteration(history[-1])
                break
            seen.add(candidate.digest)
            entry_row = HistoryEntry(iteration, redact(candidate.origin, 60), redact(candidate.explanation, 1000), None,
                                     False, digest=candidate.digest)
            try:
                result = candidate.sandbox_result or _check_candidate(sandbox, candidate.source, input_shape, entry)
                result.raise_if_rejected()
                if tuple(result.output_shape or ()) != constraints.output_shape:
                    raise ProposalRejected("wrong-output-shape", f"output shape {tuple(result.output_shape or ())}, "
                                           f"expected {constraints.output_shape}")
                low, high = constraints.param_range
                if result.num_params is None or not low <= result.num_params <= high:
                    raise ProposalRejected("parameter-budget", f"{result.num_params:,} parameters, allowed {low:,}..{high:,}")
                graph = result.graph()
                score = _predict_one(predictor, graph, result.extra.get("suite"))
                entry_row.predicted = score
                entry_row.num_params = result.num_params
                entry_row.accepted = True
                attempts.append(Attempt(entry_row.explanation, predicted=score))
                if threshold is not None and score >= threshold:
                    converged = True
                if score > best["pred"]:
                    lineage = best["lineage"] + [candidate.explanation or candidate.origin]
                    best = {"source": candidate.source, "graph": graph, "pred": score, "params": int(result.num_params),
                            "lineage": lineage, "trusted": best["trusted"] and candidate.origin.startswith("offline:")}
            except ProposalRejected as exc:
                entry_row.reason = redact(f"{exc.reason}: {exc.detail}", 500)
                attempts.append(Attempt(entry_row.explanation, rejected=entry_row.reason[:200]))
            entry_row.seconds = time.monotonic() - started
            history.append(entry_row)
            if on_iteration:
                on_iteration(entry_row)
            if converged:
                break
        return ImproveResult(
            source=best["source"], original_source=source, entry=entry, predicted=float(best["pred"]),
            baseline_predicted=float(base_pred), threshold=threshold, converged=converged, iterations=len(history),
            explanation=_join_lineage(best["lineage"]), history=history, graph=best["graph"], num_params=int(best["params"]),
            baseline_num_params=int(base.num_params or 0),
        )
    finally:
        if own_sandbox:  # stop the sandbox child this call started
            sandbox.close()


# ----------------------------------------------------------------------------- parameter loop
def improve_params(
    seed_params: Mapping[str, Any],
    distributions: Mapping[str, Any],
    *,
    score: Callable[[Mapping[str, Any]], float | None],
    proposer: ParameterProposer,
    threshold: float | None = None,
    max_iterations: int = 10,
    rng: np.random.RandomState | None = None,
    baseline: float | None = None,
) -> ParamsResult:
    """Algorithm 3 on parameter sets: one proposal per round from ``proposer``.

    ``score(params)`` estimates a parameter set (the predictor, possibly mapped to an
    accuracy scale); ``None`` marks a proposal that cannot be scored (it counts as a
    round). The proposer sees every evaluated set, best first, so it never repeats one.
    """
    if max_iterations < 1:
        raise MutationError(f"max_iterations must be positive, got {max_iterations!r}")
    rng = rng or np.random.RandomState(0)
    seed = dict(seed_params)
    base = float(score(seed)) if baseline is None else float(baseline)
    if not math.isfinite(base):
        raise MutationError("the seed parameters cannot be scored")
    evaluated: list[tuple[dict[str, Any], float]] = [(seed, base)]
    best_params, best_value, best_expl = seed, base, ""
    history: list[dict[str, Any]] = []
    converged = False
    for iteration in range(1, max_iterations + 1):
        parents = sorted(evaluated, key=lambda pv: -pv[1])
        proposals = proposer.propose_params(parents, distributions, 1, rng)
        if not proposals:
            history.append({"iteration": iteration, "params": None, "value": None, "reason": "exhausted"})
            break
        params = {**best_params, **proposals[0]}
        value = score(params)
        explain = getattr(proposer, "explain", None)
        explanation = explain(proposals[0]) if callable(explain) else ""
        history.append({"iteration": iteration, "params": params, "value": value, "explanation": explanation})
        if value is None or not math.isfinite(value):
            evaluated.append((params, -math.inf))
            continue
        evaluated.append((params, float(value)))
        if value > best_value:
            best_params, best_value, best_expl = params, float(value), explanation
        if threshold is not None and value >= threshold:
            converged = True
            break
    return ParamsResult(best_params, best_value, seed, base, threshold, converged, len(history), best_expl, history)


# ----------------------------------------------------------------------------- helpers
def _check_candidate(sandbox: Sandbox, source: str, input_shape: tuple[int, ...], entry: str) -> Any:
    """Build a proposal as generated (untrusted) code; any failure of the checking itself is a refusal."""
    try:
        return sandbox.check(source, input_shape, entry=entry)
    except Exception as exc:  # noqa: BLE001 - e.g. the sandbox could not start: refuse this proposal, go on
        raise ProposalRejected("sandbox-error", redact(f"{type(exc).__name__}: {exc}", 300)) from None


def _join_lineage(steps: list[str]) -> str:
    """The explanations of every accepted step from the original to the best model, in order."""
    if len(steps) <= 1:
        return steps[0] if steps else ""
    return " ".join(f"({k}) {text}" for k, text in enumerate(steps, 1))


def _predict_one(predictor: Any, graph: ComputationalGraph, suite: Any = None) -> float:
    """One model's score: fused when the sandbox measured its suite signals (see ``predict_sandboxed``)."""
    from nasassist_plugins.mutation.offline import predict_sandboxed

    mean, _ = predict_sandboxed(predictor, [graph], [suite])
    return float(mean[0])


def _source_and_entry(model_or_source: nn.Module | str, entry: str | None) -> tuple[str, str]:
    if isinstance(model_or_source, str):
        try:
            classes = check_source(model_or_source)
        except ProposalRejected as exc:
            raise MutationError(f"the starting source is refused by the sandbox's checks: {exc}") from None
        chosen = entry or classes[-1]
        if chosen not in classes:
            raise MutationError(f"no nn.Module class {chosen!r} in the source (classes: {', '.join(classes)})")
        return model_or_source, chosen
    if isinstance(model_or_source, nn.Module):
        cls = type(model_or_source)
        chosen = entry or cls.__name__
        module = sys.modules.get(cls.__module__)
        texts = []
        try:
            texts.append(inspect.getsource(module)) if module is not None else None
        except (OSError, TypeError):
            pass
        try:
            texts.append("import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
                         + inspect.getsource(cls))
        except (OSError, TypeError):
            pass
        reasons = []
        for text in texts:
            try:
                classes = check_source(text)
            except ProposalRejected as exc:
                reasons.append(str(exc))
                continue
            if chosen in classes:
                return text, chosen
        raise MutationError(
            f"cannot use the source of {cls.__name__}: " + ("; ".join(reasons) or "its source is not available")
            + ". Pass the model's source text instead (only torch, torch.nn, torch.nn.functional, math and typing "
            "may be imported, and the class must build with no arguments)"
        )
    raise MutationError(f"improve takes an nn.Module or its source text, got {type(model_or_source).__name__}")


def _input_shape(example_input: Any, model_or_source: Any) -> tuple[int, ...]:
    if example_input is None:
        shape = getattr(model_or_source, "input_shape", None)
        if shape is None:
            raise MutationError("improve needs example_input: an input shape such as (1, 3, 32, 32) or a tensor")
        example_input = shape
    if isinstance(example_input, torch.Tensor):
        return tuple(int(d) for d in example_input.shape)
    try:
        shape = tuple(int(d) for d in example_input)
    except (TypeError, ValueError):
        raise MutationError(f"example_input must be a shape or a tensor, got {example_input!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise MutationError(f"example_input must have positive sizes, got {shape}")
    return shape
