"""Entry point of the sandbox child (never imported by the caller).

Started by :mod:`.runner` as ``python -I -B worker.py``, under bubblewrap (see
:mod:`.isolation`) or, where strong isolation is not required, as a plain process. The
child has two roles:

**Supervisor** (this module; trusted code only, long-lived): reads one configuration
line on stdin, drops to an unprivileged user if asked (``setresuid``: the caller is root
and bubblewrap left it only ``CAP_SETUID``/``CAP_SETGID`` for this), makes itself
undumpable (no other process of the same user may read its memory or descriptors),
imports torch and the tracer once, pays torch's first-use costs, freezes the garbage
collector's view of its heap, installs the supervisor seccomp filter (:mod:`.policy`) and
answers with a ``ready`` line describing what it sees (uid, user-namespace map,
capabilities, PID, network interfaces, seccomp). Then it serves requests, one JSON line
each, until stdin closes. **It alone holds the result channel** (stdout) to the caller.

**Builder** (:mod:`.builder`; one forked process per source): closes every inherited
descriptor but a private pipe back to the supervisor, sets its limits and the builder
seccomp filter, then builds the source and writes one JSON answer on the pipe.

The supervisor reads at most ``max_result_bytes`` from that pipe, kills the builder at
its deadline, keeps only the known keys with the expected types, and writes one line per
source to the caller. Generated code can therefore neither write to the caller's channel
nor answer for another source; the caller validates every line again.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any

_RESULT_KEYS = {"ok": bool, "reason": str, "detail": str, "graph": str, "num_params": int, "output_shape": list,
                "suite": dict}


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
        ctx["run_builder"](item, ctx, write_fd, request)
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
    sys.path[:0] = [p for p in config.get("sys_path", []) if isinstance(p, str)]
    _light_packages()
    from nasassist_plugins.mutation.sandbox.builder import (
        PR_SET_DUMPABLE,
        PR_SET_PDEATHSIG,
        prctl,
        run_builder,
        safe_builtins,
        short,
    )

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    prctl(PR_SET_DUMPABLE, 0)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from nasassist_plugins.adapters.torch_adapter import from_torch
    from nasassist_plugins.mutation.sandbox.validator import ALLOWED_MODULES, escape_attribute_names, validate_source
    from nasassist_plugins.proxies.suite import compute_suite

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
            seccomp_detail = short(exc, 300)
    ctx = {
        "torch": torch,
        "from_torch": from_torch,
        "compute_suite": compute_suite,
        "validate_source": validate_source,
        "builtins": safe_builtins(ALLOWED_MODULES),
        "python_checks": bool(config.get("python_checks", True)),
        "seccomp": seccomp,
        "scratch": os.getcwd(),
        "run_builder": run_builder,
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
                answer = {"ok": False, "reason": "sandbox-error", "detail": short(exc)}
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
