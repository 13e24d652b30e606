"""Sandbox for untrusted model source: a cheap AST filter, then operating-system isolation.

* :mod:`.validator` — static allowlist check (runs in the caller, never executes code);
* :mod:`.isolation` — the bubblewrap command (namespaces, private read-only file system,
  no network, unprivileged user) and :class:`IsolationReport`;
* :mod:`.policy` — the seccomp filters the child installs;
* :mod:`.runner` — :class:`Sandbox`: builds and runs sources in the isolated child with
  CPU, memory and wall-clock limits, returning only checked JSON (graph, parameters, shape);
* :mod:`.session` — the caller's end of the child (deadlines, size caps);
* :mod:`.results` — :class:`SandboxResult` and the checks every answer passes;
* :mod:`.worker` / :mod:`.builder` — the child: a trusted supervisor, one forked builder per source.
"""

from nasassist_plugins.mutation.sandbox.isolation import IsolationReport
from nasassist_plugins.mutation.sandbox.runner import Sandbox, SandboxLimits, SandboxResult
from nasassist_plugins.mutation.sandbox.validator import (
    ALLOWED_MODULES,
    ValidationReport,
    Violation,
    check_source,
    validate_source,
)

__all__ = [
    "ALLOWED_MODULES",
    "IsolationReport",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "ValidationReport",
    "Violation",
    "check_source",
    "validate_source",
]
