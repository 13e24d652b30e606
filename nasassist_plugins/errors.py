"""Every exception NAS-Assist raises on purpose, in one hierarchy.

All derive from :class:`NASAssistError`, so callers (and the ``nasassist`` command, which
prints them as one line and exits with status 2) can catch the library's own failures in one
place; each also derives from the built-in exception that describes it best
(``ValueError``, ``TypeError``, ``RuntimeError``, ...) for code that already catches those.

========================  =====================================================
class                     raised when
========================  =====================================================
``ConfigurationError``    an argument of a public constructor or function is invalid
``GraphError``            a computational graph is malformed
``AdapterError``          a model source cannot be turned into a graph
``DataError``             benchmark data is missing or malformed
``PredictorError``        bad predictor input or weights file
``ProxyInputError``       a zero-cost proxy cannot use the batch or model
``LearningCurveError``    learning-curve data is unusable
``SearchError``           a search has no usable candidate or a bad setting
``ObjectiveError``        an objective (params, FLOPs, latency, ...) cannot be computed for a candidate
``MutationError``         bad input to a proposer or the improvement loop
``LLMError``              an LLM request failed for good
``SandboxError``          the sandbox itself could not run
``ProposalRejected``      a proposed model was refused (unsafe, failed, limits)
``ReportError``           a relevance report cannot be written
``NNIEnvironmentError``   NNI is missing or installed with incompatible packages
========================  =====================================================
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "AdapterTypeError",
    "CommandError",
    "ConfigurationError",
    "ConfigurationTypeError",
    "CurveFitError",
    "DataError",
    "GraphError",
    "LLMBudgetExceeded",
    "LLMConfigError",
    "LLMError",
    "LLMResponseError",
    "LearningCurveError",
    "MissingWeightsError",
    "MutationError",
    "NASAssistError",
    "NNIConfigError",
    "NNIEnvironmentError",
    "ObjectiveError",
    "PredictorError",
    "ProposalRejected",
    "ProxyInputError",
    "ProxyTypeError",
    "RelevanceError",
    "ReportError",
    "SandboxError",
    "SearchError",
]


class NASAssistError(Exception):
    """Base class of every error raised on purpose by NAS-Assist."""


class ConfigurationError(NASAssistError, ValueError):
    """An argument of a public constructor or function is invalid (type, range, NaN, ...)."""


class ConfigurationTypeError(ConfigurationError, TypeError):
    """An argument has the wrong type (also a ``TypeError``)."""


# --------------------------------------------------------------------- graphs and adapters
class GraphError(NASAssistError, ValueError):
    """A computational graph is malformed (cycle, dangling edge, bad JSON, ...)."""


class AdapterError(NASAssistError, ValueError):
    """A model source could not be turned into a computational graph."""


class AdapterTypeError(NASAssistError, TypeError):
    """An adapter was given an object of the wrong kind (e.g. not an ``nn.Module``)."""


class DataError(NASAssistError, ValueError):
    """Benchmark data is missing, unreadable or has unexpected columns."""


# --------------------------------------------------------------------- scoring
class PredictorError(NASAssistError, ValueError):
    """Bad predictor input (empty graph, wrong weights file, version mismatch, ...)."""


class ProxyInputError(NASAssistError, ValueError):
    """The batch (or the model on that batch) is unusable for every requested proxy that needs it."""


class ProxyTypeError(NASAssistError, TypeError):
    """A proxy was given an object of the wrong kind (e.g. not an ``nn.Module`` or not a tensor)."""


class RelevanceError(NASAssistError, ValueError):
    """Layer relevance cannot be computed for this model or graph."""


class ReportError(NASAssistError, ValueError):
    """A relevance report cannot be built or written."""


# --------------------------------------------------------------------- search and pruning
class SearchError(NASAssistError, ValueError):
    """Invalid search configuration or no usable candidate."""


class ObjectiveError(NASAssistError, ValueError):
    """An objective (params, FLOPs, measured or predicted latency, a user callable) cannot be
    computed for a candidate: no model to time, a failing forward pass, a non-finite value, ..."""


class LearningCurveError(NASAssistError, ValueError):
    """Observed learning-curve data cannot be used (NaN, mismatched lengths, too short...)."""


class CurveFitError(NASAssistError, RuntimeError):
    """No curve family produced a usable fit or forecast (or ``fit`` was not called)."""


# --------------------------------------------------------------------- mutation and LLM
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


# --------------------------------------------------------------------- NNI and command line
class NNIEnvironmentError(NASAssistError, ImportError):
    """NNI is missing, or installed next to a package version it cannot work with."""


class NNIConfigError(ConfigurationError):
    """Invalid arguments of the NNI tuner or assessor (light: no PyTorch import needed)."""


class CommandError(NASAssistError, ValueError):
    """A ``nasassist`` subcommand cannot do what was asked (exit status 2)."""


class MissingWeightsError(NASAssistError, FileNotFoundError):
    """No predictor weights: none given with ``--weights`` and none installed by default."""
