"""PyTorch module -> :class:`ComputationalGraph`.

The graph is traced at module granularity: every childless module (and every
``nn.MultiheadAttention``) becomes one node, every functional call on tensors
(``x + y``, ``torch.cat``, ``F.relu``, ``x.view``) another, and edges follow the
tensors. The one-pass tracer (:mod:`._torch_trace`) records all of it during a single
real forward pass, shapes included, and follows data-dependent control flow. Only when
it fails does tracing fall back to the earlier two-step path: ``torch.fx`` symbolic
tracing plus a shape-recording forward, then torchview, which records a real forward
at module depth. Every path uses the op tables in :mod:`._torch_ops`, so they produce
the same vocabulary (and, where fx can trace a model, the same graph).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
import torch.fx as fx
import torch.nn as nn

from nasassist_plugins.adapters._torch_flops import call_flops
from nasassist_plugins.adapters._torch_trace import OnePassTracer, is_leaf_module, mark_partial
from nasassist_plugins.adapters._torchview import torchview_graph
from nasassist_plugins.adapters._torch_ops import (
    PASSTHROUGH,
    refine_op,
    function_op,
    method_op,
    module_attrs,
    module_op,
)
from nasassist_plugins.errors import AdapterError, AdapterTypeError
from nasassist_plugins.validation import check_choice
from nasassist_plugins.graph import ComputationalGraph

__all__ = ["TRACER_VERSION", "from_torch", "as_example_inputs"]

_METHODS = ("auto", "onepass", "fx", "torchview")

#: Version of the PyTorch graph tracing; graph caches include it in their key (2: one-pass tracer).
TRACER_VERSION = 2


def from_torch(
    model: nn.Module,
    example_input: Any,
    *,
    name: str | None = None,
    method: str = "auto",
) -> ComputationalGraph:
    """Trace ``model`` on ``example_input`` into a computational graph.

    Args:
        model: The PyTorch model. It is traced in eval mode; its mode is restored.
        example_input: A tensor, a tuple/list of tensors (positional inputs), or a
            shape such as ``(1, 3, 32, 32)`` for one random float input.
        name: Graph name (defaults to the model's class name).
        method: ``"auto"`` (default: the one-pass tracer, then fx, then torchview when a
            path fails), ``"onepass"``, ``"fx"`` or ``"torchview"`` (one path only).

    The example input is copied first: a model that works in place never changes the
    caller's tensors. Recurrent layers and attention get their FLOPs counted from the
    inputs they saw (node attribute ``flops``), or ``flops_unknown=True``.

    Warns:
        PartialGraphWarning: the forward pass branched on tensor values (``if x.sum() > 0``):
            the graph records only the branch taken, and ``graph.metadata["partial"]`` says so.

    Raises:
        AdapterTypeError: ``model`` is not an ``nn.Module`` or the input is not a tensor/shape.
        AdapterError: the model fails on the input (e.g. wrong input shape), or neither
            tracing path can follow its data flow; the message names the cause.
    """
    if not isinstance(model, nn.Module):
        raise AdapterTypeError(
            f"from_torch expects a torch.nn.Module, got {type(model).__name__}"
            + (" (did you pass the class instead of an instance?)" if isinstance(model, type) else "")
        )
    check_choice("method", method, _METHODS)
    given = as_example_inputs(example_input, _model_device(model))
    inputs = _copies(given)  # every attempt runs on its own copy: a model that works in place
    graph_name = name or type(model).__name__
    training_modules = [m for m in _modules(model) if m.training]
    for module in training_modules:  # eval mode: dropout off, batchnorm on running stats
        module.training = False
    try:
        errors: list[str] = []
        if method in ("auto", "onepass"):
            try:
                return _checked(OnePassTracer(model, inputs, graph_name).trace(), "one-pass")
            except AdapterError as exc:
                if method == "onepass":
                    raise
                errors.append(f"one-pass: {exc}")
            except Exception as exc:  # noqa: BLE001 - the model itself failing is reported as such
                _raise_if_forward_fails(model, _copies(given), graph_name)
                if method == "onepass":
                    raise AdapterError(f"the one-pass tracer cannot trace {graph_name}: {_describe(exc)}") from exc
                errors.append(f"one-pass: {_describe(exc)}")
        fx_error: Exception | None = None
        if method in ("auto", "fx"):
            try:
                graph = _FxGraphBuilder(model, _copies(given), graph_name).build()
                return _with_errors(_checked(graph, "torch.fx"), errors)
            except _TraceFailure as exc:
                fx_error = exc.__cause__ or exc
                if method == "fx":
                    raise AdapterError(f"torch.fx cannot trace {graph_name}: {_describe(fx_error)}") from exc
        try:
            graph = torchview_graph(model, _copies(given), graph_name)
        except Exception as exc:  # noqa: BLE001 - reported with both causes below
            _raise_if_forward_fails(model, _copies(given), graph_name)
            causes = f"torch.fx: {_describe(fx_error)}; torchview: {_describe(exc)}" if fx_error else _describe(exc)
            raise AdapterError(f"cannot trace {graph_name} with torch.fx or torchview ({causes})") from exc
        if fx_error is not None:
            graph.metadata["fx_error"] = _describe(fx_error)
            if "control flow" in str(fx_error):  # torchview recorded the branches this input took
                mark_partial(graph, graph_name, "its forward")
        return _with_errors(_checked(graph, "torchview"), errors)
    finally:
        for module in training_modules:
            module.training = True


def _copies(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Private copies of the example inputs: tracing never changes the caller's tensors."""
    with torch.no_grad():
        return tuple(t.clone() for t in inputs)


def _with_errors(graph: ComputationalGraph, errors: list[str]) -> ComputationalGraph:
    if errors:
        graph.metadata["onepass_error"] = "; ".join(errors)
    return graph


def as_example_inputs(example_input: Any, device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """Normalise an example input (tensor, tuple of tensors, or shape) to a tuple of tensors."""
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, torch.Size) or (
        isinstance(example_input, (tuple, list))
        and example_input
        and all(isinstance(d, int) and not isinstance(d, bool) for d in example_input)
    ):
        shape = tuple(int(d) for d in example_input)
        if any(d <= 0 for d in shape):
            raise AdapterTypeError(f"input shape must have positive sizes, got {shape}")
        from nasassist_plugins.cli.spec import check_input_budget

        check_input_budget(shape)  # the $NASASSIST_MAX_INPUT_MB budget, before allocating
        return (torch.randn(shape, device=device),)
    if isinstance(example_input, (tuple, list)) and example_input and all(
        isinstance(t, torch.Tensor) for t in example_input
    ):
        return tuple(example_input)
    raise AdapterTypeError(
        "example_input must be a tensor, a tuple of tensors, or a shape such as (1, 3, 32, 32); "
        f"got {type(example_input).__name__}"
    )


# ----------------------------------------------------------------------------- errors
class _TraceFailure(Exception):
    """fx could not trace symbolically (the model itself may still run)."""


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _modules(model: nn.Module) -> list[nn.Module]:
    """Every module of ``model`` once (``model.modules()`` without its generator chain)."""
    out, seen, stack = [], set(), [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        out.append(module)
        stack.extend(child for child in module._modules.values() if child is not None)
    return out


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _input_shapes(inputs: Sequence[torch.Tensor]) -> str:
    return ", ".join(str(tuple(t.shape)) for t in inputs)


def _raise_if_forward_fails(model: nn.Module, inputs: Sequence[torch.Tensor], name: str) -> None:
    """Turn a failing forward pass (bad input shape, buggy model) into a clear AdapterError."""
    try:
        with torch.no_grad():
            model(*inputs)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise AdapterError(
            f"{name} failed on an example input of shape {_input_shapes(inputs)}: {_describe(exc)} "
            "(check --input-shape / example_input)"
        ) from exc


def _checked(graph: ComputationalGraph, path: str) -> ComputationalGraph:
    """Validate the traced graph: acyclic, and the output must depend on the input."""
    graph.validate()
    graph.metadata.setdefault("tracer", path)
    sources = set(graph.input_nodes())
    reached = set(sources)
    frontier = list(sources)
    children: dict[int, list[int]] = {}
    for s, t in graph.edges:
        children.setdefault(s, []).append(t)
    while frontier:
        for c in children.get(frontier.pop(), []):
            if c not in reached:
                reached.add(c)
                frontier.append(c)
    outputs = [i for i, n in enumerate(graph.nodes) if n.op_type == "output"]
    if not any(o in reached for o in outputs):
        raise AdapterError(
            f"the output of {graph.name} does not depend on its input through traceable tensor operations "
            f"({path}); the forward pass probably leaves torch (e.g. .numpy(), .item(), .tolist()) or "
            "builds its output from constants"
        )
    return graph


# ----------------------------------------------------------------------------- torch.fx
class _LeafTracer(fx.Tracer):
    """fx tracer whose leaves are childless modules and attention blocks."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:  # noqa: D401
        return is_leaf_module(m)


class _FxGraphBuilder:
    """Builds a ComputationalGraph from an fx trace plus real-shape propagation."""

    def __init__(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> None:
        self.model = model
        self.inputs = inputs
        self.graph = ComputationalGraph(name=name)
        self._index: dict[fx.Node, int] = {}  # fx node -> graph node index
        self._sources: dict[fx.Node, list[int]] = {}  # collapsed fx node -> producing graph nodes
        self._counted_modules: set[int] = set()
        self._counted_attrs: set[str] = set()
        self._modules = dict(model.named_modules())

    def build(self) -> ComputationalGraph:
        try:
            tracer = _LeafTracer()
            fx_graph = tracer.trace(self.model)
        except Exception as exc:  # noqa: BLE001 - any trace failure means "use the fallback"
            raise _TraceFailure(str(exc)) from exc
        try:
            with torch.no_grad():
                _ShapeRecorder(self.model, graph=fx_graph).run(*self.inputs)
        except Exception as exc:  # noqa: BLE001
            _raise_if_forward_fails(self.model, self.inputs, self.graph.name)
            raise _TraceFailure(str(exc)) from exc
        for node in fx_graph.nodes:
            self._visit(node)
        return self.graph

    # Each fx node becomes a graph node, collapses into its producers, or is dropped.
    def _visit(self, node: fx.Node) -> None:
        if node.op == "output":
            idx = self.graph.add_node("output", name="output", output_shape=_first_shape(node.args[0]))
            self._connect(idx, node.all_input_nodes)
            return
        meta = node.meta.get(_SHAPE_KEY)
        if node.op == "get_attr" or meta is None:
            return  # parameters/constants and non-tensor plumbing (x.size(), x.shape)
        if node.op == "placeholder":
            self._index[node] = self.graph.add_node("input", name=node.name, output_shape=_shape(meta))
            return
        op, module_name, attrs = self._describe(node, meta)
        op = refine_op(op, _input_shape(node), _shape(meta))
        if op == PASSTHROUGH:
            self._sources[node] = self._producers(node.all_input_nodes)
            return
        attrs["output_shape"] = _shape(meta)
        attrs["num_params"] = attrs.get("num_params", 0) + self._attr_params(node)
        idx = self.graph.add_node(op, name=node.name, module=module_name, **attrs)
        self._index[node] = idx
        self._connect(idx, node.all_input_nodes)

    def _describe(self, node: fx.Node, meta: Any) -> tuple[str, str | None, dict[str, Any]]:
        if node.op == "call_module":
            module = self._modules[node.target]
            attrs = module_attrs(module)
            if id(module) in self._counted_modules:  # a shared module's weights count once
                attrs["num_params"] = 0
                attrs["shared_with_earlier_call"] = True
            self._counted_modules.add(id(module))
            attrs.update(call_flops(module, node.args, node.kwargs, _arg_shape))
            return module_op(module), str(node.target), attrs
        owner = _owning_module(node)
        if node.op == "call_method":
            return method_op(str(node.target)), owner, {}
        # call_function
        if getattr(node.target, "__name__", "") == "getitem":
            source = node.args[0]
            source_meta = source.meta.get(_SHAPE_KEY) if isinstance(source, fx.Node) else None
            if not isinstance(source_meta, torch.Size):  # picking one output of a tuple
                return PASSTHROUGH, owner, {}
            return "slice", owner, {}
        op = function_op(node.target)
        return op, owner, call_flops(node.target, node.args, node.kwargs, _arg_shape) if op == "attention" else {}

    def _attr_params(self, node: fx.Node) -> int:
        """Trainable parameters read through get_attr by this node (counted once each)."""
        total = 0
        for arg in node.all_input_nodes:
            if arg.op != "get_attr" or arg.target in self._counted_attrs:
                continue
            value = _fetch_attr(self.model, str(arg.target))
            if isinstance(value, nn.Parameter) and value.requires_grad:
                total += value.numel()
                self._counted_attrs.add(str(arg.target))
        return total

    def _producers(self, args: Iterable[fx.Node]) -> list[int]:
        out: list[int] = []
        for arg in args:
            if arg in self._index:
                out.append(self._index[arg])
            elif arg in self._sources:
                out.extend(self._sources[arg])
        return out

    def _connect(self, target: int, args: Iterable[fx.Node]) -> None:
        for source in self._producers(args):
            if source != target:
                self.graph.add_edge(source, target)


def _owning_module(node: fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    qualname = list(stack.values())[-1]
    qualname = qualname[0] if isinstance(qualname, tuple) else qualname
    return str(qualname) or None


def _fetch_attr(model: nn.Module, target: str) -> Any:
    value: Any = model
    for part in target.split("."):
        value = getattr(value, part, None)
    return value


def _shape(meta: Any) -> tuple[int, ...] | None:
    """First tensor shape in a recorded result (tuples/lists/dicts searched in order)."""
    if isinstance(meta, torch.Size):
        return tuple(int(d) for d in meta)
    if isinstance(meta, (tuple, list)):
        for item in meta:
            shape = _shape(item)
            if shape is not None:
                return shape
    return None


def _arg_shape(arg: Any) -> tuple[int, ...] | None:
    """The recorded tensor shape of an fx argument (``None`` for anything but a plain tensor)."""
    if not isinstance(arg, fx.Node):
        return None
    meta = arg.meta.get(_SHAPE_KEY)
    return tuple(int(d) for d in meta) if isinstance(meta, torch.Size) else None


def _input_shape(node: fx.Node) -> tuple[int, ...] | None:
    for arg in node.all_input_nodes:
        shape = _shape(arg.meta.get(_SHAPE_KEY))
        if shape is not None:
            return shape
    return None


def _first_shape(arg: Any) -> tuple[int, ...] | None:
    if isinstance(arg, fx.Node):
        return _shape(arg.meta.get(_SHAPE_KEY))
    if isinstance(arg, (tuple, list)):
        for item in arg:
            shape = _first_shape(item)
            if shape is not None:
                return shape
    if isinstance(arg, dict):
        return _first_shape(list(arg.values()))
    return None


_SHAPE_KEY = "nasassist_shape"


def _recorded_shapes(value: Any) -> Any:
    """``torch.Size`` for a tensor, a tuple of those for tuples/lists/dicts of tensors, else None."""
    if isinstance(value, torch.Tensor):
        return value.shape
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        shapes = tuple(_recorded_shapes(v) for v in value)
        return shapes if any(s is not None for s in shapes) else None
    return None


class _ShapeRecorder(fx.Interpreter):
    """Runs the traced module on real inputs and records each node's output shape(s).

    Unlike ``torch.fx.passes.shape_prop.ShapeProp`` it does not print a traceback when
    the model fails: the caller turns the failure into one clear error.
    """

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        n.meta[_SHAPE_KEY] = _recorded_shapes(result)
        return result
