"""Census of hostile inputs: what each public entry point does with a fixed catalogue of bad input.

Every case runs in a worker process (one per entry point, restarted after a crash), bounded
by ``--timeout`` seconds, and is sorted into one of:

``valid``      a valid result (for inputs that are legitimate, the result is checked too);
``clear``      a clear error: an exception of the library's own hierarchy with a one-line
               message, or (CLI) exit status 2 with an ``error:`` line and no traceback;
``traceback``  any other exception escaping, a traceback printed, or the worker dying;
``silent``     a hostile input accepted (exit 0, a result) or a questionable result
               (NaN score, FLOPs 0 for an LSTM, unmarked partial graph, mutated input);
``hang``       no answer within the timeout;
``n/a``        the entry point does not exist in this version of the code.

Usage::

    python benchmarks/bad_input_census.py                       # prints one table per entry point
    python benchmarks/bad_input_census.py --json benchmarks/results/bad_input_census.json
    python benchmarks/bad_input_census.py --root /path/to/older/checkout --label before

``--root`` runs the same catalogue against another checkout (its ``nasassist_plugins``
imported first, with its top-level ``adapters/`` linked in as ``nasassist_plugins.adapters``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable

OUTCOMES = ("valid", "clear", "traceback", "silent", "hang", "n/a")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ============================================================================ fixtures (built in the worker)
MODELS = '''
import sys
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


class Exits(nn.Module):
    def __init__(self):
        super().__init__()
        sys.exit(0)


class Fails(nn.Module):
    def forward(self, x):
        raise ValueError("no luck")


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.small = nn.Linear(8, 8)
        self.big = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))

    def forward(self, x):
        if x.sum() > 0:
            return self.small(x)
        return self.big(x)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][-1])


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(16, 4)

    def forward(self, x):
        return self.attention(x, x, x)[0]


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x.mul_(3)
        return self.fc(torch.relu_(x))


def factory_with_args(width):
    return nn.Linear(width, width)
'''


class Fixtures:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nasassist-census-"))
        self.models = self.dir / "models.py"
        self.models.write_text(MODELS)
        (self.dir / "a_file").write_text("not a folder")
        (self.dir / "a_dir.json").mkdir()
        (self.dir / "text.onnx").write_text("hello")
        (self.dir / "empty.onnx").write_bytes(b"")
        (self.dir / "text.safetensors").write_text("hello")
        (self.dir / "pickle.pt").write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94.")
        self._weights: Path | None = None

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def spec(self, cls: str) -> str:
        return f"{self.models}:{cls}"

    def weights(self) -> Path:
        if self._weights is None:
            from nasassist_plugins.predictor import Predictor

            self._weights = self.dir / "small.safetensors"
            Predictor(hidden_dim=8, num_gin_layers=1, num_experts=1, ensemble_size=1).save(self._weights)
        return self._weights

    def crafted(self, name: str, edit: Callable[[dict], Any]) -> str:
        """A copy of the small weights file with its NAS-Assist JSON header edited."""
        raw = self.weights().read_bytes()
        (size,) = struct.unpack("<Q", raw[:8])
        outer = json.loads(raw[8: 8 + size])
        key = next(k for k in outer["__metadata__"] if k.startswith("nasassist"))
        header = json.loads(outer["__metadata__"][key])
        edit(header)
        outer["__metadata__"][key] = json.dumps(header)
        encoded = json.dumps(outer).encode()
        encoded += b" " * (-len(encoded) % 8)
        target = self.dir / f"{name}.safetensors"
        target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size:])
        return str(target)

    def user_module(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("census_models", self.models)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


# ============================================================================ running one case
class _Hang(BaseException):
    pass


def _own_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("nasassist_plugins") and len(str(exc).strip().splitlines()) <= 1


def _outcome_of_exception(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return ("clear" if _own_error(exc) else "traceback"), text[:160]


def cli(argv: list[str], expect: str = "error", check: Callable[[str], str | None] | None = None):
    """A ``nasassist`` command run in process."""

    def run(fx: Fixtures) -> tuple[str, str]:
        from nasassist_plugins.cli import main

        args = [a.replace("{fx.models}", str(fx.models)).replace("{fx.dir}", str(fx.dir)).replace("{data}", str(DATA))
                for a in argv]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except _Hang:
                raise
            except BaseException as exc:  # noqa: BLE001 - escaping main is the finding
                return "traceback", f"{type(exc).__name__}: {str(exc)[:120]}"
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        if any(line.startswith("Traceback") for line in lines):
            return "traceback", lines[-1][:160]
        if code == 0:
            if expect == "error":
                return "silent", f"exit 0: {out.getvalue().strip()[-100:]!r}"
            problem = check(out.getvalue() + err.getvalue()) if check else None
            return ("silent", problem) if problem else ("valid", "exit 0")
        if code == 2 and lines and "error" in lines[-1]:
            return "clear", lines[-1][:160]
        return "traceback", f"exit {code}: {(lines or [''])[-1][:140]}"

    return expect, run


def api(function: Callable[[Fixtures], Any], expect: str = "error", check: Callable[[Any], str | None] | None = None):
    """A library call."""

    def run(fx: Fixtures) -> tuple[str, str]:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = function(fx)
        except _Hang:
            raise
        except (ImportError, AttributeError) as exc:
            if "nasassist_plugins" in str(exc):  # a module or name this version does not have
                return "n/a", f"{type(exc).__name__}: {str(exc)[:120]}"
            return _outcome_of_exception(exc)
        except SystemExit as exc:
            return "traceback", f"SystemExit({exc.code!r}) escaped"
        except BaseException as exc:  # noqa: BLE001
            return _outcome_of_exception(exc)
        if expect == "error":
            return "silent", f"accepted: {str(result)[:100]!r}"
        problem = check(result, caught) if check else None
        return ("silent", problem) if problem else ("valid", str(result)[:100])

    return expect, run


# ============================================================================ the catalogue
def _no_nan(text: str) -> str | None:
    return "prints NaN" if "nan" in text.lower().replace("nanoseconds", "") else None


def _cli_lstm_flops(text: str) -> str | None:
    import re

    match = re.search(r"conv \+ matmul\)\s*\S?\s*([\d,]+)", text)
    if match is None:
        return "no FLOPs row"
    flops = int(match.group(1).replace(",", ""))
    expected = 5 * (2 * 4 * 16 * (8 + 16) + 2 * 4 * 16 * (16 + 16)) + 2 * 16 * 2  # LSTM steps + the head
    return None if flops == expected or "unknown" in text.lower() else f"FLOPs {flops}, expected {expected}"


def _lstm_flops_counted(result, caught) -> str | None:
    node = next((n for n in result.nodes if n.op_type == "lstm"), None)
    if node is None:
        return "no lstm node"
    if node.attrs.get("flops") is None and not node.attrs.get("flops_unknown"):
        return "LSTM FLOPs not counted (0 or an element-wise guess) and not marked unknown"
    return None


def _attention_flops_counted(result, caught) -> str | None:
    node = next((n for n in result.nodes if n.op_type == "attention"), None)
    expected = 4 * 2 * 5 * 16 * 16 + 2 * 2 * 5 * 5 * 16  # per sample: projections, scores, weighted sum
    got = node.attrs.get("flops") if node is not None else None
    return None if got == expected else f"attention FLOPs {got}, expected {expected}"


def _partial_marked(result, caught) -> str | None:
    if result.metadata.get("partial") and any("partial" in str(w.message) for w in caught):
        return None
    return f"one branch kept ({result.num_parameters} parameters), no warning, not marked partial"


def _finite_scores(result, caught) -> str | None:
    import numpy as np

    values = [np.asarray(v, dtype=float) for v in (result if isinstance(result, tuple) else (result,))]
    return None if all(np.all(np.isfinite(v)) for v in values) else "NaN/inf score"


def _trace_in_place(fx: Fixtures):
    import torch
    from nasassist_plugins.adapters.torch_adapter import from_torch

    x = -torch.ones(1, 8)
    before = x.clone()
    from_torch(fx.user_module().InPlace(), x)
    return torch.equal(x, before)


def _graph_json(edit: Callable[[dict], Any]):
    def call(fx: Fixtures):
        from nasassist_plugins.graph import ComputationalGraph

        graph = ComputationalGraph(name="g")
        a = graph.add_node("input", output_shape=(1, 3, 8, 8))
        b = graph.add_node("conv2d", in_channels=3, out_channels=4, kernel_size=(3, 3), stride=(1, 1), groups=1,
                           bias=True, num_params=112, output_shape=(1, 4, 6, 6))
        c = graph.add_node("output", output_shape=(1, 4, 6, 6))
        graph.add_edge(a, b)
        graph.add_edge(b, c)
        data = graph.to_dict()
        text = edit(data)
        loaded = ComputationalGraph.from_json(text if isinstance(text, str) else json.dumps(data))
        if not math.isfinite(loaded.flops):
            raise AssertionError("non-finite FLOPs")  # counted as a traceback: a silent NaN would be worse
        return loaded
    return call


def _predictor(fx: Fixtures):
    from nasassist_plugins.predictor import Predictor

    if not hasattr(fx, "_predictor"):
        fx._predictor = Predictor.load(fx.weights())
    return fx._predictor


def _graph(fx: Fixtures):
    from nasassist_plugins.adapters.torch_adapter import from_torch

    return from_torch(fx.user_module().Net(), (1, 3, 8, 8))


def _study(values: list[Any]):
    def call(fx: Fixtures):
        import optuna
        from optuna.trial import TrialState
        from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        import torch.nn as nn

        def build(trial):
            width = trial.suggest_categorical("width", [4, 8, 16])
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2))

        sampler = NASAssistSampler(build_model=build, example_input=(1, 3, 8, 8), predictor=_predictor(fx), seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler,
                                    pruner=NASAssistPruner(max_resource=2, n_warmup_trials=1))
        stream = iter(values)

        def objective(trial):
            build(trial)
            value = next(stream)
            for step in range(2):
                trial.report(value if isinstance(value, float) else 0.0, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value

        study.optimize(objective, n_trials=len(values), catch=())
        states = Counter(t.state for t in study.trials)
        if len(study.trials) != len(values) or states[TrialState.RUNNING] or states[TrialState.WAITING]:
            raise AssertionError(f"trials lost or left running: {dict(states)}")
        return {s.name: n for s, n in states.items()}
    return call


def _check_states(result, caught) -> str | None:
    return None


def catalogue() -> dict[str, list[tuple[str, tuple[str, Callable]]]]:
    """Entry point -> [(case name, (expectation, runner))]; fixed, so counts compare across versions."""
    spec = "{fx.models}:"
    return {
        "CLI graph": [
            ("valid model", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8"], "valid")),
            ("nb201 cell", cli(["graph", "nb201:|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|"
                                "nor_conv_3x3~2|"], "valid")),
            ("shape 1,3,60000,60000", cli(["graph", spec + "Net", "--input-shape", "1,3,60000,60000"])),
            ("shape 2^63", cli(["graph", spec + "Net", "--input-shape", f"1,3,{2**63},2"])),
            ("shape negative", cli(["graph", spec + "Net", "--input-shape", "1,3,-8,8"])),
            ("shape text", cli(["graph", spec + "Net", "--input-shape", "1,three,8"])),
            ("shape 9 dims", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8,1,1,1,1,1"])),
            ("shape 0", cli(["graph", spec + "Net", "--input-shape", "0"])),
            ("shape empty", cli(["graph", spec + "Net", "--input-shape", ","])),
            ("sys.exit(0) in __init__", cli(["graph", spec + "Exits", "--input-shape", "1,3,8,8"])),
            ("forward raises", cli(["graph", spec + "Fails", "--input-shape", "1,3,8,8"])),
            ("missing class", cli(["graph", spec + "Missing", "--input-shape", "1,3,8,8"])),
            ("factory needs args", cli(["graph", spec + "factory_with_args", "--input-shape", "1,8"])),
            ("missing file", cli(["graph", "/nonexistent/m.py:Net", "--input-shape", "1,3,8,8"])),
            ("no colon", cli(["graph", "garbage"])),
            ("bad nb201 string", cli(["graph", "nb201:|nonsense|"])),
            ("bad nb101 json", cli(["graph", "nb101:{not json"])),
            ("nb101 wrong shape", cli(["graph", 'nb101:{"adjacency": [[0]], "ops": []}'])),
            ("darts json list", cli(["graph", "darts:[1, 2, 3]"])),
            ("text file as onnx", cli(["graph", "{fx.dir}/text.onnx"])),
            ("empty onnx", cli(["graph", "{fx.dir}/empty.onnx"])),
            ("missing onnx", cli(["graph", "/nonexistent.onnx"])),
            ("--out unwritable folder", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8", "--out",
                                             "/proc/none/g.json"])),
            ("--out is a folder", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8", "--out", "{fx.dir}/a_dir.json"])),
            ("--out under a file", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8", "--out",
                                        "{fx.dir}/a_file/g.json"])),
            ("--out .txt", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8", "--out", "{fx.dir}/g.txt"])),
            ("--engine bogus", cli(["graph", spec + "Net", "--input-shape", "1,3,8,8", "--engine", "bogus"])),
            ("data-dependent if", cli(["graph", spec + "Branchy", "--input-shape", "1,8"], "valid",
                                      lambda text: None if "partial" in text else "one branch kept, no warning")),
            ("LSTM FLOPs", cli(["graph", spec + "Recurrent", "--input-shape", "5,1,8"], "valid", _cli_lstm_flops)),
        ],
        "CLI score": [
            ("valid model", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--weights",
                                 "{fx.dir}/small.safetensors"], "valid", _no_nan)),
            ("weights missing", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--weights", "/nonexistent"])),
            ("weights text file", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--weights",
                                       "{fx.dir}/text.safetensors"])),
            ("weights pickle .pt", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--weights",
                                        "{fx.dir}/pickle.pt"])),
            ("weights target_scale NaN", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--weights",
                                              "{fx.dir}/nan_scale.safetensors"])),
            ("weights sizes x4096", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--weights",
                                         "{fx.dir}/huge.safetensors"])),
            ("--proxy-batch 0", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--proxies", "synflow",
                                     "--proxy-batch", "0", "--weights", "{fx.dir}/small.safetensors"])),
            ("--proxy-batch -3", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--proxy-batch", "-3"])),
            ("--proxies bogus", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--proxies", "bogus",
                                     "--weights", "{fx.dir}/small.safetensors"])),
            ("--json is a folder", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--json", "{fx.dir}/a_dir.json",
                                        "--weights", "{fx.dir}/small.safetensors"])),
            ("--json under a file", cli(["score", spec + "Net", "--input-shape", "1,3,8,8", "--json",
                                         "{fx.dir}/a_file/s.json", "--weights", "{fx.dir}/small.safetensors"])),
            ("huge shape", cli(["score", spec + "Net", "--input-shape", "1,3,60000,60000"])),
        ],
        "CLI evaluate": [
            ("--limit -1", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "-1"])),
            ("--limit 0", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "0"])),
            ("--limit 1", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "1"])),
            ("--limit x", cli(["evaluate", "--data", "{data}", "--limit", "x"])),
            ("--limit 1e3", cli(["evaluate", "--data", "{data}", "--limit", "1e3"])),
            ("--jobs 0", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "4", "--jobs", "0"])),
            ("--jobs -2", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "4", "--jobs", "-2"])),
            ("--seed -1", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "4", "--seed", "-1"])),
            ("--out is a folder", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "4", "--out",
                                       "{fx.dir}/a_dir.json"])),
            ("--out unwritable", cli(["evaluate", "--data", "{data}", "--families", "nb201", "--limit", "4", "--out",
                                      "/proc/none/e.json"])),
            ("--data missing", cli(["evaluate", "--data", "/nonexistent", "--families", "nb201", "--limit", "4"])),
            ("--families bogus", cli(["evaluate", "--data", "{data}", "--families", "bogus", "--limit", "4"])),
            ("--weights text", cli(["evaluate", "--data", "{data}", "--weights", "{fx.dir}/text.safetensors"])),
        ],
        "CLI train": [
            ("--limit-per-task -1", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t1", "--limit-per-task", "-1"])),
            ("--limit-per-task 0 --zoo 0 --unlabelled 0",
             cli(["train", "--data", "{data}", "--out", "{fx.dir}/t2", "--limit-per-task", "0", "--zoo", "0",
                  "--unlabelled", "0"])),
            ("--out an existing file", cli(["train", "--data", "{data}", "--out", "{fx.dir}/a_file",
                                            "--train-families", "nb201", "--limit-per-task", "20", "--zoo", "0",
                                            "--unlabelled", "0"])),
            ("--out unwritable", cli(["train", "--data", "{data}", "--out", "/proc/none/t", "--train-families", "nb201",
                                      "--limit-per-task", "20", "--zoo", "0"])),
            ("--max-minutes nan", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t3", "--max-minutes", "nan"])),
            ("--max-minutes -1", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t3", "--max-minutes", "-1"])),
            ("--jobs 0", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t4", "--jobs", "0"])),
            ("--zoo -5", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t5", "--zoo", "-5"])),
            ("--supervised-epochs 0", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t6", "--supervised-epochs",
                                           "0"])),
            ("--data missing", cli(["train", "--data", "/nonexistent", "--out", "{fx.dir}/t7", "--train-families",
                                    "nb201", "--limit-per-task", "20", "--zoo", "0"])),
            ("--leave-out everything", cli(["train", "--data", "{data}", "--out", "{fx.dir}/t8", "--train-families",
                                            "nb201", "--leave-out", "nb201"])),
        ],
        "CLI improve": [
            ("--sandbox-timeout 0", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--sandbox-timeout", "0"])),
            ("--sandbox-memory-mb -5", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--sandbox-memory-mb",
                                            "-5"])),
            ("--max-iter 0", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--max-iter", "0"])),
            ("--threshold nan", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--threshold", "nan",
                                     "--max-iter", "1", "--weights", "{fx.dir}/small.safetensors"])),
            ("--llm-timeout inf", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--llm-timeout", "inf",
                                       "--max-iter", "1", "--weights", "{fx.dir}/small.safetensors"])),
            ("--max-llm-calls -1", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--max-llm-calls", "-1",
                                        "--max-iter", "1", "--weights", "{fx.dir}/small.safetensors"])),
            ("--llm-model without --base-url", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8",
                                                    "--llm-model", "m"])),
            ("spec without class", cli(["improve", "{fx.models}", "--input-shape", "1,3,8,8"])),
            ("spec missing file", cli(["improve", "/nonexistent.py:Net", "--input-shape", "1,3,8,8"])),
            ("--json is a folder", cli(["improve", spec + "Net", "--input-shape", "1,3,8,8", "--json",
                                        "{fx.dir}/a_dir.json", "--max-iter", "1",
                                        "--weights", "{fx.dir}/small.safetensors"])),
            ("huge shape", cli(["improve", spec + "Net", "--input-shape", "1,3,60000,60000"])),
        ],
        "adapters": [
            ("valid model", api(lambda fx: _graph(fx), "valid")),
            ("class not instance", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                       .from_torch(fx.user_module().Net, (1, 3, 8, 8)))),
            ("string input", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                 .from_torch(fx.user_module().Net(), "1,3,8,8"))),
            ("negative shape", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                   .from_torch(fx.user_module().Net(), (1, -3, 8, 8)))),
            ("wrong shape", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                .from_torch(fx.user_module().Net(), (1, 5, 8, 8)))),
            ("huge shape", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                               .from_torch(fx.user_module().Net(), (1, 3, 60000, 60000)))),
            ("forward raises", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                   .from_torch(fx.user_module().Fails(), (1, 3, 8, 8)))),
            ("bad method", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                               .from_torch(fx.user_module().Net(), (1, 3, 8, 8), method="bogus"))),
            ("LSTM FLOPs", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                               .from_torch(fx.user_module().Recurrent(), (5, 1, 8)), "valid", _lstm_flops_counted)),
            ("attention FLOPs", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                    .from_torch(fx.user_module().Attention(), (5, 1, 16)), "valid",
                                    _attention_flops_counted)),
            ("data-dependent if", api(lambda fx: __import__("nasassist_plugins.adapters.torch_adapter", fromlist=["x"])
                                      .from_torch(fx.user_module().Branchy(), __import__("torch").ones(1, 8)), "valid",
                                      _partial_marked)),
            ("in-place on the input", api(_trace_in_place, "valid",
                                          lambda same, caught: None if same else "the caller's tensor was changed")),
            ("onnx text file", api(lambda fx: __import__("nasassist_plugins.adapters.onnx_adapter", fromlist=["x"])
                                   .from_onnx(fx.path("text.onnx")))),
            ("onnx empty", api(lambda fx: __import__("nasassist_plugins.adapters.onnx_adapter", fromlist=["x"])
                               .from_onnx(fx.path("empty.onnx")))),
            ("onnx missing", api(lambda fx: __import__("nasassist_plugins.adapters.onnx_adapter", fromlist=["x"])
                                 .from_onnx("/nonexistent.onnx"))),
            ("onnx a directory", api(lambda fx: __import__("nasassist_plugins.adapters.onnx_adapter", fromlist=["x"])
                                     .from_onnx(str(fx.dir)))),
            ("onnx None", api(lambda fx: __import__("nasassist_plugins.adapters.onnx_adapter", fromlist=["x"])
                              .from_onnx(None))),
        ],
        "weights files": [
            ("honest file", api(lambda fx: _predictor(fx), "valid")),
            ("None", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"]).Predictor.load(None))),
            ("missing", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"])
                            .Predictor.load("/nonexistent.safetensors"))),
            ("a directory", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"])
                                .Predictor.load(fx.dir))),
            ("text file", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"])
                              .Predictor.load(fx.path("text.safetensors")))),
            ("pickle .pt", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"])
                               .Predictor.load(fx.path("pickle.pt")))),
            ("truncated", api(lambda fx: (Path(fx.path("trunc.safetensors")).write_bytes(fx.weights().read_bytes()[:-100]),
                                          __import__("nasassist_plugins.predictor", fromlist=["x"])
                                          .Predictor.load(fx.path("trunc.safetensors")))[1])),
        ] + [
            (f"header: {name}", api(lambda fx, name=name, edit=edit: __import__("nasassist_plugins.predictor",
                                                                              fromlist=["x"])
                                    .Predictor.load(fx.crafted(name, edit))))
            for name, edit in [
                ("config key missing", lambda h: h["config"].pop("hidden_dim")),
                ("unknown config key", lambda h: h["config"].update(surprise=1)),
                ("string for a number", lambda h: h["config"].update(hidden_dim="64")),
                ("list for the config", lambda h: h.update(config=[1, 2])),
                ("sizes x4096", lambda h: h["config"].update(hidden_dim=h["config"]["hidden_dim"] * 4096)),
                ("ensemble 4096", lambda h: h["config"].update(ensemble_size=4096)),
                ("target_scale NaN", lambda h: h.update(target_scale=float("nan"))),
                ("target_scale 0", lambda h: h.update(target_scale=0)),
                ("target_offset string", lambda h: h.update(target_offset="1")),
                ("negative op id", lambda h: h.update(unknown_op_ids={"x": -1})),
                ("future version", lambda h: h.update(version=99)),
                ("unknown top-level key", lambda h: h.update(extra=1)),
            ]
        ],
        "graph JSON": [
            (name, api(_graph_json(edit), expect))
            for name, edit, expect in [
                ("round trip", lambda d: None, "valid"),
                ("NaN attribute", lambda d: d["nodes"][1]["attrs"].update(out_channels=float("nan")), "error"),
                ("1e308 attribute", lambda d: d["nodes"][1]["attrs"].update(out_channels=1e308), "error"),
                ("2**60 channels", lambda d: d["nodes"][1]["attrs"].update(out_channels=2**60), "error"),
                ("negative count", lambda d: d["nodes"][1]["attrs"].update(out_channels=-3), "error"),
                ("string count", lambda d: d["nodes"][1]["attrs"].update(in_channels="x"), "error"),
                ("bias 'yes'", lambda d: d["nodes"][1]["attrs"].update(bias="yes"), "error"),
                ("kernel with text", lambda d: d["nodes"][1]["attrs"].update(kernel_size=[3, "a"]), "error"),
                ("40-dim output shape", lambda d: d["nodes"][1]["attrs"].update(output_shape=[1] * 40), "error"),
                ("cycle", lambda d: d.update(edges=[[0, 1], [1, 2], [2, 0]]), "error"),
                ("dangling edge", lambda d: d.update(edges=[[0, 7]]), "error"),
                ("float edge", lambda d: d.update(edges=[[0, 1.5]]), "error"),
                ("nodes a string", lambda d: d.update(nodes="abc"), "error"),
                ("no nodes", lambda d: d.update(nodes=[], edges=[]), "error"),
                ("op_type missing", lambda d: d["nodes"][1].pop("op_type"), "error"),
                ("NaN metadata", lambda d: d.update(metadata={"a": [float("nan")]}), "error"),
                ("deep nesting", lambda d: '{"format": "nasassist.graph", "version": 1, "metadata": '
                 + "[" * 100_000 + "]" * 100_000 + "}", "error"),
                ("not JSON", lambda d: "{nodes: [", "error"),
            ]
        ],
        "Predictor API": [
            ("predict([graph])", api(lambda fx: _predictor(fx).predict([_graph(fx)]), "valid", _finite_scores)),
            ("Predictor.load(None)", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"])
                                         .Predictor.load(None))),
            ("Predictor.load(5)", api(lambda fx: __import__("nasassist_plugins.predictor", fromlist=["x"])
                                      .Predictor.load(5))),
            ("predict(bare module)", api(lambda fx: _predictor(fx).predict(fx.user_module().Net(), (1, 3, 8, 8)))),
            ("predict(bare graph)", api(lambda fx: _predictor(fx).predict(_graph(fx)))),
            ("predict(None)", api(lambda fx: _predictor(fx).predict(None))),
            ("predict('abc')", api(lambda fx: _predictor(fx).predict("abc"))),
            ("predict([3])", api(lambda fx: _predictor(fx).predict([3]))),
            ("batch_size=0", api(lambda fx: _predictor(fx).predict([_graph(fx)], batch_size=0))),
            ("batch_size=-1", api(lambda fx: _predictor(fx).predict([_graph(fx)], batch_size=-1))),
            ("batch_size='x'", api(lambda fx: _predictor(fx).predict([_graph(fx)], batch_size="x"))),
            ("batch_size=nan", api(lambda fx: _predictor(fx).predict([_graph(fx)], batch_size=math.nan))),
            ("seed='x' (module)", api(lambda fx: _predictor(fx).predict([fx.user_module().Net()], (1, 3, 8, 8),
                                                                        seed="x"))),
            ("example_input huge", api(lambda fx: _predictor(fx).predict([fx.user_module().Net()],
                                                                         (1, 3, 60000, 60000)))),
            ("example_input 'abc'", api(lambda fx: _predictor(fx).predict([fx.user_module().Net()], "abc"))),
            ("module without example_input", api(lambda fx: _predictor(fx).predict([fx.user_module().Net()]))),
            ("fit values NaN", api(lambda fx: _predictor(fx).copy().fit([_graph(fx)] * 2, [math.nan, 1.0]))),
            ("fit values 1e200", api(lambda fx: _predictor(fx).copy().fit([_graph(fx)] * 2, [1e200, -1e200]))),
            ("fit values 'ab'", api(lambda fx: _predictor(fx).copy().fit([_graph(fx)] * 2, "ab"))),
            ("fit lr=nan", api(lambda fx: _predictor(fx).copy().fit([_graph(fx)] * 2, [0.0, 1.0], lr=math.nan))),
            ("fit epochs='x'", api(lambda fx: _predictor(fx).copy().fit([_graph(fx)] * 2, [0.0, 1.0], epochs="x"))),
            ("fit max_seconds=-1", api(lambda fx: _predictor(fx).copy().fit([_graph(fx)] * 2, [0.0, 1.0],
                                                                            max_seconds=-1))),
            ("embed batch_size=0", api(lambda fx: _predictor(fx).embed([_graph(fx)], batch_size=0))),
            ("population bogus", api(lambda fx: _predictor(fx).predict([_graph(fx)], population="bogus"))),
        ],
        "sampler/pruner constructors": [
            ("sampler defaults", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                     .NASAssistSampler(), "valid")),
            ("pruner defaults", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                    .NASAssistPruner(), "valid")),
        ] + [
            (f"sampler kappa={v!r}", api(lambda fx, v=v: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                         .NASAssistSampler(kappa=v)))
            for v in ("abc", math.nan, math.inf)
        ] + [
            (f"sampler config kappa={v!r}", api(lambda fx, v=v: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                                .NASAssistSampler(config={"kappa": v})))
            for v in ("abc", math.nan, math.inf, -1.0)
        ] + [
            ("sampler seed=-1", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                    .NASAssistSampler(seed=-1))),
            ("sampler n_startup_trials=-1", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                                .NASAssistSampler(n_startup_trials=-1))),
            ("sampler config max_candidates=0", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                                    .NASAssistSampler(config={"max_candidates": 0}))),
            ("sampler config prune_quantile=nan", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                                      .NASAssistSampler(config={"prune_quantile": math.nan}))),
            ("sampler config max_plan_seconds=inf", api(
                lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                .NASAssistSampler(config={"max_plan_seconds": math.inf}))),
        ] + [
            (f"pruner {name}={v!r}", api(lambda fx, name=name, v=v: __import__("nasassist_plugins.optuna",
                                                                             fromlist=["x"]).NASAssistPruner(**{name: v})))
            for name, v in [("lower_bound", math.nan), ("upper_bound", math.inf), ("lower_bound", "x"),
                            ("reduction_factor", 1.0), ("reduction_factor", math.nan), ("threshold_probability", 1.5),
                            ("min_resource", 0), ("max_resource", -1), ("top_k", 0), ("zero_shot_quantile", 1.0),
                            ("zero_shot_weight", math.inf), ("extrapolator", "bogus")]
        ] + [
            ("pruner lower >= upper", api(lambda fx: __import__("nasassist_plugins.optuna", fromlist=["x"])
                                          .NASAssistPruner(lower_bound=1.0, upper_bound=0.0))),
        ],
        "objective values": [
            (name, api(_study(values), "valid", _check_states))
            for name, values in [
                ("NaN", [0.5, math.nan, 0.4]),
                ("+inf", [0.5, math.inf, 0.4]),
                ("-inf", [0.5, -math.inf, 0.4]),
                ("1e200", [0.5, 1e200, 0.4]),
                ("-1e200", [0.5, -1e200, 0.4]),
                ("1e308 then NaN", [1e308, math.nan, 0.3]),
                ("string", [0.5, "abc", 0.4]),
                ("None", [0.5, None, 0.4]),
            ]
        ],
    }


# ============================================================================ worker and parent
def worker(entry: str, start: int, timeout: float) -> None:
    """Run the cases of ``entry`` from ``start``, one JSON line each (stdout)."""
    import logging

    root = os.environ.get("NASASSIST_CENSUS_ROOT")
    if root:  # another checkout: its code first, and not the editable install's mapping to this one
        sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
        sys.path.insert(0, root)
    logging.disable(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fixtures = Fixtures()
    try:
        fixtures.crafted("nan_scale", lambda h: h.update(target_scale=float("nan")))
        fixtures.crafted("huge", lambda h: h["config"].update(hidden_dim=h["config"]["hidden_dim"] * 4096))
    except Exception:  # noqa: BLE001 - a version without these files: the cases report it
        pass
    cases = catalogue()[entry]
    out = sys.__stdout__

    def alarm(signum, frame):
        raise _Hang()

    signal.signal(signal.SIGALRM, alarm)
    for index in range(start, len(cases)):
        name, (expect, run) = cases[index]
        started = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            outcome, detail = run(fixtures)
        except _Hang:
            outcome, detail = "hang", f"no answer in {timeout:.0f} s"
        except BaseException as exc:  # noqa: BLE001 - the runner itself failed
            outcome, detail = "traceback", f"{type(exc).__name__}: {exc}"[:160]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps({"index": index, "case": name, "expect": expect, "outcome": outcome,
                              "detail": detail, "seconds": round(time.perf_counter() - started, 2)}) + "\n")
        out.flush()


def run_entry(entry: str, n_cases: int, timeout: float, env: dict[str, str], progress: bool) -> list[dict]:
    results: list[dict] = []
    start = 0
    while start < n_cases:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", entry, "--start", str(start), "--timeout",
                                 str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        buffer = ""
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], timeout + 60)
            if not ready:  # stuck where an alarm cannot reach (native code): a hang
                proc.kill()
                results.append({"index": start, "case": catalogue()[entry][start][0], "outcome": "hang",
                                "detail": "worker stuck", "seconds": timeout + 60})
                start += 1
                break
            line = proc.stdout.readline()
            if not line:  # the worker died (os._exit, a crash, the OOM killer)
                proc.wait()
                if start < n_cases:
                    results.append({"index": start, "case": catalogue()[entry][start][0], "outcome": "traceback",
                                    "detail": f"worker died (exit {proc.returncode})", "seconds": 0})
                    start += 1
                break
            row = json.loads(line)
            results.append(row)
            start = row["index"] + 1
            if progress:
                print(f"  {entry}: [{start}/{n_cases}] {row['case']}: {row['outcome']} ({row['seconds']} s)",
                      file=sys.stderr, flush=True)
            if start >= n_cases:
                proc.wait()
                break
        del buffer
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per case (default 90)")
    parser.add_argument("--root", type=Path, help="checkout to test (default: this one)")
    parser.add_argument("--label", default="after", help="name of this run in the JSON (default 'after')")
    parser.add_argument("--json", type=Path, help="write every case and the counts as JSON")
    parser.add_argument("--only", help="entry points to run, comma-separated")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.start, args.timeout)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if args.root is not None:
        root = args.root.resolve()
        link = root / "nasassist_plugins" / "adapters"
        if not link.exists() and (root / "adapters").is_dir():
            link.symlink_to(root / "adapters", target_is_directory=True)
        env["NASASSIST_CENSUS_ROOT"] = str(root)
    entries = list(catalogue())
    if args.only:
        entries = [e for e in entries if e in {s.strip() for s in args.only.split(",")}]
    report: dict[str, Any] = {"label": args.label, "root": str(args.root or Path(__file__).resolve().parents[1]),
                              "timeout_s": args.timeout, "entries": {}}
    started = time.perf_counter()
    for entry in entries:
        rows = run_entry(entry, len(catalogue()[entry]), args.timeout, env, not args.quiet)
        report["entries"][entry] = {"counts": dict(Counter(r["outcome"] for r in rows)), "cases": rows}
    report["seconds"] = round(time.perf_counter() - started, 1)
    totals: Counter[str] = Counter()
    width = max(len(e) for e in entries) if entries else 10
    print(f"\nBad-input census ({args.label}; {report['root']}; {args.timeout:.0f} s per case)")
    print(f"{'entry point':<{width}}  {'inputs':>6}  " + "  ".join(f"{o:>9}" for o in OUTCOMES))
    for entry in entries:
        counts = Counter(report["entries"][entry]["counts"])
        totals.update(counts)
        print(f"{entry:<{width}}  {sum(counts.values()):>6}  " + "  ".join(f"{counts[o]:>9}" for o in OUTCOMES))
    print(f"{'total':<{width}}  {sum(totals.values()):>6}  " + "  ".join(f"{totals[o]:>9}" for o in OUTCOMES))
    for entry in entries:
        for row in report["entries"][entry]["cases"]:
            if row["outcome"] in ("traceback", "silent", "hang"):
                print(f"  {row['outcome']:>9}  {entry}: {row['case']}: {row['detail']}")
    report["totals"] = dict(totals)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
