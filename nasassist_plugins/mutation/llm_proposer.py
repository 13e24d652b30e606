"""The LLM proposer: asks a code LLM for models (source) or parameter sets, never trusting the answer.

Every failure — HTTP errors after retries, timeouts, the call/token/time budget,
malformed replies, a reply carrying a secret value, a validator error, parameter sets
outside the space — falls back to the offline mutator, so a study never crashes because
of the LLM. Source replies are only text here: the loop validates and builds them in the
sandbox. Where the sandbox has no strong isolation, generated code would not be executed,
so the proposer does not ask the LLM at all: it says why once (with the fix) and lets the
offline mutator carry on. What happened on each call is recorded, sanitised, in
:attr:`LLMProposer.events` (and in the improvement history).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
from optuna.distributions import BaseDistribution

from nasassist_plugins.experimental import warn_experimental
from nasassist_plugins.mutation.base import (
    SourceCandidate,
    SourceRequest,
    source_digest,
)
from nasassist_plugins.mutation.errors import LLMError, MutationError
from nasassist_plugins.mutation.llm_client import LLMClient, LLMConfig
from nasassist_plugins.mutation.offline import RelevanceGuidedMutator
from nasassist_plugins.mutation.prompts import (
    PROMPT_VERSION,
    params_messages,
    parse_params_reply,
    parse_source_reply,
    source_messages,
)
from nasassist_plugins.mutation.redact import contains_secret, redact
from nasassist_plugins.mutation.sandbox.validator import validate_source
from nasassist_plugins.mutation.space import coerce, params_key

__all__ = ["LLMProposer"]

_logger = logging.getLogger(__name__)


class LLMProposer:
    """Proposals from an OpenAI-compatible LLM, with the offline mutator as fallback.

    Args:
        client: an :class:`~.llm_client.LLMClient`, or an :class:`~.llm_client.LLMConfig`
            to build one.
        fallback: the proposer used whenever the LLM fails (a plain
            :class:`~.offline.RelevanceGuidedMutator` by default; give it your builder
            and predictor to keep relevance guidance in the fallback).

    Example::

        proposer = LLMProposer(LLMConfig(model="qwen2.5-coder:7b", base_url="http://localhost:11434/v1"),
                               fallback=RelevanceGuidedMutator(predictor=predictor))
        result = improve(source, entry="Net", example_input=(1, 3, 32, 32), proposer=proposer)
    """

    def __init__(self, client: LLMClient | LLMConfig, fallback: RelevanceGuidedMutator | None = None) -> None:
        if isinstance(client, LLMConfig):
            client = LLMClient(client)
        if not isinstance(client, LLMClient):
            raise MutationError(f"LLMProposer needs an LLMClient or LLMConfig, got {type(client).__name__}")
        warn_experimental("llm-proposer", "LLMProposer")
        self.client = client
        self.fallback = fallback or RelevanceGuidedMutator()
        self.events: list[dict[str, Any]] = []
        self.prompt_version = PROMPT_VERSION
        self.disabled_reason = ""

    def _event(self, kind: str, ok: bool, detail: str = "", *, log: bool = True) -> None:
        detail = redact(detail, 500)
        self.events.append({"kind": kind, "ok": ok, "detail": detail})
        if not ok and log:
            _logger.warning("LLM %s proposal failed, using the offline mutator: %s", kind, detail)

    def _isolation_refusal(self, request: SourceRequest) -> str:
        """Why generated code could not run in ``request.sandbox`` ("" when it can); logged once."""
        sandbox = request.sandbox
        if sandbox is None or sandbox.runs_untrusted_code:
            return ""
        if not self.disabled_reason:
            report = sandbox.isolation
            self.disabled_reason = redact(f"LLM proposals are not used: generated code runs only under strong "
                                          f"isolation, and {report.detail}. Fix: {report.fix}", 800)
            _logger.warning("%s The offline mutator carries on.", self.disabled_reason)
        return self.disabled_reason

    # ------------------------------------------------------------------ parameter sets
    def propose_params(
        self,
        parents: Sequence[tuple[dict[str, Any], float]],
        distributions: Mapping[str, BaseDistribution],
        n: int,
        rng: np.random.RandomState,
        context: Any = None,
    ) -> list[dict[str, Any]]:
        """Ask the LLM for ``n`` parameter sets; keep the valid new ones, fill the rest offline.

        ``context`` (given by the planner) is passed on to the offline fallback.
        """
        if n <= 0 or not distributions:
            return []
        seen = {params_key(p) for p, _ in parents}
        valid: list[dict[str, Any]] = []
        try:
            reply = self.client.complete(params_messages(parents, distributions, n))
            if contains_secret(reply.text):
                raise LLMError("the reply contains a secret value (an API key or token); it was dropped")
            dropped = 0
            for raw in parse_params_reply(reply.text):
                params = {}
                for name, value in raw.items():
                    if name in distributions:
                        fixed = coerce(distributions[name], value)
                        if fixed is not None:
                            params[name] = fixed
                key = params_key(params)
                if params and key not in seen:
                    seen.add(key)
                    valid.append(params)
                else:
                    dropped += 1
            self._event("params", bool(valid), f"{len(valid)} valid, {dropped} dropped")
        except LLMError as exc:
            self._event("params", False, str(exc))
        except Exception as exc:  # noqa: BLE001 - never crash a study over the LLM
            self._event("params", False, f"{type(exc).__name__}: {exc}")
        valid = valid[:n]
        if len(valid) < n:
            filler_parents = list(parents) + [(p, float("-inf")) for p in valid]
            valid += self.fallback.propose_params(filler_parents, distributions, n - len(valid), rng, context=context)
        return valid[:n]

    # ------------------------------------------------------------------ source
    def propose_source(self, request: SourceRequest) -> SourceCandidate | None:
        """Ask the LLM for an improved model; the offline mutator's proposal on any failure."""
        try:
            refusal = self._isolation_refusal(request)
            if refusal:
                self._event("source", False, refusal, log=False)
            else:
                reply = self.client.complete(
                    source_messages(request.annotated_source, request.constraints, request.predicted,
                                    attempts=request.attempts, target=request.target)
                )
                if contains_secret(reply.text):
                    raise LLMError("the reply contains a secret value (an API key or token); it was dropped")
                code, explanation = parse_source_reply(reply.text)
                if source_digest(code) in request.seen:
                    raise LLMError("the LLM repeated a model that was already evaluated")
                validate_source(code)  # a crash of the checker itself is a failure like any other
                self._event("source", True, f"{reply.prompt_tokens}+{reply.completion_tokens} tokens, "
                            f"{reply.attempts} attempt(s)")
                return SourceCandidate(code, redact(explanation, 1000), "llm",
                                       info={"prompt_version": PROMPT_VERSION, "attempts": reply.attempts})
        except LLMError as exc:
            self._event("source", False, str(exc))
        except Exception as exc:  # noqa: BLE001 - never crash a run over the LLM
            self._event("source", False, f"{type(exc).__name__}: {exc}")
        candidate = self.fallback.propose_source(request)
        if candidate is not None:
            candidate.info["fallback_reason"] = self.events[-1]["detail"] if self.events else ""
        return candidate
