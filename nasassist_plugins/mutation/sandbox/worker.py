"""Entry point of the sandbox child (never imported by the caller).

Started by :mod:`.runner` as ``python -I -B worker.py``, under bubblewrap (see
:mod:`.isolation`) or, where strong isolation is not required, as a plain process. The
child has two roles:

**Supervisor** (trusted code only, long-lived): reads one configuration line on stdin,
drops to an unprivileged user if asked (``setresuid``: the caller is root and bubblewrap
left it only ``CAP_SETUID``/``CAP_SETGID`` for this), makes itself undumpable (no other
process of the same user may read its memory or file descriptors), imports torch and the
tracer once, installs the supervisor seccomp filter (:mod:`.policy`) and answers with a
``ready`` line describing what it sees (uid, PID, network interfaces, seccomp). Then it
serves requests, one JSON line each, until stdin closes. **It alone holds the result
channel** (stdout) to the caller.

**Builder** (one forked process per source): before any generated code runs it points
fds 0–2 at ``/dev/null``, closes every other inherited descriptor (the result channel
included) except the write end of a private pipe to the supervisor, sets its limits
(``RLIMIT_AS`` = what is mapped plus the memory budget, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``
0 unless training, ``RLIMIT_NPROC``, no core files, no locked memory) and installs the
builder seccomp filter (no new processes, no exec, no signals to others, no sockets).
Then it validates the source again, executes it with restricted builtins, counts the
parameters on the ``meta`` device (refusing an enormous model before allocating it),
instantiates it, runs one forward pass under a wall-clock alarm, counts the parameters
again from the real tensors (exact ``nn.Parameter`` objects, found without calling any
method the model could override), traces the graph and writes one JSON object to its
pipe. In training mode it then runs the trusted trainer (imported before the filter).

The supervisor reads at most ``max_result_bytes`` from that pipe, kills the builder at
its deadline, keeps only the known keys with the expected types, and writes one line per
source to the caller. Generated code can therefore neither write to the caller's channel
nor answer for another source; the caller validates every line again.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_RESULT_KEYS = {"ok": bool, "reason": str, "detail": str, "graph": str, "num_params": int, "output_shape": list}


class _WallClock(BaseException):
    """Raised by the alarm handler when a builder runs past its wall-clock limit."""


def _on_alarm(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    raise _WallClock()


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


# ----------------------------------------------------------------------------- builder side
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


def _classify(exc: BaseException) -> str:
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


def _short(exc: BaseException, limit: int = 400) -> str:
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
        trainer = ctx.get("trainer")
        if trainer is not None:
            signal.setitimer(signal.ITIMER_REAL, float(item["limits"].get("train_wall_s", wall)))
            model.train()
            result["value"] = json.loads(json.dumps(trainer(model, **(item.get("trainer_kwargs") or {}))))
        return result
    except _WallClock:
        return {"ok": False, "reason": "timeout", "detail": f"ran past the wall-clock limit of {wall:g} s"}
    except BaseException as exc:  # noqa: BLE001 - everything the source raises is a verdict
        return {"ok": False, "reason": _classify(exc), "detail": _short(exc)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _builder(item: dict[str, Any], ctx: dict[str, Any], write_fd: int, request: dict[str, Any]) -> None:
    """Runs in the forked builder; never returns."""
    code = 0
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
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
        result = {"ok": False, "reason": _classify(exc), "detail": _short(exc)}
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


# ----------------------------------------------------------------------------- supervisor side
def _collect(pid: int, read_fd: int, deadline: float, cap: int) -> tuple[bytes, str, int]:
    """Read the builder's answer (at most ``cap`` bytes) and reap it; kill it at ``deadline``."""
    buffer = bytearray()
    outcome = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome = "timeout"
            break
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if not ready:
            outcome = "timeout"
            break
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        buffer += chunk
        if len(buffer) > cap:
            outcome = "too-large"
            break
    os.close(read_fd)
    if outcome:
        _kill(pid)
    status, killed = _reap(pid, max(deadline, time.monotonic() + 1.0))
    if killed and not outcome:  # it closed its pipe but did not exit by the deadline
        outcome = "timeout"
    return bytes(buffer), outcome, status


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int, deadline: float) -> tuple[int, bool]:
    """Wait for the builder until ``deadline``, then kill it; returns its status and whether it was killed."""
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() >= deadline:
            _kill(pid)
            return os.waitpid(pid, 0)[1], True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _verdict(data: bytes, outcome: str, status: int, limits: dict[str, Any]) -> dict[str, Any]:
    if outcome == "timeout":
        return {"ok": False, "reason": "timeout", "detail": f"killed at the wall-clock limit of {float(limits['wall_s']):g} s"}
    if outcome == "too-large":
        return {"ok": False, "reason": "too-large", "detail": "the builder wrote more than the result size limit"}
    try:
        payload = json.loads(data) if data else None
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict):
        clean: dict[str, Any] = {}
        for key, kind in _RESULT_KEYS.items():
            value = payload.get(key)
            if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                clean[key] = value
        if "value" in payload:
            clean["value"] = payload["value"]
        clean["ok"] = bool(clean.get("ok", False))
        return clean
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return {"ok": False, "reason": "cpu-limit", "detail": f"killed by {name} at the CPU limit of {float(limits['cpu_s']):g} s"}
        if sig == signal.SIGSYS:
            return {"ok": False, "reason": "forbidden-syscall", "detail": "killed by the seccomp filter"}
        return {"ok": False, "reason": "killed", "detail": f"the builder died from {name}"}
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return {"ok": False, "reason": "crashed", "detail": f"the builder exited with status {code} without an answer"}


def _serve_item(item: dict[str, Any], ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    limits = item["limits"]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # builder
        os.close(read_fd)
        _builder(item, ctx, write_fd, request)
    os.close(write_fd)
    deadline = time.monotonic() + float(limits["wall_s"]) + float(limits.get("train_wall_s", 0) if request.get("trainer") else 0) + 1.0
    data, outcome, status = _collect(pid, read_fd, deadline, int(limits["max_result_bytes"]))
    return _verdict(data, outcome, status, limits)


def _warm_up(torch: Any, from_torch: Any) -> None:
    """Pay torch's lazy first-use costs (meta kernels, tracing) once here instead of in every builder."""
    with torch.device("meta"):
        torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 4))

    class WarmUp(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x: Any) -> Any:
            y = torch.nn.functional.relu(self.bn(self.conv(x)))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1) + y.mean(dim=(2, 3)))

    model = WarmUp().eval()
    example = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        model(example)
    from_torch(model, example, name="warm-up").to_json()


def _light_packages() -> None:
    """Register ``nasassist_plugins.mutation(.sandbox)`` without running their ``__init__``.

    Those import the whole mutation package (LLM client, predictor, torch-geometric,
    ``torch._dynamo``), which the child needs none of; only the validator and the seccomp
    policy are imported from them here.
    """
    import types

    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in (("nasassist_plugins.mutation", os.path.dirname(here)), ("nasassist_plugins.mutation.sandbox", here)):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package


def _facts(seccomp: bool, seccomp_detail: str) -> dict[str, Any]:
    try:
        with open("/proc/net/dev") as handle:
            interfaces = sorted(line.split(":")[0].strip() for line in handle.readlines()[2:])
    except OSError:
        interfaces = []
    try:
        with open("/proc/self/uid_map") as handle:
            uid_map = [[int(v) for v in line.split()] for line in handle]
    except (OSError, ValueError):
        uid_map = []
    status: dict[str, str] = {}
    try:
        with open("/proc/self/status") as handle:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except OSError:
        pass
    return {"ready": True, "pid": os.getpid(), "uid": os.getuid(), "uid_map": uid_map,
            "cap_eff": status.get("CapEff", "").strip(), "no_new_privs": status.get("NoNewPrivs", "").strip() == "1",
            "interfaces": interfaces, "seccomp": seccomp, "seccomp_detail": seccomp_detail[:300],
            "cwd_writable": os.access(os.getcwd(), os.W_OK)}


def main() -> int:
    config = json.loads(sys.stdin.buffer.readline())
    drop_to = config.get("drop_to")
    if drop_to is not None:  # the caller is root: become nobody for good before anything else
        os.setgroups([])
        os.setresgid(drop_to, drop_to, drop_to)
        os.setresuid(drop_to, drop_to, drop_to)
        if os.getresuid() != (drop_to,) * 3 or os.getresgid() != (drop_to,) * 3:
            raise SystemExit("could not drop privileges")
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(_PR_SET_DUMPABLE, 0)
    sys.path[:0] = [p for p in config.get("sys_path", []) if isinstance(p, str)]
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from nasassist_plugins.adapters.torch_adapter import from_torch

    _light_packages()
    from nasassist_plugins.mutation.sandbox.validator import ALLOWED_MODULES, escape_attribute_names, validate_source

    for name in ALLOWED_MODULES:  # imported now, so the sources' imports allocate nothing new
        __import__(name)
    escape_attribute_names()  # computed once here, inherited by every builder
    _warm_up(torch, from_torch)
    seccomp, seccomp_detail = False, "not requested"
    if config.get("seccomp", True):
        try:
            from nasassist_plugins.mutation.sandbox.policy import install

            seccomp_detail = f"{install('supervisor')} rules"
            seccomp = True
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which decides
            seccomp_detail = _short(exc, 300)
    ctx = {
        "torch": torch,
        "from_torch": from_torch,
        "validate_source": validate_source,
        "builtins": _safe_builtins(ALLOWED_MODULES),
        "python_checks": bool(config.get("python_checks", True)),
        "seccomp": seccomp,
        "scratch": os.getcwd(),
    }
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    gc.collect()
    gc.freeze()  # builders never walk the inherited heap (each walk would copy every page on write)
    print(json.dumps(_facts(seccomp, seccomp_detail)), file=results, flush=True)
    for line in sys.stdin.buffer:
        request = json.loads(line)
        for index, item in enumerate(request["items"]):
            try:
                answer = _serve_item(item, ctx, request)
            except Exception as exc:  # noqa: BLE001 - e.g. fork failed: a verdict, not a dead supervisor
                answer = {"ok": False, "reason": "sandbox-error", "detail": _short(exc)}
            answer.update({"id": request["id"], "index": index})
            print(json.dumps(answer), file=results, flush=True)
        print(json.dumps({"id": request["id"], "done": True}), file=results, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BaseException:  # noqa: BLE001 - the caller reads the last lines of stderr
        traceback.print_exc()
        sys.exit(3)
