"""Run untrusted model source in a separate, resource-limited process.

Why a process and not ``exec`` in a namespace: Python cannot contain code that runs in
its own interpreter (the AST allowlist in :mod:`.validator` is a strong filter, not a
proof). So every generated model is built and run by :mod:`.worker` in a child process
started with ``python -I`` (no user site, no ``PYTHON*`` variables), a minimal
environment, an empty temporary working directory and its own session (so the whole
process group can be killed). The child sets CPU-time and address-space limits on
itself and forbids writing files; this side enforces a wall-clock deadline and a cap on
what it reads back. Only JSON crosses the boundary: a graph, a parameter count, an
output shape (or, in training mode, the trainer's JSON result), or a refusal reason.

:meth:`Sandbox.check_many` builds several sources in one child (torch is imported
once); if that child dies mid-batch (e.g. killed at its CPU limit), the sources it had
not finished are retried one per process, so one hostile payload cannot sink the rest.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.mutation.errors import ProposalRejected, SandboxError
from nasassist_plugins.mutation.sandbox.validator import validate_source

__all__ = ["SandboxLimits", "SandboxResult", "Sandbox", "WORKER_PATH"]

WORKER_PATH = Path(__file__).resolve().with_name("worker.py")
_MAX_READ_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one proposal in the sandbox.

    Attributes:
        cpu_s: CPU seconds per item (the batch gets ``cpu_s × items``); past the limit the
            kernel kills the child.
        memory_mb: address space the child may map on top of what torch already maps.
        wall_s: wall-clock seconds per item (an alarm inside the child, and the parent's
            deadline together with ``startup_s``).
        startup_s: wall-clock allowance for starting the interpreter and importing torch.
        max_params: models with more parameters are refused before any weight is allocated.
        train_wall_s: wall-clock seconds for the trainer in training mode.
    """

    cpu_s: float = 30.0
    memory_mb: float = 2048.0
    wall_s: float = 30.0
    startup_s: float = 90.0
    max_params: int = 50_000_000
    train_wall_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_mb", "wall_s", "startup_s", "train_wall_s"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {getattr(self, name)!r}")
        if int(self.max_params) < 1:
            raise ValueError(f"SandboxLimits.max_params must be positive, got {self.max_params!r}")


@dataclass
class SandboxResult:
    """What the sandbox says about one source.

    ``ok`` is True when the model was built and ran; then ``graph_json``, ``num_params``
    and ``output_shape`` are set (and ``value`` in training mode). Otherwise ``reason``
    is a short category (``forbidden-import``, ``timeout``, ``memory-limit``,
    ``killed``, ``too-many-parameters``, ...) and ``detail`` explains it.
    """

    ok: bool
    reason: str = ""
    detail: str = ""
    graph_json: str | None = None
    num_params: int | None = None
    output_shape: tuple[int, ...] | None = None
    value: Any = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def graph(self) -> ComputationalGraph:
        """The traced graph (parsed here from JSON; nothing of the model runs)."""
        if not self.ok or self.graph_json is None:
            raise ProposalRejected(self.reason or "no-graph", self.detail or "the sandbox returned no graph")
        return ComputationalGraph.from_dict(json.loads(self.graph_json))

    def raise_if_rejected(self) -> "SandboxResult":
        if not self.ok:
            raise ProposalRejected(self.reason, self.detail)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("graph_json", None)
        return data


class Sandbox:
    """Builds untrusted ``nn.Module`` source in child processes (see the module docstring).

    Args:
        limits: default :class:`SandboxLimits`.
        python: interpreter for the child (default: this one).
        extra_paths: added to the child's ``sys.path`` (where a trusted trainer lives).
    """

    def __init__(self, limits: SandboxLimits | None = None, *, python: str | None = None,
                 extra_paths: Sequence[str] = ()) -> None:
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable
        self.extra_paths = [str(p) for p in extra_paths]
        self.processes_started = 0
        self._cache: dict[tuple, SandboxResult] = {}

    # ------------------------------------------------------------------ public API
    def check(self, source: str, input_shape: Sequence[int], *, entry: str | None = None,
              limits: SandboxLimits | None = None) -> SandboxResult:
        """Validate, build and run one source; never raises for a bad source (see ``ok``)."""
        return self.check_many([source], input_shape, entries=[entry], limits=limits)[0]

    def check_many(self, sources: Sequence[str], input_shape: Sequence[int], *,
                   entries: Sequence[str | None] | None = None, limits: SandboxLimits | None = None) -> list[SandboxResult]:
        """:meth:`check` for several sources, built in as few child processes as possible."""
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
            report = validate_source(source)  # refuse statically before paying for a process
            if not report.ok:
                results[i] = SandboxResult(False, report.violations[0].reason, report.summary())
            elif entries[i] is not None and entries[i] not in report.classes:
                results[i] = SandboxResult(False, "no-entry-class", f"no nn.Module class {entries[i]!r} in the source "
                                           f"(classes: {', '.join(report.classes) or 'none'})")
            else:
                pending.append(i)
        if pending:
            items = [{"source": sources[i], "entry": entries[i], "input_shape": list(shape)} for i in pending]
            batch = self._run(items, limits, trainer=None, trainer_kwargs=None)
            retry = [k for k, r in enumerate(batch) if r is None]
            for k, result in enumerate(batch):
                if result is not None:
                    results[pending[k]] = result
            if len(pending) > 1:
                for k in retry:  # the batch child died: isolate the rest, one process each
                    results[pending[k]] = self._run([items[k]], limits, None, None)[0] or _died()
            else:
                for k in retry:
                    results[pending[k]] = self._last_death or _died()
        final = [r if r is not None else _died() for r in results]
        for i in pending:  # a verdict on a (source, entry, shape, limits) does not change: reuse it
            if len(self._cache) < 4096:
                self._cache[_cache_key(sources[i], entries[i], shape, limits)] = final[i]
        return final

    def train(self, source: str, input_shape: Sequence[int], trainer: str, *, entry: str | None = None,
              trainer_kwargs: Mapping[str, Any] | None = None, limits: SandboxLimits | None = None,
              allow_files: bool = True) -> SandboxResult:
        """Build the model in the sandbox and run a trusted trainer on it there.

        ``trainer`` is ``"package.module:function"``, importable in the child; it is called
        as ``function(model, **trainer_kwargs)`` after the model passed the same checks as
        :meth:`check`, and must return something JSON-serialisable (a float, a dict...).
        The trainer is imported before the limits apply; the generated model only ever
        runs inside the child. ``allow_files`` lets the trainer write files (checkpoints).
        """
        if ":" not in trainer:
            raise ValueError(f"trainer must be 'package.module:function', got {trainer!r}")
        limits = limits or self.limits
        shape = _check_shape(input_shape)
        report = validate_source(source)
        if not report.ok:
            return SandboxResult(False, report.violations[0].reason, report.summary())
        item = {"source": source, "entry": entry, "input_shape": list(shape), "trainer_kwargs": dict(trainer_kwargs or {})}
        cpu_limits = replace(limits, cpu_s=limits.cpu_s + limits.train_wall_s, wall_s=limits.wall_s)
        result = self._run([item], cpu_limits, trainer=trainer, trainer_kwargs=None, allow_files=allow_files,
                           extra_wall=limits.train_wall_s)[0]
        return result or self._last_death or _died()

    # ------------------------------------------------------------------ process handling
    _last_death: SandboxResult | None = None

    def _run(self, items: list[dict[str, Any]], limits: SandboxLimits, trainer: str | None,
             trainer_kwargs: Mapping[str, Any] | None, *, allow_files: bool = False,
             extra_wall: float = 0.0) -> list[SandboxResult | None]:
        """Run ``items`` in one child; ``None`` for items it did not finish."""
        n = len(items)
        request = {
            "items": items,
            "limits": {"cpu_s": limits.cpu_s * n, "memory_mb": limits.memory_mb, "wall_s": limits.wall_s,
                       "max_params": int(limits.max_params), "train_wall_s": limits.train_wall_s},
            "trainer": trainer,
            "allow_files": allow_files,
            "sys_path": _package_paths() + self.extra_paths,
        }
        for item in items:
            item["limits"] = {**request["limits"], "cpu_s": limits.cpu_s}
        deadline = limits.startup_s + limits.wall_s * n + extra_wall
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONHASHSEED": "0", "HOME": "/nonexistent"}
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="nasassist-sandbox-") as workdir:
            try:
                process = subprocess.Popen(
                    [self.python, "-I", str(WORKER_PATH)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=workdir, env=env, start_new_session=True,
                )
            except OSError as exc:
                raise SandboxError(f"cannot start the sandbox interpreter {self.python!r}: {exc}") from exc
            self.processes_started += 1
            timed_out = False
            try:
                stdout, stderr = process.communicate(json.dumps(request).encode(), timeout=deadline)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process)
                stdout, stderr = process.communicate()
        elapsed = time.monotonic() - started
        lines = stdout[:_MAX_READ_BYTES].decode("utf-8", errors="replace").splitlines()
        ready = False
        results: list[SandboxResult | None] = [None] * n
        for line in lines:
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                continue
            if payload.get("ready"):
                ready = True
                continue
            index = payload.get("index")
            if isinstance(index, int) and 0 <= index < n and results[index] is None:
                results[index] = _result_of(payload, elapsed / n)
        if not ready:
            tail = stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:]
            if timed_out:
                raise SandboxError(f"the sandbox worker did not start within {deadline:g} s")
            raise SandboxError(f"the sandbox worker failed to start (exit status {process.returncode}): "
                               + (" | ".join(tail) or "no output"))
        self._last_death = _death_reason(process.returncode, timed_out, deadline, limits)
        return results


def _cache_key(source: str, entry: str | None, shape: tuple[int, ...], limits: SandboxLimits) -> tuple:
    return (source, entry, shape, limits)


def _result_of(payload: Mapping[str, Any], seconds: float) -> SandboxResult:
    shape = payload.get("output_shape")
    return SandboxResult(
        ok=bool(payload.get("ok")),
        reason=str(payload.get("reason", "")),
        detail=str(payload.get("detail", ""))[:2000],
        graph_json=payload.get("graph") if isinstance(payload.get("graph"), str) else None,
        num_params=int(payload["num_params"]) if isinstance(payload.get("num_params"), int) else None,
        output_shape=tuple(int(d) for d in shape) if isinstance(shape, list) else None,
        value=payload.get("value"),
        seconds=seconds,
        extra={"suite": _suite_of(payload.get("suite"))} if payload.get("suite") is not None else {},
    )


def _suite_of(raw: Any) -> dict[str, float] | None:
    """The suite signals a child reported: known names with finite numbers only (NaN otherwise)."""
    from nasassist_plugins.proxies.suite import SUITE_SIGNALS

    if not isinstance(raw, Mapping):
        return None
    out = {}
    for name in SUITE_SIGNALS:
        value = raw.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        out[name] = float(value) if ok else math.nan
    return out


def _death_reason(returncode: int | None, timed_out: bool, deadline: float, limits: SandboxLimits) -> SandboxResult:
    if timed_out:
        return SandboxResult(False, "timeout", f"killed after the wall-clock deadline of {deadline:g} s")
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return SandboxResult(False, "cpu-limit", f"killed by {signal.Signals(sig).name} at the CPU limit of {limits.cpu_s:g} s")
        return SandboxResult(False, "killed", f"the sandbox process died from {signal.Signals(sig).name}")
    return SandboxResult(False, "crashed", f"the sandbox process exited with status {returncode} before answering")


def _died() -> SandboxResult:
    return SandboxResult(False, "crashed", "the sandbox process died before answering")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


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
