"""The LLM proposer: asks a code LLM for models (source) or parameter sets, never trusting the answer.

Every failure — HTTP errors after retries, timeouts, the call/token cap, malformed
replies, parameter sets outside the space — falls back to the offline mutator, so a
study never crashes because of the LLM. Source replies are only text here: the loop
validates and builds them in the sandbox. What happened on each call is recorded in
:attr:`LLMProposer.events` (and in the improvement history).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
from optuna.distributions import BaseDistribution

from nasassist_plugins.mutation.base import SourceCandidate, SourceRequest, source_digest
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
    """

    def __init__(self, client: LLMClient | LLMConfig, fallback: RelevanceGuidedMutator | None = None) -> None:
        if isinstance(client, LLMConfig):
            client = LLMClient(client)
        if not isinstance(client, LLMClient):
            raise MutationError(f"LLMProposer needs an LLMClient or LLMConfig, got {type(client).__name__}")
        self.client = client
        self.fallback = fallback or RelevanceGuidedMutator()
        self.events: list[dict[str, Any]] = []
        self.prompt_version = PROMPT_VERSION

    def _event(self, kind: str, ok: bool, detail: str = "") -> None:
        self.events.append({"kind": kind, "ok": ok, "detail": detail[:500]})
        if not ok:
            _logger.warning("LLM %s proposal failed, using the offline mutator: %s", kind, detail)

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
            reply = self.client.complete(
                source_messages(request.annotated_source, request.constraints, request.predicted,
                                attempts=request.attempts, target=request.target)
            )
            code, explanation = parse_source_reply(reply.text)
            if source_digest(code) in request.seen:
                raise LLMError("the LLM repeated a model that was already evaluated")
            self._event("source", True, f"{reply.prompt_tokens}+{reply.completion_tokens} tokens, {reply.attempts} attempt(s)")
            return SourceCandidate(code, explanation, "llm", info={"prompt_version": PROMPT_VERSION,
                                                                   "attempts": reply.attempts})
        except LLMError as exc:
            self._event("source", False, str(exc))
        except Exception as exc:  # noqa: BLE001
            self._event("source", False, f"{type(exc).__name__}: {exc}")
        candidate = self.fallback.propose_source(request)
        if candidate is not None:
            candidate.info["fallback_reason"] = self.events[-1]["detail"] if self.events else ""
        return candidate
