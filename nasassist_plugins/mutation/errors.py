"""Exceptions of the mutation package (LLM client, sandbox, proposers, improvement loop).

All derive from :class:`~nasassist_plugins.errors.NASAssistError`, so the CLI prints them
as one clear line, and from the built-in exception that describes them best.
"""

from __future__ import annotations

from nasassist_plugins.errors import NASAssistError

__all__ = [
    "LLMBudgetExceeded",
    "LLMConfigError",
    "LLMError",
    "LLMResponseError",
    "MutationError",
    "ProposalRejected",
    "SandboxError",
]


class MutationError(NASAssistError, ValueError):
    """Bad input to a proposer or to the improvement loop (empty space, unknown entry class, ...)."""


class LLMConfigError(NASAssistError, ValueError):
    """The LLM client is misconfigured (no model, no base URL, missing API key variable, ...)."""


class LLMError(NASAssistError, RuntimeError):
    """An LLM request failed for good (after the allowed retries)."""


class LLMResponseError(LLMError):
    """The LLM answered, but not with something usable (no code block, malformed JSON, ...)."""


class LLMBudgetExceeded(LLMError):
    """The per-study cap on LLM calls or tokens is spent."""


class SandboxError(NASAssistError, RuntimeError):
    """The sandbox itself could not run (worker failed to start); not a verdict on a proposal."""


class ProposalRejected(NASAssistError, ValueError):
    """A proposed model was refused: unsafe code, failed build, limits exceeded, wrong shapes.

    Attributes:
        reason: a short machine-readable category (``"forbidden-import"``, ``"timeout"``, ...).
        detail: the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
