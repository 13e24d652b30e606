"""Sandbox for untrusted model source: AST allowlist, then a resource-limited child process.

* :mod:`.validator` — static allowlist check (runs in the caller, never executes code);
* :mod:`.runner` — :class:`Sandbox`: builds and runs sources in child processes with
  CPU, memory and wall-clock limits, returning only JSON (graph, parameters, shape);
* :mod:`.worker` — the child's entry point.
"""

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
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "ValidationReport",
    "Violation",
    "check_source",
    "validate_source",
]
