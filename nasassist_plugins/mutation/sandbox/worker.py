"""Entry point of the sandbox child process (never imported by the caller).

Started by :mod:`.runner` as ``python -I worker.py`` with a clean environment in an empty
temporary directory. It reads one JSON request on stdin, imports torch and the tracer
*before* dropping privileges, then:

1. keeps a private duplicate of stdout for results and points file descriptors 1 and 2
   at ``/dev/null`` (the payload's prints and tracebacks go nowhere);
2. sets resource limits: CPU seconds (``RLIMIT_CPU``; the kernel kills the process at
   the hard limit), address space (``RLIMIT_AS`` = what the interpreter already maps plus
   the memory budget), no files written (``RLIMIT_FSIZE`` 0, in ``check`` mode), no core
   dumps;
3. for each item: validates the source again (defence in depth), executes it with a
   restricted ``__builtins__`` (a short allowlist and an ``__import__`` that only admits
   the allowlisted modules), counts the parameters of the entry class on the ``meta``
   device (so an enormous model is refused before it allocates anything), instantiates
   it, runs one forward pass under ``torch.no_grad()`` with a wall-clock alarm, traces it
   into a computational graph, and writes one JSON line per item: graph JSON, parameter
   count and output shape — or a refusal reason. In ``train`` mode it then calls a
   trusted trainer function (imported by dotted path before the limits apply) on the
   built model and returns its JSON-serialisable result.

Nothing but those JSON lines crosses back to the caller.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
import traceback
import typing
from typing import Any

_RESULT_LIMIT_CHARS = 30_000_000


class _WallClock(BaseException):
    """Raised by the alarm handler when an item runs past its wall-clock limit."""


def _on_alarm(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    raise _WallClock()


def _safe_builtins(allowed_modules: frozenset[str]) -> dict[str, Any]:
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
    current_soft, current_hard = resource.getrlimit(kind)
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
    used_cpu = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(math.ceil(used_cpu.ru_utime + used_cpu.ru_stime))
    cpu = spent + int(math.ceil(float(limits["cpu_s"])))
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    memory = _mapped_bytes() + int(float(limits["memory_mb"]) * 1024 * 1024)
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_CORE, 0)
    if not allow_files:
        _limit(resource.RLIMIT_FSIZE, 0)


def _classify(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text or "bad_alloc" in text:
        return "memory-limit"
    if isinstance(exc, RecursionError):
        return "recursion-limit"
    if isinstance(exc, ImportError):
        return "forbidden-import"
    return "build-error"


def _short(exc: BaseException, limit: int = 400) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _run_item(item: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    torch = ctx["torch"]
    validate_source = ctx["validate_source"]
    report = validate_source(item["source"])
    if not report.ok:
        return {"ok": False, "reason": report.violations[0].reason, "detail": report.summary()}
    entry = item.get("entry") or (report.classes[-1] if report.classes else None)
    if entry not in report.classes:
        return {"ok": False, "reason": "no-entry-class",
                "detail": f"no nn.Module class {entry!r} in the source (classes: {', '.join(report.classes) or 'none'})"}
    wall = float(item["limits"]["wall_s"])
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, wall)
    try:
        namespace: dict[str, Any] = {"__builtins__": ctx["builtins"], "__name__": "nasassist_proposal"}
        code = compile(item["source"], "<proposal>", "exec")
        exec(code, namespace)  # noqa: S102 - validated source, restricted builtins, sandboxed process
        cls = namespace.get(entry)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            return {"ok": False, "reason": "no-entry-class", "detail": f"{entry!r} is not an nn.Module class"}
        with torch.device("meta"):
            meta_model = cls()
        num_params = int(sum(p.numel() for p in meta_model.parameters()))
        del meta_model
        max_params = int(item["limits"]["max_params"])
        if num_params > max_params:
            return {"ok": False, "reason": "too-many-parameters",
                    "detail": f"{num_params:,} parameters (limit {max_params:,})", "num_params": num_params}
        torch.manual_seed(0)
        model = cls()
        model.eval()
        shape = tuple(int(d) for d in item["input_shape"])
        example = torch.randn(*shape)
        with torch.no_grad():
            output = model(example)
        if not isinstance(output, torch.Tensor):
            return {"ok": False, "reason": "bad-output", "detail": f"forward returned {type(output).__name__}, not a tensor"}
        output_shape = [int(d) for d in output.shape]
        graph_json = ctx["from_torch"](model, example, name=entry).to_json()
        result: dict[str, Any] = {"ok": True, "num_params": num_params, "output_shape": output_shape, "graph": graph_json}
        if item.get("suite", True):
            # the training-free suite for the fused zero-shot score (numbers only leave the child)
            suite = ctx["compute_suite"](model, example_input=shape)
            result["suite"] = {k: (v if v == v and abs(v) != float("inf") else None) for k, v in suite.values.items()}
        trainer = ctx.get("trainer")
        if trainer is not None:
            signal.setitimer(signal.ITIMER_REAL, float(item["limits"].get("train_wall_s", wall)))
            model.train()
            value = trainer(model, **(item.get("trainer_kwargs") or {}))
            result["value"] = json.loads(json.dumps(value))
        return result
    except _WallClock:
        return {"ok": False, "reason": "timeout", "detail": f"ran past the wall-clock limit of {wall:g} s"}
    except BaseException as exc:  # noqa: BLE001 - everything the payload raises is a verdict
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return {"ok": False, "reason": "build-error", "detail": _short(exc)}
        return {"ok": False, "reason": _classify(exc), "detail": _short(exc)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> int:
    request = json.loads(sys.stdin.read())
    sys.path[:0] = [p for p in request.get("sys_path", []) if isinstance(p, str)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from nasassist_plugins.adapters.torch_adapter import from_torch
    from nasassist_plugins.mutation.sandbox.validator import ALLOWED_MODULES, validate_source
    from nasassist_plugins.proxies.suite import compute_suite

    for name in ALLOWED_MODULES:  # imported now, so the payload's imports allocate nothing new
        __import__(name)
    _ = typing
    trainer = None
    if request.get("trainer"):
        import importlib

        module_name, _, attr = str(request["trainer"]).partition(":")
        trainer = getattr(importlib.import_module(module_name), attr)
    ctx = {
        "torch": torch,
        "from_torch": from_torch,
        "compute_suite": compute_suite,
        "validate_source": validate_source,
        "builtins": _safe_builtins(ALLOWED_MODULES),
        "trainer": trainer,
    }
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    _apply_limits(request["limits"], allow_files=bool(request.get("allow_files")))
    print(json.dumps({"ready": True}), file=results, flush=True)
    for index, item in enumerate(request["items"]):
        item.setdefault("limits", request["limits"])
        try:
            result = _run_item(item, ctx)
        except BaseException as exc:  # noqa: BLE001 - e.g. MemoryError while building the reply
            result = {"ok": False, "reason": _classify(exc), "detail": _short(exc)}
        result["index"] = index
        line = json.dumps(result)
        if len(line) > _RESULT_LIMIT_CHARS:
            line = json.dumps({"index": index, "ok": False, "reason": "too-large", "detail": "result exceeds the size limit"})
        print(line, file=results, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BaseException:  # noqa: BLE001 - last resort: report on the private channel if possible
        traceback.print_exc()
        sys.exit(3)
