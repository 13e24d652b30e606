"""Exceptions of the mutation package, re-exported from :mod:`nasassist_plugins.errors`."""

from __future__ import annotations

from nasassist_plugins.errors import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMResponseError,
    MutationError,
    ProposalRejected,
    SandboxError,
)

__all__ = [
    "LLMBudgetExceeded",
    "LLMConfigError",
    "LLMError",
    "LLMResponseError",
    "MutationError",
    "ProposalRejected",
    "SandboxError",
]
