"""Build and run untrusted model source in an isolated child process; only checked JSON comes back.

Python cannot contain code that runs in its own interpreter, and a parser is no
boundary (torch re-exports ``os``, ``sys``, ``ctypes``...). So every source is built by
:mod:`.worker` in a child that the **operating system** isolates (:mod:`.isolation`:
bubblewrap namespaces, a private read-only file system, no network, an empty
environment, an unprivileged user, seccomp filters and resource limits), and the AST
allowlist of :mod:`.validator` is only a cheap first filter.

One sandbox keeps one long-lived child (the *supervisor*, which imports torch once) and
forks a fresh *builder* per source, so a source costs a fork and its own build, not an
interpreter start. Sources cannot reach the channel to the caller, answer for one
another or outlive their deadline; the caller reads at most ``max_result_mb`` per
answer, never waits past the deadline plus a grace of a few seconds (it kills the whole
sandbox instead), and validates every answer: known reason categories, details
sanitised (:func:`~nasassist_plugins.mutation.redact.redact`), parameter counts within
limits, a graph that parses and holds no more parameters than the model reports.

**Fail safe.** Where strong isolation is unavailable (no ``bwrap``, no user namespaces,
no libseccomp), generated code (``trusted=False``, the default) is *not executed*: the
verdict is ``isolation-unavailable`` with the reason and the fix, see
:attr:`Sandbox.isolation`. Code the user wrote (their model and the offline mutator's
edits of it, ``trusted=True``) still runs in a plain child process with the same limits.
``allow_weak_isolation=True`` — **unsafe** — lets generated code run that way too.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from nasassist_plugins.mutation.errors import SandboxError
from nasassist_plugins.mutation.redact import redact
from nasassist_plugins.mutation.sandbox.isolation import (
    NOBODY,
    IsolationReport,
    bwrap_command,
    find_bwrap,
    install_hint,
    namespace_fix,
    verify_facts,
    weak_command,
)
from nasassist_plugins.mutation.sandbox.results import SandboxResult, refusal, result_from_answer
from nasassist_plugins.mutation.sandbox.session import Session, close_sessions
from nasassist_plugins.mutation.sandbox.validator import validate_source

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "WORKER_PATH"]

WORKER_PATH = Path(__file__).resolve().with_name("worker.py")
_GRACE_S = 2.0


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one source in the sandbox.

    Attributes:
        cpu_s: CPU seconds per source; at the limit the kernel kills the builder.
        memory_mb: address space a builder may map on top of what the child already maps
            (torch included); it bounds the builder's whole memory (it cannot fork).
        wall_s: wall-clock seconds per source (the builder is killed after it).
        startup_s: wall-clock allowance for starting the sandbox and importing torch
            (paid once per :class:`Sandbox`).
        max_params: models with more parameters are refused (before any weight is
            allocated, and again from the real tensors).
        train_wall_s: wall-clock seconds for the trainer in training mode.
        max_threads: threads a builder may run (``RLIMIT_NPROC``).
        max_result_mb: the largest answer read back per source (graph JSON included).
        scratch_mb: size of the writable ``/tmp`` in training mode with ``allow_files``.

    Example::

        limits = SandboxLimits(wall_s=20, cpu_s=20, memory_mb=4096)
        result = Sandbox(limits).check(source, (1, 3, 224, 224))
    """

    cpu_s: float = 30.0
    memory_mb: float = 2048.0
    wall_s: float = 30.0
    startup_s: float = 90.0
    max_params: int = 50_000_000
    train_wall_s: float = 600.0
    max_threads: int = 64
    max_result_mb: float = 32.0
    scratch_mb: float = 256.0

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_mb", "wall_s", "startup_s", "train_wall_s", "max_result_mb", "scratch_mb"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_params", "max_threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {getattr(self, name)!r}")

    def to_worker(self, training: bool = False) -> dict[str, Any]:
        return {"cpu_s": self.cpu_s + (self.train_wall_s if training else 0.0), "memory_mb": self.memory_mb,
                "wall_s": self.wall_s, "max_params": int(self.max_params), "train_wall_s": self.train_wall_s,
                "max_threads": int(self.max_threads), "max_result_bytes": int(self.max_result_mb * 1024 * 1024),
                "scratch_mb": self.scratch_mb}


class Sandbox:
    """Builds untrusted ``nn.Module`` source in an isolated child process (see the module docstring).

    Args:
        limits: default :class:`SandboxLimits` (default: ``SandboxLimits()``).
        python: interpreter for the child (default: this one).
        extra_paths: directories added to the child's ``sys.path`` and bound read-only in
            its file system, e.g. where a trusted trainer lives (default: none).
        read_paths: further files or directories bound read-only (training data;
            default: none).
        allow_weak_isolation: **unsafe** — where strong isolation is unavailable, run
            generated code in a plain child process anyway (default: False: refuse it).
        bwrap: path of the ``bwrap`` executable (default: found on ``PATH``).
        python_checks: apply the AST allowlist and restricted builtins (default: True).
            ``False`` exists only to test the operating-system boundary with raw hostile
            code (the payload suite does); it is refused without strong isolation.

    Example::

        sandbox = Sandbox(SandboxLimits(wall_s=20))
        result = sandbox.check(source, (1, 3, 32, 32), entry="Net")
        if result.ok:
            graph = result.graph()
        print(sandbox.isolation.summary())
        sandbox.close()
    """

    def __init__(self, limits: SandboxLimits | None = None, *, python: str | None = None,
                 extra_paths: Sequence[str] = (), read_paths: Sequence[str] = (), allow_weak_isolation: bool = False,
                 bwrap: str | None = None, python_checks: bool = True) -> None:
        if limits is not None and not isinstance(limits, SandboxLimits):
            raise ValueError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable
        self.extra_paths = [str(p) for p in extra_paths]
        self.read_paths = [str(p) for p in read_paths]
        self.allow_weak_isolation = bool(allow_weak_isolation)
        self.bwrap = bwrap
        self.python_checks = bool(python_checks)
        self.processes_started = 0
        self._cache: dict[tuple, SandboxResult] = {}
        self._isolation: IsolationReport | None = None
        self._sessions: dict[str, Session] = {}
        self._lock = threading.RLock()
        self._scratch = tempfile.TemporaryDirectory(prefix="nasassist-sandbox-")
        self._finalizer = weakref.finalize(self, _close_all, self._sessions, self._scratch)

    # ------------------------------------------------------------------ isolation
    @property
    def isolation(self) -> IsolationReport:
        """How generated code is isolated here (starts the sandbox child the first time)."""
        with self._lock:
            if self._isolation is None:
                self._strong_session(self.limits)
            assert self._isolation is not None
            return self._isolation

    @property
    def pid(self) -> int | None:
        """Process id of the running sandbox child under strong isolation (``None`` when there is none)."""
        session = self._sessions.get("strong")
        return session.process.pid if session is not None and session.alive else None

    @property
    def runs_untrusted_code(self) -> bool:
        """Whether generated code (``trusted=False``) will be executed: strong isolation, or the unsafe opt-in."""
        return self.isolation.strong or (self.allow_weak_isolation and self.python_checks)

    # ------------------------------------------------------------------ public API
    def check(self, source: str, input_shape: Sequence[int], *, entry: str | None = None,
              limits: SandboxLimits | None = None, trusted: bool = False) -> SandboxResult:
        """Validate, build and run one source; never raises for a bad source (see ``ok``).

        ``trusted``: the user's own code (their model, or the offline mutator's edits of
        it), which may run without strong isolation; generated code must not.
        """
        return self.check_many([source], input_shape, entries=[entry], limits=limits, trusted=trusted)[0]

    def check_many(self, sources: Sequence[str], input_shape: Sequence[int], *,
                   entries: Sequence[str | None] | None = None, limits: SandboxLimits | None = None,
                   trusted: bool = False) -> list[SandboxResult]:
        """:meth:`check` for several sources (one forked builder each, in one sandbox)."""
        limits = limits or self.limits
        entries = list(entries) if entries is not None else [None] * len(sources)
        if len(entries) != len(sources):
            raise ValueError(f"{len(entries)} entries for {len(sources)} sources")
        shape = _check_shape(input_shape)
        results: list[SandboxResult | None] = [None] * len(sources)
        pending: list[int] = []
        for i, source in enumerate(sources):
            cached = self._cache.get(_cache_key(source, entries[i], shape, limits))
            if cached is not None:
                results[i] = cached
                continue
            refused = self._static_refusal(source, entries[i])
            if refused is not None:
                results[i] = refused
            else:
                pending.append(i)
        if pending:
            items = [{"source": sources[i], "entry": entries[i], "input_shape": list(shape),
                      "limits": limits.to_worker()} for i in pending]
            answers = self._request(items, limits, trusted=trusted)
            for k, answer in zip(pending, answers):
                results[k] = answer
                if answer.reason not in {"isolation-unavailable", "sandbox-error"} and len(self._cache) < 4096:
                    self._cache[_cache_key(sources[k], entries[k], shape, limits)] = answer
        return [r if r is not None else refusal("crashed", "no answer") for r in results]

    def train(self, source: str, input_shape: Sequence[int], trainer: str, *, entry: str | None = None,
              trainer_kwargs: Mapping[str, Any] | None = None, limits: SandboxLimits | None = None,
              allow_files: bool = True, trusted: bool = False) -> SandboxResult:
        """Build the model in a fresh sandbox and run a trusted trainer on it there.

        ``trainer`` is ``"package.module:function"``, importable in the child (put its
        directory in ``extra_paths``); it is called as ``function(model, **trainer_kwargs)``
        after the model passed the same checks as :meth:`check`, and must return something
        JSON-serialisable. It is imported before the builder's seccomp filter applies, and
        runs under the same limits plus ``train_wall_s`` seconds; it cannot start
        processes (use ``num_workers=0`` data loaders). ``allow_files`` gives it a
        writable ``/tmp`` of ``scratch_mb`` (discarded afterwards).
        """
        if ":" not in trainer:
            raise ValueError(f"trainer must be 'package.module:function', got {trainer!r}")
        limits = limits or self.limits
        shape = _check_shape(input_shape)
        refused = self._static_refusal(source, entry)
        if refused is not None:
            return refused
        item = {"source": source, "entry": entry, "input_shape": list(shape),
                "trainer_kwargs": dict(trainer_kwargs or {}), "limits": limits.to_worker(training=True)}
        return self._request([item], limits, trusted=trusted, trainer=trainer, allow_files=allow_files)[0]

    def close(self) -> None:
        """Stop the sandbox child (it also stops when this object is collected or the caller exits)."""
        with self._lock:
            close_sessions(self._sessions)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _static_refusal(self, source: str, entry: str | None) -> SandboxResult | None:
        if not self.python_checks:
            return None
        report = validate_source(source)  # refuse statically before paying for a build
        if not report.ok:
            return refusal(report.violations[0].reason, report.summary())
        if entry is not None and entry not in report.classes:
            return refusal("no-entry-class", f"no nn.Module class {entry!r} in the source "
                            f"(classes: {', '.join(report.classes) or 'none'})")
        return None

    def _request(self, items: list[dict[str, Any]], limits: SandboxLimits, *, trusted: bool,
                 trainer: str | None = None, allow_files: bool = False) -> list[SandboxResult]:
        with self._lock:
            one_shot = trainer is not None
            session = self._session_for(trusted, limits, writable=one_shot and allow_files, one_shot=one_shot)
            if isinstance(session, SandboxResult):
                return [session] * len(items)
            started = time.monotonic()
            per_item = limits.wall_s + (limits.train_wall_s if trainer else 0.0) + _GRACE_S
            deadline = started + per_item * len(items) + _GRACE_S
            try:
                answers = session.request(items, trainer=trainer, allow_files=allow_files, deadline=deadline)
            finally:
                if one_shot or not session.alive:
                    session.kill()
                    if not one_shot:
                        self._sessions.pop(session.kind, None)
            elapsed = time.monotonic() - started
            results = []
            for answer in answers:
                if answer is None:
                    results.append(refusal("timeout", f"the sandbox did not answer within {per_item:g} s and was killed"
                                            if session.failure == "timeout" else
                                            f"the sandbox stopped before answering ({session.failure or 'no answer'})"))
                else:
                    results.append(result_from_answer(answer, limits, elapsed / max(len(items), 1)))
            return results

    def _session_for(self, trusted: bool, limits: SandboxLimits, *, writable: bool,
                     one_shot: bool) -> "Session | SandboxResult":
        if one_shot:
            known_weak = self._isolation is not None and not self._isolation.strong
            session = None if known_weak else self._start_strong(limits, writable_tmp_mb=limits.scratch_mb
                                                                 if writable else None)
        else:
            session = self._strong_session(limits)
        if session is not None:
            return session
        report = self._isolation
        assert report is not None
        if not (trusted or self.allow_weak_isolation) or not self.python_checks:
            return refusal("isolation-unavailable", f"generated code is not executed without strong isolation: "
                            f"{report.detail}; fix: {report.fix}")
        if one_shot:
            return self._start_weak(limits)
        weak = self._sessions.get("weak")
        if weak is None or not weak.alive:
            weak = self._sessions["weak"] = self._start_weak(limits)
        return weak

    def _strong_session(self, limits: SandboxLimits) -> "Session | None":
        if self._isolation is not None and not self._isolation.strong:
            return None
        session = self._sessions.get("strong")
        if session is not None and session.alive:
            return session
        session = self._start_strong(limits, writable_tmp_mb=None)
        if session is not None:
            self._sessions["strong"] = session
        return session

    def _start_strong(self, limits: SandboxLimits, writable_tmp_mb: float | None) -> "Session | None":
        bwrap = find_bwrap(self.bwrap)
        if bwrap is None:
            where = (f"bubblewrap (bwrap) not found at {self.bwrap!r}" if self.bwrap
                     else "bubblewrap (bwrap) is not installed")
            self._isolation = IsolationReport(False, "process", where, install_hint())
            return None
        extra = [*self.extra_paths, *self.read_paths]
        attempts: list[tuple[str, dict[str, Any], int | None]] = []
        if os.geteuid() == 0:
            attempts.append(("privileged", {}, NOBODY))
            attempts.append(("user-namespace", {"user": NOBODY, "group": NOBODY, "extra_groups": []}, None))
        else:
            attempts.append(("user-namespace", {}, None))
        errors: list[str] = []
        for mode, popen_kwargs, drop_to in attempts:
            cmd = bwrap_command(bwrap, self.python, str(WORKER_PATH), root=mode == "privileged", extra_paths=extra,
                                writable_tmp_mb=writable_tmp_mb)
            try:
                session = self._start(cmd, "strong", limits, drop_to=drop_to, cwd="/", popen_kwargs=popen_kwargs)
            except SandboxError as exc:
                errors.append(f"{mode}: {exc}")
                continue
            launched_uid = NOBODY if "user" in popen_kwargs else os.geteuid()
            report = verify_facts(session.facts, mode, writable=writable_tmp_mb is not None, launched_uid=launched_uid)
            if report.strong:
                self._isolation = report
                return session
            session.kill()
            errors.append(f"{mode}: {report.detail}")
            if not report.seccomp:
                self._isolation = replace(report, fix=install_hint())
                return None
        self._isolation = IsolationReport(False, "process", redact("bubblewrap could not start the sandbox: "
                                                                   + "; ".join(errors), 600), namespace_fix())
        return None

    def _start_weak(self, limits: SandboxLimits) -> "Session":
        return self._start(weak_command(self.python, str(WORKER_PATH)), "weak", limits, drop_to=None,
                           cwd=self._scratch.name, popen_kwargs={})

    def _start(self, cmd: list[str], kind: str, limits: SandboxLimits, *, drop_to: int | None, cwd: str,
               popen_kwargs: dict[str, Any]) -> "Session":
        config = {"sys_path": _package_paths() + self.extra_paths, "drop_to": drop_to,
                  "python_checks": self.python_checks, "seccomp": True}
        self.processes_started += 1
        return Session(cmd, kind, config, cwd=cwd, startup_s=limits.startup_s,
                        max_line=int(limits.max_result_mb * 1024 * 1024) + 4096, popen_kwargs=popen_kwargs)


def _close_all(sessions: dict[str, Session], scratch: tempfile.TemporaryDirectory) -> None:
    close_sessions(sessions)
    scratch.cleanup()


def _cache_key(source: str, entry: str | None, shape: tuple[int, ...], limits: SandboxLimits) -> tuple:
    return (source, entry, shape, limits)


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        result = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be a sequence of positive ints, got {shape!r}") from None
    if not result or any(d <= 0 for d in result):
        raise ValueError(f"input_shape must be a sequence of positive ints, got {shape!r}")
    return result


def _package_paths() -> list[str]:
    """Where this package and torch are importable from, for the ``-I`` child."""
    import torch

    import nasassist_plugins

    paths = [str(Path(nasassist_plugins.__file__).resolve().parents[1]), str(Path(torch.__file__).resolve().parents[1])]
    return list(dict.fromkeys(paths))
