"""The builder side of the sandbox child: one forked process per source (see :mod:`.worker`).

Everything here runs in the forked builder, before and around the generated code:
closing every inherited descriptor but the answer pipe, resource limits, the builder
seccomp filter, the restricted builtins, building the model (parameters counted on the
``meta`` device first, then from the real tensors), one forward pass under a wall-clock
alarm, tracing, and one JSON answer on the pipe. Standard library only at import time:
torch and the tracer come from the supervisor in ``ctx``.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import signal
import sys
from typing import Any

__all__ = ["PR_SET_DUMPABLE", "PR_SET_PDEATHSIG", "classify", "prctl", "run_builder", "safe_builtins", "short"]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


class _WallClock(BaseException):
    """Raised by the alarm handler when a builder runs past its wall-clock limit."""


def _on_alarm(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    raise _WallClock()


def prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


def safe_builtins(allowed_modules: frozenset[str]) -> dict[str, Any]:
    import builtins

    names = (
        "abs all any bool dict divmod enumerate filter float frozenset int isinstance issubclass iter len list "
        "map max min next pow print range repr reversed round set slice sorted str sum tuple zip super "
        "ValueError TypeError RuntimeError NotImplementedError Exception ArithmeticError ZeroDivisionError "
        "IndexError KeyError AssertionError StopIteration True False None staticmethod classmethod property object"
    ).split()
    safe = {n: getattr(builtins, n) for n in names if hasattr(builtins, n)}
    safe["__build_class__"] = builtins.__build_class__
    real_import = builtins.__import__

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level or (name not in allowed_modules and name != "__future__"):
            raise ImportError(f"import of {name!r} is not allowed in the sandbox")
        return real_import(name, globals, locals, fromlist, level)

    safe["__import__"] = guarded_import
    return safe


def _limit(kind: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[0])
        return pages * resource.getpagesize()
    except OSError:  # not Linux: fall back to the peak RSS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _apply_limits(limits: dict[str, Any], allow_files: bool) -> None:
    cpu = int(math.ceil(float(limits["cpu_s"])))
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _limit(resource.RLIMIT_AS, _mapped_bytes() + int(float(limits["memory_mb"]) * 1024 * 1024))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_MEMLOCK, 0)
    if hasattr(resource, "RLIMIT_MSGQUEUE"):
        _limit(resource.RLIMIT_MSGQUEUE, 0)
    if hasattr(resource, "RLIMIT_NPROC"):
        _limit(resource.RLIMIT_NPROC, int(limits.get("max_threads", 64)))
    _limit(resource.RLIMIT_NOFILE, 256)
    _limit(resource.RLIMIT_FSIZE, int(float(limits.get("scratch_mb", 0)) * 1024 * 1024) if allow_files else 0)


def classify(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text or "bad_alloc" in text:
        return "memory-limit"
    if isinstance(exc, RecursionError):
        return "recursion-limit"
    if isinstance(exc, ImportError):
        return "forbidden-import"
    if isinstance(exc, PermissionError) or "operation not permitted" in text or "read-only file system" in text:
        return "forbidden-operation"
    return "build-error"


def short(exc: BaseException, limit: int = 400) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count_parameters(model: Any, torch: Any, device: str | None) -> int:
    """Elements of every distinct parameter of ``model``, read from the module dictionaries.

    No method of the model is called (a model may override ``parameters()``). With a
    ``device`` (the real count, after the forward pass) every parameter must be a plain
    ``nn.Parameter`` on that device; without one (the early estimate on the ``meta``
    device) uninitialised lazy parameters count as zero.
    """
    get = object.__getattribute__
    seen_modules: set[int] = set()
    seen_params: set[int] = set()
    total = 0
    stack = [model]
    while stack:
        module = stack.pop()
        if id(module) in seen_modules:
            continue
        seen_modules.add(id(module))
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"a submodule is a {type(module).__name__}, not an nn.Module")
        state = get(module, "__dict__")
        for param in dict.values(state.get("_parameters") or {}):
            if param is None or id(param) in seen_params:
                continue
            if device is None:
                if isinstance(param, torch.nn.parameter.UninitializedParameter):
                    continue
            elif type(param) is not torch.nn.Parameter:
                raise TypeError(f"parameter of type {type(param).__name__} (only plain nn.Parameter is allowed)")
            elif param.device.type != device:
                raise TypeError(f"parameter on device {param.device.type!r}, expected {device!r}")
            seen_params.add(id(param))
            total += int(param.numel())
        stack.extend(m for m in dict.values(state.get("_modules") or {}) if m is not None)
    return total


def _run_item(item: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    torch = ctx["torch"]
    python_checks = ctx["python_checks"]
    if python_checks:
        report = ctx["validate_source"](item["source"])
        if not report.ok:
            return {"ok": False, "reason": report.violations[0].reason, "detail": report.summary()}
        classes = report.classes
    else:  # only for testing the operating-system boundary: the source runs with full builtins
        classes = []
    entry = item.get("entry") or (classes[-1] if classes else None)
    if python_checks and entry not in classes:
        return {"ok": False, "reason": "no-entry-class",
                "detail": f"no nn.Module class {entry!r} in the source (classes: {', '.join(classes) or 'none'})"}
    wall = float(item["limits"]["wall_s"])
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, wall)
    try:
        builtins_ = ctx["builtins"] if python_checks else __builtins__
        namespace: dict[str, Any] = {"__builtins__": builtins_, "__name__": "nasassist_proposal"}
        exec(compile(item["source"], "<proposal>", "exec"), namespace)  # noqa: S102 - sandboxed builder
        if entry is None:
            entry = next((k for k, v in reversed(namespace.items()) if isinstance(v, type)
                          and issubclass(v, torch.nn.Module)), None)
        cls = namespace.get(entry or "")
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            return {"ok": False, "reason": "no-entry-class", "detail": f"{entry!r} is not an nn.Module class"}
        max_params = int(item["limits"]["max_params"])
        with torch.device("meta"):
            meta_model = cls()
        meta_params = _count_parameters(meta_model, torch, None)
        del meta_model
        if meta_params > max_params:
            return {"ok": False, "reason": "too-many-parameters",
                    "detail": f"{meta_params:,} parameters (limit {max_params:,})", "num_params": meta_params}
        torch.manual_seed(0)
        model = cls()
        model.eval()
        shape = tuple(int(d) for d in item["input_shape"])
        example = torch.randn(*shape)
        with torch.no_grad():
            output = model(example)
        if type(output) is not torch.Tensor:
            return {"ok": False, "reason": "bad-output", "detail": f"forward returned {type(output).__name__}, not a tensor"}
        num_params = _count_parameters(model, torch, "cpu")  # the real tensors, after lazy modules materialised
        if num_params > max_params:
            return {"ok": False, "reason": "too-many-parameters",
                    "detail": f"{num_params:,} parameters (limit {max_params:,})", "num_params": num_params}
        output_shape = [int(d) for d in output.shape]
        graph_json = ctx["from_torch"](model, example, name=entry).to_json()
        result: dict[str, Any] = {"ok": True, "num_params": num_params, "output_shape": output_shape, "graph": graph_json}
        if item.get("suite", True) and ctx.get("compute_suite") is not None:
            # the training-free suite for the fused zero-shot score (numbers only leave the child)
            suite = ctx["compute_suite"](model, example_input=shape)
            result["suite"] = {k: (v if v == v and abs(v) != float("inf") else None) for k, v in suite.values.items()}
        trainer = ctx.get("trainer")
        if trainer is not None:
            signal.setitimer(signal.ITIMER_REAL, float(item["limits"].get("train_wall_s", wall)))
            model.train()
            result["value"] = json.loads(json.dumps(trainer(model, **(item.get("trainer_kwargs") or {}))))
        return result
    except _WallClock:
        return {"ok": False, "reason": "timeout", "detail": f"ran past the wall-clock limit of {wall:g} s"}
    except BaseException as exc:  # noqa: BLE001 - everything the source raises is a verdict
        return {"ok": False, "reason": classify(exc), "detail": short(exc)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_builder(item: dict[str, Any], ctx: dict[str, Any], write_fd: int, request: dict[str, Any]) -> None:
    """Runs in the forked builder; never returns."""
    code = 0
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, 65536)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the builder exits soon
        allow_files = bool(request.get("allow_files"))
        if allow_files:
            os.chdir(ctx["scratch"])
        if request.get("trainer"):
            import importlib

            module_name, _, attr = str(request["trainer"]).partition(":")
            ctx = {**ctx, "trainer": getattr(importlib.import_module(module_name), attr)}
        _apply_limits(item["limits"], allow_files)
        if ctx["seccomp"]:
            from nasassist_plugins.mutation.sandbox.policy import install

            install("builder")
        torch = ctx["torch"]
        torch.set_num_threads(1)
        result = _run_item(item, ctx)
    except BaseException as exc:  # noqa: BLE001 - e.g. MemoryError while building the reply
        result = {"ok": False, "reason": classify(exc), "detail": short(exc)}
    try:
        data = json.dumps(result).encode()
        if len(data) > int(item["limits"]["max_result_bytes"]):
            data = json.dumps({"ok": False, "reason": "too-large", "detail": "the result exceeds the size limit"}).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:  # noqa: BLE001
        code = 3
    os._exit(code)
