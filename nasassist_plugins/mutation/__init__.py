"""LLM-guided and offline architecture improvement (the thesis's §2.2 and Algorithm 3).

Pieces, one job each:

* :mod:`.base` — the proposer protocols (:class:`ParameterProposer` for Optuna/NNI search
  spaces, :class:`SourceProposer` for model source) and the request/candidate records;
* :mod:`.offline` — :class:`RelevanceGuidedMutator`, the default proposer (no LLM):
  relevance-guided parameter moves and code edits (:mod:`.code_edits`), pre-screened with
  the predictor;
* :mod:`.llm_client` / :mod:`.llm_proposer` — :class:`LLMClient` for any OpenAI-compatible
  endpoint (retries, backoff, budget) and :class:`LLMProposer` (falls back to the offline
  mutator on any failure);
* :mod:`.prompts` — every prompt, versioned, and the reply parsers;
* :mod:`.annotate` — relevance comments on the source lines of layers;
* :mod:`.sandbox` — a cheap AST filter, then a child isolated by the operating system
  (bubblewrap namespaces, read-only file system, no network, unprivileged user, seccomp,
  limits): generated code never runs in the caller's process, and without strong
  isolation it does not run at all (:class:`IsolationReport` says why and how to fix it);
* :mod:`.redact` — secrets and terminal controls kept out of logs, reports and prompts;
* :mod:`.loop` — :func:`improve` (source) and :func:`improve_params` (parameter sets);
* :mod:`.integration` — proposals as Optuna trials (:func:`enqueue_source_proposal`,
  :func:`get_source_proposal`, :func:`enqueue_param_proposals`).

Quick use::

    from nasassist_plugins.mutation import improve
    result = improve(open("net.py").read(), entry="Net", example_input=(1, 3, 32, 32), max_iterations=5)
    print(result.header()); print(result.diff()); print(result.explanation)
"""

from nasassist_plugins.mutation.base import (
    ParameterProposer,
    SourceCandidate,
    SourceProposer,
    SourceRequest,
    source_digest,
)
from nasassist_plugins.mutation.errors import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMResponseError,
    MutationError,
    ProposalRejected,
    SandboxError,
)
from nasassist_plugins.mutation.integration import (
    SourceProposal,
    enqueue_param_proposals,
    enqueue_source_proposal,
    get_source_proposal,
    study_parents,
)
from nasassist_plugins.mutation.llm_client import LLMClient, LLMConfig, LLMUsage
from nasassist_plugins.mutation.llm_proposer import LLMProposer
from nasassist_plugins.mutation.loop import HistoryEntry, ImproveResult, ParamsResult, improve, improve_params
from nasassist_plugins.mutation.offline import RelevanceGuidedMutator
from nasassist_plugins.mutation.prompts import PROMPT_VERSION
from nasassist_plugins.mutation.sandbox import IsolationReport, Sandbox, SandboxLimits, SandboxResult, validate_source

__all__ = [
    "PROMPT_VERSION",
    "HistoryEntry",
    "ImproveResult",
    "IsolationReport",
    "LLMBudgetExceeded",
    "LLMClient",
    "LLMConfig",
    "LLMConfigError",
    "LLMError",
    "LLMProposer",
    "LLMResponseError",
    "LLMUsage",
    "MutationError",
    "ParameterProposer",
    "ParamsResult",
    "ProposalRejected",
    "RelevanceGuidedMutator",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SourceCandidate",
    "SourceProposal",
    "SourceProposer",
    "SourceRequest",
    "enqueue_param_proposals",
    "enqueue_source_proposal",
    "get_source_proposal",
    "improve",
    "improve_params",
    "source_digest",
    "study_parents",
    "validate_source",
]
