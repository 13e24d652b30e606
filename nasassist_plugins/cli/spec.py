"""Resolve the ``SPEC`` strings of the command line into a model and its graph.

Accepted forms:

* ``path/to/file.py:ClassOrFactory`` — a class (instantiated without arguments), a
  factory function (called without arguments) or a module instance in a Python file;
* ``package.module:attr`` — the same, from an importable module;
* ``model.onnx`` — an ONNX file;
* ``nb201:<arch_str>``, ``nb101:<json>`` (``{"adjacency": [[...]], "ops": [...]}`` or
  ``[adjacency, ops]``), ``darts:<json>`` (``{"normal": [...], "reduce": [...]}``),
  ``tnb101:<arch_str>`` — benchmark cells, built as real PyTorch networks.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from nasassist_plugins.errors import AdapterError, NASAssistError
from nasassist_plugins.graph import ComputationalGraph

__all__ = ["ModelSpec", "check_input_budget", "load_model_spec", "parse_input_shape"]

#: Input shape used for benchmark cells when none is given (CIFAR-sized images).
DEFAULT_CELL_INPUT_SHAPE = (1, 3, 32, 32)
_CELL_PREFIXES = ("nb101", "nb201", "darts", "nb301", "tnb101")


@dataclass
class ModelSpec:
    """A resolved SPEC: the graph, plus the PyTorch model and input shape when there is one."""

    spec: str
    graph: ComputationalGraph
    model: nn.Module | None
    input_shape: tuple[int, ...] | None
    source_file: Path | None = None


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"1,3,32,32"`` (or ``"1x3x32x32"``) into a tuple of positive ints.

    The shape is also checked against :func:`check_input_budget` before any model sees it.
    """
    if text is None or text == "":
        return None
    parts = str(text).replace("x", ",").replace(" ", "").strip("()[]").split(",")
    try:
        shape = tuple(int(p) for p in parts if p)
    except ValueError:
        raise AdapterError(f"--input-shape must be comma-separated integers such as 1,3,32,32; got {text!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise AdapterError(f"--input-shape must have positive sizes; got {text!r}")
    if len(shape) > 8:
        raise AdapterError(f"--input-shape has {len(shape)} dimensions; at most 8 are supported")
    check_input_budget(shape)
    return shape


def check_input_budget(shape: tuple[int, ...], *, bytes_per_element: int = 4) -> None:
    """Refuse an example input larger than the input budget before anything is allocated.

    The budget is ``$NASASSIST_MAX_INPUT_MB`` megabytes (default 1024, i.e. a float32 input
    of 268 million elements); a forward pass needs several times its input, so larger
    inputs would exhaust memory rather than trace.
    """
    budget_mb = _input_budget_mb()
    elements = 1
    for d in shape:
        elements *= int(d)
    size_mb = elements * bytes_per_element / 2**20
    if size_mb > budget_mb:
        raise AdapterError(
            f"an example input of shape {tuple(shape)} needs {size_mb:,.0f} MB, above the {budget_mb:,.0f} MB "
            "input budget (set NASASSIST_MAX_INPUT_MB to raise it); the graph does not depend on the batch size, "
            "so use batch 1 and the real resolution"
        )


def _input_budget_mb() -> float:
    text = os.environ.get("NASASSIST_MAX_INPUT_MB", "")
    try:
        value = float(text) if text else 1024.0
    except ValueError:
        raise AdapterError(f"NASASSIST_MAX_INPUT_MB must be a number of megabytes, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise AdapterError(f"NASASSIST_MAX_INPUT_MB must be a positive number, got {text!r}")
    return value


def load_model_spec(spec: str, input_shape: tuple[int, ...] | str | None = None) -> ModelSpec:
    """Turn a SPEC string into a :class:`ModelSpec` (model and graph)."""
    from nasassist_plugins.adapters.torch_adapter import from_torch

    if isinstance(input_shape, str):
        input_shape = parse_input_shape(input_shape)
    elif input_shape is not None:
        check_input_budget(tuple(input_shape))
    prefix, _, rest = spec.partition(":")
    if prefix.lower() in _CELL_PREFIXES and rest:
        model = _cell_network(prefix.lower(), rest)
        shape = tuple(input_shape or DEFAULT_CELL_INPUT_SHAPE)
        return ModelSpec(spec, from_torch(model, shape, name=f"{prefix.lower()}-cell"), model, shape)
    if spec.lower().endswith(".onnx"):
        from nasassist_plugins.adapters.onnx_adapter import from_onnx

        return ModelSpec(spec, from_onnx(spec), None, None, Path(spec))
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise AdapterError(
            f"cannot understand SPEC {spec!r}: expected file.py:ClassOrFactory, package.module:attr, "
            "model.onnx, or nb201:<arch_str> / nb101:<json> / darts:<json> / tnb101:<arch_str>"
        )
    obj, source_file = _import_attr(target, attr)
    model = _instantiate(obj, spec)
    shape = input_shape or _declared_input_shape(model, obj)
    if shape is None:
        raise AdapterError(
            f"{spec}: give the model's input shape with --input-shape (e.g. 1,3,32,32), or define "
            "an `input_shape` attribute on the model"
        )
    check_input_budget(tuple(shape))
    return ModelSpec(spec, _run_user_code(spec, "tracing", lambda: from_torch(model, tuple(shape))), model,
                     tuple(shape), source_file)


def _import_attr(target: str, attr: str) -> tuple[Any, Path | None]:
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise AdapterError(f"model file not found: {path}")
        module_name = f"_nasassist_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise AdapterError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        _run_user_code(str(path), "importing it", lambda: loader_spec.loader.exec_module(module))
        source: Path | None = path
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise AdapterError(f"cannot import module {target!r}: {exc}") from exc
        source = Path(module.__file__) if getattr(module, "__file__", None) else None
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_"))[:20]
        raise AdapterError(f"{target} has no attribute {attr!r} (it defines: {', '.join(public)})")
    return getattr(module, attr), source


def _instantiate(obj: Any, spec: str) -> nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    if callable(obj):
        try:
            model = _run_user_code(spec, "building the model", obj)
        except AdapterError as exc:
            if isinstance(exc.__cause__, TypeError):
                raise AdapterError(
                    f"{spec}: calling it without arguments failed ({exc.__cause__}); point the SPEC at a factory "
                    "function that takes no arguments"
                ) from exc.__cause__
            raise
        if isinstance(model, nn.Module):
            return model
        raise AdapterError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    raise AdapterError(f"{spec} is a {type(obj).__name__}, not a torch.nn.Module, class or factory")


def _run_user_code(spec: str, what: str, function: Any) -> Any:
    """Run user code (import, constructor, forward pass) and turn what escapes it into one clear error.

    ``sys.exit()`` and ``KeyboardInterrupt``-free ``BaseException`` subclasses raised by the
    user's code become :class:`AdapterError` too: a model file must not end the command
    silently. Library errors (already clear) pass through.
    """
    try:
        return function()
    except NASAssistError:
        raise
    except SystemExit as exc:
        raise AdapterError(f"{spec}: {what} called sys.exit({exc.code!r}); a model must not exit the process") from None
    except MemoryError:
        raise AdapterError(f"{spec}: {what} ran out of memory (try a smaller --input-shape)") from None
    except RecursionError:
        raise AdapterError(f"{spec}: {what} exceeded Python's recursion limit") from None
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        if "allocate" in detail.lower() and isinstance(exc, RuntimeError):
            raise AdapterError(f"{spec}: {what} ran out of memory: {detail}") from exc
        raise AdapterError(f"{spec}: {what} raised {type(exc).__name__}: {detail}") from exc


def _declared_input_shape(model: nn.Module, obj: Any) -> tuple[int, ...] | None:
    for source in (model, obj):
        shape = getattr(source, "input_shape", None)
        if isinstance(shape, (tuple, list)) and shape and all(isinstance(d, int) for d in shape):
            return tuple(shape)
    return None


def _cell_network(kind: str, payload: str) -> nn.Module:
    from nasassist_plugins.adapters import cells

    try:
        if kind == "nb201":
            return cells.nb201_network(payload)
        if kind == "tnb101":
            return cells.tnb101_network(payload)
        data = _json_payload(kind, payload)
        if kind == "nb101":
            adjacency, ops = (data["adjacency"], data["ops"]) if isinstance(data, dict) else data
            return cells.nb101_network(adjacency, ops)
        normal, reduce = (data["normal"], data["reduce"]) if isinstance(data, dict) else data
        return cells.darts_network(normal, reduce)
    except AdapterError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise AdapterError(f"invalid {kind} cell specification: {exc}") from exc


def _json_payload(kind: str, payload: str) -> Any:
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{kind}: the cell specification must be JSON: {exc}") from exc
