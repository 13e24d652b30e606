"""Sandbox: hostile model sources are refused statically or contained in the child process."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from mutation_models import SMALL_CNN
from nasassist_plugins.mutation import ProposalRejected, Sandbox, SandboxLimits, validate_source
from nasassist_plugins.mutation.sandbox.validator import check_source

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def net(init: str = "", forward: str = "return self.fc(x.mean(dim=(2, 3)))", extra: str = "") -> str:
    """A tiny model with ``init`` lines appended to __init__ and ``forward``'s body replaced."""
    init_lines = "".join(f"        {line}\n" for line in init.splitlines())
    forward_lines = "".join(f"        {line}\n" for line in forward.splitlines())
    return (HEADER + extra + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc = nn.Linear(3, 10)\n" + init_lines + "\n    def forward(self, x):\n" + forward_lines)


# Each payload must be refused by the AST allowlist with the given reason (nothing runs).
STATIC_PAYLOADS = {
    "import os": ("import os\n" + net(), "forbidden-import"),
    "import subprocess": (net(forward="import subprocess\nsubprocess.run(['ls'])\nreturn x"), "forbidden-import"),
    "import socket": ("import socket\n" + net(), "forbidden-import"),
    "from os import system": ("from os import system\n" + net(), "forbidden-import"),
    "import importlib": ("import importlib\n" + net(), "forbidden-import"),
    "from torch import hub": ("from torch import hub\n" + net(), "forbidden-import"),
    "open()": (net(init="self.data = open('/etc/passwd').read()"), "forbidden-name"),
    "eval()": (net(forward="return eval('self.fc(x.mean(dim=(2, 3)))')"), "forbidden-name"),
    "exec()": (net(init="exec('import os')"), "forbidden-name"),
    "__import__": (net(init="m = __import__('os')"), "forbidden-name"),
    "getattr trick": (net(init="imp = getattr(__builtins__, '__imp' + 'ort__')"), "forbidden-name"),
    "class walk": (net(init="subs = ().__class__.__bases__[0].__subclasses__()"), "dunder-access"),
    "globals()": (net(init="g = globals()['__builtins__']"), "forbidden-name"),
    "str.format attribute read": (net(init="leak = '{0.__class__}'.format(self)"), "forbidden-attribute"),
    "torch.load pickle": (net(init="state = torch.load('weights.pt')"), "forbidden-attribute"),
    "torch.hub": (net(init="m = torch.hub.load('x/y', 'z')"), "forbidden-attribute"),
    "torch.ops native library": (net(init="torch.ops.load_library('/tmp/evil.so')"), "forbidden-attribute"),
    "cpp extension": (net(init="torch.utils.cpp_extension.load_inline('x', 'int f(){}')"), "forbidden-attribute"),
    "private torch._C": (net(init="c = torch._C"), "private-access"),
    "patch torch": (net(init="nn.Module.forward = None"), "foreign-assignment"),
    "typing.get_type_hints eval": ("import typing\n" + net(init="h = typing.get_type_hints(self)"), "forbidden-attribute"),
    "top-level call": (net() + "\nNet()\n", "top-level-code"),
    "top-level loop": (net() + "\nwhile True:\n    pass\n", "top-level-code"),
    "metaclass": (HEADER + "class Net(nn.Module, metaclass=type):\n    pass\n", "forbidden-construct"),
    "__del__ hook": (net(extra="") + "\n    def __del__(self):\n        pass\n", "dunder-access"),
    "syntax error": (net(forward="return x +"), "syntax-error"),
    "no module class": (HEADER + "def f():\n    return 1\n", "no-module-class"),
    "huge constant at import": (HEADER + "X = 10 ** 10 ** 10\n" + net(), "top-level-code"),
}


@pytest.mark.parametrize("name", sorted(STATIC_PAYLOADS))
def test_hostile_source_is_refused_statically(name: str) -> None:
    source, reason = STATIC_PAYLOADS[name]
    report = validate_source(source)
    assert not report.ok, f"{name} was allowed"
    assert reason in {v.reason for v in report.violations}, report.summary()
    with pytest.raises(ProposalRejected) as info:
        check_source(source)
    assert info.value.detail  # a readable reason


def test_ordinary_model_is_allowed() -> None:
    report = validate_source(SMALL_CNN)
    assert report.ok, report.summary()
    assert report.classes == ["Net"]


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(cpu_s=4, wall_s=2.0, startup_s=90, memory_mb=768, max_params=5_000_000))


def _caller_state() -> tuple:
    return (os.getcwd(), builtins.open, nn.Module.forward, torch.nn.Linear.forward, sorted(os.listdir(".")))


@pytest.mark.slow
def test_good_model_builds_and_hostile_runtime_payloads_are_contained(sandbox: Sandbox, tmp_path: Path) -> None:
    before = _caller_state()
    sources = [
        SMALL_CNN,
        net(init="while True:\n    pass"),                                                    # infinite loop
        net(forward="buf = torch.zeros(10 ** 10)\nreturn self.fc(x.mean(dim=(2, 3)))"),         # memory bomb
        net(init="self.big = nn.Linear(100000, 100000)"),                                      # enormous model
        net(extra="def f(n):\n    return f(n + 1)\n\n\n", init="f(0)"),                           # unbounded recursion
        net(forward="return x, x"),                                                           # not a tensor
        net(init="raise RuntimeError('boom')"),                                               # failing constructor
        net(forward="return self.fc(x)"),                                                     # shape error in forward
    ]
    results = sandbox.check_many(sources, (1, 3, 16, 16), entries=["Net"] * len(sources))
    good, loop, bomb, huge, recursion, tuple_out, boom, shape_error = results
    assert good.ok and good.output_shape == (1, 10) and good.num_params and good.graph().num_nodes > 5
    assert (loop.ok, loop.reason) == (False, "timeout")
    assert (bomb.ok, bomb.reason) == (False, "memory-limit"), bomb.detail
    assert (huge.ok, huge.reason) == (False, "too-many-parameters") and huge.num_params > 10**10
    assert (recursion.ok, recursion.reason) == (False, "recursion-limit")
    assert (tuple_out.ok, tuple_out.reason) == (False, "bad-output")
    assert (boom.ok, boom.reason) == (False, "build-error") and "boom" in boom.detail
    assert (shape_error.ok, shape_error.reason) == (False, "build-error") and "shape" in shape_error.detail.lower()
    assert sandbox.processes_started == 1  # one child for the whole batch
    assert _caller_state() == before


@pytest.mark.slow
def test_alarm_swallowing_loop_is_killed_at_the_cpu_limit(sandbox: Sandbox) -> None:
    payload = net(init="while True:\n    try:\n        while True:\n            pass\n    except:\n        pass")
    limits = SandboxLimits(cpu_s=2, wall_s=1.0, startup_s=90, memory_mb=768)
    result = sandbox.check(payload, (1, 3, 16, 16), limits=limits)
    assert not result.ok
    assert result.reason in {"cpu-limit", "timeout"}, result
    assert result.detail


def test_bad_arguments_raise_clear_errors(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="positive ints"):
        sandbox.check(SMALL_CNN, (1, 0, 16))
    with pytest.raises(ValueError, match="cpu_s"):
        SandboxLimits(cpu_s=0)
    with pytest.raises(ValueError, match="trainer"):
        sandbox.train(SMALL_CNN, (1, 3, 16, 16), "no_colon")
    refused = sandbox.check(SMALL_CNN, (1, 3, 16, 16), entry="Missing")
    assert refused.reason == "no-entry-class" and "Net" in refused.detail
