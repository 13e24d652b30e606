"""Exceptions raised by NAS-Assist.

All of them derive from :class:`NASAssistError` so that callers can catch the
library's own failures in one place; each also derives from the built-in exception
that best describes it (``ValueError``/``TypeError``) for code that already catches those.
"""

from __future__ import annotations


class NASAssistError(Exception):
    """Base class of every error raised on purpose by NAS-Assist."""


class GraphError(NASAssistError, ValueError):
    """A computational graph is malformed (cycle, dangling edge, bad JSON, ...)."""


class AdapterError(NASAssistError, ValueError):
    """A model source could not be turned into a computational graph."""


class AdapterTypeError(NASAssistError, TypeError):
    """An adapter was given an object of the wrong kind (e.g. not an ``nn.Module``)."""


class DataError(NASAssistError, ValueError):
    """Benchmark data is missing, unreadable or has unexpected columns."""
